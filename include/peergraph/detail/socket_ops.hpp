//
// peergraph/detail/socket_ops.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The system calls of the send path, wrapped so that they never block, never raise SIGPIPE and report errno values.
//
#pragma once

#include <peergraph/config.hpp>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <sys/socket.h>
#include <sys/uio.h>

#if PEERGRAPH_HAS_MSG_ZEROCOPY
#include <linux/errqueue.h>
#include <netinet/in.h>
#endif

namespace peergraph::detail {

/// The largest iovec count one sendmsg accepts (POSIX IOV_MAX; 1024 on Linux).
#if defined(IOV_MAX)
inline constexpr std::size_t max_iovecs_per_call = IOV_MAX;
#else
inline constexpr std::size_t max_iovecs_per_call = 16;
#endif

/// What one non-blocking sendmsg achieved.
struct send_some_result
{
  std::size_t bytes = 0; ///< bytes the kernel took
  int error = 0;         ///< errno, 0 on success; EAGAIN means "nothing taken, wait for writability"
};

/// One non-blocking sendmsg of up to max_iovecs_per_call iovecs; retried on EINTR.
inline send_some_result send_some(int fd, const ::iovec* iov, std::size_t count, int flags) noexcept
{
  ::msghdr msg{};
  // sendmsg never writes through msg_iov; the cast only satisfies the C declaration.
  msg.msg_iov = const_cast<::iovec*>(iov);
  msg.msg_iovlen = count < max_iovecs_per_call ? count : max_iovecs_per_call;
  for (;;) {
    const ::ssize_t n = ::sendmsg(fd, &msg, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0)
      return {static_cast<std::size_t>(n), 0};
    if (errno != EINTR)
      return {0, errno == EWOULDBLOCK ? EAGAIN : errno};
  }
}

/// The errno a failed send reports. Linux answers EPIPE both on a socket that was never connected and on one whose
/// sending side was shut down; Winsock tells them apart (WSAENOTCONN, WSAESHUTDOWN), and so does this.
inline int send_error_errno(int fd, int error) noexcept
{
  if (error != EPIPE)
    return error;
  ::sockaddr_storage peer{};
  ::socklen_t length = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<::sockaddr*>(&peer), &length) != 0 && errno == ENOTCONN)
    return ENOTCONN;
  return EPIPE;
}

/// Opts the socket in to MSG_ZEROCOPY; false where the kernel or the socket type does not support it.
inline bool enable_zero_copy([[maybe_unused]] int fd) noexcept
{
#if PEERGRAPH_HAS_MSG_ZEROCOPY
  const int one = 1;
  return ::setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) == 0;
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
inline void read_zero_copy_notifications([[maybe_unused]] int fd,
                                         [[maybe_unused]] zero_copy_notifications& state) noexcept
{
#if PEERGRAPH_HAS_MSG_ZEROCOPY
  for (int guard = 0; guard < 1024; ++guard) {
    alignas(::cmsghdr) char control[128];
    ::msghdr msg{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    if (::recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
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
