//
// peergraph/error.hpp
// ~~~~~~~~~~~~~~~~~~~
// The error model: peer_errc, the "peergraph" error category, peer_error, and the mappings from errno, Asio and
// std::error_code values and to and from Windows HRESULT and Winsock codes.
//
#pragma once

#include <peergraph/config.hpp>

#include <asio/error.hpp>

#include <array>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace peergraph {

/// One stable value per error condition peergraph reports.
///
/// The numeric values are part of the interface and never change: new conditions are only ever appended. 0 is
/// reserved for success and is not an enumerator. The comment on each value names the Peer Graphing HRESULT, the
/// Winsock code and the POSIX errno values it stands for; to_hresult(), to_wsa_error(), errno_to_peer_errc() and
/// the category's default_error_condition() implement exactly these tables.
enum class peer_errc : int
{
  invalid_argument = 1,       ///< E_INVALIDARG, WSAEINVAL, EINVAL
  out_of_memory = 2,          ///< E_OUTOFMEMORY, WSA_NOT_ENOUGH_MEMORY, ENOMEM
  not_initialized = 3,        ///< PEER_E_NOT_INITIALIZED, WSANOTINITIALISED; also a moved-from or default object
  invalid_graph = 4,          ///< PEER_E_INVALID_GRAPH: the graph is closed or the handle is invalid
  already_exists = 5,         ///< PEER_E_ALREADY_EXISTS, WSAEISCONN, EISCONN, EEXIST
  connection_not_found = 6,   ///< PEER_E_CONNECTION_NOT_FOUND
  network_down = 7,           ///< WSAENETDOWN, ENETDOWN
  access_denied = 8,          ///< WSAEACCES, EACCES, EPERM
  interrupted = 9,            ///< WSAEINTR, EINTR
  in_progress = 10,           ///< WSAEINPROGRESS, EINPROGRESS, EALREADY
  bad_address = 11,           ///< WSAEFAULT, EFAULT
  network_reset = 12,         ///< WSAENETRESET, ENETRESET
  no_buffer_space = 13,       ///< WSAENOBUFS, ENOBUFS
  not_connected = 14,         ///< WSAENOTCONN, ENOTCONN
  not_a_socket = 15,          ///< WSAENOTSOCK, ENOTSOCK, EBADF
  op_not_supported = 16,      ///< WSAEOPNOTSUPP, EOPNOTSUPP, EAFNOSUPPORT, EPROTONOSUPPORT, ENOPROTOOPT, ENOSYS
  shut_down = 17,             ///< WSAESHUTDOWN, EPIPE, ESHUTDOWN
  would_block = 18,           ///< WSAEWOULDBLOCK, EWOULDBLOCK, EAGAIN
  message_size = 19,          ///< WSAEMSGSIZE, EMSGSIZE
  host_unreachable = 20,      ///< WSAEHOSTUNREACH, EHOSTUNREACH, EHOSTDOWN
  connection_aborted = 21,    ///< WSAECONNABORTED, ECONNABORTED
  connection_reset = 22,      ///< WSAECONNRESET, ECONNRESET
  timed_out = 23,             ///< PEER_E_TIMEOUT, WSAETIMEDOUT, ETIMEDOUT
  operation_aborted = 24,     ///< WSA_OPERATION_ABORTED, ECANCELED, asio::error::operation_aborted
  network_unreachable = 25,   ///< WSAENETUNREACH, ENETUNREACH
  address_in_use = 26,        ///< WSAEADDRINUSE, EADDRINUSE
  address_not_available = 27, ///< WSAEADDRNOTAVAIL, EADDRNOTAVAIL
  connect_self = 28,          ///< PEER_E_CONNECT_SELF
  connection_refused = 29,    ///< PEER_E_CONNECTION_REFUSED, WSAECONNREFUSED, ECONNREFUSED
  connection_failed = 30,     ///< PEER_E_CONNECTION_FAILED
  not_authenticated = 31,     ///< PEER_E_CONNECTION_NOT_AUTHENTICATED
  graph_shutting_down = 32,   ///< PEER_E_GRAPH_SHUTTING_DOWN
  already_listening = 33,     ///< PEER_E_ALREADY_LISTENING
  protocol_error = 34,        ///< malformed data from the network; HRESULT_FROM_WIN32(ERROR_INVALID_DATA), EPROTO
  unsupported_version = 35,   ///< PEER_E_UNSUPPORTED_VERSION
  frame_too_large = 36,       ///< PEER_E_MAX_RECORD_SIZE_EXCEEDED: a frame is larger than the configured maximum
  invalid_address = 37,       ///< PEER_E_INVALID_ADDRESS; also a host or service name that does not resolve
  graph_not_ready = 38,       ///< PEER_E_GRAPH_NOT_READY
  node_not_found = 39,        ///< PEER_E_NODE_NOT_FOUND
  not_direct_connection = 40, ///< closing a neighbor connection as if it were direct; reported as E_INVALIDARG
  connection_closed = 41,     ///< the remote closed the connection cleanly: asio::error::eof, WSAEDISCON
  limit_exceeded = 42,        ///< a configured limit (connections, handshakes, queue) was reached; WSAEMFILE, EMFILE
  not_found = 43,             ///< HRESULT_FROM_WIN32(ERROR_NOT_FOUND), asio::error::not_found, ENOENT
  unknown_error = 44,         ///< an OS or library error with no better mapping; peer_error keeps the original code
  wrong_graph = 45,      ///< the remote node belongs to another graph; HRESULT_FROM_WIN32(ERROR_NETWORK_ACCESS_DENIED)
  record_not_found = 46, ///< PEER_E_RECORD_NOT_FOUND: no record with that id
  max_record_size_exceeded = 47, ///< PEER_E_MAX_RECORD_SIZE_EXCEEDED: a record larger than the graph allows
  invalid_attributes = 48,       ///< PEER_E_INVALID_ATTRIBUTES: a record attribute's name or value is not allowed
  invalid_search = 49,           ///< PEER_E_INVALID_SEARCH: a record query that is malformed or too large
  invalid_record = 50,           ///< PEER_E_INVALID_RECORD: a record that is malformed or fails validation
  record_store_failed = 51,      ///< PEER_E_DATABASE_ACCESSDENIED: the record store could not read or write
  graph_in_use = 52,             ///< PEER_E_GRAPH_IN_USE: not possible once the graph listens or connects
};

