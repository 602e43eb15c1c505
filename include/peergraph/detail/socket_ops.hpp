//
// peergraph/detail/socket_ops.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The operating system's side of sockets: the native socket and buffer descriptor types, the send that does not
// wait (sendmsg, never raising SIGPIPE; on Windows a non-overlapped WSASend), the zero-copy notifications, closing a
// socket, and which failed accepts concern only their connection. Windows' waiting send: detail/overlapped_send.hpp.
//
#pragma once

#include <peergraph/config.hpp>

#include <asio/error.hpp>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <system_error>

#if defined(_WIN32)
#include <winsock2.h>
#else
#include <sys/socket.h>
#include <sys/uio.h>
#endif

#if PEERGRAPH_HAS_MSG_ZEROCOPY
#include <linux/errqueue.h>
#include <netinet/in.h>
#endif

namespace peergraph::detail {

#if defined(_WIN32)
/// A socket as the system names it (Asio's native_handle()): a handle on Windows, so wider than int.
using native_socket = ::SOCKET;
/// One buffer descriptor of a gathering send: Winsock's WSABUF (a ULONG length, then the pointer).
using io_buffer = ::WSABUF;
/// The longest buffer one WSABUF describes; a longer one is split over several descriptors.
inline constexpr std::size_t max_io_buffer_size = ULONG_MAX;
/// The most descriptors one WSASend gets. Winsock names no limit; this keeps each call's descriptor array, and a
/// datagram's, the size POSIX allows.
inline constexpr std::size_t max_iovecs_per_call = 1024;
/// The error of a send that found no room and took nothing.
inline constexpr int would_block_error = WSAEWOULDBLOCK;
/// send_flags::partial on a message socket: Winsock's own flag.
inline constexpr int partial_message_flag = MSG_PARTIAL;

inline io_buffer make_io_buffer(const void* data, std::size_t size) noexcept
{
  // WSABUF is a C struct without const; the send path only ever reads through it.
  return io_buffer{static_cast<ULONG>(size), static_cast<char*>(const_cast<void*>(data))};
}
inline const std::byte* io_buffer_data(const io_buffer& buffer) noexcept
{
  return reinterpret_cast<const std::byte*>(buffer.buf);
}
inline std::size_t io_buffer_size(const io_buffer& buffer) noexcept
{
  return buffer.len;
}
inline void advance_io_buffer(io_buffer& buffer, std::size_t bytes) noexcept
{
  buffer.buf += bytes;
  buffer.len -= static_cast<ULONG>(bytes);
}
#else
using native_socket = int;
using io_buffer = ::iovec;
inline constexpr std::size_t max_io_buffer_size = SIZE_MAX;
/// The largest iovec count one sendmsg accepts (POSIX IOV_MAX; 1024 on Linux).
#if defined(IOV_MAX)
inline constexpr std::size_t max_iovecs_per_call = IOV_MAX;
#else
inline constexpr std::size_t max_iovecs_per_call = 16;
#endif
inline constexpr int would_block_error = EAGAIN;
/// send_flags::partial on a message socket: the part waits for the rest of the message (MSG_MORE's "more data
/// follows"), as MSG_PARTIAL's parts do; where MSG_MORE is missing, each part goes out as it is sent.
#if defined(MSG_MORE)
inline constexpr int partial_message_flag = MSG_MORE;
#else
inline constexpr int partial_message_flag = 0;
#endif

inline io_buffer make_io_buffer(const void* data, std::size_t size) noexcept
{
  // iovec is a C struct without const; the send path only ever reads through it.
  return io_buffer{const_cast<void*>(data), size};
}
inline const std::byte* io_buffer_data(const io_buffer& buffer) noexcept
{
  return static_cast<const std::byte*>(buffer.iov_base);
}
inline std::size_t io_buffer_size(const io_buffer& buffer) noexcept
{
  return buffer.iov_len;
}
inline void advance_io_buffer(io_buffer& buffer, std::size_t bytes) noexcept
{
  buffer.iov_base = static_cast<char*>(buffer.iov_base) + bytes;
  buffer.iov_len -= bytes;
}
#endif

#if defined(_WIN32)
/// The largest message the socket's transport sends whole (SO_MAX_MSG_SIZE: 65,507 for UDP over IPv4); SIZE_MAX
/// where it does not say.
inline std::size_t max_message_size(native_socket socket) noexcept
{
  unsigned int size = 0;
  int length = sizeof size;
  if (::getsockopt(socket, SOL_SOCKET, SO_MAX_MSG_SIZE, reinterpret_cast<char*>(&size), &length) != 0 || size == 0)
    return SIZE_MAX;
  return size;
}
#endif

/// The index of a socket among the process's sockets, dense from 0 like a descriptor: a POSIX descriptor as it is, a
/// Windows socket handle divided by four (the system keeps a handle's two low bits clear).
inline std::size_t socket_index(native_socket socket) noexcept
{
#if defined(_WIN32)
  return static_cast<std::size_t>(socket) >> 2;
#else
  return static_cast<std::size_t>(socket);
#endif
}

/// What one non-blocking send achieved.
struct send_some_result
{
  std::size_t bytes = 0; ///< bytes the kernel took
  int error = 0;         ///< system error, 0 on success; would_block_error: nothing taken, wait for writability
};

/// One send of up to max_iovecs_per_call descriptors that does not wait; retried on EINTR.
///
/// On Windows it is a non-overlapped WSASend, which does not wait only on a socket in non-blocking mode: Asio leaves
/// its sockets blocking (their operations are overlapped, and need no such mode), so only a socket its owner has put
/// in non-blocking mode may be given here (the graph does so with its connections; the send path's own operations
/// never call this on Windows: there every send is overlapped, detail/overlapped_send.hpp).
inline send_some_result send_some(native_socket socket, const io_buffer* buffers, std::size_t count, int flags) noexcept
{
#if defined(_WIN32)
  DWORD sent = 0;
  // WSASend never writes through the descriptors; the cast only satisfies the C declaration.
  if (::WSASend(socket, const_cast<io_buffer*>(buffers),
                static_cast<DWORD>(count < max_iovecs_per_call ? count : max_iovecs_per_call), &sent,
                static_cast<DWORD>(flags), nullptr, nullptr) == 0)
    return {sent, 0};
  return {0, ::WSAGetLastError()};
#else
  ::msghdr msg{};
  // sendmsg never writes through msg_iov; the cast only satisfies the C declaration.
  msg.msg_iov = const_cast<::iovec*>(buffers);
  msg.msg_iovlen = count < max_iovecs_per_call ? count : max_iovecs_per_call;
  for (;;) {
    const ::ssize_t n = ::sendmsg(socket, &msg, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0)
      return {static_cast<std::size_t>(n), 0};
    if (errno != EINTR)
      return {0, errno == EWOULDBLOCK ? EAGAIN : errno};
  }
#endif
}

/// The error a failed send reports, from the system's error value. Linux answers EPIPE both on a socket that was
/// never connected and on one whose sending side was shut down; Winsock tells them apart (WSAENOTCONN,
/// WSAESHUTDOWN), and so does this.
inline std::error_code send_error_code([[maybe_unused]] native_socket socket, int error) noexcept
{
#if !defined(_WIN32)
  if (error == EPIPE) {
    ::sockaddr_storage peer{};
    ::socklen_t length = sizeof peer;
    if (::getpeername(socket, reinterpret_cast<::sockaddr*>(&peer), &length) != 0 && errno == ENOTCONN)
      error = ENOTCONN;
  }
#endif
  return std::error_code(error, std::system_category());
}

/// Closes an Asio socket or acceptor; what is pending on it ends with operation_aborted. On Windows what Winsock holds
/// of it is cancelled first: closesocket is to cancel the socket's overlapped operations as well, but Wine leaves
/// them pending (a send or a read that then never completes, holding up whatever waits for it).
template <class Socket>
void close_socket(Socket& socket) noexcept
{
  std::error_code ignored;
#if defined(_WIN32)
  socket.cancel(ignored);
#endif
  socket.close(ignored);
}

/// Whether a failed accept concerns only the connection it was taking, so that the next accept can follow at once:
/// the caller reset or abandoned it before its turn, or the network reported an error pending on it. Any other
/// failure (out of descriptors or memory) would repeat at once, and the accepting loop pauses instead.
inline bool accept_failed_for_that_connection_only(const std::error_code& error) noexcept
{
  if (error == asio::error::connection_aborted || error == asio::error::connection_reset)
    return true;
  const auto is = [&error](int value) { return error == std::error_code(value, asio::error::get_system_category()); };
#if defined(_WIN32)
  // AcceptEx ends with these for a connection reset in the backlog (Wine: ERROR_UNEXP_NET_ERR).
  return is(ERROR_NETNAME_DELETED) || is(ERROR_UNEXP_NET_ERR) || is(ERROR_CONNECTION_ABORTED);
#else
  // accept(2): Linux reports errors already pending on the new connection, to be treated as EAGAIN; for TCP these.
  if (is(ENETDOWN) || is(EPROTO) || is(ENOPROTOOPT) || is(EHOSTUNREACH) || is(EOPNOTSUPP) || is(ENETUNREACH))
    return true;
#if defined(EHOSTDOWN)
  if (is(EHOSTDOWN))
    return true;
#endif
#if defined(ENONET)
  if (is(ENONET))
    return true;
#endif
  return false;
#endif
}

/// Opts the socket in to MSG_ZEROCOPY; false where the kernel or the socket type does not support it.
inline bool enable_zero_copy([[maybe_unused]] native_socket socket) noexcept
{
#if PEERGRAPH_HAS_MSG_ZEROCOPY
  const int one = 1;
  return ::setsockopt(socket, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) == 0;
#else
  return false;
#endif
}

/// The MSG_ZEROCOPY flag, or 0 where the platform has none.
#if PEERGRAPH_HAS_MSG_ZEROCOPY
inline constexpr int zero_copy_send_flag = MSG_ZEROCOPY;
#else
inline constexpr int zero_copy_send_flag = 0;
#endif

/// What the zero-copy notifications read so far said.
struct zero_copy_notifications
{
  std::uint64_t released_calls = 0; ///< zero-copy sendmsg calls whose pages the kernel has released
  bool kernel_copied = false;       ///< the kernel fell back to copying for at least one of them
};

/// Reads every zero-copy notification queued on the socket's error queue without blocking.
///
/// Each notification covers an inclusive range [ee_info, ee_data] of the socket's zero-copy send calls; ranges may be
/// coalesced, so the count of calls they cover is what tells how many sends have been released.
inline void read_zero_copy_notifications([[maybe_unused]] native_socket socket,
                                         [[maybe_unused]] zero_copy_notifications& state) noexcept
{
#if PEERGRAPH_HAS_MSG_ZEROCOPY
  for (int guard = 0; guard < 1024; ++guard) {
    alignas(::cmsghdr) char control[128];
    ::msghdr msg{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    if (::recvmsg(socket, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
      if (errno == EINTR)
        continue;
      return; // EAGAIN: the queue is empty
    }
    for (::cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
      const bool is_recverr = (cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                              (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR);
      if (!is_recverr)
        continue;
      ::sock_extended_err err{};
      std::memcpy(&err, CMSG_DATA(cm), sizeof err);
      if (err.ee_origin != SO_EE_ORIGIN_ZEROCOPY || err.ee_errno != 0)
        continue;
      state.released_calls += static_cast<std::uint64_t>(err.ee_data - err.ee_info) + 1;
      if ((err.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) != 0)
        state.kernel_copied = true;
    }
  }
#endif
}

} // namespace peergraph::detail
