//
// peergraph/detail/graph/handshake.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The handshake of docs/wire.md, from either side: the secure channel (graph_properties::tls), the membership
// exchange of a closed graph, the hellos, and accept or refuse. What the graph decides about a caller (limits,
// neighbour claims) it asks its admission; the handshake itself knows only the wire and the graph's properties.
//
#pragma once

#include <peergraph/detail/asio_compat.hpp>
#include <peergraph/detail/graph/context.hpp>
#include <peergraph/detail/socket_ops.hpp>
#include <peergraph/error.hpp>
#include <peergraph/graph_properties.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/membership.hpp>
#include <peergraph/send.hpp>
#include <peergraph/transport_security.hpp>
#include <peergraph/wire.hpp>

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/ip/address.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

namespace peergraph::detail {

/// A connection in its handshake: the socket and what the handshake learned, shared with its deadline.
template <class Context>
struct handshake_attempt
{
  handshake_attempt(const Context& context, connection_kind kind_) : socket(context), deadline(context), kind(kind_) {}

  typename graph_io<Context>::socket_type socket;
  std::unique_ptr<secure_session> session; // graph_properties::tls, from the start of the handshake
  typename graph_io<Context>::timer_type deadline;
  connection_kind kind; // for an incoming connection: what the remote's hello asked for
  bool timed_out = false;
  bool holds_slot = false;         // past the checks: counts against max_connections until it ends or is established
  bool holds_address_slot = false; // incoming and past the checks: counts against max_connections_per_address
  asio::ip::address from;          // an incoming connection's remote address
  peer_id remote_peer;
  node_id remote_node;
};

/// The handshake's working state, and what it leaves for the reader: the decoder (past the handshake at the end)
/// and the bytes read beyond the last handshake message, buffer[begin, end).
struct handshake_state
{
  wire::frame_decoder decoder;
  std::vector<std::byte> buffer;
  std::size_t begin = 0;
  std::size_t end = 0;
  std::array<std::byte, 2> opening{}; // the first bytes of the stream, to recognise a TLS caller
  std::size_t opening_size = 0;
};

/// Closes the socket of `attempt` when `after` passes first (a connect or a handshake that takes too long);
/// `attempt` may be gone by then.
template <class Context>
void arm_deadline(const std::shared_ptr<handshake_attempt<Context>>& attempt, std::chrono::milliseconds after)
{
  attempt->deadline.expires_after(after);
  attempt->deadline.async_wait([weak = std::weak_ptr<handshake_attempt<Context>>(attempt)](const std::error_code& ec) {
    if (ec)
      return;
    if (auto p = weak.lock()) {
      p->timed_out = true;
      close_socket(p->socket);
    }
  });
}

/// What the graph decides about a caller during a handshake (the registry implements it).
template <class Context>
class handshake_admission
{
public:
  /// Decides on a valid hello of a member of this graph, before this side accepts: 0 to go on, or the reason to
  /// refuse (limits, a neighbour connection to that peer already, the graph closing). Going on, the attempt holds
  /// what it was admitted to (a connection slot, its address's slot, the neighbour claim) until release().
  virtual peer_errc admit(handshake_attempt<Context>& attempt, connection_id id, bool initiator,
                          const wire::hello_message& remote, const std::optional<peer_id>& expected_peer) = 0;

  /// After both sides accepted: 0 when the connection is still wanted, else why not (the graph closed meanwhile, or
  /// a crossing connection to the same peer won the neighbour claim).
  virtual peer_errc confirm(const handshake_attempt<Context>& attempt, connection_id id) = 0;

  /// Gives back what a failed attempt held.
  virtual void release(handshake_attempt<Context>& attempt, connection_id id) = 0;

protected:
  ~handshake_admission() = default;
};

template <class Context>
class handshake
{
public:
  using attempt_type = handshake_attempt<Context>;
  using attempt_ptr = std::shared_ptr<attempt_type>;

  handshake(const graph_properties& properties, node_id local_node, engine_lifetime& lifetime,
            handshake_admission<Context>& admission) noexcept
      : properties_(properties), node_(local_node), lifetime_(lifetime), admission_(admission)
  {
  }

  /// The handshake of docs/wire.md, from either side (see run_handshake). Memory running out during it fails this
  /// one attempt with out_of_memory, with everything it held given back.
  asio::awaitable<expected<handshake_state, peer_error>> operator()(attempt_ptr attempt, connection_id id,
                                                                    bool initiator,
                                                                    std::optional<peer_id> expected_peer)
  {
    try {
      co_return co_await run_handshake(attempt, id, initiator, std::move(expected_peer));
    } catch (const std::bad_alloc&) {
    }
    abandon(*attempt, id);
    co_return unexpected(peer_error(peer_errc::out_of_memory));
  }

