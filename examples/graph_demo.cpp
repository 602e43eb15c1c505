//
// examples/graph_demo.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~
// Five nodes of one peer graph in one process on loopback: a ring plus a chord of neighbor connections, a direct
// connection, typed data (a gather send among it), every event printed as it happens, then a clean close.
//
#include <peergraph.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace {

using namespace peergraph::literals;
using namespace std::chrono_literals;
using asio::ip::tcp;

// Application-defined data types: the GUIDs an application passes to PeerGraphSendData as pType.
constexpr peergraph::data_type chat_type = "5d3c8e1a-7f4b-4c2e-9a61-3b0f2d9e8c41"_guid;
constexpr peergraph::data_type telemetry_type = "a4f1b2c3-d4e5-4f60-8a7b-9c8d7e6f5a4b"_guid;

/// One node: its peer id, its graph, where it listens, and who is behind each of its connection ids (learnt from its
/// events).
struct node
{
  std::string name;
  peergraph::peer_id id;
  peergraph::graph graph;
  tcp::endpoint address;
  std::map<peergraph::connection_id, std::string> peers;
};

/// What the event printers have seen so far; the scenario waits on these counts between its steps.
struct tally
{
  int connected = 0;
  int data = 0;
  int disconnected = 0;
};

/// Returns the value of a step's result, or ends the demo with the step's name and the error's message.
/// The arguments of the awaited operations below are named variables, not nested calls: g++ 12 mis-destroys such
/// temporaries when an exception leaves a statement that holds a co_await.
template <class T>
T must(peergraph::expected<T, peergraph::peer_error> result, const std::string& step)
{
  if (!result)
    throw std::runtime_error(step + ": " + result.error().message());
  if constexpr (!std::is_void_v<T>)
    return std::move(*result);
}

void print(const node& n, std::string_view what, const std::string& detail)
{
  const std::string who = "[" + n.name + "]";
  std::printf("%-8s%-16s%s\n", who.c_str(), std::string(what).c_str(), detail.c_str());
}

std::string describe(peergraph::graph_status status)
{
  using peergraph::graph_status;
  std::string text = has_status(status, graph_status::listening) ? "listening" : "not listening";
  if (has_status(status, graph_status::has_connections))
    text += ", has connections";
  return text;
}

/// Prints every event of `n` as it arrives (PeerGraphGetEventData), until the graph closes. "#3" is a connection id:
/// each node numbers its own connections, so both ends of one connection usually show different numbers.
asio::awaitable<void> print_events(node& n, tally& seen)
{
  for (;;) {
    auto event = co_await n.graph.next_event();
    if (!event)
      co_return; // operation_aborted: the graph was closed
    if (auto* change = std::get_if<peergraph::connection_changed>(&*event)) {
      std::string detail = std::string(to_string(change->kind)) + " #" + std::to_string(change->id.value()) + " " +
                           change->remote_peer.str();
      if (change->reason)
        detail += " (" + change->reason->message() + ")";
      if (change->status == peergraph::connection_status::connected) {
        n.peers[change->id] = change->remote_peer.str();
        ++seen.connected;
        print(n, "connected", detail);
      } else {
        n.peers.erase(change->id);
        ++seen.disconnected;
        print(n, change->status == peergraph::connection_status::failed ? "failed" : "disconnected", detail);
      }
    } else if (auto* data = std::get_if<peergraph::incoming_data>(&*event)) {
      // The payload is owned by the event: no copy was made to deliver it.
      const std::string_view text(reinterpret_cast<const char*>(data->payload.data()), data->payload.size());
      const std::string from = "from #" + std::to_string(data->connection.value()) + " " + n.peers[data->connection];
      ++seen.data;
      if (data->type == chat_type)
        print(n, "data chat", from + ": " + std::string(text));
      else if (data->type == telemetry_type)
        print(n, "data telemetry", from + ": " + std::to_string(text.size()) + " bytes \"" + std::string(text) + "\"");
      else
        print(n, "data " + data->type.to_string(), from);
    } else if (auto* status = std::get_if<peergraph::status_changed>(&*event)) {
      print(n, "status", describe(status->status));
    }
  }
}

