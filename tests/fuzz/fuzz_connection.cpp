//
// tests/fuzz/fuzz_connection.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// libFuzzer target: a whole graph node fed arbitrary bytes over TCP. One node (peergraph::graph on an io_context,
// listening on 127.0.0.1) serves every input: a raw TCP client connects, writes the input, ends the connection, and
// the node must stay healthy.
//
// Input: byte 0 chooses
//   bits 0-2  a valid prefix built with the encoders, so that inputs get past the handshake: nothing, the preamble,
//             preamble + hello, preamble + hello + accept (neighbor, or direct), the same with another graph id or
//             another expected peer (refused), or preamble + hello + accept followed by frames built from the rest
//             of the input (structured: data of 0..255 or 16K..80K bytes, ping, pong, close, raw bytes);
//   bits 3-4  how the client ends: shutdown of its sending side (twice as likely), a reset (RST) once the node has
//             read everything, or staying silent for a while first (the node's handshake timeout is shorter);
//   bits 5-7  how the stream is cut into writes, the node running between them (0: one write).
// The rest is the stream after the prefix. The node filters data by type (one client type is never delivered), has
// a short event queue (its readers wait for room often), sends two messages on every connection it establishes, and
// closes a connection when data of close_request_type arrives on it (a direct one; a neighbor one refuses).
//
// Checked, per input: the node never sends a byte before a valid hello arrived, introduces itself (its hello) only to a
// member of its graph that looks for it, and what it sends decodes without error; it establishes the connection only
// after the client's accept, and then delivers exactly the client's complete data frames of the types it accepts, in
// order (a prefix of them after a reset or its own close), and answers pings with the same tokens, in order; it closes
// the connection once the client has ended it, reports the end (connected, then disconnected, never data outside),
// completes its own sends and closes, and lists only its healthy connection afterwards. Then a well-behaved peer on a
// connection that stays open across all inputs exchanges one message each way with the node, and every few thousand
// inputs a fresh graph connects, sends and leaves. A breach aborts (a crash for libFuzzer), as does anything that does
// not finish within a few seconds.
//
#include <peergraph/graph.hpp>

#include "fuzz_support.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using namespace peergraph;
using tcp = asio::ip::tcp;

/// Longest any step of one input may take before the node counts as hung.
constexpr std::chrono::milliseconds step_limit{5000};
/// The node's handshake timeout (short, so that silent clients cost little), and how long a silent client waits for
/// the node to close a connection whose handshake did not complete (longer).
constexpr std::chrono::milliseconds node_handshake_timeout{20};
constexpr std::chrono::milliseconds silent_client_wait{250};
/// A step slower than this is reported (the machine may be busy; step_limit is the real bound).
constexpr std::chrono::milliseconds slow_step{1000};
/// The node's maximum frame size: large enough for payloads that the node reads past its read buffer.
constexpr std::uint64_t node_max_frame_size = 64 * 1024;
/// A fresh graph checks that the node still accepts connections every this many inputs.
constexpr std::uint64_t fresh_peer_interval = 2000;
/// Largest stream the structured prefix builds from one input.
constexpr std::size_t max_structured_stream = 512 * 1024;
/// Most writes one stream is cut into.
constexpr std::size_t max_pieces = 64;

constexpr std::string_view node_graph = "fuzz-graph";
constexpr std::string_view node_peer = "fuzz-node";
constexpr std::string_view client_peer = "fuzz-client";
constexpr std::uint64_t client_node = 0x0123456789ABCDEFULL;

constexpr data_type probe_type = data_type::from_string("5e1f0c2a-7d3b-4c8e-9a6f-1b2c3d4e5f60");
constexpr data_type node_type = data_type::from_string("6f2a1d3b-8e4c-4d9f-8b7a-2c3d4e5f6071");
constexpr std::array<data_type, 4> client_types{data_type::from_string("0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"),
                                                data_type::from_string("aa1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"),
                                                data_type::from_string("00000000-0000-0000-0000-000000000001"),
                                                data_type::from_string("ffffffff-ffff-ffff-ffff-ffffffffffff")};

