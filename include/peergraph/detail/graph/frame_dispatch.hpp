//
// peergraph/detail/graph/frame_dispatch.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Where the reader hands each complete frame other than data: one handler per frame kind. Data frames are the
// reader's own (their payload streams into the message's buffer as it arrives); every other kind is a whole frame
// handed over here, so a new kind of frame is a new case and a new handler, not a new branch in the reader.
//
#pragma once

#include <peergraph/detail/graph/connection.hpp>
#include <peergraph/detail/graph/writer.hpp>
#include <peergraph/error.hpp>
#include <peergraph/wire.hpp>

#include <memory>
#include <optional>

namespace peergraph::detail {

template <class Context>
class frame_dispatch
{
public:
  using connection_ptr = std::shared_ptr<connection<Context>>;

  explicit frame_dispatch(connection_writer<Context>& writer) noexcept : writer_(writer) {}

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
};

} // namespace peergraph::detail