/// Waits until `done()` holds, i.e. until the events the last step caused have been printed; two seconds at most.
asio::awaitable<void> wait_until(std::function<bool()> done, std::string what)
{
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (auto deadline = std::chrono::steady_clock::now() + 2s; !done();) {
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("timed out waiting for " + what);
    timer.expires_after(1ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

void step(const char* text)
{
  std::printf("\n== %s\n", text);
}

asio::awaitable<void> run_demo(std::vector<node>& nodes, tally& seen)
{
  node& alice = nodes.at(0);
  node& bob = nodes.at(1);
  node& carol = nodes.at(2);
  node& eve = nodes.at(4);

  step("every node listens on 127.0.0.1, port 0 (PeerGraphListen)");
  for (auto& n : nodes) {
    n.address = must(co_await n.graph.listen({asio::ip::address_v4::loopback(), 0}), n.name + " listen");
    std::printf("        %-6s listens on %s:%u\n", n.name.c_str(), n.address.address().to_string().c_str(),
                unsigned{n.address.port()});
  }

  step("neighbor connections: a ring alice-bob-carol-dave-eve-alice and a chord alice-carol (PeerGraphConnect)");
  peergraph::connection_id alice_bob;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    node& from = nodes[i];
    node& to = nodes[(i + 1) % nodes.size()];
    // With a peer id, the node listening there must present that id in the handshake.
    auto id = must(co_await from.graph.connect(to.address, to.id), from.name + " connects to " + to.name);
    if (&from == &alice)
      alice_bob = id;
  }
  // Without a peer id, any node of the same graph listening there is accepted.
  const auto alice_carol = must(co_await alice.graph.connect(carol.address), "alice connects to carol");
  co_await wait_until([&] { return seen.connected == 12; }, "both sides of 6 neighbor connections");

  step("a direct connection bob -> eve, who are not neighbors (PeerGraphOpenDirectConnection)");
  const auto bob_eve = must(co_await bob.graph.open_direct_connection(eve.id, eve.address), "bob opens to eve");
  co_await wait_until([&] { return seen.connected == 14; }, "both sides of the direct connection");

  step("typed data: chat and telemetry (PeerGraphSendData)");
  const std::string hello_bob = "hello bob";
  const std::string hello_carol = "hello carol";
  must(co_await alice.graph.send_data(alice_bob, chat_type, asio::buffer(hello_bob)), "alice sends to bob");
  must(co_await alice.graph.send_data(alice_carol, chat_type, asio::buffer(hello_carol)), "alice sends to carol");
  // A gather send, like WSASend with an array of WSABUF: three separate pieces of memory leave as one message,
  // without being copied together first. They only have to stay valid until the send completes.
  const std::string sensor = "sensor=bob";
  const std::string load = " load=0.42";
  const std::string uptime = " uptime=3600s";
  const std::array<asio::const_buffer, 3> reading{asio::buffer(sensor), asio::buffer(load), asio::buffer(uptime)};
  must(co_await bob.graph.send_data(bob_eve, telemetry_type, reading), "bob sends telemetry to eve");
  const std::string secret = "this one is just for you, eve";
  must(co_await bob.graph.send_data(bob_eve, chat_type, asio::buffer(secret)), "bob sends a chat line to eve");
  co_await wait_until([&] { return seen.data == 4; }, "the four messages");

  step("bob's connections (PeerGraphEnumConnections)");
  const auto list = must(co_await bob.graph.connections(peergraph::connection_kinds::all), "bob's connections");
  std::printf("        %-4s %-9s %-6s %-17s %s\n", "id", "kind", "peer", "node id", "remote address");
  for (const auto& c : list) {
    char node_text[17];
    std::snprintf(node_text, sizeof node_text, "%016llx", static_cast<unsigned long long>(c.remote_node.value()));
    std::printf("        %-4llu %-9s %-6s %-17s %s:%u\n", static_cast<unsigned long long>(c.id.value()),
                std::string(to_string(c.kind)).c_str(), c.remote_peer.str().c_str(), node_text,
                c.remote_address.address().to_string().c_str(), unsigned{c.remote_address.port()});
  }

  step("bob closes the direct connection (PeerGraphCloseDirectConnection)");
  must(co_await bob.graph.close_direct_connection(bob_eve), "bob closes the direct connection");
  co_await wait_until([&] { return seen.disconnected == 2; }, "both sides to see the direct connection end");

  step("every node leaves, one after the other (PeerGraphClose)");
  int expected_disconnects = seen.disconnected;
  for (auto& n : nodes) {
    // The remote end of each connection still open sees it end; the closing node's own events stop.
    expected_disconnects += static_cast<int>(n.peers.size());
    must(co_await n.graph.close(), n.name + " closes");
    std::printf("        %s closed\n", n.name.c_str());
    co_await wait_until([&] { return seen.disconnected == expected_disconnects; }, "the remotes of " + n.name);
  }
}

} // namespace

int main()
{
  asio::io_context ctx;
  tally seen;
  std::vector<node> nodes;
  for (const char* name : {"alice", "bob", "carol", "dave", "eve"}) {
    // PeerGraphCreate: one graph id shared by all, a peer id per node; tight timeouts since everything is local.
    peergraph::graph_properties properties;
    properties.graph = peergraph::graph_id::make("demo-graph").value();
    properties.peer = peergraph::peer_id::make(name).value();
    auto id = properties.peer;
    properties.friendly_name = name;
    properties.connect_timeout = 2s;
    properties.handshake_timeout = 2s;
    nodes.push_back(node{name, std::move(id), peergraph::graph(ctx.get_executor(), std::move(properties)), {}, {}});
  }
  for (auto& n : nodes)
    asio::co_spawn(ctx, print_events(n, seen), asio::detached);

  int exit_code = 0;
  asio::co_spawn(ctx, run_demo(nodes, seen), [&](const std::exception_ptr& error) {
    if (!error)
      return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "graph_demo failed: %s\n", e.what());
    }
    exit_code = 1;
    for (auto& n : nodes)
      n.graph.close(asio::detached); // the printers end and run() returns
  });
  ctx.run();
  if (exit_code == 0)
    std::printf("\nall graphs closed\n");
  return exit_code;
}
