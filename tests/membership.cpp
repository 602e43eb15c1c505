#include <peergraph/membership.hpp>
// The header under test comes first: it must be self-contained.
//
// Closed graphs (graph_properties::membership, here with pre_shared_key): members connect as in an open graph; a
// node without the graph's credentials cannot complete a handshake, cannot send data and learns no peer id, and
// the failure is not_authenticated on both sides. The hostile side is a raw socket speaking the wire protocol by
// hand (tests/support/graph_nodes.hpp), holding the key where a test needs a proof it could not make itself.

#include "support/co_test.hpp"
#include "support/error_text.hpp"
#include "support/graph_nodes.hpp"
#include "support/graph_support.hpp"

#include <peergraph/graph.hpp>
#include <peergraph/psk.hpp>
#include <peergraph/wire.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
using peergraph::connection_changed;
using peergraph::connection_kind;
using peergraph::connection_status;
using peergraph::graph_event;
using peergraph::incoming_data;
using peergraph::membership_nonce_size;
using peergraph::membership_proof_size;
using peergraph::membership_role;
using peergraph::peer_errc;
using peergraph::peer_error;
using peergraph::pre_shared_key;
using peergraph::test::any_v4;
using peergraph::test::bytes_of;
using peergraph::test::connect_link;
using peergraph::test::error_text;
using peergraph::test::exchange;
using peergraph::test::expect_refused_both_ways;
using peergraph::test::expect_unauthenticated_failure;
using peergraph::test::hello_of;
using peergraph::test::listening;
using peergraph::test::node;
using peergraph::test::pause;
using peergraph::test::pid;
using peergraph::test::props;
using peergraph::test::raw_peer;
using peergraph::test::saw_connection_or_data;
using peergraph::test::use_tuple;
using tcp = asio::ip::tcp;
namespace wire = peergraph::wire;

using nonce = std::array<std::byte, membership_nonce_size>;
using proof = std::array<std::byte, membership_proof_size>;

/// The key of the closed test graph, and another one.
const std::shared_ptr<const pre_shared_key>& graph_key()
{
  static const auto key = *pre_shared_key::make(bytes_of("the graph's 32-byte secret key!!"));
  return key;
}

const std::shared_ptr<const pre_shared_key>& other_key()
{
  static const auto key = *pre_shared_key::make(bytes_of("some other graph's secret key!!!"));
  return key;
}

/// Properties of a member of the closed test graph (or of a node holding `key`).
peergraph::graph_properties member(std::string_view peer, std::shared_ptr<const pre_shared_key> key = graph_key())
{
  auto p = props(peer);
  p.membership = std::move(key);
  return p;
}

/// Sends the preamble and a membership frame.
bool send_opening(raw_peer& raw, std::span<const std::byte> frame)
{
  return raw.send(wire::encode_preamble()) && raw.send(frame);
}

/// Sends what a caller that skipped or faked the membership proof would send next: its hello (with the preamble
/// unless that went out already), its accept and a data frame.
void send_hello_accept_and_data(raw_peer& raw, bool preamble_sent)
{
  auto hello = wire::encode_hello(hello_of("mallory"));
  REQUIRE(hello.has_value());
  REQUIRE(raw.send(std::span<const std::byte>(*hello).subspan(preamble_sent ? wire::preamble_size : 0)));
  REQUIRE(raw.send(wire::encode_accept()));
  REQUIRE(raw.send(wire::encode_data_header(peergraph::test::chat_type, 5)));
  REQUIRE(raw.send(bytes_of("hello")));
}

/// What a caller that did not prove membership gets from node `n`: a refuse with not_authenticated and then the end
/// of the connection, nothing else (no hello); `n` reports the attempt naming no one and delivers nothing.
asio::awaitable<void> expect_refused_unheard(raw_peer& raw, node& n)
{
  auto reply = co_await raw.next(2s);
  CHECK_MESSAGE(reply.is(wire::decode_event::refuse), "not a refuse: " << reply.error.message());
  CHECK(reply.reason == peer_errc::not_authenticated);
  auto end = co_await raw.wait_end(1500ms);
  CHECK(end.closed);
  CHECK(end.bytes == 0);
  co_await expect_unauthenticated_failure(n);
  CHECK_FALSE(saw_connection_or_data(n));
}

/// A connect() that runs in the background, so a test can play the other side by hand.
struct background_connect
{
  bool done = false;
  std::optional<peer_error> error;
};

std::shared_ptr<background_connect> connect_in_background(asio::io_context& ctx, node& n, tcp::endpoint where)
{
  auto state = std::make_shared<background_connect>();
  asio::co_spawn(
      ctx,
      [&n, where, state]() -> asio::awaitable<void> {
        auto r = co_await n->connect(where);
        if (!r)
          state->error = r.error();
        state->done = true;
      },
      asio::detached);
  return state;
}

