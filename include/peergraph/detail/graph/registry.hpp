//
// peergraph/detail/graph/registry.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The registry of a graph: listening and accepting, connecting, connection ids, the table of established
// connections, admission (through graph_admission), keepalive, events and status. It owns the engine's other parts
// (writer, reader, record layer, handshake, event queue) and is what they report to: it is their connection_observer
// and the handshake's admission. All of it runs on the graph's serialized context.
//
#pragma once

#include <peergraph/detail/asio_compat.hpp>
#include <peergraph/detail/event_queue.hpp>
#include <peergraph/detail/graph/admission.hpp>
#include <peergraph/detail/graph/connection.hpp>
#include <peergraph/detail/graph/context.hpp>
#include <peergraph/detail/graph/handshake.hpp>
#include <peergraph/detail/graph/presence.hpp>
#include <peergraph/detail/graph/reader.hpp>
#include <peergraph/detail/graph/record_layer.hpp>
#include <peergraph/detail/graph/repair.hpp>
#include <peergraph/detail/graph/writer.hpp>
#include <peergraph/detail/send_order.hpp>
#include <peergraph/detail/socket_ops.hpp>
#include <peergraph/error.hpp>
#include <peergraph/event.hpp>
#include <peergraph/graph_properties.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/wire.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace peergraph::detail {

