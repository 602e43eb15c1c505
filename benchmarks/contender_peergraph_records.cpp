//
// benchmarks/contender_peergraph_records.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// peergraph's records on the network: flooding through a graph of 20 nodes (record_flood_20), a node joining a graph
// that holds a large store (record_sync_join), and two large stores that differ in a few records synchronising again
// (record_resync_100). Every node runs on one io_context driven by the measuring thread; what goes over the wire is
// counted by relays (wire_relay.hpp) on a second thread, outside the graph. Every wait is bounded: a scenario that
// does not complete fails with what it was waiting for.
//
#include "asio_support.hpp"
#include "wire_relay.hpp"

#include <peergraph/graph.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/ip/address_v4.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace {

using namespace peergraph::bench;
using namespace std::chrono_literals;

using graph_type = peergraph::graph;

/// The record type of every benchmark record.
constexpr auto bench_record_type = peergraph::data_type::from_string("3d0f6e2a-9b41-4c57-8e13-a5b7c9d1e2f4");

/// How long a scenario may wait for set-up and tear-down steps (connecting, closing).
constexpr bench_clock::duration step_limit = 30s;

std::string to_text(std::uint64_t v)
{
  return std::to_string(v);
}

std::string seconds_text(bench_clock::duration d)
{
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

double seconds_between(bench_clock::time_point from, bench_clock::time_point to)
{
  return std::chrono::duration<double>(to - from).count();
}

double as_double(std::uint64_t v)
{
  return static_cast<double>(v);
}

/// A wait that grows with the records a step handles: `base`, plus `per_record` for each of `count`.
bench_clock::duration allowing(std::uint64_t count, std::chrono::microseconds per_record,
                               bench_clock::duration base = 30s)
{
  return base + per_record * static_cast<std::int64_t>(count);
}

peergraph::graph_properties node_properties(const std::string& name, peergraph::graph_start start)
{
  peergraph::graph_properties p;
  auto graph = peergraph::graph_id::make("peergraph-bench-records");
  auto peer = peergraph::peer_id::make(name);
  if (!graph || !peer)
    fail("records: invalid graph or peer id");
  p.graph = std::move(*graph);
  p.peer = std::move(*peer);
  p.start = start;
  return p;
}

/// Record `seq` of a scenario: the benchmark type, `data_bytes` bytes of data cut from the harness's pattern, no
/// attributes, a day to live.
peergraph::record bench_record(std::size_t data_bytes, std::uint64_t seq)
{
  peergraph::record r;
  r.type = bench_record_type;
  r.expires = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()) + 24h;
  const auto* bytes = reinterpret_cast<const std::byte*>(payload_of(seq));
  r.data.assign(bytes, bytes + data_bytes);
  return r;
}

/// One node of a scenario and what its event loop has seen.
struct record_node
{
  record_node(asio::io_context& io, std::string node_name, peergraph::graph_start start)
      : graph(io.get_executor(), node_properties(node_name, start)), name(std::move(node_name))
  {
  }

  graph_type graph;
  std::string name;
  std::uint64_t connected = 0;    // connection_changed connected
  std::uint64_t disconnected = 0; // connection_changed disconnected
  std::uint64_t synchronized = 0; // neighbor_synchronized
  std::uint64_t added = 0;        // record_changed added
  std::uint64_t updated = 0;      // record_changed updated
  std::uint64_t added_at_first_sync = 0;
  std::optional<bench_clock::time_point> last_synchronized_at;
  std::uint64_t complete_when_added = 0; // when `added` reaches it (not 0), `complete_at` is set
  std::optional<bench_clock::time_point> complete_at;
  bool disconnects_expected = false; // otherwise a disconnect fails the run
  bool events_ended = false;         // next_event failed: the graph closed
};

