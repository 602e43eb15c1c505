//
// tests/support/graph_nodes.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Graph nodes whose events the tests search (node), and a raw peer that speaks the wire protocol by hand
// (raw_peer): what the hostile-peer and membership tests share.
//
#pragma once

#include "co_test.hpp"
#include "graph_support.hpp"
#include "socket_pair.hpp"

#include <peergraph/graph.hpp>
#include <peergraph/wire.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace peergraph::test {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

inline std::chrono::milliseconds since(clock_type::time_point start)
{
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start);
}

inline std::span<const std::byte> bytes_of(std::string_view text)
{
  return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

// ---- a graph node with a log of its events ---------------------------------------------------------------------

/// What a node's event pump has read so far. Shared with the pump, which outlives the node by at most one event.
struct event_log
{
  peergraph::graph* graph = nullptr; // null once the node is gone: the pump stops
  std::deque<graph_event> events;
  std::vector<bool> taken;
  std::optional<peer_error> ended; // the error that ended the event stream
};

inline asio::awaitable<void> pump_events(std::shared_ptr<event_log> log)
{
  for (std::size_t i = 0; i < 10'000'000 && log->graph != nullptr; ++i) {
    auto event = co_await log->graph->next_event();
    if (!event) {
      log->ended = event.error();
      co_return;
    }
    log->events.push_back(std::move(*event));
    log->taken.push_back(false);
  }
}

/// A graph node whose events are read as they come (unless told not to) into a log that tests search.
class node
{
public:
  node(asio::io_context& ctx, peergraph::graph_properties properties, bool pump = true)
      : ctx_(ctx), peer_(properties.peer), graph_(ctx.get_executor(), std::move(properties)),
        log_(std::make_shared<event_log>())
  {
    log_->graph = &graph_;
    if (pump)
      start_pump();
  }
  node(const node&) = delete;
  node& operator=(const node&) = delete;
  ~node() { log_->graph = nullptr; }

  peergraph::graph* operator->() noexcept { return &graph_; }
  peergraph::graph& graph() noexcept { return graph_; }
  const peer_id& peer() const noexcept { return peer_; }
  event_log& log() noexcept { return *log_; }
  /// The log, kept readable after the node is gone.
  std::shared_ptr<event_log> shared_log() const noexcept { return log_; }

  /// Starts reading events into the log (for a node created without, once its consumer "resumes").
  void start_pump() { asio::co_spawn(ctx_, pump_events(log_), asio::detached); }

  /// Waits up to `timeout` for a connection_changed event not taken yet that satisfies `match`, and takes it.
  asio::awaitable<std::optional<connection_changed>> changed(std::function<bool(const connection_changed&)> match,
                                                             std::chrono::milliseconds timeout = 3s)
  {
    const auto deadline = clock_type::now() + timeout;
    for (int round = 0; round < 100'000; ++round) {
      for (std::size_t i = 0; i < log_->events.size(); ++i) {
        auto* c = std::get_if<connection_changed>(&log_->events[i]);
        if (c != nullptr && !log_->taken[i] && match(*c)) {
          log_->taken[i] = true;
          co_return *c;
        }
      }
      if (clock_type::now() >= deadline)
        break;
      co_await pause(2ms);
    }
    co_return std::nullopt;
  }

  /// The connection_changed event of `peer` with `status`, within `timeout`.
  asio::awaitable<std::optional<connection_changed>> changed(const peer_id& peer, connection_status status,
                                                             std::chrono::milliseconds timeout = 3s)
  {
    return changed([peer, status](const connection_changed& c) { return c.remote_peer == peer && c.status == status; },
                   timeout);
  }

  /// Waits up to `timeout` for incoming data not taken yet on `connection` and takes it.
  asio::awaitable<std::optional<incoming_data>> data(connection_id connection, std::chrono::milliseconds timeout = 3s)
  {
    const auto deadline = clock_type::now() + timeout;
    for (int round = 0; round < 100'000; ++round) {
      for (std::size_t i = 0; i < log_->events.size(); ++i) {
        auto* d = std::get_if<incoming_data>(&log_->events[i]);
        if (d != nullptr && !log_->taken[i] && d->connection == connection) {
          log_->taken[i] = true;
          co_return std::move(*d);
        }
      }
      if (clock_type::now() >= deadline)
        break;
      co_await pause(2ms);
    }
    co_return std::nullopt;
  }

  /// How many logged events (taken or not) satisfy `match`.
  std::size_t count(const std::function<bool(const graph_event&)>& match) const
  {
    return static_cast<std::size_t>(std::count_if(log_->events.begin(), log_->events.end(), match));
  }

private:
  asio::io_context& ctx_;
  peer_id peer_;
  peergraph::graph graph_;
  std::shared_ptr<event_log> log_;
};

/// Why `result` failed, for a check's message; empty when it did not fail (doctest also builds the message of a check
/// that passes, when it reports successes).
template <class Expected>
std::string failure_of(const Expected& result)
{
  return result.has_value() ? std::string() : result.error().message();
}

inline asio::awaitable<tcp::endpoint> listening(node& n)
{
  auto endpoint = co_await n->listen(any_v4);
  REQUIRE_MESSAGE(endpoint.has_value(), failure_of(endpoint));
  co_return *endpoint;
}

/// A well-behaved neighbor connection between `a` (connecting) and `b` (listening at `where`): the id on each side.
struct node_link
{
  connection_id on_a;
  connection_id on_b;
};

inline asio::awaitable<node_link> connect_link(node& a, node& b, const tcp::endpoint& where)
{
  auto id = co_await a->connect(where);
  REQUIRE_MESSAGE(id.has_value(), "connect: " << failure_of(id));
  auto on_b = co_await b.changed(a.peer(), connection_status::connected);
  REQUIRE_MESSAGE(on_b.has_value(), "the listening node did not report the connection");
  co_return node_link{*id, on_b->id};
}

/// A message each way over `l`, checked on arrival: the connection and both event streams work.
inline asio::awaitable<void> exchange(node& a, node& b, const node_link& l, std::string_view tag)
{
  const std::string there = std::string("to b: ") + std::string(tag);
  const std::string back = std::string("to a: ") + std::string(tag);
  auto sent = co_await a->send_data(l.on_a, chat_type, asio::buffer(there));
  REQUIRE_MESSAGE(sent.has_value(), tag << ": send a->b: " << failure_of(sent));
  auto got = co_await b.data(l.on_b);
  REQUIRE_MESSAGE(got.has_value(), tag << ": nothing arrived at b");
  CHECK(text_of(got->payload) == there);
  auto replied = co_await b->send_data(l.on_b, chat_type, asio::buffer(back));
  REQUIRE_MESSAGE(replied.has_value(), tag << ": send b->a: " << failure_of(replied));
  auto got_back = co_await a.data(l.on_a);
  REQUIRE_MESSAGE(got_back.has_value(), tag << ": nothing arrived at a");
  CHECK(text_of(got_back->payload) == back);
}

/// Checks that `n` reports a failed connection with not_authenticated that names no one: a node that did not prove
/// it belongs (closed graphs, TLS) is never reported under the peer id it claimed.
inline asio::awaitable<void> expect_unauthenticated_failure(node& n)
{
  auto failure = co_await n.changed([](const connection_changed& c) {
    return c.status == connection_status::failed && c.reason == peer_errc::not_authenticated;
  });
  REQUIRE_MESSAGE(failure.has_value(), "no failed event with not_authenticated");
  CHECK(failure->remote_peer.empty());
  CHECK(!failure->remote_node);
}

/// Whether `n` reported a connected peer or any incoming data.
inline bool saw_connection_or_data(node& n)
{
  return n.count([](const graph_event& e) {
    const auto* c = std::get_if<connection_changed>(&e);
    return std::holds_alternative<incoming_data>(e) || (c != nullptr && c->status == connection_status::connected);
  }) != 0;
}

/// Connects `caller` to `acceptor` (listening at `where`) and checks that both sides fail with not_authenticated
/// and neither learns anything of the other.
inline asio::awaitable<void> expect_refused_both_ways(node& caller, node& acceptor, const tcp::endpoint& where)
{
  auto r = co_await caller->connect(where);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == peer_errc::not_authenticated);
  co_await expect_unauthenticated_failure(caller);
  co_await expect_unauthenticated_failure(acceptor);
  CHECK_FALSE(saw_connection_or_data(caller));
  CHECK_FALSE(saw_connection_or_data(acceptor));
}

