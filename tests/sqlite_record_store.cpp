#include <peergraph/sqlite_record_store.hpp>
// The header under test comes first: it must be self-contained.
//
// sqlite_record_store: the record_store contract on a file (owner, one open at a time across objects and processes,
// everything back after close and open), files that are not its stores, corrupt rows, and writes that survive a
// crash of the process; and a graph on it that restarts. Every file lives in a fresh temporary directory, removed at
// the end.

#include "support/co_test.hpp"
#include "support/graph_nodes.hpp"
#include "support/graph_support.hpp"
#include "support/record_support.hpp"

#include <peergraph/graph.hpp>

#include <doctest/doctest.h>

#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace {

using peergraph::graph_id;
using peergraph::peer_errc;
using peergraph::peer_id;
using peergraph::record;
using peergraph::record_id;
using peergraph::record_time;
using peergraph::sqlite_record_store;
using peergraph::test::node;
namespace fs = std::filesystem;

constexpr auto chat_line = peergraph::data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da");

const graph_id graph = graph_id::make("chat").value();
const peer_id alice = peer_id::make("alice").value();

/// A fresh directory under the system's temporary directory, removed with everything in it.
class temporary_directory
{
public:
  temporary_directory()
  {
    std::string name = (fs::temp_directory_path() / "peergraph-sqlite-XXXXXX").string();
    REQUIRE(mkdtemp(name.data()) != nullptr);
    path_ = name;
  }
  temporary_directory(const temporary_directory&) = delete;
  temporary_directory& operator=(const temporary_directory&) = delete;
  ~temporary_directory()
  {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }

  [[nodiscard]] fs::path file(const char* name) const { return path_ / name; }

private:
  fs::path path_;
};

/// The error of `result`, or unknown_error (a default peer_error) when it succeeded, so that a check fails instead
/// of reading the error of a value.
template <class T>
peergraph::peer_error error_of(const peergraph::expected<T, peergraph::peer_error>& result)
{
  return result ? peergraph::peer_error() : result.error();
}

record_time at(long long ms)
{
  return record_time(std::chrono::milliseconds(ms));
}

