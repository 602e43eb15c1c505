#include <peergraph/send.hpp>
// The header under test comes first: it must be self-contained.

#include "support/allocation_counter.hpp"
#include "support/co_test.hpp"
#include "support/error_text.hpp"
#include "support/socket_pair.hpp"

#include <peergraph/detail/asio_compat.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_future.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#if !defined(_WIN32)
#include <sys/ioctl.h>
#include <sys/socket.h>
#endif

#if PEERGRAPH_HAS_MSG_ZEROCOPY
#include <linux/sockios.h>
#endif

namespace {

using peergraph::peer_errc;
using peergraph::send_flags;
using peergraph::wsabuf;
using peergraph::test::error_text;
using peergraph::test::pattern;
using peergraph::test::tcp_pair;
using tcp_socket = asio::ip::tcp::socket;

constexpr auto use_tuple = peergraph::detail::asio_compat::use_awaitable_tuple;

wsabuf as_wsabuf(std::span<const std::byte> bytes)
{
  return wsabuf{static_cast<std::uint32_t>(bytes.size()), reinterpret_cast<const char*>(bytes.data())};
}

/// Reads exactly `size` bytes from `socket` into `out`.
template <class Socket>
asio::awaitable<void> read_exactly(Socket& socket, std::vector<std::byte>& out, std::size_t size)
{
  out.resize(size);
  auto [ec, n] = co_await asio::async_read(socket, asio::buffer(out), use_tuple);
  REQUIRE_MESSAGE(!ec, ec.message());
  REQUIRE(n == size);
}

/// A reader that drains slowly: small reads with pauses, so that the sender's kernel buffer keeps filling up.
template <class Socket>
asio::awaitable<void> read_slowly(Socket& socket, std::vector<std::byte>& out, std::size_t size)
{
  out.resize(size);
  asio::steady_timer pause(socket.get_executor());
  std::size_t received = 0;
  for (std::size_t round = 0; received < size && round < 1'000'000; ++round) {
    const std::size_t chunk = std::min<std::size_t>(size - received, 64 * 1024);
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(out.data() + received, chunk), use_tuple);
    REQUIRE_MESSAGE(!ec, ec.message());
    received += n;
    if (round % 8 == 0) {
      pause.expires_after(std::chrono::microseconds(200));
      co_await pause.async_wait(use_tuple);
    }
  }
  REQUIRE(received == size);
}

} // namespace

TEST_SUITE_BEGIN("send");

CO_TEST_CASE("a send the kernel takes at once completes without suspending (POSIX) or through the port (Windows)")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  const auto data = pattern(1, 64);
  bool other_work_ran = false;
  asio::post(ctx, [&] { other_work_ran = true; });

  auto sent = co_await peergraph::async_send(a, asio::buffer(data));

  REQUIRE(sent.has_value());
  CHECK(*sent == data.size());
#if defined(_WIN32)
  // The socket had room, so WSASend returned 0; the completion still came through the port, after the work posted
  // before the send.
  CHECK(other_work_ran);
#else
  // The posted function would have run had the coroutine gone back to the executor.
  CHECK_FALSE(other_work_ran);
#endif

  std::vector<std::byte> received;
  co_await read_exactly(b, received, data.size());
  CHECK(received == data);
}

CO_TEST_CASE("the descriptor array is captured at the call, so a stack array may die before the send is awaited")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  const auto first = pattern(2, 100);
  const auto second = pattern(3, 300);

  auto start_send = [&]() {
    // The array lives in this lambda's frame only; the operation is awaited after the frame is gone.
    std::array<wsabuf, 2> descriptors{as_wsabuf(first), as_wsabuf(second)};
    return peergraph::async_send(a, std::span<const wsabuf>(descriptors));
  };
  auto operation = start_send();
  // Reuse the stack region the array occupied.
  volatile char scribble[256];
  for (auto& c : scribble)
    c = 'x';

  auto sent = co_await std::move(operation);
  REQUIRE(sent.has_value());
  CHECK(*sent == first.size() + second.size());

  std::vector<std::byte> received;
  co_await read_exactly(b, received, first.size() + second.size());
  CHECK(std::equal(first.begin(), first.end(), received.begin()));
  CHECK(std::equal(second.begin(), second.end(), received.begin() + 100));
}

CO_TEST_CASE("the kernel reads the caller's own bytes: changes made while a send waits are what arrives")
{
  // Had the library copied the payload at initiation, the receiver would see the old bytes.
  auto [a, b] = tcp_pair(ctx.get_executor());
  peergraph::test::shrink_buffers(a, b);
  constexpr std::size_t size = 4 * 1024 * 1024;
  auto data = pattern(4, size);
  bool completed = false;

  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        auto sent = co_await peergraph::async_send(a, asio::buffer(data));
        REQUIRE(sent.has_value());
        CHECK(*sent == size);
        completed = true;
      },
      asio::detached);

  // The send has certainly not finished (the reader has not started); rewrite the tail it has not reached yet.
  REQUIRE_FALSE(completed);
  for (std::size_t i = size / 2; i < size; ++i)
    data[i] = ~data[i];
  const auto expected = data;

  std::vector<std::byte> received;
  co_await read_slowly(b, received, size);
  CHECK(received == expected);
  CHECK(completed);
}

