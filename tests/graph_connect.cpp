#include <peergraph/graph.hpp>
// The header under test comes first: it must be self-contained.
//
// connect() to several addresses (failover, each failure reported with its address and reason) and to host names
// through the resolver. Loopback only; names resolve without the network (address literals, "localhost", and a
// service name that does not exist).

#include "support/co_test.hpp"
#include "support/error_text.hpp"
#include "support/graph_nodes.hpp"
#include "support/graph_support.hpp"

#include <doctest/doctest.h>

#include <asio/ip/tcp.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using peergraph::connection_changed;
using peergraph::connection_status;
using peergraph::peer_errc;
using peergraph::test::any_v4;
using peergraph::test::error_text;
using peergraph::test::listening;
using peergraph::test::node;
using peergraph::test::pid;
using peergraph::test::props;
using tcp = asio::ip::tcp;

/// A loopback port where nothing listens: connecting there is refused.
tcp::endpoint refusing_address(asio::io_context& ctx)
{
  tcp::acceptor probe(ctx, any_v4);
  const auto where = probe.local_endpoint();
  probe.close();
  return where;
}

/// Properties whose handshake gives up after `timeout`.
peergraph::graph_properties impatient(const std::string& name, std::chrono::milliseconds timeout)
{
  auto p = props(name);
  p.handshake_timeout = timeout;
  return p;
}

} // namespace

TEST_SUITE_BEGIN("graph_connect");

CO_TEST_CASE("failover: a refused address and a silent one are reported, and the third connects")
{
  node b(ctx, props("bob"));
  const auto bob_at = co_await listening(b);
  node a(ctx, impatient("alice", 300ms));
  const auto refused = refusing_address(ctx);
  tcp::acceptor silent(ctx, any_v4); // the kernel completes TCP connections here; nobody ever says hello
  silent.listen();
  const std::vector<tcp::endpoint> addresses{refused, silent.local_endpoint(), bob_at};

  auto id = co_await a->connect(addresses, pid("bob"));
  REQUIRE_MESSAGE(id.has_value(), "connect failed: " << error_text(id));
  auto first = co_await a.changed([&](const connection_changed& c) {
    return c.status == connection_status::failed && c.remote_address == refused;
  });
  REQUIRE(first.has_value());
  CHECK(first->reason == peer_errc::connection_refused);
  auto second = co_await a.changed([&](const connection_changed& c) {
    return c.status == connection_status::failed && c.remote_address == silent.local_endpoint();
  });
  REQUIRE(second.has_value());
  CHECK(second->reason == peer_errc::timed_out);
  auto connected = co_await a.changed(pid("bob"), connection_status::connected);
  REQUIRE(connected.has_value());
  CHECK(connected->id == *id);
  CHECK(connected->remote_address == bob_at);
}

CO_TEST_CASE("failover: when every address fails, the error is the last one's; a neighbor that exists stops it")
{
  node a(ctx, impatient("alice", 300ms));
  tcp::acceptor silent(ctx, any_v4);
  silent.listen();
  const std::vector<tcp::endpoint> addresses{silent.local_endpoint(), refusing_address(ctx)};
  auto id = co_await a->connect(addresses);
  REQUIRE_FALSE(id.has_value());
  CHECK(id.error() == peer_errc::connection_refused);
  for (const auto& address : addresses) { // each address failed, and says how
    auto failed = co_await a.changed([&](const connection_changed& c) {
      return c.status == connection_status::failed && c.remote_address == address;
    });
    REQUIRE(failed.has_value());
    CHECK(failed->reason == (address == addresses.back() ? peer_errc::connection_refused : peer_errc::timed_out));
  }

  // Already connected to bob: the first address says so, and no other is tried.
  node b(ctx, props("bob"));
  const auto bob_at = co_await listening(b);
  REQUIRE((co_await a->connect(bob_at)).has_value());
  const std::vector<tcp::endpoint> again{bob_at, silent.local_endpoint()};
  const auto started = std::chrono::steady_clock::now();
  auto twice = co_await a->connect(again);
  REQUIRE_FALSE(twice.has_value());
  CHECK(twice.error() == peer_errc::already_exists);
  CHECK(std::chrono::steady_clock::now() - started < 300ms); // the silent address was not tried

  CHECK((co_await a->connect(std::vector<tcp::endpoint>{})).error() == peer_errc::invalid_argument);
  CHECK((co_await a->connect(std::vector<tcp::endpoint>(17, bob_at))).error() == peer_errc::invalid_argument);
}

CO_TEST_CASE("host names: a literal and localhost resolve and connect; an unknown service is invalid_address")
{
  node b(ctx, props("bob"));
  const auto bob_at = co_await listening(b);
  const std::string port = std::to_string(bob_at.port());
  node a(ctx, props("alice"));
  auto by_literal = co_await a->connect("127.0.0.1", port, pid("bob"));
  REQUIRE_MESSAGE(by_literal.has_value(), "connect: " << error_text(by_literal));

  node c(ctx, props("carol"));
  auto by_name = co_await c->connect("localhost", port); // ::1 may come first and be refused: failover goes on
  REQUIRE_MESSAGE(by_name.has_value(), "connect: " << error_text(by_name));

  auto unknown = co_await c->connect("127.0.0.1", "no-such-service-peergraph");
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error() == peer_errc::invalid_address);
  CHECK(unknown.error().has_cause());
}
