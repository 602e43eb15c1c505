//
// peergraph/detail/graph/initiations.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The initiation objects of basic_graph's operations: one generic graph operation (run on the graph's context, with
// the not_initialized and invalid_graph checks), send_data (its routing written once, for its synchronous first
// attempt and its turn) and next_event (a queued event taken at once); and the close of a destroyed graph.
//
#pragma once

#include <peergraph/detail/block_pool.hpp>
#include <peergraph/detail/bound_completion.hpp>
#include <peergraph/detail/graph/registry.hpp>
#include <peergraph/detail/iovec_capture.hpp>
#include <peergraph/detail/pooled_post.hpp>
#include <peergraph/error.hpp>
#include <peergraph/event.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/send.hpp>

#include <asio/associated_allocator.hpp>
#include <asio/associated_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/system_executor.hpp>
#include <asio/this_coro.hpp>

#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace peergraph::detail {

/// Calls `f(registry)` on the graph's context: at once when the caller already runs there (what dispatch does,
/// without wrapping `f` in a type-erased function object), else through dispatch.
template <class Registry, class F>
void call_on_context(const std::shared_ptr<Registry>& registry, F&& f)
{
  if (registry->on_context())
    return std::forward<F>(f)(*registry);
  asio::dispatch(registry->context(), [registry, f = std::forward<F>(f)]() mutable { std::move(f)(*registry); });
}

/// Closes a graph's engine on its context when called there, or where the context destroys it unrun. A pending
/// operation of the graph keeps the engine alive (its handler holds it, and the engine holds its handler) until close()
/// completes it, so a close dropped unrun (the context stopped, then destroyed) would leave that cycle behind: leaked
/// memory, and Windows' io_context waits forever for the handler's outstanding work. No handler of the context runs any
/// more when it destroys one, so the close may run there.
template <class Registry>
class graph_closer
{
public:
  explicit graph_closer(std::shared_ptr<Registry> registry) noexcept : registry_(std::move(registry)) {}
  graph_closer(graph_closer&& other) noexcept = default;
  graph_closer& operator=(graph_closer&&) = delete;
  ~graph_closer()
  {
    if (!registry_)
      return;
    try {
      registry_->close();
    } catch (...) {
      // Out of memory while the context is being destroyed: what close() did not reach is left, the program goes on.
    }
  }

  void operator()()
  {
    auto registry = std::move(registry_);
    registry->close();
  }

private:
  std::shared_ptr<Registry> registry_;
};

/// The condition of an exception that ended a graph operation: out_of_memory for an allocation that failed.
inline peer_errc error_of(const std::exception_ptr& e) noexcept
{
  try {
    std::rethrow_exception(e);
  } catch (const std::bad_alloc&) {
    return peer_errc::out_of_memory;
  } catch (...) {
    return peer_errc::unknown_error;
  }
}

/// Completes `handler` with not_initialized, through its executor (never inline).
template <class T, class Executor, class Handler>
void complete_not_initialized(const Executor& fallback, Handler&& handler)
{
  auto ex = asio::get_associated_executor(handler, fallback);
  asio::post(ex, [h = std::decay_t<Handler>(std::forward<Handler>(handler))]() mutable {
    const std::error_code ec = make_error_code(peer_errc::not_initialized);
    if constexpr (std::is_void_v<T>)
      std::move(h)(ec);
    else
      std::move(h)(ec, T{});
  });
}

/// The initiation object of a graph operation that yields T: `operation(registry, args...)` runs on the graph's
/// context, as a coroutine when it returns an awaitable, and its expected<T, peer_error> completes the handler with
/// `void(std::error_code, T)` (`void(std::error_code)` for T = void). A graph that is not initialized completes with
/// not_initialized, a closed one with invalid_graph, an operation that ran out of memory with out_of_memory.
template <class Executor, class T>
class initiate_graph_op
{
public:
  using registry_type = graph_registry<Executor>;

  explicit initiate_graph_op(std::shared_ptr<registry_type> registry) noexcept : registry_(std::move(registry)) {}

