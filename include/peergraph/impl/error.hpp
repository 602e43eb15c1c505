//
// peergraph/impl/error.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~
// Bodies of the error model declared in peergraph/error.hpp: the per-condition table and the mappings.
//
#pragma once

#include <cerrno>
#include <cstddef>
#include <iterator>
#include <ostream>

namespace peergraph {
namespace detail {

/// Everything known about one condition; one row per enumerator, in numeric order.
struct peer_errc_info
{
  peer_errc code;
  std::string_view name;
  const char* message;
  std::uint32_t hresult;
  int wsa_error;         // 0: no Winsock equivalent
  int generic_condition; // a std::errc value, or 0: the condition stays in peer_category()
};

constexpr int errc_value(std::errc e) noexcept
{
  return static_cast<int>(e);
}

// HRESULT helpers, spelled as in winerror.h.
constexpr std::uint32_t hresult_from_win32(int code) noexcept
{
  return 0x80070000u | (static_cast<std::uint32_t>(code) & 0xFFFFu);
}
inline constexpr std::uint32_t e_fail = 0x80004005u;
inline constexpr std::uint32_t e_invalidarg = 0x80070057u;
inline constexpr std::uint32_t e_outofmemory = 0x8007000Eu;

// Winsock and Win32 codes, spelled as in winsock2.h and winerror.h (not available off Windows).
namespace wsa {
inline constexpr int error_not_enough_memory = 8;      // WSA_NOT_ENOUGH_MEMORY
inline constexpr int error_invalid_parameter = 87;     // WSA_INVALID_PARAMETER
inline constexpr int error_operation_aborted = 995;    // WSA_OPERATION_ABORTED
inline constexpr int eintr = 10004;                    // WSAEINTR
inline constexpr int ebadf = 10009;                    // WSAEBADF
inline constexpr int eacces = 10013;                   // WSAEACCES
inline constexpr int efault = 10014;                   // WSAEFAULT
inline constexpr int einval = 10022;                   // WSAEINVAL
inline constexpr int emfile = 10024;                   // WSAEMFILE
inline constexpr int ewouldblock = 10035;              // WSAEWOULDBLOCK
inline constexpr int einprogress = 10036;              // WSAEINPROGRESS
inline constexpr int ealready = 10037;                 // WSAEALREADY
inline constexpr int enotsock = 10038;                 // WSAENOTSOCK
inline constexpr int edestaddrreq = 10039;             // WSAEDESTADDRREQ
inline constexpr int emsgsize = 10040;                 // WSAEMSGSIZE
inline constexpr int enoprotoopt = 10042;              // WSAENOPROTOOPT
inline constexpr int eprotonosupport = 10043;          // WSAEPROTONOSUPPORT
inline constexpr int esocktnosupport = 10044;          // WSAESOCKTNOSUPPORT
inline constexpr int eopnotsupp = 10045;               // WSAEOPNOTSUPP
inline constexpr int eafnosupport = 10047;             // WSAEAFNOSUPPORT
inline constexpr int eaddrinuse = 10048;               // WSAEADDRINUSE
inline constexpr int eaddrnotavail = 10049;            // WSAEADDRNOTAVAIL
inline constexpr int enetdown = 10050;                 // WSAENETDOWN
inline constexpr int enetunreach = 10051;              // WSAENETUNREACH
inline constexpr int enetreset = 10052;                // WSAENETRESET
inline constexpr int econnaborted = 10053;             // WSAECONNABORTED
inline constexpr int econnreset = 10054;               // WSAECONNRESET
inline constexpr int enobufs = 10055;                  // WSAENOBUFS
inline constexpr int eisconn = 10056;                  // WSAEISCONN
inline constexpr int enotconn = 10057;                 // WSAENOTCONN
inline constexpr int eshutdown = 10058;                // WSAESHUTDOWN
inline constexpr int etimedout = 10060;                // WSAETIMEDOUT
inline constexpr int econnrefused = 10061;             // WSAECONNREFUSED
inline constexpr int ehostdown = 10064;                // WSAEHOSTDOWN
inline constexpr int ehostunreach = 10065;             // WSAEHOSTUNREACH
inline constexpr int eproclim = 10067;                 // WSAEPROCLIM
inline constexpr int sysnotready = 10091;              // WSASYSNOTREADY
inline constexpr int notinitialised = 10093;           // WSANOTINITIALISED
inline constexpr int ediscon = 10101;                  // WSAEDISCON
inline constexpr int ecancelled = 10103;               // WSAECANCELLED
inline constexpr int host_not_found = 11001;           // WSAHOST_NOT_FOUND
inline constexpr int try_again = 11002;                // WSATRY_AGAIN
inline constexpr int no_data = 11004;                  // WSANO_DATA
inline constexpr int win32_access_denied = 5;          // ERROR_ACCESS_DENIED
inline constexpr int win32_invalid_data = 13;          // ERROR_INVALID_DATA
inline constexpr int win32_outofmemory = 14;           // ERROR_OUTOFMEMORY
inline constexpr int win32_already_exists = 183;       // ERROR_ALREADY_EXISTS
inline constexpr int win32_not_found = 1168;           // ERROR_NOT_FOUND
inline constexpr int win32_network_access_denied = 65; // ERROR_NETWORK_ACCESS_DENIED
inline constexpr int win32_timeout = 1460;             // ERROR_TIMEOUT
inline constexpr int win32_broken_pipe = 109;          // ERROR_BROKEN_PIPE (Asio's broken_pipe on Windows)
inline constexpr int win32_retry = 1237;               // ERROR_RETRY (Asio's try_again on Windows)
inline constexpr int enametoolong = 10063;             // WSAENAMETOOLONG
inline constexpr int type_not_found = 10109;           // WSATYPE_NOT_FOUND (a service name that does not resolve)
} // namespace wsa

// clang-format off
inline constexpr peer_errc_info peer_errc_table[] = {
  {peer_errc::invalid_argument, "invalid_argument", "invalid argument",
    e_invalidarg, wsa::einval, errc_value(std::errc::invalid_argument)},
  {peer_errc::out_of_memory, "out_of_memory", "not enough memory",
    e_outofmemory, wsa::error_not_enough_memory, errc_value(std::errc::not_enough_memory)},
  {peer_errc::not_initialized, "not_initialized", "not initialized (default-constructed, moved-from or not started)",
    0x80630002u, wsa::notinitialised, 0},
  {peer_errc::invalid_graph, "invalid_graph", "invalid or closed peer graph",
    0x80630010u, 0, 0},
  {peer_errc::already_exists, "already_exists", "already exists (already connected to that node)",
    0x800700B7u, wsa::eisconn, errc_value(std::errc::already_connected)},
  {peer_errc::connection_not_found, "connection_not_found", "connection not found",
    0x80630103u, 0, 0},
  {peer_errc::network_down, "network_down", "network is down",
    hresult_from_win32(wsa::enetdown), wsa::enetdown, errc_value(std::errc::network_down)},
  {peer_errc::access_denied, "access_denied", "permission denied",
    hresult_from_win32(wsa::eacces), wsa::eacces, errc_value(std::errc::permission_denied)},
  {peer_errc::interrupted, "interrupted", "operation interrupted",
    hresult_from_win32(wsa::eintr), wsa::eintr, errc_value(std::errc::interrupted)},
  {peer_errc::in_progress, "in_progress", "operation already in progress",
    hresult_from_win32(wsa::einprogress), wsa::einprogress, errc_value(std::errc::operation_in_progress)},
  {peer_errc::bad_address, "bad_address", "bad address (buffer outside the address space)",
    hresult_from_win32(wsa::efault), wsa::efault, errc_value(std::errc::bad_address)},
  {peer_errc::network_reset, "network_reset", "connection dropped by a network reset",
    hresult_from_win32(wsa::enetreset), wsa::enetreset, errc_value(std::errc::network_reset)},
  {peer_errc::no_buffer_space, "no_buffer_space", "no buffer space available",
    hresult_from_win32(wsa::enobufs), wsa::enobufs, errc_value(std::errc::no_buffer_space)},
  {peer_errc::not_connected, "not_connected", "socket is not connected",
    hresult_from_win32(wsa::enotconn), wsa::enotconn, errc_value(std::errc::not_connected)},
  {peer_errc::not_a_socket, "not_a_socket", "not a socket or a bad descriptor",
    hresult_from_win32(wsa::enotsock), wsa::enotsock, errc_value(std::errc::not_a_socket)},
  {peer_errc::op_not_supported, "op_not_supported", "operation not supported",
    hresult_from_win32(wsa::eopnotsupp), wsa::eopnotsupp, errc_value(std::errc::operation_not_supported)},
  {peer_errc::shut_down, "shut_down", "cannot send after shutdown (broken pipe)",
    hresult_from_win32(wsa::eshutdown), wsa::eshutdown, errc_value(std::errc::broken_pipe)},
  {peer_errc::would_block, "would_block", "operation would block",
    hresult_from_win32(wsa::ewouldblock), wsa::ewouldblock, errc_value(std::errc::operation_would_block)},
  {peer_errc::message_size, "message_size", "message too long",
    hresult_from_win32(wsa::emsgsize), wsa::emsgsize, errc_value(std::errc::message_size)},
  {peer_errc::host_unreachable, "host_unreachable", "host unreachable",
    hresult_from_win32(wsa::ehostunreach), wsa::ehostunreach, errc_value(std::errc::host_unreachable)},
  {peer_errc::connection_aborted, "connection_aborted", "connection aborted",
    hresult_from_win32(wsa::econnaborted), wsa::econnaborted, errc_value(std::errc::connection_aborted)},
  {peer_errc::connection_reset, "connection_reset", "connection reset by peer",
    hresult_from_win32(wsa::econnreset), wsa::econnreset, errc_value(std::errc::connection_reset)},
  {peer_errc::timed_out, "timed_out", "timed out",
    0x80637005u, wsa::etimedout, errc_value(std::errc::timed_out)},
  {peer_errc::operation_aborted, "operation_aborted", "operation aborted",
    hresult_from_win32(wsa::error_operation_aborted), wsa::error_operation_aborted,
    errc_value(std::errc::operation_canceled)},
  {peer_errc::network_unreachable, "network_unreachable", "network unreachable",
    hresult_from_win32(wsa::enetunreach), wsa::enetunreach, errc_value(std::errc::network_unreachable)},
  {peer_errc::address_in_use, "address_in_use", "address already in use",
    hresult_from_win32(wsa::eaddrinuse), wsa::eaddrinuse, errc_value(std::errc::address_in_use)},
  {peer_errc::address_not_available, "address_not_available", "address not available",
    hresult_from_win32(wsa::eaddrnotavail), wsa::eaddrnotavail, errc_value(std::errc::address_not_available)},
  {peer_errc::connect_self, "connect_self", "cannot connect to self",
    0x80630106u, 0, 0},
  {peer_errc::connection_refused, "connection_refused", "connection refused",
    0x8063010Bu, wsa::econnrefused, errc_value(std::errc::connection_refused)},
  {peer_errc::connection_failed, "connection_failed", "connection failed",
    0x80630109u, 0, 0},
  {peer_errc::not_authenticated, "not_authenticated", "connection not authenticated",
    0x8063010Au, 0, 0},
  {peer_errc::graph_shutting_down, "graph_shutting_down", "peer graph is shutting down",
    0x80630014u, 0, 0},
  {peer_errc::already_listening, "already_listening", "peer graph is already listening",
    0x80630107u, 0, 0},
  {peer_errc::protocol_error, "protocol_error", "protocol error (malformed data from the peer)",
    hresult_from_win32(wsa::win32_invalid_data), 0, errc_value(std::errc::protocol_error)},
  {peer_errc::unsupported_version, "unsupported_version", "unsupported protocol version",
    0x80632090u, 0, 0},
  {peer_errc::frame_too_large, "frame_too_large", "frame larger than the maximum size",
    0x80630304u, 0, errc_value(std::errc::message_size)},
  {peer_errc::invalid_address, "invalid_address", "invalid address",
    0x80637007u, 0, 0},
  {peer_errc::graph_not_ready, "graph_not_ready", "peer graph is not ready",
    0x80630013u, 0, 0},
  {peer_errc::node_not_found, "node_not_found", "node not found",
    0x80630108u, 0, 0},
  {peer_errc::not_direct_connection, "not_direct_connection", "not a direct connection",
    e_invalidarg, 0, errc_value(std::errc::invalid_argument)},
  {peer_errc::connection_closed, "connection_closed", "connection closed",
    hresult_from_win32(wsa::ediscon), wsa::ediscon, 0},
  {peer_errc::limit_exceeded, "limit_exceeded", "limit exceeded",
    hresult_from_win32(wsa::emfile), wsa::emfile, 0},
  {peer_errc::not_found, "not_found", "not found",
    hresult_from_win32(wsa::win32_not_found), 0, 0},
  {peer_errc::unknown_error, "unknown_error", "unknown error",
    e_fail, 0, 0},
  {peer_errc::wrong_graph, "wrong_graph", "the remote node belongs to another graph",
    hresult_from_win32(wsa::win32_network_access_denied), 0, 0},
  {peer_errc::record_not_found, "record_not_found", "record not found",
    0x80630301u, 0, 0},
  {peer_errc::max_record_size_exceeded, "max_record_size_exceeded", "record larger than the maximum record size",
    0x80630304u, 0, 0},
  {peer_errc::invalid_attributes, "invalid_attributes", "invalid record attributes",
    0x80630602u, 0, 0},
  {peer_errc::invalid_search, "invalid_search", "invalid record search",
    0x80630601u, 0, 0},
  {peer_errc::invalid_record, "invalid_record", "invalid record",
    0x80632010u, 0, 0},
  {peer_errc::record_store_failed, "record_store_failed", "the record store could not read or write",
    0x80630300u, 0, 0},
  {peer_errc::graph_in_use, "graph_in_use", "not possible once the graph listens or connects",
    0x80630015u, 0, 0},
};
// clang-format on

// The table is indexed by value - 1: check at compile time that every row sits where its value says.
constexpr bool peer_errc_table_is_ordered() noexcept
{
  if (std::size(peer_errc_table) != all_peer_errc.size())
    return false;
  for (std::size_t i = 0; i < all_peer_errc.size(); ++i)
    if (peer_errc_table[i].code != all_peer_errc[i] || static_cast<std::size_t>(all_peer_errc[i]) != i + 1)
      return false;
  return true;
}
static_assert(peer_errc_table_is_ordered(), "peer_errc_table and all_peer_errc must list every value in order");

/// The row for a value, or nullptr when the value is not an enumerator.
constexpr const peer_errc_info* find_info(int value) noexcept
{
  if (value < 1 || static_cast<std::size_t>(value) > std::size(peer_errc_table))
    return nullptr;
  return &peer_errc_table[value - 1];
}

constexpr const peer_errc_info* find_info(peer_errc code) noexcept
{
  return find_info(static_cast<int>(code));
}

/// One many-to-one mapping entry.
template <class From>
struct alias
{
  From from;
  peer_errc to;
};

// errno -> condition. A table rather than a switch because some names share a value on some systems (EAGAIN and
// EWOULDBLOCK, EOPNOTSUPP and ENOTSUP on Linux), which would make duplicate case labels; the first match wins.
inline constexpr alias<int> errno_table[] = {
    {EINVAL, peer_errc::invalid_argument},
    {ENOMEM, peer_errc::out_of_memory},
    {EISCONN, peer_errc::already_exists},
    {EEXIST, peer_errc::already_exists},
    {ENETDOWN, peer_errc::network_down},
    {EACCES, peer_errc::access_denied},
    {EPERM, peer_errc::access_denied},
    {EINTR, peer_errc::interrupted},
    {EINPROGRESS, peer_errc::in_progress},
    {EALREADY, peer_errc::in_progress},
    {EFAULT, peer_errc::bad_address},
    {ENETRESET, peer_errc::network_reset},
    {ENOBUFS, peer_errc::no_buffer_space},
    {ENOTCONN, peer_errc::not_connected},
    {ENOTSOCK, peer_errc::not_a_socket},
    {EBADF, peer_errc::not_a_socket},
    {EOPNOTSUPP, peer_errc::op_not_supported},
    {ENOTSUP, peer_errc::op_not_supported},
    {EAFNOSUPPORT, peer_errc::op_not_supported},
    {EPROTONOSUPPORT, peer_errc::op_not_supported},
    {ENOPROTOOPT, peer_errc::op_not_supported},
    {ENOSYS, peer_errc::op_not_supported},
    {EPIPE, peer_errc::shut_down},
#if defined(ESHUTDOWN)
    {ESHUTDOWN, peer_errc::shut_down},
#endif
    {EWOULDBLOCK, peer_errc::would_block},
    {EAGAIN, peer_errc::would_block},
    {EMSGSIZE, peer_errc::message_size},
    {EHOSTUNREACH, peer_errc::host_unreachable},
#if defined(EHOSTDOWN)
    {EHOSTDOWN, peer_errc::host_unreachable},
#endif
    {ECONNABORTED, peer_errc::connection_aborted},
    {ECONNRESET, peer_errc::connection_reset},
    {ETIMEDOUT, peer_errc::timed_out},
    {ECANCELED, peer_errc::operation_aborted},
    {ENETUNREACH, peer_errc::network_unreachable},
    {EADDRINUSE, peer_errc::address_in_use},
    {EADDRNOTAVAIL, peer_errc::address_not_available},
    {ECONNREFUSED, peer_errc::connection_refused},
    {EPROTO, peer_errc::protocol_error},
    {EBADMSG, peer_errc::protocol_error},
    {EDESTADDRREQ, peer_errc::invalid_address},
    {ENAMETOOLONG, peer_errc::invalid_address},
    {EMFILE, peer_errc::limit_exceeded},
    {ENFILE, peer_errc::limit_exceeded},
    {ENOENT, peer_errc::not_found},
};

// Winsock and Win32 codes that share a condition with the code to_wsa_error() gives.
inline constexpr alias<int> wsa_alias_table[] = {
    {wsa::error_invalid_parameter, peer_errc::invalid_argument},
    {wsa::win32_outofmemory, peer_errc::out_of_memory},
    {wsa::win32_already_exists, peer_errc::already_exists},
    {wsa::win32_access_denied, peer_errc::access_denied},
    {wsa::ealready, peer_errc::in_progress},
    {wsa::ebadf, peer_errc::not_a_socket},
    {wsa::eafnosupport, peer_errc::op_not_supported},
    {wsa::eprotonosupport, peer_errc::op_not_supported},
    {wsa::esocktnosupport, peer_errc::op_not_supported},
    {wsa::enoprotoopt, peer_errc::op_not_supported},
    {wsa::ehostdown, peer_errc::host_unreachable},
    {wsa::win32_timeout, peer_errc::timed_out},
    {wsa::ecancelled, peer_errc::operation_aborted},
    {wsa::sysnotready, peer_errc::network_down},
    {wsa::win32_invalid_data, peer_errc::protocol_error},
    {wsa::edestaddrreq, peer_errc::invalid_address},
    {wsa::host_not_found, peer_errc::invalid_address},
    {wsa::no_data, peer_errc::invalid_address},
    {wsa::try_again, peer_errc::host_unreachable},
    {wsa::eproclim, peer_errc::limit_exceeded},
    {wsa::win32_not_found, peer_errc::not_found},
    {wsa::win32_broken_pipe, peer_errc::shut_down},
    {wsa::win32_retry, peer_errc::would_block},
    {wsa::enametoolong, peer_errc::invalid_address},
    {wsa::type_not_found, peer_errc::invalid_address},
};

// HRESULTs that share a condition with the value to_hresult() gives (beyond HRESULT_FROM_WIN32 of a known code).
inline constexpr alias<std::uint32_t> hresult_alias_table[] = {
    {0x80070005u, peer_errc::access_denied},     // E_ACCESSDENIED
    {0x80004004u, peer_errc::operation_aborted}, // E_ABORT
    {0x80004001u, peer_errc::op_not_supported},  // E_NOTIMPL
    {0x80004003u, peer_errc::bad_address},       // E_POINTER
    {0x80630012u, peer_errc::already_exists},    // PEER_E_DUPLICATE_GRAPH
};

template <class From, std::size_t N>
constexpr peer_errc find_alias(const alias<From> (&table)[N], From from) noexcept
{
  for (const auto& entry : table)
    if (entry.from == from)
      return entry.to;
  return peer_errc::unknown_error;
}

/// The category behind peer_category().
class peer_category_impl final : public std::error_category
{
public:
  constexpr peer_category_impl() noexcept = default;