/// Record number `n`: its id ends in `n`, and it has an attribute of every type.
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
  r.created = at(1'000);
  r.last_modified = at(2'000);
  r.expires = at(100'000);
  r.attributes = {{"title", std::string("Meeting notes")}, {"priority", std::int64_t{-3}}, {"due", at(5'000)}};
  r.data = {std::byte{n}, std::byte{0}, std::byte{0xff}};
  return r;
}

/// Records of every kind: attributes of every type, a tombstone, security data, 1 MiB of data, nothing but the
/// required fields.
std::vector<record> every_kind()
{
  std::vector<record> records{sample(1), sample(2), sample(3), sample(4), sample(5)};
  records[1].version = 2;
  records[1].deleted = true;
  records[1].attributes.clear();
  records[1].data.clear();
  records[2].security_data = {std::byte{0xee}, std::byte{0x00}, std::byte{0x11}};
  records[2].modified_by = peer_id::make("bob").value();
  records[3].data.assign(std::size_t{1} << 20, std::byte{0});
  for (std::size_t i = 0; i < records[3].data.size(); ++i)
    records[3].data[i] = static_cast<std::byte>(i * 7 % 251);
  records[4].attributes.clear();
  records[4].data.clear();
  return records;
}

std::vector<record> sorted(std::vector<record> records)
{
  std::sort(records.begin(), records.end(), [](const record& a, const record& b) { return a.id < b.id; });
  return records;
}

std::shared_ptr<sqlite_record_store> make_store(const fs::path& file)
{
  auto store = sqlite_record_store::make(file);
  REQUIRE(store.has_value());
  return *store;
}

/// Runs `sql` on `file` through SQLite directly.
void execute(const fs::path& file, const char* sql)
{
  sqlite3* db = nullptr;
  const int opened = sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  const int ran = opened == SQLITE_OK ? sqlite3_exec(db, sql, nullptr, nullptr, nullptr) : opened;
  sqlite3_close(db);
  REQUIRE(ran == SQLITE_OK);
}

void write_file(const fs::path& file, const std::string& bytes)
{
  std::ofstream out(file, std::ios::binary);
  out << bytes;
  REQUIRE(out.good());
}

std::string read_file(const fs::path& file)
{
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A store of `file` with records 1 and 2, closed.
void store_two(const fs::path& file)
{
  auto store = make_store(file);
  REQUIRE(store->open(graph, alice).has_value());
  REQUIRE(store->put(sample(1)).has_value());
  REQUIRE(store->put(sample(2)).has_value());
  store->close();
}

} // namespace

TEST_SUITE_BEGIN("sqlite_record_store");

TEST_CASE("records of every kind come back after close and open, with the synchronized flag")
{
  const temporary_directory dir;
  const std::vector<record> records = every_kind();
  auto store = make_store(dir.file("records.db"));
  auto first = store->open(graph, alice);
  REQUIRE(first.has_value());
  CHECK(first->records.empty());
  CHECK_FALSE(first->synchronized);
  for (const record& r : records)
    REQUIRE(store->put(r).has_value());
  store->close();

  auto second = store->open(graph, alice);
  REQUIRE(second.has_value());
  CHECK(sorted(second->records) == sorted(records));
  CHECK_FALSE(second->synchronized);
  REQUIRE(store->mark_synchronized().has_value());
  store->close();

  // Another object on the same file reads the same.
  auto other = make_store(dir.file("records.db"));
  auto third = other->open(graph, alice);
  REQUIRE(third.has_value());
  CHECK(sorted(third->records) == sorted(records));
  CHECK(third->synchronized);
  other->close();
}

TEST_CASE("put replaces the version stored under the id; erase forgets it, and a missing id is not an error")
{
  const temporary_directory dir;
  auto store = make_store(dir.file("records.db"));
  REQUIRE(store->open(graph, alice).has_value());
  record one = sample(1);
  REQUIRE(store->put(one).has_value());
  REQUIRE(store->put(sample(2)).has_value());
  one.version = 2;
  one.attributes = {{"title", std::string("Updated")}};
  REQUIRE(store->put(one).has_value());
  REQUIRE(store->erase(sample(2).id).has_value());
  REQUIRE(store->erase(sample(9).id).has_value());
  store->close();

  auto contents = store->open(graph, alice);
  REQUIRE(contents.has_value());
  CHECK(contents->records == std::vector<record>{one});
  store->close();
}

TEST_CASE("the file of another graph or peer gives invalid_graph and stays its owner's")
{
  const temporary_directory dir;
  store_two(dir.file("records.db"));
  auto store = make_store(dir.file("records.db"));
  CHECK(error_of(store->open(graph_id::make("other").value(), alice)) == peer_errc::invalid_graph);
  CHECK(error_of(store->open(graph, peer_id::make("bob").value())) == peer_errc::invalid_graph);
  auto contents = store->open(graph, alice);
  REQUIRE(contents.has_value());
  CHECK(contents->records.size() == 2);
  store->close();
}

TEST_CASE("a file open in one store gives already_exists to the same store and to another one until closed")
{
  const temporary_directory dir;
  auto store = make_store(dir.file("records.db"));
  auto other = make_store(dir.file("records.db"));
  REQUIRE(store->open(graph, alice).has_value());
  CHECK(error_of(store->open(graph, alice)) == peer_errc::already_exists);
  CHECK(error_of(other->open(graph, alice)) == peer_errc::already_exists);
  // The refused connection, closed, took nothing from the holder: still refused, and the holder still writes.
  CHECK(error_of(other->open(graph, alice)) == peer_errc::already_exists);
  REQUIRE(store->put(sample(1)).has_value());
  store->close();

  auto contents = other->open(graph, alice);
  REQUIRE(contents.has_value());
  CHECK(contents->records == std::vector<record>{sample(1)});
  CHECK(error_of(store->open(graph, alice)) == peer_errc::already_exists);
  other->close();
}

TEST_CASE("a file that is not a store of this schema gives record_store_failed, untouched")
{
  const temporary_directory dir;
  SUBCASE("garbage bytes")
  {
    std::string garbage;
    for (int i = 0; i < 64; ++i)
      garbage += "this is not a SQLite database. ";
    write_file(dir.file("garbage.db"), garbage);
    auto store = make_store(dir.file("garbage.db"));
    const auto opened = store->open(graph, alice);
    REQUIRE_FALSE(opened.has_value());
    CHECK(error_of(opened) == peer_errc::record_store_failed);
    CHECK(opened.error().cause() == std::error_code(SQLITE_NOTADB, peergraph::sqlite_category()));
    CHECK(read_file(dir.file("garbage.db")) == garbage);
  }
  SUBCASE("another application's database")
  {
    execute(dir.file("other.db"), "CREATE TABLE notes (text TEXT)");
    auto store = make_store(dir.file("other.db"));
    CHECK(error_of(store->open(graph, alice)) == peer_errc::record_store_failed);
  }
  SUBCASE("an unknown schema version")
  {
    store_two(dir.file("records.db"));
    execute(dir.file("records.db"), "UPDATE peergraph_store SET schema_version = 2");
    auto store = make_store(dir.file("records.db"));
    CHECK(error_of(store->open(graph, alice)) == peer_errc::record_store_failed);
  }
  SUBCASE("a directory")
  {
    auto store = make_store(dir.file(""));
    CHECK(error_of(store->open(graph, alice)) == peer_errc::record_store_failed);
  }
}

TEST_CASE("an empty file becomes the store of the graph and peer that open it first")
{
  const temporary_directory dir;
  write_file(dir.file("empty.db"), "");
  auto store = make_store(dir.file("empty.db"));
  REQUIRE(store->open(graph, alice).has_value());
  store->close();
  CHECK(error_of(store->open(graph, peer_id::make("bob").value())) == peer_errc::invalid_graph);
}

TEST_CASE("a row that does not decode gives record_store_failed from open, and the store stays closed")
{
  const temporary_directory dir;
  store_two(dir.file("records.db"));
  SUBCASE("garbage payload")
  {
    execute(dir.file("records.db"), "UPDATE peergraph_records SET payload = x'0011223344' WHERE id = (SELECT min(id) "
                                    "FROM peergraph_records)");
  }
  SUBCASE("payload of another id")
  {
    execute(dir.file("records.db"), "UPDATE peergraph_records SET id = zeroblob(16) WHERE id = (SELECT min(id) FROM "
                                    "peergraph_records)");
  }
  SUBCASE("a type that is not 16 bytes")
  {
    execute(dir.file("records.db"), "UPDATE peergraph_records SET type = x'00'");
  }
  auto store = make_store(dir.file("records.db"));
  const auto opened = store->open(graph, alice);
  REQUIRE_FALSE(opened.has_value());
  CHECK(error_of(opened) == peer_errc::record_store_failed);
  CHECK(opened.error().cause() == peer_errc::protocol_error);
  CHECK(error_of(store->put(sample(3))) == peer_errc::not_initialized);
}

TEST_CASE("a store that is not open refuses every write with not_initialized")
{
  const temporary_directory dir;
  auto store = make_store(dir.file("records.db"));
  CHECK(error_of(store->put(sample(1))) == peer_errc::not_initialized);
  REQUIRE(store->open(graph, alice).has_value());
  store->close();
  CHECK(error_of(store->put(sample(1))) == peer_errc::not_initialized);
  CHECK(error_of(store->erase(sample(1).id)) == peer_errc::not_initialized);
  CHECK(error_of(store->mark_synchronized()) == peer_errc::not_initialized);
  store->close(); // closing a closed store does nothing
}

TEST_CASE("put refuses with invalid_record a record that open could not read back")
{
  const temporary_directory dir;
  auto store = make_store(dir.file("records.db"));
  REQUIRE(store->open(graph, alice).has_value());
  record nil_id = sample(1);
  nil_id.id = record_id();
  record nil_type = sample(2);
  nil_type.type = peergraph::data_type();
  record no_creator = sample(3);
  no_creator.creator = peer_id();
  record bad_name = sample(4);
  bad_name.attributes = {{"not a name", std::int64_t{1}}};
  for (const record& r : {nil_id, nil_type, no_creator, bad_name})
    CHECK(error_of(store->put(r)) == peer_errc::invalid_record);
  store->close();
  auto contents = store->open(graph, alice);
  REQUIRE(contents.has_value());
  CHECK(contents->records.empty());
  store->close();
}

TEST_CASE("what put, erase and mark_synchronized wrote before flush survives a crash of the process, which releases "
          "the file")
{
  const temporary_directory dir;
  store_two(dir.file("records.db"));
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child writes and ends without closing anything, as a crash would.
    auto store = sqlite_record_store::make(dir.file("records.db"));
    const bool written = store && (*store)->open(graph, alice) && (*store)->put(sample(3)) &&
                         (*store)->erase(sample(1).id) && (*store)->mark_synchronized() && (*store)->flush();
    _exit(written ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  auto store = make_store(dir.file("records.db"));
  auto contents = store->open(graph, alice);
  REQUIRE(contents.has_value());
  CHECK(sorted(contents->records) == std::vector<record>{sample(2), sample(3)});
  CHECK(contents->synchronized);
  store->close();
}

TEST_CASE("a batch the disk refuses is rolled back, and the store reports the failure from then on")
{
  const temporary_directory dir;
  store_two(dir.file("records.db"));
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // A file size limit makes the write-ahead log's growth fail as a full disk would (EFBIG, not a signal).
    auto store = sqlite_record_store::make(dir.file("records.db"));
    if (!store || !(*store)->open(graph, alice))
      _exit(1);
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{64 * 1024, 64 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0)
      _exit(2);
    record big = sample(3);
    big.data.assign(std::size_t{1} << 20, std::byte{0x42});
    if (!(*store)->put(big) || !(*store)->erase(sample(1).id)) // taken: the writer has not failed yet
      _exit(3);
    const auto flushed = (*store)->flush();
    if (flushed || flushed.error() != peer_errc::record_store_failed)
      _exit(4);
    const auto after = (*store)->put(sample(4));
    if (after || after.error() != peer_errc::record_store_failed || (*store)->flush())
      _exit(5);
    (*store)->close();
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  auto store = make_store(dir.file("records.db"));
  auto contents = store->open(graph, alice);
  REQUIRE(contents.has_value());
  CHECK(sorted(contents->records) == std::vector<record>{sample(1), sample(2)}); // the erase went with the batch
  store->close();
}

TEST_CASE("flush waits for every change made before it; after close it gives not_initialized")
{
  const temporary_directory dir;
  auto store = make_store(dir.file("records.db"));
  REQUIRE(store->open(graph, alice).has_value());
  std::vector<record> written;
  for (std::uint8_t n = 1; n <= 200; ++n) {
    written.push_back(sample(n));
    REQUIRE(store->put(written.back()).has_value());
  }
  REQUIRE(store->flush().has_value());
  // Read through SQLite while the store holds the file: impossible (exclusive), so count through a copy taken now.
  fs::copy_file(dir.file("records.db"), dir.file("copy.db"));
  if (fs::exists(dir.file("records.db-wal")))
    fs::copy_file(dir.file("records.db-wal"), dir.file("copy.db-wal"));
  store->close();
  CHECK(error_of(store->flush()) == peer_errc::not_initialized);
  auto copy = make_store(dir.file("copy.db"));
  auto contents = copy->open(graph, alice);
  REQUIRE(contents.has_value());
  CHECK(sorted(contents->records) == written);
  copy->close();
}

TEST_CASE("make refuses an empty path and takes a relative one from the working directory")
{
  CHECK(error_of(sqlite_record_store::make("")) == peer_errc::invalid_argument);
  auto store = sqlite_record_store::make(":memory:");
  REQUIRE(store.has_value());
  CHECK((*store)->file() == fs::path("./:memory:"));
  CHECK(std::string(peergraph::sqlite_category().name()) == "sqlite");
  CHECK(peergraph::sqlite_category().message(SQLITE_NOTADB) == "file is not a database");
}

CO_TEST_CASE("a graph on a SQLite store restarts with its records and catches up with its neighbor")
{
  temporary_directory dir;
  node a(ctx, peergraph::test::props("alice"));
  const auto where = co_await peergraph::test::listening(a);
  for (int i = 0; i < 20; ++i)
    REQUIRE((co_await a->add_record(peergraph::test::line("before " + std::to_string(i)))).has_value());
  auto with_store = peergraph::test::joining("bob");
  with_store.store = make_store(dir.file("bob.db"));
  {
    node b(ctx, with_store);
    (void)co_await peergraph::test::connect_link(b, a, where);
    CHECK(co_await peergraph::test::synchronized_with(b, "alice"));
    REQUIRE((co_await b->add_record(peergraph::test::line("bob's own"))).has_value());
    REQUIRE((co_await b->close()).has_value());
  }
  REQUIRE((co_await a->add_record(peergraph::test::line("while bob is away"))).has_value());
  // A new process would open the file anew: so does a new store object.
  with_store.store = make_store(dir.file("bob.db"));
  node b(ctx, with_store);
  CHECK(peergraph::has_status((co_await b->status()).value(), peergraph::graph_status::synchronized));
  CHECK((co_await b->records()).value().size() == 21);
  (void)co_await peergraph::test::connect_link(b, a, where);
  CHECK(co_await peergraph::test::synchronized_with(b, "alice"));
  CHECK((co_await b->records()).value().size() == 22);
  CHECK((co_await b->records()).value() == (co_await a->records()).value());
  REQUIRE((co_await b->close()).has_value());
}

TEST_SUITE_END();
