//
// peergraph/psk.hpp
// ~~~~~~~~~~~~~~~~~
// pre_shared_key: membership of a closed graph proved with a key every member holds, by an HMAC-SHA-256
// challenge-response built from OpenSSL's primitives (HMAC, RAND_bytes, CRYPTO_memcmp, OPENSSL_cleanse).
//
// The one peergraph header that needs OpenSSL: a program that includes it links libcrypto (pkg-config libcrypto;
// Debian: libssl-dev). It is not part of <peergraph.hpp> for that reason.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/membership.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace peergraph {

/// The credentials of a closed graph whose members share one secret key.
///
/// Each proof is HMAC-SHA-256(key, label | role | caller challenge | acceptor challenge), where the label is the
/// 23 bytes "peergraph membership v1", the role one byte (membership_role) and each challenge 32 bytes from
/// RAND_bytes, so a proof is bound to one connection and one side of it and cannot be replayed. The exchange proves
/// membership when the connection opens; it does not encrypt or authenticate the frames that follow, so it keeps
/// strangers out of a graph but does not protect against someone who can read or change the traffic on the path.
///
/// @code
/// auto key = peergraph::pre_shared_key::make(secret_bytes); // at least 16 bytes, e.g. 32 random bytes
/// if (!key) return key.error();
/// properties.membership = *key;                              // the same key on every node of the graph
/// @endcode
class pre_shared_key final : public membership_authenticator
{
  struct private_tag
  {
  };

public:
  /// Shortest key accepted: 16 bytes (128 bits). Use random bytes, not a password.
  static constexpr std::size_t min_key_size = 16;
  /// Longest key accepted.
  static constexpr std::size_t max_key_size = 1024;

  /// Makes credentials from `key` (copied; the copy is wiped when the last graph using it is gone).
  /// @return the credentials, or invalid_argument when the key is shorter than min_key_size or longer than
  /// max_key_size.
  [[nodiscard]] static expected<std::shared_ptr<const pre_shared_key>, peer_error> make(std::span<const std::byte> key)
  {
    if (key.size() < min_key_size || key.size() > max_key_size)
      return unexpected(peer_error(peer_errc::invalid_argument));
    return std::make_shared<const pre_shared_key>(private_tag{}, key);
  }

  /// Use make().
  pre_shared_key(private_tag, std::span<const std::byte> key) : key_(key.begin(), key.end()) {}

  ~pre_shared_key() override { OPENSSL_cleanse(key_.data(), key_.size()); }

  /// Fills `nonce` from OpenSSL's CSPRNG (RAND_bytes); unknown_error when it fails.
  [[nodiscard]] expected<void, peer_error> make_nonce(std::span<std::byte, membership_nonce_size> nonce) const override
  {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), static_cast<int>(nonce.size())) != 1)
      return unexpected(peer_error(peer_errc::unknown_error));
    return {};
  }

  /// HMAC-SHA-256 over the label, `role` and both challenges; unknown_error when OpenSSL fails.
  [[nodiscard]] expected<void, peer_error> prove(membership_role role, membership_nonce_view caller_nonce,
                                                 membership_nonce_view acceptor_nonce,
                                                 std::span<std::byte, membership_proof_size> proof) const override
  {
    if (!compute(role, caller_nonce, acceptor_nonce, proof))
      return unexpected(peer_error(peer_errc::unknown_error));
    return {};
  }

  /// Recomputes the proof and compares it in constant time (CRYPTO_memcmp).
  [[nodiscard]] bool verify(membership_role role, membership_nonce_view caller_nonce,
                            membership_nonce_view acceptor_nonce,
                            std::span<const std::byte, membership_proof_size> proof) const override
  {
    std::array<std::byte, membership_proof_size> expected_proof{};
    const bool equal = compute(role, caller_nonce, acceptor_nonce, expected_proof) &&
                       CRYPTO_memcmp(expected_proof.data(), proof.data(), proof.size()) == 0;
    OPENSSL_cleanse(expected_proof.data(), expected_proof.size());
    return equal;
  }

private:
  static constexpr std::string_view label = "peergraph membership v1";

  bool compute(membership_role role, membership_nonce_view caller_nonce, membership_nonce_view acceptor_nonce,
               std::span<std::byte, membership_proof_size> proof) const noexcept
  {
    std::array<unsigned char, label.size() + 1 + 2 * membership_nonce_size> transcript{};
    auto out = transcript.begin();
    for (const char c : label)
      *out++ = static_cast<unsigned char>(c);
    *out++ = static_cast<unsigned char>(role);
    for (const std::byte b : caller_nonce)
      *out++ = std::to_integer<unsigned char>(b);
    for (const std::byte b : acceptor_nonce)
      *out++ = std::to_integer<unsigned char>(b);
    unsigned int size = 0;
    const unsigned char* made = HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), transcript.data(),
                                     transcript.size(), reinterpret_cast<unsigned char*>(proof.data()), &size);
    return made != nullptr && size == proof.size();
  }

  std::vector<std::byte> key_;
};

} // namespace peergraph
