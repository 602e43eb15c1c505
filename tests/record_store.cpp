#include <peergraph/record_store.hpp>
// The header under test comes first: it must be self-contained.
//
// memory_record_store: the record_store contract every store keeps (one owner, one graph at a time, what was stored
// comes back after close and open), in memory.

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using peergraph::graph_id;
using peergraph::memory_record_store;
using peergraph::peer_errc;
using peergraph::peer_id;
using peergraph::record;
using peergraph::record_id;
using peergraph::record_time;

constexpr auto chat_line = peergraph::data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da");

const graph_id graph = graph_id::make("chat").value();
const peer_id alice = peer_id::make("alice").value();

/// The error of `result`, or unknown_error (a default peer_error) when it succeeded, so that a check fails instead
/// of reading the error of a value.
template <class T>
peergraph::peer_error error_of(const peergraph::expected<T, peergraph::peer_error>& result)
{
  return result ? peergraph::peer_error() : result.error();
}

/// Record number `n`: its id ends in `n`.
record sample(std::uint8_t n)
{
  std::array<std::byte, peergraph::data_type::byte_size> id{};
  id[0] = std::byte{0x5a};
  id[15] = std::byte{n};
  record r;
  r.id = record_id(peergraph::data_type::from_bytes(id));
  r.type = chat_line;
  r.version = 1;
  r.creator = alice;
  r.modified_by = alice;
  r.created = record_time(std::chrono::milliseconds(1'000));
  r.last_modified = r.created;
  r.expires = record_time(std::chrono::milliseconds(100'000));
  r.attributes = {{"title", std::string("notes")}, {"priority", std::int64_t{n}}};
  r.data = {std::byte{n}};
  return r;
}

std::vector<record> sorted(std::vector<record> records)
{
  std::sort(records.begin(), records.end(), [](const record& a, const record& b) { return a.id < b.id; });
  return records;
}

} // namespace

TEST_SUITE_BEGIN("record_store");

TEST_CASE("memory_record_store: a new store is empty, and what was stored comes back after close and open")
{
  memory_record_store store;
  auto first = store.open(graph, alice);
  REQUIRE(first.has_value());
  CHECK(first->records.empty());
  CHECK_FALSE(first->synchronized);

  const record one = sample(1);
  record two = sample(2);
  REQUIRE(store.put(one).has_value());
  REQUIRE(store.put(two).has_value());
  two.version = 2;
  two.deleted = true; // a tombstone replaces the record under the same id
  REQUIRE(store.put(two).has_value());
  REQUIRE(store.put(sample(3)).has_value());
  REQUIRE(store.erase(sample(3).id).has_value());
  REQUIRE(store.erase(sample(4).id).has_value()); // none: not an error
  REQUIRE(store.mark_synchronized().has_value());
  CHECK(store.size() == 2);
  store.close();

  auto again = store.open(graph, alice);
  REQUIRE(again.has_value());
  CHECK(sorted(again->records) == std::vector<record>{one, two});
  CHECK(again->synchronized);
  store.close();
}

TEST_CASE("memory_record_store: another graph or peer gives invalid_graph; a second open gives already_exists")
{
  memory_record_store store;
  REQUIRE(store.open(graph, alice).has_value());
  CHECK(error_of(store.open(graph, alice)) == peer_errc::already_exists);
  store.close();
  CHECK(error_of(store.open(graph_id::make("other").value(), alice)) == peer_errc::invalid_graph);
  CHECK(error_of(store.open(graph, peer_id::make("bob").value())) == peer_errc::invalid_graph);
  // The refusals left the owner's store closed and its own.
  REQUIRE(store.open(graph, alice).has_value());
  store.close();
  store.close(); // closing a closed store does nothing
}

TEST_CASE("memory_record_store: a store that is not open takes nothing")
{
  memory_record_store store;
  CHECK(error_of(store.put(sample(1))) == peer_errc::not_initialized);
  CHECK(error_of(store.erase(sample(1).id)) == peer_errc::not_initialized);
  CHECK(error_of(store.mark_synchronized()) == peer_errc::not_initialized);
  REQUIRE(store.open(graph, alice).has_value());
  REQUIRE(store.put(sample(1)).has_value());
  store.close();
  CHECK(error_of(store.put(sample(2))) == peer_errc::not_initialized);
  CHECK(store.size() == 1);
}

TEST_SUITE_END();
