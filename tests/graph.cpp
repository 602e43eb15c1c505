#include <peergraph/graph.hpp>
// The header under test comes first: it must be self-contained.

#include "support/allocation_counter.hpp"
#include "support/co_test.hpp"
#include "support/error_text.hpp"
#include "support/graph_support.hpp"
#include "support/socket_pair.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <asio/write.hpp>

#include <peergraph/wire.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <typeinfo>
#include <vector>

namespace {

using namespace std::chrono_literals;
using peergraph::connection_changed;
using peergraph::connection_id;
using peergraph::connection_kind;
using peergraph::connection_status;
using peergraph::data_type;
using peergraph::graph_event;
using peergraph::incoming_data;
using peergraph::peer_errc;
using peergraph::peer_id;
using peergraph::test::any_v4;
using peergraph::test::chat_type;
using peergraph::test::error_text;
using peergraph::test::pattern;
using peergraph::test::pause;
using peergraph::test::pid;
using peergraph::test::props;
using peergraph::test::text_of;
using peergraph::test::use_tuple;
using tcp = asio::ip::tcp;

constexpr data_type file_type = data_type::from_string("aa1c2d3e-4f50-4617-8293-a4b5c6d7e8f9");

/// Waits for the next event of type Event (skipping other kinds), at most `limit` events and 5 s.
template <class Event, class Graph>
asio::awaitable<Event> next_of(Graph& g, int limit = 10'000)
{
  for (int i = 0; i < limit; ++i) {
    auto event = co_await g.next_event();
    REQUIRE_MESSAGE(event.has_value(), "next_event failed: " << error_text(event));
    if (auto* e = std::get_if<Event>(&*event))
      co_return std::move(*e);
  }
  FAIL("no event of the expected kind");
  co_return Event{};
}

template <class Graph>
asio::awaitable<tcp::endpoint> listening(Graph& g, const tcp::endpoint& where = any_v4)
{
  auto endpoint = co_await g.listen(where);
  REQUIRE_MESSAGE(endpoint.has_value(), error_text(endpoint));
  co_return *endpoint;
}

/// Makes `to` listen on loopback and connects `from` to it: from's connection id (the test stops if it fails).
template <class Graph>
asio::awaitable<connection_id> connected(Graph& from, Graph& to)
{
  const auto where = co_await listening(to);
  auto id = co_await from.connect(where);
  REQUIRE_MESSAGE(id.has_value(), error_text(id));
  co_return *id;
}

} // namespace

TEST_SUITE_BEGIN("graph");

TEST_CASE(
    "create() and the constructor refuse invalid properties, naming the field (tests/graph_properties.cpp: each rule)")
{
  asio::io_context ctx;
  auto p = props("alice");
  CHECK(p.validate().has_value());
  p.max_frame_size = 1023;
  const auto refused = peergraph::graph::create(ctx.get_executor(), p);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() == peer_errc::invalid_argument);
  CHECK(refused.error().cause() == std::error_code(static_cast<int>(peergraph::invalid_property::max_frame_size),
                                                   peergraph::graph_property_category()));
  CHECK(refused.error().message().find("graph_properties::max_frame_size") != std::string::npos);
  CHECK_THROWS_AS(peergraph::graph(ctx.get_executor(), p), std::system_error);
  try {
    peergraph::graph unused(ctx.get_executor(), p);
  } catch (const std::system_error& e) {
    CHECK(e.code() == peer_errc::invalid_argument);
    CHECK(std::string(e.what()).find("graph_properties::max_frame_size") != std::string::npos);
  }
  p = props("alice");
  p.max_frame_size = 1024;
  CHECK(peergraph::graph::create(ctx.get_executor(), p).has_value());
  p.peer = peer_id();
  CHECK(peergraph::graph::create(ctx.get_executor(), p).error() == peer_errc::invalid_argument);
  p = props("alice");
  p.close_linger = std::chrono::milliseconds(-1);
  CHECK(peergraph::graph::create(ctx.get_executor(), p).error() == peer_errc::invalid_argument);
  p.close_linger = std::chrono::milliseconds(0); // close at once
  CHECK(peergraph::graph::create(ctx.get_executor(), p).has_value());
}

CO_TEST_CASE("listen binds IPv4 and IPv6 with port 0, reports the status, and refuses a second listen")
{
  peergraph::graph a(ctx.get_executor(), props("alice"));
  auto v4 = co_await a.listen(any_v4);
  REQUIRE(v4.has_value());
  CHECK(v4->port() != 0);
  auto again = co_await a.listen(any_v4);
  REQUIRE_FALSE(again.has_value());
  CHECK(again.error() == peer_errc::already_listening);
  auto status = co_await next_of<peergraph::status_changed>(a);
  CHECK(peergraph::has_status(status.status, peergraph::graph_status::listening));

  peergraph::graph b(ctx.get_executor(), props("bob"));
  auto v6 = co_await b.listen(tcp::endpoint(asio::ip::address_v6::loopback(), 0));
  REQUIRE(v6.has_value());
  CHECK(v6->address().is_v6());
  // A node reaches another over IPv6 as well.
  auto id = co_await a.connect(*v6);
  REQUIRE_MESSAGE(id.has_value(), error_text(id));

  // Binding a port in use fails with address_in_use.
  peergraph::graph c(ctx.get_executor(), props("carol"));
  tcp::acceptor taken(ctx, any_v4, /*reuse_addr=*/false);
  auto busy = co_await c.listen(taken.local_endpoint());
  REQUIRE_FALSE(busy.has_value());
  CHECK(busy.error() == peer_errc::address_in_use);
}

CO_TEST_CASE("connect opens a neighbor connection that both sides report and list")
{
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), props("bob"));
  const auto where = co_await listening(b);

  auto id = co_await a.connect(where);
  REQUIRE_MESSAGE(id.has_value(), error_text(id));
  CHECK(id->value() != 0);

  auto on_a = co_await next_of<connection_changed>(a);
  CHECK(on_a.id == *id);
  CHECK(on_a.status == connection_status::connected);
  CHECK(on_a.kind == connection_kind::neighbor);
  CHECK(on_a.remote_peer == pid("bob"));
  CHECK(on_a.remote_node == b.local_node());
  CHECK_FALSE(on_a.reason.has_value());

  auto on_b = co_await next_of<connection_changed>(b);
  CHECK(on_b.status == connection_status::connected);
  CHECK(on_b.remote_peer == pid("alice"));
  CHECK(on_b.remote_node == a.local_node());

  auto list = co_await a.connections();
  REQUIRE(list.has_value());
  REQUIRE(list->size() == 1);
  CHECK((*list)[0].id == *id);
  CHECK((*list)[0].kind == connection_kind::neighbor);
  CHECK((*list)[0].remote_peer == pid("bob"));
  CHECK((*list)[0].remote_node == b.local_node());
  CHECK((*list)[0].remote_address == where);
  auto directs = co_await a.connections(peergraph::connection_kinds::direct);
  REQUIRE(directs.has_value());
  CHECK(directs->empty());

  auto status = co_await a.status();
  REQUIRE(status.has_value());
  CHECK(peergraph::has_status(*status, peergraph::graph_status::has_connections));
}

