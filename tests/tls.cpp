#include <peergraph/tls.hpp>
// The header under test comes first: it must be self-contained.
//
// Graphs over TLS 1.3 (graph_properties::tls with tls_credentials): members whose certificates the graph's CA signed
// connect and exchange data, encrypted; a node with another CA's certificate, a certificate naming another peer, or
// no TLS at all cannot complete a handshake, sends no data and learns no peer id, and the failure is
// not_authenticated on both sides. Certificates are made at test time (tests/support/tls_certificates.hpp).

#include "support/co_test.hpp"
#include "support/error_text.hpp"
#include "support/graph_nodes.hpp"
#include "support/graph_support.hpp"
#include "support/tls_certificates.hpp"

#include <peergraph/graph.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
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
using peergraph::peer_errc;
using peergraph::peer_error;
using peergraph::tls_credentials;
using peergraph::test::any_v4;
using peergraph::test::chat_type;
using peergraph::test::connect_link;
using peergraph::test::error_text;
using peergraph::test::exchange;
using peergraph::test::expect_refused_both_ways;
using peergraph::test::expect_unauthenticated_failure;
using peergraph::test::listening;
using peergraph::test::make_ca;
using peergraph::test::make_node;
using peergraph::test::node;
using peergraph::test::pattern;
using peergraph::test::pem_identity;
using peergraph::test::pid;
using peergraph::test::props;
using peergraph::test::saw_connection_or_data;
using peergraph::test::text_of;
using peergraph::test::use_tuple;
using tcp = asio::ip::tcp;

/// The test graph's CA, made once per run.
const pem_identity& graph_ca()
{
  static const pem_identity ca = make_ca("test graph CA");
  return ca;
}

/// Properties of a node `peer` whose certificate `ca` signed for `name` (the peer id unless told otherwise).
peergraph::graph_properties tls_node(std::string_view peer, const pem_identity& ca = graph_ca(),
                                     std::optional<std::string_view> name = std::nullopt)
{
  const pem_identity identity = make_node(name.value_or(peer), ca);
  auto credentials = tls_credentials::make(graph_ca().certificate, identity.certificate, identity.key);
  REQUIRE_MESSAGE(credentials.has_value(), error_text(credentials));
  auto p = props(peer);
  p.tls = std::move(*credentials);
  return p;
}

} // namespace

TEST_SUITE_BEGIN("tls");

CO_TEST_CASE("members with certificates of the graph's CA connect over TLS and exchange data, small and large")
{
  node b(ctx, tls_node("bob"));
  const auto where = co_await listening(b);
  node a(ctx, tls_node("alice"));
  const auto link = co_await connect_link(a, b, where);
  co_await exchange(a, b, link, "over TLS");

  // Many small messages (staged and encrypted together) and one of 1 MiB, in order.
  constexpr std::uint32_t count = 2000;
  std::vector<std::vector<std::byte>> sent;
  for (std::uint32_t i = 0; i < count; ++i) {
    sent.push_back(pattern(i, 64));
    auto r = co_await a->send_data(link.on_a, chat_type, asio::buffer(sent.back()));
    REQUIRE_MESSAGE(r.has_value(), error_text(r));
  }
  const auto large = pattern(count, 1024 * 1024);
  auto r = co_await a->send_data(link.on_a, chat_type, asio::buffer(large));
  REQUIRE_MESSAGE(r.has_value(), error_text(r));
  for (std::uint32_t i = 0; i < count; ++i) {
    auto got = co_await b.data(link.on_b);
    REQUIRE_MESSAGE(got.has_value(), "message " << i << " missing");
    REQUIRE(std::equal(got->payload.begin(), got->payload.end(), sent[i].begin(), sent[i].end()));
  }
  auto got_large = co_await b.data(link.on_b, 5s);
  REQUIRE(got_large.has_value());
  CHECK(std::equal(got_large->payload.begin(), got_large->payload.end(), large.begin(), large.end()));

  // A direct connection, and closing it: the remote sees it end.
  auto direct = co_await a->open_direct_connection(pid("bob"), where);
  REQUIRE_MESSAGE(direct.has_value(), error_text(direct));
  auto on_b = co_await b.changed([](const connection_changed& c) {
    return c.kind == connection_kind::direct && c.status == connection_status::connected;
  });
  REQUIRE(on_b.has_value());
  co_await exchange(a, b, peergraph::test::node_link{*direct, on_b->id}, "direct over TLS");
  REQUIRE(co_await a->close_direct_connection(*direct));
  auto ended = co_await b.changed(
      [&](const connection_changed& c) { return c.id == on_b->id && c.status == connection_status::disconnected; });
  REQUIRE(ended.has_value());
  CHECK(ended->reason == peer_errc::connection_closed);
}

CO_TEST_CASE("a certificate of another CA: not_authenticated on both sides, in both directions, nothing learned")
{
  const auto other_ca = make_ca("another CA");
  node b(ctx, tls_node("bob"));
  const auto b_at = co_await listening(b);
  node m(ctx, tls_node("mallory", other_ca));
  const auto m_at = co_await listening(m);
  co_await expect_refused_both_ways(m, b, b_at);
  co_await expect_refused_both_ways(b, m, m_at);
}

CO_TEST_CASE("a member's certificate naming another peer id: not_authenticated, the claimed id is not reported")
{
  node b(ctx, tls_node("bob"));
  const auto where = co_await listening(b);
  node m(ctx, tls_node("mallory", graph_ca(), "alice")); // a valid certificate, but for alice
  co_await expect_refused_both_ways(m, b, where);
  // The real alice still gets in.
  node a(ctx, tls_node("alice"));
  const auto link = co_await connect_link(a, b, where);
  co_await exchange(a, b, link, "the real alice");
}

CO_TEST_CASE("a node without TLS and a node with it refuse each other with not_authenticated")
{
  node secure(ctx, tls_node("bob"));
  const auto secure_at = co_await listening(secure);
  node plain(ctx, props("olivia"));
  const auto plain_at = co_await listening(plain);
  co_await expect_refused_both_ways(plain, secure, secure_at);
  co_await expect_refused_both_ways(secure, plain, plain_at);
}

CO_TEST_CASE("what a TLS node sends first is a TLS handshake: no peergraph preamble, no peer id in the clear")
{
  node a(ctx, tls_node("alice"));
  tcp::acceptor listener(ctx, any_v4);
  bool done = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        (void)co_await a->connect(listener.local_endpoint());
        done = true;
      },
      asio::detached);
  auto [accept_error, accepted] = co_await listener.async_accept(use_tuple);
  REQUIRE(!accept_error);
  std::vector<std::byte> first(4096);
  auto [read_error, n] = co_await accepted.async_read_some(asio::buffer(first), use_tuple);
  REQUIRE(!read_error);
  first.resize(n);
  REQUIRE(first.size() >= 2);
  CHECK(first[0] == std::byte{0x16}); // a TLS handshake record
  CHECK(first[1] == std::byte{0x03});
  const std::string_view name = "alice";
  const auto* text = reinterpret_cast<const char*>(first.data());
  CHECK(std::string_view(text, first.size()).find(name) == std::string_view::npos);
  CHECK(std::string_view(text, first.size()).find("PGRF") == std::string_view::npos);
  accepted.close();
  for (int i = 0; i < 400 && !done; ++i)
    co_await peergraph::test::pause(5ms);
  CHECK(done);
}

TEST_SUITE_END();
