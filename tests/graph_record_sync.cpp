#include <peergraph/detail/graph/record_sync.hpp>
// The header under test comes first: it must be self-contained.
//
// Range-based set reconciliation of two nodes' records (detail/graph/record_sync.hpp), without a network: two
// record tables talk through encoded messages, and the records one side pushes or the other wants move between them
// as the record layer would move them.

#include <doctest/doctest.h>

#include <peergraph/detail/siphash.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

using peergraph::peer_errc;
using peergraph::record;
using peergraph::record_id;
using peergraph::record_time;
using peergraph::detail::decode_sync_message;
using peergraph::detail::encode_sync_message;
using peergraph::detail::record_reconciler;
using peergraph::detail::record_table;
using peergraph::detail::sync_message;
using peergraph::detail::sync_mode;
using peergraph::detail::sync_range;
using peergraph::detail::sync_step;

constexpr auto chat_line = peergraph::data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da");
const record_time now = record_time(std::chrono::milliseconds(1'000'000));

/// A record as a node holds it: `index` makes its id and modification time distinct and reproducible.
record made(std::uint64_t index, std::uint32_t version = 1, std::size_t data_size = 64)
{
  std::array<std::byte, 16> raw{};
  for (std::size_t i = 0; i < 8; ++i)
    raw[i] = static_cast<std::byte>((index * 0x9E3779B97F4A7C15ULL) >> (8 * i));
  raw[8] = std::byte{0x40};
  raw[15] = static_cast<std::byte>(index);
  record r;
  r.id = record_id(peergraph::data_type::from_bytes(raw));
  r.type = chat_line;
  r.version = version;
  r.creator = *peergraph::peer_id::make("alice");
  r.modified_by = r.creator;
  r.created = record_time(std::chrono::milliseconds(1000 + static_cast<long long>(index)));
  r.last_modified = r.created + std::chrono::milliseconds(version);
  r.expires = now + std::chrono::hours(1);
  r.data.assign(data_size, static_cast<std::byte>(index));
  return r;
}

/// Keeps `r` when it supersedes what `table` holds, as graph_records::apply does.
void keep(record_table& table, const record& r)
{
  const record* held = table.find(r.id);
  if (held == nullptr || peergraph::supersedes(r, *held))
    table.put(r);
}

bool same(const record_table& a, const record_table& b)
{
  if (a.count() != b.count())
    return false;
  bool equal = true;
  a.for_each([&](const record& r) {
    const record* other = b.find(r.id);
    equal = equal && other != nullptr && *other == r;
  });
  return equal;
}

struct sync_stats
{
  std::size_t messages = 0;
  std::size_t message_bytes = 0; // the sync frames' payloads
  std::size_t records_sent = 0;
  std::size_t record_bytes = 0; // the record frames' payloads
};

/// Runs one synchronisation between `a` (which begins) and `b`, the way two neighbors do: every message encoded and
/// decoded, the wanted and pushed records sent before the message that follows them. At most `max_messages`.
sync_stats synchronise(record_table& a, record_table& b, std::size_t max_messages = 64)
{
  sync_stats stats;
  const auto key = record_reconciler::random_key();
  record_reconciler sides[2]{record_reconciler(key), record_reconciler(key)};
  record_table* tables[2]{&a, &b};
  sync_message outgoing = sides[0].begin(a, now);
  int sender = 0;
  const auto send_record = [&](const record& r, record_table& to) {
    ++stats.records_sent;
    stats.record_bytes += r.size();
    keep(to, r);
  };
  for (; stats.messages < max_messages; sender = 1 - sender) {
    std::vector<std::byte> bytes;
    encode_sync_message(outgoing, bytes);
    REQUIRE(bytes.size() <= peergraph::wire::max_sync_payload_size);
    ++stats.messages;
    stats.message_bytes += bytes.size();
    auto decoded = decode_sync_message(bytes);
    REQUIRE(decoded);
    if (decoded->step == sync_step::done)
      return stats;
    const int receiver = 1 - sender;
    record_table& mine = *tables[receiver];
    record_table& theirs = *tables[sender];
    for (const record_id& id : decoded->wants)
      if (const record* r = mine.find(id))
        send_record(*r, theirs);
    auto answer = sides[receiver].answer(*decoded, mine, now);
    std::vector<record> pushed;
    for (const auto& push : answer.pushes)
      mine.for_each_between(push.lower, true, push.upper, [&](const record& r) {
        if (r.expires > now && push.lacks(r))
          pushed.push_back(r);
        return true;
      });
    for (const record& r : pushed)
      send_record(r, theirs);
    outgoing = std::move(answer.reply);
  }
  FAIL("the synchronisation did not end within " << max_messages << " messages");
  return stats;
}

} // namespace