CO_TEST_CASE("connect checks the expected peer id, duplicates, self and the graph id")
{
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), props("bob"));
  const auto where_b = co_await listening(b);
  const auto where_a = co_await listening(a);

  // The remote must present the peer id asked for.
  auto wrong = co_await a.connect(where_b, pid("mallory"));
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error() == peer_errc::node_not_found);
  auto failed = co_await next_of<connection_changed>(a);
  CHECK(failed.status == connection_status::failed);
  CHECK(failed.reason == peer_errc::node_not_found);

  auto right = co_await a.connect(where_b, pid("bob"));
  REQUIRE_MESSAGE(right.has_value(), error_text(right));

  // One neighbor connection per peer: a second one, from either side, is already_exists.
  auto second = co_await a.connect(where_b);
  REQUIRE_FALSE(second.has_value());
  CHECK(second.error() == peer_errc::already_exists);
  auto reverse = co_await b.connect(where_a);
  REQUIRE_FALSE(reverse.has_value());
  CHECK(reverse.error() == peer_errc::already_exists);

  // To itself.
  auto self = co_await a.connect(where_a);
  REQUIRE_FALSE(self.has_value());
  CHECK(self.error() == peer_errc::connect_self);

  // Another graph's node is refused, and that node reads why too.
  peergraph::graph stranger(ctx.get_executor(), props("stranger", "other-graph"));
  auto refused = co_await stranger.connect(where_b);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() == peer_errc::wrong_graph);
  for (int i = 0; i < 10; ++i) {
    auto e = co_await next_of<connection_changed>(b);
    if (e.status == connection_status::failed && e.remote_peer == pid("stranger")) {
      CHECK(e.reason == peer_errc::wrong_graph);
      break;
    }
    CHECK(i < 9);
  }

  // The graph is still healthy: the existing connection carries data.
  const std::string text = "still here";
  REQUIRE((co_await a.send_data(*right, chat_type, asio::buffer(text))).has_value());
  auto data = co_await next_of<incoming_data>(b);
  CHECK(text_of(data.payload) == text);
}

CO_TEST_CASE("unreachable and silent addresses fail with the matching error within the timeouts")
{
  auto p = props("alice");
  p.handshake_timeout = 300ms;
  peergraph::graph a(ctx.get_executor(), p);

  // A port where nothing listens.
  tcp::endpoint closed_port;
  {
    tcp::acceptor probe(ctx, any_v4);
    closed_port = probe.local_endpoint();
  }
  auto refused = co_await a.connect(closed_port);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() == peer_errc::connection_refused);

  // A listener that accepts but never speaks: the handshake times out.
  tcp::acceptor silent(ctx, any_v4);
  const auto started = std::chrono::steady_clock::now();
  auto timed_out = co_await a.connect(silent.local_endpoint());
  const auto took = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(timed_out.has_value());
  CHECK(timed_out.error() == peer_errc::timed_out);
  CHECK(took >= 250ms);
  CHECK(took < 3s);
}

CO_TEST_CASE("connect is cancelled through its token's slot: operation_aborted, a failed event, nothing kept")
{
  auto p = props("alice");
  p.max_connections = 1;
  peergraph::graph a(ctx.get_executor(), p);
  // A listener that accepts but never speaks: the handshake waits for its hello until cancelled.
  tcp::acceptor silent(ctx, any_v4);
  tcp::socket accepted(ctx);
  silent.async_accept(accepted, [](std::error_code) {});
  asio::cancellation_signal cancel;
  std::optional<std::error_code> outcome;
  a.connect(silent.local_endpoint(), std::nullopt,
            asio::bind_cancellation_slot(cancel.slot(), [&](std::error_code ec, connection_id) { outcome = ec; }));
  for (int i = 0; i < 200 && !accepted.is_open(); ++i)
    co_await pause(5ms);
  REQUIRE(accepted.is_open());
  co_await pause(20ms); // the caller's hello is out, it waits for the answer
  CHECK_FALSE(outcome.has_value());
  cancel.emit(asio::cancellation_type::terminal);
  for (int i = 0; i < 200 && !outcome; ++i)
    co_await pause(5ms);
  REQUIRE(outcome.has_value());
  CHECK(peergraph::to_peer_errc(*outcome) == peer_errc::operation_aborted);
  const auto failed = co_await next_of<connection_changed>(a);
  CHECK(failed.status == connection_status::failed);
  REQUIRE(failed.reason.has_value());
  CHECK(*failed.reason == peer_errc::operation_aborted);
  // The silent node sees the attempt's socket closed.
  std::array<char, 256> sink{};
  asio::error_code ec;
  for (int i = 0; i < 16 && !ec; ++i)
    std::tie(ec, std::ignore) = co_await accepted.async_read_some(asio::buffer(sink), use_tuple);
  CHECK(ec == asio::error::eof);

  // Nothing of the attempt is kept: the one connection slot is free, and a connect later goes through.
  peergraph::graph b(ctx.get_executor(), props("bob"));
  const auto where_b = co_await listening(b);
  auto id = co_await a.connect(where_b);
  REQUIRE_MESSAGE(id.has_value(), error_text(id));
  // A cancellation after the connection was established changes nothing.
  asio::cancellation_signal late;
  peergraph::graph c(ctx.get_executor(), props("carol"));
  std::optional<std::error_code> established;
  c.connect(where_b, std::nullopt,
            asio::bind_cancellation_slot(late.slot(), [&](std::error_code e, connection_id) { established = e; }));
  for (int i = 0; i < 400 && !established; ++i)
    co_await pause(5ms);
  REQUIRE(established.has_value());
  CHECK_FALSE(*established);
  late.emit(asio::cancellation_type::terminal);
  auto listed = co_await c.connections();
  REQUIRE(listed.has_value());
  CHECK(listed->size() == 1);
}

CO_TEST_CASE("a node that never finishes its hello is dropped after the handshake timeout, others unharmed")
{
  auto p = props("bob");
  p.handshake_timeout = 300ms;
  peergraph::graph b(ctx.get_executor(), p);
  const auto where = co_await listening(b);
  tcp::socket slow(ctx);
  slow.connect(where);
  // A valid start of a preamble, then nothing (slowloris).
  const std::array<char, 3> start{'P', 'G', 'R'};
  asio::write(slow, asio::buffer(start));

  peergraph::graph a(ctx.get_executor(), props("alice"));
  auto id = co_await a.connect(where);
  REQUIRE_MESSAGE(id.has_value(), error_text(id));

  std::array<char, 64> sink{};
  auto [ec, n] = co_await slow.async_read_some(asio::buffer(sink), use_tuple);
  // The silent node learns nothing (not even the peer id) and is disconnected.
  CHECK(ec == asio::error::eof);
  CHECK(n == 0);
}

CO_TEST_CASE("garbage from a raw socket closes that connection only")
{
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), props("bob"));
  const auto where = co_await listening(b);
  auto id = co_await a.connect(where);
  REQUIRE(id.has_value());

  tcp::socket raw(ctx);
  raw.connect(where);
  const auto junk = pattern(99, 4096);
  asio::write(raw, asio::buffer(junk));
  std::array<char, 64> sink{};
  auto [ec, n] = co_await raw.async_read_some(asio::buffer(sink), use_tuple);
  CHECK(ec); // closed by b
  CHECK(n == 0);

  const std::string text = "after the garbage";
  REQUIRE((co_await a.send_data(*id, chat_type, asio::buffer(text))).has_value());
  auto data = co_await next_of<incoming_data>(b);
  CHECK(text_of(data.payload) == text);
}

