//
// peergraph/detail/graph/records.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The record layer's decisions, apart from any I/O: what the application may add, update and delete (and what the
// graph fills in), which version of a record received from a neighbour is kept (peergraph::supersedes), the limits
// on what a node stores, and expiry. Its state is a record_table, written through a record_store when there is one
// (before the table changes, so that a failed write changes nothing); the graph gives it the time.
//
#pragma once

#include <peergraph/detail/graph/record_table.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/record.hpp>
#include <peergraph/record_security.hpp>
#include <peergraph/record_store.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace peergraph::detail {

/// What a node stores at most.
struct record_limits
{
  std::size_t max_record_size;    // record::size() of one record
  std::size_t max_records;        // records and tombstones
  std::uint64_t max_record_bytes; // their record::size() together
};

/// A change a record operation or a received version made, for the record_changed event and for flooding.
struct record_update
{
  record_change change;
  record version;      // the version now held (a tombstone for deleted; the last version for expired)
  bool silent = false; // nothing to report (a tombstone of a record this node never held live), only to flood on
};

class graph_records
{
public:
  /// `store`: where every change is written first; `security`: what secures the versions made here and validates
  /// those received. Null for none.
  graph_records(record_limits limits, peer_id local_peer, record_store* store = nullptr,
                const record_security* security = nullptr)
      : limits_(limits), local_peer_(std::move(local_peer)), store_(store), security_(security)
  {
  }

  /// Takes what a store held when the graph opened it: the versions that are not expired and pass the checks of
  /// apply(); the expired ones are erased from the store. Errors: limit_exceeded (the store holds more than the
  /// limits allow), record_store_failed (a version that fails the checks: the store is not this graph's to trust).
  expected<void, peer_error> load(std::vector<record> versions, record_time now)
  {
    for (record& r : versions) {
      if (r.expires <= now) {
        if (store_ != nullptr)
          (void)store_->erase(r.id); // forgotten either way; a failure leaves it for the next start
        continue;
      }
      if (!check_received(r) || (security_ != nullptr && !security_->validate(r)))
        return unexpected(peer_error(peer_errc::record_store_failed));
      const record* held = table_.find(r.id);
      if (held != nullptr && !supersedes(r, *held))
        continue;
      if (!fits(r, held))
        return unexpected(peer_error(peer_errc::limit_exceeded));
      table_.put(std::move(r));
    }
    return {};
  }

  // ---- the application's operations --------------------------------------------------------------------------

  /// Adds `r` as a new record of this node: the graph makes its id, version 1, creator, and times. Errors:
  /// invalid_argument (nil type, expiry not after `now`), invalid_attributes, max_record_size_exceeded,
  /// limit_exceeded (the store is full).
  expected<record_update, peer_error> add(record r, record_time now)
  {
    r.id = record_id::generate();
    r.version = 1;
    r.creator = local_peer_;
    r.modified_by = local_peer_;
    r.created = now;
    r.last_modified = now;
    r.deleted = false;
    if (auto secured = secure(r); !secured)
      return unexpected(secured.error());
    if (auto checked = check_new_version(r, now, nullptr); !checked)
      return unexpected(checked.error());
    return store(std::move(r), record_change::added);
  }

  /// Replaces the data, attributes and expiry of record `r.id`, one version up. Errors: record_not_found (unknown,
  /// deleted or expired), access_denied (another peer's record), invalid_argument (another type, or an expiry
  /// earlier than the record's or not after `now`), invalid_attributes, max_record_size_exceeded.
  expected<record_update, peer_error> update(record r, record_time now)
  {
    const record* held = live(r.id, now);
    if (held == nullptr)
      return unexpected(peer_error(peer_errc::record_not_found));
    if (held->creator != local_peer_)
      return unexpected(peer_error(peer_errc::access_denied));
    if (r.type != held->type || r.expires < held->expires)
      return unexpected(peer_error(peer_errc::invalid_argument));
    r.version = next_version(*held);
    r.creator = held->creator;
    r.modified_by = local_peer_;
    r.created = held->created;
    r.last_modified = std::max(now, held->last_modified);
    r.deleted = false;
    if (auto secured = secure(r); !secured)
      return unexpected(secured.error());
    if (auto checked = check_new_version(r, now, held); !checked)
      return unexpected(checked.error());
    return store(std::move(r), record_change::updated);
  }

