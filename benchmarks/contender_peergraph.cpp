//
// benchmarks/contender_peergraph.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// peergraph: the graph itself. Two graph nodes connected as neighbors over loopback; the sender awaits one
// `co_await graph.send_data(id, type, buffers)` per frame and the receiver takes every frame as an incoming_data
// event from `co_await graph.next_event()`.
//
#include "asio_support.hpp"

#include <peergraph/graph.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/ip/address_v4.hpp>

#include <array>
#include <chrono>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace {

using namespace peergraph::bench;
using namespace std::chrono_literals;

// The graph as an application writes it (peergraph::graph, on any_io_executor): each node on its io_context's
// executor, the application's coroutines spawned on that executor.
using graph_type = peergraph::graph;

graph_type::executor_type executor_of(asio::io_context& io)
{
  return io.get_executor();
}

/// The harness's type GUIDs as graph data types: the graph's frames carry them as their type.
constexpr peergraph::data_type as_data_type(const guid& g) noexcept
{
  peergraph::data_type::bytes_type bytes{};
  for (std::size_t i = 0; i < guid_bytes; ++i)
    bytes[i] = static_cast<std::byte>(g[i]);
  return peergraph::data_type(bytes);
}

constexpr peergraph::data_type data_message = as_data_type(data_type);
constexpr peergraph::data_type end_message = as_data_type(end_type);

/// The properties of benchmark node `name`: the default limits (60 MB frames) unless `max_connections` is given,
/// which then holds for one address too (every connection of a benchmark comes from 127.0.0.1).
peergraph::graph_properties properties(const std::string& name, std::size_t max_connections = 0)
{
  peergraph::graph_properties p;
  auto graph = peergraph::graph_id::make("peergraph-bench");
  auto peer = peergraph::peer_id::make(name);
  if (!graph || !peer)
    fail("peergraph: invalid graph or peer id");
  p.graph = std::move(*graph);
  p.peer = std::move(*peer);
  if (max_connections != 0) {
    p.max_connections = max_connections;
    p.max_connections_per_address = max_connections;
  }
  return p;
}

void check_sent(const peergraph::expected<void, peergraph::peer_error>& sent)
{
  if (!sent)
    fail("send_data: " + sent.error().message());
}

/// Passes one message to the verifier as the frame the other contenders send: the header rebuilt from the message's
/// type and length, then the payload.
void verify(frame_checker& checker, const peergraph::incoming_data& data)
{
  if (data.payload.size() > std::numeric_limits<std::uint32_t>::max())
    fail("peergraph: message too long");
  guid type{};
  std::memcpy(type.data(), data.type.bytes().data(), guid_bytes);
  const frame_header header = make_header(type, static_cast<std::uint32_t>(data.payload.size()));
  checker.feed(header.data(), header.size());
  checker.feed(data.payload.data(), data.payload.size());
}

/// The incoming data of an awaited event, or nullptr for connection and status events, which are skipped. A failed
/// next_event fails the run. (A plain function rather than a coroutine, so that receiving an event costs the
/// coroutine frames of next_event alone.)
const peergraph::incoming_data* data_of(const peergraph::expected<peergraph::graph_event, peergraph::peer_error>& event)
{
  if (!event)
    fail("next_event: " + event.error().message());
  return std::get_if<peergraph::incoming_data>(&*event);
}

/// Sends the end frame of a stream of `frames` data frames: its payload is the frame count.
asio::awaitable<void> send_end(graph_type& graph, peergraph::connection_id id, std::uint64_t frames)
{
  const end_frame end = make_end_frame(frames);
  check_sent(co_await graph.send_data(id, end_message, asio::buffer(end.data() + header_bytes, end_payload_bytes)));
}

/// co_spawn completion of the coroutine that finishes a run (the receiver, the server): fails the run on an
/// exception, and once `remaining` such coroutines have finished, stops the contexts in `stop`. The sending side's
/// context keeps running until then, as an application's would: what the graph still has to do for the messages
/// already sent (writing out small messages it has taken in) happens on it.
struct stop_when_done
{
  const char* what;
  int* remaining;
  std::array<asio::io_context*, 2> stop;