CO_TEST_CASE("send_data delivers typed data and validates its arguments")
{
  auto pb = props("bob");
  pb.max_frame_size = 64 * 1024;
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), pb);
  const auto where = co_await listening(b);
  auto id = co_await a.connect(where);
  REQUIRE(id.has_value());
  auto on_b = co_await next_of<connection_changed>(b);

  const std::string hello = "hello bob";
  auto sent = co_await a.send_data(*id, chat_type, asio::buffer(hello));
  REQUIRE_MESSAGE(sent.has_value(), error_text(sent));
  auto data = co_await next_of<incoming_data>(b);
  CHECK(data.connection == on_b.id);
  CHECK(data.type == chat_type);
  CHECK(text_of(data.payload) == hello);

  // An empty payload is a message too.
  REQUIRE((co_await a.send_data(*id, file_type, asio::const_buffer())).has_value());
  auto empty = co_await next_of<incoming_data>(b);
  CHECK(empty.type == file_type);
  CHECK(empty.payload.empty());

  auto nil = co_await a.send_data(*id, data_type{}, asio::buffer(hello));
  REQUIRE_FALSE(nil.has_value());
  CHECK(nil.error() == peer_errc::invalid_argument);

  auto unknown = co_await a.send_data(connection_id(987654), chat_type, asio::buffer(hello));
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error() == peer_errc::connection_not_found);

  // b accepts at most 64 KiB; a (default 60 MB) sends more: b closes the connection with frame_too_large.
  // On a's own limit, nothing is sent at all:
  auto pa_small = props("carol");
  pa_small.max_frame_size = 1024;
  peergraph::graph c(ctx.get_executor(), pa_small);
  auto to_b = co_await c.connect(where);
  REQUIRE(to_b.has_value());
  const auto big = pattern(1, 1025);
  auto too_large = co_await c.send_data(*to_b, chat_type, asio::buffer(big));
  REQUIRE_FALSE(too_large.has_value());
  CHECK(too_large.error() == peer_errc::frame_too_large);
  const std::string after = "after the refused one";
  REQUIRE((co_await c.send_data(*to_b, chat_type, asio::buffer(after))).has_value());
  auto next = co_await next_of<incoming_data>(b);
  CHECK(text_of(next.payload) == after); // the refused frame never reached b

  // A frame over the receiver's limit ends that connection with frame_too_large on the receiving side.
  const auto over = pattern(2, 64 * 1024 + 1);
  (void)co_await a.send_data(*id, chat_type, asio::buffer(over));
  for (int i = 0; i < 20; ++i) {
    auto e = co_await next_of<connection_changed>(b);
    if (e.status == connection_status::disconnected && e.remote_peer == pid("alice")) {
      CHECK(e.reason == peer_errc::frame_too_large);
      break;
    }
    CHECK(i < 19);
  }
}

CO_TEST_CASE("send_data and next_event take other completion tokens: callbacks, as_tuple, use_awaitable")
{
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), props("bob"));
  const auto id = co_await connected(a, b);
  (void)co_await next_of<connection_changed>(b);

  // Callbacks run after the initiating call has returned, never inside it, with the peer_errc as error code. What
  // they see is shared with them, so that a late one after a failed check touches nothing that is gone.
  struct outcomes
  {
    std::optional<std::error_code> sent;
    std::optional<std::error_code> refused;
    std::optional<incoming_data> received;
    std::function<void()> receive; // asks b for its next event until a data event comes
  };
  const auto seen = std::make_shared<outcomes>();
  const std::string by_callback = "by callback";
  a.send_data(id, chat_type, asio::buffer(by_callback), [seen](std::error_code ec) { seen->sent = ec; });
  a.send_data(id, data_type{}, asio::buffer(by_callback), [seen](std::error_code ec) { seen->refused = ec; });
  CHECK_FALSE(seen->sent.has_value());
  CHECK_FALSE(seen->refused.has_value());
  seen->receive = [&b, weak = std::weak_ptr<outcomes>(seen)] {
    b.next_event([weak](std::error_code ec, graph_event event) {
      const auto state = weak.lock();
      if (ec || !state)
        return;
      if (auto* data = std::get_if<incoming_data>(&event))
        state->received = std::move(*data);
      else
        state->receive();
    });
  };
  seen->receive();
  for (int i = 0; i < 500 && !(seen->sent && seen->refused && seen->received); ++i)
    co_await pause(10ms);
  REQUIRE(seen->sent.has_value());
  CHECK_FALSE(*seen->sent);
  REQUIRE(seen->refused.has_value());
  CHECK(*seen->refused == peer_errc::invalid_argument);
  REQUIRE(seen->received.has_value());
  CHECK(seen->received->type == chat_type);
  CHECK(text_of(seen->received->payload) == by_callback);
  seen->receive = nullptr;

  // as_tuple(use_awaitable): the error code and the value, no expected.
  const std::string by_tuple = "by tuple";
  auto [send_ec] = co_await a.send_data(id, file_type, asio::buffer(by_tuple), use_tuple);
  CHECK_FALSE(send_ec);
  std::optional<incoming_data> tuple_data;
  for (int i = 0; i < 10 && !tuple_data; ++i) {
    auto [event_ec, event] = co_await b.next_event(use_tuple);
    REQUIRE_FALSE(event_ec);
    if (auto* data = std::get_if<incoming_data>(&event))
      tuple_data = std::move(*data);
  }
  REQUIRE(tuple_data.has_value());
  CHECK(tuple_data->type == file_type);
  CHECK(text_of(tuple_data->payload) == by_tuple);

  // use_awaitable: an error is thrown as a system_error carrying the peer_errc.
  std::error_code thrown;
  try {
    co_await a.send_data(connection_id(987654), chat_type, asio::buffer(by_tuple), asio::use_awaitable);
  } catch (const std::system_error& e) {
    thrown = e.code();
  }
  CHECK(thrown == peer_errc::connection_not_found);
}

CO_TEST_CASE("10,000 messages on one connection arrive in order")
{
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), props("bob"));
  const auto id = co_await connected(a, b);

  constexpr std::uint32_t count = 10'000;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        for (std::uint32_t i = 0; i < count; ++i) {
          std::array<std::uint32_t, 4> message{i, i * 7, i ^ 0x5a5a5a5aU, count};
          auto sent = co_await a.send_data(id, chat_type, asio::buffer(message));
          REQUIRE(sent.has_value());
        }
      },
      asio::detached);

  for (std::uint32_t i = 0; i < count; ++i) {
    auto data = co_await next_of<incoming_data>(b);
    REQUIRE(data.payload.size() == 16);
    std::array<std::uint32_t, 4> message{};
    std::memcpy(message.data(), data.payload.data(), 16);
    REQUIRE(message[0] == i);
    REQUIRE(message[1] == i * 7);
    REQUIRE(message[2] == (i ^ 0x5a5a5a5aU));
  }
}

namespace {

/// The payload size of the next incoming_data event of `g`, skipping other events (at most 100); 0 on failure. The
/// tests of allocations await next_event directly in their loops, as an application does: a coroutine layer of their
/// own in between would bring Asio's frame allocations of that layer into the count.
#define PEERGRAPH_TEST_NEXT_PAYLOAD_SIZE(g, size)                                                                      \
  for (int skipped = 0; skipped < 100 && (size) == 0; ++skipped) {                                                     \
    auto event = co_await (g).next_event();                                                                            \
    if (!event)                                                                                                        \
      break;                                                                                                           \
    if (const auto* data = std::get_if<incoming_data>(&*event))                                                        \
      (size) = data->payload.size();                                                                                   \
  }

/// `warm_up`, then `counted` round trips of 64 B: a request from `a`, the answer from `b`. Yields the heap
/// allocations of the counted ones, or nothing when one failed. (Each co_await is a statement of its own: g++ 12
/// miscompiles co_await inside a short-circuit condition.)
asio::awaitable<std::optional<std::size_t>> round_trips(peergraph::graph& a, connection_id a_to_b, peergraph::graph& b,
                                                        connection_id b_to_a, int warm_up, int counted)
{
  struct leg
  {
    peergraph::graph& from;
    connection_id id;
    peergraph::graph& to;
  };
  const std::array<leg, 2> legs{{{a, a_to_b, b}, {b, b_to_a, a}}};
  const auto message = pattern(3, 64);
  std::size_t before = 0;
  for (int i = 0; i < warm_up + counted; ++i) {
    if (i == warm_up)
      before = peergraph::test::heap_allocations();
    for (const leg& l : legs) {
      const auto sent = co_await l.from.send_data(l.id, chat_type, asio::buffer(message));
      std::size_t size = 0;
      PEERGRAPH_TEST_NEXT_PAYLOAD_SIZE(l.to, size)
      if (!sent || size != message.size())
        co_return std::nullopt;
    }
  }
  co_return peergraph::test::heap_allocations() - before;
}

/// Takes incoming messages of 64 B from `g` until `got` reaches `messages`, counting them in `got`.
asio::awaitable<void> consume(peergraph::graph& g, const int& messages, int& got)
{
  while (got < messages) {
    std::size_t size = 0;
    PEERGRAPH_TEST_NEXT_PAYLOAD_SIZE(g, size)
    if (size != 64)
      co_return;
    ++got;
  }
}

/// Streams of 64 B messages from `a` to `b`, taken by a consumer running alongside (see consume).
struct stream_test
{
  static constexpr int messages = 40'000; // 3.7 MB: more than the socket buffers take, so sends also wait
  peergraph::graph& a;
  connection_id a_to_b;
  int expected = 0; // what the consumer takes in all
  int received = 0;

