//
// peergraph/detail/graph/repair.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A graph that repairs itself (PEER_GRAPH_EVENT_CONNECTION_REQUIRED): when a neighbor connection ends, the node
// raises connection_required (the loss may have split the graph); with graph_properties::automatic_repair it then
// connects by itself to present nodes (presence.hpp) it has no neighbor connection with: first the lost neighbor, if
// it is still present and did not fall silent (a neighbor that keepalive dropped is tried last: an attempt at a
// silent node costs a whole connect timeout), then the nodes it has heard from least recently (a split stops their
// presence refreshes from reaching this side, so those are the likeliest to be across it), until a neighbor
// connection is established (by either side) and it has min_neighbors again, never beyond max_neighbors. A node short
// of min_neighbors also connects when a node becomes present. Attempts are one at a time, after a delay that doubles
// from repair_backoff_min to repair_backoff_max with each attempt that finds nothing or fails, and is drawn between
// half and all of it (jitter, so that the nodes of a split do not all try at once); a success starts the doubling
// again.
//
#pragma once

#include <peergraph/detail/graph/context.hpp>
#include <peergraph/detail/graph/presence.hpp>
#include <peergraph/graph_properties.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/presence.hpp>

#include <asio/ip/tcp.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <vector>

namespace peergraph::detail {

/// What the repair needs of the registry.
template <class Context>
class repair_host
{
public:
  /// Established neighbor connections.
  [[nodiscard]] virtual std::size_t neighbor_count() const = 0;
  /// Whether this node has a neighbor connection with node `node`.
  [[nodiscard]] virtual bool neighbor_of(node_id node) const = 0;
  /// Starts connect(addresses) to `peer`'s node; repair_layer::attempt_finished reports the outcome.
  virtual void repair_connect(std::vector<asio::ip::tcp::endpoint> addresses, peer_id peer, node_id node) = 0;

protected:
  ~repair_host() = default;
};

template <class Context>
class repair_layer
{
public:
  repair_layer(const Context& context, const graph_properties& properties, engine_lifetime& lifetime,
               const presence_layer<Context>& presence, repair_host<Context>& host, node_id self)
      : lifetime_(lifetime), presence_(presence), host_(host), self_(self), automatic_(properties.automatic_repair),
        min_neighbors_(properties.min_neighbors), max_neighbors_(properties.max_neighbors),
        backoff_min_(properties.repair_backoff_min), backoff_max_(properties.repair_backoff_max), timer_(context),
        random_(std::random_device{}())
  {
  }

  /// A neighbor connection with node `node` ended (not because this graph closes): the graph may have split.
  /// `fell_silent`: keepalive dropped it (it may be gone, or cut off: it is tried after every other node).
  void neighbor_lost(node_id node, bool fell_silent)
  {
    last_lost_ = node;
    if (fell_silent) {
      lost_.reset();
      failures_[node] = std::chrono::steady_clock::now();
    } else {
      lost_ = node;
    }
    repairing_ = true; // until a neighbor connection is established again: the loss may have split the graph
    if (automatic_)
      schedule(true);
  }

  /// A neighbor connection with node `node` was established, by this node (a repair attempt or the application) or
  /// by the other. The lost neighbor coming back ends the repair, as does any new neighbor once min_neighbors hold.
  void neighbor_added(node_id node)
  {
    step_ = 0; // the doubling starts again
    failures_.erase(node);
    if (last_lost_ == node || host_.neighbor_count() >= min_neighbors_) {
      repairing_ = false;
      lost_.reset();
    }
    if (automatic_ && host_.neighbor_count() < min_neighbors_)
      schedule(false);
  }

  /// A node became present: a node short of neighbors may now find one (after the first step's delay, sooner than a
  /// longer wait already armed).
  void node_present()
  {
    if (automatic_ && (repairing_ || host_.neighbor_count() < min_neighbors_))
      schedule(true);
  }

  /// The attempt at `node` ended: established or not.
  void attempt_finished(node_id node, bool established)
  {
    attempting_ = false;
    if (established) {
      step_ = 0;
      repairing_ = false;
      failures_.erase(node);
    } else {
      failures_[node] = std::chrono::steady_clock::now();
      ++step_;
    }
    if (repairing_ || host_.neighbor_count() < min_neighbors_)
      schedule(false);
  }