/// Data of this type asks the node to close the connection it arrived on (close_direct_connection; refused on a
/// neighbor connection), so that the client's bytes decide when the node closes in the middle of everything.
constexpr data_type close_request_type = client_types[2];
/// The node's event filter: its data is delivered, the rest (client_types[3], any type the fuzzer makes up) skipped.
constexpr std::array<data_type, 5> node_data_types{client_types[0], client_types[1], client_types[2],
                                                   data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da"),
                                                   probe_type};
/// The node's event queue is short, so that its readers often wait for room (and the client for the readers).
constexpr std::size_t node_event_queue_depth = 4;

bool delivered_type(const data_type& type)
{
  return std::find(node_data_types.begin(), node_data_types.end(), type) != node_data_types.end();
}

[[noreturn]] void hung(const char* what)
{
  std::fprintf(stderr, "fuzz_connection: %s did not happen within %lld ms\n", what,
               static_cast<long long>(step_limit.count()));
  std::fflush(stderr);
  std::abort();
}

/// A data frame as received or expected.
struct frame
{
  data_type type;
  std::vector<std::byte> bytes;

  friend bool operator==(const frame&, const frame&) = default;
};

/// What the node's side of the connection should see of a stream: decoded with the node's own limits.
struct expectation
{
  bool hello = false;      // a valid hello came through
  bool membership = false; // a membership frame came first: the node (of an open graph) refuses not_authenticated
  bool tls = false;        // the stream begins like a TLS handshake: the node (without TLS) refuses not_authenticated
  bool accepted = false;   // the client accepted
  wire::hello_message client_hello;
  std::vector<frame> frames;                // complete data frames of the types the node delivers, in order
  std::optional<std::size_t> close_request; // the index in frames of the first close request
  std::optional<std::size_t> first_record;  // the number of frames before the first record frame
  std::vector<std::uint64_t> pings;
};

expectation expect(std::span<const std::byte> stream)
{
  expectation e;
  e.tls = stream.size() >= 2 && stream[0] == std::byte{0x16} && stream[1] == std::byte{0x03};
  wire::frame_decoder decoder(node_max_frame_size);
  std::optional<frame> current;
  while (!stream.empty()) {
    auto r = decoder.decode(stream);
    if (!r)
      break;
    stream = stream.subspan(r->consumed);
    switch (r->event) {
    case wire::decode_event::membership:
      e.membership = true; // the node stops here: nothing after it counts
      return e;
    case wire::decode_event::hello:
      e.hello = true;
      e.client_hello = decoder.hello();
      break;
    case wire::decode_event::accept:
      e.accepted = true;
      break;
    case wire::decode_event::data_header:
      if (r->kind == wire::frame_kind::record || r->kind == wire::frame_kind::sync) {
        // A record or sync frame: a direct connection ends at its header; on a neighbor connection the node takes a
        // valid one and ends the connection at an invalid one (a sync message out of turn too), so what follows may
        // or may not be delivered.
        if (e.client_hello.kind != connection_kind::neighbor)
          return e;
        if (!e.first_record)
          e.first_record = e.frames.size();
        current.reset();
        break;
      }
      current = frame{r->type, {}};
      break;
    case wire::decode_event::data_payload:
      if (current)
        current->bytes.insert(current->bytes.end(), r->payload.begin(), r->payload.end());
      break;
    case wire::decode_event::ping:
      e.pings.push_back(r->token);
      break;
    default:
      break;
    }
    if (r->frame_complete && current) {
      if (delivered_type(current->type)) {
        if (current->type == close_request_type && !e.close_request)
          e.close_request = e.frames.size();
        e.frames.push_back(std::move(*current));
      }
      current.reset();
    }
  }
  return e;
}

/// Whether a client with `hello` may be a neighbor: docs/wire.md, "Hello payload" (features).
bool carries_records(const wire::hello_message& hello)
{
  return hello.kind != connection_kind::neighbor || (hello.features & wire::feature_records) != 0;
}

/// The position-dependent filler of large structured payloads.
std::byte filler(std::size_t offset, std::uint8_t seed)
{
  return static_cast<std::byte>((offset * 131U + seed) >> 3U);
}

void append(std::vector<std::byte>& out, std::span<const std::byte> bytes)
{
  out.insert(out.end(), bytes.begin(), bytes.end());
}

