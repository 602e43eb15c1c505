//
// peergraph/impl/send.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~
// Template bodies of send.hpp: the initiation object and the operations. The send that waits (send_op) and the
// first attempt (perform_send) are the platform's: detail/reactive_send.hpp on POSIX, detail/overlapped_send.hpp
// (overlapped WSASend) on Windows.
//
#pragma once

#include <peergraph/detail/block_pool.hpp>
#include <peergraph/detail/pooled_post.hpp>
#include <peergraph/detail/send_order.hpp>
#include <peergraph/detail/send_request.hpp>
#include <peergraph/detail/socket_ops.hpp>
#if defined(_WIN32)
#include <peergraph/detail/overlapped_send.hpp>
#else
#include <peergraph/detail/reactive_send.hpp>
#endif

#include <asio/associated_allocator.hpp>
#include <asio/associated_executor.hpp>
#include <asio/error.hpp>

#include <system_error>
#include <type_traits>
#include <utility>

namespace peergraph::detail {

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
    const native_socket fd = socket_->native_handle();
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

    const native_socket fd = socket_->native_handle();
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