TEST_CASE("SipHash-2-4 gives the reference vectors")
{
  const peergraph::detail::siphash24 hash(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL);
  std::array<std::byte, 64> in{};
  for (std::size_t i = 0; i < in.size(); ++i)
    in[i] = static_cast<std::byte>(i);
  const std::span<const std::byte> bytes(in);
  CHECK(hash(bytes.first(0)) == 0x726fdb47dd0e0e31ULL);
  CHECK(hash(bytes.first(1)) == 0x74f839c593dc67fdULL);
  CHECK(hash(bytes.first(8)) == 0x93f5f5799a932462ULL);
  CHECK(hash(bytes.first(15)) == 0xa129ca6149be45e5ULL);
  CHECK(hash(bytes.first(63)) == 0x958a324ceb064572ULL);
}

TEST_CASE("two empty nodes agree in one round trip")
{
  record_table a, b;
  const sync_stats stats = synchronise(a, b);
  CHECK(stats.messages == 2); // begin, done
  CHECK(stats.records_sent == 0);
}

TEST_CASE("a fresh node receives everything, whichever side begins, in one round trip")
{
  for (const bool fresh_begins : {true, false}) {
    CAPTURE(fresh_begins);
    record_table full, fresh;
    for (std::uint64_t i = 0; i < 5000; ++i)
      full.put(made(i));
    const sync_stats stats = fresh_begins ? synchronise(fresh, full) : synchronise(full, fresh);
    CHECK(same(full, fresh));
    CHECK(stats.records_sent == 5000); // each record once
    CHECK(stats.messages <= 3);
  }
}

TEST_CASE("two large stores that differ a little exchange a few percent of a full transfer")
{
  // 100,000 records in common; each side holds 50 the other lacks, and 50 records are newer on one side or the
  // other. A full transfer is every record's payload; the synchronisation's messages are a small part of it.
  record_table a, b;
  constexpr std::uint64_t common = 100'000;
  for (std::uint64_t i = 0; i < common; ++i) {
    const record r = made(i);
    a.put(r);
    b.put(r);
  }
  std::uint64_t full_transfer = 0;
  a.for_each([&](const record& r) { full_transfer += r.size(); });
  for (std::uint64_t i = 0; i < 50; ++i) {
    a.put(made(common + i));
    b.put(made(2 * common + i));
    a.put(made(i * 1000, 2));       // updated on a
    b.put(made(i * 1000 + 500, 3)); // updated on b
  }
  const sync_stats stats = synchronise(a, b);
  CHECK(same(a, b));
  CHECK(a.count() == common + 100);
  // Every difference travels; a superseded version may too, when its newer version sits in another range of the
  // order on the other side (the receiver keeps the newer one).
  CHECK(stats.records_sent >= 200);
  CHECK(stats.records_sent <= 220);
  MESSAGE("messages: " << stats.messages << ", message bytes: " << stats.message_bytes
                       << ", full transfer: " << full_transfer);
  CHECK(stats.message_bytes * 100 < full_transfer * 5); // under 5 %
  CHECK(stats.messages <= 12);
}

TEST_CASE("a tombstone wins over the live version on the other side, and expired versions take no part")
{
  record_table a, b;
  record live = made(1, 1);
  record tombstone = made(1, 2);
  tombstone.deleted = true;
  tombstone.data.clear();
  a.put(live);
  b.put(tombstone);
  record expired = made(2);
  expired.expires = now - std::chrono::milliseconds(1);
  a.put(expired);
  synchronise(a, b);
  REQUIRE(a.find(live.id) != nullptr);
  CHECK(a.find(live.id)->deleted);
  CHECK(b.find(expired.id) == nullptr); // never brought back
}