  /// `warm_up`, then `counted` streams; yields the heap allocations of the counted ones, or nothing when a send
  /// failed or messages did not all arrive.
  asio::awaitable<std::optional<std::size_t>> run(int warm_up, int counted)
  {
    const auto message = pattern(3, 64);
    std::size_t before = 0;
    for (int i = 0; i < warm_up + counted; ++i) {
      if (i == warm_up)
        before = peergraph::test::heap_allocations();
      // Counted before sending: where sends suspend (on Windows every one does), the consumer takes part of the
      // stream while it is being sent.
      const int target = received + messages;
      for (int m = 0; m < messages; ++m) {
        const auto sent = co_await a.send_data(a_to_b, chat_type, asio::buffer(message));
        if (!sent)
          co_return std::nullopt;
      }
      for (int wait = 0; wait < 1'000 && received < target; ++wait)
        co_await pause(10ms);
      if (received != target)
        co_return std::nullopt;
    }
    co_return peergraph::test::heap_allocations() - before;
  }
};

/// Blocks the calling thread until `sent` has not changed for 20 ms (at most 3 s): the sender is then waiting for
/// room, or done with its round.
void wait_until_sender_rests(const std::atomic<int>& sent)
{
  constexpr auto quiet = 20ms;
  const auto limit = std::chrono::steady_clock::now() + 3s;
  int last = sent.load();
  auto unchanged_since = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < limit) {
    std::this_thread::sleep_for(2ms);
    const int now = sent.load();
    if (now != last) {
      last = now;
      unchanged_since = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - unchanged_since >= quiet) {
      return;
    }
  }
}

/// Takes `rounds` rounds of `per_round` 64 B messages from `g`, only as fast as a consumer that blocks its thread for
/// 1 ms every 1,000 messages (the sender's socket keeps filling up, so its sends keep waiting for room), and answers
/// each round with one 8 B message on the connection it came from. In the first `stalled` rounds it takes nothing
/// after the first message until the sender rests (`sent` counts the sends): the sender's node then holds the most a
/// round can make it hold, so that later rounds find every block they need already recycled. Stops at the first
/// failure.
asio::awaitable<void> consume_slowly(peergraph::graph& g, int per_round, int rounds, int stalled,
                                     const std::atomic<int>& sent)
{
  const auto answer = pattern(4, 8);
  for (int round = 0; round < rounds; ++round) {
    std::optional<connection_id> from;
    int taken = 0;
    for (int events = 0; taken < per_round && events < per_round + 100; ++events) {
      auto event = co_await g.next_event();
      if (!event)
        co_return;
      const auto* data = std::get_if<incoming_data>(&*event);
      if (data == nullptr)
        continue; // the connection's own events
      if (data->payload.size() != 64)
        co_return;
      from = data->connection;
      if (++taken == 1 && round < stalled)
        wait_until_sender_rests(sent);
      if (taken % 1'000 == 0)
        std::this_thread::sleep_for(1ms);
    }
    if (taken != per_round)
      co_return;
    const auto sent_answer = co_await g.send_data(*from, chat_type, asio::buffer(answer));
    if (!sent_answer)
      co_return;
  }
  // Stays until the graph closes: its own end is not part of what the sender counts.
  (void)co_await g.next_event();
}

/// Sends `rounds` rounds of `per_round` 64 B messages from `a` over `id`, each ended by the receiver's answer (see
/// consume_slowly), counting them in `sent`. Yields the heap allocations of each round after the first `warm_up`, or
/// nothing on a failure.
asio::awaitable<std::optional<std::vector<std::size_t>>> stream_rounds(peergraph::graph& a, connection_id id,
                                                                       int per_round, int warm_up, int rounds,
                                                                       std::atomic<int>& sent)
{
  const auto message = pattern(3, 64);
  std::vector<std::size_t> allocations;
  allocations.reserve(static_cast<std::size_t>(rounds));
  std::size_t before = 0;
  for (int round = 0; round < rounds; ++round) {
    const std::size_t now = peergraph::test::heap_allocations();
    if (round > warm_up)
      allocations.push_back(now - before);
    before = now;
    for (int m = 0; m < per_round; ++m) {
      const auto result = co_await a.send_data(id, chat_type, asio::buffer(message));
      if (!result)
        co_return std::nullopt;
      sent.fetch_add(1, std::memory_order_relaxed);
    }
    std::size_t size = 0;
    PEERGRAPH_TEST_NEXT_PAYLOAD_SIZE(a, size)
    if (size != 8)
      co_return std::nullopt;
  }
  allocations.push_back(peergraph::test::heap_allocations() - before);
  co_return allocations;
}

#undef PEERGRAPH_TEST_NEXT_PAYLOAD_SIZE

} // namespace

// A plain TEST_CASE with run() rather than the run_one_for loop of CO_TEST_CASE: Asio keeps its recycled operation
// memory for the duration of a run() call, and one run_one call at a time would let every handler reach the heap.
TEST_CASE("steady-state send_data and incoming data allocate nothing on the heap, in round trips and streams")
{
  if (!peergraph::test::allocations_counted()) {
    MESSAGE("allocations are not counted in this build");
    return;
  }
  asio::io_context ctx{1};
  std::optional<std::size_t> round_trip_allocations;
  std::optional<std::size_t> stream_allocations;
  bool finished = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        peergraph::graph a(ctx.get_executor(), props("alice"));
        peergraph::graph b(ctx.get_executor(), props("bob"));
        const auto where = co_await listening(b);
        auto id = co_await a.connect(where);
        REQUIRE(id.has_value());
        const auto at_b = co_await next_of<connection_changed>(b);

        // Each measurement after a warm-up, in which pools, caches and queues reach their working size.
        round_trip_allocations = co_await round_trips(a, *id, b, at_b.id, 100, 1'000);
        stream_test streams{a, *id, 6 * stream_test::messages};
        asio::co_spawn(ctx, consume(b, streams.expected, streams.received), asio::detached);
        stream_allocations = co_await streams.run(2, 4);
        finished = true;
      },
      [&](const std::exception_ptr&) { ctx.stop(); });
  asio::steady_timer limit(ctx, std::chrono::seconds(30));
  limit.async_wait([&](const std::error_code& ec) {
    if (!ec)
      ctx.stop();
  });
  ctx.run();
  REQUIRE(finished);
  REQUIRE(round_trip_allocations.has_value());
  REQUIRE(stream_allocations.has_value());
  CHECK(*round_trip_allocations == 0);
  CHECK(*stream_allocations == 0);
}

