//
// benchmarks/contender_peergraph_repair.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// peergraph repairing itself after a node is lost (repair_after_loss): 20 nodes in a line, keepalive at 1 s, presence
// published, automatic repair on. The middle node stops dead: it runs on an io_context and thread of its own, and that
// thread blocks, so that its sockets stay open and say nothing (no FIN, no RST), as a crashed host's or a cut
// network's would; its two neighbors learn of it only through keepalive. The value is the time from the freeze until
// the survivors' neighbor connections connect them all again and every survivor's nodes() gives the same list, which
// includes a presence change made on each side after the freeze. How long until the lost node is gone from every list
// too (its presence expiring) is a detail. Every wait is bounded: a graph that does not become whole fails the run.
//
#include "asio_support.hpp"

#include <peergraph/graph.hpp>
#include <peergraph/presence.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/ip/address_v4.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace {

using namespace peergraph::bench;
using namespace std::chrono_literals;

/// How often a silent connection is looked at: the scenario's premise.
constexpr std::chrono::milliseconds keepalive_interval = 1s;
/// How long a connection attempt may take to connect and to finish its handshake: the library's default. A node that
/// went silent answers neither, so an attempt at it would last this long; the repair tries a neighbor that keepalive
/// dropped after every other present node, so no attempt waits on it before the graph is whole.
constexpr std::chrono::milliseconds attempt_timeout = 10s;
/// How long a presence lasts without a refresh; refreshed every third of it. Long enough that each side still lists
/// the other when the repair looks for it (the other side's refreshes stop at the split, so its presence expires
/// 2/3 to 3/3 of this after the freeze, here from 5.3 s: after detection and a backoff step, about 2.6 s), short
/// enough that every node refreshes (every 2.7 s) about as long before the loss as keepalive takes to notice it, which
/// makes the other side the nodes heard from least recently, the repair's choice.
constexpr std::chrono::milliseconds presence_lifetime = 8s;
/// How long the graph may take to become whole and agree on the present nodes after the freeze.
constexpr bench_clock::duration repair_limit = 30s;
/// How long the lost node may take to be gone from every list after the freeze: its presence's lifetime and room.
constexpr bench_clock::duration gone_limit = presence_lifetime + 10s;
/// How long set-up and tear-down steps may take.
constexpr bench_clock::duration step_limit = 30s;
/// How often the survivors' lists are compared.
constexpr auto poll_period = 5ms;

/// The attributes the two ends of the line publish after the freeze: equal lists then prove that presence crossed
/// the repaired graph both ways.
const std::string after_loss = "after the loss";

double seconds_between(bench_clock::time_point from, bench_clock::time_point to)
{
  return std::chrono::duration<double>(to - from).count();
}

double seconds_of(std::chrono::milliseconds d)
{
  return std::chrono::duration<double>(d).count();
}

std::string node_name(std::size_t i)
{
  return (i < 10 ? "node0" : "node") + std::to_string(i);
}

peergraph::graph_properties node_properties(std::size_t i)
{
  peergraph::graph_properties p;
  auto graph = peergraph::graph_id::make("peergraph-bench-repair");
  auto peer = peergraph::peer_id::make(node_name(i));
  if (!graph || !peer)
    fail("repair: invalid graph or peer id");
  p.graph = std::move(*graph);
  p.peer = std::move(*peer);
  p.keepalive_interval = keepalive_interval;
  p.connect_timeout = attempt_timeout;
  p.handshake_timeout = attempt_timeout;
  p.presence_lifetime = presence_lifetime;
  // A node with fewer than min_neighbors connects to present nodes by itself: with the default of 2 the ends of the
  // line would add links of their own and the line would not stay a line. Every node of the line has one or two.
  p.min_neighbors = 1;
  return p;
}

/// One surviving node and what its event loop has seen.
struct survivor
{
  survivor(asio::io_context& io, std::size_t at) : graph(io.get_executor(), node_properties(at)), index(at) {}

