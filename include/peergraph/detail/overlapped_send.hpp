//
// peergraph/detail/overlapped_send.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The send path on Windows: every send is an overlapped WSASend of the captured WSABUF array, completed through the
// io_context's I/O completion port (asio::windows::overlapped_ptr). A readiness wait there would go through Asio's
// select-reactor thread; an overlapped send needs no wait at all.
//
// As the LPWSPSend page describes: a call that returns 0 has completed at once, one that fails with WSA_IO_PENDING
// has been started, and in both cases the completion port reports the result (Asio does not skip the port on
// success); any other failure is the send's error, reported without a completion packet. The WSABUF array is
// captured by the call; the bytes belong to the transport until the completion.
//
#pragma once

#include <peergraph/config.hpp>

#if !defined(_WIN32)
#error "peergraph/detail/overlapped_send.hpp is the Windows send path"
#endif
#if !defined(_WIN32_WINNT) || _WIN32_WINNT < 0x0600
#error "peergraph needs Windows Vista or later (_WIN32_WINNT >= 0x0600): a send is cancelled with CancelIoEx"
#endif

#include <peergraph/detail/block_pool.hpp>
#include <peergraph/detail/pooled_post.hpp>
#include <peergraph/detail/send_op_base.hpp>
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
#include <asio/windows/overlapped_ptr.hpp>

#include <algorithm>
#include <memory>
#include <system_error>
#include <utility>

#include <winsock2.h>

namespace peergraph::detail {

/// No send is tried before its operation exists: the overlapped WSASend is the attempt, and its result comes through
/// the completion port like any other. So every send goes on as one that waits. There is no kernel zero-copy to
/// switch on: a zero-copy send is an ordinary one (zero_copy_result says so).
template <bool SendAll, bool Stream>
send_progress perform_send(native_socket, send_request& request, std::error_code&) noexcept
{
  request.zero_copy_requested = false;
  return send_progress::must_wait;
}

/// The Winsock error an overlapped send's completion stands for. The completion port reports the Win32 code of the
/// transport's status (what GetOverlappedResult would), where WSAGetOverlappedResult would give the Winsock one:
/// the send's errors are Winsock's, whichever way they arrive.
inline int winsock_error_of_completion(int error) noexcept
{
  switch (error) {
  case ERROR_NETNAME_DELETED: // the remote reset the connection
    return WSAECONNRESET;
  case ERROR_CONNECTION_ABORTED: // this side aborted it (keepalive, retransmission timeout)
    return WSAECONNABORTED;
  case ERROR_PORT_UNREACHABLE: // an ICMP port unreachable answered an earlier datagram
    return WSAECONNREFUSED;
  case ERROR_NETWORK_UNREACHABLE:
    return WSAENETUNREACH;
  case ERROR_HOST_UNREACHABLE:
    return WSAEHOSTUNREACH;
  case ERROR_SEM_TIMEOUT:
    return WSAETIMEDOUT;
  default:
    return error;
  }
}

/// A send that waits for its turn on the socket, then sends with overlapped WSASend calls (one for async_send_some,
/// as many as it takes for async_send) and completes when the last one does.
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

  void start_as_head() noexcept override { issue(/*may_dispatch=*/true); }

  /// The head of a queue is always a send Winsock has: it is not known how much of it went out, so it is not
  /// cancelled (the stream behind it would be corrupt); it finishes, and the connection's linger deadline bounds that.
  void withdraw_head() noexcept override {}

private:
  void start_first() { issue(/*may_dispatch=*/false); }

  /// A send still waiting its turn ends at once; one that Winsock has is cancelled with CancelIoEx, as Asio cancels
  /// its own overlapped operations, and completes with operation_aborted and the bytes that went out before.
  void cancel(asio::cancellation_type)
  {
    if (in_flight_ != nullptr) {
      cancelled_by_caller_ = true;
      ::CancelIoEx(reinterpret_cast<HANDLE>(fd_), in_flight_);
    } else if (send_order::instance().remove_waiting(fd_, this)) {
      complete(asio::error::operation_aborted, /*may_dispatch=*/false, /*was_head=*/false);
    }
  }

  /// Starts one overlapped WSASend of the descriptors not yet sent (at most max_iovecs_per_call of them).
  void issue(bool may_dispatch)
  {
    if (!socket_still_ours()) {
      complete(asio::error::operation_aborted, may_dispatch, /*was_head=*/true);
      return;
    }
    // A zero-byte stream send has nothing to do; an empty datagram is still a datagram.
    if (is_stream_socket<Socket>::value && request_.buffers.empty()) {
      complete({}, may_dispatch, /*was_head=*/true);
      return;
    }
    // A datagram too large for the transport is refused here, before Winsock: it would fail the call with
    // WSAEMSGSIZE, and Wine then still queues a completion packet for it, which would complete the send twice.
    if (!is_stream_socket<Socket>::value && request_.buffers.total_bytes() > max_message_size(fd_)) {
      complete(std::error_code(WSAEMSGSIZE, std::system_category()), may_dispatch, /*was_head=*/true);
      return;
    }
    auto on_sent = [owner = ownership(this)](std::error_code ec, std::size_t bytes) mutable {
      owner.release()->on_sent(ec, bytes);
    };
    asio::windows::overlapped_ptr overlapped(
        socket_.get_executor(),
        with_allocator(asio::get_associated_allocator(handler_, pool_allocator<void>()), std::move(on_sent)));
    const auto count = static_cast<DWORD>(std::min(request_.buffers.count(), max_iovecs_per_call));
    DWORD sent = 0;
    in_flight_ = overlapped.get();
    const int result = ::WSASend(fd_, request_.buffers.data(), count, &sent, static_cast<DWORD>(request_.os_flags),
                                 in_flight_, nullptr);
    const int error = result == 0 ? 0 : ::WSAGetLastError();
    if (result != 0 && error != WSA_IO_PENDING) {
      // Failed at the call: no completion packet will come; the handler runs through the port all the same.
      in_flight_ = nullptr;
      overlapped.complete(std::error_code(error, std::system_category()), 0);
      return;
    }
    overlapped.release(); // completed at once (0) or started (WSA_IO_PENDING): the port reports it
  }

  void on_sent(std::error_code ec, std::size_t bytes)
  {
    in_flight_ = nullptr;
    request_.bytes_sent += bytes;
    request_.buffers.consume(bytes);
    if (ec) {
      // The socket was closed while Winsock held the send: Windows reports the abort, Wine the closed handle.
      const bool aborted = ec.value() == ERROR_OPERATION_ABORTED || ec.value() == ERROR_INVALID_HANDLE;
      if (aborted && !cancelled_by_caller_)
        this->abort_followers(); // socket.cancel() or close()
      const std::error_code reported = aborted ? std::error_code(asio::error::operation_aborted)
                                               : send_error_code(fd_, winsock_error_of_completion(ec.value()));
      complete(reported, /*may_dispatch=*/true, /*was_head=*/true);
      return;
    }
    // Winsock completes an overlapped stream send whole; the loop is for more descriptors than one call takes.
    if (SendAll && is_stream_socket<Socket>::value && !request_.buffers.empty()) {
      issue(/*may_dispatch=*/true);
      return;
    }
    complete({}, /*may_dispatch=*/true, /*was_head=*/true);
  }

  OVERLAPPED* in_flight_ = nullptr; // the WSASend Winsock has, for CancelIoEx
};

} // namespace peergraph::detail
