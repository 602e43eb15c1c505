//
// peergraph/detail/graph/writer.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The output path of a graph's connections: small frames staged and flushed once per turn, bytes the node promised
// to a peer (staged frames, pongs, TLS records, close frames) written now or queued behind the socket's ordered send
// queue, the bound on what a connection may hold for a peer that does not read, the goodbye, and what happens when a
// write fails. One connection_writer serves every connection of a graph.
//
#pragma once

#include <peergraph/detail/bound_completion.hpp>
#include <peergraph/detail/graph/connection.hpp>
#include <peergraph/detail/iovec_capture.hpp>
#include <peergraph/detail/pooled_post.hpp>
#include <peergraph/detail/send_order.hpp>
#include <peergraph/detail/socket_ops.hpp>
#include <peergraph/error.hpp>
#include <peergraph/graph_properties.hpp>
#include <peergraph/send.hpp>
#include <peergraph/wire.hpp>

#include <asio/associated_executor.hpp>
#include <asio/bind_executor.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

namespace peergraph::detail {

template <class Context>
class connection_writer
{
public:
  using connection_type = connection<Context>;
  using connection_ptr = std::shared_ptr<connection_type>;
  using socket_type = typename graph_io<Context>::socket_type;

  connection_writer(const Context& context, const graph_properties& properties, engine_lifetime& lifetime,
                    connection_observer<Context>& observer)
      : context_(context), properties_(properties), lifetime_(lifetime), observer_(observer)
  {
  }

  /// What stage_frame did with a frame.
  enum class staging
  {
    staged,   // copied: the send is done
    declined, // too large, or the socket has sends queued: send it the ordinary way
    failed,   // the connection broke while making room (failure_of says why)
  };

  /// Copies a small frame (header and payload) into the staging buffer of `c` when nothing is being sent on it, so
  /// that it goes out with the frames around it. The caller's bytes are free again at once, as after a completed
  /// WSASend.
  staging stage_frame(const connection_ptr& c, iovec_capture& frame)
  {
    if (!c->established() || frame.total_bytes() > staging_threshold())
      return staging::declined;
    if (c->staged + frame.total_bytes() > staging_capacity && !flush_staged(c))
      return staging::failed;
    if (!idle(*c))
      return staging::declined;
    for (std::size_t i = 0; i < frame.count(); ++i)
      c->stage({io_buffer_data(frame.data()[i]), io_buffer_size(frame.data()[i])});
    schedule_flush(c);
    return staging::staged;
  }

  /// Sends a whole frame of the node's own (a record): copied into the staging buffer when small, like a small
  /// send_data; otherwise written after what is staged, now or queued (the ordered send path owns it through
  /// `held`), through the secure channel when there is one. Counted against max_connection_output until the socket
  /// took it. False when a write failed (the connection ended).
  template <class Holder>
  bool send_own_frame(const connection_ptr& c, std::span<const std::byte> frame, Holder held)
  {
    if (!c->established() || !c->socket.is_open())
      return true;
    if (frame.size() <= staging_threshold()) {
      stage_bytes(c, frame);
      return true;
    }
    if (!flush_staged(c))
      return false;
    if (c->session) {
      std::vector<std::byte> ciphertext;
      const std::array<std::span<const std::byte>, 1> plain{frame};
      if (!c->session->encrypt(plain, ciphertext)) {
        write_failed(c, peer_error(peer_errc::protocol_error));
        return false;
      }
      return send_ciphertext(c, std::move(ciphertext));
    }
    return write_promised(c, frame, std::move(held));
  }

  /// Stages bytes of the node's own (a ping or a pong), flushed at the end of the turn.
  void stage_bytes(const connection_ptr& c, std::span<const std::byte> bytes)
  {
    if (c->staged + bytes.size() > staging_capacity && !flush_staged(c))
      return;
    c->stage(bytes);
    schedule_flush(c);
  }

  /// While a reader's turn runs, flushes wait for its end (end_reader_turn): the application's replies to what it
  /// read go out with one write, without a trip through the executor's queue.
  void begin_reader_turn() noexcept { in_reader_turn_ = true; }
  void end_reader_turn() noexcept { in_reader_turn_ = false; }