  peergraph::graph graph;
  std::size_t index;
  std::set<std::string> neighbors;                         // remote peers of its established neighbor connections
  std::uint64_t synchronized = 0;                          // neighbor_synchronized events
  std::uint64_t connected = 0;                             // connection_changed connected (neighbor)
  std::uint64_t failed_at_victim = 0;                      // connection attempts at the lost node that failed
  std::uint64_t failed_elsewhere = 0;                      // other connection attempts that failed
  std::uint64_t victim_updates = 0;                        // node_changed updated for the lost node
  std::optional<bench_clock::time_point> victim_link_at;   // its neighbor connection with the lost node began
  std::optional<bench_clock::time_point> detected_at;      // connection_required for the lost node
  std::optional<bench_clock::time_point> victim_failed_at; // the first failed attempt at the lost node
  bool closing = false;                                    // otherwise losing a survivor fails the run
  bool events_ended = false;
};

/// What the scenario watches, shared by the survivors' event loops.
struct scene
{
  std::vector<std::unique_ptr<survivor>> survivors;
  std::map<std::string, std::size_t> position; // survivor peer name -> index in `survivors`
  std::string victim;                          // the lost node's peer name
  asio::ip::tcp::endpoint victim_address;      // where it listens
  std::size_t victim_index = 0;                // its place in the line
  std::optional<bench_clock::time_point> frozen_at;
  std::optional<bench_clock::time_point> whole_at; // the survivors' neighbor connections connected them all
  std::uint64_t cross_links_made = 0;              // links between the two sides established after the freeze

  bool left(std::size_t line_index) const { return line_index < victim_index; }

  /// Whether the survivors' neighbor connections connect every survivor (a search from the first).
  bool whole() const
  {
    std::vector<bool> seen(survivors.size(), false);
    std::vector<std::size_t> next{0};
    seen[0] = true;
    std::size_t reached = 1;
    while (!next.empty()) {
      const std::size_t at = next.back();
      next.pop_back();
      for (const std::string& peer : survivors[at]->neighbors) {
        const auto j = position.find(peer);
        if (j != position.end() && !seen[j->second]) {
          seen[j->second] = true;
          ++reached;
          next.push_back(j->second);
        }
      }
    }
    return reached == survivors.size();
  }
};

/// A survivor's application: takes every event until the graph closes, and keeps what the scenario looks at.
asio::awaitable<void> watch(scene& s, survivor& n)
{
  for (;;) {
    auto event = co_await n.graph.next_event();
    if (!event) {
      n.events_ended = true;
      co_return;
    }
    const auto now = bench_clock::now();
    if (const auto* change = std::get_if<peergraph::connection_changed>(&*event)) {
      if (change->kind != peergraph::connection_kind::neighbor)
        continue;
      const std::string peer(change->remote_peer.view());
      const std::string reason = change->reason ? change->reason->message() : std::string("no reason");
      if (change->status == peergraph::connection_status::connected) {
        ++n.connected;
        n.neighbors.insert(peer);
        if (peer == s.victim)
          n.victim_link_at = now; // its keepalive looks at the connection every interval from now on
        const auto other = s.position.find(peer);
        if (s.frozen_at && other != s.position.end() && s.left(n.index) != s.left(s.survivors[other->second]->index) &&
            s.left(n.index))
          ++s.cross_links_made; // counted once, at the node on the left
        if (s.frozen_at && !s.whole_at && s.whole())
          s.whole_at = now;
      } else if (change->status == peergraph::connection_status::disconnected) {
        n.neighbors.erase(peer);
        if (peer != s.victim && !n.closing)
          fail("repair: " + node_name(n.index) + " lost its connection to " + peer + ": " + reason);
      } else if (peer == s.victim || change->remote_address == s.victim_address) {
        ++n.failed_at_victim;
        if (s.frozen_at && !n.victim_failed_at)
          n.victim_failed_at = now;
      } else {
        ++n.failed_elsewhere;
      }
    } else if (const auto* required = std::get_if<peergraph::connection_required>(&*event)) {
      if (required->lost_peer == s.victim && !n.detected_at) {
        if (!s.frozen_at)
          fail("repair: " + node_name(n.index) + " lost the victim before it was frozen");
        n.detected_at = now;
      } else if (required->lost_peer != s.victim && !n.closing) {
        fail("repair: " + node_name(n.index) + " lost its neighbor " + std::string(required->lost_peer.view()));
      }
    } else if (std::holds_alternative<peergraph::neighbor_synchronized>(*event)) {
      ++n.synchronized;
    } else if (const auto* node = std::get_if<peergraph::node_changed>(&*event)) {
      if (node->peer == s.victim && node->change == peergraph::node_change::updated)
        ++n.victim_updates;
    }
  }
}

