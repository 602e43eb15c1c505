//
// peergraph/graph_properties.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// graph_properties: how a graph node is set up (who it is, the graph it belongs to, its security) and the limits
// that keep it bounded; validate() names the first invalid field (invalid_property, graph_property_category()).
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/error.hpp>
#include <peergraph/event.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/membership.hpp>
#include <peergraph/record_security.hpp>
#include <peergraph/record_store.hpp>
#include <peergraph/transport_security.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

namespace peergraph {

/// The default maximum frame size: 60 MB, the Peer Graphing default maximum record size.
inline constexpr std::uint64_t default_max_frame_size = 60ULL * 1024 * 1024;
/// The smallest maximum frame size a graph accepts (the Peer Graphing minimum record size).
inline constexpr std::uint64_t min_max_frame_size = 1024;

/// Which field of graph_properties is invalid, and why: the cause of the invalid_argument that
/// graph_properties::validate(), basic_graph::create() and the throwing constructor report, in
/// graph_property_category(), so that `error.message()` and `error.cause().message()` name the field.
enum class invalid_property : int
{
  graph = 1,                          ///< empty
  peer,                               ///< empty
  friendly_name,                      ///< longer than 256 bytes
  max_frame_size,                     ///< below min_max_frame_size
  copy_threshold,                     ///< above 32 KiB
  connect_timeout,                    ///< not positive
  handshake_timeout,                  ///< not positive
  keepalive_interval,                 ///< negative
  close_linger,                       ///< negative
  max_connections,                    ///< 0
  max_connections_per_address,        ///< 0
  max_pending_handshakes,             ///< 0
  max_pending_handshakes_per_address, ///< 0
  max_connection_output,              ///< below 64 KiB
  output_stall_timeout,               ///< not positive
  max_incoming_bytes,                 ///< 0
  event_queue_depth,                  ///< 0
  max_record_size,                    ///< below min_max_frame_size
  max_records,                        ///< 0
  max_record_bytes,                   ///< below max_record_size
  presence_lifetime,                  ///< below 1 second
  max_neighbors,                      ///< 0, or below min_neighbors
  repair_backoff,                     ///< repair_backoff_min not positive, or above repair_backoff_max
};

/// The category of invalid_property values ("peergraph.graph_properties"): message(v) names the field and the rule
/// it breaks, e.g. "graph_properties::max_frame_size is below min_max_frame_size (1024 bytes)".
inline const std::error_category& graph_property_category() noexcept
{
  class category final : public std::error_category
  {
  public:
    const char* name() const noexcept override { return "peergraph.graph_properties"; }
    std::string message(int value) const override
    {
      switch (static_cast<invalid_property>(value)) {
      case invalid_property::graph:
        return "graph_properties::graph is empty (make it with graph_id::make)";
      case invalid_property::peer:
        return "graph_properties::peer is empty (make it with peer_id::make)";
      case invalid_property::friendly_name:
        return "graph_properties::friendly_name is longer than 256 bytes";
      case invalid_property::max_frame_size:
        return "graph_properties::max_frame_size is below min_max_frame_size (1024 bytes)";
      case invalid_property::copy_threshold:
        return "graph_properties::copy_threshold is above 32 KiB";
      case invalid_property::connect_timeout:
        return "graph_properties::connect_timeout is not positive";
      case invalid_property::handshake_timeout:
        return "graph_properties::handshake_timeout is not positive";
      case invalid_property::keepalive_interval:
        return "graph_properties::keepalive_interval is negative (0 turns keepalive off)";
      case invalid_property::close_linger:
        return "graph_properties::close_linger is negative (0 closes at once)";
      case invalid_property::max_connections:
        return "graph_properties::max_connections is 0";
      case invalid_property::max_connections_per_address:
        return "graph_properties::max_connections_per_address is 0";
      case invalid_property::max_pending_handshakes:
        return "graph_properties::max_pending_handshakes is 0";
      case invalid_property::max_pending_handshakes_per_address:
        return "graph_properties::max_pending_handshakes_per_address is 0";
      case invalid_property::max_connection_output:
        return "graph_properties::max_connection_output is below 64 KiB";
      case invalid_property::output_stall_timeout:
        return "graph_properties::output_stall_timeout is not positive";
      case invalid_property::max_incoming_bytes:
        return "graph_properties::max_incoming_bytes is 0";
      case invalid_property::event_queue_depth:
        return "graph_properties::event_queue_depth is 0";
      case invalid_property::max_record_size:
        return "graph_properties::max_record_size is below min_max_frame_size (1024 bytes)";
      case invalid_property::max_records:
        return "graph_properties::max_records is 0";
      case invalid_property::max_record_bytes:
        return "graph_properties::max_record_bytes is below the largest record (max_record_size)";
      case invalid_property::presence_lifetime:
        return "graph_properties::presence_lifetime is below 1 second";
      case invalid_property::max_neighbors:
        return "graph_properties::max_neighbors is 0 or below min_neighbors";
      case invalid_property::repair_backoff:
        return "graph_properties::repair_backoff_min is not positive or above repair_backoff_max";
      }
      return "unknown graph property";
    }
  };
  static const category instance;
  return instance;
}

/// How a node starts on its graph (PeerGraphCreate or PeerGraphOpen).
enum class graph_start : std::uint8_t
{
  /// It creates the graph: its records are the graph's, so it is synchronised at once (graph_status::synchronized).
  create,
  /// It joins a graph that other nodes hold: record operations fail with graph_not_ready until its first
  /// synchronisation with a neighbor completes (the neighbor_synchronized event and graph_status::synchronized).
  join,
};

/// How a graph is set up: who this node is, and the limits that keep it bounded.
struct graph_properties
{
  /// The graph this node belongs to; nodes of other graphs are refused.
  graph_id graph;
  /// This node's peer id (at most 256 characters).
  peer_id peer;
  /// A name for people; at most 256 bytes, not sent on the wire.
  std::string friendly_name;
  /// Largest send_data payload, in both directions: from min_max_frame_size (1 KiB) up; default 60 MB.
  std::uint64_t max_frame_size = default_max_frame_size;
  /// Payloads up to this many bytes are copied into the connection's staging buffer and sent together with the
  /// frames around them, once per executor turn or when 64 KiB have gathered: one system call for many small
  /// messages. Larger payloads, and every send_data with send_flags::zero_copy, are sent from the caller's memory.
  /// 0 turns copying off. At most 32 KiB.
  std::size_t copy_threshold = 1024;
  /// Time allowed for a TCP connection to be established.
  std::chrono::milliseconds connect_timeout{10'000};
  /// Time allowed for a handshake to complete, in either direction; a peer that is slower is disconnected.
  std::chrono::milliseconds handshake_timeout{10'000};
  /// Checked once per interval: a connection on which nothing arrived during the last interval is pinged; one on
  /// which nothing arrived for a further interval after the ping is taken for gone (a half-open connection) and ends
  /// with timed_out. So a dead peer is detected two to three intervals after it fell silent. 0 turns keepalive off.
  /// Keep it well above the round trip plus TCP's retransmission timeout (at least 200 ms on Linux): a lost ping or
  /// reply arrives only when TCP sends it again, and a live peer that misses the interval is dropped.
  std::chrono::milliseconds keepalive_interval{15'000};
  /// How long a closing connection (close_direct_connection, close(), the destructor) may take to write what was
  /// already promised to the peer (frames send_data reported sent, a frame partly written) and its close frame, and
  /// to see the remote close its side; then its socket is closed whatever is left. Sends that had not written
  /// anything fail with operation_aborted at once; a partly written one completes when written or at this bound.
  /// 0 closes at once.
  std::chrono::milliseconds close_linger{2'000};
  /// Most established connections (neighbor and direct together); more are refused with limit_exceeded.
  std::size_t max_connections = 1024;
  /// Most established connections accepted from one remote IP address (neighbor and direct; the connections this
  /// node opens do not count); more are refused with limit_exceeded, so that one address cannot take every slot. A
  /// value above max_connections means max_connections.
  std::size_t max_connections_per_address = 256;
  /// Most incoming connections in their handshake at once; more are closed at once.
  std::size_t max_pending_handshakes = 64;
  /// Most incoming connections in their handshake at once from one remote IP address; more from that address are
  /// closed at once while other addresses still get in. A value above max_pending_handshakes means that.
  std::size_t max_pending_handshakes_per_address = 16;
  /// Bytes one connection may hold for its peer beyond what the kernel's send buffer took: frames send_data already
  /// reported sent, pongs, close frames, refusals and a secure channel's records. A peer that does not read makes
  /// them pile up: at this bound the node stops reading from that peer (so it makes no more replies), and when the
  /// peer has not taken enough to go below half of it within output_stall_timeout, the connection ends with
  /// limit_exceeded. From 64 KiB (one staging buffer) up.
  std::size_t max_connection_output = 256 * 1024;
  /// How long a connection may stay at max_connection_output before it ends with limit_exceeded.
  std::chrono::milliseconds output_stall_timeout{10'000};
  /// Node-wide budget of payload bytes the graph holds for the application: messages being received and messages
  /// waiting in the event queue. A payload's buffer grows as its bytes arrive (a frame header alone takes at most
  /// 128 KiB, a buffer at most 32 times the bytes that arrived), each step charged here; when the budget is used up,
  /// readers stop reading (TCP backpressure) until the application takes events. One message of max_frame_size always
  /// fits: a smaller value means max_frame_size.
  std::uint64_t max_incoming_bytes = 256ULL * 1024 * 1024;
  /// Events queued for next_event() before readers stop reading (TCP backpressure slows the senders).
  std::size_t event_queue_depth = 1024;
  /// Largest record, as record::size() counts it (its bytes on the wire): from min_max_frame_size (1 KiB, the Peer
  /// Graphing minimum) up; default 60 MB (the Peer Graphing default). A value above max_frame_size means
  /// max_frame_size (a record travels in one frame). A larger record fails with max_record_size_exceeded when added
  /// here, and ends the connection of a neighbor that sends one.
  std::uint64_t max_record_size = default_max_frame_size;
  /// Most records this node stores, tombstones of deleted records (kept until their expiry) included. Adding more
  /// fails with limit_exceeded; a neighbor whose records would pass it loses its connection with limit_exceeded.
  std::size_t max_records = std::size_t{1} << 20;
  /// Most bytes of records (record::size() together) this node stores; at least the largest record
  /// (record_size_limit()). As max_records.
  std::uint64_t max_record_bytes = 512ULL * 1024 * 1024;
  /// Whether this node creates its graph or joins one. The default, create, suits a node that is alone or whose
  /// records need not wait for the graph's; a node that connects to an existing graph should join, so that it does
  /// not work on records before it has the graph's.
  graph_start start = graph_start::create;
  /// How long this node's presence record (set_presence) lives without a refresh (the Peer Graphing
  /// ulPresenceLifetime). The node refreshes it every third of this, so a node that vanishes without leaving is
  /// gone from every node's nodes() at most this long after it stopped; a node that leaves cleanly (set_presence
  /// false, close()) is gone as soon as the deletion reaches them. From 1 second up; default 5 minutes (Peer
  /// Graphing's), whose refreshes cost each node one presence record flood per node every 100 seconds. The repair
  /// knows only present nodes: keep it well above the time a loss takes to notice and repair, or the two sides of a
  /// split may forget each other (within two thirds of it) before they reconnect.
  std::chrono::milliseconds presence_lifetime{std::chrono::minutes(5)};
  /// The neighbor connections a node aims for: the repair connects while it has fewer than min_neighbors, and never
  /// beyond max_neighbors (other nodes may still connect to it, up to max_connections).
  std::size_t min_neighbors = 2;
  std::size_t max_neighbors = 8;
  /// Whether the node repairs the graph by itself (the default): when a neighbor connection ends (a connection_required
  /// event), it connects to present nodes (presence: set_presence) it has no neighbor connection with, the lost
  /// neighbor first, until it has min_neighbors again. On by default because a graph that splits otherwise stays
  /// split until an application acts, and it costs nothing where no node publishes its presence (there is nobody to
  /// connect to). Off: the application acts on connection_required itself.
  bool automatic_repair = true;
  /// The repair's delay before an attempt: repair_backoff_min after a loss, doubled with each attempt that finds no
  /// node or fails, up to repair_backoff_max; each delay is drawn between half and all of it.
  std::chrono::milliseconds repair_backoff_min{100};
  std::chrono::milliseconds repair_backoff_max{30'000};
  /// Where this node keeps its records between runs (the Peer Graphing database): every change is written through
  /// it, and the graph starts with what it holds, synchronised at once if it synchronised before on this store.
  /// E.g. a memory_record_store (<peergraph/record_store.hpp>) to keep them across graphs in one process, or a
  /// sqlite_record_store (<peergraph/sqlite_record_store.hpp>) on disk. Null (the default): the records live as long
  /// as the graph. create() and the constructor fail with the store's error when it cannot be opened.
  std::shared_ptr<record_store> store;
  /// Secures the records this node makes and validates those it receives (PEER_SECURITY_INTERFACE's
  /// pfnSecureRecord and pfnValidateRecord), e.g. by signing them: see <peergraph/record_security.hpp>. Nodes of
  /// one graph all set compatible ones. Null (the default): a node trusts the creator a version names.
  std::shared_ptr<const peergraph::record_security> record_security;
  /// This node's clock (universal time); empty: std::chrono::system_clock. Records carry times of the graph's clock,
  /// peer time (basic_graph::peer_time()): a node that joins takes it from its first neighbor, so that nodes whose
  /// clocks differ agree on when records expire. Called on any thread.
  std::function<std::chrono::system_clock::time_point()> clock;
  /// Which events are queued at all (PeerGraphRegisterEvent); the others are not delivered.
  event_filter events;
  /// Closed graphs: the credentials with which nodes prove membership to each other in every handshake, before
  /// either says who it is (e.g. pre_shared_key::make from <peergraph/psk.hpp>). A node that cannot prove it learns
  /// no peer id, cannot send data, and its connection fails with not_authenticated on both sides. Null (the
  /// default): an open graph, which any node that knows the graph id may join. Nodes of one graph all set it, or
  /// none does: an open node and a closed node refuse each other with not_authenticated.
  std::shared_ptr<const membership_authenticator> membership;
  /// A secure channel under every connection (e.g. tls_credentials::make from <peergraph/tls.hpp>: TLS 1.3, both
  /// nodes authenticated by certificates of the graph's CA). The channel's handshake comes first, so a node without
  /// accepted credentials learns no peer id and cannot send data: its connection fails with not_authenticated on both
  /// sides. A node's hello must announce the peer id its credentials name. Everything after the handshake is
  /// encrypted; payloads are then copied into the encrypted records, so sends are no longer zero-copy, and sends
  /// already queued when a connection closes still go out (within close_linger) ahead of the close frame. Null (the
  /// default): plain TCP. Nodes of one graph all set it, or none does.
  std::shared_ptr<const transport_security> tls;

  /// The largest record this node takes: max_record_size, but at most max_frame_size.
  [[nodiscard]] std::uint64_t record_size_limit() const noexcept { return std::min(max_record_size, max_frame_size); }

  /// Checks every field: invalid_argument when one is out of range, with the first such field as its cause (an
  /// invalid_property in graph_property_category(), so message() names it).
  [[nodiscard]] expected<void, peer_error> validate() const
  {
    const std::pair<bool, invalid_property> rules[] = {
        {graph.empty(), invalid_property::graph},
        {peer.empty(), invalid_property::peer},
        {friendly_name.size() > 256, invalid_property::friendly_name},
        {max_frame_size < min_max_frame_size, invalid_property::max_frame_size},
        {copy_threshold > 32 * 1024, invalid_property::copy_threshold},
        {connect_timeout.count() <= 0, invalid_property::connect_timeout},
        {handshake_timeout.count() <= 0, invalid_property::handshake_timeout},
        {keepalive_interval.count() < 0, invalid_property::keepalive_interval},
        {close_linger.count() < 0, invalid_property::close_linger},
        {max_connections == 0, invalid_property::max_connections},
        {max_connections_per_address == 0, invalid_property::max_connections_per_address},
        {max_pending_handshakes == 0, invalid_property::max_pending_handshakes},
        {max_pending_handshakes_per_address == 0, invalid_property::max_pending_handshakes_per_address},
        {max_connection_output < 64 * 1024, invalid_property::max_connection_output},
        {output_stall_timeout.count() <= 0, invalid_property::output_stall_timeout},
        {max_incoming_bytes == 0, invalid_property::max_incoming_bytes},
        {event_queue_depth == 0, invalid_property::event_queue_depth},
        {max_record_size < min_max_frame_size, invalid_property::max_record_size},
        {max_records == 0, invalid_property::max_records},
        {max_record_bytes < record_size_limit(), invalid_property::max_record_bytes},
        {presence_lifetime < std::chrono::seconds(1), invalid_property::presence_lifetime},
        {max_neighbors == 0 || max_neighbors < min_neighbors, invalid_property::max_neighbors},
        {repair_backoff_min.count() <= 0 || repair_backoff_min > repair_backoff_max, invalid_property::repair_backoff},
    };
    for (const auto& [broken, field] : rules)
      if (broken)
        return unexpected(peer_error(peer_errc::invalid_argument,
                                     std::error_code(static_cast<int>(field), graph_property_category())));
    return {};
  }
};

} // namespace peergraph
