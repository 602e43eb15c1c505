//
// benchmarks/contender_peergraph_send.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// peergraph_send: the send path alone, one `co_await peergraph::async_send(socket, buffers)` per frame in an Asio
// coroutine; everything else (connections, receivers) is the asio_coro contender's.
//
#include <peergraph/send.hpp>

#include "coroutine_scenarios.hpp"

namespace {

using namespace peergraph::bench;

struct peergraph_async_send
{
  template <class ConstBufferSequence>
  static auto send(tcp::socket& socket, const ConstBufferSequence& buffers)
  {
    return peergraph::async_send(socket, buffers);
  }

  static void check(const peergraph::expected<std::size_t, peergraph::peer_error>& sent)
  {
    if (!sent)
      fail("async_send: " + sent.error().message());
  }
};

const contender_registration registration{{"peergraph_send",
                                           {
                                               {"small_msgs_64", &coro_stream<peergraph_async_send>},
                                               {"small_msgs_1k", &coro_stream<peergraph_async_send>},
                                               {"large_msgs_1m", &coro_stream<peergraph_async_send>},
                                               {"gather_256x64", &coro_stream<peergraph_async_send>},
                                               {"rtt_64", &coro_rtt<peergraph_async_send>},
                                               {"rtt_64_one_thread", &coro_rtt_one_thread<peergraph_async_send>},
                                           }}};

} // namespace
