//
// peergraph/detail/event_queue.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The bounded queue between a graph's connection readers and next_event(). Readers that find it full wait until it
// has drained to half its depth (not for every single free slot), so a fast reader and a slower consumer meet once
// per half-queue rather than once per event. It also keeps the graph's budget of payload bytes (messages being
// received and messages queued): a reader charges a payload's buffer as it grows, and the bytes come back when the
// application takes the message. Used only on the graph's serialized context.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/detail/block_pool.hpp>
#include <peergraph/detail/pooled_post.hpp>
#include <peergraph/detail/ring_queue.hpp>
#include <peergraph/event.hpp>

#include <asio/associated_allocator.hpp>
#include <asio/associated_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

namespace peergraph::detail {

/// A waiting operation with a type-erased completion handler, linked into a FIFO.
template <class... Args>
class waiting_completion
{
public:
  /// Delivers the result through the handler's executor (never inline) and frees the operation.
  virtual void complete(std::error_code ec, Args&&... args) = 0;

  /// Delivers the result inline when the caller runs on the handler's executor, else as complete() does. Only for
  /// callers at the bottom of a handler of their own, which expect the handler to run before this returns.
  virtual void complete_inline(std::error_code ec, Args&&... args) = 0;

  waiting_completion* next = nullptr;

protected:
  waiting_completion() noexcept = default;
  waiting_completion(const waiting_completion&) = delete;
  waiting_completion& operator=(const waiting_completion&) = delete;
  ~waiting_completion() = default;
};

template <class Handler, class Executor, class... Args>
class waiting_completion_for final : public waiting_completion<Args...>
{
public:
  using allocator_type = typename std::allocator_traits<
      asio::associated_allocator_t<Handler, pool_allocator<void>>>::template rebind_alloc<waiting_completion_for>;

  static waiting_completion<Args...>* create(Handler&& handler, const Executor& fallback)
  {
    allocator_type alloc(asio::get_associated_allocator(handler, pool_allocator<void>()));
    auto* op = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    std::allocator_traits<allocator_type>::construct(alloc, op, std::move(handler), fallback);
    return op;
  }

  waiting_completion_for(Handler&& handler, const Executor& fallback)
      : handler_(std::move(handler)), work_(asio::prefer(asio::get_associated_executor(handler_, fallback),
                                                         asio::execution::outstanding_work.tracked)),
        on_fallback_(runs_on(handler_, fallback))
  {
  }

  void complete(std::error_code ec, Args&&... args) override { deliver(false, ec, std::move(args)...); }

  void complete_inline(std::error_code ec, Args&&... args) override { deliver(true, ec, std::move(args)...); }

private:
  /// Whether the handler's executor is `fallback` itself, the graph's context.
  static bool runs_on(const Handler& handler, const Executor& fallback) noexcept
  {
    if constexpr (std::is_same_v<asio::associated_executor_t<Handler, Executor>, Executor>)
      return asio::get_associated_executor(handler, fallback) == fallback;
    else
      return false;
  }

  /// Frees the operation, then runs the handler through its executor: dispatched (inline when allowed there) or
  /// posted. Inline on the graph's context, where the caller runs, the handler is called directly: that is what
  /// dispatch would do, without wrapping the handler and its event in two more function objects.
  void deliver(bool inline_allowed, std::error_code ec, Args&&... args)
  {
    const bool direct = inline_allowed && on_fallback_;
    auto handler = std::move(handler_);
    auto work = std::move(work_); // released after the handler ran, as dispatch would
    destroy();
    if (direct)
      return std::move(handler)(ec, std::move(args)...);
    const auto alloc = asio::get_associated_allocator(handler, pool_allocator<void>());
    auto call = [handler = std::move(handler), ec, ... values = std::move(args)]() mutable {
      std::move(handler)(ec, std::move(values)...);
    };
    if (inline_allowed)
      dispatch_with(work, alloc, std::move(call));
    else
      post_with(work, alloc, std::move(call));
  }