/// The node's application: takes every event until the graph closes, and counts them.
asio::awaitable<void> watch(record_node& n)
{
  for (;;) {
    auto event = co_await n.graph.next_event();
    if (!event) {
      n.events_ended = true;
      co_return;
    }
    if (const auto* change = std::get_if<peergraph::connection_changed>(&*event)) {
      const std::string reason = change->reason ? change->reason->message() : std::string("no reason");
      if (change->status == peergraph::connection_status::connected) {
        ++n.connected;
      } else if (change->status == peergraph::connection_status::disconnected) {
        ++n.disconnected;
        if (!n.disconnects_expected)
          fail("records: " + n.name + " lost a connection: " + reason);
      } else {
        fail("records: a connection of " + n.name + " failed: " + reason);
      }
    } else if (const auto* record = std::get_if<peergraph::record_changed>(&*event)) {
      if (record->change == peergraph::record_change::added) {
        if (++n.added == n.complete_when_added)
          n.complete_at = bench_clock::now();
      } else if (record->change == peergraph::record_change::updated) {
        ++n.updated;
      }
    } else if (std::holds_alternative<peergraph::neighbor_synchronized>(*event)) {
      if (++n.synchronized == 1)
        n.added_at_first_sync = n.added;
      n.last_synchronized_at = bench_clock::now();
    }
  }
}

/// Runs the nodes' context until `done()` holds; fails the run, saying what was awaited and how far it got
/// (`progress()`), when that takes longer than `limit`.
void drive(
    asio::io_context& io, const std::function<bool()>& done, bench_clock::duration limit, const std::string& what,
    const std::function<std::string()>& progress = [] { return std::string(); })
{
  const auto deadline = bench_clock::now() + limit;
  while (!done()) {
    const auto now = bench_clock::now();
    if (now >= deadline) {
      const std::string state = progress();
      fail("records: " + what + " did not complete within " + seconds_text(limit) +
           (state.empty() ? std::string() : " (" + state + ")"));
    }
    if (io.stopped())
      io.restart();
    io.run_one_for(std::min<bench_clock::duration>(deadline - now, 100ms));
  }
}

/// Runs `op` on the nodes' context to its end, bounded by `limit`.
void complete(asio::io_context& io, asio::awaitable<void> op, bench_clock::duration limit, const std::string& what)
{
  bool finished = false;
  asio::co_spawn(io, std::move(op), [&finished, what](const std::exception_ptr& e) {
    if (e)
      fail_on_exception{what.c_str()}(e);
    finished = true;
  });
  drive(io, [&] { return finished; }, limit, what);
}

asio::ip::tcp::endpoint listen(asio::io_context& io, record_node& n)
{
  asio::ip::tcp::endpoint where;
  complete(
      io,
      [&]() -> asio::awaitable<void> {
        auto bound = co_await n.graph.listen({asio::ip::address_v4::loopback(), 0});
        if (!bound)
          fail("records: listen at " + n.name + ": " + bound.error().message());
        where = *bound;
      }(),
      step_limit, "listen");
  return where;
}

/// Opens a neighbor connection from `n` to `where`, on the context (the caller drives it).
void start_connect(asio::io_context& io, record_node& n, asio::ip::tcp::endpoint where)
{
  asio::co_spawn(
      io,
      [&n, where]() -> asio::awaitable<void> {
        auto id = co_await n.graph.connect(where);
        if (!id)
          fail("records: connect from " + n.name + ": " + id.error().message());
      },
      fail_on_exception{"connect"});
}

/// Adds records `first` to `first + count - 1` at `n`, one add_record awaited after the other; their ids go to
/// `ids` when given.
asio::awaitable<void> add_records(record_node& n, std::size_t data_bytes, std::uint64_t first, std::uint64_t count,
                                  std::vector<peergraph::record_id>* ids)
{
  for (std::uint64_t seq = first; seq < first + count; ++seq) {
    auto id = co_await n.graph.add_record(bench_record(data_bytes, seq));
    if (!id)
      fail("records: add_record at " + n.name + ": " + id.error().message());
    if (ids != nullptr)
      ids->push_back(*id);
  }
}

/// The records `n` holds (records(): live records, ordered by type and id).
std::vector<peergraph::record> held_records(asio::io_context& io, record_node& n)
{
  std::vector<peergraph::record> held;
  complete(
      io,
      [&]() -> asio::awaitable<void> {
        auto listed = co_await n.graph.records();
        if (!listed)
          fail("records: records() at " + n.name + ": " + listed.error().message());
        held = std::move(*listed);
      }(),
      step_limit, "records()");
  return held;
}

std::uint64_t size_of(const std::vector<peergraph::record>& records)
{
  std::uint64_t bytes = 0;
  for (const peergraph::record& r : records)
    bytes += r.size();
  return bytes;
}

