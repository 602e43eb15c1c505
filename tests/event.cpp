#include <peergraph/event.hpp>
// The header under test comes first: it must be self-contained.

#include "support/allocation_counter.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

using namespace peergraph;

constexpr data_type chat = data_type::from_string("11111111-2222-4333-8444-555555555555");
constexpr data_type file = data_type::from_string("99999999-2222-4333-8444-555555555555");

graph_event data_event(const data_type& type)
{
  return incoming_data{connection_id(1), type, payload::copy_of(std::array<std::byte, 2>{std::byte{1}, std::byte{2}})};
}

graph_event connected_event()
{
  return connection_changed{connection_id(1),
                            connection_kind::neighbor,
                            connection_status::connected,
                            peer_id(),
                            node_id(7),
                            std::nullopt,
                            {}};
}

} // namespace

TEST_SUITE_BEGIN("event");

TEST_CASE("a payload owns its bytes and moves without copying them")
{
  static_assert(!std::is_copy_constructible_v<payload>, "payloads move, never copy");
  const std::array<std::byte, 3> bytes{std::byte{'a'}, std::byte{'b'}, std::byte{'c'}};
  payload p = payload::copy_of(bytes);
  REQUIRE(p.size() == 3);
  CHECK(p.data() != bytes.data());
  CHECK(std::equal(p.begin(), p.end(), bytes.begin()));
  const std::byte* storage = p.data();
  payload moved = std::move(p);
  CHECK(moved.data() == storage); // the same memory, handed on
  CHECK(moved == payload::copy_of(bytes));
  CHECK_FALSE(moved == payload::copy_of(std::span<const std::byte>(bytes).first(2)));
  CHECK(payload().empty());
  CHECK(payload(0).data() == nullptr);
}

TEST_CASE("a freed payload's memory serves the next payload of its size class without the heap")
{
  if (!test::allocations_counted())
    return; // the sanitizer runtime owns operator new here
  // Both ends of every size class, from 1 byte to the largest pooled block (64 KiB).
  std::vector<std::size_t> sizes{1};
  for (std::size_t block = 64; block <= 64 * 1024; block *= 2)
    sizes.insert(sizes.end(), {block / 2 + 1, block});
  for (const std::size_t size : sizes) {
    CAPTURE(size);
    const std::byte* first = nullptr;
    {
      payload p(size);
      std::fill(p.bytes().begin(), p.bytes().end(), std::byte{0x5a}); // the whole block is the payload's to write
      first = p.data();
    }
    const std::size_t before = test::heap_allocations();
    payload again(size);
    CHECK(test::heap_allocations() == before);
    CHECK(again.data() == first); // the thread's own cache hands back what it just took
  }
}

TEST_CASE("payloads freed on a thread that then ends are reused by other threads")
{
  constexpr std::size_t size = 40'000; // the 64 KiB class, of which a thread's cache keeps at most 4 blocks
  constexpr std::size_t freed_count = 3;
  std::vector<const std::byte*> freed;
  std::thread([&] {
    std::vector<payload> made;
    for (std::size_t i = 0; i < freed_count; ++i)
      freed.push_back(made.emplace_back(size).data());
    made.clear(); // into this thread's cache, which goes to the shared lists when the thread ends
  }).join();
  // This thread takes from its own cache first (at most 4 blocks of the class), then from the shared lists, where
  // the ended thread's blocks are the most recent.
  std::vector<payload> reused;
  for (std::size_t i = 0; i < 4 + freed_count; ++i)
    reused.emplace_back(size);
  for (const std::byte* block : freed) {
    CAPTURE(static_cast<const void*>(block));
    CHECK(std::any_of(reused.begin(), reused.end(), [&](const payload& p) { return p.data() == block; }));
  }
}

TEST_CASE("kind_of names the alternative of an event")
{
  CHECK(kind_of(data_event(chat)) == event_kind::incoming_data);
  CHECK(kind_of(connected_event()) == event_kind::connection_changed);
  CHECK(kind_of(status_changed{graph_status::listening}) == event_kind::status_changed);
}

TEST_CASE("the default filter passes everything")
{
  const event_filter all;
  CHECK(all.matches(data_event(chat)));
  CHECK(all.matches(connected_event()));
  CHECK(all.matches(status_changed{graph_status::none}));
}

TEST_CASE("a filter selects kinds, and data types among incoming data")
{
  event_filter only_data{event_kind::incoming_data, {}};
  CHECK(only_data.matches(data_event(chat)));
  CHECK_FALSE(only_data.matches(connected_event()));
  CHECK_FALSE(only_data.matches(status_changed{graph_status::listening}));

  event_filter only_files{event_kind::incoming_data | event_kind::connection_changed, {file}};
  CHECK(only_files.matches(data_event(file)));
  CHECK_FALSE(only_files.matches(data_event(chat)));
  CHECK(only_files.matches(connected_event()));
  CHECK(only_files.accepts_data(file));
  CHECK_FALSE(only_files.accepts_data(chat));

  event_filter no_data{event_kind::connection_changed, {file}};
  CHECK_FALSE(no_data.accepts_data(file)); // the type list applies only when data is selected at all
  CHECK_FALSE(event_filter{event_kind::none, {}}.matches(connected_event()));
}

TEST_CASE("status flags combine and test")
{
  const auto both = graph_status::listening | graph_status::has_connections;
  CHECK(has_status(both, graph_status::listening));
  CHECK(has_status(both, graph_status::has_connections));
  CHECK_FALSE(has_status(graph_status::listening, graph_status::has_connections));
  CHECK_FALSE(has_status(both, graph_status::none));
}

TEST_SUITE_END();
