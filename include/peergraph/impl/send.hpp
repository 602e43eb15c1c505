//
// peergraph/impl/send.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~
// Template bodies of send.hpp: the initiation object, the operation that waits for writability, and the queue hand-off
// that keeps sends on one socket in order.
//
#pragma once

#include <peergraph/detail/block_pool.hpp>
#include <peergraph/detail/iovec_capture.hpp>
#include <peergraph/detail/pooled_post.hpp>
#include <peergraph/detail/send_order.hpp>
#include <peergraph/detail/socket_ops.hpp>

#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/socket_base.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>

namespace peergraph::detail {

template <class Socket>
struct is_stream_socket : std::false_type
{
};
template <class Protocol, class Executor>
struct is_stream_socket<asio::basic_stream_socket<Protocol, Executor>> : std::true_type
{
};

/// Everything a send needs from its initiation to its completion: the captured descriptors and the progress so far.
struct send_request
{
  send_request() noexcept = default;

  /// Captures `buffers` behind a copy of `prefix`, in place.
  template <class ConstBufferSequence>
  send_request(std::span<const std::byte> prefix, const ConstBufferSequence& buffers_) : buffers(prefix, buffers_)
  {
  }

  iovec_capture buffers;
  std::size_t bytes_sent = 0;
  int os_flags = 0;
  std::error_code refused;           // set at initiation when the request cannot be honoured at all
  bool found_full = false;           // the initiating attempt found the socket full: wait before trying again
  bool withdrawable = true;          // send_order::withdraw may take it back while nothing of it is written
  bool zero_copy_requested = false;  // send_flags::zero_copy, not yet switched on for the socket
  bool zero_copy_active = false;     // the socket accepted SO_ZEROCOPY: every sendmsg carries MSG_ZEROCOPY
  std::uint64_t zero_copy_calls = 0; // successful MSG_ZEROCOPY sendmsg calls, each owed one notification
  zero_copy_notifications notifications;

