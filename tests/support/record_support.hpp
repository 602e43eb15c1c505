//
// tests/support/record_support.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// What the record tests over the network share: records to add, waits for record and synchronisation events, and
// nodes joined in lines and rings.
//
#pragma once

#include "graph_nodes.hpp"
#include "graph_support.hpp"

#include <peergraph/graph.hpp>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace peergraph::test {

/// The record type of the tests' lines.
inline constexpr data_type line_type = data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da");

/// The system clock's now plus `after`, at the resolution of records.
inline record_time in(std::chrono::milliseconds after)
{
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()) + after;
}

/// A record as the application hands it to add_record: one text attribute, a byte of data.
inline record line(std::string text, std::chrono::milliseconds lifetime = std::chrono::seconds(60),
                   data_type type = line_type)
{
  record r;
  r.type = type;
  r.expires = in(lifetime);
  r.attributes = {{"text", std::move(text)}};
  r.data = {std::byte{'x'}};
  return r;
}

/// Takes the record_changed event of `id` with `change` from the node's log, waiting up to `timeout`.
inline asio::awaitable<bool> saw(node& n, const record_id& id, record_change change,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(3))
{
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int round = 0; round < 100'000; ++round) {
    auto& log = n.log();
    for (std::size_t i = 0; i < log.events.size(); ++i) {
      const auto* c = std::get_if<record_changed>(&log.events[i]);
      if (c != nullptr && !log.taken[i] && c->id == id && c->change == change) {
        log.taken[i] = true;
        co_return true;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline)
      break;
    co_await pause(std::chrono::milliseconds(2));
  }
  co_return false;
}

/// How many record_changed events the node logged, of any change.
inline std::size_t record_events(node& n)
{
  return n.count([](const graph_event& e) { return std::holds_alternative<record_changed>(e); });
}

/// Waits up to `timeout` for the node to log a neighbor_synchronized event with `peer`.
inline asio::awaitable<bool> synchronized_with(node& n, const std::string& peer,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(10))
{
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int round = 0; round < 100'000; ++round) {
    const auto seen = n.count([&](const graph_event& e) {
      const auto* s = std::get_if<neighbor_synchronized>(&e);
      return s != nullptr && s->remote_peer == pid(peer);
    });
    if (seen != 0)
      co_return true;
    if (std::chrono::steady_clock::now() >= deadline)
      break;
    co_await pause(std::chrono::milliseconds(2));
  }
  co_return false;
}

/// Properties of a node that joins a graph (graph_start::join).
inline graph_properties joining(const std::string& peer)
{
  auto p = props(peer);
  p.start = graph_start::join;
  return p;
}

/// `count` nodes named node0, node1, ...
inline std::vector<std::unique_ptr<node>> make_nodes(asio::io_context& ctx, std::size_t count)
{
  std::vector<std::unique_ptr<node>> nodes;
  for (std::size_t i = 0; i < count; ++i)
    nodes.push_back(std::make_unique<node>(ctx, props("node" + std::to_string(i))));
  return nodes;
}

/// Connects `nodes` in a line (each to the next); with `ring`, the last to the first too.
inline asio::awaitable<void> chain(std::vector<std::unique_ptr<node>>& nodes, bool ring)
{
  std::vector<asio::ip::tcp::endpoint> where;
  for (auto& n : nodes)
    where.push_back(co_await listening(*n));
  for (std::size_t i = 0; i + 1 < nodes.size(); ++i)
    (void)co_await connect_link(*nodes[i], *nodes[i + 1], where[i + 1]);
  if (ring)
    (void)co_await connect_link(*nodes.back(), *nodes.front(), where.front());
}

} // namespace peergraph::test