/// Builds valid-looking frames from `body`: each operation byte picks a frame kind, the next bytes its contents.
void append_structured(std::vector<std::byte>& out, std::span<const std::byte> body)
{
  std::size_t at = 0;
  const auto next = [&]() -> std::uint8_t {
    return at < body.size() ? std::to_integer<std::uint8_t>(body[at++]) : std::uint8_t{0};
  };
  const auto take = [&](std::size_t n) {
    const auto piece = body.subspan(std::min(at, body.size()), std::min(n, body.size() - std::min(at, body.size())));
    at += piece.size();
    return piece;
  };
  while (at < body.size() && out.size() < max_structured_stream) {
    const std::uint8_t op = next();
    switch (op % 8U) {
    case 0:
    case 1:
    case 2: { // a small data frame, payload from the input (zero bytes where it runs out)
      const std::size_t length = next();
      const auto payload = take(length);
      append(out, wire::encode_data_header(client_types[(op >> 3U) % client_types.size()], length));
      append(out, payload);
      out.resize(out.size() + (length - payload.size()));
      break;
    }
    case 3: { // a data frame past the read buffer, sometimes over the node's maximum
      const std::size_t low = next();
      const std::size_t high = next();
      const std::size_t length = 16 * 1024 + (low | high << 8U);
      const std::uint8_t seed = next();
      append(out, wire::encode_data_header(client_types[(op >> 3U) % client_types.size()], length));
      const std::size_t start = out.size();
      out.resize(start + length);
      for (std::size_t i = 0; i < length; ++i)
        out[start + i] = filler(i, seed);
      break;
    }
    case 4:
    case 5: { // ping or pong
      std::uint64_t token = 0;
      for (int i = 0; i < 8; ++i)
        token = token << 8U | std::uint64_t{next()};
      append(out, op % 8U == 4 ? wire::encode_ping(token) : wire::encode_pong(token));
      break;
    }
    case 6: { // close with a reason and a short text
      const auto reason = static_cast<peer_errc>(1 + next() % 60U);
      const std::size_t length = next() % 16U;
      std::string text;
      for (std::size_t i = 0; i < length; ++i)
        text.push_back(static_cast<char>('a' + next() % 26U));
      if (auto close = wire::encode_close(reason, text))
        append(out, *close);
      break;
    }
    default: { // raw bytes
      append(out, take(next() % 32U));
      break;
    }
    }
  }
}

/// The node under test, a peer that stays connected to it, and what both report.
class harness
{
public:
  harness()
  {
    graph_properties properties;
    properties.graph = *graph_id::make(node_graph);
    properties.peer = *peer_id::make(node_peer);
    properties.max_frame_size = node_max_frame_size;
    properties.handshake_timeout = node_handshake_timeout;
    properties.connect_timeout = 1s;
    properties.event_queue_depth = node_event_queue_depth;
    properties.events.data_types.assign(node_data_types.begin(), node_data_types.end());
    node_ = graph(ctx_.get_executor(), properties);
    bool listening = false;
    node_.listen(tcp::endpoint(asio::ip::address_v4::loopback(), 0), [&](std::error_code ec, tcp::endpoint bound) {
      PEERGRAPH_FUZZ_CHECK(!ec);
      endpoint_ = bound;
      listening = true;
    });
    run_until([&] { return listening; }, "listen");
    asio::co_spawn(ctx_, node_events(), asio::detached);

    // The well-behaved peer, connected for the whole run; its handshake timeout is generous.
    graph_properties probe_properties;
    probe_properties.graph = properties.graph;
    probe_properties.peer = *peer_id::make("fuzz-probe");
    probe_ = graph(ctx_.get_executor(), probe_properties);
    probe_node_ = probe_.local_node();
    probe_id_ = connect_peer(probe_, "the probe's connection");
    run_until([&] { return static_cast<bool>(probe_at_node_); }, "the probe's connection on the node");
    asio::co_spawn(ctx_, probe_events(), asio::detached);
    fresh_peer();
  }

