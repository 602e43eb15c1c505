//
// peergraph/ids.hpp
// ~~~~~~~~~~~~~~~~~
// Identifier value types: data_type (a GUID), peer_id and graph_id (validated strings), connection_id and node_id
// (64-bit), and connection_kind.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>

#include <algorithm>
#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace peergraph {

namespace detail {

/// Outcome of checking a piece of text against the rules for identifiers and reason texts.
enum class text_check : std::uint8_t
{
  ok,
  empty,
  too_long,
  invalid_utf8,
  control_character,
};

/// Checks that `text` is well-formed UTF-8 of at most `max_code_points` code points without control characters.
///
/// Well-formed means RFC 3629: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no stray
/// or missing continuation bytes. Control characters are C0 (U+0000..U+001F, NUL included), DEL (U+007F) and C1
/// (U+0080..U+009F).
/// @param text the bytes to check.
/// @param max_code_points the largest accepted number of code points.
/// @param allow_empty whether the empty string is acceptable.
/// @return text_check::ok, or the first problem found.
[[nodiscard]] constexpr text_check check_text(std::string_view text, std::size_t max_code_points,
                                              bool allow_empty) noexcept
{
  if (text.empty())
    return allow_empty ? text_check::ok : text_check::empty;
  // Every code point takes at most 4 bytes: a longer text can be refused without decoding it.
  if (text.size() > max_code_points * 4)
    return text_check::too_long;
  std::size_t count = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<std::uint32_t>(static_cast<unsigned char>(text[i]));
    std::uint32_t code_point = 0;
    std::size_t length = 0;
    if (lead < 0x80U) {
      code_point = lead;
      length = 1;
    } else if (lead >= 0xC2U && lead <= 0xDFU) {
      code_point = lead & 0x1FU;
      length = 2;
    } else if (lead >= 0xE0U && lead <= 0xEFU) {
      code_point = lead & 0x0FU;
      length = 3;
    } else if (lead >= 0xF0U && lead <= 0xF4U) {
      code_point = lead & 0x07U;
      length = 4;
    } else {
      return text_check::invalid_utf8; // a continuation byte, C0/C1 (always overlong) or F5..FF
    }
    if (text.size() - i < length)
      return text_check::invalid_utf8;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<std::uint32_t>(static_cast<unsigned char>(text[i + k]));
      if ((next & 0xC0U) != 0x80U)
        return text_check::invalid_utf8;
      code_point = (code_point << 6U) | (next & 0x3FU);
    }
    if (length == 3 && (code_point < 0x800U || (code_point >= 0xD800U && code_point <= 0xDFFFU)))
      return text_check::invalid_utf8;
    if (length == 4 && (code_point < 0x10000U || code_point > 0x10FFFFU))
      return text_check::invalid_utf8;
    if (code_point < 0x20U || code_point == 0x7FU || (code_point >= 0x80U && code_point <= 0x9FU))
      return text_check::control_character;
    if (++count > max_code_points)
      return text_check::too_long;
    i += length;
  }
  return text_check::ok;
}

/// Value of one hexadecimal digit, or -1.
[[nodiscard]] constexpr int hex_value(char c) noexcept
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

inline constexpr char hex_digits[] = "0123456789abcdef";

/// 64 bits from the operating system's random source (std::random_device), one engine per thread.
///
/// A fresh OS read per call, rather than a seeded pseudo-random engine, keeps identifiers unique across fork() and
/// across processes started in the same instant.
[[nodiscard]] inline std::uint64_t random_u64()
{
  thread_local std::random_device device;
  const std::uint64_t high = device();
  const std::uint64_t low = device();
  return (high << 32U) ^ low;
}

/// Mixes 64 bits into a well-spread hash (the splitmix64 finaliser).
[[nodiscard]] constexpr std::uint64_t mix64(std::uint64_t x) noexcept
{
  x ^= x >> 30U;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27U;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31U;
  return x;
}

/// Reached only when a compile-time GUID literal is malformed: calling it makes the constant evaluation fail.
inline void invalid_data_type_literal() noexcept {}

} // namespace detail

