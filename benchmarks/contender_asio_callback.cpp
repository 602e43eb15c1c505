//
// benchmarks/contender_asio_callback.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// asio_callback: Asio with completion callbacks, one asio::async_write per frame; the next send starts in the
// completion handler of the previous one.
//
#include "asio_support.hpp"

#include <asio/read.hpp>
#include <asio/write.hpp>

#include <memory>
#include <span>
#include <vector>

namespace {

using namespace peergraph::bench;

/// Sends data frames while the limit allows, then the end frame.
class stream_sender
{
public:
  stream_sender(tcp::socket& socket, const frame_layout& layout, const send_limit& limit)
      : socket_(socket), layout_(layout), limit_(limit), bufs_(1 + layout.pieces)
  {
  }

  void start() { next(); }

  std::uint64_t sent() const noexcept { return sent_; }

private:
  void next()
  {
    if (!limit_.more(sent_)) {
      end_ = make_end_frame(sent_);
      asio::async_write(socket_, asio::buffer(end_),
                        [](const asio::error_code& ec, std::size_t) { check(ec, "async_write"); });
      return;
    }
    const auto done = [this](const asio::error_code& ec, std::size_t) {
      check(ec, "async_write");
      ++sent_;
      next();
    };
    if (layout_.pieces == 1) {
      asio::async_write(socket_, frame_buffers(layout_, sent_), done);
    } else {
      fill_gather_buffers(bufs_, layout_, sent_);
      asio::async_write(socket_, std::span<const asio::const_buffer>(bufs_), done);
    }
  }

  tcp::socket& socket_;
  const frame_layout& layout_;
  const send_limit& limit_;
  std::vector<asio::const_buffer> bufs_;
  std::uint64_t sent_ = 0;
  end_frame end_{};
};

/// Reads into a buffer and verifies; with `replies`, answers every verified data frame with the data frame of the
/// same number (the round-trip server). Stops at the end frame.
class receiver
{
public:
  receiver(tcp::socket& socket, std::size_t payload_bytes, std::size_t buffer_bytes, const frame_layout* replies)
      : socket_(socket), checker_(payload_bytes), buf_(buffer_bytes), replies_(replies)
  {
  }

  void start() { read(); }

  const frame_checker& checker() const noexcept { return checker_; }

private:
  void read()
  {
    socket_.async_read_some(asio::buffer(buf_), [this](const asio::error_code& ec, std::size_t n) {
      check(ec, "async_read_some");
      checker_.feed(buf_.data(), n);
      reply_or_read();
    });
  }

  void reply_or_read()
  {
    if (replies_ != nullptr && replied_ < checker_.frames()) {
      asio::async_write(socket_, frame_buffers(*replies_, replied_), [this](const asio::error_code& ec, std::size_t) {
        check(ec, "async_write");
        ++replied_;
        reply_or_read();
      });
      return;
    }
    if (!checker_.ended())
      read();
  }

  tcp::socket& socket_;
  frame_checker checker_;
  std::vector<std::uint8_t> buf_;
  const frame_layout* replies_;
  std::uint64_t replied_ = 0;
};

/// Round-trip client: request i, then reads until reply i is verified; records each round trip if `samples` is set.
class rtt_client
{
public:
  rtt_client(tcp::socket& socket, const frame_layout& layout, std::uint64_t total, std::size_t buffer_bytes,
             std::vector<bench_clock::duration>* samples)
      : socket_(socket), layout_(layout), total_(total), checker_(layout.payload_bytes), buf_(buffer_bytes),
        samples_(samples)
  {
  }

  void start() { request(); }

private:
  void request()
  {
    if (next_ == total_) {
      end_ = make_end_frame(total_);
      asio::async_write(socket_, asio::buffer(end_),
                        [](const asio::error_code& ec, std::size_t) { check(ec, "async_write"); });
      return;
    }
    if (samples_ != nullptr)
      t0_ = bench_clock::now();
    asio::async_write(socket_, frame_buffers(layout_, next_), [this](const asio::error_code& ec, std::size_t) {
      check(ec, "async_write");
      read();
    });
  }

  void read()
  {
    socket_.async_read_some(asio::buffer(buf_), [this](const asio::error_code& ec, std::size_t n) {
      check(ec, "async_read_some");
      checker_.feed(buf_.data(), n);
      if (checker_.frames() <= next_) {
        read();
        return;
      }
      if (samples_ != nullptr)
        samples_->push_back(bench_clock::now() - t0_);
      ++next_;
      request();
    });
  }