  void run(std::span<const std::byte> input)
  {
    const std::uint8_t config = input.empty() ? std::uint8_t{0} : std::to_integer<std::uint8_t>(input[0]);
    const auto body = input.empty() ? input : input.subspan(1);
    const unsigned prefix = config & 7U;
    const unsigned ending = (config >> 3U) & 3U;
    const unsigned cuts = (config >> 5U) & 7U;
    const bool reset = ending == 2;
    const bool silent = ending == 3;

    const std::vector<std::byte> stream = make_stream(prefix, body);
    const expectation expected = expect(stream);

    connected_now_.clear();
    data_.clear();
    closed_by_node_.clear();

    tcp::socket client(ctx_);
    std::error_code ec;
    client.connect(endpoint_, ec);
    PEERGRAPH_FUZZ_CHECK(!ec);
    client.set_option(tcp::no_delay(true), ec);

    // The node's bytes, read until it closes its side.
    std::vector<std::byte> received;
    bool node_closed = false;
    std::array<std::byte, 16 * 1024> read_buffer{};
    std::function<void()> read_more = [&] {
      client.async_read_some(asio::buffer(read_buffer), [&](std::error_code read_error, std::size_t n) {
        received.insert(received.end(), read_buffer.begin(), read_buffer.begin() + static_cast<std::ptrdiff_t>(n));
        if (read_error) {
          node_closed = true;
          return;
        }
        read_more();
      });
    };
    read_more();

    // The stream, in pieces, the node running in between.
    fuzz::choices random(std::uint64_t{config} * 0x9E3779B97F4A7C15ULL + stream.size());
    std::size_t written = 0;
    bool write_failed = false;
    for (std::size_t piece = 0; written < stream.size() && !write_failed; ++piece) {
      std::size_t size = stream.size() - written;
      if (cuts != 0 && piece + 1 < max_pieces)
        size = std::min(size, cuts == 1 ? std::size_t{1} : random.piece_size() * (cuts - 1));
      bool done = false;
      asio::async_write(client, asio::buffer(stream.data() + written, size),
                        [&](std::error_code write_error, std::size_t) {
                          write_failed = static_cast<bool>(write_error);
                          done = true;
                        });
      run_until([&] { return done; }, "a write to the node");
      written += size;
      if (cuts != 0)
        settle();
    }

    if (silent) {
      // A silent client: the node closes a connection whose handshake never completes when its handshake timeout
      // passes; an established connection may stay silent for as long as it likes.
      run_for_until([&] { return node_closed || !connected_now_.empty(); }, silent_client_wait);
    }
    if (reset) {
      settle(); // the node has read what there is: the reset finds it waiting for more
      client.set_option(asio::socket_base::linger(true, 0), ec);
      client.close(ec);
      run_until([&] { return node_closed; }, "the end of the client's read");
    } else {
      client.shutdown(tcp::socket::shutdown_send, ec);
      run_until([&] { return node_closed; }, "the node closing the connection after the client's end");
    }
    settle(); // the events of what the node did are queued by now: take them all
    run_until([&] { return open_.empty() && sends_done_ == sends_started_ && closes_done_ == closes_started_; },
              "the node reporting the connection's end and completing its sends");
    settle();

    check_node_output(expected, received);
    check_delivery(expected, reset);

    if (client.is_open()) {
      // An abortive close leaves no TIME_WAIT behind: thousands of inputs a minute would exhaust the ports.
      client.set_option(asio::socket_base::linger(true, 0), ec);
      client.close(ec);
    }
    check_health();
  }

  /// One line on what the checks covered, for the end of a run.
  void print_stats() const
  {
    std::fprintf(stderr,
                 "fuzz_connection: %llu inputs; %llu established with delivery checked (%llu closed by the node "
                 "mid-stream), %llu data frames and %llu pongs matched; node healthy throughout\n",
                 static_cast<unsigned long long>(inputs_), static_cast<unsigned long long>(stats_.established),
                 static_cast<unsigned long long>(stats_.closed_by_node), static_cast<unsigned long long>(stats_.frames),
                 static_cast<unsigned long long>(stats_.pongs));
  }

private:
  std::vector<std::byte> make_stream(unsigned prefix, std::span<const std::byte> body) const
  {
    std::vector<std::byte> stream;
    if (prefix == 1) {
      append(stream, wire::magic);
      append(stream, std::array<std::byte, 4>{std::byte{1}, {}, {}, {}}); // version 1, reserved
    }
    if (prefix >= 2) {
      wire::hello_message hello{connection_kind::neighbor, *graph_id::make(node_graph), *peer_id::make(client_peer),
                                node_id(client_node), std::nullopt};
      if (prefix == 4) {
        hello.kind = connection_kind::direct;
        hello.expected_peer = *peer_id::make(node_peer);
      } else if (prefix == 5) {
        hello.graph = *graph_id::make("another-graph");
      } else if (prefix == 6) {
        hello.expected_peer = *peer_id::make("someone-else");
      }
      append(stream, *wire::encode_hello(hello));
      if (prefix >= 3)
        append(stream, wire::encode_accept());
    }
    if (prefix == 7)
      append_structured(stream, body);
    else
      append(stream, body);
    return stream;
  }