/// An application-defined message type: a 128-bit GUID, like the `const GUID* pType` of PeerGraphSendData.
///
/// The 16 bytes are held in RFC 4122 order, which is also the wire order: byte i is the i-th pair of hex digits of
/// the canonical text "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". A Windows `GUID` struct stores Data1, Data2 and Data3
/// little-endian in memory, so never copy one byte for byte: convert through the four-field constructor and
/// data1()..data4(), which give the same text as Windows' StringFromGUID2 (without braces, in lowercase).
///
/// Trivially copyable; ordering follows the bytes, which is the order of the canonical text. The default value is the
/// nil GUID, which peergraph never accepts as the type of data.
class data_type
{
public:
  /// Number of bytes of a GUID.
  static constexpr std::size_t byte_size = 16;
  /// Length of the canonical text without braces.
  static constexpr std::size_t text_size = 36;
  /// The 16 bytes in RFC 4122 (wire) order.
  using bytes_type = std::array<std::byte, byte_size>;

  /// The nil GUID (all zero).
  constexpr data_type() noexcept = default;

  /// From 16 bytes in RFC 4122 (wire) order.
  constexpr explicit data_type(const bytes_type& bytes) noexcept : bytes_(bytes) {}

  /// From the fields of a Windows `GUID` {Data1, Data2, Data3, Data4[8]}, e.g.
  /// `data_type{0x6b29fc40, 0xca47, 0x1067, {0xb3, 0x1d, 0x00, 0xdd, 0x01, 0x06, 0x62, 0xda}}`.
  constexpr data_type(std::uint32_t data1, std::uint16_t data2, std::uint16_t data3,
                      const std::array<std::uint8_t, 8>& data4) noexcept
  {
    for (std::size_t i = 0; i < 4; ++i)
      bytes_[i] = static_cast<std::byte>((data1 >> (8U * (3U - i))) & 0xFFU);
    bytes_[4] = static_cast<std::byte>(data2 >> 8U);
    bytes_[5] = static_cast<std::byte>(data2 & 0xFFU);
    bytes_[6] = static_cast<std::byte>(data3 >> 8U);
    bytes_[7] = static_cast<std::byte>(data3 & 0xFFU);
    for (std::size_t i = 0; i < 8; ++i)
      bytes_[8 + i] = static_cast<std::byte>(data4[i]);
  }

  /// From 16 bytes in RFC 4122 (wire) order, e.g. a view into a received frame.
  [[nodiscard]] static constexpr data_type from_bytes(std::span<const std::byte, byte_size> bytes) noexcept
  {
    data_type result;
    std::copy(bytes.begin(), bytes.end(), result.bytes_.begin()); // one 16-byte move at run time
    return result;
  }

  /// Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" or "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}", hex digits in any case.
  /// Nothing else is accepted: no surrounding spaces, no missing dashes, no other brackets.
  /// @return the GUID (the nil GUID is a valid result), or peer_errc::invalid_argument.
  [[nodiscard]] static expected<data_type, peer_error> parse(std::string_view text) noexcept
  {
    data_type result;
    if (!parse_into(text, result))
      return unexpected(peer_error(peer_errc::invalid_argument));
    return result;
  }

  /// Like parse(), at compile time: malformed text does not compile.
  /// @code
  /// constexpr auto chat_line = peergraph::data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da");
  /// @endcode
  [[nodiscard]] static consteval data_type from_string(std::string_view text)
  {
    data_type result;
    if (!parse_into(text, result))
      detail::invalid_data_type_literal(); // not constexpr: a malformed literal is a compile error
    return result;
  }

  /// A random (version 4, RFC 4122 variant) GUID from the operating system's random source.
  [[nodiscard]] static data_type generate()
  {
    data_type result;
    for (std::size_t half = 0; half < 2; ++half) {
      const std::uint64_t bits = detail::random_u64();
      for (std::size_t i = 0; i < 8; ++i)
        result.bytes_[half * 8 + i] = static_cast<std::byte>((bits >> (8U * i)) & 0xFFU);
    }
    result.bytes_[6] = (result.bytes_[6] & std::byte{0x0F}) | std::byte{0x40}; // version 4
    result.bytes_[8] = (result.bytes_[8] & std::byte{0x3F}) | std::byte{0x80}; // variant 10xx
    return result;
  }

