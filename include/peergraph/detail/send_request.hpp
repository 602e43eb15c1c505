//
// peergraph/detail/send_request.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// What a send carries from its initiation to its completion, on every platform: the captured descriptors, the flags
// in the system's terms, the progress so far; and the loop that starts the sends queued behind a finished one.
//
#pragma once

#include <peergraph/detail/iovec_capture.hpp>
#include <peergraph/detail/send_order.hpp>
#include <peergraph/detail/socket_ops.hpp>
#include <peergraph/error.hpp>
#include <peergraph/send.hpp>

#include <asio/basic_stream_socket.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <type_traits>
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
  bool found_full = false;           // the initiating attempt found the socket full (Windows: always, see
                                     // overlapped_send.hpp): wait before trying again
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
      request.os_flags |= partial_message_flag;
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

} // namespace peergraph::detail
