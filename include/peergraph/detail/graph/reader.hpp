//
// peergraph/detail/graph/reader.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The reading side of a graph's connections, driven by completion handlers: a connection at rest waits with one
// small read; a reader turn reads what the socket has, decodes it, streams data payloads into their messages (sized as
// their bytes arrive, charged against the node's payload budget), queues the complete messages as events and hands
// every other frame to the frame dispatch. It waits for room in the event queue (TCP backpressure), for the peer to
// take what the connection holds for it, or for the next bytes. A connection's reader ends through the observer.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/detail/block_pool.hpp>
#include <peergraph/detail/event_queue.hpp>
#include <peergraph/detail/graph/connection.hpp>
#include <peergraph/detail/graph/frame_dispatch.hpp>
#include <peergraph/detail/graph/writer.hpp>
#include <peergraph/detail/pooled_post.hpp>
#include <peergraph/detail/socket_ops.hpp>
#include <peergraph/error.hpp>
#include <peergraph/event.hpp>
#include <peergraph/wire.hpp>

#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/read.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

namespace peergraph::detail {

template <class Context>
class connection_reader
{
public:
  using connection_type = connection<Context>;
  using connection_ptr = std::shared_ptr<connection_type>;

  connection_reader(const Context& context, std::uint64_t max_frame_size, engine_lifetime& lifetime,
                    event_queue<Context>& events, const event_filter& filter, connection_writer<Context>& writer,
                    connection_observer<Context>& observer, record_frame_handler<Context>& records)
      : context_(context), max_frame_size_(max_frame_size), lifetime_(lifetime), events_(events), filter_(filter),
        writer_(writer), observer_(observer), dispatch_(writer, records)
  {
  }

  /// Starts the reader of a new connection, after `rest[begin, end)`: the bytes the handshake read beyond its last
  /// message, which `decoder` (now past the handshake) takes first.
  void start(const connection_ptr& c, wire::frame_decoder&& decoder, std::vector<std::byte>&& rest, std::size_t begin,
             std::size_t end)
  {
    std::error_code ignored;
    c->socket.non_blocking(true, ignored);
    if (begin == end && at_rest(decoder))
      return wait_readable(c);
    c->reader = std::make_unique<read_state>(std::move(decoder));
    c->reader->handshake_rest = std::move(rest);
    c->reader->input = std::span<const std::byte>(c->reader->handshake_rest).subspan(begin, end - begin);
    continue_later(c);
  }

  /// Lets the reader of `c` go on in a handler of its own (it was paused for output).
  void continue_later(const connection_ptr& c)
  {
    post_with(context_, pool_allocator<void>(), [self = lifetime_.keep_alive(this), c] { self->continue_reading(c); });
  }

private:
  /// What a reader waits for when it has done what it can.
  enum class read_wait
  {
    readable, // the socket is empty
    space,    // a complete message waits for room in the event queue
    payload,  // the rest of a large payload, read straight into the message
    turn,     // nothing: it yields to the other handlers of the context, having read a lot at once
    output,   // the peer to take what the connection holds for it (max_connection_output)
    done,     // the connection ended
  };

  /// Reads of 64 KiB one reader turn makes at most before it lets the other handlers of the context run.
  static constexpr int reads_per_turn = 16;
  /// Readers at rest a graph keeps for its connections (each about 730 bytes).
  static constexpr std::size_t max_spare_readers = 8;
  /// How much a message's buffer may take ahead of its bytes: all a frame header can make the node allocate.
  static constexpr std::size_t payload_growth_step = 64 * 1024;
  /// How many times the bytes that arrived a message's buffer may be sized to.
  static constexpr std::size_t payload_growth_factor = 16;

  /// Whether a decoder is where every established connection starts: between frames, in the data phase. A reader at
  /// rest is interchangeable with a new one, so connections share them (spare_readers_).
  static bool at_rest(const wire::frame_decoder& decoder) noexcept
  {
    return decoder.phase() == wire::decoder_phase::established && decoder.at_frame_boundary();
  }

  /// The reader of `c`, taken from the spare ones when it has none.
  read_state& reader_of(connection_type& c)
  {
    if (!c.reader) {
      if (!spare_readers_.empty()) {
        c.reader = std::move(spare_readers_.back());
        spare_readers_.pop_back();
      } else {
        c.reader = std::make_unique<read_state>(wire::frame_decoder(max_frame_size_, wire::decoder_phase::established));
      }
    }
    return *c.reader;
  }