/// Runs the survivors' context until `done()` holds; fails the run, saying what was awaited and how far it got, when
/// that takes longer than `limit`.
void drive(
    asio::io_context& io, const std::function<bool()>& done, bench_clock::duration limit, const std::string& what,
    const std::function<std::string()>& progress = [] { return std::string(); })
{
  const auto deadline = bench_clock::now() + limit;
  while (!done()) {
    const auto now = bench_clock::now();
    if (now >= deadline) {
      const std::string state = progress();
      fail("repair: " + what + " did not complete within " +
           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(limit).count()) + " s" +
           (state.empty() ? std::string() : " (" + state + ")"));
    }
    if (io.stopped())
      io.restart();
    io.run_one_for(std::min<bench_clock::duration>(deadline - now, 10ms));
  }
}

/// Runs `op` on `where` to its end, driving the survivors' context `io` meanwhile (`where` may be another context,
/// run by its own thread), bounded by `limit`.
void complete(asio::io_context& io, const asio::any_io_executor& where, asio::awaitable<void> op,
              bench_clock::duration limit, const std::string& what)
{
  auto finished = std::make_shared<std::atomic<bool>>(false);
  asio::co_spawn(where, std::move(op), [finished, what](const std::exception_ptr& e) {
    if (e)
      fail_on_exception{what.c_str()}(e);
    finished->store(true);
  });
  drive(io, [&] { return finished->load(); }, limit, what);
}

asio::ip::tcp::endpoint listen(asio::io_context& io, peergraph::graph& g, const std::string& name)
{
  asio::ip::tcp::endpoint where;
  complete(
      io, g.get_executor(),
      [&]() -> asio::awaitable<void> {
        auto bound = co_await g.listen({asio::ip::address_v4::loopback(), 0});
        if (!bound)
          fail("repair: listen at " + name + ": " + bound.error().message());
        where = *bound;
      }(),
      step_limit, "listen");
  return where;
}

void connect(asio::io_context& io, peergraph::graph& g, const std::string& name, asio::ip::tcp::endpoint to)
{
  complete(
      io, g.get_executor(),
      [&g, name, to]() -> asio::awaitable<void> {
        auto id = co_await g.connect(to);
        if (!id)
          fail("repair: connect from " + name + ": " + id.error().message());
      }(),
      step_limit, "connect");
}

void publish_presence(asio::io_context& io, peergraph::graph& g, const std::string& name)
{
  complete(
      io, g.get_executor(),
      [&g, name]() -> asio::awaitable<void> {
        if (auto present = co_await g.set_presence(true); !present)
          fail("repair: set_presence at " + name + ": " + present.error().message());
      }(),
      step_limit, "set_presence");
}

/// The lost node: a graph on a context of its own, run by a thread of its own, which can be stopped dead.
class victim_node
{
public:
  explicit victim_node(std::size_t at)
      : work_(asio::make_work_guard(io_)),
        graph_(std::make_unique<peergraph::graph>(io_.get_executor(), node_properties(at)))
  {
    // Its application takes every event, as long as its context runs.
    asio::co_spawn(
        io_,
        [g = graph_.get()]() -> asio::awaitable<void> {
          while (co_await g->next_event()) {
          }
        },
        fail_on_exception{"victim events"});
    thread_ = std::thread([this] {
      pin_current_thread(receiver_cpu);
      io_.run();
    });
  }
  victim_node(const victim_node&) = delete;
  victim_node& operator=(const victim_node&) = delete;
  ~victim_node()
  {
    thaw();
    if (thread_.joinable()) {
      io_.stop();
      thread_.join();
    }
  }

