//
// benchmarks/wire_relay.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// What the record scenarios put on the wire, measured outside the graph: a TCP relay on 127.0.0.1 that forwards every
// connection it accepts to a graph node's listener, both directions, and counts the bytes and the frames of the
// peergraph wire protocol (docs/wire.md: an 8-byte preamble, then frames with a 28-byte header) that pass through it.
// The relays run on a thread of their own (relay_thread), so that forwarding costs the graph's thread nothing but
// the system calls it makes anyway.
//
#pragma once

// First: with clang it turns on Asio 1.22's coroutine support, which must happen before any Asio header.
#include <peergraph/config.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <thread>

namespace peergraph::bench {

/// What passed through a relay: every byte, and the record and sync frames among them (header and payload).
struct wire_counts
{
  std::uint64_t bytes = 0;              ///< Every byte forwarded, preamble and handshake included.
  std::uint64_t record_frames = 0;      ///< Frames of kind record (0x05).
  std::uint64_t record_frame_bytes = 0; ///< Their bytes, header and payload.
  std::uint64_t sync_frames = 0;        ///< Frames of kind sync (0x06).
  std::uint64_t sync_frame_bytes = 0;   ///< Their bytes, header and payload.

  wire_counts& operator+=(const wire_counts& other) noexcept;
  friend wire_counts operator+(wire_counts a, const wire_counts& b) noexcept { return a += b; }
  /// The counts of what passed between two snapshots.
  friend wire_counts operator-(const wire_counts& later, const wire_counts& earlier) noexcept;
  friend bool operator==(const wire_counts&, const wire_counts&) = default;
};

/// Both directions of a relay's connections: `out` from the connecting node to the listening one, `in` back.
struct relay_counts
{
  wire_counts out;
  wire_counts in;

  /// Both directions together.
  [[nodiscard]] wire_counts both() const noexcept { return out + in; }
  friend relay_counts operator-(const relay_counts& later, const relay_counts& earlier) noexcept
  {
    return {later.out - earlier.out, later.in - earlier.in};
  }
  friend bool operator==(const relay_counts&, const relay_counts&) = default;
};

/// An io_context run by a thread of its own (pinned to `cpu`) for as long as the object lives. Destroy the relays
/// first: the destructor waits up to 10 s for their connections to end, then stops the context.
class relay_thread
{
public:
  explicit relay_thread(unsigned cpu);
  ~relay_thread();
  relay_thread(const relay_thread&) = delete;
  relay_thread& operator=(const relay_thread&) = delete;

  [[nodiscard]] asio::io_context& context() noexcept { return io_; }

private:
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::promise<void> finished_; // set when the thread's run() returns
  std::thread thread_;
};

/// A relay in front of one listener: accepts on 127.0.0.1 (an ephemeral port) and forwards each connection to
/// `target` over a connection of its own, byte for byte, with TCP_NODELAY on every socket. A half-close is passed
/// on; any other end of one side closes both. The methods may be called from any thread; the work happens on the
/// relay thread's context.
class wire_relay
{
public:
  wire_relay(relay_thread& thread, const asio::ip::tcp::endpoint& target);
  /// Closes the acceptor and every relayed connection, and waits until that is done.
  ~wire_relay();
  wire_relay(const wire_relay&) = delete;
  wire_relay& operator=(const wire_relay&) = delete;

  /// Where the nodes connect instead of `target`.
  [[nodiscard]] asio::ip::tcp::endpoint endpoint() const noexcept { return endpoint_; }

  /// The totals of every connection relayed so far, both directions. Bytes are counted when the relay has read them,
  /// before it writes them on: whatever a node has received through the relay is counted.
  [[nodiscard]] relay_counts counts() const;

  /// Closes every connection relayed now (both nodes see their connection end, as when a network fails) and waits
  /// until that is done; the relay goes on accepting.
  void cut();

  struct state;

private:
  relay_thread& thread_;
  std::shared_ptr<state> state_;
  asio::ip::tcp::endpoint endpoint_;
};

} // namespace peergraph::bench
