//
// peergraph/detail/reactive_send.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The send path on POSIX systems: a send writes what the socket takes at once (non-blocking sendmsg), and what
// remains waits for writability through Asio's reactor (epoll, or io_uring's poll requests); a zero-copy send then
// waits on the socket's error queue for the kernel to release the caller's pages.
//
#pragma once

#include <peergraph/detail/block_pool.hpp>
#include <peergraph/detail/pooled_post.hpp>
#include <peergraph/detail/send_op_base.hpp>
#include <peergraph/detail/send_order.hpp>
#include <peergraph/detail/send_request.hpp>
#include <peergraph/detail/socket_ops.hpp>

#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/error.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/prefer.hpp>
#include <asio/socket_base.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

namespace peergraph::detail {

/// Writes as much of the request as the kernel takes now. Sending all loops over IOV_MAX-sized calls.
template <bool SendAll, bool Stream>
send_progress perform_send(native_socket fd, send_request& request, std::error_code& ec) noexcept
{
  if (request.zero_copy_requested) {
    request.zero_copy_requested = false;
    request.zero_copy_active = enable_zero_copy(fd);
  }
  // A zero-byte stream send has nothing to do; an empty datagram is still a datagram.
  bool finished = Stream && request.buffers.empty();
  while (!finished) {
    const int flags = request.os_flags | (request.zero_copy_active ? zero_copy_send_flag : 0);
    const send_some_result result = send_some(fd, request.buffers.data(), request.buffers.count(), flags);
    if (result.error == ENOBUFS && request.zero_copy_active) {
      // The kernel could not pin the pages (locked-memory limit): carry on with ordinary copying sends.
      request.zero_copy_active = false;
      continue;
    }
    if (result.error == would_block_error)
      return send_progress::must_wait;
    if (result.error != 0) {
      ec = send_error_code(fd, result.error);
      return send_progress::failed;
    }
    if (request.zero_copy_active)
      ++request.zero_copy_calls;
    request.bytes_sent += result.bytes;
    request.buffers.consume(result.bytes);
    finished = !SendAll || !Stream || request.buffers.empty();
  }
  if (request.awaiting_release()) {
    read_zero_copy_notifications(fd, request.notifications);
    if (request.awaiting_release())
      return send_progress::must_wait_release;
  }
  return send_progress::done;
}

/// A send that could not finish at initiation: it waits for its turn and for writability (and, for a zero-copy send,
/// for the kernel to release the caller's pages), then completes.
template <class Socket, bool SendAll, class Result, class Handler>
class send_op final : public send_op_base<send_op<Socket, SendAll, Result, Handler>, Socket, Result, Handler>
{
  using base = send_op_base<send_op, Socket, Result, Handler>;
  friend base;
  using base::cancelled_by_caller_;
  using base::complete;
  using base::fd_;
  using base::handler_;
  using base::request_;
  using base::socket_;
  using base::socket_still_ours;
  using typename base::ownership;

public:
  using base::base;

  void start_as_head() noexcept override { attempt(/*may_dispatch=*/true); }

  void withdraw_head() noexcept override
  {
    // A send that wrote part of its bytes must finish: cutting it short would corrupt the stream behind it.
    if (waiting_for_socket_ && request_.bytes_sent == 0 && !request_.awaiting_release()) {
      cancelled_by_caller_ = true;
      wait_cancel_.emit(asio::cancellation_type::all);
    }
  }

private:
  /// At the head of the queue from the start: a zero-copy send that found the socket full has pages to wait for as
  /// well, but bytes to send first.
  void start_first()
  {
    if (request_.found_full)
      wait_writable();
    else if (request_.awaiting_release())
      wait_release();
    else
      attempt(/*may_dispatch=*/false);
  }

  void cancel(asio::cancellation_type type)
  {
    if (waiting_for_socket_) {
      cancelled_by_caller_ = true;
      wait_cancel_.emit(type);
    } else if (send_order::instance().remove_waiting(fd_, this)) {
      complete(asio::error::operation_aborted, /*may_dispatch=*/false, /*was_head=*/false);
    }
    // While a zero-copy send waits for its pages, the kernel still reads them: it cannot be cut short.
  }

  void attempt(bool may_dispatch)
  {
    if (!socket_still_ours()) {
      complete(asio::error::operation_aborted, may_dispatch, /*was_head=*/true);
      return;
    }
    std::error_code ec;
    switch (perform_send<SendAll, is_stream_socket<Socket>::value>(fd_, request_, ec)) {
    case send_progress::done:
      complete({}, may_dispatch, /*was_head=*/true);
      return;
    case send_progress::failed:
      complete(ec, may_dispatch, /*was_head=*/true);
      return;
    case send_progress::must_wait:
      wait_writable();
      return;
    case send_progress::must_wait_release:
      wait_release();
      return;
    }
  }

