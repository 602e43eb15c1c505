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
#include <peergraph/graph_properties.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/membership.hpp>
#include <peergraph/presence.hpp>
#include <peergraph/record.hpp>
#include <peergraph/send.hpp>
#include <peergraph/transport_security.hpp>
#include <peergraph/use_expected.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace peergraph {

namespace detail {
template <class Executor>
class graph_registry;
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
  /// with operation_aborted. The close runs on the graph's context: at once when destroyed there, else when the
  /// context next runs, or, on a context stopped for good, when the context is destroyed (which destroys the pending
  /// operations' handlers rather than calling them, as it does every handler). Like every Asio I/O object, a graph
  /// must be destroyed before the execution context (io_context) of its executor: its sockets and timers belong to
  /// that context's services.
  ~basic_graph();

  /// The executor the graph was created with. Requires an initialized graph.
  [[nodiscard]] executor_type get_executor() const noexcept;

  /// True unless default-constructed or moved from.
  [[nodiscard]] bool initialized() const noexcept { return state_ != nullptr; }

  /// This node's node id: random, unique per graph object, told to every remote in the handshake. 0 when not
  /// initialized.
  [[nodiscard]] node_id local_node() const noexcept;

  /// Now in peer time (UniversalTimeToPeerTime): the clock in which records carry their times, and in which a
  /// record's `expires` is set. It is this node's clock (graph_properties::clock), moved by the peer time of its first
  /// neighbor when it joined a graph (graph_start::join), so that nodes whose clocks differ agree on when records
  /// expire. Any thread. Requires an initialized graph.
  [[nodiscard]] record_time peer_time() const;

  /// Accepts connections from other nodes (PeerGraphListen).
  /// @param endpoint Address and port to listen on; port 0 picks a free port. IPv4 or IPv6.
  /// @par Completion Signature
  /// `void(std::error_code, asio::ip::tcp::endpoint bound)`: the endpoint actually bound.
  /// Errors: already_listening for a second listen, address_in_use, access_denied, invalid_graph after close().
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once. close() stops listening.
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
  /// host_unreachable / network_unreachable from the network, unsupported_version (the node there does not carry
  /// records: docs/wire.md, "Hello payload"), protocol_error, out_of_memory.
  /// @par Per-Operation Cancellation
  /// Terminal cancellation through the token's cancellation slot (e.g. a timeout with awaitable operators) stops the
  /// TCP connect or the handshake where it is: the operation completes with operation_aborted, a connection_changed
  /// failed event says the same, and whatever the attempt held (its socket, a connection slot, the neighbor claim) is
  /// given back. A cancellation after the connection was established has no effect.
  template <class CompletionToken = use_expected_t>
  auto connect(const asio::ip::tcp::endpoint& address, std::optional<peer_id> expected_peer = std::nullopt,
               CompletionToken&& token = {});

  /// Opens a neighbor connection to a node that listens at one of `addresses`, tried in order until one connection
  /// is established (failover: PeerGraphConnect with a node's several PEER_ADDRESSes, as nodes() lists them).
  /// @param addresses One to 16 addresses, copied at the call.
  /// @param expected_peer As for connect(address).
  /// @par Completion Signature
  /// `void(std::error_code, connection_id)`. Each address that fails makes a connection_changed failed event with
  /// that address (remote_address) and its reason; the operation's error is the last address's, or the first that
  /// another address would not change (already_exists, connect_self, operation_aborted, invalid_graph). Errors
  /// also: invalid_argument (no address, or more than 16), and those of connect(address).
  /// @par Per-Operation Cancellation
  /// As for connect(address): a cancellation stops the attempt under way and tries no further address.
  template <class CompletionToken = use_expected_t>
  auto connect(std::span<const asio::ip::tcp::endpoint> addresses, std::optional<peer_id> expected_peer = std::nullopt,
               CompletionToken&& token = {});