  void destroy() noexcept
  {
    allocator_type alloc(asio::get_associated_allocator(handler_, pool_allocator<void>()));
    std::allocator_traits<allocator_type>::destroy(alloc, this);
    std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
  }

  Handler handler_;
  std::decay_t<decltype(asio::prefer(std::declval<asio::associated_executor_t<Handler, Executor>>(),
                                     asio::execution::outstanding_work.tracked))>
      work_;
  bool on_fallback_; // the handler's executor is the graph's context
};

template <class... Args>
class waiting_list
{
public:
  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }

  void push(waiting_completion<Args...>* op) noexcept
  {
    op->next = nullptr;
    if (tail_ != nullptr)
      tail_->next = op;
    else
      head_ = op;
    tail_ = op;
  }

  waiting_completion<Args...>* pop() noexcept
  {
    auto* op = head_;
    if (op != nullptr) {
      head_ = op->next;
      if (head_ == nullptr)
        tail_ = nullptr;
    }
    return op;
  }

private:
  waiting_completion<Args...>* head_ = nullptr;
  waiting_completion<Args...>* tail_ = nullptr;
};

/// The event queue itself. `Executor` is the graph's context, the fallback executor of handlers without their own.
template <class Executor>
class event_queue
{
public:
  event_queue(const Executor& executor, std::size_t depth, std::uint64_t payload_budget)
      : executor_(executor), depth_(depth), budget_(payload_budget)
  {
  }

  event_queue(const event_queue&) = delete;
  event_queue& operator=(const event_queue&) = delete;
  ~event_queue() { close(); }

  [[nodiscard]] bool closed() const noexcept { return closed_; }

  /// Takes the oldest event; false when there is none.
  bool try_pop(graph_event& out)
  {
    return try_pop_with([&out](graph_event&& event) { out = std::move(event); });
  }

  /// Takes the oldest event by passing it to `take(graph_event&&)`, which moves it where it belongs (no default
  /// constructed event in between); false when there is none.
  template <class Take>
  bool try_pop_with(Take&& take)
  {
    if (items_.empty())
      return false;
    release_payload(items_.front());
    std::forward<Take>(take)(std::move(items_.front()));
    items_.pop_front();
    wake_producers();
    return true;
  }

  /// Takes `bytes` of the payload budget for a message being received; false, with nothing taken, when that would
  /// exceed the budget (wait with async_wait_space, then try again).
  [[nodiscard]] bool try_charge(std::uint64_t bytes) noexcept
  {
    if (bytes > budget_ - std::min(held_, budget_))
      return false;
    held_ += bytes;
    return true;
  }

  /// Gives back `bytes` of the budget: a message that will not be queued after all (its connection ended).
  void refund(std::uint64_t bytes) noexcept
  {
    held_ -= std::min(held_, bytes);
    wake_producers();
  }

  /// Waits for an event: `handler(std::error_code, graph_event)`; operation_aborted when the queue closes first.
  template <class Handler>
  void async_pop(Handler&& handler)
  {
    using op = waiting_completion_for<std::decay_t<Handler>, Executor, graph_event>;
    graph_event event;
    if (closed_) {
      op::create(std::forward<Handler>(handler), executor_)->complete(asio::error::operation_aborted, {});
    } else if (try_pop(event)) {
      op::create(std::forward<Handler>(handler), executor_)->complete({}, std::move(event));
    } else {
      consumers_.push(op::create(std::forward<Handler>(handler), executor_));
    }
  }

  /// Hands `event` to a waiting consumer or queues it; false when the queue is full (wait with async_wait_space).
  bool try_push(graph_event& event)
  {
    if (!try_push_quietly(event))
      return false;
    wake_consumers(/*inline_allowed=*/false);
    return true;
  }

  /// Queues `event` (a graph_event or one of its alternatives) without waking a waiting consumer, so that a reader
  /// can queue every event of one read and wake the consumer once for all of them (wake_consumers); false when the
  /// queue is full, and `event` is left as it was.
  template <class Event>
  bool try_push_quietly(Event& event)
  {
    if (closed_)
      return true; // dropped: nobody will ever read it
    if (items_.size() >= depth_)
      return false;
    items_.emplace_back(std::move(event));
    return true;
  }

