//
// peergraph/impl/graph.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~
// Template bodies of graph.hpp: the graph's shared state on its serialized context, the handshake, the
// per-connection reader and the initiation objects of the graph operations.
//
#pragma once

#include <peergraph/detail/asio_compat.hpp>
#include <peergraph/detail/block_pool.hpp>
#include <peergraph/detail/bound_completion.hpp>
#include <peergraph/detail/event_queue.hpp>
#include <peergraph/detail/pooled_post.hpp>
#include <peergraph/wire.hpp>

#include <asio/basic_socket_acceptor.hpp>
#include <asio/bind_executor.hpp>
#include <asio/basic_stream_socket.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/dispatch.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>

#include <algorithm>
#include <array>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>

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
        runs_ = [](const void* target) noexcept { return static_cast<const Target*>(target)->running_in_this_thread(); };
      return target_ != nullptr;
    }

    bool (*runs_)(const void*) noexcept = nullptr;
    const void* target_ = nullptr; // inside the graph's context object, which never changes
  };
};

/// Payloads at least this large are read from the socket straight into the event's buffer, past the read buffer.
inline constexpr std::size_t direct_read_threshold = 16 * 1024;
/// The read buffer of one connection, while data flows.
inline constexpr std::size_t read_buffer_size = 64 * 1024;
/// The staging buffer of one connection, while small frames flow.
inline constexpr std::size_t staging_capacity = 64 * 1024;
/// The buffer a connection at rest reads into: a small message arriving alone (a 64 B payload is a 92-byte frame,
/// 114 bytes in a TLS record) is read and decoded from it in one system call, with no read buffer. Every idle
/// connection holds one, so it stays small.
inline constexpr std::size_t arrival_buffer_size = 128;

template <class Executor>
class graph_state : public std::enable_shared_from_this<graph_state<Executor>>
{
public:
  using context_type = typename graph_context<Executor>::type;
  using socket_type = asio::basic_stream_socket<asio::ip::tcp, context_type>;
  using acceptor_type = asio::basic_socket_acceptor<asio::ip::tcp, context_type>;
  using timer_type =
      asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, context_type>;

  /// The reading side of an established connection, driven by completion handlers (see continue_reading). Held only
  /// while data flows: a connection at rest between frames has none, just one pending readiness wait.
  struct read_state
  {
    explicit read_state(wire::frame_decoder&& decoder_) noexcept : decoder(std::move(decoder_)) {}

    wire::frame_decoder decoder;
    std::vector<std::byte> handshake_rest; // what the handshake read beyond its last message, until used up
    pooled_buffer buffer;                  // the read buffer
    std::vector<std::byte> plaintext;      // a secure channel's decrypted bytes
    std::span<const std::byte> input;      // read and not yet decoded: in one of the three above
    std::optional<incoming_data> current;  // the data frame being received
    std::size_t length = 0;                // its payload's length; its buffer grows to it as the bytes arrive
    std::size_t filled = 0;                // payload bytes of `current` received so far
    std::uint64_t budget_needed = 0;       // what the reader waits for of the payload budget (read_wait::space)
    bool deliver_current = false;          // `current` is delivered (else received and dropped)
    bool event_ready = false;              // `current` is complete and waits for room in the event queue
    bool drained = false;                  // the last read returned less than the buffer: the socket had no more
    std::size_t arrived = 0;               // bytes of the connection's arrival buffer not yet taken as input
  };

  /// An established connection.
  struct connection
  {
    connection(connection_id id_, connection_kind kind_, peer_id peer, node_id node, asio::ip::tcp::endpoint address,
               socket_type&& socket_, std::unique_ptr<secure_session> session_)
        : id(id_), kind(kind_), remote_peer(std::move(peer)), remote_node(node), remote_address(address),
          socket(std::move(socket_)), session(std::move(session_)), linger(socket.get_executor()),
          keepalive(socket.get_executor())
    {
    }

    connection_id id;
    connection_kind kind;
    peer_id remote_peer;
    node_id remote_node;
    asio::ip::tcp::endpoint remote_address;
    socket_type socket;
    std::unique_ptr<secure_session> session; // graph_properties::tls: every byte passes through it
    timer_type linger;     // bounds how long a closing connection may take to say goodbye (close_linger)
    timer_type keepalive;  // pings a quiet remote, and gives up on one that stays silent
    bool registered = true; // in the graph's table; false once closing: its data is no longer delivered
    bool heard = false;     // something arrived since the keepalive timer last looked
    bool pinged = false;    // a ping went out and nothing has arrived since
    bool incoming = false;  // accepted by this node: counts against max_connections_per_address
    bool output_paused = false; // its reader waits for the peer to take what is promised (max_connection_output)
    std::size_t promised = 0;   // bytes of promised sends (send_promised) the socket has not taken yet
    // Small frames copied here while no send is in progress, and written together once per executor turn (or when
    // full): a coroutine awaiting each send_data still gets one system call per many messages.
    // The buffer is pooled and held only while frames wait in it, so an idle connection holds none.
    pooled_buffer staging;
    std::size_t staged = 0;
    bool flush_posted = false; // a flush is posted, or deferred to the end of the current reader turn
    std::unique_ptr<read_state> reader; // null while at rest between frames with nothing read
    // What the pending read of a connection at rest receives (see wait_readable).
    std::array<std::byte, arrival_buffer_size> arrival{};

    void stage(std::span<const std::byte> bytes)
    {
      if (!staging)
        staging = pooled_buffer(staging_capacity);
      std::memcpy(staging.data() + staged, bytes.data(), bytes.size());
      staged += bytes.size();
    }
  };

  graph_state(const Executor& executor, graph_properties properties)
      : executor_(executor), context_(graph_context<Executor>::make(executor)), properties_(std::move(properties)),
        node_(node_id::generate()), filter_(properties_.events),
        events_(context_, properties_.event_queue_depth,
                std::max(properties_.max_incoming_bytes, properties_.max_frame_size)),
        accept_backoff_(context_)
  {
  }

  [[nodiscard]] const Executor& executor() const noexcept { return executor_; }
  [[nodiscard]] const context_type& context() const noexcept { return context_; }
  [[nodiscard]] node_id local_node() const noexcept { return node_; }
  [[nodiscard]] bool on_context() const noexcept { return on_context_(); }
  [[nodiscard]] bool closed() const noexcept { return closed_; }

  // ---- operations, each run on the context ------------------------------------------------------------------

