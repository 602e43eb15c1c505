//
// peergraph/detail/graph/admission.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The graph's admission bookkeeping: the checks on a caller's hello, the one neighbour connection a peer may have
// (claimed by a handshake, kept by the connection), and what the limits count (connection slots held by handshakes
// past the checks, incoming handshakes, and both per remote address).
//
#pragma once

#include <peergraph/error.hpp>
#include <peergraph/graph_properties.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/wire.hpp>

#include <asio/ip/address.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <unordered_map>

namespace peergraph::detail {

class graph_admission
{
public:
  explicit graph_admission(const graph_properties& properties) noexcept : properties_(properties) {}

  /// The key of a remote address: an IPv4 address reached over IPv6 counts as itself.
  static asio::ip::address address_key(const asio::ip::address& address)
  {
    if (address.is_v6() && address.to_v6().is_v4_mapped())
      return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    return address;
  }

  /// Whether one more incoming connection from `from` may start its handshake (max_pending_handshakes, and per
  /// address).
  [[nodiscard]] bool may_start_incoming(const asio::ip::address& from) const
  {
    if (incoming_handshakes_ >= properties_.max_pending_handshakes)
      return false;
    auto it = incoming_by_address_.find(from);
    return it == incoming_by_address_.end() || it->second.handshakes < properties_.max_pending_handshakes_per_address;
  }

  void incoming_started(const asio::ip::address& from)
  {
    ++incoming_handshakes_;
    ++incoming_by_address_[from].handshakes;
  }

  void incoming_finished(const asio::ip::address& from)
  {
    --incoming_handshakes_;
    --incoming_by_address_[from].handshakes;
    forget_unloaded(from);
  }

  /// The graph's checks on a received hello (docs/wire.md), with `established` connections in the graph: the refuse
  /// reason, or 0 to accept. Accepting a neighbor claims the remote peer for connection `id`.
  peer_errc check(const wire::hello_message& remote, connection_id id, bool initiator, connection_kind kind,
                  const std::optional<peer_id>& expected_peer, const asio::ip::address& from, node_id local_node,
                  std::size_t established)
  {
    if (remote.graph != properties_.graph)
      return peer_errc::wrong_graph;
    if (remote.node == local_node)
      return peer_errc::connect_self;
    if (initiator && remote.kind != kind)
      return peer_errc::protocol_error;
    if (expected_peer && remote.peer != *expected_peer)
      return peer_errc::node_not_found;
    if (!initiator && remote.expected_peer && *remote.expected_peer != properties_.peer)
      return peer_errc::node_not_found;
    // Handshakes that were accepted but have not finished hold a slot, so concurrent ones cannot overshoot.
    if (established + reserved_slots_ >= properties_.max_connections)
      return peer_errc::limit_exceeded;
    if (!initiator && connections_from(from) >= properties_.max_connections_per_address)
      return peer_errc::limit_exceeded;
    if (kind == connection_kind::neighbor) {
      const std::string& initiator_peer = initiator ? properties_.peer.str() : remote.peer.str();
      auto [it, inserted] = neighbors_.try_emplace(remote.peer.str(), neighbor_claim{id, initiator_peer, false});
      if (!inserted) {
        // Two nodes connecting to each other at once: both keep the connection opened by the smaller peer id, so
        // both sides decide alike and exactly one neighbor connection survives.
        if (it->second.established || !(initiator_peer < it->second.initiator))
          return peer_errc::already_exists;
        it->second = neighbor_claim{id, initiator_peer, false};
      }
    }
    return peer_errc{};
  }

  /// An attempt past the checks holds a connection slot, and an incoming one its address's slot.
  template <class Attempt>
  void hold(Attempt& attempt, bool initiator)
  {
    attempt.holds_slot = true;
    ++reserved_slots_;
    if (!initiator) {
      attempt.holds_address_slot = true;
      ++incoming_by_address_[attempt.from].connections;
    }
  }

  /// Whether connection `id` still holds the neighbor claim on `peer` (a crossing connection may have won it).
  [[nodiscard]] bool holds_claim(const peer_id& peer, connection_id id) const
  {
    auto claim = neighbors_.find(peer.str());
    return claim != neighbors_.end() && claim->second.holder == id;
  }

  /// Gives back what a failed attempt held: its claim and slots.
  template <class Attempt>
  void release(Attempt& attempt, connection_id id)
  {
    release_claim(attempt.remote_peer, id);
    release_slot(attempt);
    if (attempt.holds_address_slot) {
      attempt.holds_address_slot = false;
      --incoming_by_address_[attempt.from].connections;
      forget_unloaded(attempt.from);
    }
  }

  /// The attempt became an established connection: its connection slot is given back (the connection counts from
  /// now on), its neighbor claim is final. Whether it holds its address's slot, which passes to the connection.
  template <class Attempt>
  bool established(Attempt& attempt)
  {
    release_slot(attempt);
    if (attempt.kind == connection_kind::neighbor)
      neighbors_.at(attempt.remote_peer.str()).established = true;
    return std::exchange(attempt.holds_address_slot, false);
  }

  /// An established connection left the graph: its claim goes, and its address's slot when it holds one.
  void connection_removed(connection_id id, connection_kind kind, const peer_id& peer, bool incoming,
                          const asio::ip::address& remote_address)
  {
    if (incoming) {
      auto it = incoming_by_address_.find(address_key(remote_address));
      if (it != incoming_by_address_.end() && it->second.connections != 0) {
        --it->second.connections;
        forget_unloaded(it->first);
      }
    }
    if (kind == connection_kind::neighbor)
      release_claim(peer, id);
  }

  /// The graph closed: no claim holds any more.
  void clear_claims() noexcept { neighbors_.clear(); }

private:
  /// Who holds the one neighbor connection a peer may have: a handshake in progress or an established connection.
  struct neighbor_claim
  {
    connection_id holder;
    std::string initiator; // the peer id of the node that opened the connection (the tie-breaker)
    bool established = false;
  };

  /// What one remote address holds of this node: its incoming connections in the handshake, and its incoming
  /// connections past the checks (accepted or established), for the per-address limits.
  struct address_load
  {
    std::size_t handshakes = 0;
    std::size_t connections = 0;
  };

  [[nodiscard]] std::size_t connections_from(const asio::ip::address& from) const
  {
    auto it = incoming_by_address_.find(from);
    return it == incoming_by_address_.end() ? 0 : it->second.connections;
  }

  /// Drops the entry of an address that holds nothing any more: the table has one entry per busy address only.
  void forget_unloaded(const asio::ip::address& from)
  {
    auto it = incoming_by_address_.find(from);
    if (it != incoming_by_address_.end() && it->second.handshakes == 0 && it->second.connections == 0)
      incoming_by_address_.erase(it);
  }

  template <class Attempt>
  void release_slot(Attempt& attempt) noexcept
  {
    if (attempt.holds_slot) {
      attempt.holds_slot = false;
      --reserved_slots_;
    }
  }

  void release_claim(const peer_id& peer, connection_id id)
  {
    if (peer.empty())
      return;
    auto it = neighbors_.find(peer.str());
    if (it != neighbors_.end() && it->second.holder == id)
      neighbors_.erase(it);
  }

  const graph_properties& properties_;
  std::unordered_map<std::string, neighbor_claim> neighbors_;
  std::unordered_map<asio::ip::address, address_load> incoming_by_address_; // busy remote addresses only
  std::size_t incoming_handshakes_ = 0;                                     // incoming connections in their handshake
  std::size_t reserved_slots_ = 0; // handshakes past the checks, not yet established
};

} // namespace peergraph::detail
