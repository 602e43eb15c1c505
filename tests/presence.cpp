#include <peergraph/presence.hpp>
// The header under test comes first: it must be self-contained.
//
// Presence: the presence record's data (round trips, malformed data refused), and on the graph: nodes() and
// node_changed as nodes publish, update and withdraw their presence, leave cleanly or vanish, join later; a node's
// own presence, nodes() of one peer, and the presence records an application can neither write nor list.

#include "support/co_test.hpp"
#include "support/graph_nodes.hpp"
#include "support/graph_support.hpp"
#include "support/record_support.hpp"
#include "support/thread_context.hpp"

#include <peergraph/detail/graph/presence_codec.hpp>
#include <peergraph/graph.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using peergraph::graph_event;
using peergraph::node_change;
using peergraph::node_changed;
using peergraph::node_id;
using peergraph::node_info;
using peergraph::peer_errc;
using peergraph::test::chain;
using peergraph::test::connect_link;
using peergraph::test::listening;
using peergraph::test::make_nodes;
using peergraph::test::node;
using peergraph::test::pause;
using peergraph::test::pid;
using peergraph::test::props;
using peergraph::test::thread_context;
using tcp = asio::ip::tcp;

/// Takes the node_changed event of `peer` with `change` from `n`'s log, waiting up to `timeout`.
asio::awaitable<std::optional<node_changed>> saw_node(node& n, const std::string& peer, node_change change,
                                                      std::chrono::milliseconds timeout = 3s)
{
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int round = 0; round < 100'000; ++round) {
    auto& log = n.log();
    for (std::size_t i = 0; i < log.events.size(); ++i) {
      const auto* c = std::get_if<node_changed>(&log.events[i]);
      if (c != nullptr && !log.taken[i] && c->peer == pid(peer) && c->change == change) {
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

/// Waits up to `timeout` until `n` lists exactly `count` nodes; gives the last list.
asio::awaitable<std::vector<node_info>> listing(node& n, std::size_t count, std::chrono::milliseconds timeout = 3s)
{
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<node_info> last;
  for (int round = 0; round < 100'000; ++round) {
    auto listed = co_await n->nodes();
    REQUIRE(listed.has_value());
    last = std::move(*listed);
    if (last.size() == count || std::chrono::steady_clock::now() >= deadline)
      break;
    co_await pause(5ms);
  }
  co_return last;
}

std::vector<std::string> peers_of(const std::vector<node_info>& nodes)
{
  std::vector<std::string> peers;
  for (const auto& n : nodes)
    peers.emplace_back(n.peer.view());
  return peers;
}

} // namespace

TEST_SUITE_BEGIN("presence");

TEST_CASE("presence data: addresses of both families and attributes round trip; anything else is protocol_error")
{
  using peergraph::detail::decode_presence;
  using peergraph::detail::encode_presence;
  const std::vector<tcp::endpoint> addresses{
      {asio::ip::make_address("127.0.0.1"), 5000},
      {asio::ip::make_address_v6("fe80::1%1"), 6000},
      {asio::ip::make_address("::1"), 0},
  };
  const node_id node(0x1122334455667788);
  auto data = encode_presence(node, addresses, "status: away");
  REQUIRE(data.has_value());
  CHECK(data->size() == 12 + 7 + 23 + 23 + 12);
  auto info = decode_presence(pid("alice"), *data);
  REQUIRE(info.has_value());
  CHECK(info->node == node);
  CHECK(info->peer == pid("alice"));
  CHECK(info->addresses == addresses);
  CHECK(info->addresses[1].address().to_v6().scope_id() == 1);
  CHECK(info->attributes == "status: away");

  // The encoder refuses what the decoder would: too many addresses, attributes too long, node 0.
  CHECK_FALSE(encode_presence(node, std::vector<tcp::endpoint>(peergraph::max_presence_addresses + 1), ""));
  CHECK_FALSE(encode_presence(node, {}, std::string(peergraph::max_node_attributes_size + 1, 'x')));
  CHECK_FALSE(encode_presence(node_id(), {}, ""));
  CHECK(encode_presence(node, {}, std::string(peergraph::max_node_attributes_size, 'x')).has_value());

  const auto refused = [](std::vector<std::byte> bytes) {
    auto r = decode_presence(pid("mallory"), bytes);
    return !r && r.error() == peer_errc::protocol_error;
  };
  const std::vector<std::byte> good = *data;
  for (std::size_t cut = 0; cut < good.size(); ++cut)
    CHECK(refused(std::vector<std::byte>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut))));
  auto longer = good;
  longer.push_back(std::byte{0});
  CHECK(refused(longer));
  auto format = good;
  format[0] = std::byte{2};
  CHECK(refused(format));
  auto family = good;
  family[12] = std::byte{5};
  CHECK(refused(family));
  auto zero_node = good;
  std::fill(zero_node.begin() + 4, zero_node.begin() + 12, std::byte{0});
  CHECK(refused(zero_node));
  auto many = good;
  many[1] = std::byte{static_cast<unsigned char>(peergraph::max_presence_addresses + 1)};
  CHECK(refused(many));
}