  /// Opens a neighbor connection to the node at host name `host` and service (port) `service`: resolved with Asio's
  /// resolver (getaddrinfo, off the graph's context), then its addresses tried in order as connect(addresses) does
  /// (at most 16).
  /// @param host A host name or an address literal, e.g. "chat.example.net", "127.0.0.1", "::1".
  /// @param service A port number or a service name, e.g. "5000".
  /// @param expected_peer As for connect(address).
  /// @par Completion Signature
  /// `void(std::error_code, connection_id)`. Errors: invalid_address when the name does not resolve (its cause() is
  /// the resolver's error, e.g. asio::error::host_not_found), and those of connect(addresses).
  /// @par Per-Operation Cancellation
  /// As for connect(addresses), once the name is resolved; the resolution itself runs to its end.
  template <class CompletionToken = use_expected_t>
  auto connect(std::string_view host, std::string_view service, std::optional<peer_id> expected_peer = std::nullopt,
               CompletionToken&& token = {});

  /// Opens a direct (private, point-to-point) connection to `peer` at `address` (PeerGraphOpenDirectConnection).
  /// A direct connection is not a neighbor: it does not count against the one-neighbor-per-peer rule.
  /// @par Completion Signature
  /// `void(std::error_code, connection_id)`; errors as for connect().
  /// @par Per-Operation Cancellation
  /// As for connect().
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
  /// @par Per-Operation Cancellation
  /// Any type, through the token's cancellation slot, while the message waits for its turn behind the connection's
  /// other sends or for room in the socket: one that has not written anything completes with operation_aborted and
  /// sends nothing; one cancelled after part of its frame went out ends the connection (its stream could not go on),
  /// reported by connection_changed. A send that completed at once (staged, or taken whole by the kernel) is done.
  template <class ConstBufferSequence, class CompletionToken = use_expected_t>
    requires asio::is_const_buffer_sequence<ConstBufferSequence>::value &&
             (!std::is_same_v<std::decay_t<CompletionToken>, send_flags>)
  auto send_data(connection_id id, const data_type& type, const ConstBufferSequence& buffers,
                 CompletionToken&& token = {});

  /// send_data with send flags: send_flags::zero_copy sends from the caller's memory whatever the size, with kernel
  /// zero-copy where available, and completes once the kernel has released the pages; do_not_route is passed on.
  /// partial and out_of_band are invalid_argument (they would break the message framing).
  /// @par Per-Operation Cancellation
  /// As above; a zero-copy send whose bytes the kernel still reads (waiting for their release) cannot be cut short:
  /// only the connection's end completes it early, with operation_aborted (within close_linger of a close).
  template <class ConstBufferSequence, class CompletionToken = use_expected_t>
    requires asio::is_const_buffer_sequence<ConstBufferSequence>::value
  auto send_data(connection_id id, const data_type& type, const ConstBufferSequence& buffers, send_flags flags,
                 CompletionToken&& token = {});

  /// Closes a direct connection (PeerGraphCloseDirectConnection); the remote sees it disconnect.
  /// @par Completion Signature
  /// `void(std::error_code)`. Errors: connection_not_found for an unknown id, not_direct_connection for a neighbor
  /// connection (neighbors stay until the graph closes or the remote leaves).
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once; close() ends whatever it started.
  template <class CompletionToken = use_expected_t>
  auto close_direct_connection(connection_id id, CompletionToken&& token = {});

  /// Lists the established connections of the given kinds (PeerGraphEnumConnections).
  /// @par Completion Signature
  /// `void(std::error_code, std::vector<connection_info>)`, ordered by connection id.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once; close() ends whatever it started.
  template <class CompletionToken = use_expected_t>
  auto connections(connection_kinds kinds = connection_kinds::all, CompletionToken&& token = {});

  /// The current status flags (PeerGraphGetStatus).
  /// @par Completion Signature
  /// `void(std::error_code, graph_status)`.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once; close() ends whatever it started.
  template <class CompletionToken = use_expected_t>
  auto status(CompletionToken&& token = {});

  /// Waits for the next event (PeerGraphGetEventData).
  ///
  /// Events are queued in the order they happen, up to the event queue depth; while the queue is full, connections
  /// stop reading, so the remote senders slow down through TCP backpressure and nothing is dropped.
  /// @par Completion Signature
  /// `void(std::error_code, graph_event)`. operation_aborted when the graph closes while waiting.
  /// @par Per-Operation Cancellation
  /// None: a waiting next_event completes with the next event, or with operation_aborted when the graph closes.
  template <class CompletionToken = use_expected_t>
  auto next_event(CompletionToken&& token = {});

