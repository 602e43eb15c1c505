#include <peergraph/graph.hpp>
// The header under test comes first: it must be self-contained.
//
// The graph's record operations over the network: add, update and delete flooded to every node over neighbor
// connections, each version applied and reported once per node, expiry everywhere, and neighbors that send bad
// records losing their connection with the store unchanged.

#include "support/co_test.hpp"
#include "support/error_text.hpp"
#include "support/graph_nodes.hpp"
#include "support/graph_support.hpp"
#include "support/record_support.hpp"

#include <peergraph/detail/graph/record_codec.hpp>
#include <peergraph/wire.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using peergraph::connection_status;
using peergraph::graph_event;
using peergraph::peer_errc;
using peergraph::record;
using peergraph::record_change;
using peergraph::record_changed;
using peergraph::record_compare;
using peergraph::record_id;
using peergraph::record_query;
using peergraph::record_time;
using peergraph::test::chain;
using peergraph::test::connect_link;
using peergraph::test::error_text;
using peergraph::test::in;
using peergraph::test::joining;
using peergraph::test::line;
using peergraph::test::listening;
using peergraph::test::make_nodes;
using peergraph::test::node;
using peergraph::test::pause;
using peergraph::test::pid;
using peergraph::test::props;
using peergraph::test::raw_handshake;
using peergraph::test::record_events;
using peergraph::test::saw;
using peergraph::test::synchronized_with;

constexpr auto chat_line = peergraph::test::line_type;
constexpr auto presence_like = peergraph::data_type::from_string("aa1c2d3e-4f50-4617-8293-a4b5c6d7e8f9");

} // namespace

TEST_SUITE_BEGIN("graph_record_flooding");

CO_TEST_CASE("a record added at one end of a line reaches every node; updates and the delete follow")
{
  auto nodes = make_nodes(ctx, 3);
  co_await chain(nodes, false);
  node& a = *nodes[0];
  node& c = *nodes[2];

  auto id = co_await a->add_record(line("hello from the first node"));
  REQUIRE_MESSAGE(id.has_value(), error_text(id));
  for (auto& n : nodes)
    CHECK(co_await saw(*n, *id, record_change::added));
  auto at_c = co_await c->get_record(*id);
  REQUIRE(at_c.has_value());
  CHECK(at_c->version == 1);
  CHECK(at_c->creator == pid("node0"));
  CHECK(at_c->attributes == line("hello from the first node").attributes);
  auto at_a = co_await a->get_record(*id);
  CHECK(*at_a == *at_c); // the same version everywhere

  record changed = *at_a;
  changed.attributes = {{"text", std::string("edited")}};
  auto updated = co_await a->update_record(changed);
  REQUIRE_MESSAGE(updated.has_value(), error_text(updated));
  for (auto& n : nodes)
    CHECK(co_await saw(*n, *id, record_change::updated));
  CHECK((co_await c->get_record(*id))->version == 2);
  CHECK((co_await c->get_record(*id))->attributes == changed.attributes);

  // Only the creator may change it: at c it is someone else's record.
  CHECK((co_await c->update_record(*at_c)).error() == peer_errc::access_denied);
  CHECK((co_await c->delete_record(*id)).error() == peer_errc::access_denied);

  auto deleted = co_await a->delete_record(*id);
  REQUIRE(deleted.has_value());
  for (auto& n : nodes)
    CHECK(co_await saw(*n, *id, record_change::deleted));
  CHECK((co_await c->get_record(*id)).error() == peer_errc::record_not_found);
  CHECK((co_await c->records()).value().empty());
  for (auto& n : nodes)
    CHECK(record_events(*n) == 3); // each change reported once on each node
}

CO_TEST_CASE("in a ring of five every node reports each of 20 records exactly once")
{
  auto nodes = make_nodes(ctx, 5);
  co_await chain(nodes, true);
  node& a = *nodes[0];
  std::set<record_id> ids;
  for (int i = 0; i < 20; ++i) {
    auto id = co_await a->add_record(line("line " + std::to_string(i)));
    REQUIRE(id.has_value());
    ids.insert(*id);
  }
  // Flooding keeps each link's order: when the last record has arrived, every earlier one has.
  auto sentinel = co_await a->add_record(line("sentinel"));
  REQUIRE(sentinel.has_value());
  for (auto& n : nodes) {
    CHECK(co_await saw(*n, *sentinel, record_change::added));
    std::set<record_id> reported;
    for (const auto& e : n->log().events)
      if (const auto* c = std::get_if<record_changed>(&e); c && c->id != *sentinel)
        reported.insert(c->id);
    CHECK(reported == ids);
    CHECK(record_events(*n) == ids.size() + 1);
    auto listed = co_await (*n)->records(chat_line);
    REQUIRE(listed.has_value());
    CHECK(listed->size() == ids.size() + 1);
  }
  // Later copies coming round the ring were old news: still one event per record.
  co_await pause(100ms);
  for (auto& n : nodes)
    CHECK(record_events(*n) == ids.size() + 1);
}

