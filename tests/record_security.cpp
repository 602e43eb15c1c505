#include <peergraph/record_security.hpp>
// The header under test comes first: it must be self-contained.
//
// Record security (graph_properties::record_security): every version a node makes is signed (Ed25519, OpenSSL's
// libcrypto), every version that arrives is checked against its creator's public key, so that no node can add,
// change or delete a record in another peer's name.

#include "support/co_test.hpp"
#include "support/graph_nodes.hpp"
#include "support/graph_support.hpp"
#include "support/record_support.hpp"

#include <peergraph/detail/graph/record_codec.hpp>
#include <peergraph/graph.hpp>
#include <peergraph/wire.hpp>

#include <doctest/doctest.h>
#include <openssl/evp.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using peergraph::connection_status;
using peergraph::peer_errc;
using peergraph::peer_error;
using peergraph::record;
using peergraph::record_change;
using peergraph::record_changed;
using peergraph::record_id;
using peergraph::test::connect_link;
using peergraph::test::listening;
using peergraph::test::node;
using peergraph::test::pause;
using peergraph::test::pid;
using peergraph::test::props;
using peergraph::test::raw_handshake;
using peergraph::test::saw;

constexpr auto note_type = peergraph::data_type::from_string("2f0c5a9e-61d4-4b8a-9e3f-7d1a0c6b5e42");

struct pkey_free
{
  void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
using pkey = std::unique_ptr<EVP_PKEY, pkey_free>;

pkey new_key()
{
  EVP_PKEY* key = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  REQUIRE(ctx != nullptr);
  REQUIRE(EVP_PKEY_keygen_init(ctx) == 1);
  REQUIRE(EVP_PKEY_keygen(ctx, &key) == 1);
  EVP_PKEY_CTX_free(ctx);
  return pkey(key);
}

/// Who is who: each peer's Ed25519 key (the private half only for the peers this process plays).
using key_directory = std::map<std::string, std::shared_ptr<EVP_PKEY>>;

/// Signs what its peer makes; accepts a version only with a valid signature of the creator it names.
class signed_records final : public peergraph::record_security
{
public:
  signed_records(std::shared_ptr<const key_directory> keys, std::string self)
      : keys_(std::move(keys)), self_(std::move(self))
  {
  }

  peergraph::expected<void, peer_error> secure(record& version) const override
  {
    auto bytes = peergraph::record_signing_bytes(version);
    if (!bytes)
      return peergraph::unexpected(bytes.error());
    const auto key = keys_->find(self_);
    if (key == keys_->end())
      return peergraph::unexpected(peer_error(peer_errc::access_denied));
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    std::size_t size = 64;
    version.security_data.resize(size);
    const bool ok = md != nullptr && EVP_DigestSignInit(md, nullptr, nullptr, nullptr, key->second.get()) == 1 &&
                    EVP_DigestSign(md, reinterpret_cast<unsigned char*>(version.security_data.data()), &size,
                                   reinterpret_cast<const unsigned char*>(bytes->data()), bytes->size()) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
      return peergraph::unexpected(peer_error(peer_errc::access_denied));
    return {};
  }

  peergraph::expected<void, peer_error> validate(const record& version) const override
  {
    ++validated;
    auto key = keys_->find(version.creator.str());
    auto bytes = peergraph::record_signing_bytes(version);
    if (key == keys_->end() || !bytes || version.security_data.size() != 64)
      return peergraph::unexpected(peer_error(peer_errc::invalid_record));
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    const bool ok = md != nullptr && EVP_DigestVerifyInit(md, nullptr, nullptr, nullptr, key->second.get()) == 1 &&
                    EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(version.security_data.data()),
                                     version.security_data.size(),
                                     reinterpret_cast<const unsigned char*>(bytes->data()), bytes->size()) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
      return peergraph::unexpected(peer_error(peer_errc::invalid_record));
    return {};
  }

  mutable int validated = 0;

private:
  std::shared_ptr<const key_directory> keys_;
  std::string self_;
};

std::shared_ptr<const key_directory> directory_of(std::initializer_list<const char*> peers)
{
  auto keys = std::make_shared<key_directory>();
  for (const char* peer : peers)
    (*keys)[peer] = std::shared_ptr<EVP_PKEY>(new_key().release(), pkey_free());
  return keys;
}

peergraph::graph_properties secured(const char* peer, const std::shared_ptr<const key_directory>& keys)
{
  auto p = props(peer);
  p.record_security = std::make_shared<signed_records>(keys, peer);
  return p;
}