asio::awaitable<void> wait_done(const background_connect& state)
{
  for (int i = 0; i < 600 && !state.done; ++i)
    co_await pause(5ms);
  REQUIRE(state.done);
}

} // namespace

TEST_SUITE_BEGIN("membership");

CO_TEST_CASE("members of a closed graph connect, see each other's peer ids and exchange data")
{
  node b(ctx, member("bob"));
  const auto where = co_await listening(b);
  node a(ctx, member("alice"));
  const auto link = co_await connect_link(a, b, where);
  co_await exchange(a, b, link, "closed graph");
  auto on_a = co_await a.changed(pid("bob"), connection_status::connected);
  REQUIRE(on_a.has_value());
  CHECK(on_a->remote_node == b->local_node());

  // Direct connections prove membership the same way.
  auto direct = co_await a->open_direct_connection(pid("bob"), where);
  REQUIRE_MESSAGE(direct.has_value(), error_text(direct));
  auto direct_on_b = co_await b.changed([](const connection_changed& c) {
    return c.kind == connection_kind::direct && c.status == connection_status::connected;
  });
  REQUIRE(direct_on_b.has_value());
  CHECK(direct_on_b->remote_peer == pid("alice"));
  co_await exchange(a, b, peergraph::test::node_link{*direct, direct_on_b->id}, "closed graph, direct");
}

CO_TEST_CASE("a node of the graph without its key: not_authenticated on both sides, no peer id learned")
{
  node b(ctx, member("bob"));
  const auto where = co_await listening(b);
  node outsider(ctx, props("mallory"));
  // Neither learns who the other is: every failed event names no one.
  co_await expect_refused_both_ways(outsider, b, where);

  // The outsider listens; a member calling it gives nothing away either.
  const auto outsider_at = co_await listening(outsider);
  node c(ctx, member("carol"));
  co_await expect_refused_both_ways(c, outsider, outsider_at);
  auto listed = co_await b->connections();
  REQUIRE(listed.has_value());
  CHECK(listed->empty());
}

CO_TEST_CASE("nodes holding different keys refuse each other with not_authenticated, in both directions")
{
  node b(ctx, member("bob"));
  const auto b_at = co_await listening(b);
  node m(ctx, member("mallory", other_key()));
  const auto m_at = co_await listening(m);

  co_await expect_refused_both_ways(m, b, b_at);
  co_await expect_refused_both_ways(b, m, m_at);
  // Neither learned a peer id: every event either node logged names no one.
  for (node* n : {&b, &m})
    CHECK(n->count([](const graph_event& e) {
      const auto* c = std::get_if<connection_changed>(&e);
      return c != nullptr && !c->remote_peer.empty();
    }) == 0);
}

CO_TEST_CASE("a raw caller's hello is answered by a refuse alone: the member says nothing of itself")
{
  node b(ctx, member("bob"));
  const auto where = co_await listening(b);
  raw_peer raw(ctx);
  raw.connect(where);
  send_hello_accept_and_data(raw, /*preamble_sent=*/false);
  co_await expect_refused_unheard(raw, b);
}

CO_TEST_CASE("a raw caller without the key cannot send data by sending a made-up proof and carrying on")
{
  node b(ctx, member("bob"));
  const auto where = co_await listening(b);
  raw_peer raw(ctx);
  raw.connect(where);
  const nonce mine{std::byte{1}, std::byte{2}, std::byte{3}};
  REQUIRE(send_opening(raw, wire::encode_membership_challenge(mine)));
  auto answer = co_await raw.next(2s);
  REQUIRE_MESSAGE(answer.is(wire::decode_event::membership), answer.error.message());
  CHECK(raw.decoder().membership().step == wire::membership_step::answer);
  // The acceptor's proof is right (the test holds the key to check it) and reveals nothing else.
  CHECK(graph_key()->verify(membership_role::acceptor, mine, raw.decoder().membership().nonce,
                            raw.decoder().membership().proof));

  proof made_up{};
  made_up.fill(std::byte{0x5A});
  REQUIRE(raw.send(wire::encode_membership_proof(made_up)));
  send_hello_accept_and_data(raw, /*preamble_sent=*/true);
  co_await expect_refused_unheard(raw, b);
}