  peergraph::graph& graph() { return *graph_; }

  /// Blocks the node's thread: from now on nothing of the node runs, while its sockets stay open (the kernel still
  /// acknowledges what arrives and completes connections to its listener, but nobody reads or answers). Returns when
  /// it stopped.
  bench_clock::time_point freeze()
  {
    asio::post(io_, [this] {
      std::unique_lock lock(mutex_);
      frozen_at_ = bench_clock::now();
      frozen_ = true;
      changed_.notify_all();
      // Bounded, so that a run that fails elsewhere cannot leave the thread blocked for ever.
      changed_.wait_for(lock, 300s, [this] { return thawed_; });
    });
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, step_limit, [this] { return frozen_; }))
      fail("repair: the victim's thread did not stop");
    return frozen_at_;
  }

  /// Lets the node's thread go on.
  void thaw()
  {
    const std::lock_guard lock(mutex_);
    thawed_ = true;
    changed_.notify_all();
  }

  /// Thaws the node and closes it on its own context; the survivors are closed already. Bounded.
  void close()
  {
    thaw();
    auto closed = std::make_shared<std::atomic<bool>>(false);
    asio::co_spawn(
        io_,
        [g = graph_.get(), closed]() -> asio::awaitable<void> {
          (void)co_await g->close();
          closed->store(true);
        },
        fail_on_exception{"victim close"});
    const auto deadline = bench_clock::now() + step_limit;
    while (!closed->load()) {
      if (bench_clock::now() >= deadline)
        fail("repair: the victim did not close");
      std::this_thread::sleep_for(1ms);
    }
    work_.reset();
    io_.stop();
    thread_.join();
    // Destroyed while its context does not run; then the context finishes what the destruction left.
    graph_.reset();
    io_.restart();
    io_.run_for(2s);
  }

private:
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unique_ptr<peergraph::graph> graph_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool frozen_ = false;
  bool thawed_ = false;
  bench_clock::time_point frozen_at_{};
};

/// What every survivor's nodes() gives.
struct lists
{
  std::vector<std::vector<peergraph::node_info>> of;

  /// Whether all are the same.
  bool same() const
  {
    return std::all_of(of.begin(), of.end(), [&](const auto& l) { return l == of.front(); });
  }
};

asio::awaitable<lists> listed(scene& s)
{
  lists l;
  for (auto& n : s.survivors) {
    auto present = co_await n->graph.nodes();
    if (!present)
      fail("repair: nodes() at " + node_name(n->index) + ": " + present.error().message());
    l.of.push_back(std::move(*present));
  }
  co_return l;
}

/// Whether `list` holds every survivor, and the two ends with the attributes they published after the freeze.
bool lists_everyone(const scene& s, const std::vector<peergraph::node_info>& list)
{
  std::size_t survivors = 0;
  for (const auto& info : list) {
    const auto at = s.position.find(std::string(info.peer.view()));
    if (at == s.position.end())
      continue;
    ++survivors;
    const survivor& n = *s.survivors[at->second];
    const bool end = at->second == 0 || at->second + 1 == s.survivors.size();
    if (info.node != n.graph.local_node() || (end && info.attributes != after_loss))
      return false;
  }
  return survivors == s.survivors.size();
}

struct repair_result
{
  double detected_first = 0; // the first neighbor's connection_required for the lost node
  double detected_last = 0;  // the second neighbor's
  double victim_failed = 0;  // the first failed attempt at the lost node
  double whole = 0;          // the survivors' neighbor connections connect them all
  double converged = 0;      // whole, and every survivor lists the same nodes, the changes of both sides included
  double gone = 0;           // and the lost node is gone from every list
  double phase = 0;          // the freeze's time after the last keepalive look at the lost node's connections
  std::uint64_t cross_links = 0;
  std::uint64_t victim_attempts = 0;
  std::uint64_t other_failed_attempts = 0;
  std::uint64_t listed_at_converged = 0; // entries of the lists at convergence (the lost node's included or not)
};