  /// Gives the reader of `c` back when it holds nothing: an idle connection keeps no reader. The graph keeps it as a
  /// spare once its connections carried application data (whose next burst would allocate one again); a graph whose
  /// connections only synchronised their records keeps none, so that an idle graph holds no reader.
  void park_reader(connection_type& c)
  {
    read_state* r = c.reader.get();
    if (r == nullptr || !r->input.empty() || r->current || r->buffer || r->plaintext.capacity() != 0 ||
        r->handshake_rest.capacity() != 0 || !at_rest(r->decoder))
      return;
    if (carried_data_ && spare_readers_.size() < max_spare_readers)
      spare_readers_.push_back(std::move(c.reader));
    c.reader.reset();
  }

  static void release_read_buffers(read_state& r) noexcept
  {
    r.buffer.release(); // drained: give the buffer back until data flows again
    if (r.plaintext.capacity() != 0)
      r.plaintext = std::vector<std::byte>();
  }

  /// Why a connection ended, from the read error: a clean end between frames is connection_closed; an end in the
  /// middle of a frame is connection_reset (the peer vanished mid-frame, e.g. its process was killed: its data was
  /// well formed, only cut off).
  static peer_error end_of_stream_reason(const std::error_code& ec, const wire::frame_decoder& decoder)
  {
    if (ec == asio::error::eof)
      return peer_error(decoder.at_frame_boundary() ? peer_errc::connection_closed : peer_errc::connection_reset, ec);
    return peer_error(ec);
  }

  /// Why a connection ended, from a read error and its reader's position in the stream.
  static peer_error end_of_stream_reason(const std::error_code& ec, const connection_type& c)
  {
    if (!c.reader) // at rest between frames: an end of the stream is a clean end
      return ec == asio::error::eof ? peer_error(peer_errc::connection_closed) : peer_error(ec);
    return end_of_stream_reason(ec, c.reader->decoder);
  }

  /// Waits for the next bytes of a connection at rest by reading them into its arrival buffer. A read rather than
  /// a readiness wait: Asio queues a read behind at most one attempt (a recv that says it would block), where a
  /// readiness wait re-arms the descriptor (epoll_ctl) every time, and a small message that arrives is then read and
  /// decoded in one go.
  void wait_readable(connection_ptr c)
  {
    auto& socket = c->socket;
    const asio::mutable_buffer into = asio::buffer(c->arrival); // before `c` moves into the handler
    auto on_arrival = [self = lifetime_.keep_alive(this), c = std::move(c)](const std::error_code& ec,
                                                                            std::size_t n) mutable {
      if (ec)
        return self->finish(c, end_of_stream_reason(ec, *c));
      try {
        self->reader_of(*c).arrived = n;
      } catch (const std::bad_alloc&) {
        return self->finish(c, peer_error(peer_errc::out_of_memory));
      }
      self->continue_reading(std::move(c));
    };
    socket.async_read_some(into, with_allocator(pool_allocator<void>(), std::move(on_arrival)));
  }

  /// One reader turn: reads and decodes what the socket has, queues the messages, then wakes the application's
  /// waiting next_event once for all of them (inline: it runs before this returns) and writes what the application
  /// and the reader staged meanwhile (pongs, replies) in one go. Then it waits for what it needs next. Waiting for
  /// room in the event queue stops the reading, which is how a slow consumer slows the remote senders down.
  void continue_reading(connection_ptr c)
  {
    std::optional<peer_error> reason;
    read_wait wait = read_wait::done;
    writer_.begin_reader_turn();
    for (int round = 0; round < 4; ++round) {
      try {
        wait = read_available(c, reason);
      } catch (const std::bad_alloc&) {
        // Out of memory for this connection's buffers: it ends, the node and its other connections go on.
        if (c->established())
          writer_.send_close_frame(c, peer_errc::out_of_memory);
        reason = peer_error(peer_errc::out_of_memory);
        wait = read_wait::done;
      }
      if (wait == read_wait::done)
        finish(c, reason); // before the application runs: it sees the connection gone, not half closed
      events_.wake_consumers(/*inline_allowed=*/true);
      // A consumer on this thread took what was queued: the message waiting for room fits now.
      if (wait != read_wait::space || events_.closed() || events_.full())
        break;
    }
    writer_.end_reader_turn();
    try {
      writer_.flush_deferred();
      switch (wait) {
      case read_wait::readable:
        park_reader(*c);
        return wait_readable(std::move(c));
      case read_wait::space: {
        const std::uint64_t budget_needed = c->reader ? c->reader->budget_needed : 0;
        return events_.async_wait_space(
            [self = lifetime_.keep_alive(this), c = std::move(c)](const std::error_code& ec) mutable {
              if (ec)
                self->finish(c, std::nullopt); // the graph closed
              else
                self->continue_reading(std::move(c));
            },
            budget_needed);
      }
      case read_wait::output:
        if (!writer_.output_full(*c)) // the flush at the end of the turn made room
          return continue_later(c);
        if (c->reader)
          release_read_buffers(*c->reader);
        return writer_.pause_for_output(c);
      case read_wait::payload:
        return read_payload_directly(std::move(c));
      case read_wait::turn:
        return continue_later(c);
      case read_wait::done:
        return;
      }
    } catch (const std::bad_alloc&) {
      // No memory to wait with: the connection ends. When `c` had moved into a handler that could not be made, the
      // connection has no reader any more and goes with the keepalive.
      writer_.abandon_deferred();
      if (c && wait != read_wait::done)
        finish(c, peer_error(peer_errc::out_of_memory));
    }
  }

