//
// peergraph/detail/graph/context.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The serialized context a graph keeps its state on, the I/O object types on it, and a cheap test of whether the
// calling thread runs it (the fast paths of send_data and next_event ask on every call).
//
#pragma once

#include <peergraph/detail/pooled_post.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/basic_socket_acceptor.hpp>
#include <asio/basic_stream_socket.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/strand.hpp>

#include <chrono>
#include <memory>

namespace peergraph::detail {

/// Tells whether the calling thread runs a context whose type says so itself.
template <class Context>
class direct_thread_check
{
public:
  explicit direct_thread_check(const Context& context) noexcept : context_(&context) {}
  bool operator()() const noexcept { return context_->running_in_this_thread(); }

private:
  const Context* context_;
};

/// The serialized context a graph keeps its state on: a strand of a multi-threaded executor, or the executor itself
/// when it already serializes its handlers (a strand, or an io_context, taken to be run by one thread as an implicit
/// strand).
template <class Executor>
struct graph_context
{
  using type = asio::strand<Executor>;
  using thread_check = direct_thread_check<type>;
  static type make(const Executor& ex) { return asio::make_strand(ex); }
};

template <class InnerExecutor>
struct graph_context<asio::strand<InnerExecutor>>
{
  using type = asio::strand<InnerExecutor>;
  using thread_check = direct_thread_check<type>;
  static type make(const type& ex) { return ex; }
};

template <>
struct graph_context<asio::io_context::executor_type>
{
  using type = asio::io_context::executor_type;
  using thread_check = direct_thread_check<type>;
  static type make(const type& ex) { return ex; }
};

/// any_io_executor: the wrapped executor decides, as above. Without RTTI no wrapped executor can be told apart
/// (target_of), and the graph takes a strand, which is always safe.
template <>
struct graph_context<asio::any_io_executor>
{
  using type = asio::any_io_executor;

  static type make(const asio::any_io_executor& ex)
  {
    if (target_of<asio::io_context::executor_type>(ex) != nullptr ||
        target_of<asio::strand<asio::io_context::executor_type>>(ex) != nullptr ||
        target_of<asio::strand<asio::any_io_executor>>(ex) != nullptr)
      return ex;
    return asio::make_strand(ex);
  }

  /// Tells whether the calling thread runs the context. The wrapped executor's type is looked up once (a type
  /// comparison each), not on every call: operations ask on every send and every event.
  class thread_check
  {
  public:
    explicit thread_check(const type& context) noexcept
    {
      if (!bind<asio::io_context::executor_type>(context) &&
          !bind<asio::strand<asio::io_context::executor_type>>(context))
        bind<asio::strand<asio::any_io_executor>>(context);
    }

    bool operator()() const noexcept { return runs_ != nullptr && runs_(target_); }

  private:
    template <class Target>
    bool bind(const type& context) noexcept
    {
      target_ = target_of<Target>(context);
      if (target_ != nullptr)
        runs_ = [](const void* target) noexcept {
          return static_cast<const Target*>(target)->running_in_this_thread();
        };
      return target_ != nullptr;
    }

    bool (*runs_)(const void*) noexcept = nullptr;
    const void* target_ = nullptr; // inside the graph's context object, which never changes
  };
};

/// The lifetime of a graph's engine, shared by its parts: a handler of any part keeps the whole engine alive with
/// keep_alive(this), so no part outlives the others it refers to.
class engine_lifetime : public std::enable_shared_from_this<engine_lifetime>
{
public:
  engine_lifetime() = default;
  engine_lifetime(const engine_lifetime&) = delete;
  engine_lifetime& operator=(const engine_lifetime&) = delete;

  /// A shared pointer to `part` (a part of this engine) that owns the whole engine.
  template <class Part>
  std::shared_ptr<Part> keep_alive(Part* part)
  {
    return std::shared_ptr<Part>(shared_from_this(), part);
  }

protected:
  ~engine_lifetime() = default;
};

/// The I/O objects of a graph, all on its context.
template <class Context>
struct graph_io
{
  using socket_type = asio::basic_stream_socket<asio::ip::tcp, Context>;
  using acceptor_type = asio::basic_socket_acceptor<asio::ip::tcp, Context>;
  using timer_type =
      asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, Context>;
};

} // namespace peergraph::detail