// Sender and receiver on threads of their own, one io_context each, as many applications run: the sends that wait for
// room complete through any_io_executor, whose own function objects come from two recycled blocks per thread and
// otherwise from the heap.
TEST_CASE("a stream to a slower consumer on another thread allocates nothing on the heap once warm")
{
  if (!peergraph::test::allocations_counted()) {
    MESSAGE("allocations are not counted in this build");
    return;
  }
  constexpr int per_round = 60'000; // 5.5 MB: the consumer falls behind by more than the socket buffers take
  constexpr int warm_up_rounds = 2; // the first round's answer is the first message the sender's node reads
  constexpr int rounds = 4;
  asio::io_context sending{1};
  asio::io_context receiving{1};
  auto receiving_work = asio::make_work_guard(receiving);
  std::thread receiver([&] { receiving.run_for(60s); });
  std::optional<std::vector<std::size_t>> allocations;
  std::atomic<int> sent{0};
  {
    peergraph::graph a(sending.get_executor(), props("alice"));
    peergraph::graph b(receiving.get_executor(), props("bob"));
    asio::co_spawn(receiving, consume_slowly(b, per_round, rounds, warm_up_rounds, sent), asio::detached);
    asio::co_spawn(
        sending,
        [&]() -> asio::awaitable<void> {
          const auto where = co_await listening(b);
          const auto id = co_await a.connect(where);
          if (id)
            allocations = co_await stream_rounds(a, *id, per_round, warm_up_rounds, rounds, sent);
          (void)co_await a.close();
          (void)co_await b.close();
        },
        [&](const std::exception_ptr&) { sending.stop(); });
    sending.run_for(60s);
  }
  receiving_work.reset();
  receiver.join();
  REQUIRE(allocations.has_value());
  REQUIRE(allocations->size() == static_cast<std::size_t>(rounds - warm_up_rounds));
  // The block pool grows to the most blocks that were ever live at once. Under heavy CPU contention an interleaving
  // rarely sets a new high by one block after the warm-up (seen in about 1 of 15 runs with three busy loops on two
  // cores): growth, once. A cost per message would show in every round, by thousands.
  std::size_t total = 0;
  std::string per_round_counts;
  for (const std::size_t in_round : *allocations) {
    total += in_round;
    per_round_counts += std::to_string(in_round) + ' ';
  }
  INFO("allocations per round: ", per_round_counts);
  CHECK(total <= 1);
}

CO_TEST_CASE("concurrent send_data calls on one connection never interleave and keep their start order")
{
  auto pb = props("bob");
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), pb);
  const auto id = co_await connected(a, b);

  constexpr std::uint32_t senders = 32;
  constexpr std::size_t size = 200'000; // large enough that sends wait for the socket and queue up
  std::vector<std::vector<std::byte>> messages;
  for (std::uint32_t i = 0; i < senders; ++i)
    messages.push_back(pattern(1000 + i, size));
  for (std::uint32_t i = 0; i < senders; ++i)
    asio::co_spawn(
        ctx,
        [&, i]() -> asio::awaitable<void> {
          auto sent = co_await a.send_data(id, chat_type, asio::buffer(messages[i]));
          REQUIRE(sent.has_value());
        },
        asio::detached);

  for (std::uint32_t i = 0; i < senders; ++i) {
    auto data = co_await next_of<incoming_data>(b);
    REQUIRE(data.payload.size() == size);
    CHECK_MESSAGE(std::equal(messages[i].begin(), messages[i].end(), data.payload.begin()),
                  "message " << i << " out of order or mixed");
  }
}

CO_TEST_CASE("a 32 MiB payload of 4,096 buffers arrives intact")
{
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), props("bob"));
  const auto id = co_await connected(a, b);

  constexpr std::size_t total = 32 * 1024 * 1024;
  const auto data = pattern(7, total);
  std::vector<asio::const_buffer> buffers;
  for (std::size_t i = 0; i < 4096; ++i)
    buffers.emplace_back(data.data() + i * (total / 4096), total / 4096);
  bool sent = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        auto r = co_await a.send_data(id, file_type, buffers);
        REQUIRE_MESSAGE(r.has_value(), error_text(r));
        sent = true;
      },
      asio::detached);
  auto got = co_await next_of<incoming_data>(b);
  CHECK(got.type == file_type);
  REQUIRE(got.payload.size() == total);
  CHECK(std::equal(data.begin(), data.end(), got.payload.begin()));
  CHECK(sent);
}

CO_TEST_CASE("zero-copy send_data of 100 B, 64 KiB and 4 MiB, many in a row, arrives intact and in order")
{
  // bob's event queue of four holds his reader back, so the kernel keeps alice's pages until he reads on.
  auto pb = props("bob");
  pb.event_queue_depth = 4;
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), pb);
  const auto id = co_await connected(a, b);

  constexpr std::array<std::size_t, 3> sizes{100, 64 * 1024, 4 * 1024 * 1024};
  constexpr std::uint32_t count = 24; // each half: eight of each size
  const auto block = pattern(31, sizes.back());
  std::vector<std::uint32_t> sequence(2 * count);
  for (std::uint32_t i = 0; i < 2 * count; ++i)
    sequence[i] = i;
  const auto parts = [&](std::uint32_t i) {
    return std::array<asio::const_buffer, 2>{asio::buffer(&sequence[i], sizeof(std::uint32_t)),
                                             asio::buffer(block.data(), sizes[i % sizes.size()])};
  };
  // The first half goes one after another; the second half starts together, queued behind each other.
  std::uint32_t completed = 0;
  std::uint32_t failed = 0;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        for (std::uint32_t i = 0; i < count; ++i) {
          auto sent = co_await a.send_data(id, file_type, parts(i), peergraph::send_flags::zero_copy);
          if (!sent)
            ++failed;
          ++completed;
        }
        for (std::uint32_t i = count; i < 2 * count; ++i)
          a.send_data(id, file_type, parts(i), peergraph::send_flags::zero_copy, [&](std::error_code ec) {
            if (ec)
              ++failed;
            ++completed;
          });
      },
      asio::detached);

  for (std::uint32_t i = 0; i < 2 * count; ++i) {
    auto data = co_await next_of<incoming_data>(b);
    CHECK(data.type == file_type);
    REQUIRE(data.payload.size() == sizeof i + sizes[i % sizes.size()]);
    std::uint32_t seq = 0;
    std::memcpy(&seq, data.payload.data(), sizeof seq);
    REQUIRE(seq == i);
    REQUIRE(std::equal(block.begin(), block.begin() + static_cast<std::ptrdiff_t>(sizes[i % sizes.size()]),
                       data.payload.begin() + sizeof seq));
  }
  // Everything arrived: the kernel releases the last pages once bob's kernel has acknowledged them.
  for (int i = 0; i < 400 && completed < 2 * count; ++i)
    co_await pause(5ms);
  CHECK(completed == 2 * count);
  CHECK(failed == 0);
}

#if !defined(_WIN32) // kernel zero-copy is Linux's
CO_TEST_CASE("a zero-copy send_data waiting for its pages completes when the connection ends, from either side")
{
  for (const bool remote_closes : {false, true}) {
    CAPTURE(remote_closes);
    auto pa = props("alice");
    pa.close_linger = 200ms;
    auto pb = props("bob");
    pb.event_queue_depth = 1;
    pb.close_linger = 200ms;
    peergraph::graph a(ctx.get_executor(), pa);
    peergraph::graph b(ctx.get_executor(), pb);
    const auto id = co_await connected(a, b);
    (void)co_await next_of<connection_changed>(b);

    // bob reads no events: the first message fills his queue of one, his reader stops at the second, and what
    // follows stays in the kernels' buffers, unacknowledged.
    const std::string text = "held";
    for (int i = 0; i < 2; ++i)
      REQUIRE((co_await a.send_data(id, chat_type, asio::buffer(text))).has_value());
    const auto filler = pattern(32, 256 * 1024);
    bool filler_done = false;
    a.send_data(id, chat_type, asio::buffer(filler), [&](std::error_code) { filler_done = true; });
    const auto block = pattern(33, 64 * 1024);
    std::optional<std::error_code> result;
    a.send_data(id, file_type, asio::buffer(block), peergraph::send_flags::zero_copy,
                [&](std::error_code ec) { result = ec; });
    co_await pause(100ms);
    REQUIRE_FALSE(result.has_value());

    const auto closing = std::chrono::steady_clock::now();
    if (remote_closes)
      REQUIRE((co_await b.close()).has_value());
    else
      REQUIRE((co_await a.close()).has_value());
    for (int i = 0; i < 600 && !(result && filler_done); ++i)
      co_await pause(5ms);
    REQUIRE(result.has_value());
    CHECK(filler_done);
    CHECK(std::chrono::steady_clock::now() - closing < 2500ms);
    // Closing ends the wait for the pages (operation_aborted), or the connection ends first and says how; when bob
    // closes, his kernel may still acknowledge everything, and the send succeeds.
    MESSAGE("the zero-copy send completed with: " << (*result ? result->message() : std::string("success")));
    if (!remote_closes)
      CHECK(*result);
  }
}
#endif

