#include <peergraph/graph.hpp>
// The header under test comes first: it must be self-contained.
//
// The records of a node that joins, rejoins or restarts: the synchronisation of every new neighbor connection
// (graph_not_ready before the first, neighbor_synchronized after each, everything both sides lacked exchanged), paced
// by the connection's output; the turns a neighbor must keep; peer time for nodes whose clocks differ; a record
// store across restarts; export and import.

#include "support/co_test.hpp"
#include "support/error_text.hpp"
#include "support/graph_nodes.hpp"
#include "support/graph_support.hpp"
#include "support/record_support.hpp"

#include <peergraph/detail/graph/record_sync.hpp>
#include <peergraph/wire.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
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

} // namespace

TEST_SUITE_BEGIN("graph_record_join");

CO_TEST_CASE("a joining node is not ready until its first synchronisation, which brings it every record")
{
  node a(ctx, props("alice"));
  const auto where = co_await listening(a);
  CHECK(peergraph::has_status((co_await a->status()).value(), peergraph::graph_status::synchronized)); // it created
  std::set<record_id> added;
  for (int i = 0; i < 50; ++i)
    added.insert((co_await a->add_record(line("line " + std::to_string(i)))).value());
  auto gone = co_await a->add_record(line("deleted before the join"));
  REQUIRE(gone.has_value());
  REQUIRE((co_await a->delete_record(*gone)).has_value());

  node b(ctx, joining("bob"));
  CHECK_FALSE(peergraph::has_status((co_await b->status()).value(), peergraph::graph_status::synchronized));
  CHECK((co_await b->add_record(line("too early"))).error() == peer_errc::graph_not_ready);
  CHECK((co_await b->records()).error() == peer_errc::graph_not_ready);
  CHECK((co_await b->get_record(*gone)).error() == peer_errc::graph_not_ready);
  CHECK((co_await b->search_records(record_query::where("text", record_compare::equal, "*"))).error() ==
        peer_errc::graph_not_ready);

  (void)co_await connect_link(b, a, where);
  CHECK(co_await synchronized_with(b, "alice"));
  CHECK(co_await synchronized_with(a, "bob"));
  CHECK(peergraph::has_status((co_await b->status()).value(), peergraph::graph_status::synchronized));
  CHECK(b.count([](const graph_event& e) {
    const auto* s = std::get_if<peergraph::status_changed>(&e);
    return s != nullptr && peergraph::has_status(s->status, peergraph::graph_status::synchronized);
  }) == 1);

  auto at_b = co_await b->records(chat_line);
  REQUIRE(at_b.has_value());
  CHECK(at_b->size() == 50);
  std::set<record_id> received;
  for (const record& r : *at_b)
    received.insert(r.id);
  CHECK(received == added);
  CHECK(*(co_await b->records(chat_line)) == *(co_await a->records(chat_line))); // the same versions
  CHECK((co_await b->get_record(*gone)).error() == peer_errc::record_not_found); // its tombstone came too

  // Ready now: what it adds reaches the other node.
  auto own = co_await b->add_record(line("from the newcomer"));
  REQUIRE(own.has_value());
  CHECK(co_await saw(a, *own, record_change::added));
}

CO_TEST_CASE("two nodes that held different records each end with both, whichever connects")
{
  for (const bool alice_connects : {true, false}) {
    CAPTURE(alice_connects);
    node a(ctx, props("alice"));
    node b(ctx, props("bob"));
    const auto where_a = co_await listening(a);
    const auto where_b = co_await listening(b);
    for (int i = 0; i < 30; ++i) {
      REQUIRE((co_await a->add_record(line("a" + std::to_string(i)))).has_value());
      REQUIRE((co_await b->add_record(line("b" + std::to_string(i)))).has_value());
    }
    if (alice_connects)
      (void)co_await connect_link(a, b, where_b);
    else
      (void)co_await connect_link(b, a, where_a);
    CHECK(co_await synchronized_with(a, "bob"));
    CHECK(co_await synchronized_with(b, "alice"));
    const auto at_a = (co_await a->records()).value();
    const auto at_b = (co_await b->records()).value();
    CHECK(at_a.size() == 60);
    CHECK(at_a == at_b);
    CHECK(record_events(a) == 60); // its own 30 and the 30 it received, each reported once
  }
}

