//
// peergraph/membership.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~
// How the nodes of a closed graph prove to each other that they belong to it, before either says who it is: the
// interface a graph_properties::membership object implements. The implementation this library ships,
// pre_shared_key (<peergraph/psk.hpp>), uses OpenSSL; this header needs nothing but the standard library, so a
// graph without membership proofs does not link OpenSSL.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace peergraph {

/// Which side of a connection a membership proof speaks for. Part of what is proved, so a proof made by one side can
/// never be replayed as the other side's.
enum class membership_role : std::uint8_t
{
  caller = 1,   ///< the node that opened the TCP connection (connect, open_direct_connection)
  acceptor = 2, ///< the node that accepted it (listen)
};

/// Size of each side's random challenge in the membership exchange (docs/wire.md, "Closed graphs").
inline constexpr std::size_t membership_nonce_size = 32;
/// Size of a membership proof.
inline constexpr std::size_t membership_proof_size = 32;

/// A fixed-size view of one side's challenge.
using membership_nonce_view = std::span<const std::byte, membership_nonce_size>;

/// The credentials a node of a closed graph holds, as the handshake uses them. Before any hello, the caller sends a
/// fresh random challenge, the acceptor answers with its own challenge and its proof over both challenges, and the
/// caller, only when that proof is right, sends its proof and then its hello. A node that cannot prove membership
/// learns no peer id and cannot send data: its connection ends with not_authenticated on both sides.
///
/// An implementation must be safe to call from several threads at once (graphs on different executors may share
/// one), must make proofs that only holders of the same credentials can make or check, and must compare proofs in
/// constant time.
class membership_authenticator
{
public:
  membership_authenticator() = default;
  membership_authenticator(const membership_authenticator&) = delete;
  membership_authenticator& operator=(const membership_authenticator&) = delete;
  virtual ~membership_authenticator() = default;

  /// Fills `nonce` with bytes from a cryptographically secure random source.
  /// @return an error (the connection attempt then fails with it) when the source fails.
  [[nodiscard]] virtual expected<void, peer_error> make_nonce(
      std::span<std::byte, membership_nonce_size> nonce) const = 0;

  /// Makes the proof of `role` over the two challenges of one connection.
  /// @return an error (the connection attempt then fails with it) when the underlying primitive fails.
  [[nodiscard]] virtual expected<void, peer_error> prove(membership_role role, membership_nonce_view caller_nonce,
                                                         membership_nonce_view acceptor_nonce,
                                                         std::span<std::byte, membership_proof_size> proof) const = 0;

  /// Whether `proof` is the proof of `role` over the two challenges, compared in constant time.
  [[nodiscard]] virtual bool verify(membership_role role, membership_nonce_view caller_nonce,
                                    membership_nonce_view acceptor_nonce,
                                    std::span<const std::byte, membership_proof_size> proof) const = 0;
};

} // namespace peergraph