  /// Decodes the bytes at hand and reads more while the socket has them, queueing complete messages without waking
  /// anyone. Reads stop at the first read that leaves the socket empty (one that returns less than the buffer), so a
  /// drained socket is not asked again only to say it would block.
  read_wait read_available(const connection_ptr& owner, std::optional<peer_error>& reason)
  {
    connection_type& c = *owner;
    read_state& r = reader_of(c);
    if (r.event_ready)
      if (const auto wait = deliver_ready(owner, reason))
        return *wait;
    int reads = 0;
    for (;;) {
      if (r.input.empty()) {
        if (const auto wait = take_input(owner, r, reads, reason))
          return *wait;
        if (r.input.empty())
          continue; // a record may hold no application data yet
      }
      // Payload bytes are next: the message's buffer must hold them before the decoder hands them over.
      if (r.current && r.deliver_current && r.filled < r.length) {
        const std::size_t at_hand = std::min(r.input.size(), r.length - r.filled);
        if (const auto wait = make_room(owner, r.filled + at_hand, reason))
          return *wait;
      }
      auto decoded = r.decoder.decode(r.input);
      if (!decoded) {
        reason = decoded.error();
        if (c.established()) // a closing connection has sent its close frame already
          writer_.send_close_frame(owner, decoded.error().code());
        return read_wait::done;
      }
      r.input = r.input.subspan(decoded->consumed);
      bool frame_done = false;
      switch (decoded->event) {
      case wire::decode_event::need_more:
        break;
      case wire::decode_event::data_header:
        if (decoded->kind != wire::frame_kind::data && c.kind != connection_kind::neighbor) {
          reason = peer_error(peer_errc::protocol_error); // records and their sync travel between neighbors only
          if (c.established())
            writer_.send_close_frame(owner, peer_errc::protocol_error);
          return read_wait::done;
        }
        // The buffer is not sized from the header: it grows as the bytes arrive (make_room). A record or sync
        // frame's payload streams the same way and goes to the frame dispatch once complete.
        r.kind = decoded->kind;
        carried_data_ = carried_data_ || r.kind == wire::frame_kind::data;
        r.deliver_current =
            c.established() && (r.kind != wire::frame_kind::data || filter_.accepts_data(decoded->type));
        r.current.emplace(incoming_data{c.id, decoded->type, payload()});
        r.length = static_cast<std::size_t>(decoded->length);
        r.filled = 0;
        frame_done = decoded->frame_complete;
        if (!frame_done && r.input.size() >= r.length) {
          // The whole payload is at hand (the common case for small messages): take it without another decode.
          if (r.deliver_current) {
            if (r.length <= payload_growth_step && events_.try_charge(r.length))
              r.current->payload = charged_payload(r.length);
            else if (const auto wait = make_room(owner, r.length, reason))
              return *wait;
            std::memcpy(r.current->payload.data(), r.input.data(), r.length);
          }
          r.filled = r.length;
          r.input = r.input.subspan(r.length);
          frame_done = r.decoder.advance_payload(r.length).value_or(false);
        }
        break;
      case wire::decode_event::data_payload:
        if (r.deliver_current && r.current) {
          std::memcpy(r.current->payload.data() + r.filled, decoded->payload.data(), decoded->payload.size());
          r.filled += decoded->payload.size();
        }
        frame_done = decoded->frame_complete;
        break;
      default:
        if ((reason = dispatch_(owner, *decoded, r.decoder)))
          return read_wait::done;
        break;
      }
      if (!frame_done && r.current && r.deliver_current && r.input.empty() && !c.session &&
          r.decoder.payload_remaining() >= direct_read_threshold) {
        if (const auto wait = make_room(owner, r.filled + std::min(r.length - r.filled, payload_growth_step), reason))
          return *wait;
        return read_wait::payload;
      }
      if (frame_done && r.current) {
        r.event_ready = true;
        if (const auto wait = deliver_ready(owner, reason))
          return *wait;
      }
    }
  }