repair_result repair(std::size_t count)
{
  asio::io_context io{1};
  scene s;
  s.victim_index = count / 2;
  s.victim = node_name(s.victim_index);
  for (std::size_t i = 0; i < count; ++i) {
    if (i == s.victim_index)
      continue;
    s.position[node_name(i)] = s.survivors.size();
    s.survivors.push_back(std::make_unique<survivor>(io, i));
  }
  for (auto& n : s.survivors)
    asio::co_spawn(io, watch(s, *n), fail_on_exception{"events"});
  victim_node victim(s.victim_index);

  // The line: node i connects to node i + 1.
  std::vector<asio::ip::tcp::endpoint> where(count);
  for (std::size_t i = 0; i < count; ++i)
    where[i] = i == s.victim_index ? listen(io, victim.graph(), s.victim)
                                   : listen(io, s.survivors[s.position[node_name(i)]]->graph, node_name(i));
  s.victim_address = where[s.victim_index];
  for (std::size_t i = 0; i + 1 < count; ++i)
    connect(io, i == s.victim_index ? victim.graph() : s.survivors[s.position[node_name(i)]]->graph, node_name(i),
            where[i + 1]);
  const auto line_neighbors = [&](const survivor& n) {
    std::set<std::string> expected;
    if (n.index > 0)
      expected.insert(node_name(n.index - 1));
    if (n.index + 1 < count)
      expected.insert(node_name(n.index + 1));
    return expected;
  };
  drive(
      io,
      [&] {
        return std::all_of(s.survivors.begin(), s.survivors.end(), [&](const auto& n) {
          return n->neighbors == line_neighbors(*n) && n->synchronized == n->neighbors.size();
        });
      },
      step_limit, "connecting and synchronising the line");

  // Presence everywhere; every node lists every node.
  for (auto& n : s.survivors)
    publish_presence(io, n->graph, node_name(n->index));
  publish_presence(io, victim.graph(), s.victim);
  bool everyone = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(io);
        for (int round = 0; round < 10'000; ++round) {
          const lists l = co_await listed(s);
          if (std::all_of(l.of.begin(), l.of.end(), [&](const auto& one) { return one.size() == count; })) {
            everyone = true;
            co_return;
          }
          timer.expires_after(poll_period);
          co_await timer.async_wait(asio::use_awaitable);
        }
      },
      fail_on_exception{"presence"});
  drive(io, [&] { return everyone; }, step_limit, "every node listing every node");
  // Still a line: nobody made links of its own.
  for (const auto& n : s.survivors)
    if (n->neighbors != line_neighbors(*n) || n->connected != n->neighbors.size())
      fail("repair: " + node_name(n->index) + " has other neighbor connections than the line's");

  // The loss, half an interval after the neighbors' keepalive last looked at their connections with the lost node
  // (each looks once per interval from the connection's start), so that detection falls in the middle of the rule's
  // range (see the README). Its last word comes a little before: it changes its presence attributes, which reaches
  // both neighbors, so that each has heard from it since that look.
  bench_clock::time_point link_at{};
  for (const auto& n : s.survivors)
    if (n->victim_link_at)
      link_at = std::max(link_at, *n->victim_link_at);
  survivor& before = *s.survivors[s.position[node_name(s.victim_index - 1)]];
  survivor& after = *s.survivors[s.position[node_name(s.victim_index + 1)]];
  constexpr int word_tries = 5; // a word that arrives after the moment of the loss is said again an interval later
  auto word_at = link_at + keepalive_interval * 35 / 100;
  bench_clock::time_point freeze_at{};
  for (int word = 1;; ++word) {
    while (word_at < bench_clock::now() + 20ms)
      word_at += keepalive_interval;
    freeze_at = word_at + keepalive_interval * 15 / 100;
    drive(io, [&] { return bench_clock::now() >= word_at; }, step_limit, "waiting for the victim's last word");
    const std::uint64_t updates_before = before.victim_updates;
    const std::uint64_t updates_after = after.victim_updates;
    complete(
        io, victim.graph().get_executor(),
        [&victim, &s, word]() -> asio::awaitable<void> {
          if (auto set = co_await victim.graph().set_node_attributes("last word " + std::to_string(word)); !set)
            fail("repair: set_node_attributes at " + s.victim + ": " + set.error().message());
        }(),
        step_limit, "the victim's last word");
    drive(
        io, [&] { return before.victim_updates > updates_before && after.victim_updates > updates_after; }, step_limit,
        "the victim's last word reaching its neighbors");
    if (bench_clock::now() < freeze_at)
      break;
    if (word == word_tries)
      fail("repair: the victim's last word took more than " +
           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(freeze_at - word_at).count()) +
           " ms to reach its neighbors, " + std::to_string(word_tries) + " times");
  }
  drive(io, [&] { return bench_clock::now() >= freeze_at; }, step_limit, "waiting for the moment of the loss");
  const auto frozen_at = victim.freeze();
  s.frozen_at = frozen_at;
  for (std::size_t end : {std::size_t{0}, s.survivors.size() - 1}) {
    asio::co_spawn(
        io,
        [&s, end]() -> asio::awaitable<void> {
          survivor& n = *s.survivors[end];
          if (auto set = co_await n.graph.set_node_attributes(after_loss); !set)
            fail("repair: set_node_attributes at " + node_name(n.index) + ": " + set.error().message());
        },
        fail_on_exception{"set_node_attributes"});
  }

  std::optional<bench_clock::time_point> converged_at;
  std::optional<bench_clock::time_point> gone_at;
  std::uint64_t listed_at_converged = 0;
  bool checking = true;
  std::string last_state = "not yet compared";
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(io);
        const auto deadline = frozen_at + gone_limit + 1s;
        while (checking && bench_clock::now() < deadline) {
          const bool whole = s.whole();
          const lists l = co_await listed(s);
          const auto now = bench_clock::now();
          const bool same = l.same() && lists_everyone(s, l.of.front());
          if (!converged_at && whole && same) {
            converged_at = now;
            listed_at_converged = l.of.front().size();
          }
          if (converged_at && !gone_at && same && l.of.front().size() == s.survivors.size())
            gone_at = now;
          if (converged_at && gone_at)
            co_return;
          last_state = std::string(whole ? "whole" : "not whole") + ", lists " + (l.same() ? "the same" : "differing") +
                       ", " + std::to_string(l.of.front().size()) + " listed at " +
                       node_name(s.survivors.front()->index);
          timer.expires_after(poll_period);
          co_await timer.async_wait(asio::use_awaitable);
        }
      },
      fail_on_exception{"checking"});
  const auto progress = [&] {
    std::string text = last_state;
    for (const auto& n : s.survivors)
      if (n->detected_at)
        text += "; " + node_name(n->index) + " noticed the loss after " +
                std::to_string(seconds_between(frozen_at, *n->detected_at)) + " s";
    return text;
  };
  drive(
      io, [&] { return converged_at.has_value(); }, repair_limit,
      "the repair (the graph whole again, every node listing the same nodes)", progress);
  drive(io, [&] { return gone_at.has_value(); }, gone_limit, "the lost node's presence expiring everywhere", progress);
  checking = false;

  // What the events said is what connections() says.
  for (auto& n : s.survivors) {
    complete(
        io, io.get_executor(),
        [&n]() -> asio::awaitable<void> {
          auto listed_connections = co_await n->graph.connections(peergraph::connection_kinds::neighbor);
          if (!listed_connections)
            fail("repair: connections() at " + node_name(n->index) + ": " + listed_connections.error().message());
          std::set<std::string> peers;
          for (const auto& c : *listed_connections)
            peers.insert(std::string(c.remote_peer.view()));
          if (peers != n->neighbors)
            fail("repair: connections() at " + node_name(n->index) + " differs from its events");
        }(),
        step_limit, "connections()");
  }

  repair_result r;
  std::vector<bench_clock::time_point> detected;
  std::optional<bench_clock::time_point> victim_failed;
  for (const auto& n : s.survivors) {
    if (n->detected_at)
      detected.push_back(*n->detected_at);
    if (n->victim_failed_at && (!victim_failed || *n->victim_failed_at < *victim_failed))
      victim_failed = n->victim_failed_at;
    r.victim_attempts += n->failed_at_victim;
    r.other_failed_attempts += n->failed_elsewhere;
  }
  if (detected.size() != 2)
    fail("repair: " + std::to_string(detected.size()) + " nodes noticed the loss, not its two neighbors");
  std::sort(detected.begin(), detected.end());
  r.detected_first = seconds_between(frozen_at, detected.front());
  r.detected_last = seconds_between(frozen_at, detected.back());
  r.victim_failed = victim_failed ? seconds_between(frozen_at, *victim_failed) : 0;
  if (!s.whole_at)
    fail("repair: the lists converged, but no connection made the graph whole");
  r.whole = seconds_between(frozen_at, *s.whole_at);
  r.converged = seconds_between(frozen_at, *converged_at);
  r.gone = seconds_between(frozen_at, *gone_at);
  r.cross_links = s.cross_links_made;
  r.phase = std::fmod(seconds_between(link_at, frozen_at), seconds_of(keepalive_interval));
  r.listed_at_converged = listed_at_converged;

  for (auto& n : s.survivors)
    n->closing = true;
  for (auto& n : s.survivors)
    asio::co_spawn(
        io, [&n]() -> asio::awaitable<void> { (void)co_await n->graph.close(); }, fail_on_exception{"close"});
  drive(
      io,
      [&] {
        return std::all_of(s.survivors.begin(), s.survivors.end(), [](const auto& n) { return n->events_ended; });
      },
      step_limit, "closing the nodes");
  victim.close();
  return r;
}