CO_TEST_CASE("presence: every node lists every present node with its address; updates and a clean leave are seen")
{
  auto nodes = make_nodes(ctx, 3); // node0 - node1 - node2
  co_await chain(nodes, false);
  for (auto& n : nodes)
    REQUIRE((co_await (*n)->set_presence(true)).has_value());
  for (auto& n : nodes) {
    const auto listed = co_await listing(*n, 3);
    CHECK(peers_of(listed) == std::vector<std::string>{"node0", "node1", "node2"});
    for (const auto& info : listed) {
      REQUIRE(info.addresses.size() == 1); // where it listens, as listen() bound it
      CHECK(info.addresses.front().address() == asio::ip::make_address("127.0.0.1"));
      CHECK(info.addresses.front().port() != 0);
      CHECK(info.attributes.empty());
    }
  }
  // Each node reported every node as connected, itself included, once.
  const std::vector<std::string> names{"node0", "node1", "node2"};
  for (auto& n : nodes)
    for (const auto& peer : names)
      CHECK((co_await saw_node(*n, peer, node_change::connected)).has_value());
  auto self = co_await (*nodes[0])->nodes(pid("node0"));
  REQUIRE(self.has_value());
  REQUIRE(self->size() == 1);
  CHECK(self->front().node == (*nodes[0])->local_node());

  // Attributes reach the far end as an update; a refresh alone reports nothing.
  REQUIRE((co_await (*nodes[0])->set_node_attributes("status: away")).has_value());
  auto updated = co_await saw_node(*nodes[2], "node0", node_change::updated);
  REQUIRE(updated.has_value());
  CHECK(updated->node == (*nodes[0])->local_node());
  auto of_node0 = co_await (*nodes[2])->nodes(pid("node0"));
  REQUIRE(of_node0.has_value());
  REQUIRE(of_node0->size() == 1);
  CHECK(of_node0->front().attributes == "status: away");
  CHECK(
      (co_await (*nodes[0])->set_node_attributes(std::string(peergraph::max_node_attributes_size + 1, 'x'))).error() ==
      peer_errc::invalid_argument);

  // Withdrawn: gone everywhere at once, not at its expiry.
  REQUIRE((co_await (*nodes[1])->set_presence(false)).has_value());
  CHECK((co_await saw_node(*nodes[2], "node1", node_change::disconnected)).has_value());
  {
    const auto listed = peers_of(co_await listing(*nodes[0], 2));
    CHECK(listed == std::vector<std::string>{"node0", "node2"});
  }

  // A clean leave: node2 closes; node0 hears of it through node1.
  REQUIRE((co_await (*nodes[2])->close()).has_value());
  CHECK((co_await saw_node(*nodes[0], "node2", node_change::disconnected)).has_value());
  {
    const auto listed = peers_of(co_await listing(*nodes[0], 1));
    CHECK(listed == std::vector<std::string>{"node0"});
  }
}

