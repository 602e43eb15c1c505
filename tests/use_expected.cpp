#include <peergraph/use_expected.hpp>
// The header under test comes first: it must be self-contained.

#include "support/co_test.hpp"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_future.hpp>

#include <doctest/doctest.h>

#include <string>

namespace {

using peergraph::peer_errc;

/// A minimal asynchronous operation completing with `ec` and `value` through a posted handler.
template <class CompletionToken>
auto async_answer(asio::io_context& ctx, std::error_code ec, int value, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, int)>(
      [&ctx](auto handler, std::error_code e, int v) {
        asio::post(ctx, [h = std::move(handler), e, v]() mutable { std::move(h)(e, v); });
      },
      token, ec, value);
}

template <class CompletionToken>
auto async_done(asio::io_context& ctx, std::error_code ec, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      [&ctx](auto handler, std::error_code e) {
        asio::post(ctx, [h = std::move(handler), e]() mutable { std::move(h)(e); });
      },
      token, ec);
}

/// An operation that can finish synchronously: when `ready`, try_immediate answers and nothing is posted.
struct immediate_initiation
{
  asio::io_context* ctx;
  int* posted;

  bool try_immediate(std::error_code& ec, int& value, bool ready, int answer) const
  {
    if (!ready)
      return false;
    ec = {};
    value = answer;
    return true;
  }

  template <class Handler>
  void operator()(Handler&& handler, bool, int answer) const
  {
    ++*posted;
    asio::post(*ctx,
               [h = std::forward<Handler>(handler), answer]() mutable { std::move(h)(std::error_code{}, answer); });
  }
};

/// An operation that fails at once after moving some bytes (a send that the kernel partly took, then refused).
struct immediate_bytes
{
  bool try_immediate(std::error_code& ec, std::size_t& value, std::size_t moved) const
  {
    ec = std::make_error_code(std::errc::broken_pipe);
    value = moved;
    return true;
  }

  template <class Handler>
  void operator()(Handler&& handler, std::size_t moved) const
  {
    std::forward<Handler>(handler)(std::make_error_code(std::errc::broken_pipe), moved);
  }
};

/// A value that counts how often it is copied and moved.
struct counted
{
  static inline int copies = 0;
  static inline int moves = 0;

  int value = 0;

  explicit counted(int v) noexcept : value(v) {}
  counted(const counted& other) noexcept : value(other.value) { ++copies; }
  counted(counted&& other) noexcept : value(other.value) { ++moves; }
  counted& operator=(const counted&) = delete;
  counted& operator=(counted&&) = delete;
  ~counted() = default;
};

/// Completes through a posted handler with a counted value, counting only from the moment the handler is called.
template <class CompletionToken>
auto async_counted(asio::io_context& ctx, int value, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, counted)>(
      [&ctx](auto handler, int v) {
        asio::post(ctx, [h = std::move(handler), v]() mutable {
          counted result(v);
          counted::copies = 0;
          counted::moves = 0;
          std::move(h)(std::error_code{}, std::move(result));
        });
      },
      token, value);
}

} // namespace

TEST_SUITE_BEGIN("use_expected");

CO_TEST_CASE("a value completion becomes an expected holding the value")
{
  auto ok = co_await async_answer(ctx, {}, 42, peergraph::use_expected);
  REQUIRE(ok.has_value());
  CHECK(*ok == 42);
}

CO_TEST_CASE("an error completion becomes an expected holding the mapped peer_error and the original code")
{
  const std::error_code reset = std::make_error_code(std::errc::connection_reset);
  auto failed = co_await async_answer(ctx, reset, 0, peergraph::use_expected);
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error() == peer_errc::connection_reset);
  CHECK(failed.error().cause() == reset);

  auto aborted = co_await async_done(ctx, asio::error::operation_aborted, peergraph::use_expected);
  REQUIRE_FALSE(aborted.has_value());
  CHECK(aborted.error() == peer_errc::operation_aborted);
  auto fine = co_await async_done(ctx, {}, peergraph::use_expected);
  CHECK(fine.has_value());
}

CO_TEST_CASE("a failed operation that moves bytes keeps how many it moved in the peer_error")
{
  // Asio's and Winsock's convention: the std::size_t of a failed (error, bytes) completion is what went through.
  const std::error_code reset = std::make_error_code(std::errc::connection_reset);
  peergraph::use_expected_t token;
  auto waited = co_await asio::async_initiate<peergraph::use_expected_t, void(std::error_code, std::size_t)>(
      [&](auto handler) {
        asio::post(ctx, [h = std::move(handler), reset]() mutable { std::move(h)(reset, std::size_t{4096}); });
      },
      token);
  REQUIRE_FALSE(waited.has_value());
  CHECK(waited.error() == peer_errc::connection_reset);
  CHECK(waited.error().bytes_transferred() == 4096);

  auto at_once = co_await asio::async_initiate<peergraph::use_expected_t, void(std::error_code, std::size_t)>(
      immediate_bytes{}, token, std::size_t{17});
  REQUIRE_FALSE(at_once.has_value());
  CHECK(at_once.error() == peer_errc::shut_down);
  CHECK(at_once.error().bytes_transferred() == 17);

  // Other values are not byte counts, and an error made from a code alone moved nothing.
  auto other = co_await async_answer(ctx, reset, 99, peergraph::use_expected);
  REQUIRE_FALSE(other.has_value());
  CHECK(other.error().bytes_transferred() == 0);
  CHECK(peergraph::peer_error(reset).bytes_transferred() == 0);
  CHECK(peergraph::peer_error(peer_errc::timed_out).set_bytes_transferred(3).bytes_transferred() == 3);
}

CO_TEST_CASE("a waiting operation's value reaches the coroutine without a copy, moved into its result once")
{
  auto result = co_await async_counted(ctx, 5, peergraph::use_expected);
  REQUIRE(result.has_value());
  CHECK(result->value == 5);
  CHECK(counted::copies == 0);
  // One move into the coroutine's result, one out of it into `result`: large values (a graph event) pay per move.
  CHECK(counted::moves <= 2);
}

CO_TEST_CASE("arguments are captured when the operation is called, not when it is awaited")
{
  std::string text = "captured";
  auto op = async_answer(ctx, {}, static_cast<int>(text.size()), peergraph::use_expected);
  text = "changed after the call, before the await";
  auto result = co_await std::move(op);
  REQUIRE(result.has_value());
  CHECK(*result == 8);
}

CO_TEST_CASE("an operation that can finish at once does so without posting anything")
{
  int posted = 0;
  bool other_ran = false;
  asio::post(ctx, [&] { other_ran = true; });
  peergraph::use_expected_t token;
  auto now = co_await asio::async_initiate<peergraph::use_expected_t, void(std::error_code, int)>(
      immediate_initiation{&ctx, &posted}, token, true, 7);
  REQUIRE(now.has_value());
  CHECK(*now == 7);
  CHECK(posted == 0);
  CHECK_FALSE(other_ran); // the coroutine never went back to the executor

  auto later = co_await asio::async_initiate<peergraph::use_expected_t, void(std::error_code, int)>(
      immediate_initiation{&ctx, &posted}, token, false, 9);
  REQUIRE(later.has_value());
  CHECK(*later == 9);
  CHECK(posted == 1);
}

CO_TEST_CASE("an I/O object rebound with as_default_on_t defaults to use_expected")
{
  using timer = peergraph::use_expected_t::as_default_on_t<asio::steady_timer>;
  timer t(ctx);
  t.expires_after(std::chrono::milliseconds(1));
  auto waited = co_await t.async_wait();
  CHECK(waited.has_value());
}

TEST_SUITE_END();
