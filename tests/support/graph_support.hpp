//
// tests/support/graph_support.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// What the graph tests share: ids and properties for test nodes, a data type, and small coroutine helpers.
//
#pragma once

#include <peergraph/detail/asio_compat.hpp>
#include <peergraph/graph.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace peergraph::test {

inline constexpr data_type chat_type = data_type::from_string("0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9");
inline constexpr auto use_tuple = detail::asio_compat::use_awaitable_tuple;
inline const asio::ip::tcp::endpoint any_v4{asio::ip::address_v4::loopback(), 0};

/// A peer id from text the test knows to be valid.
inline peer_id pid(std::string_view text)
{
  return *peer_id::make(text);
}

/// Properties of a test node: graph "test-graph" unless told, and 2 s connect and handshake timeouts.
inline graph_properties props(std::string_view peer, std::string_view graph = "test-graph")
{
  graph_properties p;
  p.graph = *graph_id::make(graph);
  p.peer = pid(peer);
  p.connect_timeout = std::chrono::seconds(2);
  p.handshake_timeout = std::chrono::seconds(2);
  return p;
}

/// A payload's bytes as text.
inline std::string text_of(const payload& p)
{
  return std::string(reinterpret_cast<const char*>(p.data()), p.size());
}

/// Suspends the calling coroutine for `d`.
inline asio::awaitable<void> pause(std::chrono::milliseconds d)
{
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(use_tuple);
}

} // namespace peergraph::test
