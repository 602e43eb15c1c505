#include <peergraph/psk.hpp>
// The header under test comes first: it must be self-contained.
//
// pre_shared_key: the proofs are HMAC-SHA-256 over the documented transcript (checked against values computed
// independently), bound to the role, both challenges and the key; nonces come from a random source; bad keys are
// refused.

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using peergraph::membership_nonce_size;
using peergraph::membership_proof_size;
using peergraph::membership_role;
using peergraph::peer_errc;
using peergraph::pre_shared_key;

using nonce = std::array<std::byte, membership_nonce_size>;
using proof = std::array<std::byte, membership_proof_size>;

/// Bytes first, first + 1, ... (wrapping), `size` of them.
std::vector<std::byte> counting(std::size_t size, unsigned first)
{
  std::vector<std::byte> out(size);
  for (std::size_t i = 0; i < size; ++i)
    out[i] = static_cast<std::byte>((first + i) & 0xFFU);
  return out;
}

template <std::size_t N>
std::array<std::byte, N> counting_array(unsigned first)
{
  std::array<std::byte, N> out{};
  const auto bytes = counting(N, first);
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

proof from_hex(std::string_view text)
{
  proof out{};
  REQUIRE(text.size() == 2 * out.size());
  const auto digit = [](char c) { return static_cast<unsigned>(c <= '9' ? c - '0' : c - 'a' + 10); };
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<std::byte>(digit(text[2 * i]) << 4U | digit(text[2 * i + 1]));
  return out;
}

std::shared_ptr<const pre_shared_key> key_from(unsigned first, std::size_t size = 32)
{
  auto key = pre_shared_key::make(counting(size, first));
  REQUIRE(key.has_value());
  return *key;
}

proof prove(const pre_shared_key& key, membership_role role, const nonce& caller, const nonce& acceptor)
{
  proof out{};
  auto made = key.prove(role, caller, acceptor, out);
  REQUIRE(made.has_value());
  return out;
}

} // namespace

TEST_SUITE_BEGIN("psk");

TEST_CASE("keys shorter than 16 bytes or longer than 1,024 bytes are refused with invalid_argument")
{
  CHECK(pre_shared_key::make(counting(0, 0)).error() == peer_errc::invalid_argument);
  CHECK(pre_shared_key::make(counting(pre_shared_key::min_key_size - 1, 0)).error() == peer_errc::invalid_argument);
  CHECK(pre_shared_key::make(counting(pre_shared_key::min_key_size, 0)).has_value());
  CHECK(pre_shared_key::make(counting(pre_shared_key::max_key_size, 0)).has_value());
  CHECK(pre_shared_key::make(counting(pre_shared_key::max_key_size + 1, 0)).error() == peer_errc::invalid_argument);
}

TEST_CASE("a proof is HMAC-SHA-256(key, \"peergraph membership v1\" | role | caller nonce | acceptor nonce)")
{
  // Expected values from an independent HMAC implementation (Python's hmac module) over the documented transcript:
  // key 00 01 .. 1f, caller nonce 20 21 .. 3f, acceptor nonce 40 41 .. 5f.
  const auto key = key_from(0x00);
  const auto caller = counting_array<membership_nonce_size>(0x20);
  const auto acceptor = counting_array<membership_nonce_size>(0x40);
  const proof by_caller = from_hex("f931c90302ead0a7619db4c913bed09193fa0204f2b0e3815a6f79778d747776");
  const proof by_acceptor = from_hex("942637f5b96e75ea0af790f651a9e986aea2bbb8c3b9e0f3f34fc99e13c83e75");
  CHECK(prove(*key, membership_role::caller, caller, acceptor) == by_caller);
  CHECK(prove(*key, membership_role::acceptor, caller, acceptor) == by_acceptor);
  CHECK(key->verify(membership_role::caller, caller, acceptor, by_caller));
  CHECK(key->verify(membership_role::acceptor, caller, acceptor, by_acceptor));
}

TEST_CASE("a proof verifies only for the same key, role, nonces and bytes")
{
  const auto key = key_from(0x00);
  const auto caller = counting_array<membership_nonce_size>(0x20);
  const auto acceptor = counting_array<membership_nonce_size>(0x40);
  const proof good = prove(*key, membership_role::caller, caller, acceptor);
  REQUIRE(key->verify(membership_role::caller, caller, acceptor, good));

  // Another role: a caller's proof can never stand in for the acceptor's, nor the reverse.
  CHECK_FALSE(key->verify(membership_role::acceptor, caller, acceptor, good));
  // The nonces swapped: a proof is bound to which side made which challenge.
  CHECK_FALSE(key->verify(membership_role::caller, acceptor, caller, good));
  // Another key, even one differing in its last byte only, or a longer key with the same prefix.
  auto close_key = counting(32, 0x00);
  close_key.back() ^= std::byte{1};
  CHECK_FALSE((*pre_shared_key::make(close_key))->verify(membership_role::caller, caller, acceptor, good));
  CHECK_FALSE(key_from(0x00, 33)->verify(membership_role::caller, caller, acceptor, good));
  // Any single bit changed in either nonce or in the proof.
  for (std::size_t i = 0; i < membership_nonce_size; ++i) {
    auto other_caller = caller;
    other_caller[i] ^= std::byte{0x80};
    auto other_acceptor = acceptor;
    other_acceptor[i] ^= std::byte{0x01};
    auto other_proof = good;
    other_proof[i] ^= std::byte{0x10};
    CHECK_FALSE(key->verify(membership_role::caller, other_caller, acceptor, good));
    CHECK_FALSE(key->verify(membership_role::caller, caller, other_acceptor, good));
    CHECK_FALSE(key->verify(membership_role::caller, caller, acceptor, other_proof));
  }
}

TEST_CASE("nonces are fresh random bytes")
{
  const auto key = key_from(0x00);
  std::vector<nonce> seen;
  for (int i = 0; i < 64; ++i) {
    nonce n{};
    REQUIRE(key->make_nonce(n).has_value());
    CHECK(n != nonce{});
    for (const auto& earlier : seen)
      CHECK(n != earlier);
    seen.push_back(n);
  }
}

TEST_CASE("one key serves proofs from several threads at once")
{
  const auto key = key_from(0x11);
  const auto caller = counting_array<membership_nonce_size>(0x20);
  const auto acceptor = counting_array<membership_nonce_size>(0x40);
  const proof expected = prove(*key, membership_role::acceptor, caller, acceptor);
  std::array<int, 2> wrong{};
  {
    std::array<std::jthread, 2> threads;
    for (std::size_t t = 0; t < threads.size(); ++t)
      threads[t] = std::jthread([&, t] {
        for (int i = 0; i < 2000; ++i) {
          proof made{};
          if (!key->prove(membership_role::acceptor, caller, acceptor, made) || made != expected ||
              !key->verify(membership_role::acceptor, caller, acceptor, made))
            ++wrong[t];
        }
      });
  }
  CHECK(wrong[0] == 0);
  CHECK(wrong[1] == 0);
}

TEST_SUITE_END();
