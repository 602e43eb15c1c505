#include <peergraph/detail/tls_session.hpp>
// The header under test comes first: it must be self-contained.
//
// detail::tls_session: TLS 1.3 only, both sides authenticated by certificates of the graph's CA, as a byte
// transformation. Two sessions talk through memory here; certificates are made at test time.

#include "support/error_text.hpp"
#include "support/tls_certificates.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

using peergraph::membership_role;
using peergraph::peer_errc;
using peergraph::detail::tls_context;
using peergraph::detail::tls_session;
using peergraph::test::error_text;
using peergraph::test::make_ca;
using peergraph::test::make_node;
using peergraph::test::pem_identity;
using bytes = std::vector<std::byte>;

std::shared_ptr<const tls_context> context_for(const pem_identity& ca, const pem_identity& node)
{
  auto made = tls_context::make(ca.certificate, node.certificate, node.key);
  REQUIRE_MESSAGE(made.has_value(), error_text(made));
  return *made;
}

/// How each side's handshake ended: done, or the error it failed with.
struct handshake_outcome
{
  std::optional<peer_errc> client_error;
  std::optional<peer_errc> server_error;
  bool client_done = false;
  bool server_done = false;
};

/// Runs both handshakes to their end, passing every byte each side produces to the other (at most 10 rounds).
handshake_outcome run_handshake(tls_session& client, tls_session& server)
{
  handshake_outcome outcome;
  bytes to_server;
  bytes to_client;
  auto step = [](tls_session& side, bytes& in, bytes& out, bool& done, std::optional<peer_errc>& error) {
    if (done || error)
      return;
    auto r = side.handshake(in, out);
    in.clear();
    if (!r)
      error = r.error().code();
    else
      done = *r == peergraph::secure_progress::done;
  };
  for (int round = 0; round < 10; ++round) {
    step(client, to_client, to_server, outcome.client_done, outcome.client_error);
    step(server, to_server, to_client, outcome.server_done, outcome.server_error);
    const bool client_over = outcome.client_done || outcome.client_error;
    const bool server_over = outcome.server_done || outcome.server_error;
    if (client_over && server_over && to_server.empty() && to_client.empty())
      break;
  }
  // Bytes left for a side that already finished (its peer's alert) are delivered through decrypt.
  if (outcome.client_done && !to_client.empty()) {
    bytes plain;
    bytes out;
    if (auto r = client.decrypt(to_client, plain, out); !r)
      outcome.client_error = r.error().code();
  }
  if (outcome.server_done && !to_server.empty()) {
    bytes plain;
    bytes out;
    if (auto r = server.decrypt(to_server, plain, out); !r)
      outcome.server_error = r.error().code();
  }
  return outcome;
}

bytes text(std::string_view s)
{
  bytes out(s.size());
  std::transform(s.begin(), s.end(), out.begin(), [](char c) { return static_cast<std::byte>(c); });
  return out;
}

/// A connected pair of sessions, handshake done.
struct session_pair
{
  session_pair(const pem_identity& ca, const pem_identity& a, const pem_identity& b)
      : client(context_for(ca, a), membership_role::caller), server(context_for(ca, b), membership_role::acceptor)
  {
    const auto outcome = run_handshake(client, server);
    REQUIRE(outcome.client_done);
    REQUIRE(outcome.server_done);
  }
  tls_session client;
  tls_session server;
};

} // namespace

TEST_SUITE_BEGIN("tls_session");

TEST_CASE("two nodes with certificates of the graph's CA complete a TLS 1.3 handshake and see each other's names")
{
  const auto ca = make_ca("test graph CA");
  session_pair pair(ca, make_node("alice", ca), make_node("bob", ca));
  CHECK(pair.client.version() == TLS1_3_VERSION);
  CHECK(pair.server.version() == TLS1_3_VERSION);
  CHECK(pair.client.peer_name() == "bob");
  CHECK(pair.server.peer_name() == "alice");
}