/// Every peer_errc enumerator, in ascending numeric order (1, 2, ..., 52), for code that must visit each one.
inline constexpr std::array<peer_errc, 52> all_peer_errc{
    peer_errc::invalid_argument,
    peer_errc::out_of_memory,
    peer_errc::not_initialized,
    peer_errc::invalid_graph,
    peer_errc::already_exists,
    peer_errc::connection_not_found,
    peer_errc::network_down,
    peer_errc::access_denied,
    peer_errc::interrupted,
    peer_errc::in_progress,
    peer_errc::bad_address,
    peer_errc::network_reset,
    peer_errc::no_buffer_space,
    peer_errc::not_connected,
    peer_errc::not_a_socket,
    peer_errc::op_not_supported,
    peer_errc::shut_down,
    peer_errc::would_block,
    peer_errc::message_size,
    peer_errc::host_unreachable,
    peer_errc::connection_aborted,
    peer_errc::connection_reset,
    peer_errc::timed_out,
    peer_errc::operation_aborted,
    peer_errc::network_unreachable,
    peer_errc::address_in_use,
    peer_errc::address_not_available,
    peer_errc::connect_self,
    peer_errc::connection_refused,
    peer_errc::connection_failed,
    peer_errc::not_authenticated,
    peer_errc::graph_shutting_down,
    peer_errc::already_listening,
    peer_errc::protocol_error,
    peer_errc::unsupported_version,
    peer_errc::frame_too_large,
    peer_errc::invalid_address,
    peer_errc::graph_not_ready,
    peer_errc::node_not_found,
    peer_errc::not_direct_connection,
    peer_errc::connection_closed,
    peer_errc::limit_exceeded,
    peer_errc::not_found,
    peer_errc::unknown_error,
    peer_errc::wrong_graph,
    peer_errc::record_not_found,
    peer_errc::max_record_size_exceeded,
    peer_errc::invalid_attributes,
    peer_errc::invalid_search,
    peer_errc::invalid_record,
    peer_errc::record_store_failed,
    peer_errc::graph_in_use,
};

} // namespace peergraph

