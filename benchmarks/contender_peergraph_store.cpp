//
// benchmarks/contender_peergraph_store.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// What a persistent record store costs the graph (record_store_sqlite): one node adds records as fast as its
// application can, once on the memory store and once on a SQLite store in a fresh temporary directory, in the same
// process, after an untimed run that grows the heap. The value is the SQLite run's time over the memory run's; the
// details say how long the graph's context went without a turn (a 1 ms ticker on the same context measures the
// longest gap between its ticks) and how long closing the graph took, which writes the store's last batch.
//
#include "asio_support.hpp"

#include <peergraph/graph.hpp>
#include <peergraph/record_store.hpp>
#include <peergraph/sqlite_record_store.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

namespace {

using namespace peergraph::bench;
using namespace std::chrono_literals;

constexpr auto store_record_type = peergraph::data_type::from_string("8c1e5a70-2f64-4b9d-a3c8-71e0d4b6f259");
constexpr std::size_t store_data_bytes = 256;
/// add_record completes without suspending on a node without neighbors: the application yields every so many
/// records, as an application adding in bulk would, so that the ticker can measure the context's gaps.
constexpr std::uint64_t yield_every = 64;

/// A fresh directory under the system's temporary directory, removed with everything in it.
class scratch_directory
{
public:
  scratch_directory()
  {
    std::string name = (std::filesystem::temp_directory_path() / "peergraph-bench-store-XXXXXX").string();
    if (mkdtemp(name.data()) == nullptr)
      fail_errno("mkdtemp");
    path_ = name;
  }
  scratch_directory(const scratch_directory&) = delete;
  scratch_directory& operator=(const scratch_directory&) = delete;
  ~scratch_directory()
  {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
  std::filesystem::path path_;
};

struct store_run
{
  double add_seconds = 0;     // from the first add_record to the last one's completion
  double longest_gap_ms = 0;  // the longest time the context's 1 ms ticker waited beyond its period
  double written_seconds = 0; // after the last add_record, until the graph closed (and its store with it)
};

/// Adds `count` records at a node on `store` and measures it.
store_run add_on(const std::shared_ptr<peergraph::record_store>& store, std::uint64_t count)
{
  asio::io_context io;
  peergraph::graph_properties p;
  auto graph_name = peergraph::graph_id::make("peergraph-bench-store");
  auto peer_name = peergraph::peer_id::make("writer");
  if (!graph_name || !peer_name)
    fail("store: invalid graph or peer id");
  p.graph = std::move(*graph_name);
  p.peer = std::move(*peer_name);
  p.store = store;
  peergraph::graph graph(io.get_executor(), std::move(p));

  store_run run;
  bool adding = true;
  bench_clock::duration longest_gap{};
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer ticker(co_await asio::this_coro::executor);
        auto due = bench_clock::now();
        while (adding) {
          due += 1ms;
          ticker.expires_at(due);
          co_await ticker.async_wait(asio::use_awaitable);
          if (!adding)
            break; // the graph is closing: its store's last batch is measured apart
          const auto now = bench_clock::now();
          longest_gap = std::max(longest_gap, now - due);
          due = std::max(due, now - 1ms); // a late tick does not make the next ones count the same delay again
        }
      },
      fail_on_exception{"store ticker"});
  bench_clock::time_point finished{};
  const auto started = bench_clock::now();
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        peergraph::record r;
        r.type = store_record_type;
        r.attributes = {{"sequence", std::int64_t{0}}};
        for (std::uint64_t seq = 0; seq < count; ++seq) {
          r.expires = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()) + 24h;
          r.attributes[0].value = static_cast<std::int64_t>(seq);
          const auto* bytes = reinterpret_cast<const std::byte*>(payload_of(seq));
          r.data.assign(bytes, bytes + store_data_bytes);
          auto id = co_await graph.add_record(r);
          if (!id)
            fail("store: add_record: " + id.error().message());
          if (seq % yield_every == yield_every - 1)
            co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        }
        finished = bench_clock::now();
        adding = false;
        co_await graph.close();
      },
      fail_on_exception{"store writer"});
  io.run_for(600s);
  if (adding)
    fail("store: the records were not added within 600 s");
  run.written_seconds = std::chrono::duration<double>(bench_clock::now() - finished).count();
  run.add_seconds = std::chrono::duration<double>(finished - started).count();
  run.longest_gap_ms = std::chrono::duration<double, std::milli>(longest_gap).count();
  return run;
}

measurement record_store_sqlite(const run_spec& spec)
{
  const std::uint64_t count = spec.count != 0 ? spec.count : 10000;
  prepare_pattern(store_data_bytes);
  // The first run of a process pays for growing the heap: an untimed one on the memory store first, so that the
  // two timed runs find the same heap.
  add_on(std::make_shared<peergraph::memory_record_store>(), count);
  const auto memory = add_on(std::make_shared<peergraph::memory_record_store>(), count);

  const scratch_directory dir;
  auto made = peergraph::sqlite_record_store::make(dir.path() / "records.db");
  if (!made)
    fail("store: " + made.error().message());
  std::shared_ptr<peergraph::sqlite_record_store> sqlite = *made;
  const auto on_disk = add_on(sqlite, count); // the graph's close() closes the store, which writes the rest
  // The file holds every record: open it again and count.
  const auto graph = peergraph::graph_id::make("peergraph-bench-store");
  const auto peer = peergraph::peer_id::make("writer");
  auto contents = sqlite->open(*graph, *peer);
  if (!contents || contents->records.size() != count)
    fail("store: the SQLite file does not hold every record after the graph closed");
  sqlite->close();

  measurement m;
  m.values.emplace_back("record_store_sqlite", on_disk.add_seconds / memory.add_seconds);
  m.details.emplace_back("records", static_cast<double>(count));
  m.details.emplace_back("data_bytes", static_cast<double>(store_data_bytes));
  m.details.emplace_back("memory_records_per_second", static_cast<double>(count) / memory.add_seconds);
  m.details.emplace_back("sqlite_records_per_second", static_cast<double>(count) / on_disk.add_seconds);
  m.details.emplace_back("memory_longest_gap_ms", memory.longest_gap_ms);
  m.details.emplace_back("sqlite_longest_gap_ms", on_disk.longest_gap_ms);
  m.details.emplace_back("sqlite_written_seconds", on_disk.written_seconds);
  return m;
}

const contender_registration registration{{"peergraph",
                                           {
                                               {"record_store_sqlite", &record_store_sqlite},
                                           }}};

} // namespace