  /// Writes what the connections staged during the reader's turn.
  void flush_deferred()
  {
    for (const auto& c : deferred_flushes_) {
      c->flush_posted = false;
      flush_staged(c);
    }
    deferred_flushes_.clear(); // keeps its capacity: no allocation per turn
  }

  /// Forgets the deferred flushes (memory ran out in the reader's turn; their connections end or flush later).
  void abandon_deferred() noexcept { deferred_flushes_.clear(); }

  /// Writes the staged frames of `c`: directly when the socket takes them, otherwise through the ordered send path,
  /// which then owns the bytes, so that the staging buffer is free for new frames at once. False when the write
  /// failed: the connection has ended then (write_failed).
  bool flush_staged(const connection_ptr& c)
  {
    if (c->staged == 0 || !c->socket.is_open())
      return true;
    const std::span<const std::byte> staged(c->staging.data(), std::exchange(c->staged, 0));
    if (c->session) {
      std::vector<std::byte> ciphertext;
      const std::array<std::span<const std::byte>, 1> plain{staged};
      const bool encrypted = c->session->encrypt(plain, ciphertext).has_value();
      c->staging.release();
      if (!encrypted) {
        write_failed(c, peer_error(peer_errc::protocol_error));
        return false;
      }
      return send_ciphertext(c, std::move(ciphertext));
    }
    return write_promised(c, staged, std::move(c->staging));
  }

  /// Sends ciphertext of a secure connection: written at once when nothing is queued on the socket, the rest queued
  /// behind what is. Promised like staged frames: a record left out would break the channel for every later one.
  /// False when the write failed (write_failed).
  bool send_ciphertext(const connection_ptr& c, std::vector<std::byte> ciphertext)
  {
    if (ciphertext.empty() || !c->socket.is_open())
      return true;
    const std::span<const std::byte> bytes(ciphertext);
    return write_promised(c, bytes, std::move(ciphertext)); // a moved vector keeps its storage
  }

  /// send_data on a secure connection, tried at once: encrypted and written when nothing is queued on the socket (a
  /// part the kernel does not take waits in the queue, the transport owning it). False when the send has to wait its
  /// turn; nothing was done then. `ec` says how a finished send ended. `c` is a copy: a failed write takes the
  /// connection's table entry away.
  bool try_send_secure(connection_ptr c, iovec_capture& frame, std::error_code& ec)
  {
    ec = {};
    if (!c->socket.is_open() || !idle(*c))
      return false;
    std::vector<std::byte> ciphertext;
    if (auto encrypted = encrypt_frame(*c, frame, ciphertext); !encrypted) {
      ec = to_error_code(encrypted.error());
      return true;
    }
    if (!send_ciphertext(c, std::move(ciphertext)))
      ec = to_error_code(failure_of(c->id));
    return true;
  }

  /// send_data on a secure connection, in its turn: encrypted now (so records keep the order of the sends), and
  /// `handler(ec, bytes)` called once the socket took the ciphertext.
  template <class Handler>
  void send_secure(connection_ptr c, send_request request, Handler&& handler)
  {
    auto ex = asio::get_associated_executor(handler, context_);
    std::vector<std::byte> ciphertext;
    if (auto encrypted = encrypt_frame(*c, request.buffers, ciphertext); !encrypted) {
      asio::post(ex, [h = std::forward<Handler>(handler), ec = to_error_code(encrypted.error())]() mutable {
        std::move(h)(ec, std::size_t{0});
      });
      return;
    }
    const auto bytes = asio::buffer(ciphertext); // a moved vector keeps its storage
    // Not output of the node's own: the application waits for it, which bounds it.
    send_promised(c, bytes,
                  asio::bind_executor(ex, [h = std::forward<Handler>(handler), held = std::move(ciphertext)](
                                              std::error_code ec, std::size_t n) mutable { std::move(h)(ec, n); }),
                  /*counted=*/false);
  }

