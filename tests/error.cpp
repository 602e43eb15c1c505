//
// tests/error.cpp
// ~~~~~~~~~~~~~~~
// Tests of peergraph/error.hpp: the values, the category, every mapping in each direction, and peer_error.
//
#include <peergraph/error.hpp> // first: proves the header is self-contained

#include <peergraph/expected.hpp>

#include <doctest/doctest.h>

// g++ 12 at -O2 reports a false "potential null pointer dereference" inside Asio 1.22's reactor
// (scheduler::compensating_work_started) once synchronous socket operations are inlined; the pragma must cover the
// first inclusion of those Asio bodies.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#pragma GCC diagnostic pop

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ios>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

using peergraph::peer_errc;
using peergraph::peer_error;

namespace {

/// "Connection reset by peer" as the system category holds it: ECONNRESET, or WSAECONNRESET on Windows.
#if defined(_WIN32)
constexpr int native_connection_reset = 10054;
#else
constexpr int native_connection_reset = ECONNRESET;
#endif

// What the interface promises for each condition, written out independently of the implementation's own table:
// the stable number, the name, the HRESULT (facts.md 1.5 and winerror.h), the Winsock code (0: none), and the errno
// of the std::errc it maps to (0: stays in the peergraph category).
struct expected_row
{
  peer_errc code;
  int value;
  std::string_view name;
  std::uint32_t hresult;
  int wsa;
  int condition_errno;
};

constexpr expected_row expected_rows[] = {
    {peer_errc::invalid_argument, 1, "invalid_argument", 0x80070057u, 10022, EINVAL},
    {peer_errc::out_of_memory, 2, "out_of_memory", 0x8007000Eu, 8, ENOMEM},
    {peer_errc::not_initialized, 3, "not_initialized", 0x80630002u, 10093, 0},
    {peer_errc::invalid_graph, 4, "invalid_graph", 0x80630010u, 0, 0},
    {peer_errc::already_exists, 5, "already_exists", 0x800700B7u, 10056, EISCONN},
    {peer_errc::connection_not_found, 6, "connection_not_found", 0x80630103u, 0, 0},
    {peer_errc::network_down, 7, "network_down", 0x80072742u, 10050, ENETDOWN},
    {peer_errc::access_denied, 8, "access_denied", 0x8007271Du, 10013, EACCES},
    {peer_errc::interrupted, 9, "interrupted", 0x80072714u, 10004, EINTR},
    {peer_errc::in_progress, 10, "in_progress", 0x80072734u, 10036, EINPROGRESS},
    {peer_errc::bad_address, 11, "bad_address", 0x8007271Eu, 10014, EFAULT},
    {peer_errc::network_reset, 12, "network_reset", 0x80072744u, 10052, ENETRESET},
    {peer_errc::no_buffer_space, 13, "no_buffer_space", 0x80072747u, 10055, ENOBUFS},
    {peer_errc::not_connected, 14, "not_connected", 0x80072749u, 10057, ENOTCONN},
    {peer_errc::not_a_socket, 15, "not_a_socket", 0x80072736u, 10038, ENOTSOCK},
    {peer_errc::op_not_supported, 16, "op_not_supported", 0x8007273Du, 10045, EOPNOTSUPP},
    {peer_errc::shut_down, 17, "shut_down", 0x8007274Au, 10058, EPIPE},
    {peer_errc::would_block, 18, "would_block", 0x80072733u, 10035, EWOULDBLOCK},
    {peer_errc::message_size, 19, "message_size", 0x80072738u, 10040, EMSGSIZE},
    {peer_errc::host_unreachable, 20, "host_unreachable", 0x80072751u, 10065, EHOSTUNREACH},
    {peer_errc::connection_aborted, 21, "connection_aborted", 0x80072745u, 10053, ECONNABORTED},
    {peer_errc::connection_reset, 22, "connection_reset", 0x80072746u, 10054, ECONNRESET},
    {peer_errc::timed_out, 23, "timed_out", 0x80637005u, 10060, ETIMEDOUT},
    {peer_errc::operation_aborted, 24, "operation_aborted", 0x800703E3u, 995, ECANCELED},
    {peer_errc::network_unreachable, 25, "network_unreachable", 0x80072743u, 10051, ENETUNREACH},
    {peer_errc::address_in_use, 26, "address_in_use", 0x80072740u, 10048, EADDRINUSE},
    {peer_errc::address_not_available, 27, "address_not_available", 0x80072741u, 10049, EADDRNOTAVAIL},
    {peer_errc::connect_self, 28, "connect_self", 0x80630106u, 0, 0},
    {peer_errc::connection_refused, 29, "connection_refused", 0x8063010Bu, 10061, ECONNREFUSED},
    {peer_errc::connection_failed, 30, "connection_failed", 0x80630109u, 0, 0},
    {peer_errc::not_authenticated, 31, "not_authenticated", 0x8063010Au, 0, 0},
    {peer_errc::graph_shutting_down, 32, "graph_shutting_down", 0x80630014u, 0, 0},
    {peer_errc::already_listening, 33, "already_listening", 0x80630107u, 0, 0},
    {peer_errc::protocol_error, 34, "protocol_error", 0x8007000Du, 0, EPROTO},
    {peer_errc::unsupported_version, 35, "unsupported_version", 0x80632090u, 0, 0},
    {peer_errc::frame_too_large, 36, "frame_too_large", 0x80630304u, 0, EMSGSIZE},
    {peer_errc::invalid_address, 37, "invalid_address", 0x80637007u, 0, 0},
    {peer_errc::graph_not_ready, 38, "graph_not_ready", 0x80630013u, 0, 0},
    {peer_errc::node_not_found, 39, "node_not_found", 0x80630108u, 0, 0},
    {peer_errc::not_direct_connection, 40, "not_direct_connection", 0x80070057u, 0, EINVAL},
    {peer_errc::connection_closed, 41, "connection_closed", 0x80072775u, 10101, 0},
    {peer_errc::limit_exceeded, 42, "limit_exceeded", 0x80072728u, 10024, 0},
    {peer_errc::not_found, 43, "not_found", 0x80070490u, 0, 0},
    {peer_errc::unknown_error, 44, "unknown_error", 0x80004005u, 0, 0},
    {peer_errc::wrong_graph, 45, "wrong_graph", 0x80070041u, 0, 0},
    {peer_errc::record_not_found, 46, "record_not_found", 0x80630301u, 0, 0},
    {peer_errc::max_record_size_exceeded, 47, "max_record_size_exceeded", 0x80630304u, 0, 0},
    {peer_errc::invalid_attributes, 48, "invalid_attributes", 0x80630602u, 0, 0},
    {peer_errc::invalid_search, 49, "invalid_search", 0x80630601u, 0, 0},
    {peer_errc::invalid_record, 50, "invalid_record", 0x80632010u, 0, 0},
    {peer_errc::record_store_failed, 51, "record_store_failed", 0x80630300u, 0, 0},
    {peer_errc::graph_in_use, 52, "graph_in_use", 0x80630015u, 0, 0},
};

// The conditions whose HRESULT belongs to another condition first: not_direct_connection's E_INVALIDARG (and its
// errno, EINVAL) is invalid_argument's, max_record_size_exceeded's PEER_E_MAX_RECORD_SIZE_EXCEEDED is
// frame_too_large's; and frame_too_large's errno (EMSGSIZE) is message_size's. Their reverse mappings give that
// other condition.
peer_errc hresult_owner(peer_errc code)
{
  if (code == peer_errc::not_direct_connection)
    return peer_errc::invalid_argument;
  if (code == peer_errc::max_record_size_exceeded)
    return peer_errc::frame_too_large;
  return code;
}

peer_errc reverse_of_condition(peer_errc code)
{
  if (code == peer_errc::not_direct_connection)
    return peer_errc::invalid_argument;
  if (code == peer_errc::frame_too_large)
    return peer_errc::message_size;
  return code;
}

// Conditions with a Winsock code whose HRESULT is nevertheless a named one (E_*, PEER_E_*), not HRESULT_FROM_WIN32.
bool has_named_hresult(peer_errc code)
{
  switch (code) {
  case peer_errc::invalid_argument:   // E_INVALIDARG
  case peer_errc::out_of_memory:      // E_OUTOFMEMORY
  case peer_errc::not_initialized:    // PEER_E_NOT_INITIALIZED
  case peer_errc::already_exists:     // PEER_E_ALREADY_EXISTS
  case peer_errc::timed_out:          // PEER_E_TIMEOUT
  case peer_errc::connection_refused: // PEER_E_CONNECTION_REFUSED
    return true;
  default:
    return false;
  }
}

struct errno_case
{
  int errno_value;
  peer_errc code;
};

// Every errno the mapping knows (several share a condition).
const errno_case errno_cases[] = {
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

struct code_case
{
  std::error_code ec;
  peer_errc code;
};

// A category from some other library that declares std::errc equivalents, as a TLS or HTTP library would.
class foreign_category final : public std::error_category
{
public:
  const char* name() const noexcept override { return "foreign"; }
  std::string message(int value) const override { return "foreign error " + std::to_string(value); }
  std::error_condition default_error_condition(int value) const noexcept override
  {
    if (value == 1)
      return std::errc::connection_reset;
    return std::error_condition(value, *this);
  }
};

const foreign_category& foreign() noexcept
{
  static const foreign_category instance;
  return instance;
}

peer_error returns_peer_errc()
{
  return peer_errc::graph_not_ready;
}

peergraph::expected<int, peer_error> find_node(bool present)
{
  if (!present)
    return peergraph::unexpected(peer_errc::node_not_found);
  return 7;
}

peergraph::expected<void, peer_error> close_socket(const std::error_code& ec)
{
  if (ec)
    return peergraph::unexpected(peer_error(ec));
  return {};
}

} // namespace

TEST_SUITE_BEGIN("error");

TEST_CASE("peer_errc values are stable and all_peer_errc lists each once, in order")
{
  REQUIRE(std::size(expected_rows) == peergraph::all_peer_errc.size());
  for (std::size_t i = 0; i < peergraph::all_peer_errc.size(); ++i) {
    CAPTURE(i);
    CHECK(peergraph::all_peer_errc[i] == expected_rows[i].code);
    CHECK(static_cast<int>(expected_rows[i].code) == expected_rows[i].value);
    CHECK(expected_rows[i].value == static_cast<int>(i) + 1);
  }
  static_assert(static_cast<int>(peer_errc::invalid_argument) == 1, "0 is success; the first condition is 1");
  static_assert(static_cast<int>(peer_errc::unknown_error) == 44);
  static_assert(static_cast<int>(peer_errc::wrong_graph) == 45);
  static_assert(static_cast<int>(peer_errc::invalid_record) == 50);
  static_assert(static_cast<int>(peer_errc::record_store_failed) == 51);
  static_assert(static_cast<int>(peer_errc::graph_in_use) == 52);
  static_assert(std::is_same_v<std::underlying_type_t<peer_errc>, int>);
}

TEST_CASE("every enumerator has a distinct, non-empty message and name")
{
  std::set<std::string> messages;
  std::set<std::string_view> names;
  for (const expected_row& row : expected_rows) {
    CAPTURE(row.code);
    const std::string message = peergraph::peer_category().message(row.value);
    CHECK(!message.empty());
    CHECK(message != "unknown peergraph error");
    CHECK(messages.insert(message).second);
    CHECK(peergraph::peer_errc_name(row.code) == row.name);
    CHECK(names.insert(peergraph::peer_errc_name(row.code)).second);
    CHECK(peergraph::make_error_code(row.code).message() == message);
  }
  CHECK(messages.size() == peergraph::all_peer_errc.size());
  CHECK(peergraph::peer_category().message(static_cast<int>(peer_errc::connection_reset)) ==
        "connection reset by peer");
  CHECK(peergraph::peer_category().message(static_cast<int>(peer_errc::timed_out)) == "timed out");
}

TEST_CASE("values outside the enumeration get the generic message and name")
{
  for (const int value : {0, -1, 53, 1000}) {
    CAPTURE(value);
    CHECK(peergraph::peer_category().message(value) == "unknown peergraph error");
    CHECK(peergraph::peer_errc_name(static_cast<peer_errc>(value)) == "unknown");
  }
  std::ostringstream os;
  os << peer_errc::connection_refused << ' ' << static_cast<peer_errc>(99);
  CHECK(os.str() == "connection_refused unknown");
}

TEST_CASE("the category is a single object named peergraph")
{
  CHECK(std::string_view(peergraph::peer_category().name()) == "peergraph");
  CHECK(&peergraph::peer_category() == &peergraph::peer_category());
  CHECK(peergraph::peer_category() != std::generic_category());
  CHECK(peergraph::peer_category() != std::system_category());
}

TEST_CASE("every enumerator round-trips through std::error_code")
{
  static_assert(std::is_error_code_enum_v<peer_errc>);
  static_assert(!std::is_error_condition_enum_v<peer_errc>);
  for (const peer_errc code : peergraph::all_peer_errc) {
    CAPTURE(code);
    const std::error_code ec = code; // implicit, through ADL make_error_code
    CHECK(ec);
    CHECK(ec == code);
    CHECK(ec.category() == peergraph::peer_category());
    CHECK(ec.value() == static_cast<int>(code));
    CHECK(ec == peergraph::make_error_code(code));
    CHECK(peergraph::to_peer_errc(ec) == code);
    CHECK(peer_error(ec).code() == code);
    CHECK_FALSE(peer_error(ec).has_cause()); // a peergraph code is its own cause
    for (const peer_errc other : peergraph::all_peer_errc)
      if (other != code)
        CHECK(ec != other);
  }
  // Out-of-range peergraph codes are not conditions.
  CHECK(peergraph::to_peer_errc(std::error_code(53, peergraph::peer_category())) == peer_errc::unknown_error);
  CHECK(peergraph::to_peer_errc(std::error_code(-3, peergraph::peer_category())) == peer_errc::unknown_error);
}

TEST_CASE("default_error_condition maps to std::errc where one fits, otherwise to itself")
{
  for (const expected_row& row : expected_rows) {
    CAPTURE(row.code);
    const std::error_code ec = row.code;
    const std::error_condition condition = ec.default_error_condition();
    if (row.condition_errno != 0) {
      CHECK(condition.category() == std::generic_category());
      CHECK(condition.value() == row.condition_errno);
      CHECK(ec == static_cast<std::errc>(row.condition_errno));
    } else {
      CHECK(condition.category() == peergraph::peer_category());
      CHECK(condition.value() == row.value);
    }
  }
  // The conditions named in the interface, spelled out.
  CHECK(std::error_code(peer_errc::connection_reset) == std::errc::connection_reset);
  CHECK(std::error_code(peer_errc::would_block) == std::errc::operation_would_block);
#if EAGAIN == EWOULDBLOCK // one errno on Linux; MinGW's C runtime has two
  CHECK(std::error_code(peer_errc::would_block) == std::errc::resource_unavailable_try_again);
#endif
  CHECK(std::error_code(peer_errc::timed_out) == std::errc::timed_out);
  CHECK(std::error_code(peer_errc::invalid_argument) == std::errc::invalid_argument);
  CHECK(std::error_code(peer_errc::operation_aborted) == std::errc::operation_canceled);
  CHECK(std::error_code(peer_errc::shut_down) == std::errc::broken_pipe);
  CHECK(std::error_code(peer_errc::message_size) == std::errc::message_size);
  CHECK(std::error_code(peer_errc::out_of_memory) == std::errc::not_enough_memory);
  CHECK(std::error_code(peer_errc::connection_refused) == std::errc::connection_refused);
  CHECK(std::error_code(peer_errc::connection_reset) != std::errc::connection_aborted);
  CHECK(std::error_code(peer_errc::connect_self) != std::errc::connection_refused);
  CHECK(std::error_code(peer_errc::unknown_error) != std::errc::invalid_argument);
}

TEST_CASE("errno values map to their condition, directly and through the system and generic categories")
{
  for (const errno_case& c : errno_cases) {
    CAPTURE(c.errno_value);
    CAPTURE(c.code);
    CHECK(peergraph::errno_to_peer_errc(c.errno_value) == c.code);
    const std::error_code generic(c.errno_value, std::generic_category());
    CHECK(peergraph::to_peer_errc(generic) == c.code);
#if !defined(_WIN32) // Windows' system category holds Win32 and Winsock codes: see the next test
    const std::error_code system(c.errno_value, std::system_category());
    CHECK(peergraph::to_peer_errc(system) == c.code);
    const peer_error error(system);
    CHECK(error == c.code);
    CHECK(error.cause() == system);
#endif
  }
  for (const int unmapped : {0, -1, EDOM, ENOTDIR, EISDIR, ESPIPE, 99999}) {
    CAPTURE(unmapped);
    CHECK(peergraph::errno_to_peer_errc(unmapped) == peer_errc::unknown_error);
  }
  CHECK(peergraph::to_peer_errc(std::error_code()) == peer_errc::unknown_error); // success is not a condition
}

#if defined(_WIN32)
TEST_CASE("Winsock codes in the system category, as Windows reports them, map to their condition")
{
  for (const expected_row& row : expected_rows) {
    if (row.wsa == 0)
      continue;
    CAPTURE(row.code);
    const std::error_code system(row.wsa, std::system_category());
    CHECK(peergraph::to_peer_errc(system) == row.code);
    const peer_error error(system);
    CHECK(error == row.code);
    CHECK(error.cause() == system);
    CHECK(error.wsa_error() == row.wsa);
  }
}
#endif

TEST_CASE("peer_errc -> std::errc condition -> errno -> peer_errc comes back where an errno exists")
{
  int with_errno = 0;
  for (const expected_row& row : expected_rows) {
    if (row.condition_errno == 0)
      continue;
    CAPTURE(row.code);
    ++with_errno;
    const std::error_code ec = row.code;
    const int errno_value = ec.default_error_condition().value();
    CHECK(errno_value == row.condition_errno);
    CHECK(peergraph::errno_to_peer_errc(errno_value) == reverse_of_condition(row.code));
  }
  CHECK(with_errno == 28);
}

TEST_CASE("Asio error values map to their condition")
{
  namespace ae = asio::error;
  const code_case cases[] = {
      {ae::operation_aborted, peer_errc::operation_aborted},
      {ae::eof, peer_errc::connection_closed},
      {ae::connection_reset, peer_errc::connection_reset},
      {ae::broken_pipe, peer_errc::shut_down},
      {ae::shut_down, peer_errc::shut_down},
      {ae::would_block, peer_errc::would_block},
      {ae::try_again, peer_errc::would_block},
      {ae::connection_refused, peer_errc::connection_refused},
      {ae::connection_aborted, peer_errc::connection_aborted},
      {ae::timed_out, peer_errc::timed_out},
      {ae::host_unreachable, peer_errc::host_unreachable},
      {ae::network_unreachable, peer_errc::network_unreachable},
      {ae::network_down, peer_errc::network_down},
      {ae::network_reset, peer_errc::network_reset},
      {ae::not_connected, peer_errc::not_connected},
      {ae::already_connected, peer_errc::already_exists},
      {ae::message_size, peer_errc::message_size},
      {ae::no_buffer_space, peer_errc::no_buffer_space},
      {ae::no_memory, peer_errc::out_of_memory},
      {ae::access_denied, peer_errc::access_denied},
      {ae::no_permission, peer_errc::access_denied},
      {ae::address_in_use, peer_errc::address_in_use},
      {ae::interrupted, peer_errc::interrupted},
      {ae::in_progress, peer_errc::in_progress},
      {ae::already_started, peer_errc::in_progress},
      {ae::fault, peer_errc::bad_address},
      {ae::bad_descriptor, peer_errc::not_a_socket},
      {ae::not_socket, peer_errc::not_a_socket},
      {ae::invalid_argument, peer_errc::invalid_argument},
      {ae::operation_not_supported, peer_errc::op_not_supported},
      {ae::address_family_not_supported, peer_errc::op_not_supported},
      {ae::no_protocol_option, peer_errc::op_not_supported},
      {ae::no_descriptors, peer_errc::limit_exceeded},
      {ae::name_too_long, peer_errc::invalid_address},
      {ae::no_such_device, peer_errc::unknown_error},
      // misc category
      {ae::already_open, peer_errc::already_exists},
      {ae::not_found, peer_errc::not_found},
      {ae::fd_set_failure, peer_errc::limit_exceeded},
      // netdb and addrinfo categories
      {ae::host_not_found, peer_errc::invalid_address},
      {ae::host_not_found_try_again, peer_errc::host_unreachable},
      {ae::no_data, peer_errc::invalid_address},
      {ae::no_recovery, peer_errc::unknown_error},
      {ae::service_not_found, peer_errc::invalid_address},
      {ae::socket_type_not_supported, peer_errc::op_not_supported},
  };
  for (const code_case& c : cases) {
    const std::string category = c.ec.category().name();
    CAPTURE(category);
    CAPTURE(c.ec.value());
    CHECK(peergraph::to_peer_errc(c.ec) == c.code);
    const peer_error error(c.ec);
    CHECK(error == c.code);
    CHECK(error.has_cause());
    CHECK(error.cause() == c.ec);
    CHECK(peergraph::make_peer_error(c.ec).cause() == c.ec);
  }
  // Codes of the misc, netdb and addrinfo categories that are not Asio's named values.
  CHECK(peergraph::to_peer_errc(std::error_code(77, asio::error::get_misc_category())) == peer_errc::unknown_error);
  CHECK(peergraph::to_peer_errc(std::error_code(77, asio::error::get_netdb_category())) == peer_errc::unknown_error);
  CHECK(peergraph::to_peer_errc(std::error_code(77, asio::error::get_addrinfo_category())) == peer_errc::unknown_error);
}

TEST_CASE("codes of other categories map through their std::errc equivalent, or to unknown_error")
{
  CHECK(peergraph::to_peer_errc(std::error_code(1, foreign())) == peer_errc::connection_reset);
  CHECK(peergraph::to_peer_errc(std::error_code(2, foreign())) == peer_errc::unknown_error);
  CHECK(peergraph::to_peer_errc(std::make_error_code(std::io_errc::stream)) == peer_errc::unknown_error);
  const peer_error error(std::error_code(2, foreign()));
  CHECK(error == peer_errc::unknown_error);
  CHECK(error.cause() == std::error_code(2, foreign()));
  CHECK(error.message() == "unknown error (foreign:2 foreign error 2)");
}

TEST_CASE("errors produced by real Asio operations on loopback map to their condition")
{
  asio::io_context ctx;

  SUBCASE("connecting to a bound port with no listener is connection_refused")
  {
    // Holding the port bound (but not listening) keeps anyone else from taking it: the refusal is certain.
    asio::ip::tcp::socket holder(ctx, asio::ip::tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    asio::ip::tcp::socket client(ctx);
    std::error_code ec;
    client.connect(holder.local_endpoint(), ec);
    REQUIRE(ec);
    const peer_error error(ec);
    CHECK(error == peer_errc::connection_refused);
    CHECK(error.cause() == ec);
    CHECK(error.wsa_error() == 10061);
  }

#if !defined(_WIN32) // AF_UNIX socket pairs: Asio makes them on Windows 10, Wine cannot
  SUBCASE("reads and writes on a socket whose peer has closed")
  {
    asio::local::stream_protocol::socket a(ctx);
    asio::local::stream_protocol::socket b(ctx);
    asio::local::connect_pair(a, b);
    b.close();

    std::array<char, 16> data{};
    std::error_code read_ec;
    const std::size_t read = a.read_some(asio::buffer(data), read_ec);
    CHECK(read == 0);
    CHECK(peer_error(read_ec) == peer_errc::connection_closed);
    CHECK(read_ec == asio::error::eof);

    std::error_code write_ec;
    const std::size_t written = a.write_some(asio::buffer(data), write_ec);
    CHECK(written == 0);
    CHECK(peer_error(write_ec) == peer_errc::shut_down); // EPIPE
  }

  SUBCASE("a non-blocking read with nothing to read is would_block")
  {
    asio::local::stream_protocol::socket a(ctx);
    asio::local::stream_protocol::socket b(ctx);
    asio::local::connect_pair(a, b);
    a.non_blocking(true);
    std::array<char, 16> data{};
    std::error_code ec;
    CHECK(a.read_some(asio::buffer(data), ec) == 0);
    CHECK(peer_error(ec) == peer_errc::would_block);
  }
#endif

  SUBCASE("a cancelled wait is operation_aborted")
  {
    asio::steady_timer timer(ctx, std::chrono::hours(1));
    std::error_code result;
    bool called = false;
    timer.async_wait([&](const std::error_code& ec) {
      called = true;
      result = ec;
    });
    timer.cancel();
    ctx.run_for(std::chrono::seconds(5));
    REQUIRE(called);
    CHECK(peer_error(result) == peer_errc::operation_aborted);
    CHECK(result == asio::error::operation_aborted);
  }
}

TEST_CASE("to_hresult gives the Windows value of every condition and from_hresult inverts it")
{
  std::set<std::uint32_t> seen;
  for (const expected_row& row : expected_rows) {
    CAPTURE(row.code);
    CHECK(peergraph::to_hresult(row.code) == row.hresult);
    CHECK((row.hresult & 0x80000000u) != 0); // every value is a failure HRESULT
    CHECK(peer_error(row.code).hresult() == row.hresult);
    if (hresult_owner(row.code) != row.code) {
      CHECK(peergraph::from_hresult(row.hresult) == hresult_owner(row.code));
      continue;
    }
    CHECK(peergraph::from_hresult(row.hresult) == row.code);
    CHECK(seen.insert(row.hresult).second); // distinct
    // A Winsock condition's HRESULT is HRESULT_FROM_WIN32 of its Winsock code, unless a named HRESULT exists.
    if (row.wsa != 0 && !has_named_hresult(row.code))
      CHECK(row.hresult == (0x80070000u | static_cast<std::uint32_t>(row.wsa)));
  }
  CHECK(seen.size() == peergraph::all_peer_errc.size() - 2);
  CHECK(peergraph::to_hresult(static_cast<peer_errc>(0)) == 0x80004005u);
  CHECK(peergraph::to_hresult(static_cast<peer_errc>(53)) == 0x80004005u);
}

TEST_CASE("from_hresult accepts common equivalents and rejects unknown and success values")
{
  struct
  {
    std::uint32_t hresult;
    peer_errc code;
  } const cases[] = {
      {0x80070005u, peer_errc::access_denied},      // E_ACCESSDENIED
      {0x80004004u, peer_errc::operation_aborted},  // E_ABORT
      {0x80004001u, peer_errc::op_not_supported},   // E_NOTIMPL
      {0x80004003u, peer_errc::bad_address},        // E_POINTER
      {0x80630301u, peer_errc::record_not_found},   // PEER_E_RECORD_NOT_FOUND
      {0x80630012u, peer_errc::already_exists},     // PEER_E_DUPLICATE_GRAPH
      {0x80072726u, peer_errc::invalid_argument},   // HRESULT_FROM_WIN32(WSAEINVAL)
      {0x8007276Du, peer_errc::not_initialized},    // HRESULT_FROM_WIN32(WSANOTINITIALISED)
      {0x8007274Cu, peer_errc::timed_out},          // HRESULT_FROM_WIN32(WSAETIMEDOUT)
      {0x8007274Du, peer_errc::connection_refused}, // HRESULT_FROM_WIN32(WSAECONNREFUSED)
      {0x80070008u, peer_errc::out_of_memory},      // HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_MEMORY)
      {0x800705B4u, peer_errc::timed_out},          // HRESULT_FROM_WIN32(ERROR_TIMEOUT)
      {0x80072735u, peer_errc::in_progress},        // HRESULT_FROM_WIN32(WSAEALREADY)
      {0x80072AF9u, peer_errc::invalid_address},    // HRESULT_FROM_WIN32(WSAHOST_NOT_FOUND)
      {0x00000000u, peer_errc::unknown_error},      // S_OK
      {0x00630001u, peer_errc::unknown_error},      // PEER_S_GRAPH_DATA_CREATED
      {0x80004005u, peer_errc::unknown_error},      // E_FAIL
      {0x80630001u, peer_errc::unknown_error},      // PEER_E_IPV6_NOT_INSTALLED: no condition of ours
      {0x80631234u, peer_errc::unknown_error},
      {0x80073039u, peer_errc::unknown_error}, // HRESULT_FROM_WIN32(12345)
  };
  for (const auto& c : cases) {
    CAPTURE(c.hresult);
    CHECK(peergraph::from_hresult(c.hresult) == c.code);
  }
}

TEST_CASE("to_wsa_error gives the Winsock code of every condition and from_wsa_error inverts it")
{
  std::set<int> seen;
  int with_code = 0;
  for (const expected_row& row : expected_rows) {
    CAPTURE(row.code);
    CHECK(peergraph::to_wsa_error(row.code) == row.wsa);
    CHECK(peer_error(row.code).wsa_error() == row.wsa);
    if (row.wsa == 0)
      continue;
    ++with_code;
    CHECK(peergraph::from_wsa_error(row.wsa) == row.code);
    CHECK(seen.insert(row.wsa).second); // distinct
  }
  CHECK(with_code == 28);
  // Every error of the send / LPWSPSend tables has its own condition.
  for (const int code : {10093, 10050, 10013, 10004, 10036, 10014, 10052, 10055, 10057, 10038,
                         10045, 10058, 10035, 10040, 10065, 10022, 10053, 10054, 10060, 995}) {
    CAPTURE(code);
    const peer_errc condition = peergraph::from_wsa_error(code);
    CHECK(condition != peer_errc::unknown_error);
    CHECK(peergraph::to_wsa_error(condition) == code);
  }
  CHECK(peergraph::to_wsa_error(static_cast<peer_errc>(0)) == 0);
  CHECK(peergraph::to_wsa_error(static_cast<peer_errc>(53)) == 0);
}

TEST_CASE("from_wsa_error accepts codes that share a condition and rejects unknown ones")
{
  struct
  {
    int wsa;
    peer_errc code;
  } const cases[] = {
      {87, peer_errc::invalid_argument},     // WSA_INVALID_PARAMETER
      {14, peer_errc::out_of_memory},        // ERROR_OUTOFMEMORY
      {183, peer_errc::already_exists},      // ERROR_ALREADY_EXISTS
      {5, peer_errc::access_denied},         // ERROR_ACCESS_DENIED
      {10037, peer_errc::in_progress},       // WSAEALREADY
      {10009, peer_errc::not_a_socket},      // WSAEBADF
      {10047, peer_errc::op_not_supported},  // WSAEAFNOSUPPORT
      {10043, peer_errc::op_not_supported},  // WSAEPROTONOSUPPORT
      {10044, peer_errc::op_not_supported},  // WSAESOCKTNOSUPPORT
      {10042, peer_errc::op_not_supported},  // WSAENOPROTOOPT
      {10064, peer_errc::host_unreachable},  // WSAEHOSTDOWN
      {1460, peer_errc::timed_out},          // ERROR_TIMEOUT
      {10103, peer_errc::operation_aborted}, // WSAECANCELLED
      {10091, peer_errc::network_down},      // WSASYSNOTREADY
      {13, peer_errc::protocol_error},       // ERROR_INVALID_DATA
      {10039, peer_errc::invalid_address},   // WSAEDESTADDRREQ
      {11001, peer_errc::invalid_address},   // WSAHOST_NOT_FOUND
      {11004, peer_errc::invalid_address},   // WSANO_DATA
      {11002, peer_errc::host_unreachable},  // WSATRY_AGAIN
      {10067, peer_errc::limit_exceeded},    // WSAEPROCLIM
      {1168, peer_errc::not_found},          // ERROR_NOT_FOUND
      {109, peer_errc::shut_down},           // ERROR_BROKEN_PIPE: Asio's broken_pipe on Windows
      {1237, peer_errc::would_block},        // ERROR_RETRY: Asio's try_again on Windows
      {10063, peer_errc::invalid_address},   // WSAENAMETOOLONG
      {10109, peer_errc::invalid_address},   // WSATYPE_NOT_FOUND: Asio's service_not_found on Windows
      {0, peer_errc::unknown_error},         {-1, peer_errc::unknown_error},
      {1, peer_errc::unknown_error},         {12345, peer_errc::unknown_error},
  };
  for (const auto& c : cases) {
    CAPTURE(c.wsa);
    CHECK(peergraph::from_wsa_error(c.wsa) == c.code);
  }
}

TEST_CASE("peer_error: construction")
{
  static_assert(std::is_trivially_copyable_v<peer_error>);
  static_assert(std::is_nothrow_copy_constructible_v<peer_error>);
  static_assert(sizeof(peer_error) <= 24); // the condition, the cause and bytes_transferred()
  static_assert(std::is_convertible_v<peer_errc, peer_error>, "return unexpected(peer_errc::x) needs this");
  static_assert(std::is_nothrow_constructible_v<peer_error, peer_errc>);
  static_assert(!std::is_convertible_v<std::error_code, peer_error>, "from error_code is explicit");
  static_assert(std::is_nothrow_constructible_v<peer_error, std::error_code>);
  static_assert(peer_error().code() == peer_errc::unknown_error);
  static_assert(peer_error(peer_errc::timed_out).code() == peer_errc::timed_out);
  static_assert(peer_error(peer_errc::timed_out) == peer_errc::timed_out);

  SUBCASE("default: unknown_error with no cause")
  {
    const peer_error error;
    CHECK(error.code() == peer_errc::unknown_error);
    CHECK_FALSE(error.has_cause());
    CHECK(error.cause() == peer_errc::unknown_error);
    CHECK(error.message() == "unknown error");
  }
  SUBCASE("implicit from peer_errc")
  {
    const peer_error error = peer_errc::connection_not_found;
    CHECK(error.code() == peer_errc::connection_not_found);
    CHECK_FALSE(error.has_cause());
    CHECK(error.cause() == peergraph::make_error_code(peer_errc::connection_not_found));
    CHECK(error.as_error_code() == peer_errc::connection_not_found);
    CHECK(returns_peer_errc() == peer_errc::graph_not_ready);
  }
  SUBCASE("with a cause, which is kept")
  {
    const std::error_code cause(native_connection_reset, std::system_category());
    const peer_error error(peer_errc::connection_failed, cause);
    CHECK(error.code() == peer_errc::connection_failed);
    CHECK(error.has_cause());
    CHECK(error.cause() == cause);
    CHECK(error.as_error_code() == peer_errc::connection_failed);
    const peer_error copy = error;
    CHECK(copy.cause() == cause);
  }
  SUBCASE("a success cause, or the code itself, is no cause")
  {
    CHECK_FALSE(peer_error(peer_errc::timed_out, std::error_code()).has_cause());
    CHECK_FALSE(peer_error(peer_errc::timed_out, peergraph::make_error_code(peer_errc::timed_out)).has_cause());
    CHECK(peer_error(peer_errc::timed_out, peergraph::make_error_code(peer_errc::interrupted)).has_cause());
  }
  SUBCASE("from a std::error_code")
  {
    const std::error_code ec = asio::error::connection_reset;
    const peer_error error(ec);
    CHECK(error.code() == peer_errc::connection_reset);
    CHECK(error.cause() == ec);
    CHECK(error.as_error_code() == peer_errc::connection_reset);
    CHECK(error.hresult() == 0x80072746u);
    CHECK(error.wsa_error() == 10054);
  }
}

TEST_CASE("peer_error: equality compares the condition")
{
  const peer_error plain = peer_errc::connection_reset;
  const peer_error from_system(std::error_code(native_connection_reset, std::system_category()));
  const peer_error from_generic(std::error_code(ECONNRESET, std::generic_category()));
  CHECK(plain == from_system);
  CHECK(from_system == from_generic);
  CHECK(plain == peer_errc::connection_reset);
  CHECK(peer_errc::connection_reset == plain);
  CHECK(plain != peer_errc::connection_aborted);
  CHECK(peer_errc::connection_aborted != plain);
  CHECK(plain != peer_error(peer_errc::connection_aborted));
  CHECK(from_system.cause() != from_generic.cause()); // equal errors may still differ in their detail
}

TEST_CASE("peer_error: message reads well in a log line")
{
  const std::error_code system(native_connection_reset, std::system_category());
  const peer_error with_cause(system);
  CHECK(with_cause.message() == "connection reset by peer (system:" + std::to_string(native_connection_reset) + " " +
                                    std::system_category().message(native_connection_reset) + ")");

  const peer_error from_asio(asio::error::eof);
  CHECK(from_asio.message() == "connection closed (asio.misc:2 End of file)");

  CHECK(peer_error(peer_errc::frame_too_large).message() == "frame larger than the maximum size");
  CHECK(peer_error(static_cast<peer_errc>(99)).message() == "unknown peergraph error");

  const peer_error out_of_range(std::error_code(99, peergraph::peer_category()));
  CHECK(out_of_range == peer_errc::unknown_error);
  CHECK(out_of_range.message() == "unknown error (peergraph:99 unknown peergraph error)");

  std::ostringstream os;
  os << with_cause;
  CHECK(os.str() == with_cause.message());
}

TEST_CASE("peer_error is the error of an expected")
{
  const auto missing = find_node(false);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error() == peer_errc::node_not_found);
  CHECK(missing.error().hresult() == 0x80630108u);
  CHECK(find_node(true).value() == 7);

  const auto failed = close_socket(asio::error::bad_descriptor);
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error() == peer_errc::not_a_socket);
  CHECK(failed.error().cause() == asio::error::bad_descriptor);
  CHECK(close_socket(std::error_code()).has_value());
}

TEST_SUITE_END();