TEST_CASE("application data crosses in order, whatever the buffers and however the ciphertext is cut")
{
  const auto ca = make_ca("test graph CA");
  session_pair pair(ca, make_node("alice", ca), make_node("bob", ca));
  bytes large(100'000);
  for (std::size_t i = 0; i < large.size(); ++i)
    large[i] = static_cast<std::byte>(i * 7 + 1);
  const bytes small = text("a recognisable plaintext marker");
  const std::array<std::span<const std::byte>, 4> buffers{std::span(small), std::span<const std::byte>(),
                                                          std::span(large), std::span(small)};
  bytes ciphertext;
  REQUIRE(pair.client.encrypt(buffers, ciphertext).has_value());
  bytes expected = small;
  expected.insert(expected.end(), large.begin(), large.end());
  expected.insert(expected.end(), small.begin(), small.end());
  // Encrypted: the marker does not appear in what goes on the wire.
  CHECK(std::search(ciphertext.begin(), ciphertext.end(), small.begin(), small.end()) == ciphertext.end());

  // Fed in pieces of 1, 7, 1000, ... bytes: the same plaintext.
  bytes plaintext;
  bytes replies;
  const std::array<std::size_t, 4> cuts{1, 7, 1000, 4096};
  std::size_t at = 0;
  for (std::size_t i = 0; at < ciphertext.size() && i < 100'000; ++i) {
    const std::size_t size = std::min(cuts[i % cuts.size()], ciphertext.size() - at);
    auto closed = pair.server.decrypt(std::span(ciphertext).subspan(at, size), plaintext, replies);
    REQUIRE(closed.has_value());
    CHECK_FALSE(*closed);
    at += size;
  }
  CHECK(plaintext == expected);
  CHECK(replies.empty()); // no tickets, no key updates: nothing to send back

  // And the other way.
  bytes back;
  const std::array<std::span<const std::byte>, 1> reply{std::span(small)};
  REQUIRE(pair.server.encrypt(reply, back).has_value());
  bytes got;
  REQUIRE(pair.client.decrypt(back, got, replies).has_value());
  CHECK(got == small);
}

TEST_CASE("a certificate of another CA is refused: not_authenticated on both sides, in both roles")
{
  const auto ca = make_ca("test graph CA");
  const auto other_ca = make_ca("another CA");
  SUBCASE("the caller's certificate")
  {
    tls_session client(context_for(other_ca, make_node("mallory", other_ca)), membership_role::caller);
    tls_session server(context_for(ca, make_node("bob", ca)), membership_role::acceptor);
    const auto outcome = run_handshake(client, server);
    CHECK(outcome.client_error == peer_errc::not_authenticated);
    CHECK(outcome.server_error == peer_errc::not_authenticated);
    CHECK_FALSE(outcome.server_done);
  }
  SUBCASE("the acceptor's certificate")
  {
    tls_session client(context_for(ca, make_node("alice", ca)), membership_role::caller);
    tls_session server(context_for(other_ca, make_node("mallory", other_ca)), membership_role::acceptor);
    const auto outcome = run_handshake(client, server);
    CHECK(outcome.client_error == peer_errc::not_authenticated);
    CHECK(outcome.server_error == peer_errc::not_authenticated);
    CHECK_FALSE(outcome.client_done);
  }
  SUBCASE("a certificate the node signed itself, with the graph CA's name")
  {
    const auto fake_ca = make_ca("test graph CA"); // same name, other key
    tls_session client(context_for(fake_ca, make_node("mallory", fake_ca)), membership_role::caller);
    tls_session server(context_for(ca, make_node("bob", ca)), membership_role::acceptor);
    const auto outcome = run_handshake(client, server);
    CHECK(outcome.server_error == peer_errc::not_authenticated);
    CHECK(outcome.client_error == peer_errc::not_authenticated);
  }
}

TEST_CASE("an expired or not yet valid certificate is refused with not_authenticated")
{
  const auto ca = make_ca("test graph CA");
  const auto expired = make_node("old", ca, -10, -1);
  const auto future = make_node("early", ca, 1, 10);
  for (const auto* identity : {&expired, &future}) {
    tls_session client(context_for(ca, *identity), membership_role::caller);
    tls_session server(context_for(ca, make_node("bob", ca)), membership_role::acceptor);
    const auto outcome = run_handshake(client, server);
    CHECK(outcome.server_error == peer_errc::not_authenticated);
    CHECK(outcome.client_error == peer_errc::not_authenticated);
  }
}

TEST_CASE("a client without a certificate, or one that speaks only TLS 1.2, does not get in")
{
  const auto ca = make_ca("test graph CA");
  tls_session server_a(context_for(ca, make_node("bob", ca)), membership_role::acceptor);
  tls_session server_b(context_for(ca, make_node("bob", ca)), membership_role::acceptor);

  // Drives a client made directly with OpenSSL against `server` for a few rounds; returns the server's error.
  const auto against = [](tls_session& server, SSL_CTX* ctx) -> std::optional<peer_errc> {
    std::unique_ptr<SSL, peergraph::detail::ssl_deleter> ssl(SSL_new(ctx));
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl.get(), in, out);
    SSL_set_connect_state(ssl.get());
    for (int round = 0; round < 6; ++round) {
      (void)SSL_do_handshake(ssl.get());
      bytes to_server(static_cast<std::size_t>(BIO_ctrl_pending(out)));
      if (!to_server.empty())
        REQUIRE(BIO_read(out, to_server.data(), static_cast<int>(to_server.size())) > 0);
      bytes to_client;
      auto r = server.handshake(to_server, to_client);
      if (!r)
        return r.error().code();
      if (!to_client.empty())
        REQUIRE(BIO_write(in, to_client.data(), static_cast<int>(to_client.size())) > 0);
    }
    ERR_clear_error();
    return std::nullopt;
  };
  std::unique_ptr<SSL_CTX, peergraph::detail::ssl_ctx_deleter> no_certificate(SSL_CTX_new(TLS_method()));
  SSL_CTX_set_verify(no_certificate.get(), SSL_VERIFY_NONE, nullptr);
  CHECK(against(server_a, no_certificate.get()) == peer_errc::not_authenticated);

  const auto alice = make_node("alice", ca);
  auto tls12 = context_for(ca, alice); // the same certificate, but TLS 1.2 at most
  std::unique_ptr<SSL_CTX, peergraph::detail::ssl_ctx_deleter> old(SSL_CTX_new(TLS_method()));
  SSL_CTX_set_max_proto_version(old.get(), TLS1_2_VERSION);
  SSL_CTX_use_certificate(old.get(), SSL_CTX_get0_certificate(tls12->native()));
  SSL_CTX_use_PrivateKey(old.get(), SSL_CTX_get0_privatekey(tls12->native()));
  CHECK(against(server_b, old.get()) == peer_errc::protocol_error);
}