CO_TEST_CASE("steady-state single-buffer sends allocate nothing on the heap")
{
  if (!peergraph::test::allocations_counted()) {
    MESSAGE("allocations are not counted in this build");
    co_return;
  }
  auto [a, b] = tcp_pair(ctx.get_executor());
  const auto data = pattern(5, 64);
  std::vector<std::byte> sink(64 * 1000);
  for (int warm_up = 0; warm_up < 10; ++warm_up)
    REQUIRE((co_await peergraph::async_send(a, asio::buffer(data))).has_value());

  const std::size_t before = peergraph::test::heap_allocations();
  for (int i = 0; i < 990; ++i) {
    auto sent = co_await peergraph::async_send(a, asio::buffer(data));
    REQUIRE(sent.has_value());
  }
  const std::size_t after = peergraph::test::heap_allocations();
  CHECK(after - before == 0);

  std::vector<std::byte> received;
  co_await read_exactly(b, received, 64 * 1000);
}

CO_TEST_CASE("one attempt puts up to IOV_MAX buffers into a single sendmsg")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  const std::size_t count = 2 * peergraph::detail::max_iovecs_per_call;
  const auto data = pattern(6, count);
  std::vector<asio::const_buffer> buffers;
  for (std::size_t i = 0; i < count; ++i)
    buffers.emplace_back(&data[i], 1);

  // One attempt on an empty socket: exactly the first IOV_MAX one-byte buffers go out (Asio would stop at 64).
  auto first = co_await peergraph::async_send_some(a, buffers);
  REQUIRE(first.has_value());
  CHECK(*first == peergraph::detail::max_iovecs_per_call);

  std::vector<std::byte> received;
  co_await read_exactly(b, received, *first);
  CHECK(std::equal(received.begin(), received.end(), data.begin()));
}

CO_TEST_CASE("10,000 buffers are sent whole and in order, with zero-length buffers skipped")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  peergraph::test::shrink_buffers(a, b);
  const auto data = pattern(7, 10'000 * 40);
  std::vector<asio::const_buffer> buffers;
  std::size_t offset = 0;
  std::size_t expected_total = 0;
  for (std::size_t i = 0; i < 10'000; ++i) {
    const std::size_t len = (i % 7 == 0) ? 0 : (i % 79) + 1; // include empty buffers
    buffers.emplace_back(data.data() + offset, len);
    offset += len;
    expected_total += len;
  }
  REQUIRE(offset <= data.size());

  std::vector<std::byte> received;
  bool sent_all = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        auto sent = co_await peergraph::async_send(a, buffers);
        REQUIRE(sent.has_value());
        CHECK(*sent == expected_total);
        sent_all = true;
      },
      asio::detached);
  co_await read_slowly(b, received, expected_total);
  CHECK(std::equal(received.begin(), received.end(), data.begin()));
  CHECK(sent_all);
}

CO_TEST_CASE("a send of zero bytes in total succeeds with 0")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  std::array<wsabuf, 3> empty{};
  auto sent = co_await peergraph::async_send(a, std::span<const wsabuf>(empty));
  REQUIRE(sent.has_value());
  CHECK(*sent == 0);
  auto none = co_await peergraph::async_send(a, std::span<const wsabuf>());
  REQUIRE(none.has_value());
  CHECK(*none == 0);
}

CO_TEST_CASE("a large send waits for writability and resumes exactly where the partial write stopped")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  peergraph::test::shrink_buffers(a, b);
  constexpr std::size_t size = 8 * 1024 * 1024;
  const auto data = pattern(8, size);
  // Three unevenly sized pieces, so that partial writes stop inside buffers and at their edges.
  std::array<asio::const_buffer, 3> pieces{asio::buffer(data.data(), 1'000'003),
                                           asio::buffer(data.data() + 1'000'003, 3'333'331),
                                           asio::buffer(data.data() + 4'333'334, size - 4'333'334)};
  bool sent_all = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        auto sent = co_await peergraph::async_send(a, pieces);
        REQUIRE(sent.has_value());
        CHECK(*sent == size);
        sent_all = true;
      },
      asio::detached);

  std::vector<std::byte> received;
  co_await read_slowly(b, received, size);
  CHECK(received == data);
  CHECK(sent_all);
}

#if !defined(_WIN32) // an overlapped send takes every byte; there is no partial send to see
CO_TEST_CASE("send_some on a full socket takes part of the buffers, like send() on a non-blocking socket")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  peergraph::test::shrink_buffers(a, b);
  const auto data = pattern(9, 4 * 1024 * 1024);
  auto taken = co_await peergraph::async_send_some(a, asio::buffer(data));
  REQUIRE(taken.has_value());
  CHECK(*taken > 0);
  CHECK(*taken < data.size());

  std::vector<std::byte> received;
  co_await read_exactly(b, received, *taken);
  CHECK(std::equal(received.begin(), received.end(), data.begin()));
}
#endif

CO_TEST_CASE("sends started from many coroutines go out in start order, never interleaved")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  peergraph::test::shrink_buffers(a, b);
  constexpr std::uint32_t senders = 40;
  constexpr std::size_t message = 100'000;
  std::vector<std::vector<std::byte>> messages;
  for (std::uint32_t i = 0; i < senders; ++i)
    messages.push_back(pattern(100 + i, message));

  std::vector<std::size_t> results(senders, 0);
  for (std::uint32_t i = 0; i < senders; ++i) {
    // co_spawn on an io_context runs each coroutine up to its first suspension in order of start.
    asio::co_spawn(
        ctx,
        [&, i]() -> asio::awaitable<void> {
          auto sent = co_await peergraph::async_send(a, asio::buffer(messages[i]));
          REQUIRE(sent.has_value());
          results[i] = *sent;
        },
        asio::detached);
  }

  std::vector<std::byte> received;
  co_await read_slowly(b, received, senders * message);
  for (std::uint32_t i = 0; i < senders; ++i) {
    CHECK(results[i] == message);
    CHECK_MESSAGE(std::equal(messages[i].begin(), messages[i].end(), received.begin() + i * message),
                  "message " << i << " is out of place");
  }
}