  /// Whether try_push would fail now.
  [[nodiscard]] bool full() const noexcept { return !closed_ && items_.size() >= depth_; }

  /// Hands queued events to waiting consumers, oldest first. With `inline_allowed` a consumer on the caller's
  /// executor runs before this returns: for a reader at the bottom of its own handler, which saves a trip through the
  /// executor's queue per message.
  void wake_consumers(bool inline_allowed)
  {
    while (!items_.empty() && !consumers_.empty()) {
      auto* consumer = consumers_.pop();
      release_payload(items_.front());
      graph_event event(std::move(items_.front()));
      items_.pop_front();
      if (inline_allowed)
        consumer->complete_inline({}, std::move(event));
      else
        consumer->complete({}, std::move(event));
    }
    wake_producers(); // payload bytes went to the application: a reader waiting for the budget may go on
  }

  /// Queues an event of the graph itself whatever the depth: there are at most a few per connection, and they must
  /// not be lost or hold anything up.
  void force_push(graph_event& event)
  {
    if (closed_)
      return;
    items_.push_back(std::move(event));
    wake_consumers(/*inline_allowed=*/false);
  }

  /// Waits until the queue has drained to half its depth and `payload_bytes` more fit in the payload budget:
  /// `handler(std::error_code)`. Waiters are woken together once the one that needs least would fit; each then
  /// checks again for what it needs.
  template <class Handler>
  void async_wait_space(Handler&& handler, std::uint64_t payload_bytes = 0)
  {
    using op = waiting_completion_for<std::decay_t<Handler>, Executor>;
    auto* waiter = op::create(std::forward<Handler>(handler), executor_);
    if (closed_ || (items_.size() <= depth_ / 2 && payload_bytes <= budget_ - std::min(held_, budget_))) {
      waiter->complete(closed_ ? std::error_code(asio::error::operation_aborted) : std::error_code{});
      return;
    }
    smallest_need_ = std::min(smallest_need_, payload_bytes);
    producers_.push(waiter);
  }

  /// Completes every waiting consumer and producer with operation_aborted and drops the queued events.
  void close()
  {
    closed_ = true;
    items_.clear();
    held_ = 0;
    while (auto* consumer = consumers_.pop())
      consumer->complete(asio::error::operation_aborted, {});
    while (auto* producer = producers_.pop())
      producer->complete(asio::error::operation_aborted);
    smallest_need_ = ~std::uint64_t{0};
  }

private:
  /// The queued event leaves the queue: its payload no longer counts against the budget.
  void release_payload(const graph_event& event) noexcept
  {
    if (const auto* data = std::get_if<incoming_data>(&event))
      held_ -= std::min<std::uint64_t>(held_, data->payload.size());
  }

  /// Wakes the readers waiting for room once the queue is at most half full and the least of their needs fits.
  void wake_producers()
  {
    if (!producers_.empty()) [[unlikely]]
      wake_waiting_producers();
  }

  PEERGRAPH_COLD void wake_waiting_producers()
  {
    if (items_.size() > depth_ / 2 || smallest_need_ > budget_ - std::min(held_, budget_))
      return;
    smallest_need_ = ~std::uint64_t{0};
    while (auto* producer = producers_.pop())
      producer->complete({});
  }

  Executor executor_;
  std::size_t depth_;
  std::uint64_t budget_;   // payload bytes readers may hold at once (graph_properties::max_incoming_bytes)
  std::uint64_t held_ = 0; // payload bytes charged and not yet taken by the application
  std::uint64_t smallest_need_ = ~std::uint64_t{0}; // the least budget a waiting reader needs
  ring_queue<graph_event> items_;
  waiting_list<graph_event> consumers_;
  waiting_list<> producers_;
  bool closed_ = false;
};

} // namespace peergraph::detail