  asio::awaitable<expected<asio::ip::tcp::endpoint, peer_error>> listen(asio::ip::tcp::endpoint endpoint)
  {
    if (closed_)
      co_return unexpected(peer_error(peer_errc::invalid_graph));
    if (acceptor_)
      co_return unexpected(peer_error(peer_errc::already_listening));
    acceptor_type acceptor(context_);
    std::error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec)
      acceptor.set_option(asio::socket_base::reuse_address(true), ec);
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
    co_return bound;
  }

  asio::awaitable<expected<connection_id, peer_error>> connect(asio::ip::tcp::endpoint address, connection_kind kind,
                                                               std::optional<peer_id> expected_peer)
  {
    if (closed_)
      co_return unexpected(peer_error(peer_errc::invalid_graph));
    if (kind == connection_kind::direct && (!expected_peer || expected_peer->empty()))
      co_return unexpected(peer_error(peer_errc::invalid_argument));
    const connection_id id = next_id();
    auto attempt = std::make_shared<pending>(context_, kind);
    pending_.emplace(id.value(), attempt);
    expected<void, peer_error> result;
    try {
      result = co_await connect_and_handshake(attempt, id, address, std::move(expected_peer));
    } catch (const std::bad_alloc&) {
      abandon_handshake(*attempt, id);
      result = unexpected(peer_error(peer_errc::out_of_memory));
    }
    pending_.erase(id.value());
    if (!result) {
      const peer_error error = closed_ ? peer_error(peer_errc::operation_aborted) : result.error();
      emit(connection_changed{id, kind, connection_status::failed, attempt->remote_peer, attempt->remote_node, error});
      co_return unexpected(error);
    }
    co_return id;
  }

  expected<void, peer_error> close_direct_connection(connection_id id)
  {
    if (closed_)
      return unexpected(peer_error(peer_errc::invalid_graph));
    auto it = connections_.find(id.value());
    if (it == connections_.end())
      return unexpected(peer_error(peer_errc::connection_not_found));
    if (it->second->kind != connection_kind::direct)
      return unexpected(peer_error(peer_errc::not_direct_connection));
    const std::shared_ptr<connection> c = it->second; // the table entry goes away while closing
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
  const std::shared_ptr<connection>* find_connection(connection_id id) const noexcept
  {
    if (last_found_ != nullptr && (*last_found_)->id == id)
      return last_found_;
    auto it = connections_.find(id.value());
    if (it == connections_.end())
      return nullptr;
    last_found_ = &it->second; // entries of an unordered_map stay where they are until erased
    return last_found_;
  }

  /// The connection's socket, for send_data; nullptr with the reason when there is none.
  socket_type* socket_for(connection_id id, peer_error& error) noexcept
  {
    if (closed_) {
      error = peer_errc::invalid_graph;
      return nullptr;
    }
    auto* c = find_connection(id);
    if (c == nullptr) {
      error = failure_of(id);
      return nullptr;
    }
    return &(*c)->socket;
  }

  [[nodiscard]] std::uint64_t max_frame_size() const noexcept { return properties_.max_frame_size; }

  void close()
  {
    if (closed_)
      return;
    closed_ = true;
    accept_backoff_.cancel();
    if (acceptor_) {
      std::error_code ignored;
      acceptor_->close(ignored);
      acceptor_.reset();
    }
    for (auto& [key, attempt] : pending_) {
      std::error_code ignored;
      attempt->socket.close(ignored);
    }
    auto open = std::move(connections_);
    connections_.clear();
    last_found_ = nullptr;
    for (auto& [key, c] : open)
      close_connection(c, peer_errc::graph_shutting_down, std::nullopt);
    neighbors_.clear();
    status_ = graph_status::none;
    events_.close();
  }

private:
  /// A connection in its handshake: the socket and what the handshake learned, shared with its deadline.
  struct pending
  {
    pending(const context_type& context, connection_kind kind_) : socket(context), deadline(context), kind(kind_) {}
    socket_type socket;
    std::unique_ptr<secure_session> session; // graph_properties::tls, from the start of the handshake
    timer_type deadline;
    connection_kind kind; // for an incoming connection: what the remote's hello asked for
    bool timed_out = false;
    bool holds_slot = false; // accepted by this node: counts against max_connections until it ends
    bool holds_address_slot = false; // incoming and accepted: counts against max_connections_per_address
    asio::ip::address from; // an incoming connection's remote address
    peer_id remote_peer;
    node_id remote_node;
  };

  /// What a handshake leaves for the reader: the decoder (now past the handshake) and the bytes read beyond it.
  struct handshake_result
  {
    wire::frame_decoder decoder;
    std::vector<std::byte> buffer;
    std::size_t begin = 0;
    std::size_t end = 0;
    std::array<std::byte, 2> opening{}; // the first bytes of the stream, to recognise a TLS caller
    std::size_t opening_size = 0;
  };

  /// Who holds the one neighbor connection a peer may have: a handshake in progress or an established connection.
  struct neighbor_claim
  {
    connection_id holder;
    std::string initiator; // the peer id of the node that opened the connection (the tie-breaker)
    bool established = false;
  };

  connection_id next_id() noexcept { return connection_id(++last_id_); }

  /// Closes the socket of `attempt` when the deadline passes first; `attempt` may be gone by then.
  void arm_deadline(const std::shared_ptr<pending>& attempt, std::chrono::milliseconds after)
  {
    attempt->deadline.expires_after(after);
    attempt->deadline.async_wait([weak = std::weak_ptr<pending>(attempt)](const std::error_code& ec) {
      if (ec)
        return;
      if (auto p = weak.lock()) {
        p->timed_out = true;
        std::error_code ignored;
        p->socket.close(ignored);
      }
    });
  }

  asio::awaitable<expected<void, peer_error>> connect_and_handshake(std::shared_ptr<pending> attempt, connection_id id,
                                                                    asio::ip::tcp::endpoint address,
                                                                    std::optional<peer_id> expected_peer)
  {
    auto self = this->shared_from_this();
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
    auto result = co_await handshake(attempt, id, /*initiator=*/true, std::move(expected_peer));
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
    auto self = this->shared_from_this();
    std::chrono::milliseconds backoff{0};
    while (!closed_ && acceptor_) {
      std::shared_ptr<pending> attempt;
      std::error_code ec;
      try {
        attempt = std::make_shared<pending>(context_, connection_kind::neighbor);
        std::tie(ec) = co_await acceptor_->async_accept(attempt->socket, asio_compat::use_awaitable_tuple);
      } catch (const std::bad_alloc&) {
        ec = asio::error::no_memory; // paused like running out of descriptors
      }
      if (closed_ || !acceptor_)
        co_return;
      if (ec == asio::error::operation_aborted)
        co_return;
      if (ec == asio::error::connection_aborted)
        continue; // the caller gave up before its turn: nothing is short
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
  }

  /// Starts the handshake of an accepted connection, or closes it unread when too many are in their handshake, in
  /// all or from its address.
  void admit_incoming(std::shared_ptr<pending> attempt)
  {
    std::error_code no_address;
    attempt->from = address_key(attempt->socket.remote_endpoint(no_address).address());
    if (no_address || pending_incoming_ >= properties_.max_pending_handshakes ||
        load_of(attempt->from).handshakes >= properties_.max_pending_handshakes_per_address) {
      std::error_code ignored;
      attempt->socket.close(ignored);
      forget_unloaded(attempt->from);
      return;
    }
    // Counted here rather than in the handshake's coroutine, which may start only after the next accept.
    const asio::ip::address from = attempt->from;
    ++pending_incoming_;
    ++load_of(from).handshakes;
    try {
      asio::co_spawn(context_, serve_incoming(std::move(attempt)), asio::detached);
    } catch (...) {
      --pending_incoming_;
      --load_of(from).handshakes;
      forget_unloaded(from);
      throw;
    }
  }

  asio::awaitable<void> serve_incoming(std::shared_ptr<pending> attempt)
  {
    auto self = this->shared_from_this();
    const connection_id id = next_id();
    pending_.emplace(id.value(), attempt);
    std::error_code ignored;
    attempt->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    auto result = co_await handshake(attempt, id, /*initiator=*/false, std::nullopt);
    pending_.erase(id.value());
    --pending_incoming_;
    --load_of(attempt->from).handshakes;
    forget_unloaded(attempt->from);
    if (!result) {
      // A node that never said who it is gets no event, unless it failed to prove membership of a closed graph
      // (the event then names no one). Incoming failures are the one kind of event a stranger can cause at will,
      // so they are reported only while the queue has room.
      const bool failed_proof = result.error() == peer_errc::not_authenticated;
      if ((attempt->remote_node || failed_proof) && !closed_) {
        graph_event failed{connection_changed{id, attempt->kind, connection_status::failed, attempt->remote_peer,
                                              attempt->remote_node, result.error()}};
        if (filter_.matches(failed))
          (void)events_.try_push(failed);
      }
      co_return;
    }
    register_connection(*attempt, id, std::move(*result));
  }

  /// The handshake of docs/wire.md, from either side (see run_handshake). Memory running out during it fails this
  /// one attempt with out_of_memory, with everything it held given back.
  asio::awaitable<expected<handshake_result, peer_error>> handshake(std::shared_ptr<pending> attempt,
                                                                     connection_id id, bool initiator,
                                                                     std::optional<peer_id> expected_peer)
  {
    try {
      co_return co_await run_handshake(attempt, id, initiator, std::move(expected_peer));
    } catch (const std::bad_alloc&) {
    }
    abandon_handshake(*attempt, id);
    co_return unexpected(peer_error(peer_errc::out_of_memory));
  }

  /// Ends a handshake that failed: its socket closed, its neighbor claim and slots given back.
  void abandon_handshake(pending& attempt, connection_id id)
  {
    attempt.deadline.cancel();
    std::error_code ignored;
    attempt.socket.close(ignored);
    release_claim(attempt.remote_peer, id);
    release_slot(attempt);
    release_address_slot(attempt);
  }

  /// The handshake's steps. The connecting side sends its hello first; the accepting side answers with its own hello
  /// only after a valid hello from a member of its graph arrived, so it reveals nothing to a node that says nothing
  /// or does not belong. In a closed graph the membership exchange comes first, so neither side says who it is
  /// before the other proved membership.
  asio::awaitable<expected<handshake_result, peer_error>> run_handshake(std::shared_ptr<pending> attempt_ptr,
                                                                         connection_id id, bool initiator,
                                                                         std::optional<peer_id> expected_peer)
  {
    auto self = this->shared_from_this();
    pending& attempt = *attempt_ptr;
    arm_deadline(attempt_ptr, properties_.handshake_timeout);
    handshake_result state{wire::frame_decoder(properties_.max_frame_size), std::vector<std::byte>(4096)};
    bool preamble_sent = false;
    auto fail = [&](peer_error error) -> expected<handshake_result, peer_error> {
      abandon_handshake(attempt, id);
      if (attempt.timed_out)
        return unexpected(peer_error(peer_errc::timed_out));
      return unexpected(error);
    };

    if (properties_.tls) {
      auto secured = co_await secure_channel(attempt, state, initiator);
      if (!secured)
        co_return fail(secured.error());
    }
    if (properties_.membership) {
      auto proved = co_await prove_membership(attempt, state, initiator);
      preamble_sent = true;
      if (!proved)
        co_return fail(proved.error());
    }
    if (initiator) {
      if (auto sent = co_await send_hello(attempt, attempt.kind, expected_peer, preamble_sent); !sent)
        co_return fail(sent.error());
      preamble_sent = true;
    }
    auto hello = co_await read_until(attempt, state, wire::decode_event::hello);
    if (!hello) {
      // An open graph's acceptor met a caller that began a membership exchange, or a secure channel.
      const bool secure_caller = !attempt.session && hello.error() == peer_errc::protocol_error &&
                                 starts_like_tls(std::span<const std::byte>(state.opening).first(state.opening_size));
      if (!initiator && (hello.error() == peer_errc::not_authenticated || secure_caller)) {
        co_await send_refuse(attempt, peer_errc::not_authenticated, preamble_sent);
        co_return fail(peer_error(peer_errc::not_authenticated));
      }
      co_return fail(hello.error());
    }
    wire::hello_message remote = std::move(state.decoder.hello());
    // On a secure channel a node speaks only under the peer id its credentials name.
    if (attempt.session && remote.peer.view() != attempt.session->peer_name()) {
      co_await send_refuse(attempt, peer_errc::not_authenticated, preamble_sent);
      co_return fail(peer_error(peer_errc::not_authenticated));
    }
    attempt.remote_peer = remote.peer;
    attempt.remote_node = remote.node;
    if (!initiator) {
      attempt.kind = remote.kind;
      // A caller that does not belong here (another graph, or looking for another peer) learns only the reason,
      // not who this node is: the refuse goes in place of this side's hello.
      if (const peer_errc stranger = check_caller(remote); stranger != peer_errc{}) {
        co_await send_refuse(attempt, stranger, preamble_sent);
        co_return fail(peer_error(stranger));
      }
      if (auto sent = co_await send_hello(attempt, attempt.kind, std::nullopt, preamble_sent); !sent)
        co_return fail(sent.error());
    }

    const peer_errc verdict = check_hello(remote, id, initiator, attempt.kind, expected_peer, attempt.from);
    if (verdict != peer_errc{}) {
      co_await send_refuse(attempt, verdict, /*preamble_sent=*/true);
      co_return fail(peer_error(verdict));
    }
    attempt.holds_slot = true;
    ++reserved_slots_;
    if (!initiator) {
      attempt.holds_address_slot = true;
      ++load_of(attempt.from).connections;
    }
    {
      const auto accept = wire::encode_accept();
      if (auto sent = co_await send_bytes(attempt, accept); !sent)
        co_return fail(sent.error());
    }
    auto reply = co_await read_until(attempt, state, wire::decode_event::accept);
    if (!reply)
      co_return fail(reply.error());
    attempt.deadline.cancel();
    if (closed_)
      co_return fail(peer_error(peer_errc::operation_aborted));
    // A neighbor claim may have passed to a connection that wins the tie-break meanwhile.
    if (attempt.kind == connection_kind::neighbor) {
      auto claim = neighbors_.find(remote.peer.str());
      if (claim == neighbors_.end() || claim->second.holder != id)
        co_return fail(peer_error(peer_errc::already_exists));
    }
    co_return std::move(state);
  }

  /// The membership exchange of a closed graph (docs/wire.md, "Closed graphs"): each side sends its preamble
  /// and a fresh challenge, each proves membership over both challenges, and the acceptor proves first, so a caller
  /// never says who it is to a node that is not a member. A proof that does not verify is refused with
  /// not_authenticated. Yields not_authenticated too when the remote node skips the exchange (an open graph's node).
  asio::awaitable<expected<void, peer_error>> prove_membership(pending& attempt, handshake_result& state,
                                                               bool initiator)
  {
    const membership_authenticator& credentials = *properties_.membership;
    const auto preamble = wire::encode_preamble();
    std::array<std::byte, membership_nonce_size> own_nonce{};
    std::array<std::byte, membership_proof_size> proof{};
    if (auto made = credentials.make_nonce(own_nonce); !made)
      co_return unexpected(made.error());

    if (initiator) {
      const auto challenge = wire::encode_membership_challenge(own_nonce);
      if (auto sent = co_await send_bytes(attempt, preamble, challenge); !sent)
        co_return unexpected(sent.error());
      if (auto got = co_await read_until(attempt, state, wire::decode_event::membership); !got)
        co_return unexpected(got.error());
      const wire::membership_message& answer = state.decoder.membership();
      if (answer.step != wire::membership_step::answer) {
        co_await send_refuse(attempt, peer_errc::protocol_error, /*preamble_sent=*/true);
        co_return unexpected(peer_error(peer_errc::protocol_error));
      }
      if (!credentials.verify(membership_role::acceptor, own_nonce, answer.nonce, answer.proof)) {
        co_await send_refuse(attempt, peer_errc::not_authenticated, /*preamble_sent=*/true);
        co_return unexpected(peer_error(peer_errc::not_authenticated));
      }
      if (auto made = credentials.prove(membership_role::caller, own_nonce, answer.nonce, proof); !made)
        co_return unexpected(made.error());
      const auto proof_frame = wire::encode_membership_proof(proof);
      if (auto sent = co_await send_bytes(attempt, proof_frame); !sent)
        co_return unexpected(sent.error());
      co_return expected<void, peer_error>{};
    }

    if (auto got = co_await read_until(attempt, state, wire::decode_event::membership); !got) {
      if (got.error() == peer_errc::not_authenticated) // a hello without a membership proof
        co_await send_refuse(attempt, peer_errc::not_authenticated, /*preamble_sent=*/false);
      co_return unexpected(got.error());
    }
    const wire::membership_message challenge = state.decoder.membership();
    if (challenge.step != wire::membership_step::challenge) {
      co_await send_refuse(attempt, peer_errc::protocol_error, /*preamble_sent=*/false);
      co_return unexpected(peer_error(peer_errc::protocol_error));
    }
    if (auto made = credentials.prove(membership_role::acceptor, challenge.nonce, own_nonce, proof); !made)
      co_return unexpected(made.error());
    const auto answer = wire::encode_membership_answer(own_nonce, proof);
    if (auto sent = co_await send_bytes(attempt, preamble, answer); !sent)
      co_return unexpected(sent.error());
    // The decoder lets only the caller's proof (or a refuse) follow its challenge.
    if (auto got = co_await read_until(attempt, state, wire::decode_event::membership); !got)
      co_return unexpected(got.error());
    if (!credentials.verify(membership_role::caller, challenge.nonce, own_nonce, state.decoder.membership().proof)) {
      co_await send_refuse(attempt, peer_errc::not_authenticated, /*preamble_sent=*/true);
      co_return unexpected(peer_error(peer_errc::not_authenticated));
    }
    co_return expected<void, peer_error>{};
  }

  /// Sends this side's hello, after its preamble unless the membership exchange already sent that.
  asio::awaitable<expected<void, peer_error>> send_hello(pending& attempt, connection_kind kind,
                                                          const std::optional<peer_id>& expected_peer,
                                                          bool preamble_sent)
  {
    auto hello =
        wire::encode_hello(wire::hello_message{kind, properties_.graph, properties_.peer, node_, expected_peer});
    if (!hello)
      co_return unexpected(hello.error());
    co_return co_await send_bytes(attempt,
                                  std::span<const std::byte>(*hello).subspan(preamble_sent ? wire::preamble_size : 0));
  }

  /// Tells the remote why the handshake ends, best effort (it may be gone already): a refuse frame, after this
  /// side's preamble when nothing was sent yet (a refuse in place of the hello, which introduces nothing).
  asio::awaitable<void> send_refuse(pending& attempt, peer_errc reason, bool preamble_sent)
  {
    auto refuse = preamble_sent ? wire::encode_refuse(reason) : wire::encode_refusing_opening(reason);
    if (refuse)
      (void)co_await send_bytes(attempt, *refuse);
  }

  /// Sends handshake bytes (`first`, then `second`), through the secure channel when there is one.
  asio::awaitable<expected<void, peer_error>> send_bytes(pending& attempt, std::span<const std::byte> first,
                                                          std::span<const std::byte> second = {})
  {
    std::vector<std::byte> ciphertext;
    std::array<asio::const_buffer, 2> buffers{asio::buffer(first.data(), first.size()),
                                              asio::buffer(second.data(), second.size())};
    if (attempt.session) {
      const std::array<std::span<const std::byte>, 2> plain{first, second};
      if (auto encrypted = attempt.session->encrypt(plain, ciphertext); !encrypted)
        co_return unexpected(encrypted.error());
      buffers = {asio::buffer(ciphertext), asio::const_buffer()};
    }
    auto sent = co_await async_send(attempt.socket, buffers);
    if (!sent)
      co_return unexpected(sent.error());
    co_return expected<void, peer_error>{};
  }

  /// The secure channel's handshake (graph_properties::tls), before anything else: the caller speaks first.
  /// Ciphertext read beyond the handshake stays in the session, for read_until to decrypt.
  asio::awaitable<expected<void, peer_error>> secure_channel(pending& attempt, handshake_result& state, bool initiator)
  {
    auto session = properties_.tls->start(initiator ? membership_role::caller : membership_role::acceptor);
    if (!session)
      co_return unexpected(session.error());
    attempt.session = std::move(*session);
    std::vector<std::byte> in;
    std::vector<std::byte> out;
    for (int step = 0; step < 64; ++step) {
      out.clear();
      auto progress = attempt.session->handshake(in, out);
      if (!out.empty()) {
        auto sent = co_await async_send(attempt.socket, asio::buffer(out));
        if (!sent && progress)
          co_return unexpected(sent.error());
      }
      if (!progress)
        co_return unexpected(progress.error());
      if (*progress == secure_progress::done)
        co_return expected<void, peer_error>{};
      in.resize(state.buffer.size());
      auto [ec, n] = co_await attempt.socket.async_read_some(asio::buffer(in), asio_compat::use_awaitable_tuple);
      if (ec)
        co_return unexpected(handshake_read_error(ec));
      in.resize(n);
      if (step == 0 && starts_with_magic(in)) {
        // A node without the channel (plain peergraph): it learns only that it was not authenticated, in the clear.
        if (auto refuse = wire::encode_refusing_opening(peer_errc::not_authenticated); refuse && !initiator)
          co_await async_send(attempt.socket, asio::buffer(*refuse), send_flags::none,
                              asio_compat::use_awaitable_tuple);
        co_return unexpected(peer_error(plain_refusal(state, in)));
      }
    }
    co_return unexpected(peer_error(peer_errc::protocol_error)); // a handshake that never ends
  }

  /// Whether `bytes` begin like a plain peergraph stream (its preamble), as far as they go.
  static bool starts_with_magic(std::span<const std::byte> bytes) noexcept
  {
    const std::size_t n = std::min(bytes.size(), wire::magic.size());
    return n != 0 && std::equal(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n), wire::magic.begin());
  }

  /// Whether `bytes` begin like a TLS handshake record (what a node with a secure channel sends first).
  static bool starts_like_tls(std::span<const std::byte> bytes) noexcept
  {
    return bytes.size() >= 2 && bytes[0] == std::byte{0x16} && bytes[1] == std::byte{0x03};
  }

  /// The answer of a plain node to a caller's secure handshake: its refuse reason when it sent one (in place of its
  /// hello), otherwise not_authenticated.
  static peer_errc plain_refusal(handshake_result& state, std::span<const std::byte> bytes)
  {
    auto r = state.decoder.decode(bytes);
    if (r && r->event == wire::decode_event::refuse)
      return state.decoder.reason().code;
    return peer_errc::not_authenticated;
  }

  /// The error of a failed read during a handshake: the end of the stream is connection_failed.
  static peer_error handshake_read_error(const std::error_code& ec)
  {
    if (ec == asio::error::eof || ec == asio::error::connection_reset)
      return peer_error(peer_errc::connection_failed, ec);
    return peer_error(ec);
  }

  /// Reads the next bytes of a handshake into state.buffer (replacing what was there), decrypted on a secure
  /// channel; at least one byte, or an error.
  asio::awaitable<expected<void, peer_error>> read_more(pending& attempt, handshake_result& state)
  {
    state.begin = state.end = 0;
    if (!attempt.session) {
      auto [ec, n] = co_await attempt.socket.async_read_some(asio::buffer(state.buffer),
                                                              asio_compat::use_awaitable_tuple);
      if (ec)
        co_return unexpected(handshake_read_error(ec));
      state.end = n;
      for (std::size_t i = 0; i < n && state.opening_size < state.opening.size(); ++i)
        state.opening[state.opening_size++] = state.buffer[i];
      co_return expected<void, peer_error>{};
    }
    std::vector<std::byte> ciphertext; // empty first: records that arrived with the last ones are decrypted first
    for (int round = 0; round < 1'000'000; ++round) {
      std::vector<std::byte> plaintext;
      std::vector<std::byte> out;
      auto closed = attempt.session->decrypt(ciphertext, plaintext, out);
      if (!out.empty())
        (void)co_await async_send(attempt.socket, asio::buffer(out));
      if (!closed)
        co_return unexpected(closed.error());
      if (!plaintext.empty()) {
        state.buffer = std::move(plaintext);
        state.end = state.buffer.size();
        co_return expected<void, peer_error>{};
      }
      if (*closed)
        co_return unexpected(peer_error(peer_errc::connection_failed));
      ciphertext.resize(4096);
      auto [ec, n] = co_await attempt.socket.async_read_some(asio::buffer(ciphertext),
                                                              asio_compat::use_awaitable_tuple);
      if (ec)
        co_return unexpected(handshake_read_error(ec));
      ciphertext.resize(n);
    }
    co_return unexpected(peer_error(peer_errc::protocol_error));
  }

  /// Reads until the decoder reports `wanted` (membership, hello or accept). A refuse yields its reason; a hello
  /// where a membership frame belongs, or the reverse, is not_authenticated (the two sides disagree on whether the
  /// graph is closed); the end of the stream during a handshake is connection_failed.
  asio::awaitable<expected<void, peer_error>> read_until(pending& attempt, handshake_result& state,
                                                          wire::decode_event wanted)
  {
    for (;;) {
      while (state.begin < state.end) {
        const std::span<const std::byte> input(state.buffer.data() + state.begin, state.end - state.begin);
        auto r = state.decoder.decode(input);
        if (!r)
          co_return unexpected(r.error());
        state.begin += r->consumed;
        if (r->event == wanted)
          co_return expected<void, peer_error>{};
        if (r->event == wire::decode_event::refuse)
          co_return unexpected(peer_error(state.decoder.reason().code));
        if (r->event == wire::decode_event::need_more)
          continue;
        if (r->event == wire::decode_event::membership || r->event == wire::decode_event::hello)
          co_return unexpected(peer_error(peer_errc::not_authenticated)); // one graph closed, the other open
        co_return unexpected(peer_error(peer_errc::protocol_error));
      }
      if (auto more = co_await read_more(attempt, state); !more)
        co_return unexpected(more.error());
    }
  }

  /// The accepting side's checks that a caller belongs here at all, made before it introduces itself.
  [[nodiscard]] peer_errc check_caller(const wire::hello_message& remote) const noexcept
  {
    if (remote.graph != properties_.graph)
      return peer_errc::wrong_graph;
    if (remote.expected_peer && *remote.expected_peer != properties_.peer)
      return peer_errc::node_not_found;
    return peer_errc{};
  }

  /// The graph's checks on a received hello (docs/wire.md); returns the refuse reason, or 0 to accept.
  peer_errc check_hello(const wire::hello_message& remote, connection_id id, bool initiator, connection_kind kind,
                        const std::optional<peer_id>& expected_peer, const asio::ip::address& from)
  {
    if (closed_)
      return peer_errc::graph_shutting_down;
    if (remote.graph != properties_.graph)
      return peer_errc::wrong_graph;
    if (remote.node == node_)
      return peer_errc::connect_self;
    if (initiator && remote.kind != kind)
      return peer_errc::protocol_error;
    if (expected_peer && remote.peer != *expected_peer)
      return peer_errc::node_not_found;
    if (!initiator && remote.expected_peer && *remote.expected_peer != properties_.peer)
      return peer_errc::node_not_found;
    // Handshakes that were accepted but have not finished hold a slot, so concurrent ones cannot overshoot.
    if (connections_.size() + reserved_slots_ >= properties_.max_connections)
      return peer_errc::limit_exceeded;
    if (!initiator && load_of(from).connections >= properties_.max_connections_per_address)
      return peer_errc::limit_exceeded;
    if (kind == connection_kind::neighbor) {
      const std::string& initiator_peer = initiator ? properties_.peer.str() : remote.peer.str();
      auto [it, inserted] = neighbors_.try_emplace(remote.peer.str(), neighbor_claim{id, initiator_peer, false});
      if (!inserted) {
        // Two nodes connecting to each other at once: both keep the connection opened by the smaller peer id, so
        // both sides decide alike and exactly one neighbor connection survives.
        if (it->second.established || !(initiator_peer < it->second.initiator))
          return peer_errc::already_exists;
        it->second = neighbor_claim{id, initiator_peer, false};
      }
    }
    return peer_errc{};
  }

  void release_slot(pending& attempt) noexcept
  {
    if (attempt.holds_slot) {
      attempt.holds_slot = false;
      --reserved_slots_;
    }
  }

  /// What one remote address holds of this node: its incoming connections in the handshake, and its incoming
  /// connections past the checks (accepted or established), for the per-address limits.
  struct address_load
  {
    std::size_t handshakes = 0;
    std::size_t connections = 0;
  };

  /// The key of a remote address: an IPv4 address reached over IPv6 counts as itself.
  static asio::ip::address address_key(const asio::ip::address& address)
  {
    if (address.is_v6() && address.to_v6().is_v4_mapped())
      return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    return address;
  }

  address_load& load_of(const asio::ip::address& from) { return incoming_by_address_[from]; }

  /// Drops the entry of an address that holds nothing any more: the table has one entry per busy address only.
  void forget_unloaded(const asio::ip::address& from)
  {
    auto it = incoming_by_address_.find(from);
    if (it != incoming_by_address_.end() && it->second.handshakes == 0 && it->second.connections == 0)
      incoming_by_address_.erase(it);
  }

  void release_address_slot(pending& attempt)
  {
    if (attempt.holds_address_slot) {
      attempt.holds_address_slot = false;
      --load_of(attempt.from).connections;
      forget_unloaded(attempt.from);
    }
  }

  void release_claim(const peer_id& peer, connection_id id)
  {
    if (peer.empty())
      return;
    auto it = neighbors_.find(peer.str());
    if (it != neighbors_.end() && it->second.holder == id)
      neighbors_.erase(it);
  }

  void register_connection(pending& attempt, connection_id id, handshake_result&& state)
  {
    release_slot(attempt); // the connection itself counts from now on
    const connection_kind kind = attempt.kind;
    std::error_code ec;
    auto address = attempt.socket.remote_endpoint(ec);
    auto c = std::make_shared<connection>(id, kind, attempt.remote_peer, attempt.remote_node, address,
                                          std::move(attempt.socket), std::move(attempt.session));
    c->incoming = std::exchange(attempt.holds_address_slot, false); // its address slot passes to the connection
    if (kind == connection_kind::neighbor)
      neighbors_.at(c->remote_peer.str()).established = true;
    connections_.emplace(id.value(), c);
    // The first send that finds the socket full allocates nothing then: its queue exists from now on.
    send_order::instance().reserve(static_cast<int>(c->socket.native_handle()));
    emit(connection_changed{id, kind, connection_status::connected, c->remote_peer, c->remote_node, std::nullopt});
    update_status();
    start_reading(c, std::move(state));
    arm_keepalive(c);
  }

  /// One keepalive period: ping a connection that was quiet for a whole interval, drop one that stayed quiet after
  /// the ping (its remote is gone without a word, e.g. a half-open TCP connection).
  void arm_keepalive(const std::shared_ptr<connection>& c)
  {
    if (properties_.keepalive_interval.count() == 0)
      return;
    c->keepalive.expires_after(properties_.keepalive_interval);
    c->keepalive.async_wait([self = this->shared_from_this(), weak = std::weak_ptr<connection>(c)](std::error_code ec) {
      auto conn = weak.lock();
      if (ec || !conn || !conn->registered || self->closed_)
        return;
      try {
        self->keepalive_tick(conn);
      } catch (const std::bad_alloc&) {
        self->drop_connection(conn, peer_error(peer_errc::out_of_memory));
      }
    });
  }

  /// One look of the keepalive timer at `conn`.
  void keepalive_tick(const std::shared_ptr<connection>& conn)
  {
    if (conn->heard) {
      conn->heard = false;
      conn->pinged = false;
    } else if (conn->pinged) {
      close_connection(conn, peer_errc::timed_out, peer_error(peer_errc::timed_out));
      return;
    } else {
      conn->pinged = true;
      stage_bytes(conn, wire::encode_ping(++last_ping_token_));
    }
    arm_keepalive(conn);
  }

  /// What a reader waits for when it has done what it can.
  enum class read_wait
  {
    readable, // the socket is empty
    space,    // a complete message waits for room in the event queue
    payload,  // the rest of a large payload, read straight into the message
    turn,     // nothing: it yields to the other handlers of the context, having read a lot at once
    output,   // the peer to take what the connection holds for it (max_connection_output)
    done,     // the connection ended
  };

  /// Reads of 64 KiB one reader turn makes at most before it lets the other handlers of the context run.
  static constexpr int reads_per_turn = 16;
  /// Readers at rest a graph keeps for its connections (each about 730 bytes).
  static constexpr std::size_t max_spare_readers = 8;

  /// Starts the reader of a new connection, after the bytes the handshake read beyond its last message.
  void start_reading(const std::shared_ptr<connection>& c, handshake_result&& state)
  {
    std::error_code ignored;
    c->socket.non_blocking(true, ignored);
    if (state.begin == state.end && at_rest(state.decoder))
      return wait_readable(c);
    c->reader = std::make_unique<read_state>(std::move(state.decoder));
    c->reader->handshake_rest = std::move(state.buffer);
    c->reader->input =
        std::span<const std::byte>(c->reader->handshake_rest).subspan(state.begin, state.end - state.begin);
    post_with(context_, pool_allocator<void>(), [self = this->shared_from_this(), c] { self->continue_reading(c); });
  }

  /// Whether a decoder is where every established connection starts: between frames, in the data phase. A reader at
  /// rest is interchangeable with a new one, so connections share them (spare_readers_).
  static bool at_rest(const wire::frame_decoder& decoder) noexcept
  {
    return decoder.phase() == wire::decoder_phase::established && decoder.at_frame_boundary();
  }

  /// The reader of `c`, taken from the spare ones when it has none.
  read_state& reader_of(connection& c)
  {
    if (!c.reader) {
      if (!spare_readers_.empty()) {
        c.reader = std::move(spare_readers_.back());
        spare_readers_.pop_back();
      } else {
        c.reader = std::make_unique<read_state>(
            wire::frame_decoder(properties_.max_frame_size, wire::decoder_phase::established));
      }
    }
    return *c.reader;
  }

  /// Gives the reader of `c` back when it holds nothing: an idle connection keeps no reader.
  void park_reader(connection& c)
  {
    read_state* r = c.reader.get();
    if (r == nullptr || !r->input.empty() || r->current || r->buffer || r->plaintext.capacity() != 0 ||
        r->handshake_rest.capacity() != 0 || !at_rest(r->decoder))
      return;
    if (spare_readers_.size() < max_spare_readers)
      spare_readers_.push_back(std::move(c.reader));
    c.reader.reset();
  }

  /// Why a connection ended, from a read error and its reader's position in the stream.
  static peer_error end_of_stream_reason(const std::error_code& ec, const connection& c)
  {
    if (!c.reader) // at rest between frames: an end of the stream is a clean end
      return ec == asio::error::eof ? peer_error(peer_errc::connection_closed) : peer_error(ec);
    return end_of_stream_reason(ec, c.reader->decoder);
  }

  /// Waits for the next bytes of a connection at rest by reading them into its arrival buffer. A read rather than
  /// a readiness wait: Asio queues a read behind at most one attempt (a recv that says it would block), where a
  /// readiness wait re-arms the descriptor (epoll_ctl) every time, and a small message that arrives is then read and
  /// decoded in one go.
  void wait_readable(std::shared_ptr<connection> c)
  {
    auto& socket = c->socket;
    const asio::mutable_buffer into = asio::buffer(c->arrival); // before `c` moves into the handler
    auto on_arrival = [self = this->shared_from_this(), c = std::move(c)](const std::error_code& ec,
                                                                          std::size_t n) mutable {
      if (ec)
        return self->finish_reading(c, end_of_stream_reason(ec, *c));
      try {
        self->reader_of(*c).arrived = n;
      } catch (const std::bad_alloc&) {
        return self->finish_reading(c, peer_error(peer_errc::out_of_memory));
      }
      self->continue_reading(std::move(c));
    };
    socket.async_read_some(into, with_allocator(pool_allocator<void>(), std::move(on_arrival)));
  }

  /// One reader turn: reads and decodes what the socket has, queues the messages, then wakes the application's
  /// waiting next_event once for all of them (inline: it runs before this returns) and writes what the application
  /// and the reader staged meanwhile (pongs, replies) in one go. Then it waits for what it needs next. Waiting for
  /// room in the event queue stops the reading, which is how a slow consumer slows the remote senders down.
  void continue_reading(std::shared_ptr<connection> c)
  {
    std::optional<peer_error> reason;
    read_wait wait = read_wait::done;
    in_reader_turn_ = true;
    for (int round = 0; round < 4; ++round) {
      try {
        wait = read_available(c, reason);
      } catch (const std::bad_alloc&) {
        // Out of memory for this connection's buffers: it ends, the node and its other connections go on.
        if (c->registered)
          send_close_frame(c, peer_errc::out_of_memory);
        reason = peer_error(peer_errc::out_of_memory);
        wait = read_wait::done;
      }
      if (wait == read_wait::done)
        finish_reading(c, reason); // before the application runs: it sees the connection gone, not half closed
      events_.wake_consumers(/*inline_allowed=*/true);
      // A consumer on this thread took what was queued: the message waiting for room fits now.
      if (wait != read_wait::space || closed_ || events_.full())
        break;
    }
    in_reader_turn_ = false;
    try {
      flush_deferred();
      switch (wait) {
      case read_wait::readable:
        park_reader(*c);
        return wait_readable(std::move(c));
      case read_wait::space: {
        const std::uint64_t budget_needed = c->reader ? c->reader->budget_needed : 0;
        return events_.async_wait_space(
            [self = this->shared_from_this(), c = std::move(c)](const std::error_code& ec) mutable {
              if (ec)
                self->finish_reading(c, std::nullopt); // the graph closed
              else
                self->continue_reading(std::move(c));
            },
            budget_needed);
      }
      case read_wait::output:
        if (!output_full(*c)) // the flush at the end of the turn made room
          return post_with(context_, pool_allocator<void>(),
                           [self = this->shared_from_this(), c = std::move(c)]() mutable { self->continue_reading(c); });
        return pause_for_output(std::move(c));
      case read_wait::payload:
        return read_payload_directly(std::move(c));
      case read_wait::turn:
        return post_with(context_, pool_allocator<void>(),
                         [self = this->shared_from_this(), c = std::move(c)]() mutable { self->continue_reading(c); });
      case read_wait::done:
        return;
      }
    } catch (const std::bad_alloc&) {
      // No memory to wait with: the connection ends. When `c` had moved into a handler that could not be made, the
      // connection has no reader any more and goes with the keepalive.
      deferred_flushes_.clear();
      if (c && wait != read_wait::done)
        finish_reading(c, peer_error(peer_errc::out_of_memory));
    }
  }

  /// Decodes the bytes at hand and reads more while the socket has them, queueing complete messages without waking
  /// anyone. Reads stop at the first read that leaves the socket empty (one that returns less than the buffer), so a
  /// drained socket is not asked again only to say it would block.
  read_wait read_available(const std::shared_ptr<connection>& owner, std::optional<peer_error>& reason)
  {
    connection& c = *owner;
    read_state& r = reader_of(c);
    if (r.event_ready && !deliver_ready(c))
      return read_wait::space;
    int reads = 0;
    for (;;) {
      if (r.input.empty()) {
        if (!r.handshake_rest.empty())
          r.handshake_rest = std::vector<std::byte>(); // used up; an idle connection keeps none
        if (r.arrived == 0 && output_full(c))
          return read_wait::output; // the peer takes nothing: read nothing more that it could make us answer
        if (r.drained || reads == reads_per_turn) {
          if (!std::exchange(r.drained, false))
            return read_wait::turn;
          release_read_buffers(r);
          return read_wait::readable;
        }
        if (r.arrived != 0) { // what the read at rest received (wait_readable)
          r.drained = r.arrived < c.arrival.size();
          r.input = std::span<const std::byte>(c.arrival.data(), std::exchange(r.arrived, 0));
        } else {
          if (!r.buffer)
            r.buffer = pooled_buffer(read_buffer_size);
          std::error_code ec;
          const std::size_t n = c.socket.read_some(asio::buffer(r.buffer.data(), r.buffer.size()), ec);
          ++reads;
          if (ec == asio::error::would_block) {
            release_read_buffers(r);
            return read_wait::readable;
          }
          if (ec) {
            reason = end_of_stream_reason(ec, r.decoder);
            return read_wait::done;
          }
          r.drained = n < r.buffer.size();
          r.input = std::span<const std::byte>(r.buffer.data(), n);
        }
        c.heard = true;
        if (c.session) {
          const std::span<const std::byte> ciphertext = r.input;
          r.input = {};
          r.plaintext.clear();
          auto opened = decrypt(owner, ciphertext, r.plaintext);
          if (!opened) {
            reason = opened.error();
            return read_wait::done;
          }
          if (*opened) {
            reason = end_of_stream_reason(asio::error::eof, r.decoder); // the peer closed the channel
            return read_wait::done;
          }
          r.input = r.plaintext; // a record may hold no application data yet
          continue;
        }
      }
      // Payload bytes are next: the message's buffer must hold them before the decoder hands them over.
      if (r.current && r.deliver_current && r.filled < r.length) {
        const std::size_t at_hand = std::min(r.input.size(), r.length - r.filled);
        if (const auto wait = make_room(owner, r.filled + at_hand, reason))
          return *wait;
      }
      auto decoded = r.decoder.decode(r.input);
      if (!decoded) {
        reason = decoded.error();
        if (c.registered) // a closing connection has sent its close frame already
          send_close_frame(owner, decoded.error().code());
        return read_wait::done;
      }
      r.input = r.input.subspan(decoded->consumed);
      bool frame_done = false;
      switch (decoded->event) {
      case wire::decode_event::need_more:
        break;
      case wire::decode_event::data_header:
        // The buffer is not sized from the header: it grows as the bytes arrive (make_room).
        r.deliver_current = c.registered && filter_.accepts_data(decoded->type);
        r.current.emplace(incoming_data{c.id, decoded->type, payload()});
        r.length = static_cast<std::size_t>(decoded->length);
        r.filled = 0;
        frame_done = decoded->frame_complete;
        if (!frame_done && r.input.size() >= r.length) {
          // The whole payload is at hand (the common case for small messages): take it without another decode.
          if (r.deliver_current) {
            if (r.length <= payload_growth_step && events_.try_charge(r.length))
              r.current->payload = charged_payload(r.length);
            else if (const auto wait = make_room(owner, r.length, reason))
              return *wait;
            std::memcpy(r.current->payload.data(), r.input.data(), r.length);
          }
          r.filled = r.length;
          r.input = r.input.subspan(r.length);
          frame_done = r.decoder.advance_payload(r.length).value_or(false);
        }
        break;
      case wire::decode_event::data_payload:
        if (r.deliver_current && r.current) {
          std::memcpy(r.current->payload.data() + r.filled, decoded->payload.data(), decoded->payload.size());
          r.filled += decoded->payload.size();
        }
        frame_done = decoded->frame_complete;
        break;
      case wire::decode_event::ping:
        stage_bytes(owner, wire::encode_pong(decoded->token));
        break;
      case wire::decode_event::pong:
        break;
      case wire::decode_event::close:
        reason = peer_error(r.decoder.reason().code);
        return read_wait::done;
      default:
        reason = peer_error(peer_errc::protocol_error);
        return read_wait::done;
      }
      if (!frame_done && r.current && r.deliver_current && r.input.empty() && !c.session &&
          r.decoder.payload_remaining() >= direct_read_threshold) {
        if (const auto wait = make_room(owner, r.filled + std::min(r.length - r.filled, payload_growth_step), reason))
          return *wait;
        return read_wait::payload;
      }
      if (frame_done && r.current) {
        r.event_ready = true;
        if (!deliver_ready(c))
          return read_wait::space;
      }
    }
  }

  /// Queues the complete message of the reader, or drops it when it is not delivered; false when the event queue
  /// has no room for it. A queued message's bytes count against the payload budget until the application takes it.
  bool deliver_ready(connection& c)
  {
    read_state& r = *c.reader;
    if (r.deliver_current && !c.registered)
      events_.refund(r.current->payload.size());
    else if (r.deliver_current && !events_.try_push_quietly(*r.current))
      return false;
    r.current.reset();
    r.event_ready = false;
    return true;
  }

  /// A payload buffer of `size` bytes, already charged against the budget; the charge goes back if it cannot be had.
  payload charged_payload(std::size_t size)
  {
    try {
      return payload(size);
    } catch (...) {
      events_.refund(size);
      throw;
    }
  }

  /// How much a message's buffer may take ahead of its bytes: all a frame header can make the node allocate.
  static constexpr std::size_t payload_growth_step = 64 * 1024;
  /// How many times the bytes that arrived a message's buffer may be sized to.
  static constexpr std::size_t payload_growth_factor = 16;

  /// Makes the buffer of the message being received hold at least `wanted` bytes (never more than its length). It
  /// grows with what has arrived (the bytes at hand and those waiting in the kernel's receive buffer): to about
  /// payload_growth_factor times that (twice as much when that reaches half the message), and at least four times its
  /// size, so that a message of a few MiB is sized once and a larger one copied a few times at most, while a header
  /// alone makes the node allocate at most payload_growth_step bytes. Each step is charged against the node's payload budget. Nothing when the buffer is
  /// large enough; otherwise what the reader must do: wait for the budget (read_wait::space), or end the connection
  /// when memory is out.
  PEERGRAPH_COLD std::optional<read_wait> make_room(const std::shared_ptr<connection>& c, std::size_t wanted,
                                                    std::optional<peer_error>& reason)
  {
    read_state& r = *c->reader;
    payload& buffer = r.current->payload;
    if (wanted <= buffer.size())
      return std::nullopt;
    // What came in for it already, read or waiting in the kernel: bytes, not the promise of a header.
    std::size_t arrived = r.filled + std::min(r.input.size(), r.length - r.filled);
    if (r.length > payload_growth_step && !c->session) {
      std::error_code ignored;
      arrived += c->socket.available(ignored);
    }
    const std::size_t for_arrived =
        arrived >= r.length / payload_growth_factor ? r.length : arrived * payload_growth_factor;
    std::size_t grown = std::max({wanted, for_arrived, 4 * buffer.size(), payload_growth_step});
    if (grown >= r.length / 2)
      grown = r.length; // one step to the end rather than a last copy of nearly all of it
    const std::size_t more = grown - buffer.size();
    if (!events_.try_charge(more)) {
      r.budget_needed = more;
      return read_wait::space;
    }
    r.budget_needed = 0;
    try {
      payload larger(grown);
      if (r.filled != 0)
        std::memcpy(larger.data(), buffer.data(), r.filled);
      buffer = std::move(larger);
    } catch (const std::bad_alloc&) {
      events_.refund(more);
      if (c->registered)
        send_close_frame(c, peer_errc::out_of_memory);
      reason = peer_error(peer_errc::out_of_memory);
      return read_wait::done;
    }
    return std::nullopt;
  }

  static void release_read_buffers(read_state& r) noexcept
  {
    r.buffer.release(); // drained: give the buffer back until data flows again
    if (r.plaintext.capacity() != 0)
      r.plaintext = std::vector<std::byte>();
  }

  /// The rest of a large payload, once the read buffer holds none of it: straight into the message's buffer, in as
  /// few system calls as the kernel allows (Asio's default reads at most 64 KiB per call).
  void read_payload_directly(std::shared_ptr<connection> c)
  {
    read_state& r = *c->reader;
    r.buffer.release();
    // Into the room make_room gave: the whole rest, or up to the buffer's next growth.
    const std::size_t room = r.current->payload.size() - r.filled;
    auto& socket = c->socket;
    const asio::mutable_buffer into = asio::buffer(r.current->payload.data() + r.filled, room);
    auto on_payload = [self = this->shared_from_this(), c = std::move(c)](const std::error_code& ec,
                                                                          std::size_t n) mutable {
      read_state& state = *c->reader;
      if (ec)
        return self->finish_reading(c, end_of_stream_reason(ec, state.decoder));
      state.filled += n;
      c->heard = true;
      if (state.decoder.advance_payload(n).value_or(false))
        state.event_ready = true;
      self->continue_reading(std::move(c));
    };
    const auto as_much_as_allowed = [](const std::error_code& error, std::size_t) -> std::size_t {
      return error ? 0 : ~std::size_t{0};
    };
    asio::async_read(socket, into, as_much_as_allowed,
                     with_allocator(pool_allocator<void>(), std::move(on_payload)));
  }

  /// The end of a connection's reader: the connection is closed and, unless the graph or the application closed it,
  /// taken out of the graph with `reason`.
  void finish_reading(const std::shared_ptr<connection>& c, std::optional<peer_error> reason)
  {
    if (c->reader && c->reader->current)
      events_.refund(c->reader->current->payload.size()); // a message cut off: its bytes are not held any more
    c->reader.reset();
    c->linger.cancel();
    c->keepalive.cancel();
    std::error_code ignored;
    c->socket.close(ignored);
    if (c->registered && !closed_)
      remove_connection(c, reason.value_or(peer_error(peer_errc::connection_closed)));
  }

  /// Why a connection ended, from the read error: a clean end between frames is connection_closed; an end in the
  /// middle of a frame is connection_reset (the peer vanished mid-frame, e.g. its process was killed: its data was
  /// well formed, only cut off).
  static peer_error end_of_stream_reason(const std::error_code& ec, const wire::frame_decoder& decoder)
  {
    if (ec == asio::error::eof)
      return peer_error(decoder.at_frame_boundary() ? peer_errc::connection_closed : peer_errc::connection_reset, ec);
    return peer_error(ec);
  }

  /// Sends a close frame now, behind whatever is staged, when no send is in progress; false when it could not be
  /// sent whole (the caller then closes the socket, which the remote sees as the end of the connection too).
  bool send_close_frame(const std::shared_ptr<connection>& c, peer_errc reason)
  {
    if (c->session)
      return false; // a secure channel's records are sent in the order they were made: see close_connection
    if (!flush_staged(c))
      return false;
    const int fd = static_cast<int>(c->socket.native_handle());
    if (!c->socket.is_open() || !send_order::instance().idle(fd) || c->staged != 0)
      return false;
    auto frame = wire::encode_close(reason);
    if (!frame)
      return false;
    ::iovec iov{frame->data(), frame->size()};
    const send_some_result result = send_some(fd, &iov, 1, 0);
    return result.error == 0 && result.bytes == frame->size();
  }

public:
  /// What stage_frame did with a frame.
  enum class staging
  {
    staged,   // copied: the send is done
    declined, // too large, or the socket has sends queued: send it the ordinary way
    failed,   // the connection broke while making room (failure_of says why)
  };

  /// Copies a small frame (header and payload) into the connection's staging buffer when nothing is being sent on
  /// it, so that it goes out with the frames around it. The caller's bytes are free again at once, as after a
  /// completed WSASend.
  staging stage_frame(connection_id id, iovec_capture& frame)
  {
    auto* found = find_connection(id);
    if (found == nullptr || !(*found)->registered || frame.total_bytes() > staging_threshold())
      return staging::declined;
    connection& c = **found;
    if (c.staged + frame.total_bytes() > staging_capacity && !flush_staged(*found))
      return staging::failed; // `found` and `c` are gone with the connection's table entry
    if (!c.socket.is_open() || !send_order::instance().idle(static_cast<int>(c.socket.native_handle())))
      return staging::declined;
    for (std::size_t i = 0; i < frame.count(); ++i)
      c.stage({static_cast<const std::byte*>(frame.data()[i].iov_base), frame.data()[i].iov_len});
    schedule_flush(*found);
    return staging::staged;
  }

  /// Whether connection `id` runs over a secure channel (graph_properties::tls). No lookup in a plain graph: this is
  /// on the path of every send_data.
  [[nodiscard]] bool is_secure(connection_id id) const noexcept
  {
    if (!properties_.tls)
      return false;
    const auto* c = find_connection(id);
    return c != nullptr && (*c)->session != nullptr;
  }

  /// The part of send_data common to its first attempt and its turn, on the context: finds the connection, stages
  /// a small frame, or writes what is staged ahead of a frame that is sent on its own. The socket to send the frame
  /// on; null when the send is finished, `ec` saying how (clear: staged, the send is done).
  socket_type* prepare_send(connection_id id, send_request& request, bool may_stage, std::error_code& ec)
  {
    ec = request.refused;
    if (ec)
      return nullptr;
    peer_error error;
    socket_type* socket = socket_for(id, error);
    if (socket == nullptr) {
      ec = to_error_code(error);
      return nullptr;
    }
    switch (may_stage ? stage_frame(id, request.buffers) : staging::declined) {
    case staging::staged:
      return nullptr;
    case staging::failed:
      ec = to_error_code(failure_of(id));
      return nullptr;
    case staging::declined:
      break;
    }
    if (!flush_staged(id)) {
      ec = to_error_code(failure_of(id));
      return nullptr;
    }
    return socket;
  }

  /// A send of the application on connection `id` failed with `ec` after `written` bytes of its frame: unless the
  /// stream is still whole (nothing of the frame went out, and the error was the caller's buffers or a shortage of
  /// the moment), the connection ends (write_failed). Returns the error the send reports: the connection's.
  PEERGRAPH_COLD std::error_code send_failed(connection_id id, const std::error_code& ec, std::size_t written)
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
    write_failed(id, peer_error(ec));
    const peer_error reason = failure_of(id);
    return reason == peer_errc::connection_not_found ? ec : to_error_code(reason);
  }

  /// send_data on a secure connection, tried at once after prepare_send: encrypted and written when nothing is
  /// queued on the socket (a part the kernel does not take waits in the queue, the transport owning it). False when
  /// the send has to wait its turn; nothing was done then.
  bool try_send_secure(connection_id id, iovec_capture& frame, std::error_code& ec)
  {
    ec = {};
    const std::shared_ptr<connection> c = connections_.at(id.value());
    if (!c->socket.is_open() || !send_order::instance().idle(static_cast<int>(c->socket.native_handle())))
      return false;
    std::vector<std::byte> ciphertext;
    if (auto encrypted = encrypt_frame(*c, frame, ciphertext); !encrypted) {
      ec = to_error_code(encrypted.error());
      return true;
    }
    if (!send_ciphertext(c, std::move(ciphertext)))
      ec = to_error_code(failure_of(id));
    return true;
  }

  /// send_data on a secure connection, in its turn: encrypted now (so records keep the order of the sends), and
  /// `handler(ec, bytes)` called once the socket took the ciphertext.
  template <class Handler>
  void send_secure(connection_id id, send_request request, Handler&& handler)
  {
    const std::shared_ptr<connection> c = connections_.at(id.value());
    auto ex = asio::get_associated_executor(handler, context_);
    std::vector<std::byte> ciphertext;
    if (auto encrypted = encrypt_frame(*c, request.buffers, ciphertext); !encrypted) {
      asio::post(ex, [h = std::forward<Handler>(handler), ec = to_error_code(encrypted.error())]() mutable {
        std::move(h)(ec, std::size_t{0});
      });
      return;
    }
    const auto bytes = asio::buffer(ciphertext); // a moved vector keeps its storage
    // Not output of the node's own: the application waits for it, which bounds it.
    send_promised(c, bytes,
                  asio::bind_executor(ex, [h = std::forward<Handler>(handler), held = std::move(ciphertext)](
                                              std::error_code ec, std::size_t n) mutable { std::move(h)(ec, n); }),
                  /*counted=*/false);
  }

  /// Writes what is staged on connection `id` before a send that bypasses the staging buffer, to keep the order;
  /// false when the connection broke doing so (failure_of says why).
  bool flush_staged(connection_id id)
  {
    auto* c = find_connection(id);
    return c == nullptr || flush_staged(*c);
  }

  /// A write on connection `id` failed with `reason` (see write_failed); nothing when it is gone already.
  void write_failed(connection_id id, const peer_error& reason)
  {
    if (auto* c = find_connection(id))
      write_failed(*c, reason);
  }

  /// Why connection `id` ended when a write on it failed not long ago (the last few such connections are
  /// remembered); connection_not_found otherwise.
  [[nodiscard]] peer_error failure_of(connection_id id) const noexcept
  {
    for (const auto& failed : recent_failures_)
      if (failed.id == id && id.value() != 0)
        return failed.reason;
    return peer_error(peer_errc::connection_not_found);
  }