record note(std::string text)
{
  record r;
  r.type = note_type;
  r.expires = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()) + 60s;
  r.attributes = {{"text", std::move(text)}};
  r.data = {std::byte{1}, std::byte{2}};
  return r;
}

} // namespace

TEST_SUITE_BEGIN("record_security");

TEST_CASE("the signing bytes cover the type and every field but the security data")
{
  record r = note("hello");
  r.id = record_id::generate();
  r.version = 3;
  r.creator = pid("alice");
  r.modified_by = r.creator;
  auto base = peergraph::record_signing_bytes(r);
  REQUIRE(base.has_value());
  record with_signature = r;
  with_signature.security_data = {std::byte{9}};
  CHECK(*peergraph::record_signing_bytes(with_signature) == *base);
  for (int field = 0; field < 5; ++field) {
    CAPTURE(field);
    record changed = r;
    switch (field) {
    case 0:
      changed.version = 4;
      break;
    case 1:
      changed.data.push_back(std::byte{3});
      break;
    case 2:
      changed.attributes = {{"text", std::string("hellO")}};
      break;
    case 3:
      changed.expires += 1ms;
      break;
    default:
      changed.type = peergraph::data_type::generate();
      break;
    }
    CHECK(*peergraph::record_signing_bytes(changed) != *base);
  }
}

CO_TEST_CASE("signed records flood and synchronise; forged and altered versions are refused")
{
  auto keys = directory_of({"alice", "bob"});
  node b(ctx, secured("bob", keys));
  const auto where = co_await listening(b);
  node a(ctx, secured("alice", keys));
  auto before = co_await a->add_record(note("signed before the connection"));
  REQUIRE(before.has_value());
  (void)co_await connect_link(a, b, where);
  CHECK(co_await saw(b, *before, record_change::added)); // through the synchronisation
  auto after = co_await a->add_record(note("signed and flooded"));
  REQUIRE(after.has_value());
  CHECK(co_await saw(b, *after, record_change::added));
  const auto genuine = co_await b->get_record(*after);
  REQUIRE(genuine.has_value());
  CHECK(genuine->security_data.size() == 64);

  const auto send_record = [](peergraph::test::raw_peer& raw, const record& r) {
    std::vector<std::byte> payload;
    REQUIRE(peergraph::detail::encode_record_payload(r, payload).has_value());
    REQUIRE(raw.send(peergraph::wire::encode_record_header(r.type, payload.size())));
    REQUIRE(raw.send(payload));
  };

  // Eve (no key) makes a record in alice's name.
  auto eve = co_await raw_handshake(ctx, b, where, "eve");
  record forged = *genuine;
  forged.id = record_id::generate();
  forged.data = {std::byte{0x66}};
  send_record(*eve.raw, forged);
  auto dropped = co_await b.changed(pid("eve"), connection_status::disconnected);
  REQUIRE(dropped.has_value());
  CHECK(*dropped->reason == peer_errc::invalid_record);

  // Mallory replays alice's signature on a new version with other data.
  auto mallory = co_await raw_handshake(ctx, b, where, "mallory");
  record altered = *genuine;
  altered.version = 2;
  altered.data = {std::byte{0x6d}};
  send_record(*mallory.raw, altered);
  auto refused = co_await b.changed(pid("mallory"), connection_status::disconnected);
  REQUIRE(refused.has_value());
  CHECK(*refused->reason == peer_errc::invalid_record);
  CHECK(*(co_await b->get_record(*after)) == *genuine); // unchanged

  // Updates and deletes are signed too, and arrive.
  record changed = *genuine;
  changed.data = {std::byte{7}};
  REQUIRE((co_await a->update_record(changed)).has_value());
  CHECK(co_await saw(b, *after, record_change::updated));
  REQUIRE((co_await a->delete_record(*after)).has_value());
  CHECK(co_await saw(b, *after, record_change::deleted));
}

CO_TEST_CASE("a record the security refuses to secure is not added")
{
  auto p = props("carol");
  p.record_security = std::make_shared<signed_records>(directory_of({"alice"}), "carol"); // carol holds no key
  node c(ctx, p);
  auto added = co_await c->add_record(note("unsigned"));
  REQUIRE_FALSE(added.has_value());
  CHECK(added.error() == peer_errc::access_denied);
  CHECK((co_await c->records()).value().empty());
}

TEST_SUITE_END();
