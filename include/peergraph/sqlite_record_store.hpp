//
// peergraph/sqlite_record_store.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// sqlite_record_store: a record_store in a SQLite database file, so that a node's records survive its process. A
// record is kept as its record payload (docs/wire.md, "Record payload") and its type, the encoding the graph speaks
// already: the file holds no second serialisation of a record.
//
// The one peergraph header that needs SQLite: a program that includes it links libsqlite3 (pkg-config sqlite3;
// Debian: libsqlite3-dev). It is not part of <peergraph.hpp> for that reason.
//
#pragma once

#include <peergraph/detail/graph/record_codec.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/record.hpp>
#include <peergraph/record_store.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace peergraph {

namespace detail {

/// The category behind sqlite_category().
class sqlite_category_impl final : public std::error_category
{
public:
  const char* name() const noexcept override { return "sqlite"; }
  std::string message(int value) const override { return sqlite3_errstr(value); }
};

} // namespace detail

/// The category of SQLite's (extended) result codes: the cause() of a record_store_failed that SQLite reported, e.g.
/// SQLITE_NOTADB (26) for a file that is not a database.
inline const std::error_category& sqlite_category() noexcept
{
  static const detail::sqlite_category_impl instance;
  return instance;
}

/// A record_store in a SQLite database file: what a graph stored survives the process, so that a node that restarts
/// on the same file comes back with its records.
///
/// The file holds two tables: `peergraph_store`, one row with the schema version (schema_version), the owner's graph
/// and peer ids and the synchronized flag; and `peergraph_records`, one row per record or tombstone, keyed by the
/// record's id (16 bytes), with its type (16 bytes) and its payload as detail::encode_record_payload makes it.
///
/// While open, the store holds the file with SQLite's exclusive locking mode: a second open of the file, by this
/// process or another, gives already_exists until close(), and no other program reads a half-written store.
///
/// The graph's executor never waits for the disk: put(), erase() and mark_synchronized() check and encode the change
/// and hand it to the store's writer thread, which writes whatever has gathered since its last write as one
/// transaction (a batch) to a write-ahead log with synchronous=NORMAL, and checkpoints the log into the file. A change
/// is thus in the file system one batch after its call returned (a fraction of a millisecond on an idle store, one
/// transaction's time under load), survives a crash of the application from then on, and may be lost to a power
/// failure or an operating system crash, which leaves the file consistent. flush() waits until every change made
/// before it is written, and close() does so before it closes. At most max_pending_bytes of changes wait for the
/// writer; a call that would go beyond waits for the writer's current batch (the only wait the graph can meet, when
/// it changes records faster than the disk takes them). A batch that fails is rolled back as a whole and the store
/// keeps the failure: every later put(), erase(), mark_synchronized() and flush() returns it, so the graph's next
/// change fails instead of going unstored. Thread-safe; serves one graph at a time.
///
/// @code
/// auto store = peergraph::sqlite_record_store::make("/var/lib/app/records.db");
/// if (!store) return store.error();
/// properties.store = *store;
/// @endcode
class sqlite_record_store final : public record_store
{
  struct private_tag
  {
  };

public:
  /// The version of the file's schema that this header reads and writes.
  static constexpr int schema_version = 1;

  /// The most bytes of changes (record payloads) that wait for the writer thread.
  static constexpr std::size_t max_pending_bytes = 32 * 1024 * 1024;

  /// Makes a store on the database file `file` without touching it: open() creates the file or opens it. A relative
  /// path is taken from the working directory at open(); no name is special to SQLite (":memory:" is a file).
  /// @param file The database file.
  /// @return the store, or invalid_argument when `file` is empty, or out_of_memory.
  [[nodiscard]] static expected<std::shared_ptr<sqlite_record_store>, peer_error> make(std::filesystem::path file)
  {
    if (file.empty())
      return unexpected(peer_error(peer_errc::invalid_argument));
    try {
      if (file.is_relative())
        file = std::filesystem::path(".") / file; // SQLite takes ":memory:" alone as a database in memory
      return std::make_shared<sqlite_record_store>(private_tag{}, std::move(file));
    } catch (const std::bad_alloc&) {
      return unexpected(peer_error(peer_errc::out_of_memory));
    }
  }

  /// Use make().
  sqlite_record_store(private_tag, std::filesystem::path file) noexcept : file_(std::move(file)) {}
  sqlite_record_store(const sqlite_record_store&) = delete;
  sqlite_record_store& operator=(const sqlite_record_store&) = delete;
  ~sqlite_record_store() override { close(); }