private:
  /// Frames up to this size (header included) are copied into the staging buffer rather than sent on their own.
  [[nodiscard]] std::size_t staging_threshold() const noexcept
  {
    return properties_.copy_threshold + wire::data_frame_header_size;
  }

  /// Stages bytes of the node's own (a ping or a pong), flushed at the end of the turn.
  void stage_bytes(const std::shared_ptr<connection>& c, std::span<const std::byte> bytes)
  {
    if (c->staged + bytes.size() > staging_capacity && !flush_staged(c))
      return;
    c->stage(bytes);
    schedule_flush(c);
  }

  /// Writes what `c` staged once the current handler is done: at the end of the reader turn when a reader runs (the
  /// application's replies to what it read go out with one write, without a trip through the executor's queue),
  /// otherwise in a posted handler.
  void schedule_flush(const std::shared_ptr<connection>& c)
  {
    if (c->flush_posted)
      return;
    c->flush_posted = true;
    if (in_reader_turn_) {
      deferred_flushes_.push_back(c);
      return;
    }
    post_with(context_, pool_allocator<void>(), [self = this->shared_from_this(), c] {
      c->flush_posted = false;
      try {
        self->flush_staged(c);
      } catch (const std::bad_alloc&) {
        self->drop_connection(c, peer_error(peer_errc::out_of_memory));
      }
    });
  }

  void flush_deferred()
  {
    for (const auto& c : deferred_flushes_) {
      c->flush_posted = false;
      flush_staged(c);
    }
    deferred_flushes_.clear(); // keeps its capacity: no allocation per turn
  }

  /// Writes the staged frames: directly when the socket takes them, otherwise through the ordered send path, which
  /// then owns the bytes, so that the staging buffer is free for new frames at once. False when the write failed:
  /// the connection has ended then (write_failed).
  bool flush_staged(const std::shared_ptr<connection>& c)
  {
    if (c->staged == 0 || !c->socket.is_open())
      return true;
    if (c->session) {
      std::vector<std::byte> ciphertext;
      const std::array<std::span<const std::byte>, 1> staged{std::span<const std::byte>(c->staging.data(), c->staged)};
      const bool encrypted = c->session->encrypt(staged, ciphertext).has_value();
      c->staged = 0;
      c->staging.release();
      if (!encrypted) {
        write_failed(c, peer_error(peer_errc::protocol_error));
        return false;
      }
      return send_ciphertext(c, std::move(ciphertext));
    }
    const int fd = static_cast<int>(c->socket.native_handle());
    std::size_t written = 0;
    if (send_order::instance().idle(fd)) {
      ::iovec iov{c->staging.data(), c->staged};
      const send_some_result result = send_some(fd, &iov, 1, 0);
      written = result.bytes;
      if (result.error != 0 && result.error != EAGAIN) [[unlikely]]
        return write_failed(c, fd, result.error);
      if (written == c->staged) {
        c->staged = 0;
        c->staging.release();
        return true;
      }
    }
    // The pending send owns the buffer from now on; the connection takes a fresh one for new frames.
    const auto rest = asio::buffer(c->staging.data() + written, c->staged - written);
    c->staged = 0;
    send_promised(c, rest, [held = std::move(c->staging)](std::error_code, std::size_t) {});
    return true;
  }

  /// Encrypts the buffers of one frame on a secure connection.
  static expected<void, peer_error> encrypt_frame(connection& c, iovec_capture& frame,
                                                  std::vector<std::byte>& ciphertext)
  {
    std::vector<std::span<const std::byte>> parts;
    parts.reserve(frame.count());
    for (std::size_t i = 0; i < frame.count(); ++i)
      parts.emplace_back(static_cast<const std::byte*>(frame.data()[i].iov_base), frame.data()[i].iov_len);
    return c.session->encrypt(parts, ciphertext);
  }

  /// Sends ciphertext of a secure connection: written at once when nothing is queued on the socket, the rest queued
  /// behind what is. Promised like staged frames: a record left out would break the channel for every later one.
  /// False when the write failed (write_failed).
  bool send_ciphertext(const std::shared_ptr<connection>& c, std::vector<std::byte> ciphertext)
  {
    if (ciphertext.empty() || !c->socket.is_open())
      return true;
    const int fd = static_cast<int>(c->socket.native_handle());
    std::size_t written = 0;
    if (send_order::instance().idle(fd)) {
      ::iovec iov{ciphertext.data(), ciphertext.size()};
      const send_some_result result = send_some(fd, &iov, 1, 0);
      written = result.bytes;
      if (result.error != 0 && result.error != EAGAIN) [[unlikely]]
        return write_failed(c, fd, result.error);
      if (written == ciphertext.size())
        return true;
    }
    const auto rest = asio::buffer(ciphertext.data() + written, ciphertext.size() - written);
    send_promised(c, rest, [held = std::move(ciphertext)](std::error_code, std::size_t) {});
    return true;
  }

  /// Decrypts bytes read from a secure connection, appending the plaintext; sends what the channel answers.
  /// @return whether the peer closed the channel.
  expected<bool, peer_error> decrypt(const std::shared_ptr<connection>& c, std::span<const std::byte> ciphertext,
                                     std::vector<std::byte>& plaintext)
  {
    std::vector<std::byte> answer;
    auto closed = c->session->decrypt(ciphertext, plaintext, answer);
    if (!send_ciphertext(c, std::move(answer)))
      return unexpected(failure_of(c->id));
    return closed;
  }

  /// Queues bytes already promised to the peer (staged frames whose send_data succeeded, the close frame): closing
  /// the connection does not withdraw them, only the linger deadline or a broken connection stops them. Unless
  /// `counted` is false (a send the application still waits for), they count against max_connection_output until
  /// the socket has taken them.
  template <class Handler>
  void send_promised(const std::shared_ptr<connection>& c, asio::const_buffer bytes, Handler&& handler,
                     bool counted = true)
  {
    const std::size_t size = counted ? bytes.size() : 0;
    c->promised += size;
    auto request = make_send_request<socket_type>({}, bytes, send_flags::none);
    request.withdrawable = false;
    auto settle = [self = this->shared_from_this(), weak = std::weak_ptr<connection>(c), size,
                   h = std::forward<Handler>(handler)](std::error_code ec, std::size_t n) mutable {
      if (auto conn = weak.lock(); conn && size != 0)
        self->output_taken(conn, size);
      std::move(h)(ec, n);
    };
    initiate_send<socket_type, true, std::size_t>(c->socket)(std::move(settle), std::move(request));
  }

  /// The socket took (or dropped) `bytes` promised on `c`: a reader that waited for its peer to read goes on once
  /// half the bound is free.
  void output_taken(const std::shared_ptr<connection>& c, std::size_t bytes)
  {
    c->promised -= std::min(c->promised, bytes);
    if (!c->output_paused)
      return;
    if (c->promised + c->staged <= properties_.max_connection_output / 2)
      resume_reading(c);
    else if (c->registered)
      arm_stall_deadline(c); // the peer reads, slowly: it gets a new deadline
  }

  /// Whether `c` holds as much for its peer as it may: its reader stops, so that it makes no more replies.
  [[nodiscard]] bool output_full(const connection& c) const noexcept
  {
    return c.promised + c.staged >= properties_.max_connection_output;
  }

  /// Stops the reader of `c` until its peer takes what is promised (output_taken); a peer that takes too little
  /// for output_stall_timeout loses the connection with limit_exceeded. The stall deadline uses the linger timer,
  /// idle until the connection closes.
  PEERGRAPH_COLD void pause_for_output(std::shared_ptr<connection> c)
  {
    c->output_paused = true;
    if (c->reader)
      release_read_buffers(*c->reader);
    if (c->registered) // closing: the linger deadline bounds it already
      arm_stall_deadline(c);
  }

  /// A paused connection whose peer takes nothing for output_stall_timeout ends with limit_exceeded.
  void arm_stall_deadline(const std::shared_ptr<connection>& c)
  {
    c->linger.expires_after(properties_.output_stall_timeout);
    c->linger.async_wait([self = this->shared_from_this(), weak = std::weak_ptr<connection>(c)](std::error_code ec) {
      auto conn = weak.lock();
      if (ec || !conn || !conn->output_paused || !conn->registered)
        return;
      self->drop_connection(conn, peer_error(peer_errc::limit_exceeded));
    });
  }

  /// Lets the paused reader of `c` go on, in a handler of its own.
  void resume_reading(const std::shared_ptr<connection>& c)
  {
    if (!std::exchange(c->output_paused, false))
      return;
    if (c->registered)
      c->linger.cancel(); // the stall deadline; a closing connection's linger deadline stays
    post_with(context_, pool_allocator<void>(), [self = this->shared_from_this(), c] { self->continue_reading(c); });
  }

  /// A write on `c` (descriptor `fd`) failed with errno `error`: as below; always false, for the caller to return.
  PEERGRAPH_COLD bool write_failed(const std::shared_ptr<connection>& c, int fd, int error)
  {
    write_failed(c, peer_error(std::error_code(send_error_errno(fd, error), std::system_category())));
    return false;
  }

  /// A write on `c` failed: its stream is broken (what that write held is lost, and what would follow it could not
  /// arrive in order). The connection ends now and is reported with `reason`, even while the application keeps
  /// sending without yielding; the sends that follow on it fail with the same reason (failure_of). Taken by value:
  /// the caller's reference may be the table entry that goes away here.
  PEERGRAPH_COLD void write_failed(std::shared_ptr<connection> c, peer_error reason)
  {
    // Linux answers a write on a connection its peer reset with EPIPE, the socket no longer connected.
    if (reason == peer_errc::not_connected)
      reason = peer_error(peer_errc::connection_reset, reason.cause());
    if (c->registered && !closed_) {
      recent_failures_[next_failure_slot_] = {c->id, reason};
      next_failure_slot_ = (next_failure_slot_ + 1) % recent_failures_.size();
    }
    drop_connection(c, reason);
  }

  /// Ends `c` at once, without a goodbye (its stream is broken, or its peer takes nothing), reported with `reason`
  /// unless it was closing already. Its reader ends when it next runs; sends queued on it complete with
  /// operation_aborted.
  PEERGRAPH_COLD void drop_connection(std::shared_ptr<connection> c, const peer_error& reason)
  {
    if (c->registered && !closed_)
      remove_connection(c, reason);
    c->registered = false;
    c->staged = 0;
    c->staging.release();
    c->keepalive.cancel();
    c->linger.cancel();
    std::error_code ignored;
    c->socket.close(ignored);
    resume_reading(c); // a paused reader sees the socket closed and ends
    // The caller may still be inside a member of `c`: it is freed after the current handler at the earliest.
    post_with(context_, pool_allocator<void>(), [keep = std::move(c)] {});
  }

  /// Takes `c` out of the graph and tells the remote why: a close frame, then an orderly shutdown. Sends of the
  /// application that have not written anything yet complete with operation_aborted at once; what was promised to
  /// the peer (staged frames reported sent, a frame partly written) goes out first, in order, and the close frame
  /// behind it. The reader drains what the remote still sends until it closes its side; close_linger bounds the
  /// whole goodbye, after which the socket is closed whatever is left.
  void close_connection(const std::shared_ptr<connection>& c, peer_errc wire_reason,
                        std::optional<peer_error> local_reason)
  {
    if (local_reason)
      remove_connection(c, *local_reason);
    c->registered = false;
    c->keepalive.cancel();
    std::error_code ignored;
    if (!c->socket.is_open())
      return;
    if (send_close_frame(c, wire_reason)) {
      c->socket.shutdown(asio::socket_base::shutdown_send, ignored);
    } else if (c->socket.is_open()) {
      auto frame = wire::encode_close(wire_reason);
      if (!frame) {
        c->socket.close(ignored);
        return;
      }
      if (c->session) {
        // Every queued record goes out (none may be left out), then the close frame and the channel's closing.
        if (!flush_staged(c))
          return;
        std::vector<std::byte> ciphertext;
        const std::array<std::span<const std::byte>, 1> plain{std::span<const std::byte>(*frame)};
        if (!c->session->encrypt(plain, ciphertext)) {
          c->socket.close(ignored);
          return;
        }
        c->session->close(ciphertext);
        *frame = std::move(ciphertext);
      } else {
        send_order::instance().withdraw(static_cast<int>(c->socket.native_handle()));
      }
      const auto bytes = asio::buffer(*frame); // a moved vector keeps its storage
      send_promised(c, bytes, [weak = std::weak_ptr<connection>(c), held = std::move(*frame)](std::error_code ec,
                                                                                              std::size_t) {
        if (auto p = weak.lock(); p && !ec) {
          std::error_code e;
          p->socket.shutdown(asio::socket_base::shutdown_send, e);
        }
      });
    } else {
      return; // the close frame's write failed: the connection was dropped
    }
    c->linger.expires_after(properties_.close_linger);
    c->linger.async_wait([weak = std::weak_ptr<connection>(c)](const std::error_code& ec) {
      if (auto p = weak.lock(); p && !ec) {
        std::error_code e;
        p->socket.close(e);
      }
    });
  }

  void remove_connection(const std::shared_ptr<connection>& c, const peer_error& reason)
  {
    c->registered = false;
    connections_.erase(c->id.value());
    if (std::exchange(c->incoming, false)) {
      auto it = incoming_by_address_.find(address_key(c->remote_address.address()));
      if (it != incoming_by_address_.end() && it->second.connections != 0) {
        --it->second.connections;
        forget_unloaded(it->first);
      }
    }
    last_found_ = nullptr;
    if (c->kind == connection_kind::neighbor)
      release_claim(c->remote_peer, c->id);
    emit(connection_changed{c->id, c->kind, connection_status::disconnected, c->remote_peer, c->remote_node, reason});
    update_status();
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
  std::optional<acceptor_type> acceptor_;
  std::unordered_map<std::uint64_t, std::shared_ptr<connection>> connections_;
  std::unordered_map<std::uint64_t, std::shared_ptr<pending>> pending_;
  std::unordered_map<std::string, neighbor_claim> neighbors_;
  std::unordered_map<asio::ip::address, address_load> incoming_by_address_; // busy remote addresses only
  timer_type accept_backoff_; // the accept loop's pause after a failed accept
  std::uint64_t last_id_ = 0;
  std::uint64_t last_ping_token_ = 0;
  std::size_t pending_incoming_ = 0;
  std::size_t reserved_slots_ = 0;
  graph_status status_ = graph_status::none;
  bool closed_ = false;
  mutable const std::shared_ptr<connection>* last_found_ = nullptr; // see find_connection; reset on every erase
  bool in_reader_turn_ = false; // a reader's handler runs (continue_reading): flushes wait for its end
  /// The connections that ended because a write failed, most recent last: send_data on them says why.
  struct failed_write
  {
    connection_id id;
    peer_error reason;
  };
  std::array<failed_write, 16> recent_failures_{};
  std::size_t next_failure_slot_ = 0;
  std::vector<std::shared_ptr<connection>> deferred_flushes_;
  std::vector<std::unique_ptr<read_state>> spare_readers_; // readers at rest, for the next connection with data
};