  /// Makes the next bytes of the connection the reader's input, when it has used up what it had: what the read at
  /// rest received, or a read of the socket (decrypted on a secure channel: `input` may then stay empty). What the
  /// reader waits for instead, when it cannot go on.
  std::optional<read_wait> take_input(const connection_ptr& owner, read_state& r, int& reads,
                                      std::optional<peer_error>& reason)
  {
    connection_type& c = *owner;
    if (!r.handshake_rest.empty())
      r.handshake_rest = std::vector<std::byte>(); // used up; an idle connection keeps none
    if (r.arrived == 0 && writer_.output_full(c))
      return read_wait::output; // the peer takes nothing: read nothing more that it could make us answer
    if (r.drained || reads == reads_per_turn) {
      if (!std::exchange(r.drained, false))
        return read_wait::turn;
      release_read_buffers(r);
      return read_wait::readable;
    }
    if (r.arrived != 0) { // what the read at rest received (wait_readable)
      r.drained = r.arrived < c.arrival.size();
      r.input = std::span<const std::byte>(c.arrival.data(), std::exchange(r.arrived, 0));
    } else {
      if (!r.buffer)
        r.buffer = pooled_buffer(read_buffer_size);
      std::error_code ec;
      const std::size_t n = c.socket.read_some(asio::buffer(r.buffer.data(), r.buffer.size()), ec);
      ++reads;
      if (ec == asio::error::would_block) {
        release_read_buffers(r);
        return read_wait::readable;
      }
      if (ec) {
        reason = end_of_stream_reason(ec, r.decoder);
        return read_wait::done;
      }
      r.drained = n < r.buffer.size();
      r.input = std::span<const std::byte>(r.buffer.data(), n);
    }
    c.heard = true;
    if (c.session) {
      const std::span<const std::byte> ciphertext = r.input;
      r.input = {};
      r.plaintext.clear();
      auto opened = decrypt(owner, ciphertext, r.plaintext);
      if (!opened) {
        reason = opened.error();
        return read_wait::done;
      }
      if (*opened) {
        reason = end_of_stream_reason(asio::error::eof, r.decoder); // the peer closed the channel
        return read_wait::done;
      }
      r.input = r.plaintext;
    }
    return std::nullopt;
  }

  /// Decrypts bytes read from a secure connection, appending the plaintext; sends what the channel answers.
  /// @return whether the peer closed the channel.
  expected<bool, peer_error> decrypt(const connection_ptr& c, std::span<const std::byte> ciphertext,
                                     std::vector<std::byte>& plaintext)
  {
    std::vector<std::byte> answer;
    auto closed = c->session->decrypt(ciphertext, plaintext, answer);
    if (!writer_.send_ciphertext(c, std::move(answer)))
      return unexpected(writer_.failure_of(c->id));
    return closed;
  }

  /// Queues the complete message of the reader, or hands a complete record or sync frame to the frame dispatch, or
  /// drops what is not delivered. What the reader must do instead of going on: wait for room in the event queue (a
  /// record frame waits too: its change is reported), or end the connection (a refused record). A queued message's
  /// bytes count against the payload budget until the application takes it; a record's until it was handled.
  std::optional<read_wait> deliver_ready(const connection_ptr& owner, std::optional<peer_error>& reason)
  {
    connection_type& c = *owner;
    read_state& r = *c.reader;
    if (r.deliver_current && r.kind != wire::frame_kind::data && c.established()) {
      if (events_.full())
        return read_wait::space;
      const payload& bytes = r.current->payload;
      const std::optional<peer_error> refused =
          dispatch_.records(owner, r.kind, r.current->type, std::span<const std::byte>(bytes.data(), bytes.size()));
      events_.refund(bytes.size());
      r.current.reset();
      r.event_ready = false;
      if (refused) {
        reason = refused;
        if (c.established())
          writer_.send_close_frame(owner, refused->code());
        return read_wait::done;
      }
      return std::nullopt;
    }
    if (r.deliver_current && !c.established())
      events_.refund(r.current->payload.size());
    else if (r.deliver_current && !events_.try_push_quietly(*r.current))
      return read_wait::space;
    r.current.reset();
    r.event_ready = false;
    return std::nullopt;
  }

  /// A payload buffer of `size` bytes, already charged against the budget; the charge goes back if it cannot be had.
  payload charged_payload(std::size_t size)
  {
    try {
      return payload(size);
    } catch (...) {
      events_.refund(size);
      throw;
    }
  }

