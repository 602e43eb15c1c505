//
// peergraph/detail/graph/record_export.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The file of PeerGraphExportDatabase and PeerGraphImportDatabase (docs/wire.md, "Export file"): a header naming the
// graph and the peer whose records it holds, then each record or tombstone as its type, its length and its record
// payload, to the end of the file. Reading checks every length against the graph's limits before it allocates, so a
// file from anywhere cannot make a node hold more than one record's bytes at a time.
//
#pragma once

#include <peergraph/detail/graph/record_codec.hpp>
#include <peergraph/detail/graph/record_table.hpp>
#include <peergraph/detail/wire_format.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/record.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

namespace peergraph::detail {

inline constexpr std::array<std::byte, 4> export_magic{std::byte{'P'}, std::byte{'G'}, std::byte{'R'}, std::byte{'X'}};
inline constexpr std::uint16_t export_version = 1;

namespace export_io {
inline bool write(std::ostream& out, std::span<const std::byte> bytes)
{
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

template <class UInt>
bool write_le(std::ostream& out, UInt value)
{
  std::array<std::byte, sizeof(UInt)> bytes{};
  wire::detail::store_le(std::span<std::byte>(bytes), 0, value);
  return write(out, bytes);
}

inline bool read(std::istream& in, std::span<std::byte> bytes)
{
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return static_cast<std::size_t>(in.gcount()) == bytes.size();
}

template <class UInt>
bool read_le(std::istream& in, UInt& value)
{
  std::array<std::byte, sizeof(UInt)> bytes{};
  if (!read(in, bytes))
    return false;
  value = wire::detail::load_le<UInt>(std::span<const std::byte>(bytes), 0);
  return true;
}

template <class Id>
bool write_id(std::ostream& out, const Id& id)
{
  return write_le(out, static_cast<std::uint16_t>(id.view().size())) && write(out, wire::detail::as_bytes(id.view()));
}

template <class Id>
std::optional<Id> read_id(std::istream& in)
{
  std::uint16_t size = 0;
  if (!read_le(in, size) || size > Id::max_bytes)
    return std::nullopt;
  std::string text(size, '\0');
  if (!read(in, std::as_writable_bytes(std::span(text))))
    return std::nullopt;
  auto id = Id::make(text);
  if (!id)
    return std::nullopt;
  return *id;
}
} // namespace export_io

/// Writes the export file of `records` (every record and tombstone of `table`) for `graph` and `peer` to `out`.
/// record_store_failed when the stream fails.
inline expected<void, peer_error> write_record_export(std::ostream& out, const graph_id& graph, const peer_id& peer,
                                                      const record_table& table)
{
  bool ok = export_io::write(out, export_magic) && export_io::write_le(out, export_version) &&
            export_io::write_le(out, std::uint16_t{0}) && export_io::write_id(out, graph) &&
            export_io::write_id(out, peer);
  std::vector<std::byte> payload;
  table.for_each([&](const record& r) {
    payload.clear();
    ok = ok && encode_record_payload(r, payload).has_value() && export_io::write(out, r.type.bytes()) &&
         export_io::write_le(out, static_cast<std::uint32_t>(payload.size())) && export_io::write(out, payload);
  });
  out.flush();
  if (!ok || !out)
    return unexpected(peer_error(peer_errc::record_store_failed));
  return {};
}

/// Reads an export file, one record at a time.
class record_export_reader
{
public:
  /// `max_record_size`: the largest record payload taken (the graph's limit); a longer one makes the file invalid.
  record_export_reader(std::istream& in, std::size_t max_record_size) : in_(in), max_record_size_(max_record_size) {}

  /// Reads the header: invalid_graph when the file is another graph's or another peer's, record_store_failed when
  /// it is no export file.
  expected<void, peer_error> open(const graph_id& graph, const peer_id& peer)
  {
    std::array<std::byte, 4> magic{};
    std::uint16_t version = 0, reserved = 0;
    if (!export_io::read(in_, magic) || magic != export_magic || !export_io::read_le(in_, version) ||
        version != export_version || !export_io::read_le(in_, reserved) || reserved != 0)
      return unexpected(peer_error(peer_errc::record_store_failed));
    auto file_graph = export_io::read_id<graph_id>(in_);
    auto file_peer = export_io::read_id<peer_id>(in_);
    if (!file_graph || !file_peer)
      return unexpected(peer_error(peer_errc::record_store_failed));
    if (*file_graph != graph || *file_peer != peer)
      return unexpected(peer_error(peer_errc::invalid_graph));
    return {};
  }

  /// The next record, none at the end of the file, or record_store_failed for a truncated or malformed one (or one
  /// over the largest record size).
  expected<std::optional<record>, peer_error> next()
  {
    std::array<std::byte, data_type::byte_size> type{};
    in_.read(reinterpret_cast<char*>(type.data()), static_cast<std::streamsize>(type.size()));
    if (in_.gcount() == 0 && in_.eof())
      return std::optional<record>();
    std::uint32_t size = 0;
    if (static_cast<std::size_t>(in_.gcount()) != type.size() || !export_io::read_le(in_, size) ||
        size > max_record_size_)
      return unexpected(peer_error(peer_errc::record_store_failed));
    payload_.resize(size);
    if (!export_io::read(in_, payload_))
      return unexpected(peer_error(peer_errc::record_store_failed));
    auto decoded = decode_record_payload(data_type::from_bytes(type), payload_);
    if (!decoded)
      return unexpected(peer_error(peer_errc::record_store_failed));
    return std::optional<record>(std::move(*decoded));
  }

private:
  std::istream& in_;
  std::size_t max_record_size_;
  std::vector<std::byte> payload_;
};

} // namespace peergraph::detail
