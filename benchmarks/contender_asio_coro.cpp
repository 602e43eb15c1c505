//
// benchmarks/contender_asio_coro.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// asio_coro: Asio coroutines, one `co_await asio::async_write(socket, buffers, asio::use_awaitable)` per frame.
//
#include "coroutine_scenarios.hpp"

#include <asio/read.hpp>
#include <asio/write.hpp>

#include <memory>

namespace {

using namespace peergraph::bench;

struct asio_write
{
  template <class ConstBufferSequence>
  static auto send(tcp::socket& socket, const ConstBufferSequence& buffers)
  {
    return asio::async_write(socket, buffers, asio::use_awaitable);
  }

  static void check(std::size_t) {} // errors arrive as exceptions, which fail the run
};

/// An idle connection end: a coroutine waiting for the next frame header.
asio::awaitable<void> await_header(tcp::socket& socket)
{
  frame_header header{};
  co_await asio::async_read(socket, asio::buffer(header), asio::use_awaitable);
  fail("an idle connection received data");
}

measurement idle_conn(const run_spec& spec)
{
  struct connection
  {
    tcp::socket a;
    tcp::socket b;
  };
  loopback_listener listener;
  asio::io_context io{1};
  const memory_usage before = memory_usage::now();
  std::vector<std::unique_ptr<connection>> connections;
  connections.reserve(spec.count);
  for (std::uint64_t i = 0; i < spec.count; ++i) {
    const std::pair<int, int> fds = listener.connect_pair();
    connections.push_back(std::make_unique<connection>(connection{adopt(io, fds.first), adopt(io, fds.second)}));
    asio::co_spawn(io, await_header(connections.back()->a), asio::detached);
    asio::co_spawn(io, await_header(connections.back()->b), asio::detached);
  }
  io.poll(); // every coroutine starts and suspends in its read
  const memory_usage after = memory_usage::now();
  return idle_measurement(before, after, spec.count);
}

const contender_registration registration{{"asio_coro",
                                           {
                                               {"small_msgs_64", &coro_stream<asio_write>},
                                               {"small_msgs_1k", &coro_stream<asio_write>},
                                               {"large_msgs_1m", &coro_stream<asio_write>},
                                               {"gather_256x64", &coro_stream<asio_write>},
                                               {"rtt_64", &coro_rtt<asio_write>},
                                               {"rtt_64_one_thread", &coro_rtt_one_thread<asio_write>},
                                               {"idle_conn", &idle_conn},
                                           }}};

} // namespace
