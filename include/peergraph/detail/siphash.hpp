//
// peergraph/detail/siphash.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// SipHash-2-4 (Aumasson and Bernstein), a keyed 64-bit hash: with a key the other side does not know in advance,
// nobody can choose inputs that collide. The record synchronisation hashes versions with it under a key drawn per
// synchronisation, so that records planted by a third node cannot make two ranges look alike.
//
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace peergraph::detail {

class siphash24
{
public:
  /// A hash keyed with `k0` and `k1` (the key's two little-endian halves).
  constexpr siphash24(std::uint64_t k0, std::uint64_t k1) noexcept
      : v0_(k0 ^ 0x736f6d6570736575ULL), v1_(k1 ^ 0x646f72616e646f6dULL), v2_(k0 ^ 0x6c7967656e657261ULL),
        v3_(k1 ^ 0x7465646279746573ULL)
  {
  }

  /// The hash of `in`.
  [[nodiscard]] constexpr std::uint64_t operator()(std::span<const std::byte> in) const noexcept
  {
    std::uint64_t v0 = v0_, v1 = v1_, v2 = v2_, v3 = v3_;
    const auto round = [&] {
      v0 += v1;
      v1 = rotl(v1, 13) ^ v0;
      v0 = rotl(v0, 32);
      v2 += v3;
      v3 = rotl(v3, 16) ^ v2;
      v0 += v3;
      v3 = rotl(v3, 21) ^ v0;
      v2 += v1;
      v1 = rotl(v1, 17) ^ v2;
      v2 = rotl(v2, 32);
    };
    const auto compress = [&](std::uint64_t m) {
      v3 ^= m;
      round();
      round();
      v0 ^= m;
    };
    const std::size_t whole = in.size() / 8 * 8;
    for (std::size_t at = 0; at < whole; at += 8)
      compress(load(in, at, 8));
    compress((static_cast<std::uint64_t>(in.size() & 0xFF) << 56U) | load(in, whole, in.size() - whole));
    v2 ^= 0xFF;
    for (int i = 0; i < 4; ++i)
      round();
    return v0 ^ v1 ^ v2 ^ v3;
  }

private:
  static constexpr std::uint64_t rotl(std::uint64_t x, unsigned b) noexcept { return (x << b) | (x >> (64U - b)); }

  static constexpr std::uint64_t load(std::span<const std::byte> in, std::size_t at, std::size_t count) noexcept
  {
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < count; ++i)
      value |= std::to_integer<std::uint64_t>(in[at + i]) << (8U * i);
    return value;
  }

  std::uint64_t v0_, v1_, v2_, v3_;
};

} // namespace peergraph::detail