/// Closes every node and lets the event loops end, bounded.
void close_all(asio::io_context& io, const std::vector<record_node*>& nodes)
{
  for (record_node* n : nodes)
    n->disconnects_expected = true;
  for (record_node* n : nodes)
    asio::co_spawn(io, [n]() -> asio::awaitable<void> { (void)co_await n->graph.close(); }, fail_on_exception{"close"});
  drive(
      io, [&] { return std::all_of(nodes.begin(), nodes.end(), [](const record_node* n) { return n->events_ended; }); },
      step_limit, "closing the nodes");
}

/// Drives the context until the relays' counts have not changed for `quiet`: what the nodes still had in their
/// output queues after the awaited events has gone over the wire.
void settle(asio::io_context& io, const std::function<relay_counts()>& counts, const std::string& what)
{
  constexpr auto quiet = 200ms;
  relay_counts last = counts();
  auto since = bench_clock::now();
  drive(
      io,
      [&] {
        const relay_counts now = counts();
        if (!(now == last)) {
          last = now;
          since = bench_clock::now();
        }
        return bench_clock::now() - since >= quiet;
      },
      step_limit, what);
}

// ---------------------------------------------------------------------------------------------------------------
// record_flood_20

constexpr std::size_t flood_nodes = 20;
constexpr std::size_t flood_degree = 4; // node i connects to i + 1 and i + 2 (mod 20): four neighbors each

struct flood_result
{
  double seconds = 0;              // from the first add_record until every node reported every record
  std::optional<wire_counts> wire; // relayed: what the links carried from the first add until the wire was quiet
};

flood_result flood(std::uint64_t count, std::size_t data_bytes, relay_thread* relays)
{
  asio::io_context io{1};
  std::vector<std::unique_ptr<record_node>> nodes;
  std::vector<record_node*> all;
  for (std::size_t i = 0; i < flood_nodes; ++i) {
    nodes.push_back(std::make_unique<record_node>(io, "node" + std::to_string(i), peergraph::graph_start::create));
    all.push_back(nodes.back().get());
    asio::co_spawn(io, watch(*nodes.back()), fail_on_exception{"events"});
  }
  std::vector<asio::ip::tcp::endpoint> where;
  for (auto& n : nodes)
    where.push_back(listen(io, *n));
  std::vector<std::unique_ptr<wire_relay>> links;
  if (relays != nullptr)
    for (auto& w : where) {
      links.push_back(std::make_unique<wire_relay>(*relays, w));
      w = links.back()->endpoint();
    }
  const auto wire = [&] {
    relay_counts total;
    for (const auto& l : links) {
      const relay_counts c = l->counts();
      total.out += c.out;
      total.in += c.in;
    }
    return total;
  };

  complete(
      io,
      [&]() -> asio::awaitable<void> {
        for (std::size_t i = 0; i < flood_nodes; ++i)
          for (std::size_t step = 1; step <= flood_degree / 2; ++step) {
            auto id = co_await nodes[i]->graph.connect(where[(i + step) % flood_nodes]);
            if (!id)
              fail("records: connect from " + nodes[i]->name + ": " + id.error().message());
          }
      }(),
      step_limit, "connecting the 20 nodes");
  const auto linked = [&] {
    return std::all_of(all.begin(), all.end(), [](const record_node* n) {
      return n->connected == flood_degree && n->synchronized == flood_degree;
    });
  };
  drive(io, linked, step_limit, "synchronising the 20 nodes' connections");

  for (record_node* n : all)
    n->complete_when_added = count;
  const relay_counts before = wire();
  const auto started = bench_clock::now();
  asio::co_spawn(io, add_records(*nodes.front(), data_bytes, 0, count, nullptr), fail_on_exception{"add_record"});
  const auto limit = allowing(count, 10ms);
  drive(
      io,
      [&] {
        return std::all_of(all.begin(), all.end(), [](const record_node* n) { return n->complete_at.has_value(); });
      },
      limit, "flooding " + to_text(count) + " records to every node",
      [&] {
        std::string text;
        for (const record_node* n : all)
          if (!n->complete_at)
            text += (text.empty() ? "" : ", ") + n->name + " has " + to_text(n->added);
        return text;
      });
  flood_result r;
  bench_clock::time_point finished = started;
  for (const record_node* n : all)
    finished = std::max(finished, *n->complete_at);
  r.seconds = seconds_between(started, finished);
  if (relays != nullptr) {
    settle(io, wire, "the flood's last frames");
    r.wire = (wire() - before).both();
  }
  for (const record_node* n : all)
    if (n->added != count)
      fail("records: " + n->name + " reported " + to_text(n->added) + " added records, not " + to_text(count));
  close_all(io, all);
  return r;
}

