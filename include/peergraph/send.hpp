//
// peergraph/send.hpp
// ~~~~~~~~~~~~~~~~~~
// Zero-copy scatter-gather sends with Winsock WSASend/WSABUF semantics on any Asio socket.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/detail/socket_ops.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/use_expected.hpp>

#include <asio/async_result.hpp>
#include <asio/basic_stream_socket.hpp>
#include <asio/buffer.hpp>
#include <asio/socket_base.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <type_traits>

namespace peergraph {

/// A send buffer descriptor laid out like Winsock's WSABUF: a length and a pointer to bytes the caller owns.
///
/// An array of them (`std::span<const wsabuf>`) is a buffer sequence for every send operation. As with WSASend, the
/// array itself may be a temporary on the stack: the descriptors are captured when the operation starts. The bytes
/// they point to must stay valid and unmodified until the operation completes.
struct wsabuf
{
  std::uint32_t len = 0;     ///< number of bytes at `buf`
  const char* buf = nullptr; ///< first byte

  /// The same bytes as an Asio buffer, which makes arrays of wsabuf Asio ConstBufferSequences.
  operator asio::const_buffer() const noexcept { return asio::const_buffer(buf, len); }
};

/// Flags of a send, the counterparts of the Winsock send flags. Combine with `|`.
enum class send_flags : unsigned
{
  none = 0,
  /// MSG_DONTROUTE: send to hosts on directly connected networks only, bypassing routing tables.
  do_not_route = 1U << 0,
  /// MSG_OOB: send as out-of-band (urgent) data; op_not_supported where the socket type cannot.
  out_of_band = 1U << 1,
  /// MSG_PARTIAL: the buffers hold only part of a message. Message (datagram) sockets accumulate the parts until a
  /// send without the flag completes the message; stream sockets have no messages and refuse it with
  /// op_not_supported, as Winsock's stream transports do.
  partial = 1U << 2,
  /// Kernel zero-copy (Linux MSG_ZEROCOPY): the kernel sends from the caller's pages instead of copying them, and
  /// the operation completes only when the kernel has released those pages. Worth it for large buffers; the kernel
  /// may still copy (always on loopback). Where unsupported, the send proceeds as a normal send.
  zero_copy = 1U << 3,
};

constexpr send_flags operator|(send_flags a, send_flags b) noexcept
{
  return static_cast<send_flags>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr send_flags operator&(send_flags a, send_flags b) noexcept
{
  return static_cast<send_flags>(static_cast<unsigned>(a) & static_cast<unsigned>(b));
}
/// True when `flags` contains every flag of `test`.
constexpr bool has_flags(send_flags flags, send_flags test) noexcept
{
  return (flags & test) == test && test != send_flags::none;
}

/// Requirements on the sockets the send operations work with: any Asio stream or datagram socket.
template <class Socket>
concept send_socket = requires(Socket& socket) {
  typename Socket::executor_type;
  { socket.native_handle() } -> std::convertible_to<detail::native_socket>;
  { socket.is_open() } -> std::same_as<bool>;
  socket.get_executor();
};

/// The outcome of a zero-copy send (async_send_zero_copy).
struct zero_copy_result
{
  std::size_t bytes_sent = 0; ///< every byte of the buffers, on success
  bool zero_copy = false;     ///< the kernel accepted MSG_ZEROCOPY for this socket; false: it was an ordinary send
  bool kernel_copied = false; ///< the kernel copied the data anyway (always on loopback, and for small sends)
};

/// Sends every byte of every buffer, in order, or fails (WSASend on a blocking socket, without blocking a thread).
///
/// The buffer descriptors are captured when the function is called, so a temporary array of buffers is fine; the
/// bytes belong to the transport until completion and are never copied by the library. Up to IOV_MAX buffers go into
/// each sendmsg, and longer sequences continue in further calls, in order. Zero-length buffers are skipped. Sends
/// started on one socket go out in the order they were started, never interleaved, each completing with its own
/// count. When the kernel takes everything at once, an awaiting coroutine continues without suspending.
///
/// On a datagram socket the buffers form one datagram, sent atomically: a message too large for the socket fails
/// with message_size and sends nothing.
///
/// @param socket An open Asio socket (for example `asio::ip::tcp::socket`). It must outlive the operation.
/// @param buffers Any Asio ConstBufferSequence, or `std::span<const wsabuf>`.
/// @param flags Send flags; see send_flags.
/// @param token The completion token; by default `co_await` yields `expected<std::size_t, peer_error>`.
///
/// @par Completion Signature
/// `void(std::error_code, std::size_t bytes_sent)`; on failure `bytes_sent` tells how many bytes the kernel had taken.
/// With the default token a failure is a peer_error whose bytes_transferred() is that count.
///
/// @par Per-Operation Cancellation
/// Through the token's cancellation slot, `socket.cancel()` or `socket.close()`: completes with operation_aborted.
/// A send that had not started its turn sends nothing; one that had reports the bytes already taken.
///
/// @code
/// std::array<peergraph::wsabuf, 2> parts{{{4, "head"}, {4, "body"}}};
/// auto sent = co_await peergraph::async_send(socket, std::span<const peergraph::wsabuf>(parts));
/// if (!sent)
///   log(sent.error().message());
/// @endcode
template <send_socket Socket, class ConstBufferSequence, class CompletionToken = use_expected_t>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value
auto async_send(Socket& socket, const ConstBufferSequence& buffers, send_flags flags = send_flags::none,
                CompletionToken&& token = {});

/// async_send without flags, with an explicit completion token.
template <send_socket Socket, class ConstBufferSequence, class CompletionToken>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value &&
           (!std::is_same_v<std::decay_t<CompletionToken>, send_flags>)
auto async_send(Socket& socket, const ConstBufferSequence& buffers, CompletionToken&& token);

/// Sends what one attempt can: the behaviour of send() on a non-blocking stream socket, as a completion.
///
/// Waits until the socket is writable (and until earlier sends on it have finished), then makes one sendmsg of up to
/// IOV_MAX buffers and completes with the count the kernel took, which may be less than requested. Everything else is
/// as for async_send.
///
/// @par Completion Signature
/// `void(std::error_code, std::size_t bytes_sent)`.
///
/// @par Per-Operation Cancellation
/// As for async_send.
template <send_socket Socket, class ConstBufferSequence, class CompletionToken = use_expected_t>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value
auto async_send_some(Socket& socket, const ConstBufferSequence& buffers, send_flags flags = send_flags::none,
                     CompletionToken&& token = {});

/// async_send_some without flags, with an explicit completion token.
template <send_socket Socket, class ConstBufferSequence, class CompletionToken>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value &&
           (!std::is_same_v<std::decay_t<CompletionToken>, send_flags>)
auto async_send_some(Socket& socket, const ConstBufferSequence& buffers, CompletionToken&& token);

/// async_send with kernel zero-copy (send_flags::zero_copy), reporting what the kernel actually did.
///
/// Completes only when every byte is sent and the kernel has released the caller's pages, so that the buffers may be
/// reused or freed at once. The kernel reports each release on the socket's error queue and signals it as an error
/// condition on the socket; the send waits for that signal, so it completes as soon as the last release comes, and
/// nothing polls. Where the socket does not support MSG_ZEROCOPY (AF_UNIX, old kernels) or the kernel cannot pin the
/// pages, the send proceeds as an ordinary send and `zero_copy` is false. Zero-copy sends on one socket complete one
/// after another. Worth it for buffers of roughly 10 KiB and more; on loopback the kernel always copies
/// (`kernel_copied`).
///
/// @par Completion Signature
/// `void(std::error_code, zero_copy_result)`.
///
/// @par Per-Operation Cancellation
/// As for async_send while the send waits for its turn or for room in the socket. Once the kernel holds the pages
/// (waiting for their release), the token's slot cannot cut it short; `socket.cancel()` and `socket.close()` complete
/// it with operation_aborted, and every send queued behind it, without waiting for the release (the kernel may still
/// read the pages for the bytes it holds).
template <send_socket Socket, class ConstBufferSequence, class CompletionToken = use_expected_t>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value
auto async_send_zero_copy(Socket& socket, const ConstBufferSequence& buffers, send_flags flags = send_flags::none,
                          CompletionToken&& token = {});

} // namespace peergraph

#include <peergraph/impl/send.hpp>