CO_TEST_CASE("direct connections: private, not neighbors, closed by either side with an event on the other")
{
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), props("bob"));
  const auto where = co_await listening(b);
  auto neighbor = co_await a.connect(where);
  REQUIRE(neighbor.has_value());
  // A direct connection to a peer that is already a neighbor is allowed: it is not a neighbor connection.
  auto direct = co_await a.open_direct_connection(pid("bob"), where);
  REQUIRE_MESSAGE(direct.has_value(), error_text(direct));
  CHECK(*direct != *neighbor);

  auto list = co_await a.connections(peergraph::connection_kinds::direct);
  REQUIRE(list.has_value());
  REQUIRE(list->size() == 1);
  CHECK((*list)[0].kind == connection_kind::direct);

  // The peer id is required and checked.
  auto wrong_peer = co_await a.open_direct_connection(pid("mallory"), where);
  REQUIRE_FALSE(wrong_peer.has_value());
  CHECK(wrong_peer.error() == peer_errc::node_not_found);

  const std::string secret = "just for you";
  REQUIRE((co_await a.send_data(*direct, chat_type, asio::buffer(secret))).has_value());
  connection_id direct_on_b;
  for (int i = 0; i < 20; ++i) {
    auto event = co_await b.next_event();
    REQUIRE(event.has_value());
    if (auto* c = std::get_if<connection_changed>(&*event);
        c && c->kind == connection_kind::direct && c->status == connection_status::connected)
      direct_on_b = c->id;
    if (auto* d = std::get_if<incoming_data>(&*event)) {
      CHECK(d->connection == direct_on_b);
      CHECK(text_of(d->payload) == secret);
      break;
    }
  }

  auto not_direct = co_await a.close_direct_connection(*neighbor);
  REQUIRE_FALSE(not_direct.has_value());
  CHECK(not_direct.error() == peer_errc::not_direct_connection);
  auto unknown = co_await a.close_direct_connection(connection_id(424242));
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error() == peer_errc::connection_not_found);

  REQUIRE((co_await a.close_direct_connection(*direct)).has_value());
  auto gone = co_await next_of<connection_changed>(b);
  CHECK(gone.id == direct_on_b);
  CHECK(gone.status == connection_status::disconnected);
  CHECK(gone.reason == peer_errc::connection_closed);
  // Closed means gone: sending on it fails, and the neighbor connection still works.
  auto after = co_await a.send_data(*direct, chat_type, asio::buffer(secret));
  REQUIRE_FALSE(after.has_value());
  CHECK(after.error() == peer_errc::connection_not_found);
  REQUIRE((co_await a.send_data(*neighbor, chat_type, asio::buffer(secret))).has_value());
  CHECK(text_of((co_await next_of<incoming_data>(b)).payload) == secret);
}

CO_TEST_CASE("the event filter delivers only the kinds and data types asked for")
{
  auto pb = props("bob");
  pb.events.kinds = peergraph::event_kind::incoming_data;
  pb.events.data_types = {file_type};
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), pb);
  const auto id = co_await connected(a, b);
  const std::string chat = "not for the filter";
  const std::string file = "for the filter";
  REQUIRE((co_await a.send_data(id, chat_type, asio::buffer(chat))).has_value());
  REQUIRE((co_await a.send_data(id, file_type, asio::buffer(file))).has_value());
  // No connection or status events, no chat: the first event is the file data.
  auto first = co_await b.next_event();
  REQUIRE(first.has_value());
  auto* data = std::get_if<incoming_data>(&*first);
  REQUIRE(data != nullptr);
  CHECK(text_of(data->payload) == file);

  REQUIRE((co_await b.set_event_filter({})).has_value()); // everything again
  REQUIRE((co_await a.send_data(id, chat_type, asio::buffer(chat))).has_value());
  CHECK(text_of((co_await next_of<incoming_data>(b)).payload) == chat);
}

CO_TEST_CASE("a consumer that stops reading slows the sender down; nothing is lost")
{
  auto pb = props("bob");
  pb.event_queue_depth = 4;
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), pb);
  const auto id = co_await connected(a, b);
  (void)co_await next_of<connection_changed>(b);

  constexpr std::uint32_t count = 400;
  const auto block = pattern(3, 64 * 1024);
  std::uint32_t completed = 0;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        for (std::uint32_t i = 0; i < count; ++i) {
          std::array<asio::const_buffer, 2> parts{asio::buffer(&i, sizeof i), asio::buffer(block)};
          REQUIRE((co_await a.send_data(id, chat_type, parts)).has_value());
          ++completed;
        }
      },
      asio::detached);

  // 400 x 64 KiB = 25 MiB cannot all fit in the kernel buffers and a queue of 4: the sender must be held up.
  co_await pause(300ms);
  CHECK(completed < count);
  for (std::uint32_t i = 0; i < count; ++i) {
    auto data = co_await next_of<incoming_data>(b);
    REQUIRE(data.payload.size() == sizeof i + block.size());
    std::uint32_t seq = 0;
    std::memcpy(&seq, data.payload.data(), sizeof seq);
    REQUIRE(seq == i);
  }
  // The last send's completion may come a moment after its bytes (Windows reports it through the completion port).
  for (int i = 0; i < 200 && completed < count; ++i)
    co_await pause(5ms);
  CHECK(completed == count);
}

CO_TEST_CASE("messages that arrive while the event queue is full are delivered once it has room, and no later")
{
  auto pb = props("bob");
  pb.event_queue_depth = 1;
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), pb);
  const auto id = co_await connected(a, b);
  (void)co_await next_of<connection_changed>(b);
  (void)co_await next_of<peergraph::status_changed>(a);

  // The first batch is read at once and fills the queue; the second arrives while bob's reader waits for room, and
  // nothing comes after it to announce it again.
  constexpr std::uint32_t batch = 10;
  for (std::uint32_t i = 0; i < 2 * batch; ++i) {
    if (i == batch)
      co_await pause(50ms);
    REQUIRE((co_await a.send_data(id, chat_type, asio::buffer(&i, sizeof i))).has_value());
  }
  co_await pause(100ms);
  for (std::uint32_t i = 0; i < 2 * batch; ++i) {
    auto data = co_await next_of<incoming_data>(b);
    REQUIRE(data.payload.size() == sizeof i);
    std::uint32_t seq = 0;
    std::memcpy(&seq, data.payload.data(), sizeof seq);
    REQUIRE(seq == i);
  }
}

