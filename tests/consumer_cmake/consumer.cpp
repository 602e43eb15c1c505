// A CMake user's program: peergraph from find_package(peergraph CONFIG), linked as peergraph::peergraph. It makes a
// graph on an io_context, sends a gather of two buffers with async_send over a TCP connection on loopback, reads
// them back and closes the graph. The same program builds for Windows (.ci/run, stage windows).
#include <peergraph.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
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

asio::awaitable<bool> run(peergraph::graph& node, asio::ip::tcp::socket& sender, asio::ip::tcp::socket& receiver)
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
  asio::ip::tcp::acceptor acceptor(ctx, asio::ip::tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
  asio::ip::tcp::socket sender(ctx);
  sender.connect(acceptor.local_endpoint());
  asio::ip::tcp::socket receiver = acceptor.accept();

  bool ok = false;
  asio::co_spawn(ctx, run(*node, sender, receiver),
                 [&](const std::exception_ptr& error, bool result) { ok = !error && result; });
  ctx.run();
  return ok ? 0 : 1;
}