  void wait_writable()
  {
    waiting_for_socket_ = true;
    auto on_writable = [owner = ownership(this)](const std::error_code& ec) mutable {
      send_op* op = owner.release();
      op->waiting_for_socket_ = false;
      op->on_writable(ec);
    };
    auto waiting =
        with_allocator(asio::get_associated_allocator(handler_, pool_allocator<void>()), std::move(on_writable));
    // Only a wait that can be cancelled gets a slot: each wait with one takes memory for the slot's handler from
    // Asio's two recycled blocks per thread, and from the heap when they are taken.
    if (this->withdrawable || asio::get_associated_cancellation_slot(handler_).is_connected())
      socket_.async_wait(asio::socket_base::wait_write,
                         asio::bind_cancellation_slot(wait_cancel_.slot(), std::move(waiting)));
    else
      socket_.async_wait(asio::socket_base::wait_write, std::move(waiting));
  }

  void on_writable(const std::error_code& ec)
  {
    if (!ec) {
      attempt(/*may_dispatch=*/true);
      return;
    }
    if (ec == asio::error::operation_aborted && !cancelled_by_caller_)
      this->abort_followers(); // socket.cancel() or close()
    complete(ec, /*may_dispatch=*/true, /*was_head=*/true);
  }

  /// Waits for the kernel to release the caller's pages. Each release notification lands on the socket's error
  /// queue, which the kernel signals as an error condition on the socket (EPOLLERR; a poll request's POLLERR under
  /// io_uring): a wait_error wait completes on it, and nothing polls. The wait is queued first and the error queue
  /// read once more after, so that a notification landing after the previous read is either found by this read or
  /// completes the queued wait, even where readiness is reported only as it changes (epoll's edge-triggered mode).
  /// When this read finds the last notification, the wait is cancelled through the operation's own slot
  /// (socket.cancel() would cancel the socket's reads too) and its handler, which runs either way, completes the send.
  /// The slot's handler takes one of Asio's recycled blocks per send that waits, reused by its later waits.
  void wait_release()
  {
    do {
      release_wait_.store(release_arming, std::memory_order_relaxed);
      auto on_error_queue = [owner = ownership(this)](const std::error_code& ec) mutable {
        send_op* op = owner.release();
        op->release_wait_error_ = ec;
        // The thread that queued this wait may still be reading the error queue (on a multi-threaded executor): it
        // then goes on from here itself.
        if ((op->release_wait_.fetch_or(release_fired, std::memory_order_acq_rel) & release_arming) != 0)
          return;
        if (op->release_wait_ended())
          op->wait_release();
      };
      socket_.async_wait(
          asio::socket_base::wait_error,
          asio::bind_cancellation_slot(wait_cancel_.slot(),
                                       with_allocator(asio::get_associated_allocator(handler_, pool_allocator<void>()),
                                                      std::move(on_error_queue))));
      read_zero_copy_notifications(fd_, request_.notifications);
      if (!request_.awaiting_release())
        wait_cancel_.emit(asio::cancellation_type::all);
      if ((release_wait_.exchange(0, std::memory_order_acq_rel) & release_fired) == 0)
        return; // the wait's handler goes on
    } while (release_wait_ended());
  }

  /// A release wait ended (release_wait_error_ says how): completes the send when every notification has come, or
  /// when the wait was aborted by socket.cancel() or close(); true when it must wait again.
  bool release_wait_ended()
  {
    if (request_.awaiting_release()) {
      if (release_wait_error_ == asio::error::operation_aborted) {
        // socket.cancel() or close(): this send and every send queued behind it end. The socket is not touched:
        // once closed, its owner may have freed it.
        this->abort_followers();
        complete(asio::error::operation_aborted, /*may_dispatch=*/true, /*was_head=*/true);
        return false;
      }
      if (!socket_still_ours()) {
        complete(asio::error::operation_aborted, /*may_dispatch=*/true, /*was_head=*/true);
        return false;
      }
      read_zero_copy_notifications(fd_, request_.notifications);
      if (request_.awaiting_release())
        return true; // the error queue held something else, or the socket has an error the reader will see
    }
    complete({}, /*may_dispatch=*/true, /*was_head=*/true);
    return false;
  }

  asio::cancellation_signal wait_cancel_;           // cancels the pending socket wait: writability or the error queue
  static constexpr std::uint8_t release_arming = 1; // wait_release is between queuing a wait and its last read
  static constexpr std::uint8_t release_fired = 2;  // that wait's handler ran meanwhile and left the rest to it
  std::atomic<std::uint8_t> release_wait_{0};
  std::error_code release_wait_error_; // how the last wait for the error queue ended
  bool waiting_for_socket_ = false;
};

} // namespace peergraph::detail
