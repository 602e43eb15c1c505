//
// peergraph/presence.hpp
// ~~~~~~~~~~~~~~~~~~~~~~
// Presence: which nodes are in the graph and where they listen (PeerGraphSetPresence, PeerGraphEnumNodes,
// PEER_NODE_INFO, PeerGraphSetNodeAttributes). A node that publishes its presence keeps a presence record in the
// graph: a record of presence_record_type, flooded and synchronised like any other, refreshed before it expires and
// deleted when the node leaves cleanly. A node that vanishes without leaving (its process killed, its network gone)
// disappears from every list when its last refresh expires: at most graph_properties::presence_lifetime later.
//
#pragma once

#include <peergraph/ids.hpp>

#include <asio/ip/tcp.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace peergraph {

/// The record type of presence records. The graph makes, updates and deletes them; an application's add_record,
/// update_record and delete_record refuse the type (invalid_argument), and records() and search_records() do not
/// list them: nodes() reads them.
inline constexpr data_type presence_record_type = data_type::from_string("8f3c2b9e-5a41-4d7e-b0c6-2e9f71d4a5b3");

/// The most addresses a presence record carries.
inline constexpr std::size_t max_presence_addresses = 16;

/// The largest node attributes (set_node_attributes), in bytes of UTF-8.
inline constexpr std::size_t max_node_attributes_size = 4096;

/// A node present in the graph (PEER_NODE_INFO), as nodes() lists it.
struct node_info
{
  node_id node;                                   ///< the node's id (one graph instance of a peer)
  peer_id peer;                                   ///< the peer it belongs to; a peer may run several nodes
  std::vector<asio::ip::tcp::endpoint> addresses; ///< where it listens, as it published them
  std::string attributes;                         ///< what its application set (set_node_attributes)

  friend bool operator==(const node_info&, const node_info&) = default;
};

} // namespace peergraph