  /// Replaces the event filter: from now on only matching events are queued (PeerGraphRegisterEvent).
  /// @par Completion Signature
  /// `void(std::error_code)`.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once; close() ends whatever it started.
  template <class CompletionToken = use_expected_t>
  auto set_event_filter(event_filter filter, CompletionToken&& token = {});

  /// Adds a record to the graph (PeerGraphAddRecord): it is stored here and flooded to every node of the graph
  /// over the neighbor connections, each of which reports record_changed (added) once.
  ///
  /// The application sets `r.type` (not nil), `r.expires` (after now), and optionally `r.attributes`, `r.data` and
  /// `r.security_data` (graph_properties::record_security fills it in when set); the graph sets the id, version 1,
  /// creator and modifier (this node's peer id) and the times, in peer time (peer_time()).
  /// @param r The record.
  /// @par Completion Signature
  /// `void(std::error_code, record_id)`: the new record's id. Errors: invalid_argument (nil type, expiry not in the
  /// future), invalid_attributes (see validate_attributes), max_record_size_exceeded (record::size() above
  /// graph_properties::max_record_size), limit_exceeded (max_records or max_record_bytes reached), graph_not_ready
  /// (a node that joins, before its first synchronisation), record_store_failed (graph_properties::store could not
  /// write it; nothing changed), the record security's error, invalid_graph.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once.
  template <class CompletionToken = use_expected_t>
  auto add_record(record r, CompletionToken&& token = {});

  /// Replaces a record of this peer with a new version (PeerGraphUpdateRecord): the version goes up by one, the data,
  /// attributes and expiry are `r`'s, and the version is flooded like an added record (record_changed: updated).
  /// @param r The record as get_record gave it, changed: same id and type; its expiry may only grow.
  /// @par Completion Signature
  /// `void(std::error_code)`. Errors: record_not_found (unknown, deleted or expired), access_denied (a record of
  /// another peer: only the creator may update it), invalid_argument (another type, an earlier expiry, an expiry
  /// not in the future), invalid_attributes, max_record_size_exceeded, limit_exceeded, graph_not_ready,
  /// record_store_failed, the record security's error, invalid_graph.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once.
  template <class CompletionToken = use_expected_t>
  auto update_record(record r, CompletionToken&& token = {});

  /// Deletes a record of this peer everywhere (PeerGraphDeleteRecord): a tombstone replaces it on every node until
  /// the record's expiry, so that no older copy brings it back (record_changed: deleted).
  /// @par Completion Signature
  /// `void(std::error_code)`. Errors: record_not_found, access_denied (a record of another peer), graph_not_ready,
  /// record_store_failed, the record security's error, invalid_graph.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once.
  template <class CompletionToken = use_expected_t>
  auto delete_record(const record_id& id, CompletionToken&& token = {});

  /// The record `id` as this node holds it (PeerGraphGetRecord).
  /// @par Completion Signature
  /// `void(std::error_code, record)`. Errors: record_not_found (unknown, deleted or expired), graph_not_ready,
  /// invalid_graph.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once.
  template <class CompletionToken = use_expected_t>
  auto get_record(const record_id& id, CompletionToken&& token = {});

  /// The records this node holds, of `type` when given (PeerGraphEnumRecords), ordered by type, then id. Deleted and
  /// expired records are not listed.
  /// @par Completion Signature
  /// `void(std::error_code, std::vector<record>)`. Errors: graph_not_ready, invalid_graph.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once.
  template <class CompletionToken = use_expected_t>
  auto records(std::optional<data_type> type = std::nullopt, CompletionToken&& token = {});

  /// The records this node holds that `query` matches (PeerGraphSearchRecords), ordered by type, then id.
  /// @par Completion Signature
  /// `void(std::error_code, std::vector<record>)`. Errors: invalid_search (record_query::validate), graph_not_ready,
  /// invalid_graph.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once.
  template <class CompletionToken = use_expected_t>
  auto search_records(record_query query, CompletionToken&& token = {});