/// Calls `f(state)` on the graph's context: at once when the caller already runs there (what dispatch does, without
/// wrapping `f` in a type-erased function object), else through dispatch.
template <class State, class F>
void call_on_context(const std::shared_ptr<State>& state, F&& f)
{
  if (state->on_context())
    return std::forward<F>(f)(*state);
  asio::dispatch(state->context(), [state, f = std::forward<F>(f)]() mutable { std::move(f)(*state); });
}

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

/// Runs `operation(state, args...)` (a coroutine yielding expected<T>) on the graph's context and completes `handler`
/// with `void(std::error_code, T)` (or `void(std::error_code)` for T = void). The arguments are passed as parameters,
/// which the coroutine frame owns; a capturing lambda coroutine would read its captures after the lambda is gone.
template <class T, class State, class Handler, class Operation, class... Args>
void run_on_context(const std::shared_ptr<State>& state, Handler&& handler, Operation operation, Args... args)
{
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
  asio::co_spawn(state->context(), operation(state, std::move(args)...), std::move(completion));
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

/// The initiation object of send_data: a synchronous first attempt for use_expected, the send path otherwise.
template <class Executor>
class initiate_send_data
{
public:
  using state_type = graph_state<Executor>;
  using executor_type = typename state_type::context_type;

  initiate_send_data(std::shared_ptr<state_type> state, connection_id id, bool may_stage)
      : state_(std::move(state)), id_(id), may_stage_(may_stage)
  {
  }

  [[nodiscard]] executor_type get_executor() const noexcept { return state_->context(); }

  bool try_immediate(std::error_code& ec, send_request& request) const
  {
    if (!state_) {
      ec = make_error_code(peer_errc::not_initialized);
      return true;
    }
    if (request.refused) {
      ec = request.refused;
      return true;
    }
    if (!state_->on_context())
      return false; // the state may only be read on its context: go the asynchronous way
    try {
      auto* socket = state_->prepare_send(id_, request, may_stage_, ec);
      if (socket == nullptr)
        return true;
      if (state_->is_secure(id_))
        return state_->try_send_secure(id_, request.buffers, ec);
      std::size_t sent = 0;
      const bool finished =
          initiate_send<typename state_type::socket_type, true, std::size_t>(*socket).try_immediate(ec, sent, request);
      if (finished && ec)
        ec = state_->send_failed(id_, ec, request.bytes_sent);
      return finished;
    } catch (const std::bad_alloc&) {
      ec = make_error_code(peer_errc::out_of_memory);
      return true;
    }
  }

  template <class Handler>
  void operator()(Handler&& handler, send_request request) const
  {
    if (!state_)
      return complete_not_initialized<void>(asio::system_executor(), std::forward<Handler>(handler));
    // A send that fails in its turn ends the connection, so that no later send is reported done on a broken stream.
    auto completion = bound_completion(std::forward<Handler>(handler), [state = state_, id = id_](
                                                                           auto&& h, std::error_code ec, std::size_t n) {
      if (ec && state->on_context())
        ec = state->send_failed(id, ec, n);
      else if (ec)
        call_on_context(state, [id, ec, n](state_type& s) { (void)s.send_failed(id, ec, n); });
      std::move(h)(ec);
    });
    call_on_context(state_, [id = id_, may_stage = may_stage_, completion = std::move(completion),
                             request = std::move(request)](state_type& state) mutable {
      std::error_code ec;
      typename state_type::socket_type* target = nullptr;
      try {
        target = state.prepare_send(id, request, may_stage, ec);
      } catch (const std::bad_alloc&) {
        ec = make_error_code(peer_errc::out_of_memory);
      }
      if (target == nullptr) {
        // Finished at once (staged) or failed: completed through the handler's executor, never inline.
        auto ex = asio::get_associated_executor(completion.handler_, state.context());
        const auto alloc = asio::get_associated_allocator(completion.handler_, pool_allocator<void>());
        post_with(ex, alloc, [h = std::move(completion.handler_), ec]() mutable { std::move(h)(ec); });
        return;
      }
      if (state.is_secure(id))
        return state.send_secure(id, std::move(request), std::move(completion));
      const initiate_send<typename state_type::socket_type, true, std::size_t> send(*target);
      send(std::move(completion), std::move(request));
    });
  }

private:
  std::shared_ptr<state_type> state_;
  connection_id id_;
  bool may_stage_; // false for zero_copy sends, which never copy the payload
};

/// The initiation object of next_event: takes a queued event at once for use_expected when one is there.
template <class Executor>
class initiate_next_event
{
public:
  using state_type = graph_state<Executor>;

  explicit initiate_next_event(std::shared_ptr<state_type> state) : state_(std::move(state)) {}

  std::optional<expected<graph_event, peer_error>> try_immediate_result() const
  {
    using result_type = std::optional<expected<graph_event, peer_error>>;
    if (!state_)
      return result_type(unexpected(peer_error(peer_errc::not_initialized)));
    if (!state_->on_context())
      return std::nullopt;
    if (state_->closed())
      return result_type(unexpected(peer_error(peer_errc::invalid_graph)));
    return state_->try_receive_event();
  }

  template <class Handler>
  void operator()(Handler&& handler) const
  {
    if (!state_)
      return complete_not_initialized<graph_event>(asio::system_executor(), std::forward<Handler>(handler));
    call_on_context(state_, [h = std::decay_t<Handler>(std::forward<Handler>(handler))](state_type& state) mutable {
      if (state.closed()) {
        auto ex = asio::get_associated_executor(h, state.context());
        asio::post(ex, [h = std::move(h)]() mutable {
          std::move(h)(make_error_code(peer_errc::invalid_graph), graph_event{});
        });
        return;
      }
      state.receive_event(std::move(h));
    });
  }

private:
  std::shared_ptr<state_type> state_;
};

} // namespace peergraph::detail

