#include <peergraph/detail/graph/records.hpp>
// The header under test comes first: it must be self-contained.
//
// The record layer's decisions (detail/graph/records.hpp): what the application may add, update and delete, which
// version received from a neighbour is kept, the store's limits, expiry.

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using peergraph::peer_errc;
using peergraph::record;
using peergraph::record_change;
using peergraph::record_compare;
using peergraph::record_id;
using peergraph::record_query;
using peergraph::record_time;
using peergraph::detail::graph_records;
using peergraph::detail::record_limits;

constexpr auto chat_line = peergraph::data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da");
constexpr auto file_entry = peergraph::data_type::from_string("aa1c2d3e-4f50-4617-8293-a4b5c6d7e8f9");
constexpr record_limits roomy{1024 * 1024, 1000, 64ULL * 1024 * 1024};

record_time at(long long ms)
{
  return record_time(std::chrono::milliseconds(ms));
}

peergraph::peer_id pid(const char* name)
{
  return *peergraph::peer_id::make(name);
}

/// A record as the application hands it to add(): type, expiry, attributes, data.
record draft(std::string text, long long expires = 100'000, peergraph::data_type type = chat_line)
{
  record r;
  r.type = type;
  r.expires = at(expires);
  r.attributes = {{"text", std::move(text)}};
  r.data = {std::byte{1}, std::byte{2}, std::byte{3}};
  return r;
}

/// A version as another node would flood it.
record remote(const record_id& id, std::uint32_t version, const char* creator = "bob", long long modified = 2'000)
{
  record r = draft("from " + std::string(creator) + " v" + std::to_string(version));
  r.id = id;
  r.version = version;
  r.creator = pid(creator);
  r.modified_by = r.creator;
  r.created = at(1'000);
  r.last_modified = at(modified);
  return r;
}

} // namespace

TEST_SUITE_BEGIN("graph_records");

TEST_CASE("add makes the id, version 1, the creator and the times, and refuses what is invalid")
{
  graph_records book(roomy, pid("alice"));
  auto added = book.add(draft("hello"), at(1'000));
  REQUIRE(added.has_value());
  CHECK(added->change == record_change::added);
  const record& r = added->version;
  CHECK_FALSE(r.id.is_nil());
  CHECK(r.version == 1);
  CHECK(r.creator == pid("alice"));
  CHECK(r.modified_by == pid("alice"));
  CHECK(r.created == at(1'000));
  CHECK(r.last_modified == at(1'000));
  CHECK(book.get(r.id, at(1'500)).value() == r);
  CHECK(book.add(draft("again"), at(1'000))->version.id != r.id);

  CHECK(book.add(draft("nil type", 100'000, {}), at(1'000)).error() == peer_errc::invalid_argument);
  CHECK(book.add(draft("past", 1'000), at(1'000)).error() == peer_errc::invalid_argument);
  record bad = draft("x");
  bad.attributes.push_back({"peerrecordid", std::string("forged")});
  CHECK(book.add(bad, at(1'000)).error() == peer_errc::invalid_attributes);
  record large = draft("x");
  large.data.resize(roomy.max_record_size);
  CHECK(book.add(large, at(1'000)).error() == peer_errc::max_record_size_exceeded);
  CHECK(book.table().count() == 2); // nothing refused was stored
}

TEST_CASE("the store's limits on records and bytes hold for local and received records")
{
  graph_records by_count({1024 * 1024, 3, 64ULL * 1024 * 1024}, pid("alice"));
  for (int i = 0; i < 3; ++i)
    REQUIRE(by_count.add(draft("r"), at(1'000)).has_value());
  CHECK(by_count.add(draft("r"), at(1'000)).error() == peer_errc::limit_exceeded);
  CHECK(by_count.apply(remote(record_id::generate(), 1), at(1'000)).error() == peer_errc::limit_exceeded);
  CHECK(by_count.table().count() == 3);

  const std::size_t one = draft("r").size() + 2 * 16 + 5; // about one record with its ids and creator
  graph_records by_bytes({1024 * 1024, 1000, 4 * one}, pid("alice"));
  int stored = 0;
  for (int i = 0; i < 10 && by_bytes.add(draft("r"), at(1'000)).has_value(); ++i)
    ++stored;
  CHECK(stored >= 2);
  CHECK(stored < 10);
  CHECK(by_bytes.table().bytes() <= 4 * one);
}

TEST_CASE("update: the creator only, one version up, same type, expiry only grows")
{
  graph_records book(roomy, pid("alice"));
  const record first = book.add(draft("v1"), at(1'000))->version;
  record changed = first;
  changed.attributes = {{"text", std::string("v2")}};
  changed.expires = at(200'000);
  auto updated = book.update(changed, at(3'000));
  REQUIRE(updated.has_value());
  CHECK(updated->change == record_change::updated);
  CHECK(updated->version.version == 2);
  CHECK(updated->version.created == first.created);
  CHECK(updated->version.last_modified == at(3'000));
  CHECK(book.get(first.id, at(3'000))->attributes == changed.attributes);

  record earlier = updated->version;
  earlier.expires = at(150'000);
  CHECK(book.update(earlier, at(3'000)).error() == peer_errc::invalid_argument);
  record retyped = updated->version;
  retyped.type = file_entry;
  CHECK(book.update(retyped, at(3'000)).error() == peer_errc::invalid_argument);
  record unknown = updated->version;
  unknown.id = record_id::generate();
  CHECK(book.update(unknown, at(3'000)).error() == peer_errc::record_not_found);
  // A clock that went back never makes a version older than the last.
  CHECK(book.update(updated->version, at(500))->version.last_modified == at(3'000));

  const record bobs = remote(record_id::generate(), 1);
  REQUIRE(book.apply(bobs, at(2'000)).value().has_value());
  CHECK(book.update(bobs, at(3'000)).error() == peer_errc::access_denied);
  CHECK(book.remove(bobs.id, at(3'000)).error() == peer_errc::access_denied);
}

TEST_CASE("delete leaves a tombstone until the record's expiry; nothing older brings the record back")
{
  graph_records book(roomy, pid("bob"));
  const record v1 = book.add(draft("v1", 50'000), at(1'000))->version;
  auto deleted = book.remove(v1.id, at(2'000));
  REQUIRE(deleted.has_value());
  CHECK(deleted->change == record_change::deleted);
  CHECK(deleted->version.deleted);
  CHECK(deleted->version.version == 2);
  CHECK(deleted->version.data.empty());
  CHECK(deleted->version.expires == v1.expires);
  CHECK(book.get(v1.id, at(2'000)).error() == peer_errc::record_not_found);
  CHECK(book.update(v1, at(2'000)).error() == peer_errc::record_not_found);
  CHECK(book.remove(v1.id, at(2'000)).error() == peer_errc::record_not_found);
  // The first version arriving late from a neighbour is old news.
  CHECK_FALSE(book.apply(v1, at(3'000)).value().has_value());
  CHECK(book.get(v1.id, at(3'000)).error() == peer_errc::record_not_found);
  CHECK(book.of_type(chat_line, at(3'000)).empty());

  // At the expiry the tombstone goes, silently; a copy of the record arriving after that is expired too.
  CHECK(book.next_expiry() == at(50'000));
  CHECK(book.expire(at(49'999), 100).empty());
  CHECK(book.table().count() == 1);
  CHECK(book.expire(at(50'000), 100).empty()); // no event for a tombstone
  CHECK(book.table().count() == 0);
  CHECK_FALSE(book.apply(v1, at(50'000)).value().has_value());
  CHECK(book.table().count() == 0);
}

TEST_CASE("received versions: each applied once, the newest kept, forgeries and malformed ones refused")
{
  graph_records book(roomy, pid("alice"));
  const record_id id = record_id::generate();
  auto first = book.apply(remote(id, 1), at(1'500));
  REQUIRE(first.has_value());
  REQUIRE(first->has_value());
  CHECK((*first)->change == record_change::added);
  CHECK_FALSE(book.apply(remote(id, 1), at(1'500)).value().has_value()); // the same version again: nothing
  auto second = book.apply(remote(id, 3, "bob", 3'000), at(3'500));
  REQUIRE(second.value().has_value());
  CHECK((*second)->change == record_change::updated);
  CHECK_FALSE(book.apply(remote(id, 2, "bob", 9'000), at(9'500)).value().has_value()); // older version
  CHECK(book.get(id, at(9'500))->version == 3);

  // Claims on bob's record by another creator, or made by someone else, change nothing.
  CHECK(book.apply(remote(id, 4, "mallory"), at(9'500)).error() == peer_errc::invalid_record);
  record ghost = remote(id, 4);
  ghost.modified_by = pid("mallory");
  CHECK(book.apply(ghost, at(9'500)).error() == peer_errc::invalid_record);
  record retyped = remote(id, 4);
  retyped.type = file_entry;
  CHECK(book.apply(retyped, at(9'500)).error() == peer_errc::invalid_record);
  CHECK(book.get(id, at(9'500))->version == 3);

  const auto refused = [&](record r, peer_errc why) {
    auto applied = book.apply(std::move(r), at(9'500));
    return !applied && applied.error() == why;
  };
  CHECK(refused(remote(record_id(), 1), peer_errc::invalid_record));
  CHECK(refused(remote(record_id::generate(), 0), peer_errc::invalid_record));
  record nameless = remote(record_id::generate(), 1);
  nameless.creator = {};
  nameless.modified_by = {};
  CHECK(refused(nameless, peer_errc::invalid_record));
  record untyped = remote(record_id::generate(), 1);
  untyped.type = {};
  CHECK(refused(untyped, peer_errc::invalid_record));
  record full_tombstone = remote(record_id::generate(), 2);
  full_tombstone.deleted = true;
  CHECK(refused(full_tombstone, peer_errc::invalid_record));
  record bad_attribute = remote(record_id::generate(), 1);
  bad_attribute.attributes.push_back({"with space", std::int64_t{1}});
  CHECK(refused(bad_attribute, peer_errc::invalid_attributes));
  record large = remote(record_id::generate(), 1);
  large.data.resize(roomy.max_record_size);
  CHECK(refused(large, peer_errc::max_record_size_exceeded));
  CHECK(book.table().count() == 1);

  // Expired on arrival: not stored.
  record stale = remote(record_id::generate(), 1);
  stale.expires = at(9'000);
  CHECK_FALSE(book.apply(stale, at(9'500)).value().has_value());
  CHECK(book.table().count() == 1);
}

TEST_CASE("a tombstone that arrives before the record blocks the record")
{
  graph_records book(roomy, pid("alice"));
  const record_id id = record_id::generate();
  record tombstone = remote(id, 2);
  tombstone.deleted = true;
  tombstone.data.clear();
  tombstone.attributes.clear();
  auto kept = book.apply(tombstone, at(2'500));
  REQUIRE(kept.value().has_value());                                 // kept, and to be flooded on
  CHECK((*kept)->silent);                                            // but nothing to report: never seen live here
  CHECK_FALSE(book.apply(tombstone, at(2'500)).value().has_value()); // once
  CHECK_FALSE(book.apply(remote(id, 1), at(2'500)).value().has_value());
  CHECK(book.get(id, at(2'500)).error() == peer_errc::record_not_found);
}

TEST_CASE("every order of arrival ends with the same version on every node")
{
  const record_id id = record_id::generate();
  std::vector<record> versions{remote(id, 1), remote(id, 2, "bob", 3'000), remote(id, 2, "bob", 4'000),
                               remote(id, 3, "bob", 3'500)};
  record concurrent = remote(id, 3, "bob", 3'500); // the same version made twice, with other contents
  concurrent.data = {std::byte{42}};
  versions.push_back(concurrent);
  record deleted = remote(id, 3, "bob", 3'500);
  deleted.deleted = true;
  deleted.data.clear();
  deleted.attributes.clear();
  versions.push_back(deleted);

  std::mt19937 random(7);
  std::optional<record> converged;
  for (int round = 0; round < 50; ++round) {
    std::shuffle(versions.begin(), versions.end(), random);
    graph_records node(roomy, pid("carol"));
    for (const record& v : versions)
      REQUIRE(node.apply(v, at(5'000)).has_value());
    const record* held = node.table().find(id);
    REQUIRE(held != nullptr);
    if (!converged)
      converged = *held;
    CHECK(*held == *converged);
  }
  CHECK(converged->deleted); // at version 3, the deletion stands
}

TEST_CASE("get, enumeration by type and search see live records only")
{
  graph_records book(roomy, pid("alice"));
  const record a = book.add(draft("lunch at noon", 10'000), at(1'000))->version;
  const record b = book.add(draft("meeting at two"), at(1'000))->version;
  const record c = book.add(draft("a file", 100'000, file_entry), at(1'000))->version;
  CHECK(book.of_type(chat_line, at(2'000)).size() == 2);
  CHECK(book.of_type(file_entry, at(2'000)).size() == 1);
  CHECK(book.of_type(std::nullopt, at(2'000)).size() == 3);
  auto found = book.search(record_query::where("text", record_compare::equal, "*at*"), at(2'000));
  REQUIRE(found.has_value());
  CHECK(found->size() == 2);
  CHECK(book.search(record_query::any_of({}), at(2'000)).error() == peer_errc::invalid_search);
  // Past its expiry a record is gone from every view before the sweep removes it.
  CHECK(book.get(a.id, at(10'000)).error() == peer_errc::record_not_found);
  CHECK(book.of_type(chat_line, at(10'000)).size() == 1);
  CHECK(book.search(record_query::where("text", record_compare::equal, "*"), at(10'000))->size() == 2);
  auto expired = book.expire(at(10'000), 100);
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].change == record_change::expired);
  CHECK(expired[0].version.id == a.id);
  CHECK(book.get(b.id, at(10'000)).has_value());
  CHECK(book.get(c.id, at(10'000)).has_value());
}

TEST_CASE("the expiry sweep takes at most its limit, earliest first")
{
  graph_records book(roomy, pid("alice"));
  for (int i = 0; i < 10; ++i)
    REQUIRE(book.add(draft("r", 5'000 + i), at(1'000)).has_value());
  auto first = book.expire(at(20'000), 4);
  REQUIRE(first.size() == 4);
  CHECK(first[0].version.expires == at(5'000));
  CHECK(first[3].version.expires == at(5'003));
  CHECK(book.next_expiry() == at(5'004));
  CHECK(book.expire(at(20'000), 100).size() == 6);
  CHECK_FALSE(book.next_expiry().has_value());
  CHECK(book.table().bytes() == 0);
}

TEST_SUITE_END();