  template <class Handler, class Operation, class... Args>
  void operator()(Handler&& handler, Operation operation, Args&&... args) const
  {
    if (!registry_)
      return complete_not_initialized<T>(asio::system_executor(), std::forward<Handler>(handler));
    auto completion = bound_completion(std::forward<Handler>(handler),
                                       [](auto&& h, std::exception_ptr e, expected<T, peer_error> result) {
                                         if (e)
                                           result = unexpected(peer_error(error_of(e)));
                                         if constexpr (std::is_void_v<T>)
                                           std::move(h)(result ? std::error_code{} : to_error_code(result.error()));
                                         else if (result)
                                           std::move(h)(std::error_code{}, std::move(*result));
                                         else
                                           std::move(h)(to_error_code(result.error()), T{});
                                       });
    asio::co_spawn(registry_->context(), run(registry_, operation, std::decay_t<Args>(std::forward<Args>(args))...),
                   std::move(completion));
  }

private:
  /// The arguments are parameters, which the coroutine frame owns (a capturing lambda coroutine would read its
  /// captures after the lambda is gone).
  template <class Operation, class... Args>
  static asio::awaitable<expected<T, peer_error>> run(std::shared_ptr<registry_type> registry, Operation operation,
                                                      Args... args)
  {
    // A cancelled operation ends through the error of the step it cancelled, which gives back what it held; an
    // exception at its next co_await would skip that.
    co_await asio::this_coro::throw_if_cancelled(false);
    if (registry->closed())
      co_return unexpected(peer_error(peer_errc::invalid_graph));
    if constexpr (std::is_same_v<std::invoke_result_t<Operation&, registry_type&, Args&&...>,
                                 asio::awaitable<expected<T, peer_error>>>)
      co_return co_await operation(*registry, std::move(args)...);
    else
      co_return operation(*registry, std::move(args)...);
  }

  std::shared_ptr<registry_type> registry_;
};

/// The initiation object of send_data: a synchronous first attempt for use_expected, the send path otherwise.
template <class Executor>
class initiate_send_data
{
public:
  using registry_type = graph_registry<Executor>;
  using executor_type = typename registry_type::context_type;
  using socket_type = typename registry_type::socket_type;
  using connection_ptr = typename registry_type::connection_ptr;

  initiate_send_data(std::shared_ptr<registry_type> registry, connection_id id, bool may_stage)
      : registry_(std::move(registry)), id_(id), may_stage_(may_stage)
  {
  }

  [[nodiscard]] executor_type get_executor() const noexcept { return registry_->context(); }

  bool try_immediate(std::error_code& ec, send_request& request) const
  {
    if (!registry_) {
      ec = make_error_code(peer_errc::not_initialized);
      return true;
    }
    if (request.refused) {
      ec = request.refused;
      return true;
    }
    if (!registry_->on_context())
      return false; // the registry may only be read on its context: go the asynchronous way
    try {
      const connection_ptr* c = route(*registry_, id_, request, may_stage_, ec);
      if (c == nullptr)
        return true;
      if ((*c)->session)
        return registry_->writer().try_send_secure(*c, request.buffers, ec);
      std::size_t sent = 0;
      const bool finished =
          initiate_send<socket_type, true, std::size_t>((*c)->socket).try_immediate(ec, sent, request);
      if (finished && ec)
        ec = send_failed(*registry_, id_, ec, request.bytes_sent);
      return finished;
    } catch (const std::bad_alloc&) {
      ec = make_error_code(peer_errc::out_of_memory);
      return true;
    }
  }