CO_TEST_CASE("records expire on every node without a message")
{
  auto nodes = make_nodes(ctx, 2);
  co_await chain(nodes, false);
  auto id = co_await (*nodes[0])->add_record(line("short-lived", 400ms));
  REQUIRE(id.has_value());
  CHECK(co_await saw(*nodes[1], *id, record_change::added));
  CHECK((co_await (*nodes[1])->get_record(*id)).has_value());
  for (auto& n : nodes)
    CHECK(co_await saw(*n, *id, record_change::expired, 3s));
  for (auto& n : nodes)
    CHECK((co_await (*n)->get_record(*id)).error() == peer_errc::record_not_found);
}

CO_TEST_CASE("enumeration, search and the event filter by record type")
{
  auto nodes = make_nodes(ctx, 2);
  peergraph::event_filter only_chat;
  only_chat.record_types = {chat_line};
  REQUIRE((co_await (*nodes[1])->set_event_filter(only_chat)).has_value());
  co_await chain(nodes, false);
  node& a = *nodes[0];
  node& b = *nodes[1];
  auto chat = co_await a->add_record(line("lunch at noon"));
  auto other = co_await a->add_record(line("status", 60s, presence_like));
  auto late = co_await a->add_record(line("meeting at two"));
  REQUIRE((chat && other && late));
  CHECK(co_await saw(b, *late, record_change::added));
  CHECK(record_events(b) == 2); // the other type is filtered out
  auto listed = co_await b->records(chat_line);
  CHECK(listed->size() == 2);
  CHECK((co_await b->records()).value().size() == 3);
  auto found = co_await b->search_records(record_query::where("text", record_compare::equal, "* at *") &&
                                          record_query::where("peercreatorid", record_compare::equal, "node0"));
  REQUIRE(found.has_value());
  CHECK(found->size() == 2);
  CHECK((co_await b->search_records(record_query::any_of({}))).error() == peer_errc::invalid_search);

  CHECK((co_await a->add_record(line("expired", -1ms))).error() == peer_errc::invalid_argument);
  record untyped = line("no type");
  untyped.type = {};
  CHECK((co_await a->add_record(untyped)).error() == peer_errc::invalid_argument);
  CHECK((co_await a->get_record(record_id::generate())).error() == peer_errc::record_not_found);
}

CO_TEST_CASE("a neighbor that sends a malformed or forged record loses its connection; the store is unchanged")
{
  node b(ctx, props("bob"));
  const auto where = co_await listening(b);
  node a(ctx, props("alice"));
  (void)co_await connect_link(a, b, where);
  auto genuine = co_await a->add_record(line("genuine"));
  REQUIRE(genuine.has_value());
  CHECK(co_await saw(b, *genuine, record_change::added));
  const auto held = co_await b->get_record(*genuine);
  REQUIRE(held.has_value());

  const auto send_record = [](peergraph::test::raw_peer& raw, const peergraph::data_type& type,
                              const std::vector<std::byte>& payload) {
    const auto header = peergraph::wire::encode_record_header(type, payload.size());
    REQUIRE(raw.send(header));
    REQUIRE(raw.send(payload));
  };

  // A payload that is no record.
  auto garbage = co_await raw_handshake(ctx, b, where, "mallory");
  send_record(*garbage.raw, chat_line, std::vector<std::byte>(40, std::byte{0x5a}));
  auto dropped = co_await b.changed(pid("mallory"), connection_status::disconnected);
  REQUIRE(dropped.has_value());
  CHECK(*dropped->reason == peer_errc::protocol_error);

  // A new version of alice's record made by someone else.
  auto forger = co_await raw_handshake(ctx, b, where, "eve");
  record forged = *held;
  forged.version = 7;
  forged.creator = pid("eve");
  forged.modified_by = pid("eve");
  std::vector<std::byte> payload;
  REQUIRE(peergraph::detail::encode_record_payload(forged, payload).has_value());
  send_record(*forger.raw, chat_line, payload);
  auto refused = co_await b.changed(pid("eve"), connection_status::disconnected);
  REQUIRE(refused.has_value());
  CHECK(*refused->reason == peer_errc::invalid_record);
  CHECK(*(co_await b->get_record(*genuine)) == *held);

  // Records travel between neighbors only: on a direct connection a record frame is a protocol error.
  auto direct = std::make_unique<peergraph::test::raw_peer>(ctx);
  direct->connect(where);
  auto reply = co_await direct->handshake(peergraph::test::hello_of(
      "dave", "test-graph", pid("bob"), peergraph::node_id::generate(), peergraph::connection_kind::direct));
  REQUIRE(reply.is(peergraph::wire::decode_event::accept));
  send_record(*direct, chat_line, payload);
  auto ended = co_await b.changed(pid("dave"), connection_status::disconnected);
  REQUIRE(ended.has_value());
  CHECK(*ended->reason == peer_errc::protocol_error);

  // The genuine neighbor is unharmed and the store holds what it held.
  auto more = co_await a->add_record(line("still flowing"));
  REQUIRE(more.has_value());
  CHECK(co_await saw(b, *more, record_change::added));
  CHECK((co_await b->records()).value().size() == 2);
}