  void operator()(const std::exception_ptr& e) const
  {
    fail_on_exception{what}(e);
    if (--*remaining == 0)
      for (asio::io_context* io : stop)
        io->stop();
  }
};

/// Runs the contexts by polling until `done()` holds: connection set-up and tear-down, outside every measurement.
template <class Done>
bool drive_until(Done done, std::initializer_list<asio::io_context*> contexts, bench_clock::duration limit = 20s)
{
  const auto deadline = bench_clock::now() + limit;
  while (!done()) {
    if (bench_clock::now() > deadline)
      return false;
    for (asio::io_context* io : contexts) {
      if (io->stopped())
        io->restart();
      io->poll();
    }
  }
  return true;
}

/// Two graph nodes, each on its own context (or both on one), connected as neighbors: `a` connected to `b`.
struct linked_pair
{
  graph_type a;
  graph_type b;
  peergraph::connection_id a_to_b;
  asio::io_context* a_io;
  asio::io_context* b_io;

  linked_pair(asio::io_context& a_context, asio::io_context& b_context)
      : a(executor_of(a_context), properties("a")), b(executor_of(b_context), properties("b")), a_io(&a_context),
        b_io(&b_context)
  {
    bool linked = false;
    asio::co_spawn(
        a.get_executor(),
        [this, &linked]() -> asio::awaitable<void> {
          auto where = co_await b.listen({asio::ip::address_v4::loopback(), 0});
          if (!where)
            fail("listen: " + where.error().message());
          auto id = co_await a.connect(*where);
          if (!id)
            fail("connect: " + id.error().message());
          a_to_b = *id;
          linked = true;
        },
        fail_on_exception{"connect"});
    if (!drive_until([&] { return linked; }, {a_io, b_io}))
      fail("peergraph: connecting timed out");
  }

  linked_pair(const linked_pair&) = delete;
  linked_pair& operator=(const linked_pair&) = delete;

