//
// peergraph/detail/graph/presence_codec.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The data of a presence record (docs/wire.md, "Presence record"): the node's id, where it listens and its
// attributes. The record around it (creator, expiry, version) is an ordinary record; this is only its data.
//
#pragma once

#include <peergraph/detail/wire_format.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/presence.hpp>

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace peergraph::detail {

/// The first byte of a presence record's data: the layout below.
inline constexpr std::uint8_t presence_format = 1;
/// Fixed part: format, address count, attributes length, node id.
inline constexpr std::size_t presence_fixed_size = 1 + 1 + 2 + 8;
/// An address: family (4 or 6), then 4 bytes and the port, or 16 bytes, the IPv6 scope id and the port.
inline constexpr std::size_t presence_v4_size = 1 + 4 + 2;
inline constexpr std::size_t presence_v6_size = 1 + 16 + 4 + 2;

/// The data of the presence record of `node` (its peer is the record's creator). invalid_argument when it has more
/// than max_presence_addresses addresses or attributes above max_node_attributes_size.
inline expected<std::vector<std::byte>, peer_error> encode_presence(
    node_id node, const std::vector<asio::ip::tcp::endpoint>& addresses, const std::string& attributes)
{
  if (!node || addresses.size() > max_presence_addresses || attributes.size() > max_node_attributes_size)
    return unexpected(peer_error(peer_errc::invalid_argument));
  std::size_t size = presence_fixed_size + attributes.size();
  for (const auto& a : addresses)
    size += a.address().is_v4() ? presence_v4_size : presence_v6_size;
  std::vector<std::byte> out(size);
  const std::span<std::byte> bytes(out);
  std::size_t pos = 0;
  const auto put = [&](auto value) {
    wire::detail::store_le(bytes, pos, value);
    pos += sizeof(value);
  };
  const auto put_bytes = [&](const auto& part) {
    for (const auto b : part)
      bytes[pos++] = static_cast<std::byte>(b);
  };
  put(presence_format);
  put(static_cast<std::uint8_t>(addresses.size()));
  put(static_cast<std::uint16_t>(attributes.size()));
  put(node.value());
  for (const auto& a : addresses) {
    if (a.address().is_v4()) {
      put(std::uint8_t{4});
      put_bytes(a.address().to_v4().to_bytes());
    } else {
      put(std::uint8_t{6});
      put_bytes(a.address().to_v6().to_bytes());
      put(static_cast<std::uint32_t>(a.address().to_v6().scope_id()));
    }
    put(a.port());
  }
  put_bytes(attributes);
  return out;
}

/// The node that presence record data `data` of `creator` describes; protocol_error when it is not one (another
/// format, a length that runs past the end or leaves bytes over, a node id of 0, an unknown address family).
inline expected<node_info, peer_error> decode_presence(const peer_id& creator, std::span<const std::byte> data)
{
  wire::detail::byte_reader reader(data);
  std::uint8_t format = 0;
  std::uint8_t count = 0;
  std::uint16_t attributes_size = 0;
  std::uint64_t node = 0;
  if (!reader.read(format) || !reader.read(count) || !reader.read(attributes_size) || !reader.read(node) ||
      format != presence_format || count > max_presence_addresses || attributes_size > max_node_attributes_size ||
      node == 0)
    return unexpected(peer_error(peer_errc::protocol_error));
  node_info info;
  info.node = node_id(node);
  info.peer = creator;
  info.addresses.reserve(count);
  for (std::uint8_t i = 0; i < count; ++i) {
    std::uint8_t family = 0;
    std::span<const std::byte> raw;
    std::uint32_t scope = 0;
    std::uint16_t port = 0;
    if (!reader.read(family))
      return unexpected(peer_error(peer_errc::protocol_error));
    if (family == 4 && reader.read_bytes(4, raw) && reader.read(port)) {
      asio::ip::address_v4::bytes_type v4{};
      for (std::size_t k = 0; k < v4.size(); ++k)
        v4[k] = std::to_integer<unsigned char>(raw[k]);
      info.addresses.emplace_back(asio::ip::address_v4(v4), port);
    } else if (family == 6 && reader.read_bytes(16, raw) && reader.read(scope) && reader.read(port)) {
      asio::ip::address_v6::bytes_type v6{};
      for (std::size_t k = 0; k < v6.size(); ++k)
        v6[k] = std::to_integer<unsigned char>(raw[k]);
      info.addresses.emplace_back(asio::ip::address_v6(v6, scope), port);
    } else {
      return unexpected(peer_error(peer_errc::protocol_error));
    }
  }
  std::span<const std::byte> text;
  if (!reader.read_bytes(attributes_size, text) || reader.remaining() != 0)
    return unexpected(peer_error(peer_errc::protocol_error));
  info.attributes.assign(reinterpret_cast<const char*>(text.data()), text.size());
  return info;
}

} // namespace peergraph::detail