CO_TEST_CASE("sends work on AF_UNIX stream sockets and on IPv6")
{
  const auto data = pattern(10, 5000);
  std::vector<std::byte> received;
#if !defined(_WIN32) // AF_UNIX socket pairs: Asio makes them on Windows 10, Wine cannot
  auto [u1, u2] = peergraph::test::unix_pair(ctx.get_executor());
  auto unix_sent = co_await peergraph::async_send(u1, asio::buffer(data));
  REQUIRE(unix_sent.has_value());
  co_await read_exactly(u2, received, data.size());
  CHECK(received == data);
#endif

  auto [t1, t2] = tcp_pair(ctx.get_executor(), /*v6=*/true);
  auto sent = co_await peergraph::async_send(t1, asio::buffer(data));
  REQUIRE(sent.has_value());
  co_await read_exactly(t2, received, data.size());
  CHECK(received == data);
}

CO_TEST_CASE("a datagram is sent atomically; one too large fails with message_size and sends nothing")
{
  asio::ip::udp::socket receiver(ctx, asio::ip::udp::endpoint(asio::ip::address_v4::loopback(), 0));
  asio::ip::udp::socket sender(ctx, asio::ip::udp::v4());
  sender.connect(receiver.local_endpoint());

  const auto data = pattern(11, 70'000);
  auto too_large = co_await peergraph::async_send(sender, asio::buffer(data));
  REQUIRE_FALSE(too_large.has_value());
  CHECK(too_large.error() == peer_errc::message_size);

  std::array<asio::const_buffer, 2> parts{asio::buffer(data.data(), 10), asio::buffer(data.data() + 10, 20)};
  auto sent = co_await peergraph::async_send(sender, parts);
  REQUIRE(sent.has_value());
  CHECK(*sent == 30);
  std::array<std::byte, 100> datagram{};
  auto [ec, n] = co_await receiver.async_receive(asio::buffer(datagram), use_tuple);
  REQUIRE(!ec);
  CHECK(n == 30); // the 70,000-byte one never arrived
  CHECK(std::equal(datagram.begin(), datagram.begin() + 30, data.begin()));
}

CO_TEST_CASE("partial: stream sockets refuse it, datagram sockets join the parts into one message")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  const auto data = pattern(12, 64);
  auto refused = co_await peergraph::async_send(a, asio::buffer(data), send_flags::partial);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() == peer_errc::op_not_supported);

  asio::ip::udp::socket receiver(ctx, asio::ip::udp::endpoint(asio::ip::address_v4::loopback(), 0));
  asio::ip::udp::socket sender(ctx, asio::ip::udp::v4());
  sender.connect(receiver.local_endpoint());
  auto part = co_await peergraph::async_send(sender, asio::buffer(data.data(), 24), send_flags::partial);
#if defined(_WIN32)
  // Winsock's own MSG_PARTIAL: whether a message socket takes it is its transport's answer ("WSAEOPNOTSUPP will be
  // returned by transports which do not support partial message transmissions"; Wine's UDP takes it).
  CHECK((part.has_value() || part.error() == peer_errc::op_not_supported));
  co_return;
#endif
  REQUIRE(part.has_value());
  auto last = co_await peergraph::async_send(sender, asio::buffer(data.data() + 24, 40));
  REQUIRE(last.has_value());
  std::array<std::byte, 128> datagram{};
  auto [ec, n] = co_await receiver.async_receive(asio::buffer(datagram), use_tuple);
  REQUIRE(!ec);
  CHECK(n == 64);
  CHECK(std::equal(datagram.begin(), datagram.begin() + 64, data.begin()));
}

#if !defined(_WIN32) // reads the urgent byte with recv(MSG_OOB | MSG_DONTWAIT)
CO_TEST_CASE("out_of_band sends urgent data on TCP and is op_not_supported on UDP; do_not_route works on loopback")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  const char urgent = '!';
  auto oob = co_await peergraph::async_send(a, asio::buffer(&urgent, 1), send_flags::out_of_band);
  REQUIRE(oob.has_value());
  CHECK(*oob == 1);
  char got = 0;
  // The urgent byte can be read out of band once it has arrived; poll boundedly for it.
  asio::steady_timer pause(ctx);
  ssize_t n = -1;
  for (int i = 0; i < 200 && n != 1; ++i) {
    n = ::recv(b.native_handle(), &got, 1, MSG_OOB | MSG_DONTWAIT);
    if (n != 1) {
      pause.expires_after(std::chrono::milliseconds(5));
      co_await pause.async_wait(use_tuple);
    }
  }
  CHECK(n == 1);
  CHECK(got == '!');

  const auto data = pattern(13, 32);
  auto routed = co_await peergraph::async_send(a, asio::buffer(data), send_flags::do_not_route);
  REQUIRE(routed.has_value());
  CHECK(*routed == 32);

  asio::ip::udp::socket receiver(ctx, asio::ip::udp::endpoint(asio::ip::address_v4::loopback(), 0));
  asio::ip::udp::socket sender(ctx, asio::ip::udp::v4());
  sender.connect(receiver.local_endpoint());
  auto udp_oob = co_await peergraph::async_send(sender, asio::buffer(data), send_flags::out_of_band);
  REQUIRE_FALSE(udp_oob.has_value());
  CHECK(udp_oob.error() == peer_errc::op_not_supported);
}
#endif