  /// Ends a handshake that failed: its socket closed, what its admission held given back.
  void abandon(attempt_type& attempt, connection_id id)
  {
    attempt.deadline.cancel();
    close_socket(attempt.socket);
    admission_.release(attempt, id);
  }

private:
  /// The handshake's steps. The connecting side sends its hello first; the accepting side answers with its own hello
  /// only after a valid hello from a member of its graph arrived, so it reveals nothing to a node that says nothing
  /// or does not belong. In a closed graph the membership exchange comes first, so neither side says who it is
  /// before the other proved membership.
  asio::awaitable<expected<handshake_state, peer_error>> run_handshake(attempt_ptr shared_attempt, connection_id id,
                                                                       bool initiator,
                                                                       std::optional<peer_id> expected_peer)
  {
    auto self = lifetime_.keep_alive(this);
    attempt_type& attempt = *shared_attempt;
    arm_deadline(shared_attempt, properties_.handshake_timeout);
    handshake_state state{wire::frame_decoder(properties_.max_frame_size), std::vector<std::byte>(4096)};
    bool preamble_sent = false;
    auto fail = [&](peer_error error) -> expected<handshake_state, peer_error> {
      abandon(attempt, id);
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
    if (initiator && !carries_records(remote)) {
      co_await send_refuse(attempt, peer_errc::unsupported_version, /*preamble_sent=*/true);
      co_return fail(peer_error(peer_errc::unsupported_version));
    }
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

    const peer_errc verdict = admission_.admit(attempt, id, initiator, remote, expected_peer);
    if (verdict != peer_errc{}) {
      co_await send_refuse(attempt, verdict, /*preamble_sent=*/true);
      co_return fail(peer_error(verdict));
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
    if (const peer_errc unwanted = admission_.confirm(attempt, id); unwanted != peer_errc{})
      co_return fail(peer_error(unwanted));
    co_return std::move(state);
  }

  /// The membership exchange of a closed graph (docs/wire.md, "Closed graphs"): each side sends its preamble
  /// and a fresh challenge, each proves membership over both challenges, and the acceptor proves first, so a caller
  /// never says who it is to a node that is not a member. A proof that does not verify is refused with
  /// not_authenticated. Yields not_authenticated too when the remote node skips the exchange (an open graph's node).
  asio::awaitable<expected<void, peer_error>> prove_membership(attempt_type& attempt, handshake_state& state,
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
  asio::awaitable<expected<void, peer_error>> send_hello(attempt_type& attempt, connection_kind kind,
                                                         const std::optional<peer_id>& expected_peer,
                                                         bool preamble_sent)
  {
    auto hello = wire::encode_hello(
        wire::hello_message{kind, properties_.graph, properties_.peer, node_, expected_peer, wire::supported_features});
    if (!hello)
      co_return unexpected(hello.error());
    co_return co_await send_bytes(attempt,
                                  std::span<const std::byte>(*hello).subspan(preamble_sent ? wire::preamble_size : 0));
  }

  /// Tells the remote why the handshake ends, best effort (it may be gone already): a refuse frame, after this
  /// side's preamble when nothing was sent yet (a refuse in place of the hello, which introduces nothing).
  asio::awaitable<void> send_refuse(attempt_type& attempt, peer_errc reason, bool preamble_sent)
  {
    auto refuse = preamble_sent ? wire::encode_refuse(reason) : wire::encode_refusing_opening(reason);
    if (refuse)
      (void)co_await send_bytes(attempt, *refuse);
  }

  /// Sends handshake bytes (`first`, then `second`), through the secure channel when there is one.
  asio::awaitable<expected<void, peer_error>> send_bytes(attempt_type& attempt, std::span<const std::byte> first,
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
  asio::awaitable<expected<void, peer_error>> secure_channel(attempt_type& attempt, handshake_state& state,
                                                             bool initiator)
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
  static peer_errc plain_refusal(handshake_state& state, std::span<const std::byte> bytes)
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
  asio::awaitable<expected<void, peer_error>> read_more(attempt_type& attempt, handshake_state& state)
  {
    state.begin = state.end = 0;
    if (!attempt.session) {
      auto [ec, n] =
          co_await attempt.socket.async_read_some(asio::buffer(state.buffer), asio_compat::use_awaitable_tuple);
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
      auto [ec, n] =
          co_await attempt.socket.async_read_some(asio::buffer(ciphertext), asio_compat::use_awaitable_tuple);
      if (ec)
        co_return unexpected(handshake_read_error(ec));
      ciphertext.resize(n);
    }
    co_return unexpected(peer_error(peer_errc::protocol_error));
  }

  /// Reads until the decoder reports `wanted` (membership, hello or accept). A refuse yields its reason; a hello
  /// where a membership frame belongs, or the reverse, is not_authenticated (the two sides disagree on whether the
  /// graph is closed); the end of the stream during a handshake is connection_failed.
  asio::awaitable<expected<void, peer_error>> read_until(attempt_type& attempt, handshake_state& state,
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
    if (!carries_records(remote))
      return peer_errc::unsupported_version;
    return peer_errc{};
  }

  /// A neighbor connection carries the graph's records: a node that cannot would leave them divided.
  [[nodiscard]] static bool carries_records(const wire::hello_message& remote) noexcept
  {
    return remote.kind != connection_kind::neighbor || (remote.features & wire::feature_records) != 0;
  }

  const graph_properties& properties_;
  node_id node_;
  engine_lifetime& lifetime_;
  handshake_admission<Context>& admission_;
};

} // namespace peergraph::detail