// ---- a raw peer speaking the wire protocol by hand -------------------------------------------------------------

inline wire::hello_message hello_of(std::string_view peer, std::string_view graph = "test-graph",
                                    std::optional<peer_id> expected = std::nullopt, node_id node = node_id::generate(),
                                    connection_kind kind = connection_kind::neighbor)
{
  return wire::hello_message{kind, *peergraph::graph_id::make(graph), pid(peer), node, std::move(expected)};
}

/// What a raw peer read: one frame event, or why none came (end of stream, reset, timeout, a decoding error).
struct raw_event
{
  std::optional<wire::decode_event> event;
  std::error_code error;
  peer_errc reason{};          // refuse and close
  std::uint64_t length = 0;    // data_header
  std::vector<std::byte> data; // data_payload

  [[nodiscard]] bool is(wire::decode_event e) const noexcept { return event == e; }
};

/// How a raw peer's connection ended.
struct raw_end
{
  bool closed = false;               // end of stream or reset (not a timeout)
  std::error_code error;             // eof, connection_reset or timed_out
  std::size_t bytes = 0;             // bytes received before the end
  std::chrono::milliseconds after{}; // time from the call to the end
};

class raw_peer
{
public:
  explicit raw_peer(asio::io_context& ctx) : socket_(ctx), decoder_(peergraph::default_max_frame_size) {}
  explicit raw_peer(tcp::socket&& socket) : socket_(std::move(socket)), decoder_(peergraph::default_max_frame_size) {}

