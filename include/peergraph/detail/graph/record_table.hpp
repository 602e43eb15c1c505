//
// peergraph/detail/graph/record_table.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The records a node holds in memory: every record and tombstone by id, with the indexes the record layer works
// with (by type for enumeration, by expiry for the expiry sweep, by last modification for synchronisation) and the
// count of bytes the graph's limits bound. Nothing here decides anything: records.hpp does.
//
#pragma once

#include <peergraph/ids.hpp>
#include <peergraph/record.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

namespace peergraph::detail {

class record_table
{
public:
  /// Where a version sits in the order synchronisation walks: its last modification, then its id.
  using key = std::pair<record_time, record_id>;

  /// The record or tombstone `id`, or null.
  [[nodiscard]] const record* find(const record_id& id) const noexcept
  {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &it->second;
  }

  /// Stores `r`, replacing what was held under its id.
  void put(record r)
  {
    erase(r.id);
    const record_id id = r.id;
    bytes_ += r.size();
    by_expiry_.emplace(r.expires, id);
    by_type_.emplace(r.type, id);
    const record& stored = by_id_.emplace(id, std::move(r)).first->second;
    by_modified_.emplace(key(stored.last_modified, id), &stored);
  }

  /// Forgets the record or tombstone `id`; false when there was none.
  bool erase(const record_id& id)
  {
    auto it = by_id_.find(id);
    if (it == by_id_.end())
      return false;
    const record& r = it->second;
    bytes_ -= r.size();
    by_expiry_.erase({r.expires, id});
    by_type_.erase({r.type, id});
    by_modified_.erase({r.last_modified, id});
    by_id_.erase(it);
    return true;
  }

  /// Records and tombstones held.
  [[nodiscard]] std::size_t count() const noexcept { return by_id_.size(); }
  /// Their bytes, as record::size() counts them.
  [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_; }

  /// Calls `f(record)` for each record and tombstone of `type`, in the order of their ids.
  template <class F>
  void for_each_of_type(const data_type& type, F&& f) const
  {
    for (auto it = by_type_.lower_bound({type, record_id()}); it != by_type_.end() && it->first == type; ++it)
      f(by_id_.at(it->second));
  }

  /// Calls `f(record)` for each record and tombstone, ordered by type, then id.
  template <class F>
  void for_each_by_type(F&& f) const
  {
    for (const auto& [type, id] : by_type_)
      f(by_id_.at(id));
  }

  /// Calls `f(record)` for each record and tombstone, ordered by last modification, then id.
  template <class F>
  void for_each(F&& f) const
  {
    for (const auto& [position, r] : by_modified_)
      f(*r);
  }

  /// Calls `f(record)` for each record and tombstone whose key is past `from` (at it too when `inclusive`) and
  /// before `upper` (to the end when there is none), in key order, while `f` returns true.
  template <class F>
  void for_each_between(const key& from, bool inclusive, const std::optional<key>& upper, F&& f) const
  {
    auto it = inclusive ? by_modified_.lower_bound(from) : by_modified_.upper_bound(from);
    for (; it != by_modified_.end() && (!upper || it->first < *upper); ++it)
      if (!f(*it->second))
        return;
  }

  /// When the next record or tombstone expires.
  [[nodiscard]] std::optional<record_time> next_expiry() const
  {
    if (by_expiry_.empty())
      return std::nullopt;
    return by_expiry_.begin()->first;
  }

  /// The ids of the records and tombstones that expire at or before `now`, earliest first, at most `limit`.
  [[nodiscard]] std::vector<record_id> expired(record_time now, std::size_t limit) const
  {
    std::vector<record_id> ids;
    for (auto it = by_expiry_.begin(); it != by_expiry_.end() && it->first <= now && ids.size() < limit; ++it)
      ids.push_back(it->second);
    return ids;
  }

private:
  std::unordered_map<record_id, record> by_id_;
  std::set<std::pair<record_time, record_id>> by_expiry_;
  std::set<std::pair<data_type, record_id>> by_type_;
  std::map<key, const record*> by_modified_; // into by_id_, whose nodes do not move
  std::uint64_t bytes_ = 0;
};

} // namespace peergraph::detail
