//
// peergraph/graph.hpp
// ~~~~~~~~~~~~~~~~~~~
// basic_graph: a node of a peer graph. It listens, connects to neighbor nodes, opens direct connections, sends data
// typed by a GUID over 64-bit connection ids, and reports connection and incoming-data events: the connection and data
// functions of the Windows Peer Graphing API (PeerGraphListen, PeerGraphConnect, PeerGraphOpenDirectConnection,
// PeerGraphSendData, PeerGraphCloseDirectConnection, PeerGraphEnumConnections, events, PeerGraphClose).
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/error.hpp>
#include <peergraph/event.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/membership.hpp>
#include <peergraph/send.hpp>
#include <peergraph/transport_security.hpp>
#include <peergraph/use_expected.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

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
      }
      return "unknown graph property";
    }
  };
  static const category instance;
  return instance;
}

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
  /// 128 KiB, a buffer at most 32 times the bytes that arrived), each step charged here; when the budget is used up, readers stop reading (TCP backpressure) until the
  /// application takes events. One message of max_frame_size always fits: a smaller value means max_frame_size.
  std::uint64_t max_incoming_bytes = 256ULL * 1024 * 1024;
  /// Events queued for next_event() before readers stop reading (TCP backpressure slows the senders).
  std::size_t event_queue_depth = 1024;
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
    };
    for (const auto& [broken, field] : rules)
      if (broken)
        return unexpected(peer_error(peer_errc::invalid_argument,
                                     std::error_code(static_cast<int>(field), graph_property_category())));
    return {};
  }
};

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

namespace detail {
template <class Executor>
class graph_state;
template <class Executor, class Operation>
class initiate_graph_op;
template <class Executor>
class initiate_send_data;
} // namespace detail

/// A node of a peer graph, on any Asio executor.
///
/// Every operation returns an awaitable of `expected<T, peer_error>` by default and accepts any Asio completion
/// token. All state of a graph lives on one serialized context, so a multi-threaded executor is safe and
/// operations may be started from any thread: that context is a strand of the executor, or the executor itself
/// when it is a strand or an io_context's executor. An io_context is taken to be run by one thread (an implicit
/// strand, as in most programs); to run one io_context on several threads, give the graph a strand of it
/// (asio::make_strand). Operations started on the graph's context, such as from a coroutine spawned on the same
/// single-threaded io_context, take the fast path: send_data and next_event complete without suspending when they
/// can. A graph that was closed yields invalid_graph from every operation; a
/// default-constructed or moved-from graph yields not_initialized.
///
/// @code
/// peergraph::graph node(ctx.get_executor(), properties);
/// auto endpoint = co_await node.listen({asio::ip::address_v4::loopback(), 0});
/// auto id = co_await node.connect(other_endpoint);
/// co_await node.send_data(*id, chat_type, asio::buffer(line));
/// auto event = co_await node.next_event();
/// @endcode
template <class Executor = asio::any_io_executor>
class basic_graph
{
public:
  using executor_type = Executor;

  /// The graph type rebound to another executor.
  template <class Executor1>
  struct rebind_executor
  {
    using other = basic_graph<Executor1>;
  };

  /// A graph that is not initialized: every operation yields not_initialized.
  basic_graph() noexcept = default;

  /// Creates a graph node on `executor`.
  /// @throws std::system_error with peer_errc::invalid_argument when `properties.validate()` fails, its what()
  /// naming the field; use create() to get the error as a value.
  basic_graph(const executor_type& executor, graph_properties properties);

  /// Creates a graph node, or says which property is invalid: invalid_argument, whose cause() is the
  /// invalid_property (message() reads e.g. "invalid argument (peergraph.graph_properties:4 graph_properties::
  /// max_frame_size is below min_max_frame_size (1024 bytes))").
  [[nodiscard]] static expected<basic_graph, peer_error> create(const executor_type& executor,
                                                                graph_properties properties);

  basic_graph(basic_graph&& other) noexcept = default;
  /// Closes this graph (as close() does) and takes over `other`'s.
  basic_graph& operator=(basic_graph&& other) noexcept;
  basic_graph(const basic_graph&) = delete;
  basic_graph& operator=(const basic_graph&) = delete;

