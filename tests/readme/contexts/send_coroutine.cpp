// Context of README.md blocks marked <!-- readme-test: context=send_coroutine -->: the body of a coroutine with a
// connected socket, the pieces of a message and a log function in scope. Compiled, never run.
#include <peergraph.hpp>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

void log(const std::string& text);

asio::awaitable<void> readme_block([[maybe_unused]] asio::ip::tcp::socket& socket,
                                   [[maybe_unused]] const char (&prefix)[4], [[maybe_unused]] std::string_view name,
                                   [[maybe_unused]] std::string_view body)
{
  // @README_BLOCK@
  co_return;
}