  tcp::socket& socket_;
  const frame_layout& layout_;
  std::uint64_t total_;
  frame_checker checker_;
  std::vector<std::uint8_t> buf_;
  std::vector<bench_clock::duration>* samples_;
  std::uint64_t next_ = 0;
  bench_clock::time_point t0_{};
  end_frame end_{};
};

measurement stream(const run_spec& spec)
{
  const std::pair<int, int> fds = tcp_pair();
  asio::io_context send_io{1};
  asio::io_context receive_io{1};
  tcp::socket tx = adopt(send_io, fds.first);
  tcp::socket rx = adopt(receive_io, fds.second);
  send_limit limit = spec.limit();
  stream_sender sender(tx, spec.layout, limit);
  receiver rcv(rx, spec.layout.payload_bytes, spec.receive_buffer_bytes, nullptr);
  const stream_result r = run_stream(
      limit,
      [&] {
        sender.start();
        send_io.run();
        return sender.sent();
      },
      [&] {
        rcv.start();
        receive_io.run();
        return rcv.checker().frames();
      });
  return stream_measurement(spec, r);
}

measurement rtt(const run_spec& spec)
{
  const std::pair<int, int> fds = tcp_pair();
  asio::io_context client_io{1};
  asio::io_context server_io{1};
  tcp::socket client = adopt(client_io, fds.first);
  tcp::socket server = adopt(server_io, fds.second);
  const std::uint64_t total = spec.warmup + spec.count;
  return run_rtt(
      spec,
      [&] {
        std::vector<bench_clock::duration> samples;
        samples.reserve(total);
        rtt_client c(client, spec.layout, total, spec.receive_buffer_bytes, &samples);
        c.start();
        client_io.run();
        return samples;
      },
      [&] {
        receiver s(server, spec.layout.payload_bytes, spec.receive_buffer_bytes, &spec.layout);
        s.start();
        server_io.run();
        return s.checker().frames();
      });
}

measurement rtt_one_thread(const run_spec& spec)
{
  const std::pair<int, int> fds = tcp_pair();
  asio::io_context io{1};
  tcp::socket client_socket = adopt(io, fds.first);
  tcp::socket server_socket = adopt(io, fds.second);
  rtt_client client(client_socket, spec.layout, spec.count, spec.receive_buffer_bytes, nullptr);
  receiver server(server_socket, spec.layout.payload_bytes, spec.receive_buffer_bytes, &spec.layout);
  server.start();
  client.start();
  io.run();
  if (!server.checker().ended() || server.checker().frames() != spec.count)
    fail("one-thread round trips did not complete");
  measurement m;
  m.values.emplace_back("round_trips", static_cast<double>(server.checker().frames()));
  return m;
}

/// An idle connection: both ends wait for the next frame header with a pending async_read.
measurement idle_conn(const run_spec& spec)
{
  struct connection
  {
    tcp::socket a;
    tcp::socket b;
    frame_header header_a{};
    frame_header header_b{};
  };
  const auto on_header = [](const asio::error_code& ec, std::size_t) {
    if (!ec)
      fail("an idle connection received data");
  };
  loopback_listener listener;
  asio::io_context io{1};
  const memory_usage before = memory_usage::now();
  std::vector<std::unique_ptr<connection>> connections;
  connections.reserve(spec.count);
  for (std::uint64_t i = 0; i < spec.count; ++i) {
    const std::pair<int, int> fds = listener.connect_pair();
    connections.push_back(std::make_unique<connection>(connection{adopt(io, fds.first), adopt(io, fds.second)}));
    connection& c = *connections.back();
    asio::async_read(c.a, asio::buffer(c.header_a), on_header);
    asio::async_read(c.b, asio::buffer(c.header_b), on_header);
  }
  io.poll();
  const memory_usage after = memory_usage::now();
  return idle_measurement(before, after, spec.count);
}

const contender_registration registration{{"asio_callback",
                                           {
                                               {"small_msgs_64", &stream},
                                               {"small_msgs_1k", &stream},
                                               {"large_msgs_1m", &stream},
                                               {"gather_256x64", &stream},
                                               {"rtt_64", &rtt},
                                               {"rtt_64_one_thread", &rtt_one_thread},
                                               {"idle_conn", &idle_conn},
                                           }}};

} // namespace