namespace peergraph {

template <class Executor>
basic_graph<Executor>::basic_graph(const executor_type& executor, graph_properties properties)
{
  if (auto valid = properties.validate(); !valid)
    throw std::system_error(valid.error().as_error_code(), "peergraph::basic_graph: " + valid.error().cause().message());
  state_ = std::make_shared<detail::graph_state<Executor>>(executor, std::move(properties));
}

template <class Executor>
expected<basic_graph<Executor>, peer_error> basic_graph<Executor>::create(const executor_type& executor,
                                                                           graph_properties properties)
{
  if (auto valid = properties.validate(); !valid)
    return unexpected(valid.error());
  basic_graph created;
  created.state_ = std::make_shared<detail::graph_state<Executor>>(executor, std::move(properties));
  return created;
}

template <class Executor>
basic_graph<Executor>& basic_graph<Executor>::operator=(basic_graph&& other) noexcept
{
  if (this != &other) {
    close_on_context();
    state_ = std::move(other.state_);
  }
  return *this;
}

template <class Executor>
basic_graph<Executor>::~basic_graph()
{
  close_on_context();
}

template <class Executor>
void basic_graph<Executor>::close_on_context() noexcept
{
  if (!state_)
    return;
  const auto context = state_->context();
  asio::dispatch(context, [state = std::move(state_)] { state->close(); });
}

template <class Executor>
typename basic_graph<Executor>::executor_type basic_graph<Executor>::get_executor() const noexcept
{
  PEERGRAPH_ASSERT(state_);
  return state_->executor();
}

template <class Executor>
node_id basic_graph<Executor>::local_node() const noexcept
{
  return state_ ? state_->local_node() : node_id();
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::listen(const asio::ip::tcp::endpoint& endpoint, CompletionToken&& token)
{
  using result_type = asio::ip::tcp::endpoint;
  return asio::async_initiate<CompletionToken, void(std::error_code, result_type)>(
      [state = state_](auto handler, asio::ip::tcp::endpoint ep) {
        if (!state)
          return detail::complete_not_initialized<result_type>(asio::system_executor(), std::move(handler));
        detail::run_on_context<result_type>(
            state, std::move(handler), [](auto s, asio::ip::tcp::endpoint e) { return s->listen(e); }, ep);
      },
      token, endpoint);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::connect(const asio::ip::tcp::endpoint& address, std::optional<peer_id> expected_peer,
                                    CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, connection_id)>(
      [state = state_](auto handler, asio::ip::tcp::endpoint ep, std::optional<peer_id> peer) {
        if (!state)
          return detail::complete_not_initialized<connection_id>(asio::system_executor(), std::move(handler));
        detail::run_on_context<connection_id>(
            state, std::move(handler),
            [](auto s, asio::ip::tcp::endpoint e, std::optional<peer_id> p) {
              return s->connect(e, connection_kind::neighbor, std::move(p));
            },
            ep, std::move(peer));
      },
      token, address, std::move(expected_peer));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::open_direct_connection(const peer_id& peer, const asio::ip::tcp::endpoint& address,
                                                   CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, connection_id)>(
      [state = state_](auto handler, asio::ip::tcp::endpoint ep, peer_id remote) {
        if (!state)
          return detail::complete_not_initialized<connection_id>(asio::system_executor(), std::move(handler));
        detail::run_on_context<connection_id>(
            state, std::move(handler),
            [](auto s, asio::ip::tcp::endpoint e, peer_id p) {
              return s->connect(e, connection_kind::direct, std::optional<peer_id>(std::move(p)));
            },
            ep, std::move(remote));
      },
      token, address, peer);
}

template <class Executor>
template <class ConstBufferSequence, class CompletionToken>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value &&
           (!std::is_same_v<std::decay_t<CompletionToken>, send_flags>)
auto basic_graph<Executor>::send_data(connection_id id, const data_type& type, const ConstBufferSequence& buffers,
                                      CompletionToken&& token)
{
  return send_data(id, type, buffers, send_flags::none, std::forward<CompletionToken>(token));
}

template <class Executor>
template <class ConstBufferSequence, class CompletionToken>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value
auto basic_graph<Executor>::send_data(connection_id id, const data_type& type, const ConstBufferSequence& buffers,
                                      send_flags flags, CompletionToken&& token)
{
  // The frame header travels inside the captured request, so nothing here outlives the call but the payload bytes.
  std::uint64_t payload_size = 0;
  for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it)
    payload_size += asio::const_buffer(*it).size();
  using socket_type = typename detail::graph_state<Executor>::socket_type;
  const auto refused = [](peer_errc why) {
    detail::send_request request;
    request.refused = make_error_code(why);
    return request;
  };
  const auto make_request = [&] {
    // Partial or urgent bytes would break the framing of the stream.
    if (type.is_nil() || has_flags(flags, send_flags::partial) || has_flags(flags, send_flags::out_of_band))
      return refused(peer_errc::invalid_argument);
    if (state_ && payload_size > state_->max_frame_size())
      return refused(peer_errc::frame_too_large);
    const auto header = wire::encode_data_header(type, payload_size);
    return detail::make_send_request<socket_type>(header, buffers, flags);
  };
  return detail::async_initiate_made<CompletionToken, void(std::error_code)>(
      detail::initiate_send_data<Executor>(state_, id, flags == send_flags::none), token, make_request);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::close_direct_connection(connection_id id, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      [state = state_](auto handler, connection_id cid) {
        if (!state)
          return detail::complete_not_initialized<void>(asio::system_executor(), std::move(handler));
        detail::run_on_context<void>(
            state, std::move(handler),
            [](auto s, connection_id c) -> asio::awaitable<expected<void, peer_error>> {
              co_return s->close_direct_connection(c);
            },
            cid);
      },
      token, id);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::connections(connection_kinds kinds, CompletionToken&& token)
{
  using result_type = std::vector<connection_info>;
  return asio::async_initiate<CompletionToken, void(std::error_code, result_type)>(
      [state = state_](auto handler, connection_kinds k) {
        if (!state)
          return detail::complete_not_initialized<result_type>(asio::system_executor(), std::move(handler));
        detail::run_on_context<result_type>(
            state, std::move(handler),
            [](auto s, connection_kinds which) -> asio::awaitable<expected<result_type, peer_error>> {
              if (s->closed())
                co_return unexpected(peer_error(peer_errc::invalid_graph));
              co_return s->connections(which);
            },
            k);
      },
      token, kinds);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::status(CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, graph_status)>(
      [state = state_](auto handler) {
        if (!state)
          return detail::complete_not_initialized<graph_status>(asio::system_executor(), std::move(handler));
        detail::run_on_context<graph_status>(state, std::move(handler),
                                            [](auto s) -> asio::awaitable<expected<graph_status, peer_error>> {
                                              if (s->closed())
                                                co_return unexpected(peer_error(peer_errc::invalid_graph));
                                              co_return s->status();
                                            });
      },
      token);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::next_event(CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, graph_event)>(
      detail::initiate_next_event<Executor>(state_), token);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::set_event_filter(event_filter filter, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      [state = state_](auto handler, event_filter f) {
        if (!state)
          return detail::complete_not_initialized<void>(asio::system_executor(), std::move(handler));
        detail::run_on_context<void>(
            state, std::move(handler),
            [](auto s, event_filter replacement) -> asio::awaitable<expected<void, peer_error>> {
              if (s->closed())
                co_return unexpected(peer_error(peer_errc::invalid_graph));
              s->set_filter(std::move(replacement));
              co_return expected<void, peer_error>{};
            },
            std::move(f));
      },
      token, std::move(filter));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::close(CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      [state = state_](auto handler) {
        if (!state)
          return detail::complete_not_initialized<void>(asio::system_executor(), std::move(handler));
        detail::run_on_context<void>(state, std::move(handler),
                                    [](auto s) -> asio::awaitable<expected<void, peer_error>> {
                                      if (s->closed())
                                        co_return unexpected(peer_error(peer_errc::invalid_graph));
                                      s->close();
                                      co_return expected<void, peer_error>{};
                                    });
      },
      token);
}

} // namespace peergraph