  /// Whether `c` has room for more of the node's own output that can wait (a synchronisation's records): less than
  /// half of max_connection_output queued. When it has none, the caller sets connection::waiting_output_room and
  /// hears of room through connection_observer::output_room, when queued bytes go out.
  [[nodiscard]] bool has_room(const connection_type& c) const noexcept
  {
    return c.promised < properties_.max_connection_output / 2;
  }

  /// Whether `c` holds as much for its peer as it may: its reader stops, so that it makes no more replies.
  [[nodiscard]] bool output_full(const connection_type& c) const noexcept
  {
    return c.promised + c.staged >= properties_.max_connection_output;
  }

  /// Stops the reader of `c` until its peer takes what is promised (output_taken); a peer that takes too little
  /// for output_stall_timeout loses the connection with limit_exceeded. The stall deadline uses the linger timer,
  /// idle until the connection closes.
  PEERGRAPH_COLD void pause_for_output(const connection_ptr& c)
  {
    c->output_paused = true;
    if (c->established()) // closing: the linger deadline bounds it already
      arm_stall_deadline(c);
  }

  /// Sends a close frame now, behind whatever is staged, when no send is in progress; false when it could not be
  /// sent whole (the caller then closes the socket, which the remote sees as the end of the connection too).
  bool send_close_frame(const connection_ptr& c, peer_errc reason)
  {
    if (c->session)
      return false; // a secure channel's records are sent in the order they were made: see say_goodbye
    if (!flush_staged(c) || !c->socket.is_open() || !idle(*c) || c->staged != 0)
      return false;
    auto frame = wire::encode_close(reason);
    if (!frame)
      return false;
    const send_some_result result = write_now(*c, *frame);
    return result.error == 0 && result.bytes == frame->size();
  }

  /// Tells the remote of a connection that left the graph why, then shuts it down in order: sends of the application
  /// that have not written anything yet complete with operation_aborted at once; what was promised to the peer
  /// (staged frames reported sent, a frame partly written) goes out first, in order, and the close frame behind it.
  /// The reader drains what the remote still sends until it closes its side; close_linger bounds the whole goodbye,
  /// after which the socket is closed whatever is left.
  void say_goodbye(const connection_ptr& c, peer_errc wire_reason)
  {
    std::error_code ignored;
    if (!c->socket.is_open())
      return;
    if (send_close_frame(c, wire_reason)) {
      c->socket.shutdown(asio::socket_base::shutdown_send, ignored);
    } else if (c->socket.is_open()) {
      auto frame = wire::encode_close(wire_reason);
      if (!frame) {
        close_socket(c->socket);
        return;
      }
      if (c->session) {
        // Every queued record goes out (none may be left out), then the close frame and the channel's closing.
        if (!flush_staged(c))
          return;
        std::vector<std::byte> ciphertext;
        const std::array<std::span<const std::byte>, 1> plain{std::span<const std::byte>(*frame)};
        if (!c->session->encrypt(plain, ciphertext)) {
          close_socket(c->socket);
          return;
        }
        c->session->close(ciphertext);
        *frame = std::move(ciphertext);
      } else {
        send_order::instance().withdraw(descriptor(*c));
      }
      const auto bytes = asio::buffer(*frame); // a moved vector keeps its storage
      send_promised(
          c, bytes,
          [weak = std::weak_ptr<connection_type>(c), held = std::move(*frame)](std::error_code ec, std::size_t) {
            if (auto p = weak.lock(); p && !ec) {
              std::error_code e;
              p->socket.shutdown(asio::socket_base::shutdown_send, e);
            }
          });
    } else {
      return; // the close frame's write failed: the connection was dropped
    }
    c->linger.expires_after(properties_.close_linger);
    c->linger.async_wait([weak = std::weak_ptr<connection_type>(c)](const std::error_code& ec) {
      if (auto p = weak.lock(); p && !ec)
        close_socket(p->socket);
    });
  }

