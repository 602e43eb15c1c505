//
// peergraph/event.hpp
// ~~~~~~~~~~~~~~~~~~~
// What a graph reports through next_event(): connection changes, incoming data, status changes, record and node
// changes and synchronisations, the counterparts of PEER_GRAPH_EVENT_NEIGHBOR_CONNECTION / DIRECT_CONNECTION,
// INCOMING_DATA, STATUS_CHANGED, RECORD_CHANGED, NODE_CHANGED, SYNCHRONIZED and CONNECTION_REQUIRED.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/detail/block_pool.hpp>
#include <peergraph/error.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/record.hpp>

#include <asio/ip/tcp.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <utility>
#include <variant>
#include <vector>

namespace peergraph {

/// The state a connection_changed event reports (PEER_CONNECTION_STATUS).
enum class connection_status : std::uint8_t
{
  connected = 1,    ///< the handshake completed; the connection carries data
  disconnected = 2, ///< an established connection ended; the event's reason says why
  failed = 3,       ///< a connection attempt failed before it was established; the reason says why
};

/// Graph status flags (PEER_GRAPH_STATUS_FLAGS). Combine with `|`.
enum class graph_status : unsigned
{
  none = 0,
  listening = 1U << 0,       ///< the graph accepts connections
  has_connections = 1U << 1, ///< at least one neighbor or direct connection is established
  synchronized = 1U << 2,    ///< the node's records are synchronised with the graph: it created the graph, or it
                             ///< completed a synchronisation with a neighbor (PEER_GRAPH_STATUS_SYNCHRONIZED)
};

constexpr graph_status operator|(graph_status a, graph_status b) noexcept
{
  return static_cast<graph_status>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr graph_status operator&(graph_status a, graph_status b) noexcept
{
  return static_cast<graph_status>(static_cast<unsigned>(a) & static_cast<unsigned>(b));
}
/// True when `status` has every flag of `flag` set.
constexpr bool has_status(graph_status status, graph_status flag) noexcept
{
  return flag != graph_status::none && (status & flag) == flag;
}

/// Which connections connections() lists (PEER_CONNECTION_FLAGS). Combine with `|`.
enum class connection_kinds : unsigned
{
  neighbor = 1U << 0,
  direct = 1U << 1,
  all = neighbor | direct,
};

constexpr connection_kinds operator|(connection_kinds a, connection_kinds b) noexcept
{
  return static_cast<connection_kinds>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}

/// One connection of a graph, as connections() lists it (PEER_CONNECTION_INFO).
struct connection_info
{
  connection_id id;                       ///< the 64-bit id, unique within this graph
  connection_kind kind;                   ///< neighbor or direct
  peer_id remote_peer;                    ///< the other node's peer id
  node_id remote_node;                    ///< the other node's node id
  asio::ip::tcp::endpoint remote_address; ///< the other node's address
};

/// Bytes owned by an event: the payload of an incoming_data event. Move-only, so handing it on never copies.
///
/// The memory comes from a pool of recycled blocks, so a steady stream of messages allocates nothing once the pool
/// has warmed up; a payload may be kept as long as wanted and freed on any thread.
class payload
{
public:
  payload() noexcept = default;

  /// An uninitialised buffer of `size` bytes, to be filled by the reader.
  explicit payload(std::size_t size)
      : bytes_(size == 0 ? nullptr : static_cast<std::byte*>(detail::block_pool::instance().allocate(size))),
        size_(size)
  {
  }

  /// A copy of `bytes`; for tests and for applications that build events themselves.
  static payload copy_of(std::span<const std::byte> bytes)
  {
    payload p(bytes.size());
    if (!bytes.empty())
      std::memcpy(p.data(), bytes.data(), bytes.size());
    return p;
  }

  payload(payload&& other) noexcept : bytes_(std::exchange(other.bytes_, nullptr)), size_(std::exchange(other.size_, 0))
  {
  }

  payload& operator=(payload&& other) noexcept
  {
    if (this != &other) {
      release();
      bytes_ = std::exchange(other.bytes_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }

  ~payload() { release(); }

  [[nodiscard]] std::byte* data() noexcept { return bytes_; }
  [[nodiscard]] const std::byte* data() const noexcept { return bytes_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {bytes_, size_}; }
  [[nodiscard]] std::span<std::byte> bytes() noexcept { return {bytes_, size_}; }
  [[nodiscard]] const std::byte* begin() const noexcept { return bytes_; }
  [[nodiscard]] const std::byte* end() const noexcept { return bytes_ + size_; }

  friend bool operator==(const payload& a, const payload& b) noexcept
  {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }

private:
  void release() noexcept
  {
    if (bytes_ != nullptr)
      detail::block_pool::instance().deallocate(bytes_, size_);
    bytes_ = nullptr;
    size_ = 0;
  }

  std::byte* bytes_ = nullptr;
  std::size_t size_ = 0;
};

/// A neighbor or direct connection was established, ended or failed (NEIGHBOR_CONNECTION / DIRECT_CONNECTION).
struct connection_changed
{
  connection_id id;                 ///< the connection (for failed: the id connect() returned, if any)
  connection_kind kind;             ///< neighbor or direct
  connection_status status;         ///< connected, disconnected or failed
  peer_id remote_peer;              ///< the other node's peer id; empty when it never told it
  node_id remote_node;              ///< the other node's node id; 0 when unknown
  std::optional<peer_error> reason; ///< why it disconnected or failed; empty for connected
  /// The other node's address: where this node connected to, or where the connection came from. A connect() to
  /// several addresses reports a failed event for each address that failed, each with its own reason.
  asio::ip::tcp::endpoint remote_address{};
};

/// Data arrived on a connection (INCOMING_DATA): one whole send_data call of the remote node.
struct incoming_data
{
  connection_id connection;   ///< the connection it arrived on
  data_type type;             ///< the application-defined type the sender gave
  peergraph::payload payload; ///< the bytes, owned by the event
};

/// The graph's status flags changed (STATUS_CHANGED).
struct status_changed
{
  graph_status status; ///< the new flags
};

/// A record changed (RECORD_CHANGED): added, updated or deleted here or at any node of the graph and flooded here,
/// or expired.
struct record_changed
{
  record_change change; ///< added, updated, deleted or expired
  record_id id;         ///< the record
  data_type type;       ///< its record type
};

/// This node and a neighbor finished synchronising their records (SYNCHRONIZED): each now holds every record the
/// other held when they connected. The first one of a joining node sets graph_status::synchronized.
struct neighbor_synchronized
{
  connection_id connection; ///< the neighbor connection
  peer_id remote_peer;      ///< the neighbor's peer id
  node_id remote_node;      ///< the neighbor's node id
};

/// How a node's presence changed (PEER_NODE_CHANGE_TYPE).
enum class node_change : std::uint8_t
{
  connected = 1,    ///< it published its presence: nodes() lists it
  disconnected = 2, ///< it withdrew its presence (it left cleanly), or its presence expired (it vanished)
  updated = 3,      ///< it published other addresses or attributes (a refresh alone is not reported)
};

/// A node's presence changed (NODE_CHANGED), this node's own included. nodes() gives its addresses and attributes.
struct node_changed
{
  node_change change; ///< connected, disconnected or updated
  node_id node;       ///< the node
  peer_id peer;       ///< its peer id
};

/// The graph may need a connection (CONNECTION_REQUIRED): a neighbor connection of this node ended, so the graph may
/// have split. With graph_properties::automatic_repair the node reconnects by itself (to present nodes); without, the
/// application decides, e.g. connect() to a node of nodes() it has no neighbor connection with.
struct connection_required
{
  std::size_t neighbors; ///< the neighbor connections this node has left
  peer_id lost_peer;     ///< the neighbor whose connection ended
  node_id lost_node;     ///< its node id
};

/// One event of a graph.
using graph_event = std::variant<connection_changed, incoming_data, status_changed, record_changed,
                                 neighbor_synchronized, node_changed, connection_required>;

/// Kinds of events, for event_filter. Combine with `|`.
enum class event_kind : unsigned
{
  none = 0,
  connection_changed = 1U << 0,
  incoming_data = 1U << 1,
  status_changed = 1U << 2,
  record_changed = 1U << 3,
  neighbor_synchronized = 1U << 4,
  node_changed = 1U << 5,
  connection_required = 1U << 6,
  all = connection_changed | incoming_data | status_changed | record_changed | neighbor_synchronized | node_changed |
        connection_required,
};

constexpr event_kind operator|(event_kind a, event_kind b) noexcept
{
  return static_cast<event_kind>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr event_kind operator&(event_kind a, event_kind b) noexcept
{
  return static_cast<event_kind>(static_cast<unsigned>(a) & static_cast<unsigned>(b));
}

/// The kind of `event`.
inline event_kind kind_of(const graph_event& event) noexcept
{
  constexpr event_kind kinds[] = {event_kind::connection_changed,    event_kind::incoming_data,
                                  event_kind::status_changed,        event_kind::record_changed,
                                  event_kind::neighbor_synchronized, event_kind::node_changed,
                                  event_kind::connection_required};
  return kinds[event.index()];
}

/// Which events a graph queues for next_event(), like the registrations of PeerGraphRegisterEvent: events outside
/// the filter are not queued at all, so a consumer pays nothing for what it did not ask for.
struct event_filter
{
  /// The kinds to deliver.
  event_kind kinds = event_kind::all;
  /// For incoming data: the data types to deliver; empty means every type (a NULL pType).
  std::vector<data_type> data_types;
  /// For record changes: the record types to deliver; empty means every type (PEER_GRAPH_EVENT_REGISTRATION's
  /// pType for record events).
  std::vector<data_type> record_types{};

  /// True when `event` passes the filter.
  [[nodiscard]] bool matches(const graph_event& event) const noexcept
  {
    if (const auto* data = std::get_if<incoming_data>(&event))
      return accepts_data(data->type);
    if (const auto* change = std::get_if<record_changed>(&event))
      return accepts_record(change->type);
    return (kinds & kind_of(event)) != event_kind::none;
  }

  /// True when a change of a record of `type` passes the filter.
  [[nodiscard]] bool accepts_record(const data_type& type) const noexcept
  {
    if ((kinds & event_kind::record_changed) == event_kind::none)
      return false;
    return record_types.empty() || std::find(record_types.begin(), record_types.end(), type) != record_types.end();
  }

  /// True when incoming data of `type` passes the filter.
  [[nodiscard]] bool accepts_data(const data_type& type) const noexcept
  {
    if ((kinds & event_kind::incoming_data) == event_kind::none)
      return false;
    return data_types.empty() || std::find(data_types.begin(), data_types.end(), type) != data_types.end();
  }
};

} // namespace peergraph