  /// Deletes record `id`: a tombstone (no data, no attributes) replaces it until its expiry, so that no older copy
  /// comes back. Errors: record_not_found, access_denied (another peer's record).
  expected<record_update, peer_error> remove(const record_id& id, record_time now)
  {
    const record* held = live(id, now);
    if (held == nullptr)
      return unexpected(peer_error(peer_errc::record_not_found));
    if (held->creator != local_peer_)
      return unexpected(peer_error(peer_errc::access_denied));
    if (held->version == max_version)
      return unexpected(peer_error(peer_errc::limit_exceeded));
    record tombstone = tombstone_of(*held);
    tombstone.version = held->version + 1;
    tombstone.modified_by = local_peer_;
    tombstone.last_modified = std::max(now, held->last_modified);
    if (auto secured = secure(tombstone); !secured)
      return unexpected(secured.error());
    if (tombstone.size() > limits_.max_record_size)
      return unexpected(peer_error(peer_errc::max_record_size_exceeded));
    return store(std::move(tombstone), record_change::deleted);
  }

  /// Record `id`, unless it is unknown, deleted or expired (record_not_found).
  [[nodiscard]] expected<record, peer_error> get(const record_id& id, record_time now) const
  {
    const record* held = live(id, now);
    if (held == nullptr)
      return unexpected(peer_error(peer_errc::record_not_found));
    return *held;
  }

  /// The live records, of `type` when given, ordered by type then id.
  [[nodiscard]] std::vector<record> of_type(const std::optional<data_type>& type, record_time now) const
  {
    return select(type, now, [](const record&) { return true; });
  }

  /// The live records `query` matches, ordered by type then id; invalid_search for a malformed query.
  [[nodiscard]] expected<std::vector<record>, peer_error> search(const record_query& query, record_time now) const
  {
    if (auto valid = query.validate(); !valid)
      return unexpected(valid.error());
    return select(std::nullopt, now, [&](const record& r) { return query.matches(r); });
  }

  // ---- versions from neighbours --------------------------------------------------------------------------------

  /// A version of a record received from a neighbour: kept when it supersedes what is held (or nothing is held),
  /// the change it makes returned for the event (unless silent) and for flooding; nothing when it is old news (already
  /// held or superseded, or expired: an expired version never comes back). Errors, after which nothing changed:
  /// invalid_record (malformed: nil id or type, version 0, no creator, a version made by another peer than its
  /// creator, a creator that differs from the held version's, a tombstone with data), invalid_attributes,
  /// max_record_size_exceeded, limit_exceeded (the store is full).
  expected<std::optional<record_update>, peer_error> apply(record r, record_time now)
  {
    if (auto valid = check_received(r); !valid)
      return unexpected(valid.error());
    const record* held = table_.find(r.id);
    if (held != nullptr && (held->creator != r.creator || held->type != r.type))
      return unexpected(peer_error(peer_errc::invalid_record)); // a version that claims another's record
    if (r.expires <= now || (held != nullptr && !supersedes(r, *held)))
      return std::optional<record_update>();
    if (security_ != nullptr)
      if (auto genuine = security_->validate(r); !genuine)
        return unexpected(genuine.error()); // judged only when it would be kept: old news costs no check
    const bool was_live = held != nullptr && !held->deleted && held->expires > now;
    if (!fits(r, held))
      return unexpected(peer_error(peer_errc::limit_exceeded));
    const record_change change = r.deleted  ? record_change::deleted
                                 : was_live ? record_change::updated
                                            : record_change::added;
    auto stored = store(std::move(r), change);
    if (!stored)
      return unexpected(stored.error());
    record_update update = std::move(*stored);
    // A tombstone of what this node never held live is kept and flooded on (it blocks older copies everywhere), but
    // there is nothing to report here.
    update.silent = update.version.deleted && !was_live;
    return std::optional<record_update>(std::move(update));
  }

  // ---- expiry ---------------------------------------------------------------------------------------------------

  /// When the next record or tombstone expires, for the graph's expiry timer.
  [[nodiscard]] std::optional<record_time> next_expiry() const { return table_.next_expiry(); }

