//
// peergraph/detail/pooled_post.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// post and dispatch for peergraph's own completions, with the queued operation's memory from a chosen allocator (the
// completion handler's own, the block pool by default), also through any_io_executor.
//
// asio::post honours a handler's associated allocator on a typed executor, but Asio 1.22's any_io_executor ignores
// it: every function object it queues takes one of the thread's two recycled blocks, and the heap once they are in
// use or too small. A sender whose socket fills up queues several completions at once, so each such episode reached
// the heap. Through an any_io_executor that wraps an io_context's executor (what asio::io_context hands out), the
// operation is queued on that executor itself.
//
#pragma once

#include <peergraph/detail/block_pool.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>

#include <type_traits>
#include <typeinfo>
#include <utility>

namespace peergraph::detail {

/// The executor of type Target inside `ex`, or null. Asio 1.22's any_executor::target() casts without checking the
/// type, so the type is compared first; without RTTI nothing can be told apart and every lookup fails.
template <class Target>
const Target* target_of(const asio::any_io_executor& ex) noexcept
{
#if !defined(ASIO_NO_TYPEID)
  if (ex && ex.target_type() == typeid(Target))
    return ex.target<Target>();
#else
  (void)ex;
#endif
  return nullptr;
}

/// Calls `f(executor)` with the io_context executor inside `ex` (with or without outstanding work), if there is one.
/// @return whether there was.
template <class F>
bool with_io_context_executor(const asio::any_io_executor& ex, F&& f)
{
  using untracked = asio::io_context::executor_type;
  using tracked =
      std::decay_t<decltype(asio::prefer(std::declval<untracked>(), asio::execution::outstanding_work.tracked))>;
  if (const auto* target = target_of<untracked>(ex)) {
    std::forward<F>(f)(*target);
    return true;
  }
  if (const auto* target = target_of<tracked>(ex)) {
    std::forward<F>(f)(*target);
    return true;
  }
  return false;
}

/// `f` with `Allocator` as its associated allocator, for Asio to allocate the operation that holds it. A nested
/// allocator_type rather than asio::bind_allocator, whose binder also forwards the associated executor: Asio then
/// takes the handler for one with an executor of its own and wraps it in a work-counting dispatcher.
template <class Allocator, class F>
class allocator_bound
{
public:
  using allocator_type = Allocator;

  allocator_bound(const Allocator& alloc, F f) : alloc_(alloc), f_(std::move(f)) {}

  [[nodiscard]] allocator_type get_allocator() const noexcept { return alloc_; }

  template <class... Args>
  void operator()(Args&&... args)
  {
    std::move(f_)(std::forward<Args>(args)...);
  }

private:
  [[no_unique_address]] Allocator alloc_;
  F f_;
};

template <class Allocator, class F>
allocator_bound<Allocator, std::decay_t<F>> with_allocator(const Allocator& alloc, F&& f)
{
  return {alloc, std::forward<F>(f)};
}

/// asio::post(ex, f), the queued operation allocated with `alloc`.
template <class Executor, class Allocator, class F>
void post_with(const Executor& ex, const Allocator& alloc, F&& f)
{
  if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
    const auto post_there = [&](const auto& io) { asio::post(io, with_allocator(alloc, std::forward<F>(f))); };
    if (with_io_context_executor(ex, post_there))
      return;
  }
  asio::post(ex, with_allocator(alloc, std::forward<F>(f)));
}

/// asio::dispatch(ex, f): `f` runs at once when the caller runs on `ex`, else is queued, allocated with `alloc`.
template <class Executor, class Allocator, class F>
void dispatch_with(const Executor& ex, const Allocator& alloc, F&& f)
{
  if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
    const auto dispatch_there = [&](const auto& io) { asio::dispatch(io, with_allocator(alloc, std::forward<F>(f))); };
    if (with_io_context_executor(ex, dispatch_there))
      return;
  }
  asio::dispatch(ex, with_allocator(alloc, std::forward<F>(f)));
}

} // namespace peergraph::detail
