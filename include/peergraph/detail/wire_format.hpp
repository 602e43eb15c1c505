//
// peergraph/detail/wire_format.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Byte-level helpers of the wire protocol: little-endian loads and stores, field offsets, and a bounds-checked
// reader. Every access is checked against the span it reads, so decoding is safe on any input.
//
#pragma once

#include <peergraph/config.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace peergraph::wire::detail {

// Frame header field offsets (docs/wire.md, "Frame header").
inline constexpr std::size_t header_kind_offset = 0;
inline constexpr std::size_t header_flags_offset = 1;
inline constexpr std::size_t header_reserved_offset = 2;
inline constexpr std::size_t header_type_offset = 4;
inline constexpr std::size_t header_length_offset = 20;

// Preamble field offsets (docs/wire.md, "Preamble").
inline constexpr std::size_t preamble_magic_offset = 0;
inline constexpr std::size_t preamble_version_offset = 4;
inline constexpr std::size_t preamble_reserved_offset = 6;

/// Little-endian load of an unsigned integer of sizeof(UInt) bytes at `at`; the caller has checked the bounds.
template <class UInt>
[[nodiscard]] constexpr UInt load_le(std::span<const std::byte> in, std::size_t at) noexcept
{
  PEERGRAPH_ASSERT(at <= in.size() && in.size() - at >= sizeof(UInt));
  UInt value = 0;
  for (std::size_t i = sizeof(UInt); i-- > 0;)
    value = static_cast<UInt>((static_cast<std::uint64_t>(value) << 8U) | std::to_integer<std::uint64_t>(in[at + i]));
  return value;
}

/// Little-endian store of `value` at `at`; the caller has checked the bounds.
template <class UInt>
constexpr void store_le(std::span<std::byte> out, std::size_t at, UInt value) noexcept
{
  PEERGRAPH_ASSERT(at <= out.size() && out.size() - at >= sizeof(UInt));
  // Widened first, so that no narrower type is promoted to (signed) int on the way.
  const auto wide = static_cast<std::uint64_t>(value);
  for (std::size_t i = 0; i < sizeof(UInt); ++i)
    out[at + i] = static_cast<std::byte>((wide >> (8U * i)) & 0xFFU);
}

/// Reads fields in order from a span; every read checks the bounds and a failed read poisons the reader.
class byte_reader
{
public:
  constexpr explicit byte_reader(std::span<const std::byte> in) noexcept : in_(in) {}

  /// Reads a little-endian unsigned integer; false (and the reader fails) if too few bytes are left.
  template <class UInt>
  constexpr bool read(UInt& value) noexcept
  {
    if (!ok_ || in_.size() - at_ < sizeof(UInt))
      return ok_ = false;
    value = load_le<UInt>(in_, at_);
    at_ += sizeof(UInt);
    return true;
  }

  /// Takes the next `size` bytes as a view; false (and the reader fails) if too few bytes are left.
  constexpr bool read_bytes(std::size_t size, std::span<const std::byte>& bytes) noexcept
  {
    if (!ok_ || in_.size() - at_ < size)
      return ok_ = false;
    bytes = in_.subspan(at_, size);
    at_ += size;
    return true;
  }

  /// Bytes not read yet.
  [[nodiscard]] constexpr std::size_t remaining() const noexcept { return in_.size() - at_; }
  /// Whether every read so far succeeded.
  [[nodiscard]] constexpr bool ok() const noexcept { return ok_; }

private:
  std::span<const std::byte> in_;
  std::size_t at_ = 0;
  bool ok_ = true;
};

/// Views bytes as text (the wire carries UTF-8).
[[nodiscard]] inline std::string_view as_text(std::span<const std::byte> bytes) noexcept
{
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

/// Views text as bytes.
[[nodiscard]] inline std::span<const std::byte> as_bytes(std::string_view text) noexcept
{
  return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

} // namespace peergraph::wire::detail