  tcp::socket& socket() noexcept { return socket_; }
  wire::frame_decoder& decoder() noexcept { return decoder_; }

  /// Connects to a listening node (the kernel completes it: no need to run the node meanwhile).
  void connect(const tcp::endpoint& where)
  {
    std::error_code ec;
    socket_.connect(where, ec);
    REQUIRE_MESSAGE(!ec, "raw connect: " << ec.message());
  }

  /// Writes a few bytes at once (small enough for the kernel buffers). False when the connection is gone.
  bool send(std::span<const std::byte> bytes)
  {
    std::error_code ec;
    asio::write(socket_, asio::buffer(bytes.data(), bytes.size()), ec);
    return !ec;
  }

  /// Resets the connection: SO_LINGER 0, then close.
  void reset()
  {
    std::error_code ec;
    socket_.set_option(asio::socket_base::linger(true, 0), ec);
    socket_.close(ec);
  }

  /// Reads until the next frame event, the end of the stream or `timeout`. Pings, pongs and sync frames are skipped
  /// (a node starts the synchronisation of its records on every neighbor connection; a raw peer takes no part).
  asio::awaitable<raw_event> next(std::chrono::milliseconds timeout = 2s)
  {
    const auto deadline = clock_type::now() + timeout;
    raw_event out;
    for (int round = 0; round < 1'000'000; ++round) {
      while (begin_ < end_) {
        auto r = decoder_.decode(std::span<const std::byte>(buffer_).subspan(begin_, end_ - begin_));
        if (!r) {
          out.error = r.error().as_error_code();
          co_return out;
        }
        begin_ += r->consumed;
        if (r->event == wire::decode_event::data_header && r->kind == wire::frame_kind::sync) {
          skipping_sync_ = !r->frame_complete;
          continue;
        }
        if (skipping_sync_ && r->event == wire::decode_event::data_payload) {
          skipping_sync_ = !r->frame_complete;
          continue;
        }
        if (r->event == wire::decode_event::need_more || r->event == wire::decode_event::ping ||
            r->event == wire::decode_event::pong)
          continue;
        out.event = r->event;
        out.length = r->length;
        if (r->event == wire::decode_event::refuse || r->event == wire::decode_event::close)
          out.reason = decoder_.reason().code;
        if (r->event == wire::decode_event::data_payload)
          out.data.assign(r->payload.begin(), r->payload.end());
        co_return out;
      }
      begin_ = end_ = 0;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
      if (left <= 0ms) {
        out.error = asio::error::timed_out;
        co_return out;
      }
      auto [ec, n] = co_await read_some_for(asio::buffer(buffer_), left);
      if (ec) {
        out.error = ec;
        co_return out;
      }
      end_ = n;
    }
    out.error = asio::error::timed_out;
    co_return out;
  }

