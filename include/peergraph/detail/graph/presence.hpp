//
// peergraph/detail/graph/presence.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Presence on top of the records (<peergraph/presence.hpp>): this node's presence record (published, refreshed every
// third of graph_properties::presence_lifetime, deleted when it leaves), the nodes() list read from every node's
// presence record, and the node_changed events their changes make. A presence record that does not decode (another
// implementation's, or a stranger's) is held and flooded like any record, but lists no node and reports nothing.
//
#pragma once

#include <peergraph/detail/graph/context.hpp>
#include <peergraph/detail/graph/presence_codec.hpp>
#include <peergraph/detail/graph/record_layer.hpp>
#include <peergraph/detail/graph/records.hpp>
#include <peergraph/error.hpp>
#include <peergraph/event.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/graph_properties.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/presence.hpp>
#include <peergraph/record.hpp>

#include <asio/ip/tcp.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace peergraph::detail {

template <class Context>
class presence_layer
{
public:
  presence_layer(const Context& context, const graph_properties& properties, engine_lifetime& lifetime,
                 record_layer<Context>& records, node_id self)
      : lifetime_(lifetime), records_(records), self_(self), lifetime_length_(properties.presence_lifetime),
        refresh_(context)
  {
  }

  /// PeerGraphSetPresence: publishes this node's presence, or withdraws it. A node that is not synchronised yet
  /// publishes once it is. Errors: out_of_memory, record_store_failed, the record security's.
  expected<void, peer_error> set_presence(bool present)
  {
    wanted_ = present;
    return present ? publish() : withdraw();
  }

  /// PeerGraphSetNodeAttributes: invalid_argument above max_node_attributes_size; republished when present.
  expected<void, peer_error> set_attributes(std::string attributes)
  {
    if (attributes.size() > max_node_attributes_size)
      return unexpected(peer_error(peer_errc::invalid_argument));
    attributes_ = std::move(attributes);
    return wanted_ ? publish() : expected<void, peer_error>{};
  }

  /// The node listens at `address` (as bound): the presence record says so from now on. An unspecified address
  /// (0.0.0.0, ::) names no host another node could reach (connecting to it reaches the connecting host itself), so
  /// it is not published.
  void listening(const asio::ip::tcp::endpoint& address)
  {
    addresses_.clear();
    if (!address.address().is_unspecified())
      addresses_.push_back(address);
    if (wanted_)
      (void)publish(); // a failure shows at the next refresh, which tries again
  }

  /// The node became synchronised: a presence asked for before is published now.
  void synchronized()
  {
    if (wanted_ && !own_)
      (void)publish();
  }

  /// PeerGraphEnumNodes: the nodes whose presence this node holds, of `peer` when given, ordered by peer, then node.
  [[nodiscard]] std::vector<node_info> nodes(const std::optional<peer_id>& peer) const
  {
    std::vector<node_info> list;
    for (const record& r : records_.reserved_records(presence_record_type)) {
      if (peer && r.creator != *peer)
        continue;
      if (auto info = decode_presence(r.creator, r.data))
        list.push_back(std::move(*info));
    }
    std::sort(list.begin(), list.end(), [](const node_info& a, const node_info& b) {
      return std::tie(a.peer, a.node) < std::tie(b.peer, b.node);
    });
    return list;
  }

  /// A presence record changed: the node_changed event it makes, if any.
  std::optional<node_changed> changed(const record_update& update)
  {
    const record& r = update.version;
    auto known = known_.find(r.id);
    if (update.change == record_change::deleted || update.change == record_change::expired) {
      if (known == known_.end())
        return std::nullopt;
      const node_changed gone{node_change::disconnected, known->second.info.node, known->second.info.peer};
      known_.erase(known);
      if (r.creator == records_.local_peer() && own_ && own_->id == r.id)
        own_.reset(); // expired here: the next refresh adds it again
      return gone;
    }
    auto info = decode_presence(r.creator, r.data);
    if (!info) {
      if (known == known_.end())
        return std::nullopt; // never listed: nothing to take back
      const node_changed gone{node_change::disconnected, known->second.info.node, known->second.info.peer};
      known_.erase(known);
      return gone;
    }
    const auto now = std::chrono::steady_clock::now();
    if (known == known_.end()) {
      const node_changed came{node_change::connected, info->node, info->peer};
      known_.emplace(r.id, known_node{std::move(*info), now});
      return came;
    }
    known->second.heard = now;
    if (known->second.info == *info)
      return std::nullopt; // a refresh
    known->second.info = std::move(*info);
    return node_changed{node_change::updated, known->second.info.node, known->second.info.peer};
  }

