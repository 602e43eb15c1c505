//
// tests/support/socket_pair.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Connected loopback socket pairs and byte patterns for the network tests.
//
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace peergraph::test {

/// A connected TCP pair on 127.0.0.1 (or ::1 with `v6`), both ends on `ex`.
template <class Executor>
std::pair<asio::ip::tcp::socket, asio::ip::tcp::socket> tcp_pair(const Executor& ex, bool v6 = false)
{
  const auto address =
      v6 ? asio::ip::address(asio::ip::address_v6::loopback()) : asio::ip::address(asio::ip::address_v4::loopback());
  asio::ip::tcp::acceptor acceptor(ex, asio::ip::tcp::endpoint(address, 0));
  asio::ip::tcp::socket client(ex);
  client.connect(acceptor.local_endpoint());
  asio::ip::tcp::socket server = acceptor.accept();
  client.set_option(asio::ip::tcp::no_delay(true));
  return {std::move(client), std::move(server)};
}

#if !defined(_WIN32) // AF_UNIX socket pairs: Asio makes them on Windows 10, Wine cannot
/// A connected AF_UNIX stream pair.
template <class Executor>
std::pair<asio::local::stream_protocol::socket, asio::local::stream_protocol::socket> unix_pair(const Executor& ex)
{
  asio::local::stream_protocol::socket a(ex);
  asio::local::stream_protocol::socket b(ex);
  asio::local::connect_pair(a, b);
  return {std::move(a), std::move(b)};
}
#endif

/// Shrinks the kernel buffers so that a few hundred KiB fill them and sends must wait for the reader. The receive
/// side stays large enough to keep TCP out of zero-window probing, which would stall the test for 200 ms at a time.
template <class Socket>
void shrink_buffers(Socket& sender, Socket& receiver)
{
  sender.set_option(asio::socket_base::send_buffer_size(16 * 1024));
  receiver.set_option(asio::socket_base::receive_buffer_size(64 * 1024));
}

/// Deterministic, position-dependent bytes: every offset of every stream has a known value, so reordering,
/// duplication and loss are all detected by comparing against it.
inline std::byte pattern_byte(std::uint32_t stream, std::size_t offset)
{
  const auto x = static_cast<std::uint32_t>(offset) * 2654435761U + stream * 40503U;
  return static_cast<std::byte>((x >> 13) ^ (x >> 5) ^ stream);
}

inline std::vector<std::byte> pattern(std::uint32_t stream, std::size_t size)
{
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; ++i)
    bytes[i] = pattern_byte(stream, i);
  return bytes;
}

} // namespace peergraph::test