TEST_CASE("identical stores finish after the first fingerprints")
{
  record_table a, b;
  for (std::uint64_t i = 0; i < 2000; ++i) {
    a.put(made(i));
    b.put(made(i));
  }
  const sync_stats stats = synchronise(a, b);
  CHECK(stats.messages == 2);
  CHECK(stats.records_sent == 0);
  CHECK(stats.message_bytes < 1000);
}

TEST_CASE("the decoder refuses every malformed message")
{
  record_table table;
  for (std::uint64_t i = 0; i < 100; ++i)
    table.put(made(i));
  record_reconciler reconciler(record_reconciler::random_key());
  std::vector<std::byte> valid;
  encode_sync_message(reconciler.begin(table, now), valid);
  REQUIRE(decode_sync_message(valid));

  const auto refused = [](std::vector<std::byte> bytes) {
    auto decoded = decode_sync_message(bytes);
    return !decoded && decoded.error() == peer_errc::protocol_error;
  };
  SUBCASE("every truncation")
  {
    for (std::size_t size = 0; size < valid.size(); ++size)
      CHECK(refused(std::vector<std::byte>(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(size))));
  }
  SUBCASE("a byte too many")
  {
    valid.push_back(std::byte{0});
    CHECK(refused(valid));
  }
  SUBCASE("an unknown step, reserved bits")
  {
    auto bad = valid;
    bad[0] = std::byte{5};
    CHECK(refused(bad));
    bad = valid;
    bad[1] = std::byte{1};
    CHECK(refused(bad));
  }
  SUBCASE("ranges out of order, no last range, an unknown mode")
  {
    sync_message m;
    m.ranges = {
        sync_range{peergraph::detail::sync_key(now, record_id()), sync_mode::skip, {}, {}},
        sync_range{
            peergraph::detail::sync_key(now - std::chrono::milliseconds(1), record_id()), sync_mode::skip, {}, {}},
        sync_range{std::nullopt, sync_mode::skip, {}, {}}};
    std::vector<std::byte> bytes;
    encode_sync_message(m, bytes);
    CHECK(refused(bytes));
    m.ranges.erase(m.ranges.begin() + 1);
    m.ranges.pop_back(); // the last range has an upper bound
    bytes.clear();
    encode_sync_message(m, bytes);
    CHECK(refused(bytes));
    m.ranges.clear(); // no range at all
    bytes.clear();
    encode_sync_message(m, bytes);
    CHECK(refused(bytes));
    m.ranges = {sync_range{std::nullopt, sync_mode::skip, {}, {}}};
    bytes.clear();
    encode_sync_message(m, bytes);
    REQUIRE_FALSE(refused(bytes));
    bytes[bytes.size() - 2] = std::byte{3}; // the mode
    CHECK(refused(bytes));
  }
  SUBCASE("an item outside its range")
  {
    sync_message m;
    sync_range first{peergraph::detail::sync_key(now, record_id()), sync_mode::skip, {}, {}};
    sync_range last{std::nullopt, sync_mode::items, {}, {}};
    last.items.push_back({{now - std::chrono::milliseconds(5), made(1).id}, 1, false});
    m.ranges = {first, last};
    std::vector<std::byte> bytes;
    encode_sync_message(m, bytes);
    CHECK(refused(bytes));
  }
  SUBCASE("the clock message carries the peer time and nothing else")
  {
    sync_message clock;
    clock.step = sync_step::clock;
    clock.clock = now;
    std::vector<std::byte> bytes;
    encode_sync_message(clock, bytes);
    CHECK(bytes.size() == 12);
    auto decoded = decode_sync_message(bytes);
    REQUIRE(decoded);
    CHECK(decoded->step == sync_step::clock);
    CHECK(decoded->clock == now);
    bytes.push_back(std::byte{0});
    CHECK(refused(bytes));
    bytes.resize(11);
    CHECK(refused(bytes));
  }
  SUBCASE("random bytes never crash the decoder")
  {
    std::mt19937_64 random(7);
    for (int round = 0; round < 2000; ++round) {
      auto bytes = valid;
      for (int flips = 0; flips < 4; ++flips)
        bytes[random() % bytes.size()] = static_cast<std::byte>(random());
      (void)decode_sync_message(bytes); // decoded or refused; sanitizers watch the reads
    }
  }
}