  /// Whether this is the nil GUID (all zero).
  [[nodiscard]] constexpr bool is_nil() const noexcept
  {
    if (!std::is_constant_evaluated()) {
      // Checked on every send_data: two words, not sixteen byte compares.
      std::uint64_t words[2];
      std::memcpy(words, bytes_.data(), byte_size);
      return (words[0] | words[1]) == 0;
    }
    for (const std::byte b : bytes_)
      if (b != std::byte{0})
        return false;
    return true;
  }

  /// The 16 bytes in RFC 4122 (wire) order.
  [[nodiscard]] constexpr const bytes_type& bytes() const noexcept { return bytes_; }

  /// Windows `GUID::Data1`: the first 8 hex digits as a number.
  [[nodiscard]] constexpr std::uint32_t data1() const noexcept
  {
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i)
      value = (value << 8U) | std::to_integer<std::uint32_t>(bytes_[i]);
    return value;
  }

  /// Windows `GUID::Data2`.
  [[nodiscard]] constexpr std::uint16_t data2() const noexcept
  {
    return static_cast<std::uint16_t>((std::to_integer<std::uint32_t>(bytes_[4]) << 8U) |
                                      std::to_integer<std::uint32_t>(bytes_[5]));
  }

  /// Windows `GUID::Data3`.
  [[nodiscard]] constexpr std::uint16_t data3() const noexcept
  {
    return static_cast<std::uint16_t>((std::to_integer<std::uint32_t>(bytes_[6]) << 8U) |
                                      std::to_integer<std::uint32_t>(bytes_[7]));
  }

  /// Windows `GUID::Data4`.
  [[nodiscard]] constexpr std::array<std::uint8_t, 8> data4() const noexcept
  {
    std::array<std::uint8_t, 8> value{};
    for (std::size_t i = 0; i < 8; ++i)
      value[i] = std::to_integer<std::uint8_t>(bytes_[8 + i]);
    return value;
  }

  /// The canonical text (lowercase, no braces) without allocating.
  [[nodiscard]] constexpr std::array<char, text_size> to_chars() const noexcept
  {
    std::array<char, text_size> text{};
    std::size_t out = 0;
    for (std::size_t i = 0; i < byte_size; ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10)
        text[out++] = '-';
      const auto b = std::to_integer<unsigned>(bytes_[i]);
      text[out++] = detail::hex_digits[b >> 4U];
      text[out++] = detail::hex_digits[b & 0x0FU];
    }
    return text;
  }

  /// The canonical text: "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lowercase, no braces.
  [[nodiscard]] std::string to_string() const
  {
    const auto text = to_chars();
    return std::string(text.data(), text.size());
  }

  friend constexpr bool operator==(const data_type&, const data_type&) noexcept = default;
  friend constexpr std::strong_ordering operator<=>(const data_type&, const data_type&) noexcept = default;

  /// Writes the canonical text.
  friend std::ostream& operator<<(std::ostream& os, const data_type& type)
  {
    const auto text = type.to_chars();
    return os << std::string_view(text.data(), text.size());
  }

private:
  static constexpr bool parse_into(std::string_view text, data_type& out) noexcept
  {
    if (text.size() == text_size + 2) {
      if (text.front() != '{' || text.back() != '}')
        return false;
      text = text.substr(1, text_size);
    }
    if (text.size() != text_size)
      return false;
    std::size_t in = 0;
    for (std::size_t i = 0; i < byte_size; ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) {
        if (text[in++] != '-')
          return false;
      }
      const int high = detail::hex_value(text[in++]);
      const int low = detail::hex_value(text[in++]);
      if (high < 0 || low < 0)
        return false;
      out.bytes_[i] = static_cast<std::byte>((high << 4) | low);
    }
    return true;
  }

  bytes_type bytes_{};
};

