// A CMake user's program: peergraph from find_package(peergraph CONFIG), linked as peergraph::peergraph. It makes a
// graph on an io_context, sends a gather of two buffers with async_send over a connected local socket pair, reads
// them back and closes the graph.
#include <peergraph.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <span>
#include <string_view>
#include <utility>

namespace {

asio::awaitable<bool> run(peergraph::graph& node, asio::local::stream_protocol::socket& sender,
                          asio::local::stream_protocol::socket& receiver)
{
  constexpr std::string_view hello = "hello, ";
  constexpr std::string_view world = "world";
  const std::array<peergraph::wsabuf, 2> buffers{{
      {static_cast<std::uint32_t>(hello.size()), hello.data()},
      {static_cast<std::uint32_t>(world.size()), world.data()},
  }};
  const auto sent = co_await peergraph::async_send(sender, std::span<const peergraph::wsabuf>(buffers));
  std::array<char, hello.size() + world.size()> received{};
  co_await asio::async_read(receiver, asio::buffer(received), asio::use_awaitable);
  const auto closed = co_await node.close();
  const std::string_view text(received.data(), received.size());
  std::printf("consumer: sent %zu bytes, received \"%.*s\", graph closed: %s\n", sent ? *sent : 0,
              static_cast<int>(text.size()), text.data(), closed ? "yes" : closed.error().message().c_str());
  co_return sent && *sent == received.size() && text == "hello, world" && closed;
}

} // namespace

int main()
{
  asio::io_context ctx;
  peergraph::graph_properties properties;
  properties.graph = peergraph::graph_id::make("consumer-cmake").value();
  properties.peer = peergraph::peer_id::make("consumer").value();
  auto node = peergraph::graph::create(ctx.get_executor(), std::move(properties));
  if (!node) {
    std::fprintf(stderr, "consumer: graph::create failed: %s\n", node.error().message().c_str());
    return 1;
  }
  asio::local::stream_protocol::socket sender(ctx), receiver(ctx);
  asio::local::connect_pair(sender, receiver);

  bool ok = false;
  asio::co_spawn(ctx, run(*node, sender, receiver),
                 [&](const std::exception_ptr& error, bool result) { ok = !error && result; });
  ctx.run();
  return ok ? 0 : 1;
}