CO_TEST_CASE("presence: a node that vanishes without leaving is gone from every list within presence_lifetime")
{
  constexpr auto lifetime = 1500ms;
  auto with_lifetime = [&](const std::string& name) {
    auto p = props(name);
    p.presence_lifetime = lifetime;
    return p;
  };
  node a(ctx, with_lifetime("alice"));
  const auto where = co_await listening(a);

  // The victim runs on a context of its own, on a thread, and then stops dead: no goodbye, no deletion.
  thread_context frozen;
  auto victim = std::make_unique<peergraph::graph>(frozen.io().get_executor(), with_lifetime("victim"));
  std::atomic<int> ready{0}; // 1: connected and present; 2: failed
  asio::co_spawn(
      frozen.io(),
      [&]() -> asio::awaitable<void> {
        auto id = co_await victim->connect(where);
        auto present = co_await victim->set_presence(true);
        ready = id.has_value() && present.has_value() ? 1 : 2;
      },
      asio::detached);
  REQUIRE((co_await saw_node(a, "victim", node_change::connected, 5s)).has_value());
  // The victim's coroutine says so on its own thread, possibly after alice saw its presence.
  for (int i = 0; i < 500 && ready == 0; ++i)
    co_await pause(10ms);
  REQUIRE(ready == 1);
  REQUIRE((co_await a->set_presence(true)).has_value());
  // Refreshes keep it listed past its lifetime.
  co_await pause(lifetime + 500ms);
  {
    const auto listed = peers_of(co_await listing(a, 2));
    CHECK(listed == std::vector<std::string>{"alice", "victim"});
  }

  frozen.freeze();
  const auto stopped = std::chrono::steady_clock::now();
  auto gone = co_await saw_node(a, "victim", node_change::disconnected, lifetime + 2s);
  REQUIRE(gone.has_value());
  const auto after = std::chrono::steady_clock::now() - stopped;
  CHECK(after <= lifetime + 200ms); // its last refresh was at most a third of a lifetime before the stop
  {
    const auto listed = peers_of(co_await listing(a, 1));
    CHECK(listed == std::vector<std::string>{"alice"});
  }

  co_await frozen.close(victim); // on its own context again, while this one runs here
}

CO_TEST_CASE("presence: a joining node publishes once synchronised and sees who was there")
{
  node a(ctx, props("alice"));
  const auto where = co_await listening(a);
  REQUIRE((co_await a->set_presence(true)).has_value());
  node b(ctx, peergraph::test::joining("bob"));
  REQUIRE((co_await b->set_presence(true)).has_value()); // before the graph: waits for the synchronisation
  CHECK((co_await b->nodes()).error() == peer_errc::graph_not_ready);
  (void)co_await connect_link(b, a, where);
  {
    const auto listed = peers_of(co_await listing(a, 2));
    CHECK(listed == std::vector<std::string>{"alice", "bob"});
  }
  {
    const auto listed = peers_of(co_await listing(b, 2));
    CHECK(listed == std::vector<std::string>{"alice", "bob"});
  }
  CHECK((co_await saw_node(b, "alice", node_change::connected)).has_value());
}

CO_TEST_CASE("presence records belong to the graph: an application can neither write nor list them")
{
  node a(ctx, props("alice"));
  (void)co_await listening(a);
  REQUIRE((co_await a->set_presence(true)).has_value());
  auto line = peergraph::test::line("hello");
  line.type = peergraph::presence_record_type;
  CHECK((co_await a->add_record(line)).error() == peer_errc::invalid_argument);
  auto all = co_await a->records();
  REQUIRE(all.has_value());
  CHECK(all->empty());
  auto typed = co_await a->records(peergraph::presence_record_type);
  REQUIRE(typed.has_value());
  CHECK(typed->empty());
  auto found = co_await a->search_records(
      peergraph::record_query::where("peercreatorid", peergraph::record_compare::equal, std::string("alice")));
  REQUIRE(found.has_value());
  CHECK(found->empty());
  // Nor a record_changed event for it: node_changed says it.
  CHECK(a.count([](const graph_event& e) { return std::holds_alternative<peergraph::record_changed>(e); }) == 0);
  CHECK((co_await saw_node(a, "alice", node_change::connected)).has_value());
}

CO_TEST_CASE("presence: a node listening on an unspecified address publishes no address")
{
  node a(ctx, props("alice"));
  auto bound = co_await a->listen(tcp::endpoint(asio::ip::address_v4::any(), 0));
  REQUIRE(bound.has_value());
  REQUIRE((co_await a->set_presence(true)).has_value());
  auto listed = co_await a->nodes();
  REQUIRE(listed.has_value());
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().addresses.empty()); // 0.0.0.0 would lead others back to themselves
}