TEST_CASE("a tampered record, or garbage in place of a handshake, fails with protocol_error")
{
  const auto ca = make_ca("test graph CA");
  session_pair pair(ca, make_node("alice", ca), make_node("bob", ca));
  bytes ciphertext;
  const bytes message = text("hello bob");
  const std::array<std::span<const std::byte>, 1> buffers{std::span(message)};
  REQUIRE(pair.client.encrypt(buffers, ciphertext).has_value());
  ciphertext[ciphertext.size() - 3] ^= std::byte{0x40};
  bytes plaintext;
  bytes replies;
  auto r = pair.server.decrypt(ciphertext, plaintext, replies);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == peer_errc::protocol_error);
  CHECK(plaintext.empty());
  // A failed session stays failed.
  CHECK(pair.server.decrypt({}, plaintext, replies).error() == peer_errc::protocol_error);

  tls_session server(context_for(ca, make_node("bob", ca)), membership_role::acceptor);
  bytes out;
  const bytes garbage = text("GET / HTTP/1.1\r\nHost: peergraph\r\n\r\n");
  auto h = server.handshake(garbage, out);
  REQUIRE_FALSE(h.has_value());
  CHECK(h.error() == peer_errc::protocol_error);
}

TEST_CASE("close sends close_notify; the peer's decrypt reports the end")
{
  const auto ca = make_ca("test graph CA");
  session_pair pair(ca, make_node("alice", ca), make_node("bob", ca));
  bytes alert;
  pair.client.close(alert);
  REQUIRE_FALSE(alert.empty());
  bytes plaintext;
  bytes replies;
  auto closed = pair.server.decrypt(alert, plaintext, replies);
  REQUIRE(closed.has_value());
  CHECK(*closed);
}

TEST_CASE("contexts refuse unusable credentials with invalid_argument")
{
  const auto ca = make_ca("test graph CA");
  const auto alice = make_node("alice", ca);
  const auto bob = make_node("bob", ca);
  CHECK(tls_context::make(ca.certificate, "", alice.key).error() == peer_errc::invalid_argument);
  CHECK(tls_context::make(ca.certificate, alice.certificate, "").error() == peer_errc::invalid_argument);
  CHECK(tls_context::make(ca.certificate, alice.certificate, bob.key).error() == peer_errc::invalid_argument);
  CHECK(tls_context::make("", alice.certificate, alice.key).error() == peer_errc::invalid_argument);
  CHECK(tls_context::make("not a certificate", alice.certificate, alice.key).error() == peer_errc::invalid_argument);
  CHECK(tls_context::make(ca.certificate, alice.certificate, alice.key).has_value());
}

TEST_SUITE_END();