  /// The store gave the graph its records: the presence records among them are known from now on (no event).
  void loaded()
  {
    const auto now = std::chrono::steady_clock::now();
    for (const record& r : records_.reserved_records(presence_record_type))
      if (auto info = decode_presence(r.creator, r.data))
        known_.insert_or_assign(r.id, known_node{std::move(*info), now});
  }

  /// Every node listed, with when its presence last arrived here (published, refreshed or changed).
  [[nodiscard]] std::vector<std::pair<node_info, std::chrono::steady_clock::time_point>> present() const
  {
    std::vector<std::pair<node_info, std::chrono::steady_clock::time_point>> list;
    list.reserve(known_.size());
    for (const auto& [id, known] : known_)
      list.emplace_back(known.info, known.heard);
    return list;
  }

  /// Whether node `node` is listed.
  [[nodiscard]] bool is_present(node_id node) const
  {
    return std::any_of(known_.begin(), known_.end(), [&](const auto& entry) { return entry.second.info.node == node; });
  }

  /// The graph closes: its presence is deleted everywhere (the deletion goes out ahead of the close frames).
  void close()
  {
    (void)withdraw();
    wanted_ = false;
  }

private:
  /// Adds or refreshes this node's presence record, and arms the next refresh.
  expected<void, peer_error> publish()
  {
    if (!records_.synchronized())
      return {}; // synchronized() publishes it
    auto data = encode_presence(self_, addresses_, attributes_);
    if (!data)
      return unexpected(data.error());
    const record_time expires =
        records_.now() + std::chrono::duration_cast<std::chrono::milliseconds>(lifetime_length_);
    arm_refresh();
    if (own_) {
      record next = *own_;
      next.expires = expires;
      next.data = std::move(*data);
      auto updated = records_.update_reserved(next);
      if (updated) {
        own_ = std::move(next);
        return {};
      }
      if (updated.error() != peer_errc::record_not_found)
        return updated;
      own_.reset(); // it expired meanwhile: add it again
    }
    record fresh;
    fresh.type = presence_record_type;
    fresh.expires = expires;
    fresh.data = std::move(*data);
    auto id = records_.add_reserved(fresh);
    if (!id)
      return unexpected(id.error());
    fresh.id = *id;
    own_ = std::move(fresh);
    return {};
  }

  /// Deletes this node's presence record, if it has one, and stops the refreshes.
  expected<void, peer_error> withdraw()
  {
    refresh_.cancel();
    if (!own_)
      return {};
    const record_id id = own_->id;
    own_.reset();
    auto removed = records_.remove_reserved(id);
    if (!removed && removed.error() == peer_errc::record_not_found)
      return {}; // it expired already
    return removed;
  }

  void arm_refresh()
  {
    refresh_.expires_after(lifetime_length_ / 3);
    refresh_.async_wait([self = lifetime_.keep_alive(this)](const std::error_code& ec) {
      if (!ec && self->wanted_)
        (void)self->publish();
    });
  }

  engine_lifetime& lifetime_;
  record_layer<Context>& records_;
  node_id self_;
  std::chrono::milliseconds lifetime_length_;
  typename graph_io<Context>::timer_type refresh_;
  std::vector<asio::ip::tcp::endpoint> addresses_; // where the node listens
  std::string attributes_;
  std::optional<record> own_; // this node's presence record, as last published
  struct known_node
  {
    node_info info;
    std::chrono::steady_clock::time_point heard; // when its presence last arrived (the repair's preference)
  };
  std::map<record_id, known_node> known_; // presence records that list a node, for node_changed and the repair
  bool wanted_ = false;                   // set_presence(true)
};

} // namespace peergraph::detail