/// 20 nodes, each with four neighbors; `spec.count` records of `spec.layout.payload_bytes` bytes of data added at one
/// node. Timed over direct connections; then the same over relays, which count the record frames.
measurement record_flood(const run_spec& spec)
{
  pin_current_thread(sender_cpu);
  const std::uint64_t count = spec.count;
  const flood_result direct = flood(count, spec.layout.payload_bytes, nullptr);
  relay_thread relays(receiver_cpu);
  const flood_result relayed = flood(count, spec.layout.payload_bytes, &relays);
  const wire_counts& wire = *relayed.wire;
  // Each record must reach each of the other 19 nodes at least once.
  if (wire.record_frames < (flood_nodes - 1) * count)
    fail("records: the relays saw " + to_text(wire.record_frames) + " record frames, fewer than 19 per record");
  const double n = as_double(count);
  measurement m;
  m.values.emplace_back("record_flood_20", n / direct.seconds);
  m.details.emplace_back("records", n);
  m.details.emplace_back("data_bytes", as_double(spec.layout.payload_bytes));
  m.details.emplace_back("nodes", as_double(flood_nodes));
  m.details.emplace_back("links", as_double(flood_nodes * flood_degree / 2));
  m.details.emplace_back("seconds", direct.seconds);
  m.details.emplace_back("relayed_records_per_second", n / relayed.seconds);
  m.details.emplace_back("record_frames_per_record", as_double(wire.record_frames) / n);
  m.details.emplace_back("redundant_frames_per_record", as_double(wire.record_frames) / n - (flood_nodes - 1));
  m.details.emplace_back("record_frame_bytes", as_double(wire.record_frame_bytes) / as_double(wire.record_frames));
  m.details.emplace_back("wire_bytes_per_record", as_double(wire.bytes) / n);
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// record_sync_join

struct join_result
{
  double seconds = 0; // from the connect call until the joiner's neighbor_synchronized event
  relay_counts wire;  // relayed: both directions, from the connection's start until both sides were synchronised
};

/// A fresh node joins `holder` (at `where`, directly or through `relay`): the time until it is synchronised, and
/// the check that it then holds every record, exactly as many bytes of them as the holder.
join_result join(asio::io_context& io, record_node& holder, asio::ip::tcp::endpoint where, const wire_relay* relay,
                 std::uint64_t count, std::uint64_t record_bytes, const std::string& name)
{
  record_node joiner(io, name, peergraph::graph_start::join);
  asio::co_spawn(io, watch(joiner), fail_on_exception{"events"});
  const std::uint64_t holder_synced = holder.synchronized;
  const relay_counts before = relay != nullptr ? relay->counts() : relay_counts{};
  const auto started = bench_clock::now();
  start_connect(io, joiner, where);
  drive(
      io, [&] { return joiner.synchronized == 1 && holder.synchronized == holder_synced + 1; }, allowing(count, 1ms),
      "the synchronisation of a joining node with " + to_text(count) + " records",
      [&] {
        return joiner.name + " received " + to_text(joiner.added) + " records, synchronised " +
               to_text(joiner.synchronized) + ", holder " + to_text(holder.synchronized - holder_synced);
      });
  join_result r;
  r.seconds = seconds_between(started, *joiner.last_synchronized_at);
  if (relay != nullptr)
    r.wire = relay->counts() - before;
  if (joiner.added_at_first_sync != count)
    fail("records: " + joiner.name + " had reported " + to_text(joiner.added_at_first_sync) +
         " records at its neighbor_synchronized event, not " + to_text(count));
  const auto held = held_records(io, joiner);
  if (held.size() != count || size_of(held) != record_bytes)
    fail("records: " + joiner.name + " holds " + to_text(held.size()) + " records of " + to_text(size_of(held)) +
         " bytes, the holder " + to_text(count) + " of " + to_text(record_bytes));
  close_all(io, {&joiner});
  return r;
}

/// One node (the holder) with `spec.count` records of `spec.layout.payload_bytes` bytes of data; a fresh node with
/// graph_start::join connects to it. Timed over a direct connection; the bytes through a relay, with a second
/// fresh node.
measurement record_sync_join(const run_spec& spec)
{
  pin_current_thread(sender_cpu);
  const std::uint64_t count = spec.count;
  relay_thread relays(receiver_cpu);
  asio::io_context io{1};
  record_node holder(io, "holder", peergraph::graph_start::create);
  holder.disconnects_expected = true; // the joiners close after their measurement
  asio::co_spawn(io, watch(holder), fail_on_exception{"events"});
  const auto where = listen(io, holder);
  complete(io, add_records(holder, spec.layout.payload_bytes, 0, count, nullptr), allowing(count, 1ms),
           "adding " + to_text(count) + " records at the holder");
  const std::uint64_t record_bytes = size_of(held_records(io, holder));
  const wire_relay relay(relays, where);

  const join_result direct = join(io, holder, where, nullptr, count, record_bytes, "joiner");
  const join_result relayed = join(io, holder, relay.endpoint(), &relay, count, record_bytes, "relayed-joiner");
  close_all(io, {&holder});

  const wire_counts wire = relayed.wire.both();
  measurement m;
  m.values.emplace_back("record_sync_join", as_double(wire.bytes) / as_double(record_bytes));
  m.details.emplace_back("records", as_double(count));
  m.details.emplace_back("data_bytes", as_double(spec.layout.payload_bytes));
  m.details.emplace_back("record_bytes", as_double(record_bytes));
  m.details.emplace_back("seconds", direct.seconds);
  m.details.emplace_back("records_per_second", as_double(count) / direct.seconds);
  m.details.emplace_back("relayed_seconds", relayed.seconds);
  m.details.emplace_back("wire_bytes", as_double(wire.bytes));
  m.details.emplace_back("wire_bytes_to_joiner", as_double(relayed.wire.in.bytes));
  m.details.emplace_back("wire_bytes_from_joiner", as_double(relayed.wire.out.bytes));
  m.details.emplace_back("record_frames", as_double(wire.record_frames));
  m.details.emplace_back("sync_frames", as_double(wire.sync_frames));
  m.details.emplace_back("sync_frame_bytes", as_double(wire.sync_frame_bytes));
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// record_resync_100

constexpr std::uint64_t resync_updated = 50; // versions of shared records that the first node replaces
constexpr std::uint64_t resync_added = 25;   // new records on each side

/// Two nodes, `a` (graph_start::create) and `b` (graph_start::join, through a relay), that share `spec.count` - 25
/// records after a first synchronisation; the relay cuts their connection; `a` updates 50 of the shared records
/// (spread evenly over the synchronisation's order) and adds 25, `b` adds 25: two stores of `spec.count` records of
/// which 100 differ. `b` connects again: the wire bytes of that second synchronisation, both directions, per byte
/// of `a`'s store (record::size() of its records).
measurement record_resync(const run_spec& spec)
{
  pin_current_thread(sender_cpu);
  const std::uint64_t count = spec.count;
  if (count < 4 * resync_updated)
    fail("records: record_resync_100 needs at least 200 records");
  const std::uint64_t shared = count - resync_added;
  const std::size_t data_bytes = spec.layout.payload_bytes;
  relay_thread relays(receiver_cpu);
  asio::io_context io{1};
  record_node a(io, "first", peergraph::graph_start::create);
  record_node b(io, "second", peergraph::graph_start::join);
  asio::co_spawn(io, watch(a), fail_on_exception{"events"});
  asio::co_spawn(io, watch(b), fail_on_exception{"events"});
  wire_relay relay(relays, listen(io, a));
  std::vector<peergraph::record_id> ids;
  complete(io, add_records(a, data_bytes, 0, shared, &ids), allowing(count, 1ms),
           "adding " + to_text(shared) + " records");

  // The first synchronisation: a full transfer.
  start_connect(io, b, relay.endpoint());
  drive(
      io, [&] { return a.synchronized == 1 && b.synchronized == 1; }, allowing(count, 1ms), "the first synchronisation",
      [&] { return b.name + " received " + to_text(b.added) + " records"; });
  const relay_counts first = relay.counts();
  if (b.added_at_first_sync != shared)
    fail("records: the first synchronisation brought " + to_text(b.added_at_first_sync) + " records, not " +
         to_text(shared));

  a.disconnects_expected = true;
  b.disconnects_expected = true;
  relay.cut();
  drive(io, [&] { return a.disconnected == 1 && b.disconnected == 1; }, step_limit, "the cut connection's end");

  // Apart, the stores change: 100 records differ.
  complete(
      io,
      [&]() -> asio::awaitable<void> {
        for (std::uint64_t k = 0; k < resync_updated; ++k) {
          // The ids were added in order of their last modification: these are spread over the whole order.
          const peergraph::record_id& id = ids[(2 * k + 1) * shared / (2 * resync_updated)];
          auto r = co_await a.graph.get_record(id);
          if (!r)
            fail("records: get_record: " + r.error().message());
          r->data.front() = ~r->data.front();
          if (auto updated = co_await a.graph.update_record(std::move(*r)); !updated)
            fail("records: update_record: " + updated.error().message());
        }
      }(),
      step_limit, "updating records");
  complete(io, add_records(a, data_bytes, shared, resync_added, nullptr), step_limit, "adding records");
  complete(io, add_records(b, data_bytes, shared + resync_added, resync_added, nullptr), step_limit, "adding records");
  const auto before_a = held_records(io, a);
  const auto before_b = held_records(io, b);
  if (before_a.size() != count || before_b.size() != count)
    fail("records: before the second synchronisation the nodes hold " + to_text(before_a.size()) + " and " +
         to_text(before_b.size()) + " records, not " + to_text(count));
  const std::uint64_t store_bytes = size_of(before_a);

  // The second synchronisation.
  const std::uint64_t changes_a = a.added + a.updated;
  const std::uint64_t changes_b = b.added + b.updated;
  const auto started = bench_clock::now();
  start_connect(io, b, relay.endpoint());
  drive(
      io, [&] { return a.synchronized == 2 && b.synchronized == 2; }, allowing(count, 1ms),
      "the second synchronisation");
  const auto finished = std::max(*a.last_synchronized_at, *b.last_synchronized_at);
  const relay_counts second = relay.counts() - first;
  const auto after_a = held_records(io, a);
  if (after_a.size() != count + resync_added || after_a != held_records(io, b))
    fail("records: after the second synchronisation the nodes do not hold the same " + to_text(count + resync_added) +
         " records");
  close_all(io, {&a, &b});

  const wire_counts wire = second.both();
  const wire_counts full = first.both();
  measurement m;
  m.values.emplace_back("record_resync_100", as_double(wire.bytes) / as_double(store_bytes));
  m.details.emplace_back("records", as_double(count));
  m.details.emplace_back("differing", as_double(resync_updated + 2 * resync_added));
  m.details.emplace_back("data_bytes", as_double(data_bytes));
  m.details.emplace_back("store_bytes", as_double(store_bytes));
  m.details.emplace_back("wire_bytes", as_double(wire.bytes));
  m.details.emplace_back("seconds", seconds_between(started, finished));
  m.details.emplace_back("record_frames_to_second", as_double(second.in.record_frames));
  m.details.emplace_back("record_frames_to_first", as_double(second.out.record_frames));
  m.details.emplace_back("changes_at_second", as_double(b.added + b.updated - changes_b));
  m.details.emplace_back("changes_at_first", as_double(a.added + a.updated - changes_a));
  m.details.emplace_back("record_frame_bytes", as_double(wire.record_frame_bytes));
  m.details.emplace_back("sync_frames", as_double(wire.sync_frames));
  m.details.emplace_back("sync_frame_bytes", as_double(wire.sync_frame_bytes));
  m.details.emplace_back("first_sync_wire_bytes", as_double(full.bytes));
  m.details.emplace_back("ratio_to_first_sync", as_double(wire.bytes) / as_double(full.bytes));
  return m;
}

const contender_registration registration{{"peergraph",
                                           {
                                               {"record_flood_20", &record_flood},
                                               {"record_sync_join", &record_sync_join},
                                               {"record_resync_100", &record_resync},
                                           }}};

} // namespace
