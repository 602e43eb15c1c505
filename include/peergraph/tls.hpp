//
// peergraph/tls.hpp
// ~~~~~~~~~~~~~~~~~
// tls_credentials: TLS 1.3 under every connection of a graph, both nodes authenticated by certificates of the graph's
// CA (graph_properties::tls).
//
// Needs OpenSSL: a program that includes it links libssl and libcrypto (pkg-config openssl; Debian: libssl-dev;
// Meson: dependency('peergraph-tls')). It is not part of <peergraph.hpp> for that reason.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/detail/tls_session.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/transport_security.hpp>

#include <memory>
#include <string_view>

namespace peergraph {

/// A node's TLS credentials: the graph's CA, the node's certificate (its common name is the node's peer id) and key.
///
/// Every connection then runs TLS 1.3 (nothing older) before the peergraph handshake, and both sides must present a
/// certificate that chains to the graph's CA and is valid now; otherwise the connection fails with not_authenticated
/// on both sides, before either node said who it is. A node's hello must announce the peer id its certificate names
/// (the subject common name), so no member can speak under another member's id. Everything after the handshake is
/// encrypted and authenticated. Session tickets are off: every connection makes a full handshake.
///
/// @code
/// auto tls = peergraph::tls_credentials::make(ca_pem, node_certificate_pem, node_key_pem);
/// if (!tls) return tls.error();
/// properties.tls = *tls;  // properties.peer must be the certificate's common name
/// @endcode
class tls_credentials final : public transport_security
{
  struct private_tag
  {
  };

public:
  /// @param ca_pem the graph's CA certificate(s), PEM.
  /// @param chain_pem this node's certificate, then any intermediate CA certificates, PEM.
  /// @param key_pem this node's private key, PEM, not encrypted.
  /// @return the credentials, or invalid_argument when a PEM does not parse, the key does not belong to the
  /// certificate, or no CA certificate is given.
  [[nodiscard]] static expected<std::shared_ptr<const tls_credentials>, peer_error> make(std::string_view ca_pem,
                                                                                         std::string_view chain_pem,
                                                                                         std::string_view key_pem)
  {
    auto context = detail::tls_context::make(ca_pem, chain_pem, key_pem);
    if (!context)
      return unexpected(context.error());
    return std::make_shared<const tls_credentials>(private_tag{}, std::move(*context));
  }

  /// Use make().
  tls_credentials(private_tag, std::shared_ptr<const detail::tls_context> context) : context_(std::move(context)) {}

  /// A TLS session for one connection: the caller is the TLS client.
  [[nodiscard]] expected<std::unique_ptr<secure_session>, peer_error> start(membership_role role) const override
  {
    auto session = std::make_unique<detail::tls_session>(context_, role);
    if (!session->valid())
      return unexpected(peer_error(peer_errc::out_of_memory));
    return std::unique_ptr<secure_session>(std::move(session));
  }

private:
  std::shared_ptr<const detail::tls_context> context_;
};

} // namespace peergraph
