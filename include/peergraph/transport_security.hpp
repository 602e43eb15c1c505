//
// peergraph/transport_security.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The interface of a secure channel under every connection of a graph (graph_properties::tls): a handshake that
// authenticates both nodes, then encryption of everything they send. It is a byte transformation without I/O: the
// graph reads and writes the socket itself (its ordering, batching and backpressure stay as they are) and passes the
// bytes through a session. The implementation this library ships, tls_credentials (<peergraph/tls.hpp>), is TLS 1.3
// over OpenSSL; this header needs nothing but the standard library, so a graph without TLS does not link OpenSSL.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/membership.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace peergraph {

/// Where a secure handshake stands after a step.
enum class secure_progress : unsigned char
{
  need_more, ///< send what the step produced, then feed the peer's next bytes
  done,      ///< the handshake completed and the peer is authenticated; send what the step produced
};

/// One connection's secure channel. Each call appends the bytes to send to the peer to `out`; the caller sends them
/// in the order they were produced, also when the call fails (a failed handshake produces the alert that tells the
/// peer why). A session is used from one thread at a time.
class secure_session
{
public:
  secure_session() = default;
  secure_session(const secure_session&) = delete;
  secure_session& operator=(const secure_session&) = delete;
  virtual ~secure_session() = default;

  /// One handshake step with the peer's next bytes (none for the caller's first step).
  /// @return need_more or done; not_authenticated when either side's credentials were refused; another error when
  /// the peer does not speak the protocol.
  [[nodiscard]] virtual expected<secure_progress, peer_error> handshake(std::span<const std::byte> in,
                                                                        std::vector<std::byte>& out) = 0;

  /// Encrypts `buffers`, in order.
  [[nodiscard]] virtual expected<void, peer_error> encrypt(std::span<const std::span<const std::byte>> buffers,
                                                           std::vector<std::byte>& out) = 0;

  /// Decrypts the peer's bytes `in`, appending the plaintext to `plaintext`.
  /// @return whether the peer closed the secure channel; protocol_error for bytes that do not authenticate;
  /// not_authenticated when the peer refused this side's credentials after the handshake.
  [[nodiscard]] virtual expected<bool, peer_error> decrypt(std::span<const std::byte> in,
                                                           std::vector<std::byte>& plaintext,
                                                           std::vector<std::byte>& out) = 0;

  /// Appends the closing message of the channel.
  virtual void close(std::vector<std::byte>& out) = 0;

  /// The name the peer's credentials carry (a certificate's common name), after the handshake. The graph refuses a
  /// peer whose hello announces another peer id, so no node can speak under another's name.
  [[nodiscard]] virtual std::string peer_name() const = 0;
};

/// A graph's secure-channel credentials: makes a session for each connection.
class transport_security
{
public:
  transport_security() = default;
  transport_security(const transport_security&) = delete;
  transport_security& operator=(const transport_security&) = delete;
  virtual ~transport_security() = default;

  /// A session for one connection, on the side given by `role` (the caller opened the TCP connection).
  [[nodiscard]] virtual expected<std::unique_ptr<secure_session>, peer_error> start(membership_role role) const = 0;
};

} // namespace peergraph