  /// Reads the next whole data message (its payload), or nothing when the stream ends or `timeout` passes.
  asio::awaitable<std::optional<std::vector<std::byte>>> next_message(std::chrono::milliseconds timeout = 2s)
  {
    auto header = co_await next(timeout);
    if (!header.is(wire::decode_event::data_header))
      co_return std::nullopt;
    std::vector<std::byte> message;
    message.reserve(static_cast<std::size_t>(header.length));
    while (message.size() < header.length) {
      auto part = co_await next(timeout);
      if (!part.is(wire::decode_event::data_payload))
        co_return std::nullopt;
      message.insert(message.end(), part.data.begin(), part.data.end());
    }
    co_return message;
  }

  /// Reads and discards until the connection ends or `timeout` passes.
  asio::awaitable<raw_end> wait_end(std::chrono::milliseconds timeout)
  {
    const auto start = clock_type::now();
    raw_end out;
    out.bytes = end_ - begin_;
    begin_ = end_ = 0;
    for (int round = 0; round < 1'000'000; ++round) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(start + timeout - clock_type::now());
      if (left <= 0ms) {
        out.error = asio::error::timed_out;
        break;
      }
      auto [ec, n] = co_await read_some_for(asio::buffer(buffer_), left);
      out.bytes += n;
      if (ec) {
        out.error = ec;
        out.closed = ec != asio::error::timed_out;
        break;
      }
    }
    out.after = since(start);
    co_return out;
  }

  /// The connecting side's handshake: sends `mine`, reads the node's hello and reply, accepts. Returns the node's
  /// reply event (accept, or refuse with its reason), with the node's hello in decoder().hello().
  asio::awaitable<raw_event> handshake(const wire::hello_message& mine, std::chrono::milliseconds timeout = 2s)
  {
    auto hello = wire::encode_hello(mine);
    REQUIRE(hello.has_value());
    REQUIRE(send(*hello));
    auto theirs = co_await next(timeout);
    if (!theirs.is(wire::decode_event::hello))
      co_return theirs;
    auto reply = co_await next(timeout);
    if (reply.is(wire::decode_event::accept)) {
      const auto accept = wire::encode_accept();
      REQUIRE(send(accept));
    }
    co_return reply;
  }

private:
  asio::awaitable<std::pair<std::error_code, std::size_t>> read_some_for(asio::mutable_buffer into,
                                                                         std::chrono::milliseconds timeout)
  {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(socket_.get_executor());
    timer.expires_after(timeout);
    auto result = co_await (socket_.async_read_some(into, use_tuple) || timer.async_wait(use_tuple));
    if (result.index() == 1)
      co_return std::pair<std::error_code, std::size_t>{asio::error::timed_out, 0};
    auto [ec, n] = std::get<0>(result);
    co_return std::pair<std::error_code, std::size_t>{ec, n};
  }

  tcp::socket socket_;
  wire::frame_decoder decoder_;
  bool skipping_sync_ = false; // in the payload of a sync frame
  std::vector<std::byte> buffer_ = std::vector<std::byte>(64 * 1024);
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

/// A raw peer connected to `where` that completed the handshake as `peer`; the node's connection id for it.
struct raw_link
{
  std::unique_ptr<raw_peer> raw;
  connection_id on_node;
};

/// A nonzero `receive_buffer` sets the raw peer's receive buffer first: a small one makes what the node sends back up
/// into the node at once.
inline asio::awaitable<raw_link> raw_handshake(asio::io_context& ctx, node& n, const tcp::endpoint& where,
                                               std::string_view peer, int receive_buffer = 0)
{
  auto raw = std::make_unique<raw_peer>(ctx);
  if (receive_buffer != 0) {
    raw->socket().open(tcp::v4());
    raw->socket().set_option(asio::socket_base::receive_buffer_size(receive_buffer));
  }
  raw->connect(where);
  auto reply = co_await raw->handshake(hello_of(peer));
  REQUIRE_MESSAGE(reply.is(wire::decode_event::accept), "raw handshake: " << reply.error.message());
  auto on_node = co_await n.changed(pid(peer), connection_status::connected);
  REQUIRE_MESSAGE(on_node.has_value(), "the node did not report the raw peer connected");
  co_return raw_link{std::move(raw), on_node->id};
}

} // namespace peergraph::test
