//
// tests/support/co_test.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// Runs a coroutine test body on a fresh io_context with a time limit, so a hung operation fails the test instead of
// hanging the suite, and an escaped exception fails it with its message.
//
#pragma once

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <functional>
#include <string>

namespace peergraph::test {

/// Default time limit for one coroutine test; every test network loop is also bounded by count.
inline constexpr std::chrono::seconds default_test_timeout{20};

/// Runs `body` to completion on `ctx`, failing the current test on timeout or exception.
inline void run_coroutine_test(asio::io_context& ctx, std::function<asio::awaitable<void>()> body,
                               std::chrono::steady_clock::duration timeout = default_test_timeout)
{
  bool finished = false;
  std::exception_ptr failure;
  asio::co_spawn(ctx, std::move(body), [&](std::exception_ptr e) {
    finished = true;
    failure = e;
  });
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!finished && std::chrono::steady_clock::now() < deadline) {
    if (ctx.run_one_for(std::chrono::milliseconds(100)) == 0 && ctx.stopped())
      ctx.restart();
  }
  REQUIRE_MESSAGE(finished, "coroutine test did not finish within its time limit");
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      FAIL("exception escaped the test coroutine: " << e.what());
    } catch (...) {
      FAIL("unknown exception escaped the test coroutine");
    }
  }
}

} // namespace peergraph::test

#define PEERGRAPH_CO_TEST_CONCAT_(a, b) a##b
#define PEERGRAPH_CO_TEST_CONCAT(a, b) PEERGRAPH_CO_TEST_CONCAT_(a, b)

/// A doctest case whose body is a coroutine run on a fresh io_context named `ctx`, bounded by a time limit.
#define CO_TEST_CASE(name) CO_TEST_CASE_IMPL_(name, PEERGRAPH_CO_TEST_CONCAT(peergraph_co_test_, __LINE__))
#define CO_TEST_CASE_IMPL_(name, fn)                                                                                   \
  static asio::awaitable<void> fn(asio::io_context& ctx);                                                              \
  TEST_CASE(name)                                                                                                      \
  {                                                                                                                    \
    asio::io_context ctx;                                                                                              \
    ::peergraph::test::run_coroutine_test(ctx, [&ctx]() { return fn(ctx); });                                          \
  }                                                                                                                    \
  static asio::awaitable<void> fn([[maybe_unused]] asio::io_context& ctx)