CO_TEST_CASE("a large store synchronises through a small output bound, paced by what the peer takes")
{
  auto big = props("alice");
  big.max_connection_output = 64 * 1024; // the smallest: the records must wait for room many times
  node a(ctx, big);
  const auto where = co_await listening(a);
  record bulky = line("bulky");
  bulky.data.assign(2000, std::byte{0x42});
  for (int i = 0; i < 3000; ++i)
    REQUIRE((co_await a->add_record(bulky)).has_value());
  auto small = joining("bob");
  small.max_connection_output = 64 * 1024;
  node b(ctx, small);
  (void)co_await connect_link(b, a, where);
  CHECK(co_await synchronized_with(b, "alice", 30s));
  const auto at_b = co_await b->records();
  REQUIRE(at_b.has_value());
  CHECK(at_b->size() == 3000);
  CHECK(b.count([](const graph_event& e) {
    const auto* c = std::get_if<peergraph::connection_changed>(&e);
    return c != nullptr && c->status == connection_status::disconnected;
  }) == 0); // nothing was dropped for a full output
}

CO_TEST_CASE("a neighbor that breaks the synchronisation's turns loses its connection")
{
  node b(ctx, props("bob"));
  const auto where = co_await listening(b);
  const auto send_sync = [](peergraph::test::raw_peer& raw, const peergraph::detail::sync_message& m) {
    std::vector<std::byte> payload;
    peergraph::detail::encode_sync_message(m, payload);
    REQUIRE(raw.send(peergraph::wire::encode_sync_header(payload.size())));
    REQUIRE(raw.send(payload));
  };
  peergraph::detail::sync_message everything;
  everything.ranges.push_back({std::nullopt, peergraph::detail::sync_mode::skip, {}, {}});

  // A reconcile before the clock and the begin.
  auto early = co_await raw_handshake(ctx, b, where, "mallory");
  send_sync(*early.raw, everything);
  auto dropped = co_await b.changed(pid("mallory"), connection_status::disconnected);
  REQUIRE(dropped.has_value());
  CHECK(*dropped->reason == peer_errc::protocol_error);

  // Two begins in a row: the second is out of turn (bob answered the first and waits for a reconcile).
  auto twice = co_await raw_handshake(ctx, b, where, "eve");
  peergraph::detail::sync_message clock;
  clock.step = peergraph::detail::sync_step::clock;
  clock.clock = in(0ms);
  send_sync(*twice.raw, clock);
  peergraph::detail::sync_message begin = everything;
  begin.step = peergraph::detail::sync_step::begin;
  begin.ranges.front().mode = peergraph::detail::sync_mode::fingerprint;
  begin.ranges.front().fingerprint.count = 5; // differs: bob must answer
  send_sync(*twice.raw, begin);
  send_sync(*twice.raw, begin);
  auto refused = co_await b.changed(pid("eve"), connection_status::disconnected);
  REQUIRE(refused.has_value());
  CHECK(*refused->reason == peer_errc::protocol_error);

  // A sync frame on a direct connection.
  auto direct = std::make_unique<peergraph::test::raw_peer>(ctx);
  direct->connect(where);
  auto reply = co_await direct->handshake(peergraph::test::hello_of(
      "dave", "test-graph", pid("bob"), peergraph::node_id::generate(), peergraph::connection_kind::direct));
  REQUIRE(reply.is(peergraph::wire::decode_event::accept));
  send_sync(*direct, begin);
  auto ended = co_await b.changed(pid("dave"), connection_status::disconnected);
  REQUIRE(ended.has_value());
  CHECK(*ended->reason == peer_errc::protocol_error);
}

