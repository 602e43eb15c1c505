//
// peergraph/record_store.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// Where a node keeps its records between runs (the Peer Graphing database): the record_store interface a graph
// writes every change through, and memory_record_store, which keeps them for the life of the process. The persistent
// store on SQLite is <peergraph/sqlite_record_store.hpp>.
//
// A graph always holds its records in memory as well (its indexes serve search and synchronisation); the store is
// read once when the graph starts and written as the records change, so a node that restarts on the same store comes
// back with its records and, if it had synchronised once, counts as synchronised at once (PeerGraphOpen's S_OK).
//
#pragma once

#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/record.hpp>

#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <utility>
#include <vector>

namespace peergraph {

/// What a record store held when a graph opened it.
struct record_store_contents
{
  std::vector<record> records; ///< every record and tombstone it holds, in no particular order
  bool synchronized = false;   ///< a graph on this store completed a synchronisation with a neighbor once
};

/// Where a graph keeps its records (graph_properties::store). A graph calls it on its executor, one call at a time:
/// open() once when it starts, then put() and erase() as its records change, mark_synchronized() after its first
/// complete synchronisation, and close() when it closes. A store serves one graph at a time.
///
/// Every call reports a failure as a peer_error (record_store_failed unless a better code applies; not_initialized
/// for put(), erase() and mark_synchronized() on a store that is not open). A failed put()
/// or erase() fails the record operation that caused it (add_record, update_record, delete_record), or ends the
/// connection whose record could not be stored; the graph's records in memory are unchanged then.
class record_store
{
public:
  virtual ~record_store() = default;

  /// Opens the store for graph `for_graph` of peer `for_peer` and reads what it holds. A store that holds another
  /// graph's or another peer's records gives invalid_graph; one that another graph holds open gives already_exists.
  virtual expected<record_store_contents, peer_error> open(const graph_id& for_graph, const peer_id& for_peer) = 0;

  /// Stores `version` in place of whatever the store holds under its id.
  virtual expected<void, peer_error> put(const record& version) = 0;

  /// Forgets record `id` (it, or its tombstone, expired). Not an error when there is none.
  virtual expected<void, peer_error> erase(const record_id& id) = 0;

  /// Remembers that the graph completed a synchronisation.
  virtual expected<void, peer_error> mark_synchronized() = 0;

  /// The graph closed: the store may be opened again.
  virtual void close() noexcept = 0;
};

/// A record_store in memory: what a graph stored survives the graph (not the process), so that a node can close and
/// open again on the same store. Thread-safe; serves one graph at a time.
class memory_record_store final : public record_store
{
public:
  expected<record_store_contents, peer_error> open(const graph_id& for_graph, const peer_id& for_peer) override
  {
    const std::lock_guard lock(mutex_);
    if (open_)
      return unexpected(peer_error(peer_errc::already_exists));
    if (owner_ && (owner_->first != for_graph || owner_->second != for_peer))
      return unexpected(peer_error(peer_errc::invalid_graph));
    try {
      record_store_contents contents;
      contents.synchronized = synchronized_;
      contents.records.reserve(records_.size());
      for (const auto& [id, version] : records_)
        contents.records.push_back(version);
      owner_.emplace(for_graph, for_peer);
      open_ = true;
      return contents;
    } catch (const std::bad_alloc&) {
      return unexpected(peer_error(peer_errc::out_of_memory));
    }
  }

  expected<void, peer_error> put(const record& version) override
  {
    const std::lock_guard lock(mutex_);
    if (!open_)
      return unexpected(peer_error(peer_errc::not_initialized));
    try {
      records_.insert_or_assign(version.id, version);
      return {};
    } catch (const std::bad_alloc&) {
      return unexpected(peer_error(peer_errc::out_of_memory));
    }
  }

  expected<void, peer_error> erase(const record_id& id) override
  {
    const std::lock_guard lock(mutex_);
    if (!open_)
      return unexpected(peer_error(peer_errc::not_initialized));
    records_.erase(id);
    return {};
  }

  expected<void, peer_error> mark_synchronized() override
  {
    const std::lock_guard lock(mutex_);
    if (!open_)
      return unexpected(peer_error(peer_errc::not_initialized));
    synchronized_ = true;
    return {};
  }

  void close() noexcept override
  {
    const std::lock_guard lock(mutex_);
    open_ = false;
  }

  /// Records and tombstones held.
  [[nodiscard]] std::size_t size() const
  {
    const std::lock_guard lock(mutex_);
    return records_.size();
  }

private:
  mutable std::mutex mutex_;
  std::map<record_id, record> records_;
  std::optional<std::pair<graph_id, peer_id>> owner_;
  bool synchronized_ = false;
  bool open_ = false;
};

} // namespace peergraph