inline namespace literals {

/// A compile-time data_type: `"6b29fc40-ca47-1067-b31d-00dd010662da"_guid` (braces optional). Malformed text does
/// not compile. Bring it in with `using namespace peergraph::literals;`.
[[nodiscard]] consteval data_type operator""_guid(const char* text, std::size_t size)
{
  return data_type::from_string(std::string_view(text, size));
}

} // namespace literals

/// Tag of peer_id.
struct peer_id_tag
{
};
/// Tag of graph_id.
struct graph_id_tag
{
};

/// A validated string identifier; peer_id and graph_id are its two instances and do not mix.
///
/// The Peer Graphing API limits peer and graph ids to 256 characters. Here a valid id is non-empty, well-formed UTF-8
/// of at most 256 code points, with no control character (C0 including NUL, DEL, C1). Only make() creates a non-empty
/// id; a default-constructed one is empty, stands for "no id", and is never valid where an id is required.
template <class Tag>
class basic_string_id
{
public:
  /// Maximum number of code points.
  static constexpr std::size_t max_length = 256;
  /// Maximum number of UTF-8 bytes that max_length code points can take.
  static constexpr std::size_t max_bytes = max_length * 4;

  /// The empty id ("no id").
  basic_string_id() = default;

  /// Validates `text` and makes an id of it.
  /// @return the id, or peer_errc::invalid_argument if `text` is empty, longer than max_length code points, not
  /// well-formed UTF-8, or holds a control character.
  [[nodiscard]] static expected<basic_string_id, peer_error> make(std::string_view text)
  {
    if (detail::check_text(text, max_length, false) != detail::text_check::ok)
      return unexpected(peer_error(peer_errc::invalid_argument));
    return basic_string_id(std::string(text));
  }

  /// The id's text.
  [[nodiscard]] const std::string& str() const noexcept { return value_; }
  /// The id's text.
  [[nodiscard]] std::string_view view() const noexcept { return value_; }
  /// Whether this is the empty id, which only default construction (or a move) produces.
  [[nodiscard]] bool empty() const noexcept { return value_.empty(); }

  friend bool operator==(const basic_string_id&, const basic_string_id&) = default;
  friend std::strong_ordering operator<=>(const basic_string_id&, const basic_string_id&) = default;
  /// Compares with plain text.
  friend bool operator==(const basic_string_id& id, std::string_view text) noexcept { return id.view() == text; }

  /// Writes the id's text.
  friend std::ostream& operator<<(std::ostream& os, const basic_string_id& id) { return os << id.view(); }

private:
  explicit basic_string_id(std::string value) noexcept : value_(std::move(value)) {}

  std::string value_;
};

/// A peer's identifier within a graph (the `pwzPeerId` of the Peer Graphing API).
using peer_id = basic_string_id<peer_id_tag>;
/// A graph's identifier (the `pwzGraphId` of the Peer Graphing API).
using graph_id = basic_string_id<graph_id_tag>;

/// A connection's 64-bit identifier within one graph (the `ULONGLONG` of PeerGraphConnect); 0 means "none".
/// Trivially copyable. Written in decimal.
class connection_id
{
public:
  /// No connection (0).
  constexpr connection_id() noexcept = default;
  /// From its numeric value.
  constexpr explicit connection_id(std::uint64_t value) noexcept : value_(value) {}

  /// The numeric value.
  [[nodiscard]] constexpr std::uint64_t value() const noexcept { return value_; }
  /// Whether this names a connection (is not 0).
  [[nodiscard]] constexpr explicit operator bool() const noexcept { return value_ != 0; }

  friend constexpr bool operator==(const connection_id&, const connection_id&) noexcept = default;
  friend constexpr std::strong_ordering operator<=>(const connection_id&, const connection_id&) noexcept = default;

  /// Writes the value in decimal.
  friend std::ostream& operator<<(std::ostream& os, const connection_id& id)
  {
    char text[20];
    std::size_t size = 0;
    std::uint64_t v = id.value_;
    do {
      text[sizeof text - ++size] = static_cast<char>('0' + v % 10U);
      v /= 10U;
    } while (v != 0);
    return os << std::string_view(text + sizeof text - size, size);
  }

private:
  std::uint64_t value_ = 0;
};