  /// Writes every record and tombstone this node holds to the file `path` (PeerGraphExportDatabase), replacing it,
  /// for import_records() of a node with the same graph and peer id. Like PeerGraphExportDatabase, only before the
  /// graph listens or connects. The file is written on the graph's context, which waits for it.
  /// @par Completion Signature
  /// `void(std::error_code)`. Errors: graph_in_use (the graph listens, connects or is connected),
  /// record_store_failed (the file cannot be written), invalid_graph.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once.
  template <class CompletionToken = use_expected_t>
  auto export_records(std::filesystem::path path, CompletionToken&& token = {});

  /// Takes the records of a file export_records() wrote (PeerGraphImportDatabase), as if a neighbor had sent them:
  /// each version is checked (with graph_properties::record_security when set), kept when it supersedes what is
  /// held, and reported with record_changed; expired ones are skipped. Only before the graph listens or connects.
  /// @par Completion Signature
  /// `void(std::error_code, std::size_t)`: how many versions were kept. Errors: graph_in_use, invalid_graph (the
  /// file is another graph's or another peer's), record_store_failed (unreadable, or not an export file), and what a
  /// neighbor's version can fail with (invalid_record, invalid_attributes, max_record_size_exceeded, limit_exceeded):
  /// the versions before the failing one are kept.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once.
  template <class CompletionToken = use_expected_t>
  auto import_records(std::filesystem::path path, CompletionToken&& token = {});

  /// Publishes this node's presence in the graph, or withdraws it (PeerGraphSetPresence): a presence record
  /// (<peergraph/presence.hpp>) says which node this is, where it listens and its attributes (set_node_attributes),
  /// and every node lists it in nodes() and reports node_changed. The node refreshes it every third of
  /// graph_properties::presence_lifetime, publishes the address it listens at once listen() bound it (unless it is
  /// unspecified, 0.0.0.0 or ::, which no other node could reach), and deletes it when withdrawn or closed. A joining
  /// node publishes it once synchronised.
  /// @param present Whether to publish (true) or withdraw (false).
  /// @par Completion Signature
  /// `void(std::error_code)`. Errors: record_store_failed, the record security's error, out_of_memory, invalid_graph.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once.
  template <class CompletionToken = use_expected_t>
  auto set_presence(bool present, CompletionToken&& token = {});

  /// Sets the attributes this node's presence publishes (PeerGraphSetNodeAttributes): text for the application, e.g.
  /// a status line or XML, at most max_node_attributes_size bytes. Published at once when the presence is.
  /// @par Completion Signature
  /// `void(std::error_code)`. Errors: invalid_argument (too long), set_presence's, invalid_graph.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once.
  template <class CompletionToken = use_expected_t>
  auto set_node_attributes(std::string attributes, CompletionToken&& token = {});

  /// The nodes present in the graph (PeerGraphEnumNodes): every node whose presence record this node holds, this
  /// one's included when it published it; of `peer` only when given (a peer may run several nodes). Ordered by peer
  /// id, then node id.
  /// @par Completion Signature
  /// `void(std::error_code, std::vector<node_info>)`. Errors: graph_not_ready (a joining node before its first
  /// synchronisation), invalid_graph.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once.
  template <class CompletionToken = use_expected_t>
  auto nodes(std::optional<peer_id> peer = std::nullopt, CompletionToken&& token = {});

  /// Closes the graph (PeerGraphClose): stops listening, closes every connection (the remotes see disconnected),
  /// completes pending operations with operation_aborted. What send_data already reported sent still goes out ahead
  /// of the close, for at most graph_properties::close_linger. Afterwards every operation yields invalid_graph.
  /// @par Completion Signature
  /// `void(std::error_code)`.
  /// @par Per-Operation Cancellation
  /// None: it completes on the graph's context at once (the goodbyes it starts go on, bounded by close_linger).
  template <class CompletionToken = use_expected_t>
  auto close(CompletionToken&& token = {});

private:
  using registry_type = detail::graph_registry<Executor>;

  void close_on_context() noexcept;

  std::shared_ptr<registry_type> state_;
};

/// A graph on `asio::any_io_executor`.
using graph = basic_graph<>;

} // namespace peergraph

#include <peergraph/impl/graph.hpp>
