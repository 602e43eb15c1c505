//
// peergraph/detail/graph/frame_dispatch.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Where the reader hands each complete frame other than data: one handler per frame kind. Data frames are the
// reader's own (their payload streams into the message's buffer as it arrives, and becomes an event); record frames
// and sync frames stream the same way and are handed over whole to the record layer; every other kind is a small frame
// handled here. A new kind of frame is a new case and a new handler, not a new branch in the reader.
//
#pragma once

#include <peergraph/detail/graph/connection.hpp>
#include <peergraph/detail/graph/writer.hpp>
#include <peergraph/error.hpp>
#include <peergraph/wire.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <span>

namespace peergraph::detail {

/// Who takes complete record and sync frames (the record layer).
template <class Context>
class record_frame_handler
{
public:
  /// A complete record frame of record type `type` arrived on neighbor connection `from`. The reason the
  /// connection ends, if it does.
  virtual std::optional<peer_error> on_record_frame(const std::shared_ptr<connection<Context>>& from,
                                                    const data_type& type, std::span<const std::byte> payload) = 0;

  /// A complete sync frame arrived on neighbor connection `from`. The reason the connection ends, if it does.
  virtual std::optional<peer_error> on_sync_frame(const std::shared_ptr<connection<Context>>& from,
                                                  std::span<const std::byte> payload) = 0;

protected:
  ~record_frame_handler() = default;
};

template <class Context>
class frame_dispatch
{
public:
  using connection_ptr = std::shared_ptr<connection<Context>>;

  frame_dispatch(connection_writer<Context>& writer, record_frame_handler<Context>& records) noexcept
      : writer_(writer), records_(records)
  {
  }

  /// A complete record or sync frame (`kind`): to the record layer. Both travel between neighbors only.
  std::optional<peer_error> records(const connection_ptr& from, wire::frame_kind kind, const data_type& type,
                                    std::span<const std::byte> payload)
  {
    if (from->kind != connection_kind::neighbor)
      return peer_error(peer_errc::protocol_error);
    if (kind == wire::frame_kind::sync)
      return records_.on_sync_frame(from, payload);
    return records_.on_record_frame(from, type, payload);
  }

  /// Hands `frame`, complete and not a data frame, to its handler. The reason the connection ends, if it does.
  std::optional<peer_error> operator()(const connection_ptr& c, const wire::decode_result& frame,
                                       const wire::frame_decoder& decoder)
  {
    switch (frame.event) {
    case wire::decode_event::ping:
      return on_ping(c, frame.token);
    case wire::decode_event::pong:
      return std::nullopt; // what keepalive asked for: something arrived (connection::heard)
    case wire::decode_event::close:
      return peer_error(decoder.reason().code);
    default:
      return peer_error(peer_errc::protocol_error); // a handshake frame after the handshake
    }
  }

private:
  /// A keepalive request: the pong goes out with the connection's next flush.
  std::optional<peer_error> on_ping(const connection_ptr& c, std::uint64_t token)
  {
    writer_.stage_bytes(c, wire::encode_pong(token));
    return std::nullopt;
  }

  connection_writer<Context>& writer_;
  record_frame_handler<Context>& records_;
};

} // namespace peergraph::detail
