//
// benchmarks/coroutine_scenarios.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The stream and round-trip measurements written as Asio coroutines, parameterised by how a frame is sent, so that
// contenders differing only in their send call (asio_coro, peergraph_send) share everything else, receivers included.
//
// A SendPolicy provides
//   static auto send(tcp::socket&, const ConstBufferSequence&);  // an awaitable for the whole send
//   static void check(const Result&);                            // fails the run if the awaited result is an error
//
#pragma once

#include "asio_support.hpp"

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>

#include <span>
#include <vector>

namespace peergraph::bench {

/// Sends data frames while `limit` allows, each send awaited before the next, then the end frame.
template <class SendPolicy>
asio::awaitable<void> coro_send_stream(tcp::socket& socket, const frame_layout& layout, const send_limit& limit,
                                       std::uint64_t& sent)
{
  if (layout.pieces == 1) {
    while (limit.more(sent)) {
      SendPolicy::check(co_await SendPolicy::send(socket, frame_buffers(layout, sent)));
      ++sent;
    }
  } else {
    std::vector<asio::const_buffer> bufs(1 + layout.pieces);
    const std::span<const asio::const_buffer> view(bufs);
    while (limit.more(sent)) {
      fill_gather_buffers(bufs, layout, sent);
      SendPolicy::check(co_await SendPolicy::send(socket, view));
      ++sent;
    }
  }
  const end_frame end = make_end_frame(sent);
  SendPolicy::check(co_await SendPolicy::send(socket, asio::buffer(end)));
}

/// Reads into `buf` and verifies until the end frame.
inline asio::awaitable<void> coro_receive_stream(tcp::socket& socket, frame_checker& checker,
                                                 std::vector<std::uint8_t>& buf)
{
  while (!checker.ended()) {
    const std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::use_awaitable);
    checker.feed(buf.data(), n);
  }
}

/// Round-trip client: request i, then read until reply i is verified; records each round trip if `samples` is set.
template <class SendPolicy>
asio::awaitable<void> coro_rtt_client(tcp::socket& socket, const frame_layout& layout, std::uint64_t total,
                                      std::vector<bench_clock::duration>* samples, std::vector<std::uint8_t>& buf)
{
  frame_checker checker(layout.payload_bytes);
  for (std::uint64_t i = 0; i < total; ++i) {
    const auto t0 = samples != nullptr ? bench_clock::now() : bench_clock::time_point{};
    SendPolicy::check(co_await SendPolicy::send(socket, frame_buffers(layout, i)));
    while (checker.frames() <= i) {
      const std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::use_awaitable);
      checker.feed(buf.data(), n);
    }
    if (samples != nullptr)
      samples->push_back(bench_clock::now() - t0);
  }
  const end_frame end = make_end_frame(total);
  SendPolicy::check(co_await SendPolicy::send(socket, asio::buffer(end)));
}

/// Round-trip server: verifies requests and answers each with the data frame of the same number, until the end frame.
template <class SendPolicy>
asio::awaitable<void> coro_rtt_server(tcp::socket& socket, const frame_layout& layout, frame_checker& checker,
                                      std::vector<std::uint8_t>& buf)
{
  std::uint64_t replied = 0;
  while (!checker.ended()) {
    const std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::use_awaitable);
    checker.feed(buf.data(), n);
    for (; replied < checker.frames(); ++replied)
      SendPolicy::check(co_await SendPolicy::send(socket, frame_buffers(layout, replied)));
  }
}

/// small_msgs_*, large_msgs_1m, gather_256x64: a sender coroutine and a receiver coroutine, each on its own
/// single-threaded io_context and pinned thread.
template <class SendPolicy>
measurement coro_stream(const run_spec& spec)
{
  const std::pair<int, int> fds = tcp_pair();
  asio::io_context send_io{1};
  asio::io_context receive_io{1};
  tcp::socket tx = adopt(send_io, fds.first);
  tcp::socket rx = adopt(receive_io, fds.second);
  send_limit limit = spec.limit();
  std::uint64_t sent = 0;
  frame_checker checker(spec.layout.payload_bytes);
  std::vector<std::uint8_t> buf(spec.receive_buffer_bytes);
  const stream_result r = run_stream(
      limit,
      [&] {
        asio::co_spawn(send_io, coro_send_stream<SendPolicy>(tx, spec.layout, limit, sent),
                       fail_on_exception{"sender"});
        send_io.run();
        return sent;
      },
      [&] {
        asio::co_spawn(receive_io, coro_receive_stream(rx, checker, buf), fail_on_exception{"receiver"});
        receive_io.run();
        return checker.frames();
      });
  return stream_measurement(spec, r);
}

/// rtt_64: client and server coroutines on their own io_contexts and pinned threads.
template <class SendPolicy>
measurement coro_rtt(const run_spec& spec)
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
        std::vector<std::uint8_t> buf(spec.receive_buffer_bytes);
        asio::co_spawn(client_io, coro_rtt_client<SendPolicy>(client, spec.layout, total, &samples, buf),
                       fail_on_exception{"client"});
        client_io.run();
        return samples;
      },
      [&] {
        std::vector<std::uint8_t> buf(spec.receive_buffer_bytes);
        frame_checker checker(spec.layout.payload_bytes);
        asio::co_spawn(server_io, coro_rtt_server<SendPolicy>(server, spec.layout, checker, buf),
                       fail_on_exception{"server"});
        server_io.run();
        return checker.frames();
      });
}

/// rtt_64_one_thread: client and server coroutines on one io_context run by the calling thread.
template <class SendPolicy>
measurement coro_rtt_one_thread(const run_spec& spec)
{
  const std::pair<int, int> fds = tcp_pair();
  asio::io_context io{1};
  tcp::socket client = adopt(io, fds.first);
  tcp::socket server = adopt(io, fds.second);
  std::vector<std::uint8_t> client_buf(spec.receive_buffer_bytes);
  std::vector<std::uint8_t> server_buf(spec.receive_buffer_bytes);
  frame_checker at_server(spec.layout.payload_bytes);
  asio::co_spawn(io, coro_rtt_client<SendPolicy>(client, spec.layout, spec.count, nullptr, client_buf),
                 fail_on_exception{"client"});
  asio::co_spawn(io, coro_rtt_server<SendPolicy>(server, spec.layout, at_server, server_buf),
                 fail_on_exception{"server"});
  io.run();
  if (!at_server.ended() || at_server.frames() != spec.count)
    fail("one-thread round trips did not complete");
  measurement m;
  m.values.emplace_back("round_trips", static_cast<double>(at_server.frames()));
  return m;
}

} // namespace peergraph::bench