CO_TEST_CASE("a neighbor whose hello lacks the records feature is refused with unsupported_version, either way")
{
  namespace wire = peergraph::wire;
  node b(ctx, props("bob"));
  const auto where = co_await listening(b);

  // It calls the node: the refuse comes in place of the node's hello, which it never sees.
  peergraph::test::raw_peer old(ctx);
  old.connect(where);
  auto hello = peergraph::test::hello_of("old");
  hello.features = wire::feature_records << 1U; // a later feature, without records
  auto refused = co_await old.handshake(hello);
  CHECK_MESSAGE(refused.is(wire::decode_event::refuse), "no refuse: " << refused.error.message());
  CHECK(refused.reason == peer_errc::unsupported_version);
  auto failed = co_await b.changed(pid("old"), connection_status::failed);
  REQUIRE(failed.has_value());
  CHECK(failed->reason == peer_errc::unsupported_version);

  // A direct connection carries no records: the same node is served.
  peergraph::test::raw_peer direct(ctx);
  direct.connect(where);
  auto direct_hello = peergraph::test::hello_of("old", "test-graph", pid("bob"), peergraph::node_id::generate(),
                                                peergraph::connection_kind::direct);
  direct_hello.features = 0;
  auto accepted = co_await direct.handshake(direct_hello);
  CHECK_MESSAGE(accepted.is(wire::decode_event::accept), "not accepted: " << accepted.error.message());

  // The node calls it: connect() fails with unsupported_version, and the other side reads why.
  asio::ip::tcp::acceptor other(ctx, peergraph::test::any_v4);
  std::optional<peergraph::expected<peergraph::connection_id, peergraph::peer_error>> connected;
  asio::co_spawn(
      ctx, [&]() -> asio::awaitable<void> { connected = co_await b->connect(other.local_endpoint()); }, asio::detached);
  auto [accept_error, socket] = co_await other.async_accept(peergraph::test::use_tuple);
  REQUIRE_FALSE(accept_error);
  peergraph::test::raw_peer callee(std::move(socket));
  auto theirs = co_await callee.next(2s);
  REQUIRE(theirs.is(wire::decode_event::hello));
  CHECK((callee.decoder().hello().features & wire::feature_records) != 0);
  auto mine = peergraph::test::hello_of("older");
  mine.features = 0;
  REQUIRE(callee.send(*wire::encode_hello(mine)));
  auto why = co_await callee.next(2s);
  CHECK_MESSAGE(why.is(wire::decode_event::refuse), "no refuse: " << why.error.message());
  CHECK(why.reason == peer_errc::unsupported_version);
  for (int i = 0; i < 200 && !connected; ++i)
    co_await pause(5ms);
  REQUIRE(connected.has_value());
  REQUIRE_FALSE(connected->has_value());
  CHECK(connected->error() == peer_errc::unsupported_version);
}

CO_TEST_CASE("a node whose clock is an hour ahead takes the graph's peer time when it joins")
{
  node a(ctx, props("alice"));
  const auto where = co_await listening(a);
  auto short_lived = co_await a->add_record(line("for thirty seconds", 30s));
  REQUIRE(short_lived.has_value());
  auto skewed = joining("bob");
  skewed.clock = [] { return std::chrono::system_clock::now() + std::chrono::hours(1); };
  node b(ctx, skewed);
  CHECK(b->peer_time() - a->peer_time() > 59min); // its own clock, before it joins
  (void)co_await connect_link(b, a, where);
  CHECK(co_await synchronized_with(b, "alice"));
  const auto apart = b->peer_time() - a->peer_time();
  CHECK(apart < 2s);
  CHECK(apart > -2s);
  // By its own clock alice's record expired an hour ago; by the graph's it has half a minute left.
  CHECK((co_await b->get_record(*short_lived)).has_value());
  // What bob adds expires at alice when the graph's time says.
  record brief = line("a second and a half");
  brief.expires = b->peer_time() + 1500ms;
  auto id = co_await b->add_record(brief);
  REQUIRE_MESSAGE(id.has_value(), error_text(id));
  CHECK(co_await saw(a, *id, record_change::added));
  CHECK(co_await saw(a, *id, record_change::expired, 6s));
}

CO_TEST_CASE("a node restarts on its record store: its records are back, it is synchronised at once, and catches up")
{
  auto store = std::make_shared<peergraph::memory_record_store>();
  node a(ctx, props("alice"));
  const auto where = co_await listening(a);
  for (int i = 0; i < 20; ++i)
    REQUIRE((co_await a->add_record(line("before " + std::to_string(i)))).has_value());
  auto with_store = joining("bob");
  with_store.store = store;
  {
    node b(ctx, with_store);
    (void)co_await connect_link(b, a, where);
    CHECK(co_await synchronized_with(b, "alice"));
    auto own = co_await b->add_record(line("bob's own"));
    REQUIRE(own.has_value());
    CHECK(co_await saw(a, *own, record_change::added));
    CHECK(store->size() == 21);
    // The store serves one graph at a time.
    auto second = peergraph::graph::create(ctx.get_executor(), with_store);
    REQUIRE_FALSE(second.has_value());
    CHECK(second.error() == peer_errc::already_exists);
    REQUIRE((co_await b->close()).has_value());
  }
  for (int i = 0; i < 5; ++i) // while bob is away
    REQUIRE((co_await a->add_record(line("while away " + std::to_string(i)))).has_value());

  node b(ctx, with_store);
  CHECK(peergraph::has_status((co_await b->status()).value(), peergraph::graph_status::synchronized));
  CHECK((co_await b->records()).value().size() == 21); // what it held, at once
  (void)co_await connect_link(b, a, where);
  CHECK(co_await synchronized_with(b, "alice"));
  CHECK((co_await b->records()).value() == (co_await a->records()).value());
  CHECK(store->size() == 26);

  // A store of another peer is refused.
  auto other = props("carol");
  other.store = store;
  REQUIRE((co_await b->close()).has_value());
  auto wrong = peergraph::graph::create(ctx.get_executor(), other);
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error() == peer_errc::invalid_graph);
}

