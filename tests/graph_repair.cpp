#include <peergraph/graph.hpp>
// The header under test comes first: it must be self-contained.
//
// A graph that repairs itself: connection_required when a neighbor connection ends, with and without
// automatic_repair; a node killed in the middle of a line of five, whose two sides find each other through presence
// and then converge on the same records.

#include "support/co_test.hpp"
#include "support/graph_nodes.hpp"
#include "support/graph_support.hpp"
#include "support/record_support.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using peergraph::connection_required;
using peergraph::connection_status;
using peergraph::graph_event;
using peergraph::peer_errc;
using peergraph::test::connect_link;
using peergraph::test::listening;
using peergraph::test::node;
using peergraph::test::pause;
using peergraph::test::pid;
using peergraph::test::props;

/// Takes the connection_required event that names `lost` from `n`'s log, waiting up to `timeout`.
asio::awaitable<std::optional<connection_required>> required(node& n, const std::string& lost,
                                                             std::chrono::milliseconds timeout = 3s)
{
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int round = 0; round < 100'000; ++round) {
    auto& log = n.log();
    for (std::size_t i = 0; i < log.events.size(); ++i) {
      const auto* c = std::get_if<connection_required>(&log.events[i]);
      if (c != nullptr && !log.taken[i] && c->lost_peer == pid(lost)) {
        log.taken[i] = true;
        co_return *c;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline)
      break;
    co_await pause(2ms);
  }
  co_return std::nullopt;
}

/// Properties of a node of the repair tests: one neighbor is enough (so the line stays a line until the kill), a
/// dead neighbor is found within a few hundred milliseconds.
peergraph::graph_properties repairing(const std::string& name)
{
  auto p = props(name);
  p.min_neighbors = 1;
  p.keepalive_interval = 100ms;
  p.handshake_timeout = 500ms;
  p.connect_timeout = 500ms;
  return p;
}

/// Whether `n` holds record `id`, waiting up to `timeout`.
asio::awaitable<bool> holds(node& n, const peergraph::record_id& id, std::chrono::milliseconds timeout)
{
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int round = 0; round < 100'000; ++round) {
    if (co_await n->get_record(id))
      co_return true;
    if (std::chrono::steady_clock::now() >= deadline)
      break;
    co_await pause(10ms);
  }
  co_return false;
}

} // namespace

TEST_SUITE_BEGIN("graph_repair");

CO_TEST_CASE("connection_required: raised on every neighbor loss; without automatic repair nothing reconnects")
{
  auto manual = props("alice");
  manual.automatic_repair = false;
  node a(ctx, manual);
  node b(ctx, props("bob"));
  const auto where = co_await listening(b);
  REQUIRE((co_await a->set_presence(true)).has_value());
  REQUIRE((co_await b->set_presence(true)).has_value());
  (void)co_await connect_link(a, b, where);
  REQUIRE((co_await b->close()).has_value());
  auto event = co_await required(a, "bob");
  REQUIRE(event.has_value());
  CHECK(event->neighbors == 0);
  CHECK(event->lost_node != peergraph::node_id());
  // Nothing tries to connect: no failed attempt follows within a few repair delays.
  co_await pause(500ms);
  CHECK(a.count([](const graph_event& e) {
    const auto* c = std::get_if<peergraph::connection_changed>(&e);
    return c != nullptr && c->status == connection_status::failed;
  }) == 0);

  // A direct connection is no neighbor: its end raises nothing.
  node c(ctx, props("carol"));
  const auto carol_at = co_await listening(c);
  auto direct = co_await a->open_direct_connection(pid("carol"), carol_at);
  REQUIRE(direct.has_value());
  REQUIRE((co_await a->close_direct_connection(*direct)).has_value());
  CHECK_FALSE((co_await required(a, "carol", 300ms)).has_value());
}

CO_TEST_CASE("repair: a node killed in a line of five; its two sides find each other and converge on the records")
{
  // node0 - node1 - victim - node3 - node4, the victim on a context of its own that dies with its sockets.
  std::vector<std::unique_ptr<node>> nodes;
  const std::vector<std::string> names{"node0", "node1", "node3", "node4"};
  for (const auto& name : names)
    nodes.push_back(std::make_unique<node>(ctx, repairing(name)));
  std::vector<asio::ip::tcp::endpoint> where;
  for (auto& n : nodes)
    where.push_back(co_await listening(*n));
  (void)co_await connect_link(*nodes[0], *nodes[1], where[1]);
  (void)co_await connect_link(*nodes[3], *nodes[2], where[2]);

  auto dying = std::make_unique<asio::io_context>();
  auto work = asio::make_work_guard(*dying);
  std::thread runner([&] { dying->run(); });
  auto victim = std::make_unique<peergraph::graph>(dying->get_executor(), repairing("victim"));
  std::atomic<int> ready{0}; // 1: listening, connected and present; 2: failed
  asio::co_spawn(
      *dying,
      [&]() -> asio::awaitable<void> {
        auto bound = co_await victim->listen(peergraph::test::any_v4);
        auto left = co_await victim->connect(where[1]);
        auto right = co_await victim->connect(where[2]);
        auto present = co_await victim->set_presence(true);
        ready = bound && left && right && present ? 1 : 2;
      },
      asio::detached);
  for (int i = 0; i < 500 && ready == 0; ++i)
    co_await pause(10ms);
  REQUIRE(ready == 1);
  for (auto& n : nodes)
    REQUIRE((co_await (*n)->set_presence(true)).has_value());
  // Everyone lists everyone: the line carries presence end to end.
  for (int i = 0; i < 300; ++i) {
    auto listed = co_await (*nodes[0])->nodes();
    REQUIRE(listed.has_value());
    if (listed->size() == 5)
      break;
    co_await pause(10ms);
  }
  REQUIRE((co_await (*nodes[0])->nodes())->size() == 5);

  // The kill: its context stops and goes away with its sockets; no goodbye, its presence stays until it expires.
  dying->stop();
  runner.join();
  victim.reset();
  work.reset();
  dying.reset();

  // Both sides notice (the sockets close), and raise connection_required.
  REQUIRE((co_await required(*nodes[1], "victim")).has_value());
  REQUIRE((co_await required(*nodes[2], "victim")).has_value());

  // Records added on each side after the kill reach the other: the line is whole again.
  auto left = co_await (*nodes[0])->add_record(peergraph::test::line("from the left"));
  auto right = co_await (*nodes[3])->add_record(peergraph::test::line("from the right"));
  REQUIRE(left.has_value());
  REQUIRE(right.has_value());
  CHECK(co_await holds(*nodes[3], *left, 5s));
  CHECK(co_await holds(*nodes[0], *right, 5s));
  // A repair connection joined the two sides.
  const auto repaired = [&](node& n) {
    return n.count([](const graph_event& e) {
      const auto* c = std::get_if<peergraph::connection_changed>(&e);
      return c != nullptr && c->status == connection_status::connected && c->remote_peer != pid("victim");
    });
  };
  CHECK(repaired(*nodes[1]) + repaired(*nodes[2]) >= 3); // node0 and node4's links, and at least one across
}