/// Lets a peer_errc convert implicitly to std::error_code (`std::error_code ec = peer_errc::timed_out;`).
template <>
struct std::is_error_code_enum<peergraph::peer_errc> : std::true_type
{
};

namespace peergraph {

/// The "peergraph" error category: one object for the whole program.
///
/// `message(v)` gives a distinct, human-readable phrase for each peer_errc value and "unknown peergraph error" for
/// any other value. `default_error_condition(v)` gives the std::errc condition that fits the value (for example
/// connection_reset maps to std::errc::connection_reset, shut_down to std::errc::broken_pipe), so
/// `std::error_code(peer_errc::connection_reset) == std::errc::connection_reset` holds; values with no fitting
/// std::errc map to a condition in this category.
///
/// @return A reference to the single category object (a function-local static).
const std::error_category& peer_category() noexcept;

/// Makes a std::error_code in peer_category(); found by ADL, which is what makes the implicit conversion work.
///
/// @param code The condition.
/// @return `std::error_code(static_cast<int>(code), peer_category())`.
std::error_code make_error_code(peer_errc code) noexcept;

/// The enumerator's own name, e.g. "connection_reset", for logs and test output.
///
/// @param code Any value.
/// @return The name, or "unknown" for a value that is not an enumerator. The view refers to static storage.
constexpr std::string_view peer_errc_name(peer_errc code) noexcept;

/// Writes peer_errc_name(code) to the stream.
std::ostream& operator<<(std::ostream& os, peer_errc code);

/// Maps a POSIX errno value to its condition.
///
/// Several errno values can share one condition (EAGAIN and EWOULDBLOCK give would_block, EPIPE and ESHUTDOWN give
/// shut_down, EBADF and ENOTSOCK give not_a_socket, ...). The reverse direction is the category's
/// default_error_condition().
///
/// @param errno_value A non-zero errno value (0 means success and is not expected).
/// @return The condition, or peer_errc::unknown_error for 0 and for values with no mapping.
peer_errc errno_to_peer_errc(int errno_value) noexcept;

/// Maps any std::error_code to its condition.
///
/// Handles peer_category() codes (identity), std::system_category(), asio::error::get_system_category() and
/// std::generic_category() (errno values on POSIX; Winsock/Win32 values in the two system categories on Windows),
/// Asio's misc category (eof gives
/// connection_closed, not_found gives not_found, already_open gives already_exists, fd_set_failure gives
/// limit_exceeded), Asio's netdb and addrinfo categories (host_not_found, no_data and service_not_found give
/// invalid_address, host_not_found_try_again gives host_unreachable, socket_type_not_supported gives
/// op_not_supported), and any other category whose default_error_condition() is a std::errc.
///
/// @param ec The code to map.
/// @return The condition; peer_errc::unknown_error for success, for out-of-range peer_category values and for codes
/// with no mapping.
peer_errc to_peer_errc(const std::error_code& ec) noexcept;

/// The Windows HRESULT for the condition, as an unsigned 32-bit pattern (HRESULT itself is a signed 32-bit type).
///
/// - Peer Graphing conditions give their PEER_E_* value (FACILITY_P2P, 0x8063xxxx), e.g. connection_not_found gives
///   PEER_E_CONNECTION_NOT_FOUND 0x80630103 and timed_out gives PEER_E_TIMEOUT 0x80637005.
/// - invalid_argument gives E_INVALIDARG 0x80070057, out_of_memory E_OUTOFMEMORY 0x8007000E, already_exists
///   PEER_E_ALREADY_EXISTS 0x800700B7, not_found HRESULT_FROM_WIN32(ERROR_NOT_FOUND) 0x80070490.
/// - Winsock conditions give HRESULT_FROM_WIN32 of their Winsock code, i.e. `0x80070000 | to_wsa_error(code)`
///   (operation_aborted gives 0x800703E3, connection_closed 0x80072775 for WSAEDISCON, limit_exceeded 0x80072728
///   for WSAEMFILE).
/// - protocol_error has no Peer Graphing code and gives HRESULT_FROM_WIN32(ERROR_INVALID_DATA) 0x8007000D.
/// - not_direct_connection gives E_INVALIDARG, which PeerGraphCloseDirectConnection returns for a bad connection id;
///   it is the one condition whose HRESULT is shared (from_hresult(E_INVALIDARG) is invalid_argument).
/// - unknown_error, and any value that is not an enumerator, gives E_FAIL 0x80004005.
///
/// @param code The condition.
/// @return The HRESULT bit pattern.
std::uint32_t to_hresult(peer_errc code) noexcept;

/// The condition for a Windows HRESULT: the inverse of to_hresult().
///
/// Also accepts common equivalents: HRESULT_FROM_WIN32 of any Winsock or Win32 code that from_wsa_error() knows
/// (e.g. HRESULT_FROM_WIN32(WSAETIMEDOUT) gives timed_out), E_ACCESSDENIED (access_denied), E_ABORT
/// (operation_aborted), E_NOTIMPL (op_not_supported), E_POINTER (bad_address), PEER_E_RECORD_NOT_FOUND (not_found)
/// and PEER_E_DUPLICATE_GRAPH (already_exists).
///
/// @param hresult The HRESULT bit pattern.
/// @return The condition; peer_errc::unknown_error for E_FAIL, for success values and for unknown values.
peer_errc from_hresult(std::uint32_t hresult) noexcept;

/// The Winsock error code for the condition (what WSAGetLastError() would return).
///
/// For example invalid_argument gives WSAEINVAL 10022, out_of_memory WSA_NOT_ENOUGH_MEMORY 8, not_initialized
/// WSANOTINITIALISED 10093, operation_aborted WSA_OPERATION_ABORTED 995, already_exists WSAEISCONN 10056,
/// connection_closed WSAEDISCON 10101, limit_exceeded WSAEMFILE 10024. No two conditions share a non-zero code.
///
/// @param code The condition.
/// @return The Winsock code, or 0 where Winsock has no equivalent (the Peer Graphing conditions, protocol_error,
/// not_found, unknown_error, ...).
int to_wsa_error(peer_errc code) noexcept;

/// The condition for a Winsock (or Win32) error code: the inverse of to_wsa_error().
///
/// Also accepts codes that share a condition, e.g. WSAEALREADY (in_progress), WSAEBADF (not_a_socket),
/// WSAEAFNOSUPPORT (op_not_supported), WSAEHOSTDOWN (host_unreachable), WSAECANCELLED (operation_aborted),
/// WSAHOST_NOT_FOUND (invalid_address), WSA_INVALID_PARAMETER (invalid_argument), ERROR_ACCESS_DENIED,
/// ERROR_OUTOFMEMORY, ERROR_ALREADY_EXISTS, ERROR_NOT_FOUND, ERROR_INVALID_DATA and ERROR_TIMEOUT.
///
/// @param wsa_error The code.
/// @return The condition, or peer_errc::unknown_error for 0 and for unknown codes.
peer_errc from_wsa_error(int wsa_error) noexcept;

/// The error type of every peergraph operation: a condition plus, where the failure came from the OS or Asio, the
/// original std::error_code.
///
/// A small, trivially copyable value (16 bytes on 64-bit targets). Construct it implicitly from a peer_errc, so that
/// `return unexpected(peer_errc::connection_not_found);` works in a function returning `expected<T, peer_error>`.
///
/// Equality compares the condition only: two errors with the same code() are equal whatever their cause(), because
/// the cause is diagnostic detail (the same condition can come from different OS codes on different platforms).
class peer_error
{
public:
  /// An error with code() peer_errc::unknown_error and no cause: the value of an error that was never set.
  constexpr peer_error() noexcept = default;

