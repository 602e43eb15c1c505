//
// benchmarks/harness.hpp
// ~~~~~~~~~~~~~~~~~~~~~~
// What every contender shares: the frame layout and payload pattern, the verifying receiver, pinned threads,
// loopback connections, memory snapshots, and the table that contenders register their measurements in.
//
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace peergraph::bench {

using bench_clock = std::chrono::steady_clock;

/// Reports a failed run (lost, reordered or corrupted data, an I/O error) on stderr and ends the process with
/// status 2, whichever thread calls it.
/// @param what what went wrong.
[[noreturn]] void fail(std::string_view what);

/// Like fail(), with the text of the current errno appended.
/// @param what the call that failed.
[[noreturn]] void fail_errno(std::string_view what);

// ---------------------------------------------------------------------------------------------------------------
// Frame layout, the same for every contender: a header made of the 16-byte type GUID and the payload length
// (32-bit little endian), then the payload.

inline constexpr std::size_t guid_bytes = 16;
inline constexpr std::size_t header_bytes = guid_bytes + 4;
using guid = std::array<std::uint8_t, guid_bytes>;
using frame_header = std::array<std::uint8_t, header_bytes>;

/// The type GUID of benchmark data frames.
inline constexpr guid data_type{0x6f, 0x1d, 0x3c, 0x52, 0x8e, 0x0b, 0x4a, 0x71,
                                0x9d, 0x27, 0x5b, 0xc4, 0x11, 0xe8, 0x30, 0xa6};

/// The type GUID of the frame that ends a stream; its payload is the number of data frames sent (64-bit LE).
inline constexpr guid end_type{0x0e, 0x4f, 0x9a, 0x21, 0x77, 0xd3, 0x45, 0x18,
                               0xb6, 0x02, 0xee, 0x5c, 0x49, 0x8a, 0x13, 0xf0};

inline constexpr std::size_t end_payload_bytes = 8;
using end_frame = std::array<std::uint8_t, header_bytes + end_payload_bytes>;

/// Builds a frame header.
/// @param type the frame's type GUID.
/// @param payload_bytes the length of the payload that follows.
/// @return the header bytes.
frame_header make_header(const guid& type, std::uint32_t payload_bytes);

/// Builds the end frame of a stream that carried `frames` data frames.
end_frame make_end_frame(std::uint64_t frames);

// ---------------------------------------------------------------------------------------------------------------
// Payloads are cut from one pseudo-random pattern: data frame n carries the bytes at offset n % pattern_period.
// Consecutive frames never carry the same bytes, so a receiver that compares every byte with what frame n must
// hold detects loss, duplication, reordering and corruption, and senders send straight from the pattern (no copy).

/// A prime, so that the offsets of nearby frames all differ.
inline constexpr std::size_t pattern_period = 4093;

namespace detail {
inline const std::uint8_t* pattern = nullptr;
} // namespace detail

/// Fills the pattern once, long enough for payloads of up to `max_payload_bytes`.
void prepare_pattern(std::size_t max_payload_bytes);

/// The payload of data frame `seq` (as many bytes as the scenario's payload length).
inline const std::uint8_t* payload_of(std::uint64_t seq) noexcept
{
  return detail::pattern + seq % pattern_period;
}

/// What a sender sends for one scenario.
struct frame_layout
{
  std::size_t payload_bytes = 0; ///< Payload length of every data frame.
  std::size_t pieces = 1;        ///< Buffers the payload is handed over in (gather: 256); the header is one more.
  frame_header header{};         ///< The header of every data frame.

  /// Bytes per payload piece.
  std::size_t piece_bytes() const noexcept { return payload_bytes / pieces; }
  /// Header plus payload.
  std::size_t frame_bytes() const noexcept { return header_bytes + payload_bytes; }
};

/// Checks a received byte stream against the frames a sender must have sent, byte by byte and in order, accepting
/// it in pieces of any size. Any difference ends the run through fail().
class frame_checker
{
public:
  /// @param payload_bytes the payload length of every data frame.
  explicit frame_checker(std::size_t payload_bytes);

  /// Consumes the next `size` bytes of the stream.
  void feed(const void* data, std::size_t size);

  /// Data frames verified so far.
  std::uint64_t frames() const noexcept { return frames_; }

  /// Whether the end frame has arrived (and matched the number of data frames).
  bool ended() const noexcept { return state_ == state::done; }

private:
  enum class state
  {
    header,
    payload,
    end_payload,
    done
  };

  frame_header data_header_;
  frame_header end_header_;
  std::size_t payload_bytes_;
  state state_ = state::header;
  std::size_t have_ = 0; // bytes of the current header or payload seen so far
  std::uint64_t frames_ = 0;
  frame_header header_buf_{};
  std::array<std::uint8_t, end_payload_bytes> end_buf_{};
};

// ---------------------------------------------------------------------------------------------------------------
// Runs.

/// When a sender stops: after a fixed number of data frames, or once a duration has passed. The clock is read
/// only every `check_every` frames so that it costs nothing measurable per small frame.
class send_limit
{
public:
  /// Stops after `count` frames.
  static send_limit frames(std::uint64_t count);
  /// Stops once `seconds` have passed since start(); reads the clock every `check_every` frames (a power of two).
  static send_limit duration(double seconds, std::uint64_t check_every);

  /// Starts the clock; called when the measured run begins.
  void start();

  /// Whether the sender, having sent `sent` frames, sends another.
  bool more(std::uint64_t sent) const noexcept
  {
    if (count_ != 0) {
      if (sent < count_) {
        if (progress_ != nullptr)
          progress_->store(sent, std::memory_order_relaxed);
        return true;
      }
      sender_finished();
      return false;
    }
    if ((sent & check_mask_) != 0)
      return true;
    return bench_clock::now() < deadline_;
  }

private:
  /// The end of a counted sender's data frames, which ends the steady window of the allocation count.
  static void sender_finished() noexcept;

  std::uint64_t count_ = 0;
  std::atomic<std::uint64_t>* progress_ = nullptr; // the frames sent so far, while the allocation count needs it
  std::uint64_t check_mask_ = 0;
  bench_clock::duration length_{};
  bench_clock::time_point deadline_{};
};

/// One invocation's parameters, filled by the harness from the measurement's name and the command line.
struct run_spec
{
  std::string measure;                      ///< small_msgs_64, ..., rtt_64, rtt_64_one_thread, idle_conn, record_*.
  frame_layout layout;                      ///< The frames (stream and round-trip measurements).
  std::size_t receive_buffer_bytes = 65536; ///< Read size of receivers that read into a buffer.
  std::uint64_t count = 0;                  ///< Frames, round trips or connections; 0 means: run for `seconds`.
  double seconds = 0;                       ///< Length of a timed stream run.
  std::uint64_t warmup = 0;                 ///< Untimed round trips before the timed ones.

  /// The send limit for a stream run.
  send_limit limit() const;
};

/// What one invocation reports: scenario values, and details that explain them.
struct measurement
{
  std::vector<std::pair<std::string, double>> values;
  std::vector<std::pair<std::string, double>> details;
};

inline constexpr unsigned sender_cpu = 0;
inline constexpr unsigned receiver_cpu = 1;

/// Pins the calling thread to one CPU (modulo the CPUs present), so that runs do not migrate between cores.
void pin_current_thread(unsigned cpu);

/// Result of a one-direction stream.
struct stream_result
{
  std::uint64_t frames = 0; ///< Data frames sent and verified.
  double seconds = 0;       ///< From the start until the receiver verified the end frame.
};

/// Runs a one-direction stream: `sender` on a thread pinned to sender_cpu, `receiver` on one pinned to
/// receiver_cpu, released together. The sender sends data frames while `limit` allows, then the end frame, and
/// returns how many data frames it sent; the receiver verifies everything up to the end frame and returns how many
/// data frames it verified. Fails the run if they disagree.
stream_result run_stream(send_limit& limit, const std::function<std::uint64_t()>& sender,
                         const std::function<std::uint64_t()>& receiver);

/// The scenario value for a stream: frames/s, or Gbit/s of payload for large_msgs_1m.
measurement stream_measurement(const run_spec& spec, stream_result result);

/// Runs a round-trip test: `client` pinned to sender_cpu sends spec.warmup + spec.count requests one at a time,
/// each followed by its verified reply, then the end frame, and returns the duration of every round trip; `server`
/// pinned to receiver_cpu verifies each request, replies to it with the data frame of the same number, and returns
/// the number of requests at the end frame. Reports rtt_64_p50 and rtt_64_p99 in microseconds over the timed ones.
measurement run_rtt(const run_spec& spec, const std::function<std::vector<bench_clock::duration>()>& client,
                    const std::function<std::uint64_t()>& server);

/// Heap bytes in use (all malloc arenas) and resident set size.
struct memory_usage
{
  std::uint64_t heap_bytes = 0;
  std::uint64_t resident_bytes = 0;

  /// Takes a snapshot.
  static memory_usage now();
};

/// The idle_conn_bytes value: heap growth per connection between the two snapshots (RSS growth as a detail).
measurement idle_measurement(const memory_usage& before, const memory_usage& after, std::uint64_t connections);

/// A listening TCP socket on 127.0.0.1 with an ephemeral port, for making connected pairs.
class loopback_listener
{
public:
  loopback_listener();
  ~loopback_listener();
  loopback_listener(const loopback_listener&) = delete;
  loopback_listener& operator=(const loopback_listener&) = delete;

  /// A connected pair of blocking TCP sockets (connecting end, accepted end), both with TCP_NODELAY.
  std::pair<int, int> connect_pair();

private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

/// One connected pair of blocking loopback TCP sockets with TCP_NODELAY (sender end, receiver end).
std::pair<int, int> tcp_pair();

/// Closes a file descriptor, ignoring -1.
void close_fd(int fd) noexcept;

// ---------------------------------------------------------------------------------------------------------------
// The table of contenders.

/// Runs one measurement of one contender.
using measure_fn = measurement (*)(const run_spec&);

/// A contender: its name and the measurements it implements, by measurement name.
struct contender
{
  std::string_view name;
  std::vector<std::pair<std::string_view, measure_fn>> measures;
};

/// Adds a contender to the table during static initialisation; each contender file defines one. A second
/// registration under a name already in the table adds its measurements to that contender.
struct contender_registration
{
  explicit contender_registration(contender entry);
};

/// Whether this is the allocation-counting program, which counts the allocations of its own process only (a
/// contender that runs its sides as two processes keeps them in one there).
bool counting_allocations() noexcept;

/// Installs the heap allocation counter of the allocation-counting build during static initialisation.
struct allocation_counter_registration
{
  explicit allocation_counter_registration(std::uint64_t (*allocations)() noexcept);
};

} // namespace peergraph::bench