CO_TEST_CASE("a record from a neighbor that expires at the end of time is kept, and the expiry timer copes")
{
  node b(ctx, props("bob"));
  const auto where = co_await listening(b);
  auto eve = co_await raw_handshake(ctx, b, where, "eve");
  record forever = line("forever");
  forever.id = record_id::generate();
  forever.version = 1;
  forever.creator = pid("eve");
  forever.modified_by = forever.creator;
  forever.created = in(0ms);
  forever.last_modified = forever.created;
  forever.expires = record_time::max();
  std::vector<std::byte> payload;
  REQUIRE(peergraph::detail::encode_record_payload(forever, payload).has_value());
  const auto header = peergraph::wire::encode_record_header(forever.type, payload.size());
  REQUIRE(eve.raw->send(header));
  REQUIRE(eve.raw->send(payload));
  CHECK(co_await saw(b, forever.id, record_change::added));
  // A record that expires soon after it still expires on time: the far one did not hold the timer up.
  auto soon = co_await b->add_record(line("soon", 300ms));
  REQUIRE(soon.has_value());
  CHECK(co_await saw(b, *soon, record_change::expired, 3s));
  CHECK((co_await b->get_record(forever.id)).has_value());
}

CO_TEST_CASE("the record limits of graph_properties hold for what neighbors send")
{
  auto pb = props("bob");
  pb.max_records = 3;
  node b(ctx, pb);
  const auto where = co_await listening(b);
  node a(ctx, props("alice"));
  (void)co_await connect_link(a, b, where);
  for (int i = 0; i < 3; ++i) {
    auto id = co_await a->add_record(line("r" + std::to_string(i)));
    REQUIRE(id.has_value());
    CHECK(co_await saw(b, *id, record_change::added));
  }
  auto fourth = co_await a->add_record(line("one too many for bob"));
  REQUIRE(fourth.has_value()); // alice has room
  auto dropped = co_await b.changed(pid("alice"), connection_status::disconnected);
  REQUIRE(dropped.has_value());
  CHECK(*dropped->reason == peer_errc::limit_exceeded);
  CHECK((co_await b->records()).value().size() == 3);
  CHECK((co_await b->add_record(line("bob's own"))).error() == peer_errc::limit_exceeded);

  auto small = props("carol");
  small.max_record_size = 1024;
  node c(ctx, small);
  CHECK((co_await c->add_record([] {
          record r = line("large");
          r.data.resize(2048);
          return r;
        }()))
            .error() == peer_errc::max_record_size_exceeded);
}

CO_TEST_CASE("in a random connected graph of 20 nodes every node ends with the same records, each reported once")
{
  auto nodes = make_nodes(ctx, 20);
  std::vector<asio::ip::tcp::endpoint> where;
  for (auto& n : nodes)
    where.push_back(co_await listening(*n));
  // A random spanning tree (node i connects to an earlier one), then random chords, 29 links in all.
  std::mt19937 random(20);
  std::set<std::pair<std::size_t, std::size_t>> links;
  for (std::size_t i = 1; i < nodes.size(); ++i)
    links.insert({random() % i, i});
  for (int tries = 0; tries < 1000 && links.size() < 29; ++tries) {
    const std::size_t a = random() % nodes.size(), b = random() % nodes.size();
    if (a != b)
      links.insert({std::min(a, b), std::max(a, b)});
  }
  for (const auto& [listener, caller] : links)
    (void)co_await connect_link(*nodes[caller], *nodes[listener], where[listener]);

  std::vector<record_id> ids;
  for (std::size_t origin : {0U, 7U, 13U, 19U})
    for (int i = 0; i < 5; ++i)
      ids.push_back((co_await (*nodes[origin])->add_record(line("from node" + std::to_string(origin)))).value());
  for (auto& n : nodes)
    for (const record_id& id : ids)
      CHECK(co_await saw(*n, id, record_change::added));
  const auto reference = (co_await (*nodes.front())->records()).value();
  CHECK(reference.size() == ids.size());
  for (auto& n : nodes) {
    CHECK((co_await (*n)->records()).value() == reference);
    CHECK(record_events(*n) == ids.size()); // each applied and reported once
  }
}

TEST_SUITE_END();
