//
// examples/wsasend.cpp
// ~~~~~~~~~~~~~~~~~~~~
// A WSASend-style gather send: a stack array of wsabuf descriptors (a header and two payload pieces) sent with one
// co_await, with the error handling an application needs. Runs a loopback receiver in the same program.
//
#include <peergraph/send.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>

namespace {

using asio::ip::tcp;

/// Sends one length-prefixed record made of three separate pieces of memory, without copying any of them.
asio::awaitable<bool> send_record(tcp::socket& socket, std::string_view name, std::string_view body)
{
  const auto length = static_cast<std::uint32_t>(name.size() + body.size());
  // Little-endian length prefix, as a receiver on any platform expects it.
  const std::array<unsigned char, 4> prefix{static_cast<unsigned char>(length), static_cast<unsigned char>(length >> 8),
                                            static_cast<unsigned char>(length >> 16),
                                            static_cast<unsigned char>(length >> 24)};

  // The descriptor array lives on this coroutine's stack; peergraph captures it when the send starts, as LPWSPSend
  // allows. The bytes it points to (prefix, name, body) must stay valid until the send completes, which they do here
  // because we await it.
  const std::array<peergraph::wsabuf, 3> buffers{{
      {static_cast<std::uint32_t>(prefix.size()), reinterpret_cast<const char*>(prefix.data())},
      {static_cast<std::uint32_t>(name.size()), name.data()},
      {static_cast<std::uint32_t>(body.size()), body.data()},
  }};

  auto sent = co_await peergraph::async_send(socket, std::span<const peergraph::wsabuf>(buffers));
  if (!sent) {
    // The error reads well in a log, and carries the Winsock and HRESULT values for code ported from Windows.
    std::fprintf(stderr, "send failed: %s (WSA %d, HRESULT 0x%08x)\n", sent.error().message().c_str(),
                 sent.error().wsa_error(), static_cast<unsigned>(sent.error().hresult()));
    if (sent.error() == peergraph::peer_errc::connection_reset || sent.error() == peergraph::peer_errc::shut_down)
      socket.close(); // the connection is gone: nothing more can be sent on it
    co_return false;
  }
  std::printf("sender: one gather send of 3 buffers, %zu bytes\n", *sent);
  co_return true;
}

asio::awaitable<void> receive_record(tcp::socket& socket)
{
  std::array<unsigned char, 4> prefix{};
  co_await asio::async_read(socket, asio::buffer(prefix), asio::use_awaitable);
  std::uint32_t length = 0;
  for (std::size_t i = prefix.size(); i-- > 0;)
    length = (length << 8U) | prefix[i];
  std::string record(length, '\0');
  co_await asio::async_read(socket, asio::buffer(record), asio::use_awaitable);
  std::printf("receiver: %u-byte record \"%s\"\n", length, record.c_str());
}

} // namespace

int main()
{
  asio::io_context ctx;
  tcp::acceptor acceptor(ctx, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket client(ctx);
  client.connect(acceptor.local_endpoint());
  tcp::socket server = acceptor.accept();

  bool ok = false;
  asio::co_spawn(ctx, receive_record(server), asio::detached);
  asio::co_spawn(
      ctx, [&]() -> asio::awaitable<void> { ok = co_await send_record(client, "greeting:", "hello, graph"); },
      asio::detached);
  ctx.run();
  return ok ? 0 : 1;
}