  /// A write on `c` failed: its stream is broken (what that write held is lost, and what would follow it could not
  /// arrive in order). The connection ends now and is reported with `reason`, even while the application keeps
  /// sending without yielding; the sends that follow on it fail with the same reason (failure_of). Taken by value:
  /// the caller's reference may be the table entry that goes away here.
  PEERGRAPH_COLD void write_failed(connection_ptr c, peer_error reason)
  {
    // Linux answers a write on a connection its peer reset with EPIPE, the socket no longer connected.
    if (reason == peer_errc::not_connected)
      reason = peer_error(peer_errc::connection_reset, reason.cause());
    if (c->established()) {
      recent_failures_[next_failure_slot_] = {c->id, reason};
      next_failure_slot_ = (next_failure_slot_ + 1) % recent_failures_.size();
    }
    drop(std::move(c), reason);
  }

  /// Ends `c` at once, without a goodbye (its stream is broken, or its peer takes nothing), reported with `reason`
  /// unless it was closing already. Its reader ends when it next runs; sends queued on it complete with
  /// operation_aborted.
  PEERGRAPH_COLD void drop(connection_ptr c, const peer_error& reason)
  {
    if (c->established())
      observer_.connection_ended(c, reason);
    c->state = connection_state::closing;
    c->staged = 0;
    c->staging.release();
    c->keepalive.cancel();
    c->linger.cancel();
    close_socket(c->socket);
    resume(c); // a paused reader sees the socket closed and ends
    // The caller may still be inside a member of `c`: it is freed after the current handler at the earliest.
    post_with(context_, pool_allocator<void>(), [keep = std::move(c)] {});
  }

  /// Why connection `id` ended when a write on it failed not long ago (the last few such connections are
  /// remembered); connection_not_found otherwise.
  [[nodiscard]] peer_error failure_of(connection_id id) const noexcept
  {
    for (const auto& failed : recent_failures_)
      if (failed.id == id && id.value() != 0)
        return failed.reason;
    return peer_error(peer_errc::connection_not_found);
  }

  /// Queues bytes already promised to the peer (staged frames whose send_data succeeded, the close frame): closing
  /// the connection does not withdraw them, only the linger deadline or a broken connection stops them. Unless
  /// `counted` is false (a send the application still waits for), they count against max_connection_output until
  /// the socket has taken them.
  template <class Handler>
  void send_promised(const connection_ptr& c, asio::const_buffer bytes, Handler&& handler, bool counted = true)
  {
    const std::size_t size = counted ? bytes.size() : 0;
    c->promised += size;
    auto request = make_send_request<socket_type>({}, bytes, send_flags::none);
    request.withdrawable = false;
    auto settle = [self = lifetime_.keep_alive(this), weak = std::weak_ptr<connection_type>(c), size,
                   h = std::forward<Handler>(handler)](std::error_code ec, std::size_t n) mutable {
      if (auto conn = weak.lock(); conn && size != 0)
        self->output_taken(conn, size);
      std::move(h)(ec, n);
    };
    initiate_send<socket_type, true, std::size_t>(c->socket)(std::move(settle), std::move(request));
  }

private:
  /// The descriptor the send path keys a socket's ordered queue by.
  static native_socket descriptor(connection_type& c) noexcept { return c.socket.native_handle(); }

  /// Whether nothing is queued on the socket of `c`: a write now keeps the order.
  static bool idle(connection_type& c) noexcept { return send_order::instance().idle(descriptor(c)); }

  /// Frames up to this size (header included) are copied into the staging buffer rather than sent on their own.
  [[nodiscard]] std::size_t staging_threshold() const noexcept
  {
    return properties_.copy_threshold + wire::data_frame_header_size;
  }

  /// One write of `bytes` on the socket of `c`, not waiting.
  static send_some_result write_now(connection_type& c, std::span<const std::byte> bytes) noexcept
  {
    const io_buffer buffer = make_io_buffer(bytes.data(), bytes.size());
    return send_some(descriptor(c), &buffer, 1, 0);
  }

