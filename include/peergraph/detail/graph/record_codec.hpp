//
// peergraph/detail/graph/record_codec.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The payload of a record frame (docs/wire.md, "Record payload"): one version of a record, the record's type being
// the frame header's data type. Decoding checks the structure (lengths, reserved bits, identifiers, attribute types
// and names) and refuses anything else with protocol_error; what the record may hold is the record layer's to judge.
//
#pragma once

#include <peergraph/detail/wire_format.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/record.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace peergraph::detail {

/// Attribute value types on the wire.
enum class wire_attribute_type : std::uint8_t
{
  string = 1,
  integer = 2,
  time = 3,
};

/// Bit 0 of the record flags: the version is a tombstone.
inline constexpr std::uint8_t record_flag_deleted = 0x01;

/// Appends the payload of record `r` (all but its type) to `out`. invalid_record when a part cannot be represented
/// (an attribute name or string longer than the wire allows, more attributes than max_record_attributes).
inline expected<void, peer_error> encode_record_payload(const record& r, std::vector<std::byte>& out)
{
  if (r.attributes.size() > max_record_attributes)
    return unexpected(peer_error(peer_errc::invalid_record));
  for (const record_attribute& a : r.attributes) {
    const auto* text = std::get_if<std::string>(&a.value);
    if (a.name.size() > max_attribute_name_size || (text != nullptr && text->size() > max_attribute_string_size))
      return unexpected(peer_error(peer_errc::invalid_record));
  }
  const std::size_t size = r.size(); // exactly the payload's bytes
  const std::size_t at = out.size();
  out.resize(at + size);
  const std::span<std::byte> bytes(out.data() + at, size);
  std::size_t pos = 0;
  const auto put = [&](auto value) {
    wire::detail::store_le(bytes, pos, value);
    pos += sizeof(value);
  };
  const auto put_bytes = [&](std::span<const std::byte> part) {
    std::copy(part.begin(), part.end(), bytes.begin() + static_cast<std::ptrdiff_t>(pos));
    pos += part.size();
  };
  const auto put_time = [&](record_time t) { put(static_cast<std::uint64_t>(t.time_since_epoch().count())); };
  const auto put_text = [&](std::string_view text) {
    put(static_cast<std::uint16_t>(text.size()));
    put_bytes(wire::detail::as_bytes(text));
  };
  put_bytes(r.id.guid().bytes());
  put(r.version);
  put(static_cast<std::uint8_t>(r.deleted ? record_flag_deleted : 0));
  put(std::uint8_t{0});
  put(std::uint16_t{0});
  put_time(r.created);
  put_time(r.last_modified);
  put_time(r.expires);
  put_text(r.creator.view());
  put_text(r.modified_by.view());
  put(static_cast<std::uint16_t>(r.attributes.size()));
  for (const record_attribute& a : r.attributes) {
    put(static_cast<std::uint8_t>(a.value.index() + 1)); // string, integer, time: the variant's order
    put(static_cast<std::uint8_t>(a.name.size()));
    put_bytes(wire::detail::as_bytes(a.name));
    if (const auto* text = std::get_if<std::string>(&a.value))
      put_text(*text);
    else if (const auto* number = std::get_if<std::int64_t>(&a.value))
      put(static_cast<std::uint64_t>(*number));
    else
      put_time(std::get<record_time>(a.value));
  }
  put(static_cast<std::uint32_t>(r.security_data.size()));
  put_bytes(r.security_data);
  put_bytes(r.data);
  PEERGRAPH_ASSERT(pos == size);
  return {};
}

/// Decodes a record payload of type `type`. protocol_error for anything malformed: too short, reserved bits set, a
/// nil id, a creator or modifier that is not a valid peer id, an unknown attribute type, an attribute name that is
/// not 1 to max_attribute_name_size letters and digits, more than max_record_attributes attributes, lengths that
/// run past the end.
inline expected<record, peer_error> decode_record_payload(const data_type& type, std::span<const std::byte> payload)
{
  const auto malformed = [] { return unexpected(peer_error(peer_errc::protocol_error)); };
  wire::detail::byte_reader in(payload);
  record r;
  r.type = type;
  std::span<const std::byte> part;
  std::uint8_t flags = 0;
  std::uint8_t reserved8 = 0;
  std::uint16_t reserved16 = 0;
  const auto read_time = [&](record_time& t) {
    std::uint64_t ms = 0;
    in.read(ms);
    t = record_time(std::chrono::milliseconds(static_cast<std::int64_t>(ms)));
  };
  const auto read_text = [&](std::size_t max, std::string& text) {
    std::uint16_t size = 0;
    if (in.read(size) && size <= max && in.read_bytes(size, part))
      text.assign(wire::detail::as_text(part));
    else
      in.read_bytes(payload.size() + 1, part); // poisons the reader
  };
  if (!in.read_bytes(data_type::byte_size, part))
    return malformed();
  r.id = record_id(data_type::from_bytes(part.first<data_type::byte_size>()));
  in.read(r.version);
  in.read(flags);
  in.read(reserved8);
  in.read(reserved16);
  read_time(r.created);
  read_time(r.last_modified);
  read_time(r.expires);
  std::string creator;
  std::string modified_by;
  read_text(1024, creator);
  read_text(1024, modified_by);
  std::uint16_t attributes = 0;
  in.read(attributes);
  if (!in.ok() || r.id.is_nil() || (flags & ~record_flag_deleted) != 0 || reserved8 != 0 || reserved16 != 0 ||
      attributes > max_record_attributes)
    return malformed();
  auto creator_id = peer_id::make(creator);
  auto modifier_id = peer_id::make(modified_by);
  if (!creator_id || !modifier_id)
    return malformed();
  r.creator = std::move(*creator_id);
  r.modified_by = std::move(*modifier_id);
  r.deleted = (flags & record_flag_deleted) != 0;
  r.attributes.reserve(attributes);
  for (std::uint16_t i = 0; i < attributes; ++i) {
    std::uint8_t value_type = 0;
    std::uint8_t name_size = 0;
    in.read(value_type);
    in.read(name_size);
    if (!in.read_bytes(name_size, part) || !valid_attribute_name(wire::detail::as_text(part)))
      return malformed();
    record_attribute a{std::string(wire::detail::as_text(part)), std::int64_t{0}};
    switch (static_cast<wire_attribute_type>(value_type)) {
    case wire_attribute_type::string: {
      std::string text;
      read_text(max_attribute_string_size, text);
      a.value = std::move(text);
      break;
    }
    case wire_attribute_type::integer: {
      std::uint64_t number = 0;
      in.read(number);
      a.value = static_cast<std::int64_t>(number);
      break;
    }
    case wire_attribute_type::time: {
      record_time t;
      read_time(t);
      a.value = t;
      break;
    }
    default:
      return malformed();
    }
    if (!in.ok())
      return malformed();
    r.attributes.push_back(std::move(a));
  }
  std::uint32_t security_size = 0;
  if (!in.read(security_size) || !in.read_bytes(security_size, part))
    return malformed();
  r.security_data.assign(part.begin(), part.end());
  in.read_bytes(in.remaining(), part);
  r.data.assign(part.begin(), part.end());
  return r;
}

} // namespace peergraph::detail