  /// The database file.
  [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }

  /// Opens the file for graph `for_graph` of peer `for_peer`, creating it when it is missing, and reads every record
  /// it holds. A new or empty file becomes the store of that graph and peer.
  /// @param for_graph The graph's id.
  /// @param for_peer This node's peer id.
  /// @return what the store holds, or: already_exists when this store is open or another connection (of this process
  /// or another) holds the file; invalid_graph when the file is the store of another graph or peer;
  /// record_store_failed when the file cannot be opened or created, is not a SQLite database, is a database without
  /// this store's tables or of another schema version, or holds a row that does not decode as a record (its cause()
  /// is then protocol_error, and SQLite's result code in sqlite_category() when SQLite failed); out_of_memory. On an
  /// error the file is released and the store stays closed.
  expected<record_store_contents, peer_error> open(const graph_id& for_graph, const peer_id& for_peer) override
  {
    const std::lock_guard lock(mutex_);
    if (db_)
      return unexpected(peer_error(peer_errc::already_exists));
    expected<record_store_contents, peer_error> contents = unexpected(peer_error(peer_errc::out_of_memory));
    try {
      contents = open_file(for_graph, for_peer);
      if (contents) {
        failed_.reset();
        stopping_ = false;
        writer_ = std::thread([this] { write_changes(); });
      }
    } catch (const std::bad_alloc&) {
      contents = unexpected(peer_error(peer_errc::out_of_memory));
    } catch (const std::system_error& e) { // no thread for the writer
      contents = unexpected(peer_error(peer_errc::record_store_failed, e.code()));
    }
    if (!contents)
      release();
    return contents;
  }

  /// Stores `version` in place of the record or tombstone the store holds under its id (written by the writer
  /// thread: see the class).
  /// @param version The version to store.
  /// @return nothing, or: not_initialized when the store is not open; invalid_record when `version` could not be
  /// read back (a nil id or type, no creator or modifier, an attribute name or value the record payload cannot
  /// hold); record_store_failed when an earlier batch failed (the cause() in sqlite_category() when SQLite failed);
  /// out_of_memory.
  expected<void, peer_error> put(const record& version) override
  {
    // A row that open() could not decode would make the whole store unreadable: refuse it here instead.
    if (version.id.is_nil() || version.type.is_nil() || version.creator.empty() || version.modified_by.empty() ||
        !std::all_of(version.attributes.begin(), version.attributes.end(),
                     [](const record_attribute& a) { return valid_attribute_name(a.name); }))
      return unexpected(peer_error(peer_errc::invalid_record));
    try {
      change next{change_kind::put, version.id.guid(), version.type, {}};
      if (auto encoded = detail::encode_record_payload(version, next.payload); !encoded)
        return encoded;
      return enqueue(std::move(next));
    } catch (const std::bad_alloc&) {
      return unexpected(peer_error(peer_errc::out_of_memory));
    }
  }

  /// Forgets record `id` (it, or its tombstone, expired), written by the writer thread (see the class). Not an
  /// error when there is none.
  /// @param id The record's id.
  /// @return nothing, or: not_initialized when the store is not open; record_store_failed when an earlier batch
  /// failed; out_of_memory.
  expected<void, peer_error> erase(const record_id& id) override
  {
    try {
      return enqueue(change{change_kind::erase, id.guid(), {}, {}});
    } catch (const std::bad_alloc&) {
      return unexpected(peer_error(peer_errc::out_of_memory));
    }
  }

  /// Remembers that the graph completed a synchronisation (written by the writer thread: see the class): open()
  /// reports it from now on.
  /// @return nothing, or: not_initialized when the store is not open; record_store_failed when an earlier batch
  /// failed; out_of_memory.
  expected<void, peer_error> mark_synchronized() override
  {
    try {
      return enqueue(change{change_kind::mark_synchronized, {}, {}, {}});
    } catch (const std::bad_alloc&) {
      return unexpected(peer_error(peer_errc::out_of_memory));
    }
  }