CO_TEST_CASE("a peer that vanishes mid-frame is reported disconnected; the graph stays healthy")
{
  peergraph::graph b(ctx.get_executor(), props("bob"));
  const auto where = co_await listening(b);
  {
    peergraph::graph a(ctx.get_executor(), props("alice"));
    auto id = co_await a.connect(where);
    REQUIRE(id.has_value());
    (void)co_await next_of<connection_changed>(b);
  }
  // alice's graph is gone (destroyed): bob sees the disconnect.
  auto gone = co_await next_of<connection_changed>(b);
  CHECK(gone.status == connection_status::disconnected);
  CHECK(gone.remote_peer == pid("alice"));

  // A raw client that completes a handshake by hand, starts a frame and resets the connection.
  {
    peergraph::graph c(ctx.get_executor(), props("carol"));
    auto id = co_await c.connect(where);
    REQUIRE(id.has_value());
    auto on_b = co_await next_of<connection_changed>(b);
    CHECK(on_b.status == connection_status::connected);
  }
  auto carol_gone = co_await next_of<connection_changed>(b);
  CHECK(carol_gone.status == connection_status::disconnected);

  peergraph::graph d(ctx.get_executor(), props("dave"));
  auto id = co_await d.connect(where);
  REQUIRE(id.has_value());
  const std::string text = "healthy";
  REQUIRE((co_await d.send_data(*id, chat_type, asio::buffer(text))).has_value());
  CHECK(text_of((co_await next_of<incoming_data>(b)).payload) == text);
}

CO_TEST_CASE("close() disconnects the remotes, aborts what is pending, and later operations fail")
{
  peergraph::graph a(ctx.get_executor(), props("alice"));
  peergraph::graph b(ctx.get_executor(), props("bob"));
  const auto where = co_await listening(b);
  auto id = co_await a.connect(where);
  REQUIRE(id.has_value());

  // A next_event that waits while the graph closes completes with operation_aborted.
  bool waiting_done = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 100; ++i) {
          auto e = co_await a.next_event();
          if (!e) {
            CHECK(e.error() == peer_errc::operation_aborted);
            break;
          }
        }
        waiting_done = true;
      },
      asio::detached);
  co_await pause(20ms);

  CHECK((co_await next_of<connection_changed>(b)).status == connection_status::connected);
  REQUIRE((co_await a.close()).has_value());
  auto gone = co_await next_of<connection_changed>(b);
  CHECK(gone.status == connection_status::disconnected);
  CHECK(gone.reason == peer_errc::graph_shutting_down);
  for (int i = 0; i < 100 && !waiting_done; ++i)
    co_await pause(5ms);
  CHECK(waiting_done);

  const std::string text = "x";
  CHECK((co_await a.send_data(*id, chat_type, asio::buffer(text))).error() == peer_errc::invalid_graph);
  CHECK((co_await a.connect(where)).error() == peer_errc::invalid_graph);
  CHECK((co_await a.listen(any_v4)).error() == peer_errc::invalid_graph);
  CHECK((co_await a.next_event()).error() == peer_errc::invalid_graph);
  CHECK((co_await a.connections()).error() == peer_errc::invalid_graph);
  CHECK((co_await a.close()).error() == peer_errc::invalid_graph);

  peergraph::graph empty;
  CHECK((co_await empty.connect(where)).error() == peer_errc::not_initialized);
  CHECK((co_await empty.next_event()).error() == peer_errc::not_initialized);
  CHECK((co_await empty.send_data(*id, chat_type, asio::buffer(text))).error() == peer_errc::not_initialized);
  peergraph::graph moved_to = std::move(b);
  CHECK((co_await b.listen(any_v4)).error() == peer_errc::not_initialized); // NOLINT: moved-from use is the test
  CHECK((co_await moved_to.connections()).has_value());
}

CO_TEST_CASE("close while sends are pending completes every send, a partly written one within the linger bound")
{
  auto pa = props("alice");
  pa.close_linger = 300ms;
  peergraph::graph a(ctx.get_executor(), pa);
  auto pb = props("bob");
  pb.event_queue_depth = 1;
  peergraph::graph b(ctx.get_executor(), pb);
  const auto id = co_await connected(a, b);
  const auto block = pattern(5, 1024 * 1024);
  int finished = 0;
  int aborted = 0;
  for (int i = 0; i < 20; ++i)
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
          auto r = co_await a.send_data(id, chat_type, asio::buffer(block));
          if (!r)
            ++aborted;
          ++finished;
        },
        asio::detached);
  co_await pause(50ms);
  REQUIRE((co_await a.close()).has_value());
  const auto closed = std::chrono::steady_clock::now();
  for (int i = 0; i < 400 && finished < 20; ++i)
    co_await pause(5ms);
  CHECK(finished == 20);
  CHECK(std::chrono::steady_clock::now() - closed < 1500ms);
  // b's queue of one event held the rest back: those never started fail, and so does the one b never read whole.
  CHECK(aborted > 0);
}

CO_TEST_CASE("five nodes in a ring and in a star exchange typed data")
{
  constexpr std::size_t n = 5;
  const std::array<std::string, n> names{"n0", "n1", "n2", "n3", "n4"};
  std::vector<std::unique_ptr<peergraph::graph>> nodes;
  std::vector<tcp::endpoint> where;
  for (const auto& name : names) {
    nodes.push_back(std::make_unique<peergraph::graph>(ctx.get_executor(), props(name)));
    where.push_back(co_await listening(*nodes.back()));
  }
  // Ring: i -> i+1. Star: n0 is the hub, so it also connects to the two nodes not adjacent to it in the ring.
  std::vector<std::pair<std::size_t, connection_id>> links; // (sender, id)
  for (std::size_t i = 0; i < n; ++i) {
    auto id = co_await nodes[i]->connect(where[(i + 1) % n]);
    REQUIRE_MESSAGE(id.has_value(), error_text(id));
    links.emplace_back(i, *id);
  }
  for (std::size_t i = 2; i < n - 1; ++i) {
    auto id = co_await nodes[0]->connect(where[i]);
    REQUIRE_MESSAGE(id.has_value(), error_text(id));
    links.emplace_back(0, *id);
  }
  for (const auto& [sender, id] : links) {
    const std::string text = "from " + names[sender];
    REQUIRE((co_await nodes[sender]->send_data(id, chat_type, asio::buffer(text))).has_value());
  }
  // Each node receives one message per link that ends at it; the hub's neighbours n2, n3 receive two.
  std::map<std::string, int> received;
  const std::array<int, n> expected_counts{1, 1, 2, 2, 1};
  for (std::size_t i = 0; i < n; ++i) {
    for (int k = 0; k < expected_counts[i]; ++k) {
      auto data = co_await next_of<incoming_data>(*nodes[i]);
      CHECK(data.type == chat_type);
      ++received[text_of(data.payload)];
    }
    auto list = co_await nodes[i]->connections(peergraph::connection_kinds::neighbor);
    REQUIRE(list.has_value());
    CHECK(list->size() == (i == 0 ? 4U : (i == 2 || i == 3 ? 3U : 2U)));
  }
  CHECK(received["from n0"] == 3);
  for (std::size_t i = 1; i < n; ++i)
    CHECK(received["from " + names[i]] == 1);
}

namespace {

/// The same two-node exchange on a given executor: connect, 200 messages each way, close.
template <class Executor>
void exchange_on(const Executor& ex, std::function<void()> run)
{
  using graph_type = peergraph::basic_graph<Executor>;
  graph_type a(ex, props("alice"));
  graph_type b(ex, props("bob"));
  // Shared with the coroutine: on a thread pool, set_value may still be running when this thread wakes up and returns.
  auto done = std::make_shared<std::promise<bool>>();
  auto result = done->get_future();
  asio::co_spawn(
      ex,
      [&a, &b, done]() -> asio::awaitable<void> {
        bool ok = true;
        auto where = co_await b.listen(any_v4);
        auto id = co_await a.connect(*where);
        ok = ok && id.has_value();
        for (std::uint32_t i = 0; ok && i < 200; ++i) {
          auto sent = co_await a.send_data(*id, chat_type, asio::buffer(&i, sizeof i));
          ok = sent.has_value();
        }
        for (std::uint32_t i = 0; ok && i < 200;) {
          auto e = co_await b.next_event();
          ok = e.has_value();
          if (auto* d = ok ? std::get_if<incoming_data>(&*e) : nullptr) {
            std::uint32_t seq = 0;
            std::memcpy(&seq, d->payload.data(), sizeof seq);
            ok = seq == i++;
          }
        }
        auto closed_a = co_await a.close();
        auto closed_b = co_await b.close();
        ok = ok && closed_a.has_value() && closed_b.has_value();
        done->set_value(ok);
      },
      asio::detached);
  run();
  REQUIRE(result.wait_for(20s) == std::future_status::ready);
  CHECK(result.get());
}

} // namespace