/// A graph instance's 64-bit identifier, random per instance (the `ullNodeId` of the Peer Graphing API); 0 means
/// "none". Trivially copyable. Written as 16 lowercase hex digits.
class node_id
{
public:
  /// No node (0).
  constexpr node_id() noexcept = default;
  /// From its numeric value.
  constexpr explicit node_id(std::uint64_t value) noexcept : value_(value) {}

  /// A random, nonzero node id from the operating system's random source.
  [[nodiscard]] static node_id generate()
  {
    for (;;) {
      const std::uint64_t value = detail::random_u64();
      if (value != 0)
        return node_id(value);
    }
  }

  /// The numeric value.
  [[nodiscard]] constexpr std::uint64_t value() const noexcept { return value_; }
  /// Whether this names a node (is not 0).
  [[nodiscard]] constexpr explicit operator bool() const noexcept { return value_ != 0; }

  friend constexpr bool operator==(const node_id&, const node_id&) noexcept = default;
  friend constexpr std::strong_ordering operator<=>(const node_id&, const node_id&) noexcept = default;

  /// Writes the value as 16 lowercase hex digits.
  friend std::ostream& operator<<(std::ostream& os, const node_id& id)
  {
    char text[16];
    for (std::size_t i = 0; i < 16; ++i)
      text[i] = detail::hex_digits[(id.value_ >> (4U * (15U - i))) & 0xFU];
    return os << std::string_view(text, sizeof text);
  }

private:
  std::uint64_t value_ = 0;
};

/// The kind of a connection; the values are those of PEER_CONNECTION_FLAGS and of the wire protocol.
enum class connection_kind : std::uint8_t
{
  neighbor = 1, ///< part of the graph (PeerGraphConnect)
  direct = 2,   ///< private point-to-point (PeerGraphOpenDirectConnection)
};

/// "neighbor", "direct", or "unknown" for other values.
[[nodiscard]] constexpr std::string_view to_string(connection_kind kind) noexcept
{
  switch (kind) {
  case connection_kind::neighbor:
    return "neighbor";
  case connection_kind::direct:
    return "direct";
  }
  return "unknown";
}

/// Writes to_string(kind).
inline std::ostream& operator<<(std::ostream& os, connection_kind kind)
{
  return os << to_string(kind);
}

} // namespace peergraph

/// Hash of a data_type, spread over every byte.
template <>
struct std::hash<peergraph::data_type>
{
  [[nodiscard]] std::size_t operator()(const peergraph::data_type& type) const noexcept
  {
    std::uint64_t high = 0;
    std::uint64_t low = 0;
    const auto& bytes = type.bytes();
    for (std::size_t i = 0; i < 8; ++i) {
      high = (high << 8U) | std::to_integer<std::uint64_t>(bytes[i]);
      low = (low << 8U) | std::to_integer<std::uint64_t>(bytes[8 + i]);
    }
    return static_cast<std::size_t>(peergraph::detail::mix64(high ^ peergraph::detail::mix64(low)));
  }
};

/// Hash of a peer_id or graph_id: the hash of its text.
template <class Tag>
struct std::hash<peergraph::basic_string_id<Tag>>
{
  [[nodiscard]] std::size_t operator()(const peergraph::basic_string_id<Tag>& id) const noexcept
  {
    return std::hash<std::string_view>{}(id.view());
  }
};

/// Hash of a connection_id.
template <>
struct std::hash<peergraph::connection_id>
{
  [[nodiscard]] std::size_t operator()(const peergraph::connection_id& id) const noexcept
  {
    return static_cast<std::size_t>(peergraph::detail::mix64(id.value()));
  }
};

/// Hash of a node_id.
template <>
struct std::hash<peergraph::node_id>
{
  [[nodiscard]] std::size_t operator()(const peergraph::node_id& id) const noexcept
  {
    return static_cast<std::size_t>(peergraph::detail::mix64(id.value()));
  }
};