CO_TEST_CASE("errors: reset peer, shut-down socket, unconnected and closed sockets; never SIGPIPE")
{
  const auto data = pattern(14, 64 * 1024);
  {
    auto [a, b] = tcp_pair(ctx.get_executor());
    b.set_option(asio::socket_base::linger(true, 0));
    b.close(); // sends RST
    asio::steady_timer pause(ctx);
    pause.expires_after(std::chrono::milliseconds(20));
    co_await pause.async_wait(use_tuple);
    auto sent = co_await peergraph::async_send(a, asio::buffer(data));
    REQUIRE_FALSE(sent.has_value());
    CHECK(sent.error() == peer_errc::connection_reset);
    // The connection is gone: a further send fails again instead of killing the process with SIGPIPE.
    auto again = co_await peergraph::async_send(a, asio::buffer(data));
    REQUIRE_FALSE(again.has_value());
  }
  {
    auto [a, b] = tcp_pair(ctx.get_executor());
    a.shutdown(asio::socket_base::shutdown_send);
    auto sent = co_await peergraph::async_send(a, asio::buffer(data));
    REQUIRE_FALSE(sent.has_value());
    CHECK(sent.error() == peer_errc::shut_down);
  }
  {
    tcp_socket unconnected(ctx, asio::ip::tcp::v4());
    auto sent = co_await peergraph::async_send(unconnected, asio::buffer(data));
    REQUIRE_FALSE(sent.has_value());
#if defined(_WIN32) // Windows answers WSAENOTCONN; Wine, WSAECONNRESET
    CHECK((sent.error() == peer_errc::not_connected || sent.error() == peer_errc::connection_reset));
#else
    CHECK(sent.error() == peer_errc::not_connected);
#endif
  }
  {
    tcp_socket closed(ctx);
    auto sent = co_await peergraph::async_send(closed, asio::buffer(data));
    REQUIRE_FALSE(sent.has_value());
    CHECK(sent.error() == peer_errc::not_a_socket);
  }
}

CO_TEST_CASE("cancellation through the token's slot aborts a waiting send and reports the bytes already sent")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  peergraph::test::shrink_buffers(a, b);
  const auto data = pattern(15, 8 * 1024 * 1024);
  asio::cancellation_signal cancel;
  std::error_code result;
  std::size_t reported = 0;
  bool done = false;
  peergraph::async_send(a, asio::buffer(data),
                        asio::bind_cancellation_slot(cancel.slot(), [&](std::error_code ec, std::size_t n) {
                          result = ec;
                          reported = n;
                          done = true;
                        }));
  // A second send queued behind the first must still go out after the first is cancelled.
  const auto tail = pattern(16, 1000);
  std::error_code tail_result = asio::error::would_block;
  std::size_t tail_sent = 0;
  bool tail_done = false;
  peergraph::async_send(a, asio::buffer(tail), [&](std::error_code ec, std::size_t n) {
    tail_result = ec;
    tail_sent = n;
    tail_done = true;
  });
  co_await asio::post(ctx, asio::use_awaitable);
  REQUIRE_FALSE(done); // nobody reads: 8 MiB cannot have gone out
  cancel.emit(asio::cancellation_type::terminal);
#if defined(_WIN32)
  // The send Winsock holds is cancelled with CancelIoEx; its completion comes through the port a while later. What
  // went out of a cancelled overlapped TCP send is not reported, so the stream is not checked here; the send behind
  // it still gets its turn, whatever Winsock then makes of the connection.
  asio::steady_timer pause(ctx);
  for (int i = 0; i < 500 && !(done && tail_done); ++i) {
    pause.expires_after(std::chrono::milliseconds(10));
    co_await pause.async_wait(use_tuple);
  }
  REQUIRE(done);
  CHECK(tail_done);
  CHECK(result == asio::error::operation_aborted);
  CHECK(peergraph::peer_error(result) == peer_errc::operation_aborted);
  CHECK(reported < data.size());
#else
  for (int i = 0; i < 100 && !done; ++i)
    co_await asio::post(ctx, asio::use_awaitable);
  REQUIRE(done);
  CHECK(result == asio::error::operation_aborted);
  CHECK(peergraph::peer_error(result) == peer_errc::operation_aborted);
  CHECK(reported > 0);
  CHECK(reported < data.size());

  std::vector<std::byte> received;
  co_await read_slowly(b, received, reported + tail.size());
  CHECK(std::equal(received.begin(), received.begin() + static_cast<std::ptrdiff_t>(reported), data.begin()));
  CHECK(std::equal(received.begin() + static_cast<std::ptrdiff_t>(reported), received.end(), tail.begin()));
  CHECK(tail_done);
  CHECK(!tail_result);
  CHECK(tail_sent == tail.size());
#endif
}