  /// The one way the node's own bytes leave (staged frames, pongs, TLS records): written at once when nothing is
  /// queued on the socket, and what the socket does not take queued behind what is, `held` (what owns the bytes)
  /// kept until then. False when the write failed: the connection has ended then (write_failed).
  template <class Holder>
  bool write_promised(const connection_ptr& c, std::span<const std::byte> bytes, Holder held)
  {
    std::size_t written = 0;
    if (idle(*c)) {
      const send_some_result result = write_now(*c, bytes);
      written = result.bytes;
      if (result.error != 0 && result.error != would_block_error) [[unlikely]]
        return write_failed(c, result.error);
      if (written == bytes.size())
        return true;
    }
    const auto rest = asio::buffer(bytes.data() + written, bytes.size() - written);
    send_promised(c, rest, [held = std::move(held)](std::error_code, std::size_t) {});
    return true;
  }

  /// A write on `c` failed with the system's error `error`: as write_failed; always false, for the caller to return.
  PEERGRAPH_COLD bool write_failed(const connection_ptr& c, int error)
  {
    write_failed(c, peer_error(send_error_code(descriptor(*c), error)));
    return false;
  }

  /// Writes what `c` staged once the current handler is done: at the end of the reader turn when a reader runs,
  /// otherwise in a posted handler.
  void schedule_flush(const connection_ptr& c)
  {
    if (c->flush_posted)
      return;
    c->flush_posted = true;
    if (in_reader_turn_) {
      deferred_flushes_.push_back(c);
      return;
    }
    post_with(context_, pool_allocator<void>(), [self = lifetime_.keep_alive(this), c] {
      c->flush_posted = false;
      try {
        self->flush_staged(c);
      } catch (const std::bad_alloc&) {
        self->drop(c, peer_error(peer_errc::out_of_memory));
      }
    });
  }

  /// Encrypts the buffers of one frame on a secure connection.
  static expected<void, peer_error> encrypt_frame(connection_type& c, iovec_capture& frame,
                                                  std::vector<std::byte>& ciphertext)
  {
    std::vector<std::span<const std::byte>> parts;
    parts.reserve(frame.count());
    for (std::size_t i = 0; i < frame.count(); ++i)
      parts.emplace_back(io_buffer_data(frame.data()[i]), io_buffer_size(frame.data()[i]));
    return c.session->encrypt(parts, ciphertext);
  }

  /// The socket took (or dropped) `bytes` promised on `c`: a reader that waited for its peer to read goes on once
  /// half the bound is free.
  void output_taken(const connection_ptr& c, std::size_t bytes)
  {
    c->promised -= std::min(c->promised, bytes);
    if (c->waiting_output_room && has_room(*c)) {
      c->waiting_output_room = false;
      observer_.output_room(c);
    }
    if (!c->output_paused)
      return;
    if (c->promised + c->staged <= properties_.max_connection_output / 2)
      resume(c);
    else if (c->established())
      arm_stall_deadline(c); // the peer reads, slowly: it gets a new deadline
  }

  /// A paused connection whose peer takes nothing for output_stall_timeout ends with limit_exceeded.
  void arm_stall_deadline(const connection_ptr& c)
  {
    c->linger.expires_after(properties_.output_stall_timeout);
    c->linger.async_wait(
        [self = lifetime_.keep_alive(this), weak = std::weak_ptr<connection_type>(c)](std::error_code ec) {
          auto conn = weak.lock();
          if (ec || !conn || !conn->output_paused || !conn->established())
            return;
          self->drop(conn, peer_error(peer_errc::limit_exceeded));
        });
  }

  /// Lets the paused reader of `c` go on.
  void resume(const connection_ptr& c)
  {
    if (!std::exchange(c->output_paused, false))
      return;
    if (c->established())
      c->linger.cancel(); // the stall deadline; a closing connection's linger deadline stays
    observer_.output_resumed(c);
  }

  Context context_;
  const graph_properties& properties_;
  engine_lifetime& lifetime_;
  connection_observer<Context>& observer_;
  bool in_reader_turn_ = false;
  std::vector<connection_ptr> deferred_flushes_;
  /// The connections that ended because a write failed, most recent last: send_data on them says why.
  struct failed_write
  {
    connection_id id;
    peer_error reason;
  };
  std::array<failed_write, 16> recent_failures_{};
  std::size_t next_failure_slot_ = 0;
};

} // namespace peergraph::detail