  /// Closes the graph: every connection is closed (the remotes see it disconnect) and pending operations complete
  /// with operation_aborted. Like every Asio I/O object, a graph must be destroyed before the execution context
  /// (io_context) of its executor: its sockets and timers belong to that context's services.
  ~basic_graph();

  /// The executor the graph was created with. Requires an initialized graph.
  [[nodiscard]] executor_type get_executor() const noexcept;

  /// True unless default-constructed or moved from.
  [[nodiscard]] bool initialized() const noexcept { return state_ != nullptr; }

  /// This node's node id: random, unique per graph object, told to every remote in the handshake. 0 when not
  /// initialized.
  [[nodiscard]] node_id local_node() const noexcept;

  /// Accepts connections from other nodes (PeerGraphListen).
  /// @param endpoint Address and port to listen on; port 0 picks a free port. IPv4 or IPv6.
  /// @par Completion Signature
  /// `void(std::error_code, asio::ip::tcp::endpoint bound)`: the endpoint actually bound.
  /// Errors: already_listening for a second listen, address_in_use, access_denied, invalid_graph after close().
  template <class CompletionToken = use_expected_t>
  auto listen(const asio::ip::tcp::endpoint& endpoint, CompletionToken&& token = {});

  /// Opens a neighbor connection to the node listening at `address` (PeerGraphConnect).
  ///
  /// Completes when the connection is established (both handshakes done) or has failed; a connection_changed event
  /// reports the same on both sides.
  /// @param address Where the other node listens.
  /// @param expected_peer When given, the remote must present this peer id, else node_not_found. Without it, any
  /// node of the same graph listening there is accepted.
  /// @par Completion Signature
  /// `void(std::error_code, connection_id)`.
  /// Errors: already_exists (a neighbor connection to that peer exists), connect_self, wrong_graph (the node there
  /// belongs to another graph), connection_refused (the remote refused), node_not_found, limit_exceeded (a limit of
  /// either node, e.g. max_connections or max_connections_per_address), timed_out (connect or handshake timeout),
  /// host_unreachable / network_unreachable from the network, protocol_error, out_of_memory.
  template <class CompletionToken = use_expected_t>
  auto connect(const asio::ip::tcp::endpoint& address, std::optional<peer_id> expected_peer = std::nullopt,
               CompletionToken&& token = {});

  /// Opens a direct (private, point-to-point) connection to `peer` at `address` (PeerGraphOpenDirectConnection).
  /// A direct connection is not a neighbor: it does not count against the one-neighbor-per-peer rule.
  /// @par Completion Signature
  /// `void(std::error_code, connection_id)`; errors as for connect().
  template <class CompletionToken = use_expected_t>
  auto open_direct_connection(const peer_id& peer, const asio::ip::tcp::endpoint& address,
                              CompletionToken&& token = {});

  /// Sends `buffers` as one message of `type` on a neighbor or direct connection (PeerGraphSendData).
  ///
  /// Payloads larger than graph_properties::copy_threshold are zero-copy: the frame header and the caller's buffer
  /// descriptors go to the kernel in one gather write; the descriptors are captured at the call (a temporary array
  /// is fine) and the bytes must stay valid until completion. Smaller payloads are copied into the connection's
  /// staging buffer and sent with the frames around them. Either way the operation completes when the transport
  /// has every byte, without waiting for the remote, and without suspending when that is at once. Messages of
  /// concurrent send_data calls on one connection never interleave and keep the order in which the calls were made.
  ///
  /// What a success promises: the message is in the kernel's send buffer, or (staged) in the connection's 64 KiB
  /// staging buffer, which is written before the executor's next turn. It does not promise that the remote received
  /// it. When a write on the connection fails (the peer is gone), the connection ends at once with that error, a
  /// connection_changed event reports it, and this and every later send_data on it fail with the error: after a
  /// peer is gone, at most what fits in the kernel's send buffer and one staging buffer is reported sent.
  /// @param id The connection.
  /// @param type The application-defined type of the data; the nil GUID is invalid_argument.
  /// @param buffers Any Asio ConstBufferSequence or `std::span<const wsabuf>`.
  /// @par Completion Signature
  /// `void(std::error_code)`. Errors: connection_not_found for an unknown or closed id, frame_too_large (nothing
  /// sent) for more than max_frame_size bytes, invalid_argument for a nil type, out_of_memory, and send errors
  /// (connection_reset, shut_down, and the same for later sends on a connection whose write failed; operation_aborted
  /// when the connection closes meanwhile: at once if nothing of the message was written yet, otherwise when the rest
  /// could not be written within graph_properties::close_linger).
  template <class ConstBufferSequence, class CompletionToken = use_expected_t>
    requires asio::is_const_buffer_sequence<ConstBufferSequence>::value &&
             (!std::is_same_v<std::decay_t<CompletionToken>, send_flags>)
  auto send_data(connection_id id, const data_type& type, const ConstBufferSequence& buffers,
                 CompletionToken&& token = {});