template <class Executor>
class graph_registry final : public engine_lifetime,
                             connection_observer<typename graph_context<Executor>::type>,
                             handshake_admission<typename graph_context<Executor>::type>,
                             record_observer<typename graph_context<Executor>::type>,
                             repair_host<typename graph_context<Executor>::type>
{
public:
  using context_type = typename graph_context<Executor>::type;
  using socket_type = typename graph_io<context_type>::socket_type;
  using acceptor_type = typename graph_io<context_type>::acceptor_type;
  using timer_type = typename graph_io<context_type>::timer_type;
  using connection_type = connection<context_type>;
  using connection_ptr = std::shared_ptr<connection_type>;
  using attempt_type = handshake_attempt<context_type>;
  using attempt_ptr = std::shared_ptr<attempt_type>;

  graph_registry(const Executor& executor, graph_properties properties)
      : executor_(executor), context_(graph_context<Executor>::make(executor)), properties_(std::move(properties)),
        node_(node_id::generate()), filter_(properties_.events),
        events_(context_, properties_.event_queue_depth,
                std::max(properties_.max_incoming_bytes, properties_.max_frame_size)),
        admission_(properties_), writer_(context_, properties_, *this, *this),
        records_(context_, properties_, *this, events_, filter_, writer_, connections_, *this),
        presence_(context_, properties_, *this, records_, node_),
        repair_(context_, properties_, *this, presence_, *this, node_),
        reader_(context_, properties_.max_frame_size, *this, events_, filter_, writer_, *this, records_),
        handshake_(properties_, node_, *this, *this), accept_backoff_(context_),
        status_(records_.synchronized() ? graph_status::synchronized : graph_status::none)
  {
  }

  /// Whether the graph listens, connects or is connected: what export and import need it not to.
  [[nodiscard]] bool in_use() const noexcept { return acceptor_ || !connections_.empty() || !handshakes_.empty(); }

  /// Opens the record store (graph_properties::store), before the graph runs.
  expected<void, peer_error> open_store()
  {
    auto opened = records_.open_store();
    status_ = records_.synchronized() ? graph_status::synchronized : graph_status::none;
    if (opened)
      presence_.loaded();
    return opened;
  }

  [[nodiscard]] const Executor& executor() const noexcept { return executor_; }
  [[nodiscard]] const context_type& context() const noexcept { return context_; }
  [[nodiscard]] node_id local_node() const noexcept { return node_; }
  [[nodiscard]] bool on_context() const noexcept { return on_context_(); }
  /// The graph was closed (close(), or the destructor of its basic_graph): every operation yields invalid_graph.
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  [[nodiscard]] std::uint64_t max_frame_size() const noexcept { return properties_.max_frame_size; }
  [[nodiscard]] bool secure() const noexcept { return properties_.tls != nullptr; }
  [[nodiscard]] connection_writer<context_type>& writer() noexcept { return writer_; }
  /// The graph's records: its record operations run on the context through this.
  [[nodiscard]] record_layer<context_type>& records() noexcept { return records_; }
  /// The graph's presence: set_presence, set_node_attributes and nodes run on the context through this.
  [[nodiscard]] presence_layer<context_type>& presence() noexcept { return presence_; }

  // ---- operations, each run on the context ------------------------------------------------------------------

  asio::awaitable<expected<asio::ip::tcp::endpoint, peer_error>> listen(asio::ip::tcp::endpoint endpoint)
  {
    if (acceptor_)
      co_return unexpected(peer_error(peer_errc::already_listening));
    acceptor_type acceptor(context_);
    std::error_code ec;
    acceptor.open(endpoint.protocol(), ec);
#if defined(_WIN32)
    // Windows' SO_REUSEADDR would let another socket bind the same port and take this node's connections: the port
    // is this node's alone (and a restart may bind at once: Windows has no TIME_WAIT hold on a listener's port).
    if (!ec)
      acceptor.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_EXCLUSIVEADDRUSE>(true), ec);
#else
    if (!ec)
      acceptor.set_option(asio::socket_base::reuse_address(true), ec);
#endif
    if (!ec && endpoint.protocol() == asio::ip::tcp::v6())
      acceptor.set_option(asio::ip::v6_only(true), ec);
    if (!ec)
      acceptor.bind(endpoint, ec);
    if (!ec)
      acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      co_return unexpected(peer_error(ec));
    auto bound = acceptor.local_endpoint(ec);
    if (ec)
      co_return unexpected(peer_error(ec));
    acceptor_.emplace(std::move(acceptor));
    asio::co_spawn(context_, accept_loop(), asio::detached);
    update_status();
    presence_.listening(bound);
    co_return bound;
  }

  asio::awaitable<expected<connection_id, peer_error>> connect(asio::ip::tcp::endpoint address, connection_kind kind,
                                                               std::optional<peer_id> expected_peer)
  {
    if (kind == connection_kind::direct && (!expected_peer || expected_peer->empty()))
      co_return unexpected(peer_error(peer_errc::invalid_argument));
    const connection_id id = next_id();
    auto attempt = std::make_shared<attempt_type>(context_, kind);
    handshakes_.emplace(id.value(), attempt);
    expected<void, peer_error> result;
    try {
      result = co_await connect_and_handshake(attempt, id, address, std::move(expected_peer));
    } catch (const std::bad_alloc&) {
      handshake_.abandon(*attempt, id);
      result = unexpected(peer_error(peer_errc::out_of_memory));
    }
    handshakes_.erase(id.value());
    if (!result) {
      const peer_error error = closed_ ? peer_error(peer_errc::operation_aborted) : result.error();
      emit(connection_changed{id, kind, connection_status::failed, attempt->remote_peer, attempt->remote_node, error,
                              address});
      co_return unexpected(error);
    }
    co_return id;
  }

  /// connect() to each of `addresses` in turn until one connection is established (failover). Each address that
  /// fails is a connection_changed failed event with its address and reason; the result is the last attempt's error,
  /// or the first that another address would not change (already_exists, connect_self, operation_aborted, a closed
  /// graph, out_of_memory). invalid_argument for no address, or more than max_connect_addresses.
  asio::awaitable<expected<connection_id, peer_error>> connect_any(std::vector<asio::ip::tcp::endpoint> addresses,
                                                                   connection_kind kind,
                                                                   std::optional<peer_id> expected_peer)
  {
    if (addresses.empty() || addresses.size() > max_connect_addresses)
      co_return unexpected(peer_error(peer_errc::invalid_argument));
    expected<connection_id, peer_error> result = unexpected(peer_error(peer_errc::invalid_argument));
    for (const auto& address : addresses) {
      result = co_await connect(address, kind, expected_peer);
      if (result || ends_failover(result.error().code()))
        break;
    }
    co_return result;
  }

  /// Resolves `host` and `service` (asio::ip::tcp::resolver, on the graph's executor) and connect_any() to the
  /// addresses found, at most max_connect_addresses of them, in the resolver's order. invalid_address when the name
  /// does not resolve (the resolver's error is the cause).
  asio::awaitable<expected<connection_id, peer_error>> connect_host(std::string host, std::string service,
                                                                    connection_kind kind,
                                                                    std::optional<peer_id> expected_peer)
  {
    auto self = keep_alive(this);
    asio::ip::tcp::resolver resolver(context_);
    auto [ec, found] = co_await resolver.async_resolve(host, service, asio_compat::use_awaitable_tuple);
    if (ec)
      co_return unexpected(peer_error(peer_errc::invalid_address, ec));
    if (closed_)
      co_return unexpected(peer_error(peer_errc::operation_aborted));
    std::vector<asio::ip::tcp::endpoint> addresses;
    for (const auto& entry : found) {
      if (addresses.size() == max_connect_addresses)
        break;
      addresses.push_back(entry.endpoint());
    }
    if (addresses.empty())
      co_return unexpected(peer_error(peer_errc::invalid_address));
    co_return co_await connect_any(std::move(addresses), kind, std::move(expected_peer));
  }

  /// The most addresses one connect() tries.
  static constexpr std::size_t max_connect_addresses = 16;

  expected<void, peer_error> close_direct_connection(connection_id id)
  {
    auto it = connections_.find(id.value());
    if (it == connections_.end())
      return unexpected(peer_error(peer_errc::connection_not_found));
    if (it->second->kind != connection_kind::direct)
      return unexpected(peer_error(peer_errc::not_direct_connection));
    const connection_ptr c = it->second; // the table entry goes away while closing
    close_connection(c, peer_errc::connection_closed, peer_error(peer_errc::connection_closed));
    return {};
  }

  std::vector<connection_info> connections(connection_kinds kinds) const
  {
    std::vector<connection_info> list;
    for (const auto& [key, c] : connections_) {
      const auto bit = c->kind == connection_kind::neighbor ? connection_kinds::neighbor : connection_kinds::direct;
      if ((static_cast<unsigned>(kinds) & static_cast<unsigned>(bit)) != 0)
        list.push_back(connection_info{c->id, c->kind, c->remote_peer, c->remote_node, c->remote_address});
    }
    std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return list;
  }

  [[nodiscard]] graph_status status() const noexcept { return status_; }

  void set_filter(event_filter filter) { filter_ = std::move(filter); }

  /// Starts an event receive on the context; the handler gets operation_aborted when the graph closes meanwhile.
  template <class Handler>
  void receive_event(Handler&& handler)
  {
    events_.async_pop(std::forward<Handler>(handler));
  }

  /// Takes a queued event without waiting, as the result of next_event; std::nullopt when none is queued.
  std::optional<expected<graph_event, peer_error>> try_receive_event()
  {
    std::optional<expected<graph_event, peer_error>> result;
    events_.try_pop_with([&result](graph_event&& event) { result.emplace(std::move(event)); });
    return result;
  }

  /// The table entry of connection `id`, or null. The last one found is remembered: a send_data looks its connection
  /// up several times, and consecutive sends mostly go to one connection.
  const connection_ptr* find_connection(connection_id id) const noexcept
  {
    if (last_found_ != nullptr && (*last_found_)->id == id)
      return last_found_;
    auto it = connections_.find(id.value());
    if (it == connections_.end())
      return nullptr;
    last_found_ = &it->second; // entries of an unordered_map stay where they are until erased
    return last_found_;
  }

  void close()
  {
    if (closed_)
      return;
    presence_.close(); // its deletion is queued ahead of the close frames below
    repair_.close();
    closed_ = true;
    accept_backoff_.cancel();
    if (acceptor_) {
#if defined(ASIO_HAS_IO_URING_AS_DEFAULT)
      // The accept loop closes it once its accept has ended: Asio's io_uring backend (before Asio 1.28) reuses a
      // closed socket's state for the next socket opened while the kernel still holds the accept, which then takes
      // that socket's connections into this closed graph.
      std::error_code ignored;
      acceptor_->cancel(ignored);
#else
      close_socket(*acceptor_);
      acceptor_.reset();
#endif
    }
    for (auto& [key, attempt] : handshakes_)
      close_socket(attempt->socket);
    auto open = std::move(connections_);
    connections_.clear();
    last_found_ = nullptr;
    for (auto& [key, c] : open)
      close_connection(c, peer_errc::graph_shutting_down, std::nullopt);
    admission_.clear_claims();
    records_.close();
    status_ = graph_status::none;
    events_.close();
  }