CO_TEST_CASE("export and import: a node's records move through a file; another graph's file or a bad one is refused")
{
  const auto dir =
      std::filesystem::temp_directory_path() / ("peergraph-export-" + std::to_string(peergraph::detail::random_u64()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "alice.records";
  {
    node a(ctx, props("alice"));
    std::vector<record_id> ids;
    for (int i = 0; i < 10; ++i)
      ids.push_back((co_await a->add_record(line("exported " + std::to_string(i)))).value());
    REQUIRE((co_await a->delete_record(ids.front())).has_value());
    auto exported = co_await a->export_records(file);
    REQUIRE_MESSAGE(exported.has_value(), error_text(exported));

    node again(ctx, props("alice")); // the same peer, another instance
    auto imported = co_await again->import_records(file);
    REQUIRE_MESSAGE(imported.has_value(), error_text(imported));
    CHECK(*imported == 10); // nine records and one tombstone
    CHECK((co_await again->records()).value() == (co_await a->records()).value());
    CHECK((co_await again->get_record(ids.front())).error() == peer_errc::record_not_found);
    CHECK(record_events(again) == 9);                    // the tombstone of a record it never held is silent
    CHECK(*(co_await again->import_records(file)) == 0); // nothing new the second time

    // Not once the graph listens (PEER_E_GRAPH_IN_USE).
    (void)co_await listening(again);
    CHECK((co_await again->export_records(file)).error() == peer_errc::graph_in_use);
    CHECK((co_await again->import_records(file)).error() == peer_errc::graph_in_use);

    node carol(ctx, props("carol"));
    CHECK((co_await carol->import_records(file)).error() == peer_errc::invalid_graph);
    CHECK((co_await carol->import_records(dir / "missing")).error() == peer_errc::record_store_failed);

    // A truncated file: the versions before the cut are taken, then the error.
    const auto size = std::filesystem::file_size(file);
    const auto cut = dir / "cut.records";
    std::filesystem::copy_file(file, cut);
    std::filesystem::resize_file(cut, size - 5);
    node fresh(ctx, props("alice"));
    CHECK((co_await fresh->import_records(cut)).error() == peer_errc::record_store_failed);
    CHECK((co_await fresh->records()).value().size() <= 9);
    std::filesystem::resize_file(cut, 3); // not even a header
    CHECK((co_await fresh->import_records(cut)).error() == peer_errc::record_store_failed);
  }
  std::filesystem::remove_all(dir);
}

CO_TEST_CASE("a deletion made while a node was away reaches it when it comes back; expired records stay gone")
{
  auto store = std::make_shared<peergraph::memory_record_store>();
  node a(ctx, props("alice"));
  const auto where = co_await listening(a);
  auto kept = co_await a->add_record(line("kept"));
  auto doomed = co_await a->add_record(line("deleted while bob is away"));
  auto brief = co_await a->add_record(line("expires while bob is away", 1500ms));
  REQUIRE((kept && doomed && brief));
  auto with_store = joining("bob");
  with_store.store = store;
  {
    node b(ctx, with_store);
    (void)co_await connect_link(b, a, where);
    CHECK(co_await synchronized_with(b, "alice"));
    CHECK((co_await b->records()).value().size() == 3);
    REQUIRE((co_await b->close()).has_value());
  }
  REQUIRE((co_await a->delete_record(*doomed)).has_value());
  CHECK(co_await saw(a, *brief, record_change::expired, 5s));

  node b(ctx, with_store);
  CHECK((co_await b->get_record(*brief)).error() == peer_errc::record_not_found); // not loaded back
  CHECK((co_await b->get_record(*doomed)).has_value());                           // still the old version
  (void)co_await connect_link(b, a, where);
  CHECK(co_await synchronized_with(b, "alice"));
  CHECK(co_await saw(b, *doomed, record_change::deleted));
  CHECK((co_await b->get_record(*doomed)).error() == peer_errc::record_not_found);
  CHECK((co_await b->get_record(*brief)).error() == peer_errc::record_not_found); // nor brought back by the sync
  CHECK((co_await b->records()).value() == (co_await a->records()).value());
}

TEST_SUITE_END();
