//
// peergraph/detail/send_op_base.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// What a send that waits does on every platform: its allocation with the handler's allocator, its place in the
// socket's ordered queue, the caller's cancellation slot, its completion, and its end when the executor shuts down
// with it still pending. The platform's operation (detail/reactive_send.hpp, detail/overlapped_send.hpp) derives
// from it and does the sending.
//
#pragma once

#include <peergraph/detail/block_pool.hpp>
#include <peergraph/detail/pooled_post.hpp>
#include <peergraph/detail/send_order.hpp>
#include <peergraph/detail/send_request.hpp>
#include <peergraph/detail/socket_ops.hpp>

#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/prefer.hpp>

#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

namespace peergraph::detail {

/// The part of a waiting send that does not depend on how the platform sends. `Derived` provides start_first()
/// (called when launch finds the send at the head of its queue), start_as_head(), withdraw_head() and
/// cancel(asio::cancellation_type).
template <class Derived, class Socket, class Result, class Handler>
class send_op_base : public send_waiter
{
public:
  using handler_executor = asio::associated_executor_t<Handler, typename Socket::executor_type>;
  using allocator_type = typename std::allocator_traits<
      asio::associated_allocator_t<Handler, pool_allocator<void>>>::template rebind_alloc<Derived>;

  /// Creates the operation and queues it behind earlier sends on the socket.
  static void launch(Socket& socket, native_socket fd, send_request&& request, Handler&& handler)
  {
    allocator_type alloc(asio::get_associated_allocator(handler, pool_allocator<void>()));
    Derived* op = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    std::allocator_traits<allocator_type>::construct(alloc, op, socket, fd, std::move(request), std::move(handler));
    op->withdrawable = op->request_.withdrawable;
    op->install_cancellation();
    if (send_order::instance().enqueue(fd, op))
      op->start_first();
  }

  send_op_base(Socket& socket, native_socket fd, send_request&& request, Handler&& handler)
      : socket_(socket), fd_(fd), request_(std::move(request)), handler_(std::move(handler)),
        work_(asio::prefer(asio::get_associated_executor(handler_, socket.get_executor()),
                           asio::execution::outstanding_work.tracked))
  {
  }

  void abort_waiting() noexcept override
  {
    complete(asio::error::operation_aborted, /*may_dispatch=*/false, /*was_head=*/false);
  }

protected:
  ~send_op_base() = default; // freed as the Derived it is (free_self)

  /// Owns the operation while a wait or a system operation of it is pending. Asio destroys pending handlers without
  /// running them when their executor shuts down; the operation then leaves its socket's queue and is freed, rather
  /// than leaking and holding up every later send on a socket that reuses the descriptor.
  class ownership
  {
  public:
    explicit ownership(Derived* op) noexcept : op_(op) {}
    ownership(ownership&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
    ownership(const ownership&) = delete;
    ownership& operator=(const ownership&) = delete;
    ownership& operator=(ownership&&) = delete;
    ~ownership()
    {
      if (op_ != nullptr)
        op_->abandon();
    }
    Derived* release() noexcept { return std::exchange(op_, nullptr); }

  private:
    Derived* op_;
  };

  [[nodiscard]] bool socket_still_ours() const noexcept
  {
    return socket_.is_open() && static_cast<native_socket>(socket_.native_handle()) == fd_;
  }

  /// Ends every send queued behind this one with operation_aborted: socket.cancel() or close() aborted this one, and
  /// Asio cancels all of a socket's outstanding operations.
  void abort_followers() noexcept
  {
    for (send_waiter* w = send_order::instance().detach_followers(fd_, this); w != nullptr;) {
      send_waiter* following = w->next_in_queue;
      w->abort_waiting();
      w = following;
    }
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
  native_socket fd_;
  send_request request_;
  Handler handler_;
  std::decay_t<decltype(asio::prefer(std::declval<handler_executor>(), asio::execution::outstanding_work.tracked))>
      work_;
  bool cancelled_by_caller_ = false; // the caller's slot or a withdrawal ended the pending wait, not the socket

private:
  struct cancellation_handler
  {
    Derived* op;
    void operator()(asio::cancellation_type type) const { op->cancel(type); }
  };

  void install_cancellation()
  {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected())
      slot.template emplace<cancellation_handler>(cancellation_handler{static_cast<Derived*>(this)});
  }

  /// The executor shut down with this send (the head of its socket's queue) still pending: it and everything queued
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
    Derived* self = static_cast<Derived*>(this);
    std::allocator_traits<allocator_type>::destroy(alloc, self);
    std::allocator_traits<allocator_type>::deallocate(alloc, self, 1);
  }
};

} // namespace peergraph::detail