TEST_CASE("a graph on an any_io_executor keeps its state on a strand unless the executor already serializes")
{
  using context = peergraph::detail::graph_context<asio::any_io_executor>;
  asio::thread_pool pool(1);
  asio::io_context ctx;
  // A thread pool wrapped in any_io_executor must get a strand: its handlers run on several threads.
  const auto on_pool = context::make(asio::any_io_executor(pool.get_executor()));
  CHECK(on_pool.target_type() == typeid(asio::strand<asio::any_io_executor>));
  // An io_context and any strand serialize already and are used as they are.
  const auto on_io = context::make(asio::any_io_executor(ctx.get_executor()));
  CHECK(on_io.target_type() == typeid(asio::io_context::executor_type));
  const auto on_strand = context::make(asio::any_io_executor(asio::make_strand(ctx)));
  CHECK(on_strand.target_type() == typeid(asio::strand<asio::io_context::executor_type>));
  // Outside any handler nothing runs on these contexts; inside one, its own context does.
  const context::thread_check in_pool(on_pool);
  const context::thread_check in_io(on_io);
  const context::thread_check in_strand(on_strand);
  CHECK_FALSE(in_pool());
  CHECK_FALSE(in_io());
  CHECK_FALSE(in_strand());
  std::promise<bool> pool_answer;
  asio::post(on_pool, [&] { pool_answer.set_value(in_pool() && !in_io()); });
  CHECK(pool_answer.get_future().get());
  bool io_answer = false;
  bool strand_answer = false;
  asio::post(on_io, [&] { io_answer = in_io() && !in_pool() && !in_strand(); });
  asio::post(on_strand, [&] { strand_answer = in_strand() && in_io(); });
  CHECK(ctx.run_for(std::chrono::seconds(5)) == 2);
  CHECK(io_answer);
  CHECK(strand_answer);
  pool.join();
}

TEST_CASE("the graph works on io_context, any_io_executor, a strand and a two-thread pool")
{
  {
    asio::io_context ctx;
    exchange_on(ctx.get_executor(), [&] { ctx.run_for(20s); });
  }
  {
    asio::io_context ctx;
    exchange_on(asio::any_io_executor(ctx.get_executor()), [&] { ctx.run_for(20s); });
  }
  {
    asio::io_context ctx;
    exchange_on(asio::make_strand(ctx), [&] { ctx.run_for(20s); });
  }
  {
    asio::thread_pool pool(2);
    exchange_on(asio::any_io_executor(pool.get_executor()), [] {});
    pool.join();
  }
  {
    asio::thread_pool pool(2);
    exchange_on(pool.get_executor(), [] {});
    pool.join();
  }
}

// The usual order at the end of a program: the context stops, then the objects go, the graph before its context.
// A coroutine waiting for an event holds the graph's engine, and the engine holds its handler, until the graph closes;
// its close, queued on the stopped context, must still run when the context destroys it: else the engine and the
// coroutine leak, and on Windows the io_context's destructor waits forever for the handler's outstanding work.
TEST_CASE("a graph destroyed after its io_context stopped still closes when the context goes: nothing is left behind")
{
  const auto consumers_alive = std::make_shared<int>(0);
  {
    asio::io_context ctx;
    {
      peergraph::graph a(ctx.get_executor(), props("alice"));
      peergraph::graph b(ctx.get_executor(), props("bob"));
      bool linked = false;
      for (auto* g : {&a, &b}) {
        asio::co_spawn(
            ctx,
            [g, consumers_alive]() -> asio::awaitable<void> {
              for (int i = 0; i < 1'000; ++i) {
                if (!co_await g->next_event())
                  co_return;
              }
            },
            asio::detached);
      }
      asio::co_spawn(
          ctx,
          [&]() -> asio::awaitable<void> {
            (void)co_await connected(a, b);
            linked = true;
          },
          asio::detached);
      for (int i = 0; i < 500 && !linked; ++i)
        ctx.run_for(10ms);
      REQUIRE(linked);
      ctx.run_for(20ms); // the connected events are taken; both consumers wait again
      ctx.stop();
      CHECK(consumers_alive.use_count() == 3);
    }
    CHECK(consumers_alive.use_count() == 3); // the graphs' close is queued on the stopped context
  }
  CHECK(consumers_alive.use_count() == 1); // destroying the context closed both graphs and freed their consumers
}

namespace {

/// Completes a handshake by hand from a raw socket, as peer `peer`, so that a test controls every byte afterwards.
asio::awaitable<void> raw_handshake(tcp::socket& socket, std::string_view peer)
{
  auto hello = peergraph::wire::encode_hello(
      peergraph::wire::hello_message{connection_kind::neighbor, *peergraph::graph_id::make("test-graph"), pid(peer),
                                     peergraph::node_id::generate(), std::nullopt});
  REQUIRE(hello.has_value());
  co_await asio::async_write(socket, asio::buffer(*hello), use_tuple);
  peergraph::wire::frame_decoder decoder(1 << 20);
  std::array<std::byte, 4096> buffer{};
  bool accepted = false;
  for (int reads = 0; reads < 100 && !accepted; ++reads) {
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(buffer), use_tuple);
    REQUIRE_MESSAGE(!ec, ec.message());
    std::span<const std::byte> input(buffer.data(), n);
    while (!input.empty()) {
      auto r = decoder.decode(input);
      REQUIRE(r.has_value());
      input = input.subspan(r->consumed);
      accepted = accepted || r->event == peergraph::wire::decode_event::accept;
    }
  }
  REQUIRE(accepted);
  const auto accept = peergraph::wire::encode_accept();
  co_await asio::async_write(socket, asio::buffer(accept), use_tuple);
}

} // namespace

CO_TEST_CASE("keepalive keeps a quiet connection up and drops a silent (half-open) peer with timed_out")
{
  auto pb = props("bob");
  pb.keepalive_interval = 100ms;
  peergraph::graph b(ctx.get_executor(), pb);
  const auto where = co_await listening(b);

  // A real peer answers pings: the connection outlives many intervals of silence.
  auto pa = props("alice");
  pa.keepalive_interval = 100ms;
  peergraph::graph a(ctx.get_executor(), pa);
  auto id = co_await a.connect(where);
  REQUIRE(id.has_value());
  CHECK((co_await next_of<connection_changed>(b)).status == connection_status::connected);

  // A raw peer that completes the handshake and then never answers anything.
  tcp::socket silent(ctx);
  silent.connect(where);
  co_await raw_handshake(silent, "silent");
  auto up = co_await next_of<connection_changed>(b);
  CHECK(up.status == connection_status::connected);
  CHECK(up.remote_peer == pid("silent"));

  const auto started = std::chrono::steady_clock::now();
  auto down = co_await next_of<connection_changed>(b);
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(down.remote_peer == pid("silent"));
  CHECK(down.status == connection_status::disconnected);
  CHECK(down.reason == peer_errc::timed_out);
  CHECK(took >= 150ms);
  CHECK(took < 2s);

  co_await pause(300ms);
  auto list = co_await b.connections();
  REQUIRE(list.has_value());
  REQUIRE(list->size() == 1); // alice, kept alive by pongs
  CHECK((*list)[0].remote_peer == pid("alice"));
}

TEST_SUITE_END();