CO_TEST_CASE("a proof recorded on one connection is refused on the next: each proof is bound to fresh challenges")
{
  node b(ctx, member("bob"));
  const auto where = co_await listening(b);
  const nonce mine{std::byte{7}};

  // First connection: the caller's proof, made with the key for the challenges of this connection, is recorded.
  proof recorded{};
  {
    raw_peer first(ctx);
    first.connect(where);
    REQUIRE(send_opening(first, wire::encode_membership_challenge(mine)));
    auto answer = co_await first.next(2s);
    REQUIRE(answer.is(wire::decode_event::membership));
    const auto& theirs = first.decoder().membership().nonce;
    REQUIRE(graph_key()->prove(membership_role::caller, mine, theirs, recorded).has_value());
  }
  // Second connection, same challenge: the acceptor's challenge is new, so the recorded proof fails.
  raw_peer second(ctx);
  second.connect(where);
  REQUIRE(send_opening(second, wire::encode_membership_challenge(mine)));
  auto answer = co_await second.next(2s);
  REQUIRE(answer.is(wire::decode_event::membership));
  REQUIRE(second.send(wire::encode_membership_proof(recorded)));
  auto reply = co_await second.next(2s);
  CHECK(reply.is(wire::decode_event::refuse));
  CHECK(reply.reason == peer_errc::not_authenticated);

  // With a proof made for this connection's challenges the same raw caller gets in: the key is what counts.
  raw_peer third(ctx);
  third.connect(where);
  REQUIRE(send_opening(third, wire::encode_membership_challenge(mine)));
  auto third_answer = co_await third.next(2s);
  REQUIRE(third_answer.is(wire::decode_event::membership));
  proof fresh{};
  REQUIRE(graph_key()->prove(membership_role::caller, mine, third.decoder().membership().nonce, fresh).has_value());
  REQUIRE(third.send(wire::encode_membership_proof(fresh)));
  auto hello = wire::encode_hello(hello_of("trent"));
  REQUIRE(hello.has_value());
  REQUIRE(third.send(std::span<const std::byte>(*hello).subspan(wire::preamble_size)));
  auto their_hello = co_await third.next(2s);
  REQUIRE_MESSAGE(their_hello.is(wire::decode_event::hello), their_hello.error.message());
  CHECK(third.decoder().hello().peer == pid("bob"));
}

CO_TEST_CASE("a member calling a listener that cannot prove membership never sends its hello")
{
  node a(ctx, member("alice"));
  tcp::acceptor impostor(ctx, any_v4);
  auto attempt = connect_in_background(ctx, a, impostor.local_endpoint());
  auto [accept_error, accepted] = co_await impostor.async_accept(use_tuple);
  REQUIRE(!accept_error);
  raw_peer raw(std::move(accepted));
  auto challenge = co_await raw.next(2s);
  REQUIRE_MESSAGE(challenge.is(wire::decode_event::membership), challenge.error.message());
  CHECK(raw.decoder().membership().step == wire::membership_step::challenge);

  // An answer whose proof was made with another key.
  const nonce theirs{std::byte{9}};
  proof wrong{};
  REQUIRE(other_key()->prove(membership_role::acceptor, raw.decoder().membership().nonce, theirs, wrong).has_value());
  REQUIRE(send_opening(raw, wire::encode_membership_answer(theirs, wrong)));
  auto reply = co_await raw.next(2s);
  CHECK_MESSAGE(reply.is(wire::decode_event::refuse), "not a refuse: " << reply.error.message());
  CHECK(reply.reason == peer_errc::not_authenticated);
  auto end = co_await raw.wait_end(1500ms);
  CHECK(end.closed);
  CHECK(end.bytes == 0); // no proof, no hello: the member's peer id never left it
  co_await wait_done(*attempt);
  REQUIRE(attempt->error.has_value());
  CHECK(*attempt->error == peer_errc::not_authenticated);
}

CO_TEST_CASE("an open node and a closed node refuse each other with not_authenticated")
{
  node open_node(ctx, props("olivia"));
  const auto open_at = co_await listening(open_node);
  node closed_node(ctx, member("cedric"));
  co_await expect_refused_both_ways(closed_node, open_node, open_at);

  // And a member of the closed graph is unharmed: it still takes members.
  const auto closed_at = co_await listening(closed_node);
  node d(ctx, member("dave"));
  const auto link = co_await connect_link(d, closed_node, closed_at);
  co_await exchange(d, closed_node, link, "after the open node");
}

CO_TEST_CASE("a caller that goes silent during the membership exchange is cut off at the handshake timeout")
{
  node b(ctx, member("bob"));
  const auto where = co_await listening(b);
  raw_peer raw(ctx);
  raw.connect(where);
  REQUIRE(send_opening(raw, wire::encode_membership_challenge(nonce{std::byte{3}})));
  auto answer = co_await raw.next(2s);
  REQUIRE(answer.is(wire::decode_event::membership));
  auto end = co_await raw.wait_end(4s); // the node's handshake timeout is 2 s
  CHECK(end.closed);
  CHECK(end.bytes == 0);
  CHECK(end.after < 3s);
  CHECK_FALSE(saw_connection_or_data(b));
}

TEST_SUITE_END();
