//
// benchmarks/asio_support.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Small pieces the Asio-based contenders share: sockets from the harness's connected descriptors, and failing the
// run on an error code or an escaped exception.
//
#pragma once

// First: with clang it turns on Asio 1.22's coroutine support, which must happen before any Asio header.
#include <peergraph/config.hpp>

#include "harness.hpp"

#include <asio/buffer.hpp>
#include <asio/error_code.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <exception>
#include <string>

namespace peergraph::bench {

using tcp = asio::ip::tcp;

/// A socket on `io` that owns the connected descriptor `fd`.
inline tcp::socket adopt(asio::io_context& io, int fd)
{
  tcp::socket s(io);
  asio::error_code ec;
  s.assign(tcp::v4(), fd, ec);
  if (ec)
    fail("assign: " + ec.message());
  return s;
}

/// Fails the run if `ec` holds an error.
inline void check(const asio::error_code& ec, const char* what)
{
  if (ec)
    fail(std::string(what) + ": " + ec.message());
}

/// co_spawn completion handler: an exception that escaped the coroutine fails the run.
struct fail_on_exception
{
  const char* what;

  void operator()(const std::exception_ptr& e) const
  {
    if (!e)
      return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      fail(std::string(what) + ": " + x.what());
    }
  }
};

/// The buffers of data frame `seq` when its payload is a single piece: the header, then the payload.
inline std::array<asio::const_buffer, 2> frame_buffers(const frame_layout& layout, std::uint64_t seq)
{
  return {asio::buffer(layout.header), asio::buffer(payload_of(seq), layout.payload_bytes)};
}

/// Fills `bufs` (1 + layout.pieces entries) with the header and the payload pieces of data frame `seq`.
inline void fill_gather_buffers(std::vector<asio::const_buffer>& bufs, const frame_layout& layout, std::uint64_t seq)
{
  bufs[0] = asio::buffer(layout.header);
  const std::uint8_t* payload = payload_of(seq);
  for (std::size_t i = 0; i < layout.pieces; ++i)
    bufs[1 + i] = asio::buffer(payload + i * layout.piece_bytes(), layout.piece_bytes());
}

} // namespace peergraph::bench