  template <class Handler>
  void operator()(Handler&& handler, send_request request) const
  {
    if (!registry_)
      return complete_not_initialized<void>(asio::system_executor(), std::forward<Handler>(handler));
    // A send that fails in its turn ends the connection, so that no later send is reported done on a broken stream.
    auto completion = bound_completion(
        std::forward<Handler>(handler), [registry = registry_, id = id_](auto&& h, std::error_code ec, std::size_t n) {
          if (ec && registry->on_context())
            ec = send_failed(*registry, id, ec, n);
          else if (ec)
            call_on_context(registry, [id, ec, n](registry_type& r) { (void)send_failed(r, id, ec, n); });
          std::move(h)(ec);
        });
    call_on_context(registry_, [id = id_, may_stage = may_stage_, completion = std::move(completion),
                                request = std::move(request)](registry_type& registry) mutable {
      std::error_code ec;
      const connection_ptr* c = nullptr;
      try {
        c = route(registry, id, request, may_stage, ec);
      } catch (const std::bad_alloc&) {
        ec = make_error_code(peer_errc::out_of_memory);
      }
      if (c == nullptr) {
        // Finished at once (staged) or failed: completed through the handler's executor, never inline.
        auto ex = asio::get_associated_executor(completion.handler_, registry.context());
        const auto alloc = asio::get_associated_allocator(completion.handler_, pool_allocator<void>());
        post_with(ex, alloc, [h = std::move(completion.handler_), ec]() mutable { std::move(h)(ec); });
        return;
      }
      if ((*c)->session)
        return registry.writer().send_secure(*c, std::move(request), std::move(completion));
      const initiate_send<socket_type, true, std::size_t> send((*c)->socket);
      send(std::move(completion), std::move(request));
    });
  }

private:
  /// Where send_data on connection `id` goes, for its first attempt and its turn alike, on the context: null when
  /// the send is finished already (`ec` says how; clear when the frame was staged), else the connection's table
  /// entry, whose socket takes the frame (through its secure channel when it has one). A small frame is staged; what
  /// is staged is written ahead of a frame sent on its own, to keep the order.
  static const connection_ptr* route(registry_type& registry, connection_id id, send_request& request, bool may_stage,
                                     std::error_code& ec)
  {
    ec = request.refused;
    if (ec)
      return nullptr;
    if (registry.closed()) {
      ec = make_error_code(peer_errc::invalid_graph);
      return nullptr;
    }
    auto& writer = registry.writer();
    const connection_ptr* c = registry.find_connection(id);
    if (c == nullptr) {
      ec = to_error_code(writer.failure_of(id));
      return nullptr;
    }
    using staging = typename connection_writer<executor_type>::staging;
    switch (may_stage ? writer.stage_frame(*c, request.buffers) : staging::declined) {
    case staging::staged:
      return nullptr;
    case staging::failed: // `c` went with the connection's table entry
      ec = to_error_code(writer.failure_of(id));
      return nullptr;
    case staging::declined:
      break;
    }
    if (!writer.flush_staged(*c)) {
      ec = to_error_code(writer.failure_of(id));
      return nullptr;
    }
    return c;
  }

  /// A send of the application on connection `id` failed with `ec` after `written` bytes of its frame: unless the
  /// stream is still whole (nothing of the frame went out, and the error was the caller's buffers or a shortage of
  /// the moment), the connection ends (connection_writer::write_failed). Returns the error the send reports: the
  /// connection's.
  PEERGRAPH_COLD static std::error_code send_failed(registry_type& registry, connection_id id,
                                                    const std::error_code& ec, std::size_t written)
  {
    if (written == 0) {
      switch (to_peer_errc(ec)) {
      case peer_errc::bad_address:
      case peer_errc::invalid_argument:
      case peer_errc::message_size:
      case peer_errc::no_buffer_space:
      case peer_errc::out_of_memory:
      case peer_errc::operation_aborted:
      case peer_errc::connection_not_found:
      case peer_errc::frame_too_large:
        return ec;
      default:
        break;
      }
    }
    auto& writer = registry.writer();
    if (const connection_ptr* c = registry.find_connection(id))
      writer.write_failed(*c, peer_error(ec));
    const peer_error reason = writer.failure_of(id);
    return reason == peer_errc::connection_not_found ? ec : to_error_code(reason);
  }

  std::shared_ptr<registry_type> registry_;
  connection_id id_;
  bool may_stage_; // false for zero_copy sends, which never copy the payload
};

/// The initiation object of next_event: takes a queued event at once for use_expected when one is there.
template <class Executor>
class initiate_next_event
{
public:
  using registry_type = graph_registry<Executor>;

  explicit initiate_next_event(std::shared_ptr<registry_type> registry) : registry_(std::move(registry)) {}

  std::optional<expected<graph_event, peer_error>> try_immediate_result() const
  {
    using result_type = std::optional<expected<graph_event, peer_error>>;
    if (!registry_)
      return result_type(unexpected(peer_error(peer_errc::not_initialized)));
    if (!registry_->on_context())
      return std::nullopt;
    if (registry_->closed())
      return result_type(unexpected(peer_error(peer_errc::invalid_graph)));
    return registry_->try_receive_event();
  }

  template <class Handler>
  void operator()(Handler&& handler) const
  {
    if (!registry_)
      return complete_not_initialized<graph_event>(asio::system_executor(), std::forward<Handler>(handler));
    call_on_context(registry_,
                    [h = std::decay_t<Handler>(std::forward<Handler>(handler))](registry_type& registry) mutable {
                      if (registry.closed()) {
                        auto ex = asio::get_associated_executor(h, registry.context());
                        asio::post(ex, [h = std::move(h)]() mutable {
                          std::move(h)(make_error_code(peer_errc::invalid_graph), graph_event{});
                        });
                        return;
                      }
                      registry.receive_event(std::move(h));
                    });
  }

private:
  std::shared_ptr<registry_type> registry_;
};

} // namespace peergraph::detail