  /// send_data with send flags: send_flags::zero_copy sends from the caller's memory whatever the size, with kernel
  /// zero-copy where available, and completes once the kernel has released the pages; do_not_route is passed on.
  /// partial and out_of_band are invalid_argument (they would break the message framing).
  template <class ConstBufferSequence, class CompletionToken = use_expected_t>
    requires asio::is_const_buffer_sequence<ConstBufferSequence>::value
  auto send_data(connection_id id, const data_type& type, const ConstBufferSequence& buffers, send_flags flags,
                 CompletionToken&& token = {});

  /// Closes a direct connection (PeerGraphCloseDirectConnection); the remote sees it disconnect.
  /// @par Completion Signature
  /// `void(std::error_code)`. Errors: connection_not_found for an unknown id, not_direct_connection for a neighbor
  /// connection (neighbors stay until the graph closes or the remote leaves).
  template <class CompletionToken = use_expected_t>
  auto close_direct_connection(connection_id id, CompletionToken&& token = {});

  /// Lists the established connections of the given kinds (PeerGraphEnumConnections).
  /// @par Completion Signature
  /// `void(std::error_code, std::vector<connection_info>)`, ordered by connection id.
  template <class CompletionToken = use_expected_t>
  auto connections(connection_kinds kinds = connection_kinds::all, CompletionToken&& token = {});

  /// The current status flags (PeerGraphGetStatus).
  /// @par Completion Signature
  /// `void(std::error_code, graph_status)`.
  template <class CompletionToken = use_expected_t>
  auto status(CompletionToken&& token = {});

  /// Waits for the next event (PeerGraphGetEventData).
  ///
  /// Events are queued in the order they happen, up to the event queue depth; while the queue is full, connections
  /// stop reading, so the remote senders slow down through TCP backpressure and nothing is dropped.
  /// @par Completion Signature
  /// `void(std::error_code, graph_event)`. operation_aborted when the graph closes while waiting.
  template <class CompletionToken = use_expected_t>
  auto next_event(CompletionToken&& token = {});

  /// Replaces the event filter: from now on only matching events are queued (PeerGraphRegisterEvent).
  /// @par Completion Signature
  /// `void(std::error_code)`.
  template <class CompletionToken = use_expected_t>
  auto set_event_filter(event_filter filter, CompletionToken&& token = {});

  /// Closes the graph (PeerGraphClose): stops listening, closes every connection (the remotes see disconnected),
  /// completes pending operations with operation_aborted. What send_data already reported sent still goes out ahead
  /// of the close, for at most graph_properties::close_linger. Afterwards every operation yields invalid_graph.
  /// @par Completion Signature
  /// `void(std::error_code)`.
  template <class CompletionToken = use_expected_t>
  auto close(CompletionToken&& token = {});

private:
  void close_on_context() noexcept;

  std::shared_ptr<detail::graph_state<Executor>> state_;
};

/// A graph on `asio::any_io_executor`.
using graph = basic_graph<>;

} // namespace peergraph

#include <peergraph/impl/graph.hpp>