#if !defined(_WIN32) // what went out of a cancelled overlapped TCP send is not reported (see above)
CO_TEST_CASE("a send that fails part-way with the default token says how many bytes went out")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  peergraph::test::shrink_buffers(a, b);
  const auto data = pattern(17, 8 * 1024 * 1024);
  asio::cancellation_signal cancel;
  std::optional<peergraph::expected<std::size_t, peergraph::peer_error>> result;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        result = co_await peergraph::async_send(a, asio::buffer(data),
                                                asio::bind_cancellation_slot(cancel.slot(), peergraph::use_expected));
      },
      asio::detached);
  co_await asio::post(ctx, asio::use_awaitable);
  REQUIRE_FALSE(result.has_value());
  cancel.emit(asio::cancellation_type::terminal);
  for (int i = 0; i < 100 && !result; ++i)
    co_await asio::post(ctx, asio::use_awaitable);
  REQUIRE(result.has_value());
  REQUIRE_FALSE(result->has_value());
  CHECK(result->error() == peer_errc::operation_aborted);
  const std::size_t sent = result->error().bytes_transferred();
  CHECK(sent > 0);
  CHECK(sent < data.size());
  std::vector<std::byte> received;
  co_await read_slowly(b, received, sent);
  CHECK(std::equal(received.begin(), received.end(), data.begin()));
}
#endif

CO_TEST_CASE("cancelling a send that has not had its turn sends nothing of it")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  peergraph::test::shrink_buffers(a, b);
  const auto big = pattern(17, 2 * 1024 * 1024);
  const auto small = pattern(18, 500);
  std::size_t big_sent = 0;
  peergraph::async_send(a, asio::buffer(big), [&](std::error_code ec, std::size_t n) {
    CHECK(!ec);
    big_sent = n;
  });
  asio::cancellation_signal cancel;
  std::error_code small_result;
  std::size_t small_sent = 99;
  bool small_done = false;
  peergraph::async_send(a, asio::buffer(small),
                        asio::bind_cancellation_slot(cancel.slot(), [&](std::error_code ec, std::size_t n) {
                          small_result = ec;
                          small_sent = n;
                          small_done = true;
                        }));
  cancel.emit(asio::cancellation_type::terminal);
  for (int i = 0; i < 100 && !small_done; ++i)
    co_await asio::post(ctx, asio::use_awaitable);
  REQUIRE(small_done);
  CHECK(small_result == asio::error::operation_aborted);
  CHECK(small_sent == 0);

  std::vector<std::byte> received;
  co_await read_slowly(b, received, big.size());
  CHECK(received == big);
  CHECK(big_sent == big.size());
}

CO_TEST_CASE("socket.cancel() and close() abort the waiting send and every send queued behind it")
{
  for (const bool close_it : {false, true}) {
    auto [a, b] = tcp_pair(ctx.get_executor());
    peergraph::test::shrink_buffers(a, b);
    const auto data = pattern(19, 4 * 1024 * 1024);
    std::vector<std::error_code> results;
    for (int i = 0; i < 3; ++i)
      peergraph::async_send(a, asio::buffer(data), [&](std::error_code ec, std::size_t) { results.push_back(ec); });
    co_await asio::post(ctx, asio::use_awaitable);
    if (close_it)
      a.close();
    else
      a.cancel();
    // An overlapped send's cancellation arrives through the completion port, a while after the call.
    asio::steady_timer pause(ctx);
    for (int i = 0; i < 500 && results.size() < 3; ++i) {
      pause.expires_after(std::chrono::milliseconds(10));
      co_await pause.async_wait(use_tuple);
    }
    REQUIRE(results.size() == 3);
    for (const auto& ec : results)
      CHECK(peergraph::peer_error(ec) == peer_errc::operation_aborted);
  }
}

#if !defined(_WIN32) // kernel zero-copy is Linux's
CO_TEST_CASE("zero_copy completes once the kernel released the pages and says whether it copied anyway")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  constexpr std::size_t size = 1024 * 1024;
  const auto data = pattern(21, size);
  std::vector<std::byte> received;
  bool reader_done = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        co_await read_exactly(b, received, 2 * size);
        reader_done = true;
      },
      asio::detached);

  auto report = co_await peergraph::async_send_zero_copy(a, asio::buffer(data));
  REQUIRE(report.has_value());
  CHECK(report->bytes_sent == size);
  CHECK(report->zero_copy);     // TCP on Linux accepts SO_ZEROCOPY
  CHECK(report->kernel_copied); // ... and loopback always copies

  // The flag on async_send gives the same wait for the pages, with a plain count.
  auto sent = co_await peergraph::async_send(a, asio::buffer(data), send_flags::zero_copy);
  REQUIRE(sent.has_value());
  CHECK(*sent == size);

  asio::steady_timer pause(ctx);
  for (int i = 0; i < 500 && !reader_done; ++i) {
    pause.expires_after(std::chrono::milliseconds(2));
    co_await pause.async_wait(use_tuple);
  }
  REQUIRE(reader_done);
  CHECK(std::equal(data.begin(), data.end(), received.begin()));
  CHECK(std::equal(data.begin(), data.end(), received.begin() + static_cast<std::ptrdiff_t>(size)));
}
#endif

