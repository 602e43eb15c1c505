//
// peergraph/use_expected.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// The default completion token: inside an asio::awaitable coroutine, `co_await op(args...)` yields
// `expected<T, peer_error>` instead of throwing. This is the one place where an operation's
// `void(std::error_code, T)` completion becomes an expected.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>

#include <concepts>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace peergraph {

/// Completion token that makes an operation awaitable as `asio::awaitable<expected<T, peer_error>>`.
///
/// Every peergraph operation uses it by default, and every operation also accepts any other Asio completion token
/// (callbacks, `asio::use_future`, `asio::use_awaitable`, deferred), with the completion signature
/// `void(std::error_code, T)`.
///
/// @code
/// asio::awaitable<void> session(asio::ip::tcp::socket& socket, std::span<const peergraph::wsabuf> buffers) {
///   auto sent = co_await peergraph::async_send(socket, buffers); // default token: use_expected
///   if (!sent)
///     std::cerr << "send failed: " << sent.error().message() << '\n';
/// }
/// @endcode
struct use_expected_t
{
  constexpr use_expected_t() noexcept = default;

  /// Adapts an executor so that use_expected is the default token of I/O objects using it.
  template <class InnerExecutor>
  struct executor_with_default : InnerExecutor
  {
    using default_completion_token_type = use_expected_t;

    template <class InnerExecutor1>
      requires(!std::is_same_v<std::decay_t<InnerExecutor1>, executor_with_default> &&
               std::is_convertible_v<InnerExecutor1, InnerExecutor>)
    executor_with_default(const InnerExecutor1& ex) noexcept // NOLINT: implicit like Asio's own adapters
        : InnerExecutor(ex)
    {
    }
  };

  /// The I/O object type `T` rebound to an executor that defaults to use_expected.
  template <class T>
  using as_default_on_t = typename T::template rebind_executor<executor_with_default<typename T::executor_type>>::other;
};

/// The token object; operations default to it.
inline constexpr use_expected_t use_expected{};

namespace detail {

/// The error of a failed completion `(ec, value)`: a `std::size_t` value is the count of bytes the operation moved
/// before it failed (Asio's and Winsock's convention), kept as peer_error::bytes_transferred().
template <class T, class Value>
peer_error completion_error(const std::error_code& ec, [[maybe_unused]] const Value& value) noexcept
{
  peer_error error(ec);
  if constexpr (std::is_same_v<T, std::size_t> && std::is_convertible_v<Value, std::size_t>)
    error.set_bytes_transferred(static_cast<std::size_t>(value));
  return error;
}

/// Converts a completion's (error, value) pair into the expected the caller sees.
template <class T>
expected<T, peer_error> to_expected(const std::error_code& ec, T&& value)
{
  if (ec)
    return unexpected<peer_error>(completion_error<T>(ec, value));
  return expected<T, peer_error>(std::move(value));
}

inline expected<void, peer_error> to_expected(const std::error_code& ec)
{
  if (ec)
    return unexpected<peer_error>(peer_error(ec));
  return {};
}

/// An initiation that can finish synchronously before any handler exists: when it reports completion, the awaiting
/// coroutine continues at once and nothing is posted (the WSASend "returns 0" case).
template <class Initiation, class T, class... Args>
concept immediate_initiation = requires(Initiation& init, std::error_code& ec, T& value, Args&... args) {
  { init.try_immediate(ec, value, args...) } -> std::same_as<bool>;
};

/// An initiation that can finish synchronously and hands over its result itself, already as the expected the caller
/// sees (no default-constructed value to assign to): std::nullopt when it has to wait.
template <class Initiation, class T, class... Args>
concept immediate_result_initiation = requires(Initiation& init, Args&... args) {
  { init.try_immediate_result(args...) } -> std::same_as<std::optional<expected<T, peer_error>>>;
};

/// The same for operations that complete with an error code alone.
template <class Initiation, class... Args>
concept immediate_initiation_void = requires(Initiation& init, std::error_code& ec, Args&... args) {
  { init.try_immediate(ec, args...) } -> std::same_as<bool>;
};

/// The completion handler of a use_expected operation that has to wait: it resumes the awaiting coroutine with the
/// expected built straight from the completion's arguments. This is what use_awaitable's own handler does (the same
/// Asio machinery, asio/impl/use_awaitable.hpp), minus a second coroutine frame and a tuple per operation: going
/// through `as_tuple(use_awaitable)` costs about 500 instructions and two more moves of the value per co_await.
template <class Executor, class T, class... Args>
class expected_handler : public asio::detail::awaitable_handler_base<Executor, expected<T, peer_error>>
{
public:
  using asio::detail::awaitable_handler_base<Executor, expected<T, peer_error>>::awaitable_handler_base;

