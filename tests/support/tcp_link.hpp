//
// tests/support/tcp_link.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// A TCP forwarder that a test can cut: it listens on 127.0.0.1, connects every connection it accepts to a target
// endpoint and carries the bytes both ways, until cut() closes everything it carries at once (a network link that
// goes down, seen from both ends as the end of their connection).
//
#pragma once

#include "graph_support.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

namespace peergraph::test {

/// A cuttable TCP forwarder. Connect to endpoint() instead of the target: each connection it accepts gets one
/// connection of its own to the target, and the bytes go through a fixed buffer per direction (a slow reader slows
/// the writer through TCP, nothing piles up here). An end of stream is passed on as a shutdown of the other side's
/// sending half; an error closes both sockets.
///
/// cut() closes every socket of every connection it carries (so both remotes see their connection end) and closes
/// every connection accepted after it as soon as it is accepted. close() (and the destructor) also stops listening.
///
/// Not thread-safe: use it on the thread that runs its executor (an io_context run by one thread). What it started
/// ends with operation_aborted when that context runs next, or goes away with the context.
class tcp_link
{
public:
  /// Listens on 127.0.0.1 (a port of the kernel's choice) and forwards to `target`; `buffer_size` bytes of buffer
  /// per direction of each connection.
  tcp_link(const asio::any_io_executor& executor, asio::ip::tcp::endpoint target, std::size_t buffer_size = 16 * 1024)
      : state_(std::make_shared<state>(executor, std::move(target), buffer_size))
  {
    asio::co_spawn(executor, accept_loop(state_), asio::detached);
  }
  tcp_link(const tcp_link&) = delete;
  tcp_link& operator=(const tcp_link&) = delete;
  ~tcp_link() { close(); }

  /// Where to connect to reach the target through this link.
  [[nodiscard]] const asio::ip::tcp::endpoint& endpoint() const noexcept { return state_->listening_at; }

  /// The connections it carries now (accepted and not ended), those still connecting to the target included.
  [[nodiscard]] std::size_t carried() const noexcept { return state_->pipes.size(); }
  /// The connections it accepted so far, those it refused after the cut included.
  [[nodiscard]] std::size_t accepted() const noexcept { return state_->accepted; }
  [[nodiscard]] bool is_cut() const noexcept { return state_->cut; }

  /// Closes every connection it carries, both sockets of each, at once; connections accepted from now on are closed
  /// at once too.
  void cut()
  {
    state_->cut = true;
    auto pipes = std::exchange(state_->pipes, {});
    for (auto& p : pipes)
      p->close();
  }

  /// Cuts and stops listening.
  void close()
  {
    cut();
    std::error_code ec;
    state_->acceptor.close(ec);
  }

private:
  using tcp = asio::ip::tcp;

  /// Most connections one link accepts, and most reads one direction of a connection makes: every loop is bounded.
  static constexpr std::size_t max_accepts = 100'000;
  static constexpr std::size_t max_reads = 100'000'000;

  /// One carried connection: the accepted socket and the one to the target, a buffer per direction.
  struct pipe
  {
    pipe(tcp::socket accepted, std::size_t buffer_size)
        : inbound(std::move(accepted)), outbound(inbound.get_executor()), up(buffer_size), down(buffer_size)
    {
    }

    void close()
    {
      std::error_code ec;
      inbound.close(ec);
      outbound.close(ec);
    }

    tcp::socket inbound;  // accepted from the connecting side
    tcp::socket outbound; // to the target
    std::vector<std::byte> up;
    std::vector<std::byte> down;
    int open_directions = 2;
  };

  /// What the link's coroutines share with it; they keep it alive until they end.
  struct state
  {
    state(const asio::any_io_executor& executor, tcp::endpoint to, std::size_t size)
        : acceptor(executor, tcp::endpoint(asio::ip::address_v4::loopback(), 0)),
          listening_at(acceptor.local_endpoint()), target(std::move(to)), buffer_size(size)
    {
    }

    tcp::acceptor acceptor;
    tcp::endpoint listening_at;
    tcp::endpoint target;
    std::size_t buffer_size;
    std::vector<std::shared_ptr<pipe>> pipes; // carried now
    std::size_t accepted = 0;
    bool cut = false;
  };

  static void finish(state& s, const std::shared_ptr<pipe>& p)
  {
    p->close();
    std::erase(s.pipes, p);
  }

  static asio::awaitable<void> accept_loop(std::shared_ptr<state> s)
  {
    for (std::size_t i = 0; i < max_accepts; ++i) {
      auto [ec, socket] = co_await s->acceptor.async_accept(use_tuple);
      if (ec == asio::error::connection_aborted)
        continue; // the remote gave up before it was accepted
      if (ec)
        co_return; // closed
      ++s->accepted;
      if (s->cut) {
        std::error_code ignored;
        socket.close(ignored);
        continue;
      }
      auto p = std::make_shared<pipe>(std::move(socket), s->buffer_size);
      s->pipes.push_back(p);
      asio::co_spawn(s->acceptor.get_executor(), carry(s, std::move(p)), asio::detached);
    }
  }

  /// Connects `p` to the target, then pumps both directions.
  static asio::awaitable<void> carry(std::shared_ptr<state> s, std::shared_ptr<pipe> p)
  {
    auto [ec] = co_await p->outbound.async_connect(s->target, use_tuple);
    if (ec || !p->inbound.is_open()) {
      finish(*s, p);
      co_return;
    }
    std::error_code ignored;
    p->inbound.set_option(tcp::no_delay(true), ignored);
    p->outbound.set_option(tcp::no_delay(true), ignored);
    asio::co_spawn(s->acceptor.get_executor(), pump(s, p, p->inbound, p->outbound, p->up), asio::detached);
    asio::co_spawn(s->acceptor.get_executor(), pump(s, p, p->outbound, p->inbound, p->down), asio::detached);
  }

  /// Copies what `from` reads to `to` through `buffer` (members of `p`, which the coroutine keeps alive).
  static asio::awaitable<void> pump(std::shared_ptr<state> s, std::shared_ptr<pipe> p, tcp::socket& from,
                                    tcp::socket& to, std::vector<std::byte>& buffer)
  {
    for (std::size_t i = 0; i < max_reads; ++i) {
      auto [ec, n] = co_await from.async_read_some(asio::buffer(buffer), use_tuple);
      if (n != 0) {
        auto [written, m] = co_await asio::async_write(to, asio::buffer(buffer.data(), n), use_tuple);
        (void)m;
        if (written)
          break;
      }
      if (ec == asio::error::eof) {
        // This direction is done: pass the end on and let the other direction finish.
        std::error_code ignored;
        to.shutdown(tcp::socket::shutdown_send, ignored);
        if (--p->open_directions > 0)
          co_return;
        break;
      }
      if (ec)
        break;
    }
    finish(*s, p);
  }

  std::shared_ptr<state> state_;
};

} // namespace peergraph::test