  /// Waits until every change made before the call is in the file (see the class). Blocks the calling thread: call
  /// it where waiting for the disk is acceptable (before a planned exit, in a test), not on a graph's executor.
  /// @return nothing, or: not_initialized when the store is not open; record_store_failed when a batch failed (the
  /// cause() in sqlite_category() when SQLite failed).
  expected<void, peer_error> flush()
  {
    std::unique_lock lock(mutex_);
    if (!db_)
      return unexpected(peer_error(peer_errc::not_initialized));
    const std::uint64_t target = queued_;
    written_.wait(lock, [&] { return written_upto_ >= target; });
    if (failed_)
      return unexpected(*failed_);
    return {};
  }

  /// Writes what is pending (as flush()), closes the file and releases its lock: the store (or another one on the
  /// same file) may be opened again. Does nothing when the store is not open.
  void close() noexcept override
  {
    std::unique_lock lock(mutex_);
    if (!db_)
      return;
    stopping_ = true;
    wake_writer_.notify_one();
    lock.unlock();
    if (writer_.joinable())
      writer_.join(); // the writer empties the queue before it stops
    lock.lock();
    release();
  }

private:
  struct database_closer
  {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
  };
  struct statement_finalizer
  {
    void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
  };
  using statement = std::unique_ptr<sqlite3_stmt, statement_finalizer>;

  static constexpr int guid_size = static_cast<int>(data_type::byte_size);

  /// SQLite's failure `rc`, kept as the cause of a record_store_failed.
  static peer_error failure(int rc) noexcept
  {
    return peer_error(peer_errc::record_store_failed, std::error_code(rc, sqlite_category()));
  }

  /// A failure to take the file: busy means that another connection holds it.
  static peer_error lock_failure(int rc) noexcept
  {
    const int primary = rc & 0xFF;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
      return peer_error(peer_errc::already_exists, std::error_code(rc, sqlite_category()));
    return failure(rc);
  }

  /// A row that does not decode.
  static peer_error corrupt() noexcept
  {
    return peer_error(peer_errc::record_store_failed, make_error_code(peer_errc::protocol_error));
  }

  static int bind_guid(sqlite3_stmt* s, int index, const data_type& guid) noexcept
  {
    return sqlite3_bind_blob(s, index, guid.bytes().data(), guid_size, SQLITE_STATIC);
  }

  /// Column `index` of the current row as bytes (empty for NULL).
  static std::span<const std::byte> column_bytes(sqlite3_stmt* s, int index) noexcept
  {
    const void* bytes = sqlite3_column_blob(s, index); // before sqlite3_column_bytes, as SQLite asks
    const int size = sqlite3_column_bytes(s, index);
    if (bytes == nullptr || size <= 0)
      return {};
    return {static_cast<const std::byte*>(bytes), static_cast<std::size_t>(size)};
  }

