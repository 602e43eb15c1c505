// Context of README.md blocks marked <!-- readme-test: context=graph_coroutine -->: the body of a coroutine with
// two graphs (bob, eve) of one io_context and the other names those blocks use in scope. Compiled, never run.
#include <peergraph.hpp>

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address_v4.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <variant>

asio::awaitable<void> readme_block([[maybe_unused]] asio::io_context& ctx, [[maybe_unused]] peergraph::graph& bob,
                                   [[maybe_unused]] peergraph::graph& eve,
                                   [[maybe_unused]] const asio::ip::tcp::endpoint& eve_address,
                                   [[maybe_unused]] const std::string& line)
{
  // @README_BLOCK@
  co_return;
}