  void close()
  {
    timer_.cancel();
    automatic_ = false;
  }

private:
  /// Arms the next attempt, unless one is under way: after a delay that doubles with each step, jittered. An armed
  /// attempt stays armed, unless `soon` (a loss, a node that became present: the first step's delay, from now) would
  /// come before it.
  void schedule(bool soon)
  {
    if (attempting_)
      return;
    if (soon)
      step_ = 0;
    const auto base = std::min(backoff_max_, backoff_min_ * (std::int64_t{1} << std::min<unsigned>(step_, 20)));
    std::uniform_int_distribution<std::int64_t> jitter(base.count() / 2, base.count());
    const auto delay = std::chrono::milliseconds(jitter(random_));
    if (armed_ && (!soon || timer_.expiry() <= std::chrono::steady_clock::now() + delay))
      return;
    armed_ = true;
    const std::uint64_t generation = ++generation_; // a wait it replaces completes (aborted) and does nothing
    timer_.expires_after(delay);
    timer_.async_wait([self = lifetime_.keep_alive(this), generation](const std::error_code& ec) {
      if (generation != self->generation_)
        return;
      self->armed_ = false;
      if (!ec && self->automatic_)
        self->attempt();
    });
  }

  /// One attempt: the best candidate, if any and if this node may have another neighbor.
  void attempt()
  {
    const std::size_t neighbors = host_.neighbor_count();
    if (neighbors >= max_neighbors_ || (neighbors >= min_neighbors_ && !repairing_)) {
      repairing_ = false;
      return;
    }
    auto candidate = pick();
    lost_.reset(); // tried once (or gone): from now on it is one of the others
    if (!candidate) {
      ++step_;
      if (repairing_ || neighbors < min_neighbors_)
        schedule(false); // nobody to try yet: look again later (node_present() looks sooner)
      return;
    }
    attempting_ = true;
    host_.repair_connect(candidate->addresses, candidate->peer, candidate->node);
  }

  /// The node to try: the lost neighbor if present, else the present node heard from least recently; never this
  /// node, a neighbor, or a node without addresses. A node whose attempt failed (or that fell silent) comes after
  /// every other, the one that failed longest ago first, so that the backoff alone paces attempts at it.
  std::optional<node_info> pick()
  {
    std::optional<node_info> best;
    std::optional<std::chrono::steady_clock::time_point> best_heard;
    std::optional<node_info> failed_best;
    std::optional<std::chrono::steady_clock::time_point> failed_at;
    for (auto& [info, heard] : presence_.present()) {
      // A presence record is anyone's word: only addresses a node can listen on are tried.
      std::erase_if(info.addresses, [](const asio::ip::tcp::endpoint& a) {
        return a.address().is_unspecified() || a.address().is_multicast() || a.port() == 0;
      });
      if (info.node == self_ || info.addresses.empty() || host_.neighbor_of(info.node))
        continue;
      if (auto failed = failures_.find(info.node); failed != failures_.end()) {
        if (!failed_at || failed->second < *failed_at) {
          failed_best = info;
          failed_at = failed->second;
        }
        continue;
      }
      if (lost_ && info.node == *lost_)
        return info;
      if (!best_heard || heard < *best_heard) {
        best = info;
        best_heard = heard;
      }
    }
    // Forget failures of nodes no longer present, so that the table stays as small as the presence list.
    std::erase_if(failures_, [&](const auto& entry) { return !presence_.is_present(entry.first); });
    return best ? best : failed_best;
  }

  engine_lifetime& lifetime_;
  const presence_layer<Context>& presence_;
  repair_host<Context>& host_;
  node_id self_;
  bool automatic_;
  std::size_t min_neighbors_;
  std::size_t max_neighbors_;
  std::chrono::milliseconds backoff_min_;
  std::chrono::milliseconds backoff_max_;
  typename graph_io<Context>::timer_type timer_;
  std::minstd_rand random_;
  std::optional<node_id> lost_;      // the last neighbor lost, until tried (unless it fell silent)
  std::optional<node_id> last_lost_; // the last neighbor lost: its coming back ends the repair
  std::map<node_id, std::chrono::steady_clock::time_point> failures_; // when an attempt at a node last failed
  unsigned step_ = 0;                                                 // attempts since the last success
  bool repairing_ = false; // a neighbor was lost and no attempt succeeded since
  bool armed_ = false;
  bool attempting_ = false;
  std::uint64_t generation_ = 0; // of the armed wait
};

} // namespace peergraph::detail