  /// Runs the kept statement `s` once when its parameters bound (`rc`), then makes it ready for the next run.
  static expected<void, peer_error> run(sqlite3_stmt* s, int rc) noexcept
  {
    if (rc == SQLITE_OK)
      rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s); // the bound bytes were the caller's
    if (rc != SQLITE_DONE)
      return unexpected(failure(rc));
    return {};
  }

  expected<statement, peer_error> prepare(std::string_view sql) noexcept
  {
    sqlite3_stmt* s = nullptr;
    const int rc =
        sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    statement kept(s);
    if (rc != SQLITE_OK)
      return unexpected(failure(rc));
    return kept;
  }

  expected<record_store_contents, peer_error> open_file(const graph_id& for_graph, const peer_id& for_peer)
  {
    sqlite3* db = nullptr;
    int rc =
        sqlite3_open_v2(file_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    db_.reset(db); // SQLite gives a handle to close even when it fails
    if (rc != SQLITE_OK)
      return unexpected(failure(rc));
    sqlite3_extended_result_codes(db, 1);
    // Exclusive locking before the write-ahead log: the connection keeps the file's lock from its first access
    // until it closes, and the log's index lives in its memory, shared with no one. trusted_schema=OFF: a file from
    // elsewhere cannot make SQL functions run through its triggers or views.
    rc = sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE; PRAGMA trusted_schema=OFF", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK)
      return unexpected(failure(rc));
    bool wal = false;
    const auto is_wal = [](void* out, int columns, char** values, char**) {
      *static_cast<bool*>(out) = columns == 1 && values[0] != nullptr && std::string_view(values[0]) == "wal";
      return 0;
    };
    rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", is_wal, &wal, nullptr); // reads the file first: busy, not a db
    if (rc == SQLITE_OK && !wal)
      rc = SQLITE_CANTOPEN; // a file system without the log would weaken what put() promises
    if (rc == SQLITE_OK)
      rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL; BEGIN EXCLUSIVE", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK)
      return unexpected(lock_failure(rc));

    auto contents = read_or_create(for_graph, for_peer);
    if (!contents)
      return contents;
    auto kept_put = prepare("INSERT OR REPLACE INTO peergraph_records (id, type, payload) VALUES (?1, ?2, ?3)");
    auto kept_erase = prepare("DELETE FROM peergraph_records WHERE id = ?1");
    auto kept_mark = prepare("UPDATE peergraph_store SET synchronized = 1");
    if (!kept_put || !kept_erase || !kept_mark)
      return unexpected(!kept_put ? kept_put.error() : !kept_erase ? kept_erase.error() : kept_mark.error());
    if (rc = sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr); rc != SQLITE_OK)
      return unexpected(failure(rc));
    put_ = std::move(*kept_put);
    erase_ = std::move(*kept_erase);
    mark_synchronized_ = std::move(*kept_mark);
    return contents;
  }

  /// Inside open()'s transaction: makes an empty file this graph's and peer's store, or checks that the file is one
  /// and reads it.
  expected<record_store_contents, peer_error> read_or_create(const graph_id& for_graph, const peer_id& for_peer)
  {
    auto objects = prepare("SELECT count(*) FROM sqlite_master");
    if (!objects)
      return unexpected(objects.error());
    int rc = sqlite3_step(objects->get());
    if (rc != SQLITE_ROW)
      return unexpected(failure(rc));
    if (sqlite3_column_int64(objects->get(), 0) == 0) {
      rc = sqlite3_exec(db_.get(),
                        "CREATE TABLE peergraph_store (singleton INTEGER PRIMARY KEY CHECK (singleton = 1), "
                        "schema_version INTEGER NOT NULL, graph TEXT NOT NULL, peer TEXT NOT NULL, "
                        "synchronized INTEGER NOT NULL);"
                        "CREATE TABLE peergraph_records (id BLOB PRIMARY KEY NOT NULL, type BLOB NOT NULL, "
                        "payload BLOB NOT NULL)",
                        nullptr, nullptr, nullptr);
      if (rc != SQLITE_OK)
        return unexpected(failure(rc));
      auto owner = prepare("INSERT INTO peergraph_store VALUES (1, ?1, ?2, ?3, 0)");
      if (!owner)
        return unexpected(owner.error());
      sqlite3_stmt* s = owner->get();
      rc = sqlite3_bind_int(s, 1, schema_version);
      if (rc == SQLITE_OK)
        rc = sqlite3_bind_text64(s, 2, for_graph.str().data(), for_graph.str().size(), SQLITE_STATIC, SQLITE_UTF8);
      if (rc == SQLITE_OK)
        rc = sqlite3_bind_text64(s, 3, for_peer.str().data(), for_peer.str().size(), SQLITE_STATIC, SQLITE_UTF8);
      if (auto stored = run(s, rc); !stored)
        return unexpected(stored.error());
      return record_store_contents{};
    }

    // A table or column missing fails to prepare: another application's database, or another schema.
    auto store = prepare("SELECT schema_version, graph, peer, synchronized FROM peergraph_store");
    if (!store)
      return unexpected(store.error());
    sqlite3_stmt* s = store->get();
    if (rc = sqlite3_step(s); rc != SQLITE_ROW)
      return unexpected(rc == SQLITE_DONE ? peer_error(peer_errc::record_store_failed) : failure(rc));
    if (sqlite3_column_int64(s, 0) != schema_version)
      return unexpected(peer_error(peer_errc::record_store_failed));
    const auto text = [&](int index) {
      const auto bytes = column_bytes(s, index);
      return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    };
    if (text(1) != for_graph.view() || text(2) != for_peer.view())
      return unexpected(peer_error(peer_errc::invalid_graph));
    record_store_contents contents;
    contents.synchronized = sqlite3_column_int64(s, 3) != 0;

    auto rows = prepare("SELECT id, type, payload FROM peergraph_records");
    if (!rows)
      return unexpected(rows.error());
    s = rows->get();
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const auto id = column_bytes(s, 0);
      const auto type = column_bytes(s, 1);
      if (id.size() != data_type::byte_size || type.size() != data_type::byte_size)
        return unexpected(corrupt());
      const auto record_type = data_type::from_bytes(type.first<data_type::byte_size>());
      auto version = detail::decode_record_payload(record_type, column_bytes(s, 2));
      // The key must be the id the payload names, or put() and erase() would miss the row.
      if (!version || record_type.is_nil() ||
          version->id.guid() != data_type::from_bytes(id.first<data_type::byte_size>()))
        return unexpected(corrupt());
      contents.records.push_back(std::move(*version));
    }
    if (rc != SQLITE_DONE)
      return unexpected(failure(rc));
    return contents;
  }

  enum class change_kind : std::uint8_t
  {
    put,
    erase,
    mark_synchronized
  };

  /// A change waiting for the writer thread.
  struct change
  {
    change_kind kind;
    data_type id;
    data_type type;
    std::vector<std::byte> payload; // put: the record payload
  };

  /// Hands `next` to the writer thread, after waiting while max_pending_bytes wait already.
  expected<void, peer_error> enqueue(change next)
  {
    std::unique_lock lock(mutex_);
    if (!db_)
      return unexpected(peer_error(peer_errc::not_initialized));
    written_.wait(lock, [&] {
      return failed_ || pending_bytes_ == 0 || pending_bytes_ + next.payload.size() <= max_pending_bytes;
    });
    if (failed_)
      return unexpected(*failed_);
    pending_.push_back(std::move(next));
    pending_bytes_ += pending_.back().payload.size();
    ++queued_;
    wake_writer_.notify_one();
    return {};
  }

  /// The writer thread: writes what gathered as one transaction, until close() asks it to stop and nothing is left.
  void write_changes() noexcept
  {
    std::vector<change> batch;
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_writer_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
      if (pending_.empty())
        return; // stopping, and everything is written
      batch.swap(pending_);
      pending_bytes_ = 0;
      const std::uint64_t upto = queued_;
      const bool write = !failed_;
      lock.unlock();
      written_.notify_all(); // callers waiting for room
      std::optional<peer_error> failure;
      if (write)
        failure = write_batch(batch);
      batch.clear();
      lock.lock();
      if (failure && !failed_)
        failed_ = failure;
      written_upto_ = upto;
      written_.notify_all();
    }
  }

  /// Writes `batch` as one transaction; on a failure rolls it back and gives the failure.
  std::optional<peer_error> write_batch(const std::vector<change>& batch) noexcept
  {
    int rc = sqlite3_exec(db_.get(), "BEGIN", nullptr, nullptr, nullptr);
    for (auto it = batch.begin(); rc == SQLITE_OK && it != batch.end(); ++it) {
      expected<void, peer_error> done;
      switch (it->kind) {
      case change_kind::put: {
        sqlite3_stmt* s = put_.get();
        int bound = bind_guid(s, 1, it->id);
        if (bound == SQLITE_OK)
          bound = bind_guid(s, 2, it->type);
        if (bound == SQLITE_OK)
          bound = sqlite3_bind_blob64(s, 3, it->payload.data(), it->payload.size(), SQLITE_STATIC);
        done = run(s, bound);
        break;
      }
      case change_kind::erase:
        done = run(erase_.get(), bind_guid(erase_.get(), 1, it->id));
        break;
      case change_kind::mark_synchronized:
        done = run(mark_synchronized_.get(), SQLITE_OK);
        break;
      }
      if (!done) {
        sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
        return done.error();
      }
    }
    if (rc == SQLITE_OK)
      rc = sqlite3_exec(db_.get(), "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      return failure(rc);
    }
    return std::nullopt;
  }

  /// Finalizes the kept statements, then closes the connection, which releases the file's lock (and rolls back an
  /// open() that failed half-way).
  void release() noexcept
  {
    put_.reset();
    erase_.reset();
    mark_synchronized_.reset();
    db_.reset();
  }

  std::filesystem::path file_;
  std::mutex mutex_; // guards everything below but the connection and its statements, which the writer uses
  std::condition_variable wake_writer_;
  std::condition_variable written_; // a batch was taken or written
  std::vector<change> pending_;
  std::size_t pending_bytes_ = 0;
  std::uint64_t queued_ = 0;       // changes handed to the writer since the store was made
  std::uint64_t written_upto_ = 0; // of which the writer wrote (or, after a failure, dropped) this many
  std::optional<peer_error> failed_;
  bool stopping_ = false;
  std::thread writer_;
  std::unique_ptr<sqlite3, database_closer> db_;
  statement put_;
  statement erase_;
  statement mark_synchronized_;
};

} // namespace peergraph