  /// An error of the given condition with no separate cause.
  ///
  /// @param code The condition.
  constexpr peer_error(peer_errc code) noexcept // NOLINT(google-explicit-constructor): implicit by design
      : code_(code)
  {
  }

  /// An error of the given condition caused by an OS or library error.
  ///
  /// @param code The condition.
  /// @param cause The original code. Success, and `make_error_code(code)` itself, are stored as "no cause".
  peer_error(peer_errc code, std::error_code cause) noexcept;

  /// The error for a std::error_code (e.g. from an Asio completion): code() is to_peer_errc(ec), cause() is ec.
  ///
  /// @param ec The original code; should be a failure (success gives unknown_error).
  explicit peer_error(const std::error_code& ec) noexcept;

  /// @return The condition.
  constexpr peer_errc code() const noexcept { return code_; }

  /// @return Whether an original OS or library code was kept.
  constexpr bool has_cause() const noexcept { return cause_category_ != nullptr; }

  /// @return The original OS or library code, or `make_error_code(code())` when there is none.
  std::error_code cause() const noexcept;

  /// @return `make_error_code(code())`, for APIs that take a std::error_code.
  std::error_code as_error_code() const noexcept;

  /// A line for a log: the condition's message, followed by the cause in parentheses when there is one, e.g.
  /// "connection reset by peer (system:104 Connection reset by peer)".
  ///
  /// @return The text.
  std::string message() const;