  const char* name() const noexcept override { return "peergraph"; }

  std::string message(int value) const override
  {
    const peer_errc_info* info = find_info(value);
    return info != nullptr ? info->message : "unknown peergraph error";
  }

  std::error_condition default_error_condition(int value) const noexcept override
  {
    const peer_errc_info* info = find_info(value);
    if (info != nullptr && info->generic_condition != 0)
      return std::error_condition(info->generic_condition, std::generic_category());
    return std::error_condition(value, *this);
  }
};

/// Asio's codes outside the system category, mapped by category and value.
inline peer_errc asio_to_peer_errc(const std::error_code& ec) noexcept
{
  const std::error_category& category = ec.category();
  const int value = ec.value();
  if (category == asio::error::get_misc_category()) {
    switch (value) {
    case asio::error::already_open:
      return peer_errc::already_exists;
    case asio::error::eof:
      return peer_errc::connection_closed;
    case asio::error::not_found:
      return peer_errc::not_found;
    case asio::error::fd_set_failure:
      return peer_errc::limit_exceeded;
    default:
      return peer_errc::unknown_error;
    }
  }
  // On Windows these two are the system category and never reach this point.
  if (category == asio::error::get_netdb_category()) {
    if (value == asio::error::host_not_found || value == asio::error::no_data)
      return peer_errc::invalid_address;
    if (value == asio::error::host_not_found_try_again)
      return peer_errc::host_unreachable; // transient: the name server could not be reached
    return peer_errc::unknown_error;
  }
  if (category == asio::error::get_addrinfo_category()) {
    if (value == asio::error::service_not_found)
      return peer_errc::invalid_address;
    if (value == asio::error::socket_type_not_supported)
      return peer_errc::op_not_supported;
    return peer_errc::unknown_error;
  }
  return peer_errc::unknown_error;
}

} // namespace detail

inline const std::error_category& peer_category() noexcept
{
  static const detail::peer_category_impl instance;
  return instance;
}

inline std::error_code make_error_code(peer_errc code) noexcept
{
  return std::error_code(static_cast<int>(code), peer_category());
}

constexpr std::string_view peer_errc_name(peer_errc code) noexcept
{
  const detail::peer_errc_info* info = detail::find_info(code);
  return info != nullptr ? info->name : std::string_view("unknown");
}

inline std::ostream& operator<<(std::ostream& os, peer_errc code)
{
  return os << peer_errc_name(code);
}

inline peer_errc errno_to_peer_errc(int errno_value) noexcept
{
  if (errno_value == 0)
    return peer_errc::unknown_error;
  return detail::find_alias(detail::errno_table, errno_value);
}

inline peer_errc to_peer_errc(const std::error_code& ec) noexcept
{
  if (!ec)
    return peer_errc::unknown_error;
  const std::error_category& category = ec.category();
  if (category == peer_category())
    return detail::find_info(ec.value()) != nullptr ? static_cast<peer_errc>(ec.value()) : peer_errc::unknown_error;
  if (category == std::generic_category())
    return errno_to_peer_errc(ec.value());
  // Asio has its own system category ("asio.system"), distinct from std::system_category(), with the same values.
  if (category == std::system_category() || category == asio::error::get_system_category()) {
#if defined(_WIN32)
    // Windows system codes are Win32 / Winsock values, not errno values.
    return from_wsa_error(ec.value());
#else
    return errno_to_peer_errc(ec.value());
#endif
  }
  const peer_errc from_asio = detail::asio_to_peer_errc(ec);
  if (from_asio != peer_errc::unknown_error)
    return from_asio;
  // Any other category that declares an equivalent std::errc (e.g. a TLS library's) still maps.
  const std::error_condition condition = ec.default_error_condition();
  if (condition.category() == std::generic_category())
    return errno_to_peer_errc(condition.value());
  return peer_errc::unknown_error;
}

inline std::uint32_t to_hresult(peer_errc code) noexcept
{
  const detail::peer_errc_info* info = detail::find_info(code);
  return info != nullptr ? info->hresult : detail::e_fail;
}

inline int to_wsa_error(peer_errc code) noexcept
{
  const detail::peer_errc_info* info = detail::find_info(code);
  return info != nullptr ? info->wsa_error : 0;
}

inline peer_errc from_wsa_error(int wsa_error) noexcept
{
  if (wsa_error == 0)
    return peer_errc::unknown_error;
  for (const detail::peer_errc_info& info : detail::peer_errc_table)
    if (info.wsa_error == wsa_error)
      return info.code;
  return detail::find_alias(detail::wsa_alias_table, wsa_error);
}

inline peer_errc from_hresult(std::uint32_t hresult) noexcept
{
  // Success and informational values (severity bit clear) are not errors; E_FAIL says nothing more than unknown.
  if ((hresult & 0x80000000u) == 0 || hresult == detail::e_fail)
    return peer_errc::unknown_error;
  // The first row wins, so the shared E_INVALIDARG gives invalid_argument rather than not_direct_connection.
  for (const detail::peer_errc_info& info : detail::peer_errc_table)
    if (info.hresult == hresult)
      return info.code;
  const peer_errc alias = detail::find_alias(detail::hresult_alias_table, hresult);
  if (alias != peer_errc::unknown_error)
    return alias;
  if ((hresult & 0xFFFF0000u) == 0x80070000u) // HRESULT_FROM_WIN32: the low 16 bits are a Win32 / Winsock code
    return from_wsa_error(static_cast<int>(hresult & 0xFFFFu));
  return peer_errc::unknown_error;
}

inline peer_error::peer_error(peer_errc code, std::error_code cause) noexcept : code_(code)
{
  if (cause && cause != make_error_code(code)) {
    cause_value_ = cause.value();
    cause_category_ = &cause.category();
  }
}

inline peer_error::peer_error(const std::error_code& ec) noexcept : peer_error(to_peer_errc(ec), ec) {}

inline std::error_code peer_error::cause() const noexcept
{
  if (cause_category_ != nullptr)
    return std::error_code(cause_value_, *cause_category_);
  return make_error_code(code_);
}

inline std::error_code peer_error::as_error_code() const noexcept
{
  return make_error_code(code_);
}

inline std::string peer_error::message() const
{
  std::string text = peer_category().message(static_cast<int>(code_));
  if (cause_category_ != nullptr) {
    text += " (";
    text += cause_category_->name();
    text += ':';
    text += std::to_string(cause_value_);
    text += ' ';
    text += cause_category_->message(cause_value_);
    text += ')';
  }
  return text;
}

inline std::uint32_t peer_error::hresult() const noexcept
{
  return to_hresult(code_);
}

inline int peer_error::wsa_error() const noexcept
{
  return to_wsa_error(code_);
}

inline std::ostream& operator<<(std::ostream& os, const peer_error& error)
{
  return os << error.message();
}

inline peer_error make_peer_error(const std::error_code& ec) noexcept
{
  return peer_error(ec);
}

} // namespace peergraph