  /// Runs the node until `done()`, aborting as hung after step_limit.
  template <class Predicate>
  void run_until(Predicate done, const char* what)
  {
    const auto start = std::chrono::steady_clock::now();
    if (!run_for_until(done, step_limit))
      hung(what);
    const auto took = std::chrono::steady_clock::now() - start;
    if (took > slow_step)
      std::fprintf(stderr, "fuzz_connection: slow step (%lld ms): %s\n",
                   static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()), what);
  }

  /// Runs the node until `done()` or for at most `limit`; whether `done()`.
  template <class Predicate>
  bool run_for_until(Predicate done, std::chrono::milliseconds limit)
  {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline)
        return false;
      if (ctx_.stopped())
        ctx_.restart();
      ctx_.run_one_for(5ms);
    }
    return true;
  }

  /// Runs every handler that is ready, until nothing is ready twice in a row (bounded).
  void settle()
  {
    int quiet = 0;
    for (int round = 0; round < 10'000 && quiet < 2; ++round) {
      if (ctx_.stopped())
        ctx_.restart();
      quiet = ctx_.poll() == 0 ? quiet + 1 : 0;
    }
  }

  void check_node_output(const expectation& expected, std::span<const std::byte> received)
  {
    // The node tells nothing, not even its peer id, to a client that did not complete a valid hello; to one that
    // begins a membership exchange or a TLS handshake (this node has neither) it says only not_authenticated.
    if (expected.membership || expected.tls) {
      const auto refusal = wire::encode_refusing_opening(peer_errc::not_authenticated);
      PEERGRAPH_FUZZ_CHECK(received.empty() || (received.size() == refusal->size() &&
                                                std::equal(received.begin(), received.end(), refusal->begin())));
    } else if (!expected.hello) {
      PEERGRAPH_FUZZ_CHECK(received.empty());
    }
    // Whatever it sends is a valid stream (cut short, perhaps, when it closed with unread bytes, or after a reset).
    wire::frame_decoder decoder(wire::max_payload_ceiling);
    std::vector<std::uint64_t> pongs;
    std::size_t hellos = 0;
    while (!received.empty()) {
      auto r = fuzz::checked_decode(decoder, received);
      PEERGRAPH_FUZZ_CHECK(r.has_value());
      received = received.subspan(r->consumed);
      if (r->event == wire::decode_event::hello) {
        ++hellos;
        const wire::hello_message& hello = decoder.hello();
        PEERGRAPH_FUZZ_CHECK(hello.graph == node_graph && hello.peer == node_peer);
        PEERGRAPH_FUZZ_CHECK(hello.node == node_.local_node());
        PEERGRAPH_FUZZ_CHECK(!hello.expected_peer);
        PEERGRAPH_FUZZ_CHECK(expected.hello && hello.kind == expected.client_hello.kind);
        // Only a member of its graph, looking for this node (or for any), learns who the node is; a neighbor must
        // carry records.
        PEERGRAPH_FUZZ_CHECK(expected.client_hello.graph == node_graph);
        PEERGRAPH_FUZZ_CHECK(!expected.client_hello.expected_peer || *expected.client_hello.expected_peer == node_peer);
        PEERGRAPH_FUZZ_CHECK(carries_records(expected.client_hello));
      } else if (r->event == wire::decode_event::pong) {
        pongs.push_back(r->token);
      } else if (r->event == wire::decode_event::data_header && r->kind == wire::frame_kind::sync) {
        // The synchronisation of the node's records, on neighbor connections only.
        PEERGRAPH_FUZZ_CHECK(expected.client_hello.kind == connection_kind::neighbor);
      } else if (r->event == wire::decode_event::data_header) {
        PEERGRAPH_FUZZ_CHECK(r->type == node_type);
      }
    }
    PEERGRAPH_FUZZ_CHECK(hellos <= 1);
    // Pongs answer pings with the same tokens, in order; the last ones may be lost when the connection ends.
    PEERGRAPH_FUZZ_CHECK(pongs.size() <= expected.pings.size());
    PEERGRAPH_FUZZ_CHECK(std::equal(pongs.begin(), pongs.end(), expected.pings.begin()));
    stats_.pongs += pongs.size();
  }

  void check_delivery(const expectation& expected, bool reset)
  {
    // Data arrives only on connections established during this input; attribute it when exactly one was.
    if (connected_now_.empty()) {
      PEERGRAPH_FUZZ_CHECK(data_.empty());
      return;
    }
    if (connected_now_.size() != 1)
      return;
    // Established only after a valid hello for this graph (with records on a neighbor connection) and the client's
    // accept.
    PEERGRAPH_FUZZ_CHECK(expected.hello && expected.accepted);
    PEERGRAPH_FUZZ_CHECK(expected.client_hello.graph == node_graph);
    PEERGRAPH_FUZZ_CHECK(carries_records(expected.client_hello));
    const auto it = data_.find(connected_now_.front());
    const std::vector<frame> none;
    const std::vector<frame>& delivered = it == data_.end() ? none : it->second;
    PEERGRAPH_FUZZ_CHECK(data_.size() <= 1);
    const bool closed_by_node = closed_by_node_.contains(connected_now_.front());
    if (closed_by_node) {
      // The node closed the connection when the close request arrived: it delivered the frames up to that one at
      // least, and perhaps some that it had read before the request was handled; never others.
      PEERGRAPH_FUZZ_CHECK(expected.close_request.has_value());
      PEERGRAPH_FUZZ_CHECK(delivered.size() > *expected.close_request);
      ++stats_.closed_by_node;
    }
    if (reset || closed_by_node || expected.first_record) {
      // Bytes the kernel dropped with the reset may be missing at the end: a prefix, in order. An invalid record
      // ends the connection where it stands: at least the frames before the first record arrived then.
      PEERGRAPH_FUZZ_CHECK(delivered.size() <= expected.frames.size());
      PEERGRAPH_FUZZ_CHECK(std::equal(delivered.begin(), delivered.end(), expected.frames.begin()));
      if (expected.first_record && !reset && !closed_by_node)
        PEERGRAPH_FUZZ_CHECK(delivered.size() >= *expected.first_record);
    } else {
      PEERGRAPH_FUZZ_CHECK(delivered == expected.frames);
    }
    ++stats_.established;
    stats_.frames += delivered.size();
  }

  /// The node still serves its other connection, lists nothing else, and (now and then) accepts a new peer.
  void check_health()
  {
    ++probe_sent_;
    std::memcpy(probe_message_.data(), &probe_sent_, sizeof probe_sent_);
    probe_.send_data(probe_id_, probe_type, asio::buffer(probe_message_),
                     [](std::error_code ec) { PEERGRAPH_FUZZ_CHECK(!ec); });
    run_until([&] { return replies_at_probe_ == probe_sent_; }, "a message exchange with the probe peer");

    bool listed = false;
    node_.connections(connection_kinds::all, [&](std::error_code ec, std::vector<connection_info> list) {
      PEERGRAPH_FUZZ_CHECK(!ec);
      PEERGRAPH_FUZZ_CHECK(list.size() == 1 && list.front().id == probe_at_node_);
      listed = true;
    });
    run_until([&] { return listed; }, "the node's list of connections");

    if (++inputs_ % fresh_peer_interval == 0)
      fresh_peer();
  }

  /// Connects `peer` to the node. The node's handshake timeout is short, so an attempt may time out when the machine
  /// is busy: a few attempts are allowed, and none may hang.
  connection_id connect_peer(graph& peer, const char* what)
  {
    std::error_code error;
    for (int attempt = 0; attempt < 5; ++attempt) {
      bool done = false;
      connection_id id;
      peer.connect(endpoint_, std::nullopt, [&](std::error_code ec, connection_id c) {
        error = ec;
        id = c;
        done = true;
      });
      run_until([&] { return done; }, what);
      if (!error)
        return id;
      std::fprintf(stderr, "fuzz_connection: %s failed (%s), trying again\n", what, error.message().c_str());
    }
    std::fprintf(stderr, "fuzz_connection: %s failed 5 times\n", what);
    std::abort();
  }

  /// A new graph connects to the node, sends one message, and leaves.
  void fresh_peer()
  {
    graph_properties properties;
    properties.graph = *graph_id::make(node_graph);
    properties.peer = *peer_id::make("fuzz-fresh");
    graph fresh(ctx_.get_executor(), properties);
    fresh_node_ = fresh.local_node();
    fresh_received_ = 0;
    fresh_left_ = false;
    const connection_id id = connect_peer(fresh, "a new peer's connection");
    fresh_left_ = false; // an attempt that failed does not count
    fresh.send_data(id, probe_type, asio::buffer(probe_message_),
                    [](std::error_code ec) { PEERGRAPH_FUZZ_CHECK(!ec); });
    run_until([&] { return fresh_received_ == 1; }, "a new peer's message");
    bool closed = false;
    fresh.close([&](std::error_code ec) {
      PEERGRAPH_FUZZ_CHECK(!ec);
      closed = true;
    });
    run_until([&] { return closed && fresh_left_; }, "a new peer leaving");
    fresh_node_ = node_id();
  }

  asio::awaitable<void> node_events()
  {
    for (;;) {
      auto event = co_await node_.next_event();
      PEERGRAPH_FUZZ_CHECK(event.has_value());
      if (auto* change = std::get_if<connection_changed>(&*event)) {
        PEERGRAPH_FUZZ_CHECK(change->reason.has_value() == (change->status != connection_status::connected));
        if (change->remote_node == probe_node_) {
          PEERGRAPH_FUZZ_CHECK(change->status != connection_status::disconnected); // the probe never leaves
          if (change->status == connection_status::connected) {
            PEERGRAPH_FUZZ_CHECK(!probe_at_node_);
            probe_at_node_ = change->id;
          }
        } else if (fresh_node_ && change->remote_node == fresh_node_) {
          if (change->status == connection_status::disconnected)
            fresh_left_ = true;
        } else {
          on_fuzz_connection(*change);
        }
      } else if (auto* data = std::get_if<incoming_data>(&*event)) {
        if (data->connection == probe_at_node_) {
          PEERGRAPH_FUZZ_CHECK(data->type == probe_type);
          PEERGRAPH_FUZZ_CHECK(data->payload.size() == sizeof(std::uint64_t));
          std::uint64_t count = 0;
          std::memcpy(&count, data->payload.data(), sizeof count);
          PEERGRAPH_FUZZ_CHECK(count == ++probe_received_);
          node_.send_data(probe_at_node_, probe_type, asio::buffer(node_reply_),
                          [](std::error_code ec) { PEERGRAPH_FUZZ_CHECK(!ec); });
        } else if (auto open = open_.find(data->connection.value()); open != open_.end()) {
          PEERGRAPH_FUZZ_CHECK(delivered_type(data->type)); // the filter holds
          const auto bytes = data->payload.bytes();
          data_[data->connection.value()].push_back(frame{data->type, {bytes.begin(), bytes.end()}});
          if (data->type == close_request_type)
            request_close(data->connection, open->second);
        } else {
          PEERGRAPH_FUZZ_CHECK(fresh_node_ && data->type == probe_type); // the fresh peer's, else out of nowhere
          ++fresh_received_;
        }
      } else if (auto* status = std::get_if<status_changed>(&*event)) {
        PEERGRAPH_FUZZ_CHECK(has_status(status->status, graph_status::listening));
      }
    }
  }

  void on_fuzz_connection(const connection_changed& change)
  {
    const std::uint64_t id = change.id.value();
    switch (change.status) {
    case connection_status::connected: {
      PEERGRAPH_FUZZ_CHECK(open_.emplace(id, change.kind).second);
      connected_now_.push_back(id);
      // The node sends on the connection while the client does what it does: a small (staged) and a large
      // (zero-copy) message; both must complete, whatever becomes of the connection.
      sends_started_ += 2;
      node_.send_data(change.id, node_type, asio::buffer(small_message_), [this](std::error_code) { ++sends_done_; });
      node_.send_data(change.id, node_type, asio::buffer(large_message_), send_flags::zero_copy,
                      [this](std::error_code) { ++sends_done_; });
      break;
    }
    case connection_status::disconnected:
      PEERGRAPH_FUZZ_CHECK(open_.erase(id) == 1);
      break;
    case connection_status::failed:
      PEERGRAPH_FUZZ_CHECK(!open_.contains(id));
      break;
    }
  }

  /// Closes a connection on the client's request: a direct one closes (or is already gone); a neighbor one stays.
  void request_close(connection_id id, connection_kind kind)
  {
    ++closes_started_;
    node_.close_direct_connection(id, [this, id, kind](std::error_code ec) {
      ++closes_done_;
      if (ec == peer_errc::connection_not_found)
        return; // it ended meanwhile
      if (kind == connection_kind::direct) {
        PEERGRAPH_FUZZ_CHECK(!ec);
        closed_by_node_.insert(id.value());
      } else {
        PEERGRAPH_FUZZ_CHECK(ec == peer_errc::not_direct_connection);
      }
    });
  }

  asio::awaitable<void> probe_events()
  {
    for (;;) {
      auto event = co_await probe_.next_event();
      PEERGRAPH_FUZZ_CHECK(event.has_value());
      if (auto* change = std::get_if<connection_changed>(&*event)) {
        PEERGRAPH_FUZZ_CHECK(change->status != connection_status::disconnected); // never dropped
      } else if (auto* data = std::get_if<incoming_data>(&*event)) {
        PEERGRAPH_FUZZ_CHECK(data->connection == probe_id_ && data->type == probe_type);
        PEERGRAPH_FUZZ_CHECK(data->payload.bytes().size() == node_reply_.size());
        ++replies_at_probe_;
      }
    }
  }

  asio::io_context ctx_;
  graph node_;
  graph probe_;
  tcp::endpoint endpoint_;
  node_id probe_node_;
  connection_id probe_id_;      // the probe's connection, on the probe
  connection_id probe_at_node_; // the same connection, on the node
  std::uint64_t probe_sent_ = 0;
  std::uint64_t probe_received_ = 0;
  std::uint64_t replies_at_probe_ = 0;
  std::array<std::byte, sizeof(std::uint64_t)> probe_message_{};
  std::array<std::byte, 24> node_reply_{};
  node_id fresh_node_;
  std::uint64_t fresh_received_ = 0;
  bool fresh_left_ = false;
  std::uint64_t inputs_ = 0;
  struct
  {
    std::uint64_t established = 0;    // inputs whose connection was established and its delivery checked
    std::uint64_t frames = 0;         // data frames checked against the client's stream
    std::uint64_t pongs = 0;          // pongs checked against the client's pings
    std::uint64_t closed_by_node = 0; // connections the node closed on the client's request
  } stats_;

  std::map<std::uint64_t, connection_kind> open_; // established connections of clients, on the node
  std::set<std::uint64_t> closed_by_node_;        // closed by the node on request, current input
  std::uint64_t closes_started_ = 0;
  std::uint64_t closes_done_ = 0;
  std::vector<std::uint64_t> connected_now_;         // established during the current input
  std::map<std::uint64_t, std::vector<frame>> data_; // data the node delivered, by connection, current input
  std::uint64_t sends_started_ = 0;
  std::uint64_t sends_done_ = 0;
  std::array<std::byte, 100> small_message_{};
  std::vector<std::byte> large_message_ = std::vector<std::byte>(20 * 1024, std::byte{0x5A});
};

/// The node of the run, reachable for the summary at exit (and for the leak checker: it is never freed).
harness* instance = nullptr;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  // One node for the whole run, never destroyed: it must stay healthy across every input.
  static harness* const node = [] {
    instance = new harness();
    std::atexit([] { instance->print_stats(); });
    return instance;
  }();
  node->run(fuzz::as_bytes(data, size));
  return 0;
}