/// `spec.count` nodes (20) in a line, the middle one frozen; see the file's comment.
measurement repair_after_loss(const run_spec& spec)
{
  pin_current_thread(sender_cpu);
  if (spec.count < 5)
    fail("repair: repair_after_loss needs at least 5 nodes");
  const repair_result r = repair(spec.count);
  measurement m;
  m.values.emplace_back("repair_after_loss", r.converged);
  m.details.emplace_back("nodes", static_cast<double>(spec.count));
  m.details.emplace_back("keepalive_interval_seconds", seconds_of(keepalive_interval));
  m.details.emplace_back("attempt_timeout_seconds", seconds_of(attempt_timeout));
  m.details.emplace_back("presence_lifetime_seconds", seconds_of(presence_lifetime));
  m.details.emplace_back("freeze_phase_seconds", r.phase);
  m.details.emplace_back("detected_first_seconds", r.detected_first);
  m.details.emplace_back("detected_last_seconds", r.detected_last);
  m.details.emplace_back("victim_attempt_failed_seconds", r.victim_failed);
  m.details.emplace_back("whole_seconds", r.whole);
  m.details.emplace_back("converged_seconds", r.converged);
  m.details.emplace_back("whole_to_converged_seconds", r.converged - r.whole);
  m.details.emplace_back("victim_gone_seconds", r.gone);
  m.details.emplace_back("listed_at_converged", static_cast<double>(r.listed_at_converged));
  m.details.emplace_back("links_across", static_cast<double>(r.cross_links));
  m.details.emplace_back("victim_attempts", static_cast<double>(r.victim_attempts));
  m.details.emplace_back("other_failed_attempts", static_cast<double>(r.other_failed_attempts));
  return m;
}

const contender_registration registration{{"peergraph",
                                           {
                                               {"repair_after_loss", &repair_after_loss},
                                           }}};

} // namespace