  /// @return to_hresult(code()).
  std::uint32_t hresult() const noexcept;

  /// @return to_wsa_error(code()).
  int wsa_error() const noexcept;

  /// For an operation that moves bytes and failed part-way (async_send, async_send_some, an Asio
  /// read or write awaited with use_expected): how many bytes it had moved before it failed, what its completion's
  /// `std::size_t` reported (the count a failed WSASend leaves in lpNumberOfBytesSent). 0 for every other error.
  ///
  /// @return The count.
  constexpr std::size_t bytes_transferred() const noexcept { return bytes_transferred_; }

  /// Sets bytes_transferred().
  ///
  /// @param bytes The count.
  /// @return `*this`.
  constexpr peer_error& set_bytes_transferred(std::size_t bytes) noexcept
  {
    bytes_transferred_ = bytes;
    return *this;
  }

  /// Compares the conditions only (see the class description).
  friend constexpr bool operator==(const peer_error& a, const peer_error& b) noexcept { return a.code_ == b.code_; }

  /// Whether the error is of the given condition; `code == error` and `!=` follow.
  friend constexpr bool operator==(const peer_error& a, peer_errc b) noexcept { return a.code_ == b; }

private:
  peer_errc code_ = peer_errc::unknown_error;
  // The cause is kept as its parts rather than as a std::error_code so that the class stays constexpr-constructible.
  int cause_value_ = 0;
  const std::error_category* cause_category_ = nullptr;
  std::size_t bytes_transferred_ = 0;
};

/// Writes `error.message()` to the stream.
std::ostream& operator<<(std::ostream& os, const peer_error& error);

/// The peer_error for a std::error_code; same as `peer_error(ec)`, for use where a named function reads better.
///
/// @param ec The original code.
/// @return `peer_error(ec)`.
peer_error make_peer_error(const std::error_code& ec) noexcept;

} // namespace peergraph

#include <peergraph/impl/error.hpp>