  /// Makes the buffer of the message being received hold at least `wanted` bytes (never more than its length). It
  /// grows with what has arrived (the bytes at hand and those waiting in the kernel's receive buffer): to about
  /// payload_growth_factor times that (twice as much when that reaches half the message), and at least four times its
  /// size, so that a message of a few MiB is sized once and a larger one copied a few times at most, while a header
  /// alone makes the node allocate at most payload_growth_step bytes. Each step is charged against the node's payload
  /// budget. Nothing when the buffer is large enough; otherwise what the reader must do: wait for the budget
  /// (read_wait::space), or end the connection when memory is out.
  PEERGRAPH_COLD std::optional<read_wait> make_room(const connection_ptr& c, std::size_t wanted,
                                                    std::optional<peer_error>& reason)
  {
    read_state& r = *c->reader;
    payload& buffer = r.current->payload;
    if (wanted <= buffer.size())
      return std::nullopt;
    // What came in for it already, read or waiting in the kernel: bytes, not the promise of a header.
    std::size_t arrived = r.filled + std::min(r.input.size(), r.length - r.filled);
    if (r.length > payload_growth_step && !c->session) {
      std::error_code ignored;
      arrived += c->socket.available(ignored);
    }
    const std::size_t for_arrived =
        arrived >= r.length / payload_growth_factor ? r.length : arrived * payload_growth_factor;
    std::size_t grown = std::max({wanted, for_arrived, 4 * buffer.size(), payload_growth_step});
    if (grown >= r.length / 2)
      grown = r.length; // one step to the end rather than a last copy of nearly all of it
    const std::size_t more = grown - buffer.size();
    if (!events_.try_charge(more)) {
      r.budget_needed = more;
      return read_wait::space;
    }
    r.budget_needed = 0;
    try {
      payload larger(grown);
      if (r.filled != 0)
        std::memcpy(larger.data(), buffer.data(), r.filled);
      buffer = std::move(larger);
    } catch (const std::bad_alloc&) {
      events_.refund(more);
      if (c->established())
        writer_.send_close_frame(c, peer_errc::out_of_memory);
      reason = peer_error(peer_errc::out_of_memory);
      return read_wait::done;
    }
    return std::nullopt;
  }

  /// The rest of a large payload, once the read buffer holds none of it: straight into the message's buffer, in as
  /// few system calls as the kernel allows (Asio's default reads at most 64 KiB per call).
  void read_payload_directly(connection_ptr c)
  {
    read_state& r = *c->reader;
    r.buffer.release();
    // Into the room make_room gave: the whole rest, or up to the buffer's next growth.
    const std::size_t room = r.current->payload.size() - r.filled;
    auto& socket = c->socket;
    const asio::mutable_buffer into = asio::buffer(r.current->payload.data() + r.filled, room);
    auto on_payload = [self = lifetime_.keep_alive(this), c = std::move(c)](const std::error_code& ec,
                                                                            std::size_t n) mutable {
      read_state& state = *c->reader;
      if (ec)
        return self->finish(c, end_of_stream_reason(ec, state.decoder));
      state.filled += n;
      c->heard = true;
      if (state.decoder.advance_payload(n).value_or(false))
        state.event_ready = true;
      self->continue_reading(std::move(c));
    };
    const auto as_much_as_allowed = [](const std::error_code& error, std::size_t) -> std::size_t {
      return error ? 0 : ~std::size_t{0};
    };
    asio::async_read(socket, into, as_much_as_allowed, with_allocator(pool_allocator<void>(), std::move(on_payload)));
  }

  /// The end of a connection's reader: the connection is closed and, unless the graph or the application closed it,
  /// taken out of the graph with `reason` (by the observer).
  void finish(const connection_ptr& c, std::optional<peer_error> reason)
  {
    if (c->reader && c->reader->current)
      events_.refund(c->reader->current->payload.size()); // a message cut off: its bytes are not held any more
    c->reader.reset();
    c->linger.cancel();
    c->keepalive.cancel();
    close_socket(c->socket);
    if (c->established())
      observer_.connection_ended(c, reason.value_or(peer_error(peer_errc::connection_closed)));
  }

  Context context_;
  std::uint64_t max_frame_size_;
  engine_lifetime& lifetime_;
  event_queue<Context>& events_;
  const event_filter& filter_;
  connection_writer<Context>& writer_;
  connection_observer<Context>& observer_;
  frame_dispatch<Context> dispatch_;
  std::vector<std::unique_ptr<read_state>> spare_readers_; // readers at rest, for the next connection with data
  bool carried_data_ = false; // a data frame arrived on a connection of this graph (park_reader)
};

} // namespace peergraph::detail