  /// True while the kernel may still read the caller's pages of a zero-copy send.
  [[nodiscard]] bool awaiting_release() const noexcept { return notifications.released_calls < zero_copy_calls; }
};

/// What an operation reports: the byte count, or for async_send_zero_copy the full zero-copy outcome.
template <class Result>
Result make_send_result(const send_request& request) noexcept
{
  if constexpr (std::is_same_v<Result, zero_copy_result>)
    return zero_copy_result{request.bytes_sent, request.zero_copy_active, request.notifications.kernel_copied};
  else
    return request.bytes_sent;
}

/// Builds the request for `socket` from `buffers` behind a copy of `prefix` (a frame header, or nothing), translating
/// flags and checking what the socket type allows. The descriptors are captured in place: a request is large (eight
/// inline descriptors), so it is built where it is returned rather than moved there.
template <class Socket, class ConstBufferSequence>
send_request make_send_request(std::span<const std::byte> prefix, const ConstBufferSequence& buffers, send_flags flags)
{
  send_request request(prefix, buffers);
  if (has_flags(flags, send_flags::do_not_route))
    request.os_flags |= MSG_DONTROUTE;
  if (has_flags(flags, send_flags::out_of_band))
    request.os_flags |= MSG_OOB;
  if constexpr (is_stream_socket<Socket>::value) {
    if (has_flags(flags, send_flags::partial))
      request.refused = make_error_code(peer_errc::op_not_supported);
  } else {
    // A datagram is one sendmsg: descriptors beyond what one call takes cannot be part of it.
    if (request.buffers.count() > max_iovecs_per_call)
      request.refused = make_error_code(peer_errc::message_size);
    if (has_flags(flags, send_flags::partial))
      request.os_flags |= MSG_MORE;
  }
  request.zero_copy_requested = has_flags(flags, send_flags::zero_copy);
  return request;
}

enum class send_progress
{
  done,              // complete (for send_some: the one attempt took something)
  must_wait,         // the socket is full; wait for writability
  must_wait_release, // every byte is sent, but the kernel still holds the caller's pages (zero-copy)
  failed             // the error is in `ec`
};

/// Writes as much of the request as the kernel takes now. Sending all loops over IOV_MAX-sized calls.
template <bool SendAll, bool Stream>
send_progress perform_send(int fd, send_request& request, std::error_code& ec) noexcept
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
    if (result.error == EAGAIN)
      return send_progress::must_wait;
    if (result.error != 0) {
      ec = std::error_code(send_error_errno(fd, result.error), std::system_category());
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

/// Runs sends that became the head of their socket's queue, one after another, without recursion: a send that
/// finishes at once hands the turn on through this loop instead of a nested call.
inline void start_queued_sends(send_waiter* next) noexcept
{
  thread_local send_waiter** running = nullptr;
  if (running != nullptr) {
    *running = next;
    return;
  }
  send_waiter* slot = next;
  running = &slot;
  while (slot != nullptr)
    std::exchange(slot, nullptr)->start_as_head();
  running = nullptr;
}

/// A send that could not finish at initiation: it waits for its turn and for writability (and, for a zero-copy send,
/// for the kernel to release the caller's pages), then completes.
template <class Socket, bool SendAll, class Result, class Handler>
class send_op final : public send_waiter
{
public:
  using handler_executor = asio::associated_executor_t<Handler, typename Socket::executor_type>;
  using allocator_type = typename std::allocator_traits<
      asio::associated_allocator_t<Handler, pool_allocator<void>>>::template rebind_alloc<send_op>;

  /// Creates the operation and queues it behind earlier sends on the socket.
  static void launch(Socket& socket, int fd, send_request&& request, Handler&& handler)
  {
    allocator_type alloc(asio::get_associated_allocator(handler, pool_allocator<void>()));
    send_op* op = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    std::allocator_traits<allocator_type>::construct(alloc, op, socket, fd, std::move(request), std::move(handler));
    op->withdrawable = op->request_.withdrawable;
    op->install_cancellation();
    if (send_order::instance().enqueue(fd, op)) {
      // A zero-copy send that found the socket full has pages to wait for as well, but bytes to send first.
      if (op->request_.found_full)
        op->wait_writable();
      else if (op->request_.awaiting_release())
        op->wait_release();
      else
        op->attempt(/*may_dispatch=*/false);
    }
  }

  send_op(Socket& socket, int fd, send_request&& request, Handler&& handler)
      : socket_(socket), fd_(fd), request_(std::move(request)), handler_(std::move(handler)),
        work_(asio::prefer(asio::get_associated_executor(handler_, socket.get_executor()),
                           asio::execution::outstanding_work.tracked))
  {
  }

  void start_as_head() noexcept override { attempt(/*may_dispatch=*/true); }

  void abort_waiting() noexcept override
  {
    complete(asio::error::operation_aborted, /*may_dispatch=*/false, /*was_head=*/false);
  }

  void withdraw_head() noexcept override
  {
    // A send that wrote part of its bytes must finish: cutting it short would corrupt the stream behind it.
    if (waiting_for_socket_ && request_.bytes_sent == 0 && !request_.awaiting_release()) {
      cancelled_by_caller_ = true;
      wait_cancel_.emit(asio::cancellation_type::all);
    }
  }

private:
  struct cancellation_handler
  {
    send_op* op;
    void operator()(asio::cancellation_type type) const { op->cancel(type); }
  };

  void install_cancellation()
  {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected())
      slot.template emplace<cancellation_handler>(cancellation_handler{this});
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

  [[nodiscard]] bool socket_still_ours() const noexcept
  {
    return socket_.is_open() && static_cast<int>(socket_.native_handle()) == fd_;
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

  /// Owns the operation while a wait of it is pending. Asio destroys pending handlers without running them when
  /// their executor shuts down; the operation then leaves its socket's queue and is freed, rather than leaking and
  /// holding up every later send on a socket that reuses the descriptor.
  class ownership
  {
  public:
    explicit ownership(send_op* op) noexcept : op_(op) {}
    ownership(ownership&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
    ownership(const ownership&) = delete;
    ownership& operator=(const ownership&) = delete;
    ownership& operator=(ownership&&) = delete;
    ~ownership()
    {
      if (op_ != nullptr)
        op_->abandon();
    }
    send_op* release() noexcept { return std::exchange(op_, nullptr); }

  private:
    send_op* op_;
  };

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
    if (withdrawable || asio::get_associated_cancellation_slot(handler_).is_connected())
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
    if (ec == asio::error::operation_aborted && !cancelled_by_caller_) {
      // socket.cancel() or close(): every send queued behind this one is cancelled too, as Asio cancels all of a
      // socket's outstanding operations.
      for (send_waiter* w = send_order::instance().detach_followers(fd_, this); w != nullptr;) {
        send_waiter* following = w->next_in_queue;
        w->abort_waiting();
        w = following;
      }
    }
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
        // socket.cancel() or close(): this send and every send queued behind it end, as Asio cancels all of a
        // socket's outstanding operations. The socket is not touched: once closed, its owner may have freed it.
        for (send_waiter* w = send_order::instance().detach_followers(fd_, this); w != nullptr;) {
          send_waiter* following = w->next_in_queue;
          w->abort_waiting();
          w = following;
        }
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

  /// The executor shut down with this send (the head of its socket's queue) still waiting: it and everything queued
  /// behind it are freed without completing, as Asio does with the handlers of a destroyed io_context.
  void abandon() noexcept override
  {
    send_waiter* followers = send_order::instance().detach_followers(fd_, this);
    send_order::instance().pop_head(fd_, this);
    while (followers != nullptr)
      std::exchange(followers, followers->next_in_queue)->abandon_queued();
    destroy();
  }

  void abandon_queued() noexcept override { destroy(); }

  /// Frees this operation without running its handler.
  void destroy() noexcept
  {
    asio::get_associated_cancellation_slot(handler_).clear();
    free_self(allocator_type(asio::get_associated_allocator(handler_, pool_allocator<void>())));
  }

  /// Destroys and deallocates this operation with the handler's allocator (taken before the handler moves out).
  void free_self(allocator_type alloc) noexcept
  {
    std::allocator_traits<allocator_type>::destroy(alloc, this);
    std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
  }

  /// Hands the turn to the next send, frees this operation, then delivers the result.
  void complete(std::error_code ec, bool may_dispatch, bool was_head) noexcept
  {
    send_waiter* next = was_head ? send_order::instance().pop_head(fd_, this) : nullptr;
    asio::get_associated_cancellation_slot(handler_).clear();
    auto handler = std::move(handler_);
    auto work = std::move(work_);
    const Result result = make_send_result<Result>(request_);
    const auto alloc = asio::get_associated_allocator(handler, pool_allocator<void>());
    free_self(allocator_type(alloc));

    if (next != nullptr)
      start_queued_sends(next);
    auto completion = [handler = std::move(handler), ec, result]() mutable { std::move(handler)(ec, result); };
    if (may_dispatch)
      dispatch_with(work, alloc, std::move(completion));
    else
      post_with(work, alloc, std::move(completion));
  }

  Socket& socket_;
  int fd_;
  send_request request_;
  Handler handler_;
  std::decay_t<decltype(asio::prefer(std::declval<handler_executor>(), asio::execution::outstanding_work.tracked))>
      work_;
  asio::cancellation_signal wait_cancel_;           // cancels the pending socket wait: writability or the error queue
  static constexpr std::uint8_t release_arming = 1; // wait_release is between queuing a wait and its last read
  static constexpr std::uint8_t release_fired = 2;  // that wait's handler ran meanwhile and left the rest to it
  std::atomic<std::uint8_t> release_wait_{0};
  std::error_code release_wait_error_; // how the last wait for the error queue ended
  bool waiting_for_socket_ = false;
  bool cancelled_by_caller_ = false;
};

/// The initiation object of async_send (SendAll), async_send_some and async_send_zero_copy.
template <class Socket, bool SendAll, class Result>
class initiate_send
{
public:
  using executor_type = typename Socket::executor_type;

  explicit initiate_send(Socket& socket) noexcept : socket_(&socket) {}

  executor_type get_executor() const noexcept { return socket_->get_executor(); }

  /// The synchronous first attempt used by use_expected: true when the send finished (or failed) without waiting,
  /// in which case nothing is posted and the awaiting coroutine goes on at once.
  bool try_immediate(std::error_code& ec, Result& result, send_request& request) const noexcept
  {
    if (request.refused) {
      ec = request.refused;
      return true;
    }
    if (!socket_->is_open()) {
      ec = asio::error::bad_descriptor;
      return true;
    }
    const int fd = static_cast<int>(socket_->native_handle());
    if (!send_order::instance().idle(fd))
      return false;
    switch (perform_send<SendAll, is_stream_socket<Socket>::value>(fd, request, ec)) {
    case send_progress::must_wait:
      request.found_full = true;
      return false;
    case send_progress::must_wait_release:
      return false;
    case send_progress::done:
    case send_progress::failed:
      break;
    }
    result = make_send_result<Result>(request);
    return true;
  }

  template <class Handler>
  void operator()(Handler&& handler, send_request request) const
  {
    static_assert(std::is_invocable_v<Handler&&, std::error_code, Result>,
                  "a send completion handler must be invocable as void(std::error_code, std::size_t), or "
                  "void(std::error_code, zero_copy_result) for async_send_zero_copy");
    using decayed = std::decay_t<Handler>;
    auto ex = asio::get_associated_executor(handler, socket_->get_executor());
    auto post_result = [&](std::error_code ec) {
      const auto alloc = asio::get_associated_allocator(handler, pool_allocator<void>());
      auto complete = [h = decayed(std::forward<Handler>(handler)), ec,
                       result = make_send_result<Result>(request)]() mutable { std::move(h)(ec, result); };
      post_with(ex, alloc, std::move(complete));
    };
    if (request.refused)
      return post_result(request.refused);
    if (!socket_->is_open())
      return post_result(asio::error::bad_descriptor);

    const int fd = static_cast<int>(socket_->native_handle());
    // The first attempt happens here, without allocating, unless use_expected already made it.
    const bool attempted = request.found_full || request.awaiting_release();
    if (!attempted && send_order::instance().idle(fd)) {
      std::error_code ec;
      switch (perform_send<SendAll, is_stream_socket<Socket>::value>(fd, request, ec)) {
      case send_progress::done:
      case send_progress::failed:
        return post_result(ec);
      case send_progress::must_wait:
        request.found_full = true;
        break;
      case send_progress::must_wait_release:
        break;
      }
    }
    send_op<Socket, SendAll, Result, decayed>::launch(*socket_, fd, std::move(request),
                                                      decayed(std::forward<Handler>(handler)));
  }

private:
  Socket* socket_;
};

} // namespace peergraph::detail

namespace peergraph {

template <send_socket Socket, class ConstBufferSequence, class CompletionToken>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value
auto async_send(Socket& socket, const ConstBufferSequence& buffers, send_flags flags, CompletionToken&& token)
{
  return detail::async_initiate_made<CompletionToken, void(std::error_code, std::size_t)>(
      detail::initiate_send<Socket, true, std::size_t>(socket), token,
      [&] { return detail::make_send_request<Socket>({}, buffers, flags); });
}

template <send_socket Socket, class ConstBufferSequence, class CompletionToken>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value &&
           (!std::is_same_v<std::decay_t<CompletionToken>, send_flags>)
auto async_send(Socket& socket, const ConstBufferSequence& buffers, CompletionToken&& token)
{
  return async_send(socket, buffers, send_flags::none, std::forward<CompletionToken>(token));
}

template <send_socket Socket, class ConstBufferSequence, class CompletionToken>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value
auto async_send_some(Socket& socket, const ConstBufferSequence& buffers, send_flags flags, CompletionToken&& token)
{
  return detail::async_initiate_made<CompletionToken, void(std::error_code, std::size_t)>(
      detail::initiate_send<Socket, false, std::size_t>(socket), token,
      [&] { return detail::make_send_request<Socket>({}, buffers, flags); });
}

template <send_socket Socket, class ConstBufferSequence, class CompletionToken>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value &&
           (!std::is_same_v<std::decay_t<CompletionToken>, send_flags>)
auto async_send_some(Socket& socket, const ConstBufferSequence& buffers, CompletionToken&& token)
{
  return async_send_some(socket, buffers, send_flags::none, std::forward<CompletionToken>(token));
}

template <send_socket Socket, class ConstBufferSequence, class CompletionToken>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value
auto async_send_zero_copy(Socket& socket, const ConstBufferSequence& buffers, send_flags flags, CompletionToken&& token)
{
  return detail::async_initiate_made<CompletionToken, void(std::error_code, zero_copy_result)>(
      detail::initiate_send<Socket, true, zero_copy_result>(socket), token,
      [&] { return detail::make_send_request<Socket>({}, buffers, flags | send_flags::zero_copy); });
}

} // namespace peergraph