CO_TEST_CASE("zero_copy falls back to an ordinary send where the socket cannot do it, and says so")
{
#if defined(_WIN32)
  auto [a, b] = tcp_pair(ctx.get_executor()); // Windows has no kernel zero-copy at all
#else
  auto [a, b] = peergraph::test::unix_pair(ctx.get_executor());
#endif
  const auto data = pattern(22, 20'000);
  auto report = co_await peergraph::async_send_zero_copy(a, asio::buffer(data));
  REQUIRE(report.has_value());
  CHECK(report->bytes_sent == data.size());
  CHECK_FALSE(report->zero_copy);
  std::vector<std::byte> received;
  co_await read_exactly(b, received, data.size());
  CHECK(received == data);
}

#if !defined(_WIN32) // kernel zero-copy is Linux's
CO_TEST_CASE("2,000 zero-copy sends in a row complete in order with every byte intact while releases come late")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  // A small receive buffer and a slow reader: the sender's large buffer takes each send at once, and the kernel
  // holds its pages until the reader makes room for them; the sends started together also wait their turn.
  b.set_option(asio::socket_base::receive_buffer_size(64 * 1024));
  constexpr std::size_t count = 2000;
  std::vector<std::size_t> offsets{0};
  for (std::size_t i = 0; i < count; ++i)
    offsets.push_back(offsets.back() + 1024 + (i * 7919) % (23 * 1024));
  const auto data = pattern(24, offsets.back());
  std::vector<std::byte> received;
  bool reader_done = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        co_await read_slowly(b, received, data.size());
        reader_done = true;
      },
      asio::detached);

  // The first half starts together and waits in the socket's queue; the second half goes one after another.
  std::vector<std::size_t> completed;
  std::size_t failures = 0;
  std::size_t zero_copy = 0;
  const auto slice = [&](std::size_t i) { return asio::buffer(data.data() + offsets[i], offsets[i + 1] - offsets[i]); };
  for (std::size_t i = 0; i < count / 2; ++i)
    peergraph::async_send_zero_copy(a, slice(i), send_flags::none,
                                    [&, i](std::error_code ec, peergraph::zero_copy_result r) {
                                      if (ec || r.bytes_sent != offsets[i + 1] - offsets[i])
                                        ++failures;
                                      zero_copy += r.zero_copy ? 1U : 0U;
                                      completed.push_back(i);
                                    });
  for (std::size_t i = count / 2; i < count; ++i) {
    auto report = co_await peergraph::async_send_zero_copy(a, slice(i));
    REQUIRE_MESSAGE(report.has_value(), error_text(report));
    REQUIRE(report->bytes_sent == offsets[i + 1] - offsets[i]);
    zero_copy += report->zero_copy ? 1U : 0U;
    completed.push_back(i);
  }
  asio::steady_timer pause(ctx);
  for (int i = 0; i < 2500 && !reader_done; ++i) {
    pause.expires_after(std::chrono::milliseconds(2));
    co_await pause.async_wait(use_tuple);
  }
  REQUIRE(reader_done);
  CHECK(failures == 0);
  CHECK(zero_copy > 0);
  // Every send completes once. Those awaited one after another complete in order; of those started together, one
  // whose turn finishes it at once may report before the one it followed.
  REQUIRE(completed.size() == count);
  std::vector<std::size_t> awaited;
  std::copy_if(completed.begin(), completed.end(), std::back_inserter(awaited),
               [](std::size_t i) { return i >= count / 2; });
  CHECK(std::is_sorted(awaited.begin(), awaited.end()));
  std::sort(completed.begin(), completed.end());
  for (std::size_t i = 0; i < count; ++i)
    REQUIRE(completed[i] == i);
  CHECK(received == data); // the bytes went out whole and in start order
}
#endif

CO_TEST_CASE("a zero-copy send larger than the socket's buffers sends every byte before it waits for its pages")
{
  auto [a, b] = tcp_pair(ctx.get_executor());
  peergraph::test::shrink_buffers(a, b);
  const auto data = pattern(30, 4 * 1024 * 1024);
  const auto tail = pattern(34, 1000);
  std::vector<std::byte> received;
  bool reader_done = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        co_await read_slowly(b, received, data.size() + tail.size());
        reader_done = true;
      },
      asio::detached);
  // The first attempt fills the socket: the send must wait for room before it may wait for its pages.
  auto report = co_await peergraph::async_send_zero_copy(a, asio::buffer(data));
  REQUIRE(report.has_value());
  CHECK(report->bytes_sent == data.size());
  auto sent = co_await peergraph::async_send(a, asio::buffer(tail));
  REQUIRE(sent.has_value());
  asio::steady_timer pause(ctx);
  for (int i = 0; i < 2500 && !reader_done; ++i) {
    pause.expires_after(std::chrono::milliseconds(2));
    co_await pause.async_wait(use_tuple);
  }
  REQUIRE(reader_done);
  CHECK(std::equal(data.begin(), data.end(), received.begin()));
  CHECK(std::equal(tail.begin(), tail.end(), received.begin() + static_cast<std::ptrdiff_t>(data.size())));
}

#if PEERGRAPH_HAS_MSG_ZEROCOPY
namespace {

/// Queues more bytes on `sender` than the path to `receiver` (which reads nothing) lets through, leaving room in the
/// sender's buffer: a small zero-copy send then has all its bytes taken and waits for pages that stay held until
/// the receiver reads. Returns the count queued, or 0 where the kernel's buffers do not allow it.
std::size_t hold_back_releases(tcp_socket& sender, tcp_socket& receiver, const std::vector<std::byte>& filler)
{
  receiver.set_option(asio::socket_base::receive_buffer_size(64 * 1024));
  sender.set_option(asio::socket_base::send_buffer_size(4 * 1024 * 1024));
  asio::socket_base::send_buffer_size room;
  sender.get_option(room);
  const std::size_t size = std::min<std::size_t>(filler.size(), static_cast<std::size_t>(room.value()) / 2);
  const ::ssize_t n = ::send(sender.native_handle(), filler.data(), size, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n <= 0)
    return 0;
  // What the receiver's window does not let through stays unsent; without any, the test has nothing to hold back.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  int unsent = 0;
  if (::ioctl(sender.native_handle(), SIOCOUTQNSD, &unsent) != 0 || unsent == 0)
    return 0;
  return static_cast<std::size_t>(n);
}

} // namespace