  /// Closes both nodes and lets their connections wind down, bounded in time.
  ~linked_pair()
  {
    int closing = 2;
    for (graph_type* g : {&a, &b})
      asio::co_spawn(
          g->get_executor(), [g]() -> asio::awaitable<void> { (void)co_await g->close(); },
          [&closing](const std::exception_ptr&) { --closing; });
    drive_until([&] { return closing == 0; }, {a_io, b_io}, 5s);
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Streams.

asio::awaitable<void> send_stream(graph_type& graph, peergraph::connection_id id, const frame_layout& layout,
                                  const send_limit& limit, std::uint64_t& sent)
{
  if (layout.pieces == 1) {
    while (limit.more(sent)) {
      check_sent(co_await graph.send_data(id, data_message, asio::buffer(payload_of(sent), layout.payload_bytes)));
      ++sent;
    }
  } else {
    // The same pieces as the other contenders' gather, without their header buffer: the graph adds its own header.
    std::vector<asio::const_buffer> pieces(layout.pieces);
    const std::span<const asio::const_buffer> view(pieces);
    while (limit.more(sent)) {
      const std::uint8_t* payload = payload_of(sent);
      for (std::size_t i = 0; i < layout.pieces; ++i)
        pieces[i] = asio::buffer(payload + i * layout.piece_bytes(), layout.piece_bytes());
      check_sent(co_await graph.send_data(id, data_message, view));
      ++sent;
    }
  }
  co_await send_end(graph, id, sent);
}

asio::awaitable<void> receive_stream(graph_type& graph, frame_checker& checker)
{
  while (!checker.ended()) {
    const auto event = co_await graph.next_event();
    if (const auto* data = data_of(event))
      verify(checker, *data);
  }
}

measurement stream(const run_spec& spec)
{
  asio::io_context send_io{1};
  asio::io_context receive_io{1};
  linked_pair nodes(send_io, receive_io);
  send_limit limit = spec.limit();
  std::uint64_t sent = 0;
  frame_checker checker(spec.layout.payload_bytes);
  const stream_result r = run_stream(
      limit,
      [&] {
        asio::co_spawn(nodes.a.get_executor(), send_stream(nodes.a, nodes.a_to_b, spec.layout, limit, sent),
                       fail_on_exception{"sender"});
        send_io.restart();
        send_io.run();
        return sent;
      },
      [&] {
        int running = 1;
        asio::co_spawn(nodes.b.get_executor(), receive_stream(nodes.b, checker),
                       stop_when_done{"receiver", &running, {&send_io, &receive_io}});
        receive_io.restart();
        receive_io.run();
        return checker.frames();
      });
  return stream_measurement(spec, r);
}

// ---------------------------------------------------------------------------------------------------------------
// Round trips.

/// Request i, then the events until reply i is verified; records each round trip if `samples` is set.
asio::awaitable<void> rtt_client(graph_type& graph, peergraph::connection_id id, const frame_layout& layout,
                                 std::uint64_t total, std::vector<bench_clock::duration>* samples)
{
  frame_checker checker(layout.payload_bytes);
  for (std::uint64_t i = 0; i < total; ++i) {
    const auto t0 = samples != nullptr ? bench_clock::now() : bench_clock::time_point{};
    check_sent(co_await graph.send_data(id, data_message, asio::buffer(payload_of(i), layout.payload_bytes)));
    while (checker.frames() <= i) {
      const auto event = co_await graph.next_event();
      if (const auto* data = data_of(event))
        verify(checker, *data);
    }
    if (samples != nullptr)
      samples->push_back(bench_clock::now() - t0);
  }
  co_await send_end(graph, id, total);
}

/// Verifies requests and answers each, on the connection it came from, with the data frame of the same number.
asio::awaitable<void> rtt_server(graph_type& graph, const frame_layout& layout, frame_checker& checker)
{
  std::uint64_t replied = 0;
  while (!checker.ended()) {
    const auto event = co_await graph.next_event();
    const auto* request = data_of(event);
    if (request == nullptr)
      continue;
    verify(checker, *request);
    for (; replied < checker.frames(); ++replied)
      check_sent(co_await graph.send_data(request->connection, data_message,
                                          asio::buffer(payload_of(replied), layout.payload_bytes)));
  }
}

measurement rtt(const run_spec& spec)
{
  asio::io_context client_io{1};
  asio::io_context server_io{1};
  linked_pair nodes(client_io, server_io);
  const std::uint64_t total = spec.warmup + spec.count;
  return run_rtt(
      spec,
      [&] {
        std::vector<bench_clock::duration> samples;
        samples.reserve(total);
        asio::co_spawn(nodes.a.get_executor(), rtt_client(nodes.a, nodes.a_to_b, spec.layout, total, &samples),
                       fail_on_exception{"client"});
        client_io.restart();
        client_io.run();
        return samples;
      },
      [&] {
        frame_checker checker(spec.layout.payload_bytes);
        int running = 1;
        asio::co_spawn(nodes.b.get_executor(), rtt_server(nodes.b, spec.layout, checker),
                       stop_when_done{"server", &running, {&client_io, &server_io}});
        server_io.restart();
        server_io.run();
        return checker.frames();
      });
}

measurement rtt_one_thread(const run_spec& spec)
{
  asio::io_context io{1};
  linked_pair nodes(io, io);
  frame_checker at_server(spec.layout.payload_bytes);
  int running = 2;
  asio::co_spawn(nodes.a.get_executor(), rtt_client(nodes.a, nodes.a_to_b, spec.layout, spec.count, nullptr),
                 stop_when_done{"client", &running, {&io, &io}});
  asio::co_spawn(nodes.b.get_executor(), rtt_server(nodes.b, spec.layout, at_server),
                 stop_when_done{"server", &running, {&io, &io}});
  io.restart();
  io.run();
  if (running != 0 || !at_server.ended() || at_server.frames() != spec.count)
    fail("one-thread round trips did not complete");
  measurement m;
  m.values.emplace_back("round_trips", static_cast<double>(at_server.frames()));
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// Idle connections.

/// An application's event loop: takes every event until the graph closes, counting new connections.
/// Counts the connections established and the synchronisations of their records completed (an idle connection is
/// one that has done both); any other change or any data fails the run.
asio::awaitable<void> consume_events(graph_type& graph, std::uint64_t& connected, std::uint64_t& synchronized)
{
  for (;;) {
    auto event = co_await graph.next_event();
    if (!event)
      co_return; // the graph closed
    if (std::holds_alternative<peergraph::neighbor_synchronized>(*event)) {
      ++synchronized;
    } else if (auto* change = std::get_if<peergraph::connection_changed>(&*event)) {
      if (change->status == peergraph::connection_status::connected)
        ++connected;
      else
        fail("idle connection changed: " + (change->reason ? change->reason->message() : std::string("?")));
    } else if (std::holds_alternative<peergraph::incoming_data>(*event)) {
      fail("an idle connection received data");
    }
  }
}

/// One node (the hub) with `count` neighbor connections, one from each of `count` other nodes: the heap that the
/// connections add, both ends, every node already created and waiting for events, every connection's (empty) record
/// synchronisation complete.
measurement idle_conn(const run_spec& spec)
{
  asio::io_context io{1};
  const memory_usage empty = memory_usage::now();
  graph_type hub(executor_of(io), properties("hub", static_cast<std::size_t>(spec.count) + 1));
  std::vector<std::unique_ptr<graph_type>> leaves;
  leaves.reserve(spec.count);
  for (std::uint64_t i = 0; i < spec.count; ++i)
    leaves.push_back(std::make_unique<graph_type>(executor_of(io), properties("leaf-" + std::to_string(i))));

  std::optional<asio::ip::tcp::endpoint> where;
  asio::co_spawn(
      hub.get_executor(),
      [&]() -> asio::awaitable<void> {
        auto bound = co_await hub.listen({asio::ip::address_v4::loopback(), 0});
        if (!bound)
          fail("listen: " + bound.error().message());
        where = *bound;
      },
      fail_on_exception{"listen"});
  std::uint64_t hub_connected = 0;
  std::uint64_t leaves_connected = 0;
  std::uint64_t synchronized = 0; // both ends of each connection report it
  asio::co_spawn(hub.get_executor(), consume_events(hub, hub_connected, synchronized), fail_on_exception{"hub events"});
  for (auto& leaf : leaves)
    asio::co_spawn(leaf->get_executor(), consume_events(*leaf, leaves_connected, synchronized),
                   fail_on_exception{"leaf events"});
  if (!drive_until([&] { return where.has_value(); }, {&io}))
    fail("peergraph: listen timed out");
  io.poll();
  const memory_usage before = memory_usage::now();

  // One connection at a time: the hub takes at most max_pending_handshakes handshakes at once.
  bool connected = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (auto& leaf : leaves) {
          auto id = co_await leaf->connect(*where);
          if (!id)
            fail("connect: " + id.error().message());
        }
        connected = true;
      },
      fail_on_exception{"connect"});
  if (!drive_until(
          [&] {
            return connected && hub_connected == spec.count && leaves_connected == spec.count &&
                   synchronized == 2 * spec.count;
          },
          {&io}, 60s))
    fail("peergraph: connecting the idle connections timed out");
  io.poll();
  const memory_usage after = memory_usage::now();

  measurement m = idle_measurement(before, after, spec.count);
  // What a node itself takes (not part of the value): the heap of every node before any connection, per node.
  m.details.emplace_back("graph_bytes",
                         (static_cast<double>(before.heap_bytes) - static_cast<double>(empty.heap_bytes)) /
                             static_cast<double>(spec.count + 1));

  // Close every node, then let the connections wind down (bounded) before the context goes.
  int closing = static_cast<int>(spec.count) + 1;
  const auto close = [&](graph_type& g) {
    asio::co_spawn(
        g.get_executor(), [&g]() -> asio::awaitable<void> { (void)co_await g.close(); },
        [&closing](const std::exception_ptr&) { --closing; });
  };
  close(hub);
  for (auto& leaf : leaves)
    close(*leaf);
  drive_until([&] { return closing == 0; }, {&io}, 10s);
  return m;
}

const contender_registration registration{{"peergraph",
                                           {
                                               {"small_msgs_64", &stream},
                                               {"small_msgs_1k", &stream},
                                               {"large_msgs_1m", &stream},
                                               {"gather_256x64", &stream},
                                               {"rtt_64", &rtt},
                                               {"rtt_64_one_thread", &rtt_one_thread},
                                               {"idle_conn", &idle_conn},
                                           }}};

} // namespace
