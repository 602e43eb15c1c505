//
// peergraph/detail/graph/connection.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// An established connection of a graph: its socket, its timers, what it holds for its peer (staged frames, promised
// bytes) and, while data flows, its reader's state. The writer (writer.hpp) and the reader (reader.hpp) act on it.
//
// A connection's life (docs/architecture.md draws it):
//   established  in the registry's table: its data is delivered and send_data finds it;
//   closing      out of the table (the graph or the application closed it, or the peer said goodbye): what was
//                promised to the peer still goes out, bounded by close_linger, and the reader drains what the peer
//                still sends until it closes its side;
//   ended        its socket closed; freed when the last handler holding it has run.
// Only the registry moves a connection out of `established`; the socket closes when the reader ends, when a write
// fails (the writer drops it), or when the linger deadline passes.
//
#pragma once

#include <peergraph/detail/block_pool.hpp>
#include <peergraph/detail/graph/context.hpp>
#include <peergraph/error.hpp>
#include <peergraph/event.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/transport_security.hpp>
#include <peergraph/wire.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace peergraph::detail {

/// Payloads at least this large are read from the socket straight into the event's buffer, past the read buffer.
inline constexpr std::size_t direct_read_threshold = 16 * 1024;
/// The read buffer of one connection, while data flows.
inline constexpr std::size_t read_buffer_size = 64 * 1024;
/// The staging buffer of one connection, while small frames flow.
inline constexpr std::size_t staging_capacity = 64 * 1024;
/// The buffer a connection at rest reads into: a small message arriving alone (a 64 B payload is a 92-byte frame,
/// 114 bytes in a TLS record) is read and decoded from it in one system call, with no read buffer. Every idle
/// connection holds one, so it stays small.
inline constexpr std::size_t arrival_buffer_size = 128;

/// The reading side of an established connection while data flows (see connection_reader). A connection at rest
/// between frames has none, just one pending read into its arrival buffer.
struct read_state
{
  explicit read_state(wire::frame_decoder&& decoder_) noexcept : decoder(std::move(decoder_)) {}

  wire::frame_decoder decoder;
  // Incoming bytes are read into one of three places, and `input` is what of them is not decoded yet: the bytes the
  // handshake read beyond its last message (once, at the start), the read buffer, or a secure channel's plaintext.
  // A connection at rest reads into its arrival buffer instead (connection::arrival).
  std::vector<std::byte> handshake_rest;
  pooled_buffer buffer;
  std::vector<std::byte> plaintext;
  std::span<const std::byte> input;
  std::optional<incoming_data> current;           // the data frame being received
  std::size_t length = 0;                         // its payload's length; its buffer grows to it as the bytes arrive
  std::size_t filled = 0;                         // payload bytes of `current` received so far
  std::uint64_t budget_needed = 0;                // what the reader waits for of the payload budget (read_wait::space)
  bool deliver_current = false;                   // `current` is delivered (else received and dropped)
  wire::frame_kind kind = wire::frame_kind::data; // data, or a record or sync frame for the frame dispatch
  bool event_ready = false;                       // `current` is complete and waits for room in the event queue
  bool drained = false;                           // the last read returned less than the buffer: the socket had no more
  std::size_t arrived = 0;                        // bytes of the connection's arrival buffer not yet taken as input
};

/// Where a connection is in its life (see the top of this file).
enum class connection_state : std::uint8_t
{
  established,
  closing,
};

/// An established connection.
template <class Context>
struct connection
{
  using socket_type = typename graph_io<Context>::socket_type;
  using timer_type = typename graph_io<Context>::timer_type;

  connection(connection_id id_, connection_kind kind_, peer_id peer, node_id node, asio::ip::tcp::endpoint address,
             socket_type&& socket_, std::unique_ptr<secure_session> session_)
      : id(id_), kind(kind_), remote_peer(std::move(peer)), remote_node(node), remote_address(address),
        socket(std::move(socket_)), session(std::move(session_)), linger(socket.get_executor()),
        keepalive(socket.get_executor())
  {
  }

  /// In the registry's table: its data is delivered, and send_data finds it.
  [[nodiscard]] bool established() const noexcept { return state == connection_state::established; }

  /// Copies bytes into the staging buffer, taking one from the pool when it holds none. The caller made room.
  void stage(std::span<const std::byte> bytes)
  {
    if (!staging)
      staging = pooled_buffer(staging_capacity);
    std::memcpy(staging.data() + staged, bytes.data(), bytes.size());
    staged += bytes.size();
  }

  connection_id id;
  connection_kind kind;
  peer_id remote_peer;
  node_id remote_node;
  asio::ip::tcp::endpoint remote_address;
  socket_type socket;
  std::unique_ptr<secure_session> session; // graph_properties::tls: every byte passes through it
  // While closing, bounds how long the goodbye may take (close_linger); while established and paused for output,
  // the stall deadline (output_stall_timeout).
  timer_type linger;
  timer_type keepalive; // pings a quiet remote, and gives up on one that stays silent
  connection_state state = connection_state::established;
  bool heard = false;               // something arrived since the keepalive timer last looked
  bool pinged = false;              // a ping went out and nothing has arrived since
  bool incoming = false;            // accepted by this node: counts against max_connections_per_address
  bool output_paused = false;       // its reader waits for the peer to take what is promised (max_connection_output)
  bool waiting_output_room = false; // the record layer waits to send more of a synchronisation
  std::size_t promised = 0; // bytes of promised sends (connection_writer::send_promised) the socket has not taken
  // Small frames copied here while no send is in progress, and written together once per executor turn (or when
  // full): a coroutine awaiting each send_data still gets one system call per many messages.
  // The buffer is pooled and held only while frames wait in it, so an idle connection holds none.
  pooled_buffer staging;
  std::size_t staged = 0;
  bool flush_posted = false;          // a flush is posted, or deferred to the end of the current reader turn
  std::unique_ptr<read_state> reader; // null while at rest between frames with nothing read
  // What the pending read of a connection at rest receives (see connection_reader::wait_readable).
  std::array<std::byte, arrival_buffer_size> arrival{};
};

/// What the writer and the reader tell the layers above them about a connection (the registry implements it).
template <class Context>
class connection_observer
{
public:
  /// `c` ended on its own (its reader reached the end of the stream or bad input, a write failed, or its peer took
  /// nothing for too long), and its socket is closed or closing: unless it was closing already, the registry takes
  /// it out of the graph and reports `reason`.
  virtual void connection_ended(const std::shared_ptr<connection<Context>>& c, const peer_error& reason) = 0;

  /// The peer of `c` took enough of what was promised to it: the paused reader of `c` goes on.
  virtual void output_resumed(const std::shared_ptr<connection<Context>>& c) = 0;

  /// `c` waited for room for the node's own output (connection::waiting_output_room), and has it now.
  virtual void output_room(const std::shared_ptr<connection<Context>>& c) = 0;

protected:
  ~connection_observer() = default;
};

} // namespace peergraph::detail