CO_TEST_CASE("a zero-copy send waiting for its pages: its slot cannot cut it short; socket.cancel() and close() end it")
{
  enum class ending
  {
    release,
    cancel,
    close
  };
  for (const ending how : {ending::release, ending::cancel, ending::close}) {
    CAPTURE(static_cast<int>(how));
    auto [a, b] = tcp_pair(ctx.get_executor());
    const auto filler = pattern(25, 1024 * 1024);
    const std::size_t held = hold_back_releases(a, b, filler);
    if (held == 0) {
      MESSAGE("the kernel's buffers let every byte through at once: nothing to wait for");
      co_return;
    }
    const auto data = pattern(26, 4096);
    asio::cancellation_signal cancel;
    std::optional<std::error_code> result;
    peergraph::zero_copy_result report;
    peergraph::async_send_zero_copy(a, asio::buffer(data), send_flags::none,
                                    asio::bind_cancellation_slot(cancel.slot(), [&](std::error_code ec, auto r) {
                                      result = ec;
                                      report = r;
                                    }));
    // Queued behind it: ends with it when the socket's operations are cancelled.
    std::optional<std::error_code> follower;
    peergraph::async_send(a, asio::buffer(data), [&](std::error_code ec, std::size_t) { follower = ec; });
    asio::steady_timer pause(ctx);
    pause.expires_after(std::chrono::milliseconds(20));
    co_await pause.async_wait(use_tuple);
    REQUIRE_FALSE(result.has_value()); // the receiver has read nothing: the pages are still held

    cancel.emit(asio::cancellation_type::terminal);
    pause.expires_after(std::chrono::milliseconds(20));
    co_await pause.async_wait(use_tuple);
    CHECK_FALSE(result.has_value());

    if (how == ending::release) {
      std::vector<std::byte> received;
      co_await read_exactly(b, received, held + 2 * data.size());
      for (int i = 0; i < 2500 && !(result && follower); ++i) {
        pause.expires_after(std::chrono::milliseconds(2));
        co_await pause.async_wait(use_tuple);
      }
      REQUIRE(result.has_value());
      CHECK_FALSE(*result);
      CHECK(report.bytes_sent == data.size());
      CHECK(report.zero_copy);
      REQUIRE(follower.has_value());
      CHECK_FALSE(*follower);
      CHECK(std::equal(filler.begin(), filler.begin() + static_cast<std::ptrdiff_t>(held), received.begin()));
      CHECK(std::equal(data.begin(), data.end(), received.begin() + static_cast<std::ptrdiff_t>(held)));
      CHECK(std::equal(data.begin(), data.end(), received.begin() + static_cast<std::ptrdiff_t>(held + data.size())));
    } else {
      if (how == ending::close)
        a.close();
      else
        a.cancel();
      for (int i = 0; i < 100 && !(result && follower); ++i)
        co_await asio::post(ctx, asio::use_awaitable);
      REQUIRE(result.has_value());
      CHECK(*result == asio::error::operation_aborted);
      CHECK(report.bytes_sent == data.size());
      REQUIRE(follower.has_value());
      CHECK(*follower == asio::error::operation_aborted);
    }
  }
}

TEST_CASE("an io_context destroyed with a zero-copy send waiting for its pages frees it")
{
  peergraph::detail::native_socket descriptor{};
  int handlers_run = 0;
  const auto filler = pattern(27, 1024 * 1024);
  const auto data = pattern(28, 4096);
  {
    asio::io_context ctx;
    auto [a, b] = tcp_pair(ctx.get_executor());
    descriptor = a.native_handle();
    if (hold_back_releases(a, b, filler) == 0) {
      MESSAGE("the kernel's buffers let every byte through at once: nothing to wait for");
      return;
    }
    peergraph::async_send_zero_copy(a, asio::buffer(data), send_flags::none,
                                    [&](std::error_code, peergraph::zero_copy_result) { ++handlers_run; });
    peergraph::async_send(a, asio::buffer(data), [&](std::error_code, std::size_t) { ++handlers_run; });
    ctx.poll();
  }
  CHECK(handlers_run == 0);
  CHECK(peergraph::detail::send_order::instance().idle(descriptor));
}
#endif

TEST_CASE("zero-copy sends started on another thread while a two-thread pool runs the socket complete in order")
{
  // No strand: the wait for the pages may complete on a thread of the pool while the starting thread still reads
  // the error queue after queuing it.
  asio::thread_pool pool(2);
  auto [a, b] = tcp_pair(pool.get_executor());
  peergraph::test::shrink_buffers(a, b);
  constexpr std::size_t count = 500;
  constexpr std::size_t message = 24 * 1024;
  const auto data = pattern(29, count * message);
  std::vector<std::byte> received(data.size());
  std::thread reader([&] {
    std::error_code ec;
    asio::read(b, asio::buffer(received), ec);
  });
  std::size_t ok = 0;
  for (std::size_t i = 0; i < count; ++i) {
    auto future = peergraph::async_send_zero_copy(a, asio::buffer(data.data() + i * message, message), send_flags::none,
                                                  asio::use_future);
    if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
      break;
    try {
      if (future.get().bytes_sent == message)
        ++ok;
    } catch (const std::system_error& e) {
      FAIL_CHECK(e.what());
      break;
    }
  }
  if (ok != count) {
    std::error_code ignored;
    b.shutdown(asio::socket_base::shutdown_both, ignored); // the reader would wait for bytes that never come
  }
  reader.join();
  CHECK(ok == count);
  CHECK(received == data);
  pool.join();
}