private:
  connection_id next_id() noexcept { return connection_id(++last_id_); }

  /// Whether a failed connect() ends a failover: the next address would fail the same way, or must not be tried.
  static bool ends_failover(peer_errc reason) noexcept
  {
    return reason == peer_errc::already_exists || reason == peer_errc::connect_self ||
           reason == peer_errc::operation_aborted || reason == peer_errc::invalid_graph ||
           reason == peer_errc::graph_shutting_down || reason == peer_errc::out_of_memory ||
           reason == peer_errc::invalid_argument;
  }

  asio::awaitable<expected<void, peer_error>> connect_and_handshake(attempt_ptr attempt, connection_id id,
                                                                    asio::ip::tcp::endpoint address,
                                                                    std::optional<peer_id> expected_peer)
  {
    auto self = keep_alive(this);
    std::error_code ec;
    attempt->socket.open(address.protocol(), ec);
    if (ec)
      co_return unexpected(peer_error(ec));
    arm_deadline(attempt, properties_.connect_timeout);
    std::tie(ec) = co_await attempt->socket.async_connect(address, asio_compat::use_awaitable_tuple);
    attempt->deadline.cancel();
    if (ec)
      co_return unexpected(attempt->timed_out ? peer_error(peer_errc::timed_out) : peer_error(ec));
    attempt->socket.set_option(asio::ip::tcp::no_delay(true), ec);
    auto result = co_await handshake_(attempt, id, /*initiator=*/true, std::move(expected_peer));
    if (!result)
      co_return unexpected(result.error());
    register_connection(*attempt, id, std::move(*result));
    co_return expected<void, peer_error>{};
  }

  /// The shortest and the longest pause of the accept loop after a failed accept (e.g. out of descriptors).
  static constexpr std::chrono::milliseconds min_accept_backoff{5};
  static constexpr std::chrono::milliseconds max_accept_backoff{500};

  asio::awaitable<void> accept_loop()
  {
    auto self = keep_alive(this);
    std::chrono::milliseconds backoff{0};
    while (!closed_ && acceptor_) {
      attempt_ptr attempt;
      std::error_code ec;
      try {
        attempt = std::make_shared<attempt_type>(context_, connection_kind::neighbor);
        std::tie(ec) = co_await acceptor_->async_accept(attempt->socket, asio_compat::use_awaitable_tuple);
      } catch (const std::bad_alloc&) {
        ec = asio::error::no_memory; // paused like running out of descriptors
      }
      if (closed_ || !acceptor_ || ec == asio::error::operation_aborted)
        break;
      if (accept_failed_for_that_connection_only(ec))
        continue; // the caller gave up before its turn, or its connection failed: nothing is short
      if (ec) {
        // Out of descriptors or memory: the caller stays in the backlog and an accept now would fail again at once.
        // Pause, longer each time, rather than spin until descriptors come back.
        backoff = std::clamp(backoff * 2, min_accept_backoff, max_accept_backoff);
        accept_backoff_.expires_after(backoff);
        (void)co_await accept_backoff_.async_wait(asio_compat::use_awaitable_tuple);
        continue;
      }
      backoff = std::chrono::milliseconds{0};
      try {
        admit_incoming(std::move(attempt));
      } catch (const std::bad_alloc&) {
        // The caller's socket went with `attempt`; the loop goes on.
      }
    }
    // Where close() only cancelled the acceptor: no accept of it is pending now.
    if (closed_)
      acceptor_.reset();
  }

  /// Starts the handshake of an accepted connection, or closes it unread when too many are in their handshake, in
  /// all or from its address.
  void admit_incoming(attempt_ptr attempt)
  {
    std::error_code no_address;
    attempt->from = graph_admission::address_key(attempt->socket.remote_endpoint(no_address).address());
    if (no_address || !admission_.may_start_incoming(attempt->from)) {
      close_socket(attempt->socket);
      return;
    }
    // Counted here rather than in the handshake's coroutine, which may start only after the next accept.
    const asio::ip::address from = attempt->from;
    admission_.incoming_started(from);
    try {
      asio::co_spawn(context_, serve_incoming(std::move(attempt)), asio::detached);
    } catch (...) {
      admission_.incoming_finished(from);
      throw;
    }
  }

  asio::awaitable<void> serve_incoming(attempt_ptr attempt)
  {
    auto self = keep_alive(this);
    const connection_id id = next_id();
    handshakes_.emplace(id.value(), attempt);
    std::error_code ignored;
    attempt->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    const asio::ip::tcp::endpoint remote = attempt->socket.remote_endpoint(ignored); // for a failed event
    auto result = co_await handshake_(attempt, id, /*initiator=*/false, std::nullopt);
    handshakes_.erase(id.value());
    admission_.incoming_finished(attempt->from);
    if (!result) {
      // A node that never said who it is gets no event, unless it failed to prove membership of a closed graph
      // (the event then names no one). Incoming failures are the one kind of event a stranger can cause at will,
      // so they are reported only while the queue has room.
      const bool failed_proof = result.error() == peer_errc::not_authenticated;
      if ((attempt->remote_node || failed_proof) && !closed_) {
        graph_event failed{connection_changed{id, attempt->kind, connection_status::failed, attempt->remote_peer,
                                              attempt->remote_node, result.error(), remote}};
        if (filter_.matches(failed))
          (void)events_.try_push(failed);
      }
      co_return;
    }
    register_connection(*attempt, id, std::move(*result));
  }

  // ---- handshake_admission ------------------------------------------------------------------------------------

  peer_errc admit(attempt_type& attempt, connection_id id, bool initiator, const wire::hello_message& remote,
                  const std::optional<peer_id>& expected_peer) override
  {
    if (closed_)
      return peer_errc::graph_shutting_down;
    const peer_errc verdict =
        admission_.check(remote, id, initiator, attempt.kind, expected_peer, attempt.from, node_, connections_.size());
    if (verdict == peer_errc{})
      admission_.hold(attempt, initiator);
    return verdict;
  }

  peer_errc confirm(const attempt_type& attempt, connection_id id) override
  {
    if (closed_)
      return peer_errc::operation_aborted;
    // A neighbor claim may have passed to a connection that wins the tie-break meanwhile.
    if (attempt.kind == connection_kind::neighbor && !admission_.holds_claim(attempt.remote_peer, id))
      return peer_errc::already_exists;
    return peer_errc{};
  }

  void release(attempt_type& attempt, connection_id id) override { admission_.release(attempt, id); }

  // ---- connection_observer ------------------------------------------------------------------------------------

  void connection_ended(const connection_ptr& c, const peer_error& reason) override
  {
    if (c->established() && !closed_)
      remove_connection(c, reason);
  }

  void output_resumed(const connection_ptr& c) override { reader_.continue_later(c); }

  void output_room(const connection_ptr& c) override { records_.output_room(c); }

  // ---- record_observer ----------------------------------------------------------------------------------------

  void synchronized_with(const connection_ptr& c, bool first) override
  {
    emit(neighbor_synchronized{c->id, c->remote_peer, c->remote_node});
    if (first) {
      update_status();
      presence_.synchronized();
    }
  }

  void presence_changed(const record_update& update) override
  {
    auto event = presence_.changed(update);
    if (!event)
      return;
    const bool came = event->change == node_change::connected;
    emit(*event);
    if (came)
      repair_.node_present();
  }

  // ---- repair_host --------------------------------------------------------------------------------------------

  [[nodiscard]] std::size_t neighbor_count() const override
  {
    return static_cast<std::size_t>(std::count_if(connections_.begin(), connections_.end(), [](const auto& entry) {
      return entry.second->kind == connection_kind::neighbor;
    }));
  }

  [[nodiscard]] bool neighbor_of(node_id node) const override
  {
    return std::any_of(connections_.begin(), connections_.end(), [&](const auto& entry) {
      return entry.second->kind == connection_kind::neighbor && entry.second->remote_node == node;
    });
  }

  void repair_connect(std::vector<asio::ip::tcp::endpoint> addresses, peer_id peer, node_id node) override
  {
    asio::co_spawn(
        context_,
        [](std::shared_ptr<graph_registry> self, std::vector<asio::ip::tcp::endpoint> to, peer_id expected,
           node_id target) -> asio::awaitable<void> {
          auto connected = co_await self->connect_any(std::move(to), connection_kind::neighbor, std::move(expected));
          if (!self->closed_)
            self->repair_.attempt_finished(target, connected.has_value());
        }(keep_alive(this), std::move(addresses), std::move(peer), node),
        asio::detached);
  }

  // ---- the table ----------------------------------------------------------------------------------------------

  void register_connection(attempt_type& attempt, connection_id id, handshake_state&& state)
  {
    std::error_code ec;
    auto address = attempt.socket.remote_endpoint(ec);
    const bool incoming = admission_.established(attempt);
    auto c = std::make_shared<connection_type>(id, attempt.kind, attempt.remote_peer, attempt.remote_node, address,
                                               std::move(attempt.socket), std::move(attempt.session));
    c->incoming = incoming; // its address slot passes to the connection
    connections_.emplace(id.value(), c);
    // The first send that finds the socket full allocates nothing then: its queue exists from now on.
    send_order::instance().reserve(c->socket.native_handle());
#if defined(_WIN32)
    // The writer's direct writes (send_some: a non-overlapped WSASend) must not wait, as MSG_DONTWAIT does on POSIX.
    // Asio's own operations on the socket are overlapped, which this mode does not touch. (Setting it fails only on
    // a socket that is not open, whose writes fail anyway.)
    std::error_code ignored;
    c->socket.non_blocking(true, ignored);
#endif
    emit(connection_changed{id, c->kind, connection_status::connected, c->remote_peer, c->remote_node, std::nullopt,
                            c->remote_address});
    update_status();
    if (c->kind == connection_kind::neighbor) {
      records_.neighbor_established(c, /*initiator=*/!incoming); // its first frames: the synchronisation's
      repair_.neighbor_added(c->remote_node);
    }
    reader_.start(c, std::move(state.decoder), std::move(state.buffer), state.begin, state.end);
    arm_keepalive(c);
  }

  /// Takes `c` out of the graph (reported with `local_reason` unless the graph is closing) and says goodbye to its
  /// remote (connection_writer::say_goodbye).
  void close_connection(const connection_ptr& c, peer_errc wire_reason, std::optional<peer_error> local_reason)
  {
    if (local_reason)
      remove_connection(c, *local_reason);
    c->state = connection_state::closing;
    c->keepalive.cancel();
    writer_.say_goodbye(c, wire_reason);
  }

  void remove_connection(const connection_ptr& c, const peer_error& reason)
  {
    c->state = connection_state::closing;
    connections_.erase(c->id.value());
    last_found_ = nullptr;
    records_.connection_removed(*c);
    admission_.connection_removed(c->id, c->kind, c->remote_peer, std::exchange(c->incoming, false),
                                  c->remote_address.address());
    emit(connection_changed{c->id, c->kind, connection_status::disconnected, c->remote_peer, c->remote_node, reason,
                            c->remote_address});
    update_status();
    if (c->kind == connection_kind::neighbor && !closed_) {
      emit(connection_required{neighbor_count(), c->remote_peer, c->remote_node});
      repair_.neighbor_lost(c->remote_node, reason.code() == peer_errc::timed_out);
    }
  }

  /// One keepalive period: ping a connection that was quiet for a whole interval, drop one that stayed quiet after
  /// the ping (its remote is gone without a word, e.g. a half-open TCP connection).
  void arm_keepalive(const connection_ptr& c)
  {
    if (properties_.keepalive_interval.count() == 0)
      return;
    c->keepalive.expires_after(properties_.keepalive_interval);
    c->keepalive.async_wait([self = keep_alive(this), weak = std::weak_ptr<connection_type>(c)](std::error_code ec) {
      auto conn = weak.lock();
      if (ec || !conn || !conn->established() || self->closed_)
        return;
      try {
        self->keepalive_tick(conn);
      } catch (const std::bad_alloc&) {
        self->writer_.drop(conn, peer_error(peer_errc::out_of_memory));
      }
    });
  }

  /// One look of the keepalive timer at `conn`.
  void keepalive_tick(const connection_ptr& conn)
  {
    if (conn->heard) {
      conn->heard = false;
      conn->pinged = false;
    } else if (conn->pinged) {
      close_connection(conn, peer_errc::timed_out, peer_error(peer_errc::timed_out));
      return;
    } else {
      conn->pinged = true;
      writer_.stage_bytes(conn, wire::encode_ping(++last_ping_token_));
    }
    arm_keepalive(conn);
  }

  /// Queues an event of the graph itself. These are bounded by the number of connections, so they wait in the
  /// channel's queue rather than stop anything when the consumer is slow.
  void emit(graph_event event)
  {
    if (closed_ || !filter_.matches(event))
      return;
    events_.force_push(event);
  }

  void update_status()
  {
    graph_status next = graph_status::none;
    if (acceptor_)
      next = next | graph_status::listening;
    if (!connections_.empty())
      next = next | graph_status::has_connections;
    if (records_.synchronized())
      next = next | graph_status::synchronized;
    if (next != status_) {
      status_ = next;
      emit(status_changed{next});
    }
  }

  Executor executor_;
  context_type context_;
  typename graph_context<Executor>::thread_check on_context_{context_};
  graph_properties properties_;
  node_id node_;
  event_filter filter_;
  event_queue<context_type> events_;
  std::unordered_map<std::uint64_t, connection_ptr> connections_; // the established connections
  graph_admission admission_;
  connection_writer<context_type> writer_;
  record_layer<context_type> records_;
  presence_layer<context_type> presence_;
  repair_layer<context_type> repair_;
  connection_reader<context_type> reader_;
  handshake<context_type> handshake_;
  std::optional<acceptor_type> acceptor_;
  timer_type accept_backoff_;                                 // the accept loop's pause after a failed accept
  std::unordered_map<std::uint64_t, attempt_ptr> handshakes_; // the connections in their handshake
  mutable const connection_ptr* last_found_ = nullptr;        // see find_connection; reset on every erase
  std::uint64_t last_id_ = 0;
  std::uint64_t last_ping_token_ = 0;
  graph_status status_;
  bool closed_ = false;
};

} // namespace peergraph::detail
