//
// peergraph/detail/bound_completion.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A completion handler that transforms its arguments before calling the user's handler, while keeping every
// association of that handler (executor, allocator, cancellation slot), so wrapping never changes where or how the
// user's handler runs.
//
#pragma once

#include <peergraph/error.hpp>

#include <asio/associator.hpp>

#include <system_error>
#include <utility>

namespace peergraph::detail {

/// Calls `transform(std::move(handler), args...)` when invoked.
template <class Handler, class Transform>
class bound_completion
{
public:
  bound_completion(Handler handler, Transform transform)
      : handler_(std::move(handler)), transform_(std::move(transform))
  {
  }

  template <class... Args>
  void operator()(Args&&... args)
  {
    transform_(std::move(handler_), std::forward<Args>(args)...);
  }

  Handler handler_;

private:
  Transform transform_;
};

/// The std::error_code a completion carries for `error`: the original OS or Asio code when it maps back to the same
/// condition, otherwise the peergraph code, so that use_expected recovers exactly `error.code()`.
inline std::error_code to_error_code(const peer_error& error) noexcept
{
  const std::error_code cause = error.cause();
  return to_peer_errc(cause) == error.code() ? cause : error.as_error_code();
}

} // namespace peergraph::detail

namespace asio {

template <template <class, class> class Associator, class Handler, class Transform, class DefaultCandidate>
struct associator<Associator, peergraph::detail::bound_completion<Handler, Transform>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate>
{
  static typename Associator<Handler, DefaultCandidate>::type get(
      const peergraph::detail::bound_completion<Handler, Transform>& h,
      const DefaultCandidate& c = DefaultCandidate()) noexcept
  {
    return Associator<Handler, DefaultCandidate>::get(h.handler_, c);
  }
};

} // namespace asio