TEST_CASE("every Asio token works: callback, use_future, deferred, use_awaitable")
{
  asio::io_context ctx;
  auto [a, b] = tcp_pair(ctx.get_executor());
  const auto data = pattern(20, 256);
  std::size_t total = 0;

  // Callback: completion is never delivered inline, even when the kernel takes everything at once.
  bool called = false;
  peergraph::async_send(a, asio::buffer(data), [&](std::error_code ec, std::size_t n) {
    CHECK(!ec);
    CHECK(n == data.size());
    called = true;
  });
  CHECK_FALSE(called);
  ctx.run();
  ctx.restart();
  CHECK(called);
  total += data.size();

  // Deferred: nothing happens until the deferred operation is launched.
  auto deferred = peergraph::async_send(a, asio::buffer(data), peergraph::detail::asio_compat::deferred);
  std::size_t deferred_sent = 0;
  std::move(deferred)([&](std::error_code ec, std::size_t n) {
    CHECK(!ec);
    deferred_sent = n;
  });
  ctx.run();
  ctx.restart();
  CHECK(deferred_sent == data.size());
  total += data.size();

  // use_awaitable: the plain Asio coroutine token, with errors as exceptions.
  std::size_t awaited = 0;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        awaited = co_await peergraph::async_send(a, asio::buffer(data), send_flags::none, asio::use_awaitable);
      },
      asio::detached);
  ctx.run();
  ctx.restart();
  CHECK(awaited == data.size());
  total += data.size();

  // use_future, with the context running on another thread.
  auto guard = asio::make_work_guard(ctx);
  std::thread runner([&] { ctx.run(); });
  std::future<std::size_t> future = peergraph::async_send(a, asio::buffer(data), asio::use_future);
  CHECK(future.get() == data.size());
  total += data.size();
  guard.reset();
  runner.join();

  std::vector<std::byte> received(total);
  asio::read(b, asio::buffer(received));
  for (std::size_t copy = 0; copy < 4; ++copy)
    CHECK(std::equal(data.begin(), data.end(), received.begin() + static_cast<std::ptrdiff_t>(copy * data.size())));
}

TEST_CASE("an io_context destroyed with sends still waiting frees them and leaves the descriptor usable")
{
  const auto data = pattern(23, 4 * 1024 * 1024);
  peergraph::detail::native_socket descriptor{};
  int handlers_run = 0;
  {
    asio::io_context ctx;
    auto [a, b] = tcp_pair(ctx.get_executor());
    peergraph::test::shrink_buffers(a, b);
    descriptor = a.native_handle();
    for (int i = 0; i < 3; ++i)
      peergraph::async_send(a, asio::buffer(data), [&](std::error_code, std::size_t) { ++handlers_run; });
    ctx.poll();
    // The sockets close first (their waits are aborted and queued), then the context, which destroys the queued
    // handlers without running them.
  }
  // As with any Asio handler on a destroyed context, none ran; and nothing of them is left queued on the descriptor
  // (ASan's leak checker sees the freed operations), which a new socket is likely to reuse at once.
  CHECK(handlers_run == 0);
  CHECK(peergraph::detail::send_order::instance().idle(descriptor));
  asio::io_context ctx;
  auto [c, d] = tcp_pair(ctx.get_executor());
  std::optional<std::size_t> sent;
  peergraph::async_send(c, asio::buffer(data.data(), 1000), [&](std::error_code ec, std::size_t n) {
    if (!ec)
      sent = n;
  });
  ctx.run_for(std::chrono::seconds(5));
  CHECK(sent == 1000U);
}

TEST_CASE("sends work on a strand of a two-thread pool, in order")
{
  asio::thread_pool pool(2);
  auto strand = asio::make_strand(pool);
  auto [a, b] = tcp_pair(strand);
  peergraph::test::shrink_buffers(a, b);
  constexpr std::uint32_t senders = 16;
  constexpr std::size_t message = 50'000;
  std::vector<std::vector<std::byte>> messages;
  for (std::uint32_t i = 0; i < senders; ++i)
    messages.push_back(pattern(200 + i, message));
  std::atomic<std::uint32_t> ok{0};
  asio::post(strand, [&] {
    for (std::uint32_t i = 0; i < senders; ++i)
      asio::co_spawn(
          strand,
          [&, i]() -> asio::awaitable<void> {
            auto sent = co_await peergraph::async_send(a, asio::buffer(messages[i]));
            if (sent && *sent == message)
              ok.fetch_add(1);
          },
          asio::detached);
  });
  std::vector<std::byte> received(senders * message);
  asio::read(b, asio::buffer(received));
  pool.join();
  CHECK(ok.load() == senders);
  for (std::uint32_t i = 0; i < senders; ++i)
    CHECK(std::equal(messages[i].begin(), messages[i].end(), received.begin() + i * message));
}

TEST_SUITE_END();