  // The value is forwarded straight into the coroutine's result, which is constructed from it in place: no copy of
  // the completion's arguments and no intermediate expected.
  template <class... Values>
    requires(sizeof...(Values) == sizeof...(Args))
  void operator()(const std::error_code& ec, Values&&... values)
  {
    auto* frame = this->frame();
    frame->attach_thread(this);
    if constexpr (sizeof...(Values) == 0) {
      if (ec)
        frame->return_value(unexpected<peer_error>(peer_error(ec)));
      else
        frame->return_value(expected<void, peer_error>());
    } else if (ec) {
      frame->return_value(unexpected<peer_error>(completion_error<T>(ec, values...)));
    } else {
      frame->return_value(std::forward<Values>(values)...); // expected<T>'s value constructor, in the frame
    }
    frame->clear_cancellation_slot();
    frame->pop_frame();
    this->pump();
  }
};

/// Starts `initiation` with an expected_handler that owns the awaiting coroutine's thread of execution from here on.
template <class Handler, class Frame, class Initiation, class... InitArgs>
Handler* initiate_expected(Frame* frame, Initiation& initiation, InitArgs&... args)
{
  std::move(initiation)(Handler(frame->detach_thread()), std::move(args)...);
  return nullptr; // the coroutine stays suspended: the handler resumes it
}

} // namespace detail
} // namespace peergraph

namespace asio {

/// use_expected with a `void(std::error_code, T)` completion: the operation becomes an awaitable of expected<T>.
template <class T>
class async_result<peergraph::use_expected_t, void(std::error_code, T)>
{
public:
  using return_type = asio::awaitable<peergraph::expected<T, peergraph::peer_error>>;

  // The arguments are taken by value, so they are captured when the operation is called, not when it is awaited.
  template <class Initiation, class... InitArgs>
  static return_type initiate(Initiation initiation, peergraph::use_expected_t, InitArgs... args)
  {
    if constexpr (peergraph::detail::immediate_result_initiation<Initiation, T, InitArgs...>) {
      if (auto result = initiation.try_immediate_result(args...))
        co_return std::move(*result);
    } else if constexpr (peergraph::detail::immediate_initiation<Initiation, T, InitArgs...>) {
      std::error_code ec;
      T value{};
      if (initiation.try_immediate(ec, value, args...))
        co_return peergraph::detail::to_expected(ec, std::move(value));
    }
    using handler_type = peergraph::detail::expected_handler<asio::any_io_executor, T, T>;
    co_await
        [&](auto* frame) { return peergraph::detail::initiate_expected<handler_type>(frame, initiation, args...); };
    for (;;) {
    } // never reached: the handler completes this coroutine with its result
  }
};

/// use_expected with a `void(std::error_code)` completion: the operation becomes an awaitable of expected<void>.
template <>
class async_result<peergraph::use_expected_t, void(std::error_code)>
{
public:
  using return_type = asio::awaitable<peergraph::expected<void, peergraph::peer_error>>;

  template <class Initiation, class... InitArgs>
  static return_type initiate(Initiation initiation, peergraph::use_expected_t, InitArgs... args)
  {
    if constexpr (peergraph::detail::immediate_initiation_void<Initiation, InitArgs...>) {
      std::error_code ec;
      if (initiation.try_immediate(ec, args...))
        co_return peergraph::detail::to_expected(ec);
    }
    using handler_type = peergraph::detail::expected_handler<asio::any_io_executor, void>;
    co_await
        [&](auto* frame) { return peergraph::detail::initiate_expected<handler_type>(frame, initiation, args...); };
    for (;;) {
    } // never reached: the handler completes this coroutine with its result
  }
};

} // namespace asio

namespace peergraph::detail {

/// asio::async_initiate with the initiation's one argument made by `make_argument()` where it is needed. For
/// use_expected the argument is made straight in the parameter of the coroutine that awaits the operation, so a
/// large one (a send request, about 280 bytes) is built once rather than built and then moved there, as passing it
/// through async_initiate would; every other token goes through async_initiate.
template <class CompletionToken, class Signature, class Initiation, class MakeArgument>
auto async_initiate_made(Initiation&& initiation, CompletionToken& token, MakeArgument&& make_argument)
{
  if constexpr (std::is_same_v<std::decay_t<CompletionToken>, use_expected_t>)
    return asio::async_result<use_expected_t, Signature>::initiate(std::forward<Initiation>(initiation), token,
                                                                   std::forward<MakeArgument>(make_argument)());
  else
    return asio::async_initiate<CompletionToken, Signature>(std::forward<Initiation>(initiation), token,
                                                            std::forward<MakeArgument>(make_argument)());
}

} // namespace peergraph::detail
