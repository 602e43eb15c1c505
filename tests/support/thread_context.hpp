//
// tests/support/thread_context.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// An io_context run by a thread of its own, which a test can freeze: a node on it stops dead (its sockets stay open
// and say nothing, as a crashed host's would) while the test's own context goes on.
//
#pragma once

#include "graph_support.hpp"

#include <peergraph/graph.hpp>

#include <asio/awaitable.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

namespace peergraph::test {

class thread_context
{
public:
  thread_context() : work_(asio::make_work_guard(io_)), runner_([this] { io_.run(); }) {}
  ~thread_context() { freeze(); }
  thread_context(const thread_context&) = delete;
  thread_context& operator=(const thread_context&) = delete;

  [[nodiscard]] asio::io_context& io() noexcept { return io_; }

  /// Stops the context and its thread: whatever runs on it stops where it is.
  void freeze()
  {
    io_.stop();
    if (runner_.joinable())
      runner_.join();
  }

  /// After freeze(): destroys `graph` (of this context) and runs the context on a thread again until its close is
  /// done (at most 10 s), while the caller's context goes on.
  asio::awaitable<void> close(std::unique_ptr<peergraph::graph>& graph)
  {
    using namespace std::chrono_literals;
    graph.reset();
    work_.reset();
    io_.restart();
    std::atomic<bool> finished{false};
    std::thread closer([&] {
      io_.run_for(10s);
      finished = true;
    });
    for (int i = 0; i < 2000 && !finished; ++i)
      co_await pause(5ms);
    closer.join();
  }

private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread runner_;
};

} // namespace peergraph::test