  /// Forgets what expired by `now` (at most `limit` of them): the records that expired (tombstones go silently).
  std::vector<record_update> expire(record_time now, std::size_t limit)
  {
    std::vector<record_update> gone;
    for (const record_id& id : table_.expired(now, limit)) {
      const record* held = table_.find(id);
      if (!held->deleted)
        gone.push_back({record_change::expired, *held});
      if (store_ != nullptr)
        (void)store_->erase(id); // forgotten here either way; a version left in the store expires at the next start
      table_.erase(id);
    }
    return gone;
  }

  [[nodiscard]] const record_table& table() const noexcept { return table_; }

private:
  static constexpr std::uint32_t max_version = 0xFFFF'FFFFu;

  /// The record `id` when it is live (held, not deleted, not expired).
  [[nodiscard]] const record* live(const record_id& id, record_time now) const noexcept
  {
    const record* held = table_.find(id);
    return held == nullptr || held->deleted || held->expires <= now ? nullptr : held;
  }

  static std::uint32_t next_version(const record& held) noexcept
  {
    return held.version == max_version ? max_version : held.version + 1;
  }

  /// Lets the record security fill in the security data of a version made here.
  [[nodiscard]] expected<void, peer_error> secure(record& version) const
  {
    if (security_ == nullptr)
      return {};
    return security_->secure(version);
  }

  /// Copies of the live records (of `type` when given) that `keep` keeps, ordered by type then id: only what is
  /// kept is copied.
  template <class Keep>
  [[nodiscard]] std::vector<record> select(const std::optional<data_type>& type, record_time now, Keep&& keep) const
  {
    std::vector<record> found;
    const auto take = [&](const record& r) {
      if (!r.deleted && r.expires > now && keep(r))
        found.push_back(r);
    };
    if (type)
      table_.for_each_of_type(*type, take);
    else
      table_.for_each_by_type(take);
    return found;
  }

  /// The checks of a version from elsewhere (a neighbor, a store) that need nothing held.
  expected<void, peer_error> check_received(const record& r) const
  {
    if (r.id.is_nil() || r.type.is_nil() || r.version == 0 || r.creator.empty() || r.modified_by != r.creator ||
        (r.deleted && (!r.data.empty() || !r.attributes.empty())))
      return unexpected(peer_error(peer_errc::invalid_record));
    if (auto valid = validate_attributes(r.attributes); !valid)
      return valid;
    if (r.size() > limits_.max_record_size)
      return unexpected(peer_error(peer_errc::max_record_size_exceeded));
    return {};
  }

  /// The checks a version made here passes before it is stored.
  expected<void, peer_error> check_new_version(const record& r, record_time now, const record* held) const
  {
    if (r.type.is_nil() || r.expires <= now)
      return unexpected(peer_error(peer_errc::invalid_argument));
    if (held != nullptr && held->version == max_version)
      return unexpected(peer_error(peer_errc::limit_exceeded));
    if (auto valid = validate_attributes(r.attributes); !valid)
      return valid;
    if (r.size() > limits_.max_record_size)
      return unexpected(peer_error(peer_errc::max_record_size_exceeded));
    if (!fits(r, held))
      return unexpected(peer_error(peer_errc::limit_exceeded));
    return {};
  }

  /// Whether the store has room for `r` in place of `held`.
  [[nodiscard]] bool fits(const record& r, const record* held) const noexcept
  {
    const std::size_t count = table_.count() + (held == nullptr ? 1 : 0);
    const std::uint64_t bytes = table_.bytes() - (held == nullptr ? 0 : held->size()) + r.size();
    return count <= limits_.max_records && bytes <= limits_.max_record_bytes;
  }

  static record tombstone_of(const record& r)
  {
    record tombstone;
    tombstone.id = r.id;
    tombstone.type = r.type;
    tombstone.creator = r.creator;
    tombstone.created = r.created;
    tombstone.expires = r.expires;
    tombstone.deleted = true;
    return tombstone;
  }

  /// Keeps `r`: written through the store first, so that a failed write changes nothing.
  expected<record_update, peer_error> store(record r, record_change change)
  {
    if (store_ != nullptr)
      if (auto written = store_->put(r); !written)
        return unexpected(written.error());
    record_update update{change, r};
    table_.put(std::move(r));
    return update;
  }

  record_limits limits_;
  peer_id local_peer_;
  record_store* store_;
  const record_security* security_;
  record_table table_;
};

} // namespace peergraph::detail
