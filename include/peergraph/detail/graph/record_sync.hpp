//
// peergraph/detail/graph/record_sync.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Range-based set reconciliation of two nodes' records (docs/wire.md, "Sync payload"), apart from any I/O. Both
// sides order their versions by (last modified, id) and compare fingerprints of ranges of that order; a range whose
// fingerprints differ is split into smaller ones, and a small range is answered with its items, after which each side
// knows which versions the other lacks. What is exchanged follows the difference, not the size of the sets.
//
// The messages' codec and the reconciler are here; the record layer carries the messages and the records.
//
#pragma once

#include <peergraph/detail/graph/record_table.hpp>
#include <peergraph/detail/siphash.hpp>
#include <peergraph/detail/wire_format.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/record.hpp>
#include <peergraph/wire.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

namespace peergraph::detail {

using sync_key = record_table::key;

/// The first key of the order.
inline const sync_key sync_key_min{record_time::min(), record_id()};

/// One version as the other side sees it in an item list.
struct sync_item
{
  sync_key key;
  std::uint32_t version = 0;
  bool deleted = false;

  /// The parts by which a newer version is told from an older one without its contents (peergraph::supersedes's
  /// first three).
  [[nodiscard]] auto rank() const noexcept { return std::tie(version, deleted, key.first); }
  friend bool operator==(const sync_item&, const sync_item&) = default;
};

/// A range's fingerprint: how many versions it holds and the sums of their two keyed hashes.
struct sync_fingerprint
{
  std::uint32_t count = 0;
  std::uint64_t low = 0;
  std::uint64_t high = 0;
  friend bool operator==(const sync_fingerprint&, const sync_fingerprint&) = default;
};

/// What a message says of one range.
enum class sync_mode : std::uint8_t
{
  skip = 0,        ///< nothing (done, or not this side's to answer)
  fingerprint = 1, ///< its fingerprint
  items = 2,       ///< every version in it
};

/// A range of the order, from the end of the previous one (or the start) to `upper`, exclusive.
struct sync_range
{
  std::optional<sync_key> upper; ///< none: to the end of the order (the last range of a message)
  sync_mode mode = sync_mode::skip;
  sync_fingerprint fingerprint; ///< mode fingerprint
  std::vector<sync_item> items; ///< mode items, in key order
};

/// Which message of a synchronisation.
enum class sync_step : std::uint8_t
{
  begin = 1,     ///< the connecting side's first message: the hash key, and its first ranges
  reconcile = 2, ///< a round: the versions the sender wants, and its answer for every range
  done = 3,      ///< the sender has nothing open and wants nothing: the synchronisation is complete
  clock = 4,     ///< each side's first message: its peer time, which a node that joins adopts
};

inline constexpr std::size_t sync_hash_key_size = 32;
/// Most versions one item list holds (this implementation sends at most sync_item_threshold).
inline constexpr std::size_t max_sync_items = 256;
/// Most record ids one message may want.
inline constexpr std::size_t max_sync_wants = 8192;

struct sync_message
{
  sync_step step = sync_step::reconcile;
  record_time clock{};                                  ///< clock only: the sender's peer time
  std::array<std::byte, sync_hash_key_size> hash_key{}; ///< begin only
  std::vector<record_id> wants;                         ///< begin and reconcile
  std::vector<sync_range> ranges;                       ///< begin and reconcile: the whole order, in key order
};

namespace sync_wire {
inline constexpr std::size_t fixed = 4;               // step, reserved
inline constexpr std::size_t key = 8 + 16;            // time, id
inline constexpr std::size_t item = key + 4 + 1;      // key, version, flags
inline constexpr std::size_t fingerprint = 4 + 8 + 8; // count, sums
inline constexpr std::size_t range_head = 2;          // mode, flags
inline constexpr std::uint8_t range_last = 0x01;      // range flags: no upper key follows
inline constexpr std::uint8_t item_deleted = 0x01;    // item flags: a tombstone
} // namespace sync_wire

/// The payload of the sync frame carrying `m`, appended to `out`.
inline void encode_sync_message(const sync_message& m, std::vector<std::byte>& out)
{
  const auto put = [&](auto value) {
    const std::size_t at = out.size();
    out.resize(at + sizeof(value));
    wire::detail::store_le(std::span<std::byte>(out), at, value);
  };
  const auto put_key = [&](const sync_key& k) {
    put(static_cast<std::uint64_t>(k.first.time_since_epoch().count()));
    const auto id = k.second.guid().bytes();
    out.insert(out.end(), id.begin(), id.end());
  };
  put(static_cast<std::uint8_t>(m.step));
  put(std::uint8_t{0});
  put(std::uint16_t{0});
  if (m.step == sync_step::clock)
    put(static_cast<std::uint64_t>(m.clock.time_since_epoch().count()));
  if (m.step == sync_step::done || m.step == sync_step::clock)
    return;
  if (m.step == sync_step::begin)
    out.insert(out.end(), m.hash_key.begin(), m.hash_key.end());
  put(static_cast<std::uint32_t>(m.wants.size()));
  for (const record_id& id : m.wants)
    out.insert(out.end(), id.guid().bytes().begin(), id.guid().bytes().end());
  put(static_cast<std::uint32_t>(m.ranges.size()));
  for (const sync_range& r : m.ranges) {
    put(static_cast<std::uint8_t>(r.mode));
    put(static_cast<std::uint8_t>(r.upper ? 0 : sync_wire::range_last));
    if (r.upper)
      put_key(*r.upper);
    if (r.mode == sync_mode::fingerprint) {
      put(r.fingerprint.count);
      put(r.fingerprint.low);
      put(r.fingerprint.high);
    } else if (r.mode == sync_mode::items) {
      put(static_cast<std::uint16_t>(r.items.size()));
      for (const sync_item& item : r.items) {
        put_key(item.key);
        put(item.version);
        put(static_cast<std::uint8_t>(item.deleted ? sync_wire::item_deleted : 0));
      }
    }
  }
}

/// The message of a sync frame's payload, or protocol_error when it breaks any rule of docs/wire.md: an unknown
/// step or mode, reserved bits set, counts over their bounds, ranges that are not in strictly increasing order or
/// do not end with the one range that runs to the end, items outside their range or out of order, bytes left over.
inline expected<sync_message, peer_error> decode_sync_message(std::span<const std::byte> payload)
{
  const auto malformed = [] { return unexpected(peer_error(peer_errc::protocol_error)); };
  wire::detail::byte_reader in(payload);
  std::uint8_t step = 0, reserved8 = 0;
  std::uint16_t reserved16 = 0;
  if (!in.read(step) || !in.read(reserved8) || !in.read(reserved16) || reserved8 != 0 || reserved16 != 0)
    return malformed();
  sync_message m;
  if (step < static_cast<std::uint8_t>(sync_step::begin) || step > static_cast<std::uint8_t>(sync_step::clock))
    return malformed();
  m.step = static_cast<sync_step>(step);
  if (m.step == sync_step::clock) {
    std::uint64_t time = 0;
    if (!in.read(time))
      return malformed();
    m.clock = record_time(std::chrono::milliseconds(static_cast<std::int64_t>(time)));
  }
  if (m.step == sync_step::done || m.step == sync_step::clock)
    return in.remaining() == 0 ? expected<sync_message, peer_error>(std::move(m)) : malformed();
  const auto read_id = [&](record_id& id) {
    std::span<const std::byte> bytes;
    if (!in.read_bytes(16, bytes))
      return false;
    std::array<std::byte, 16> raw{};
    std::copy(bytes.begin(), bytes.end(), raw.begin());
    id = record_id(data_type::from_bytes(raw));
    return true;
  };
  const auto read_key = [&](sync_key& k) {
    std::uint64_t time = 0;
    if (!in.read(time))
      return false;
    k.first = record_time(std::chrono::milliseconds(static_cast<std::int64_t>(time)));
    return read_id(k.second);
  };
  if (m.step == sync_step::begin) {
    std::span<const std::byte> key;
    if (!in.read_bytes(sync_hash_key_size, key))
      return malformed();
    std::copy(key.begin(), key.end(), m.hash_key.begin());
  }
  std::uint32_t wants = 0;
  if (!in.read(wants) || wants > max_sync_wants || wants > in.remaining() / 16)
    return malformed();
  m.wants.resize(wants);
  for (record_id& id : m.wants)
    if (!read_id(id))
      return malformed();
  std::uint32_t ranges = 0;
  if (!in.read(ranges) || ranges == 0 || ranges > in.remaining() / sync_wire::range_head)
    return malformed();
  m.ranges.resize(ranges);
  sync_key lower = sync_key_min;
  for (std::uint32_t i = 0; i < ranges; ++i) {
    sync_range& r = m.ranges[i];
    std::uint8_t mode = 0, flags = 0;
    if (!in.read(mode) || !in.read(flags) || mode > static_cast<std::uint8_t>(sync_mode::items) ||
        (flags & ~sync_wire::range_last) != 0)
      return malformed();
    r.mode = static_cast<sync_mode>(mode);
    const bool last = (flags & sync_wire::range_last) != 0;
    if (last != (i + 1 == ranges))
      return malformed(); // exactly the last range runs to the end
    if (!last) {
      sync_key upper;
      if (!read_key(upper) || !(lower < upper))
        return malformed();
      r.upper = upper;
    }
    if (r.mode == sync_mode::fingerprint) {
      if (!in.read(r.fingerprint.count) || !in.read(r.fingerprint.low) || !in.read(r.fingerprint.high))
        return malformed();
    } else if (r.mode == sync_mode::items) {
      std::uint16_t count = 0;
      if (!in.read(count) || count > max_sync_items || count > in.remaining() / sync_wire::item)
        return malformed();
      r.items.resize(count);
      std::optional<sync_key> previous;
      for (sync_item& item : r.items) {
        std::uint8_t item_flags = 0;
        if (!read_key(item.key) || !in.read(item.version) || !in.read(item_flags) ||
            (item_flags & ~sync_wire::item_deleted) != 0 || item.key < lower || (r.upper && !(item.key < *r.upper)) ||
            (previous && !(*previous < item.key)) || item.key.second.is_nil() || item.version == 0)
          return malformed();
        item.deleted = (item_flags & sync_wire::item_deleted) != 0;
        previous = item.key;
      }
    }
    if (r.upper)
      lower = *r.upper;
  }
  if (!in.ok() || in.remaining() != 0)
    return malformed();
  return m;
}

/// A part of the order whose versions the other side lacks (or holds older), to be sent to it: every version in
/// [lower, upper) that `peer_items` (what the other side holds there) does not hold as new.
struct sync_push
{
  sync_key lower;
  std::optional<sync_key> upper;
  std::vector<sync_item> peer_items; // by id
  /// Ids the same answer wants from the other side (it holds them newer, elsewhere in the order): not pushed.
  std::shared_ptr<const std::vector<record_id>> wanted; // sorted; may be null

  /// Whether the other side lacks `r` (holds no version of it here, or an older one).
  [[nodiscard]] bool lacks(const record& r) const noexcept
  {
    if (wanted && std::binary_search(wanted->begin(), wanted->end(), r.id))
      return false;
    const auto it = std::lower_bound(peer_items.begin(), peer_items.end(), r.id,
                                     [](const sync_item& item, const record_id& id) { return item.key.second < id; });
    if (it == peer_items.end() || it->key.second != r.id)
      return true;
    return it->rank() < std::tie(r.version, r.deleted, r.last_modified);
  }
};

/// One side of one synchronisation: answers the other side's messages from the records at hand.
class record_reconciler
{
public:
  /// Ranges are split in this many parts.
  static constexpr std::size_t buckets = 16;
  /// A range of at most this many versions is answered with its items.
  static constexpr std::size_t item_threshold = 32;
  /// Room kept in a message for one more range's answer: buckets fingerprints, or an item list and its wants.
  static constexpr std::size_t range_reserve =
      std::max(buckets * (sync_wire::range_head + sync_wire::key + sync_wire::fingerprint),
               sync_wire::range_head + sync_wire::key + 2 + item_threshold * sync_wire::item + max_sync_items * 16);

  explicit record_reconciler(const std::array<std::byte, sync_hash_key_size>& hash_key) noexcept
      : hash_key_(hash_key), low_(word(hash_key, 0), word(hash_key, 8)), high_(word(hash_key, 16), word(hash_key, 24))
  {
  }

  /// A fresh random hash key, for the side that begins.
  [[nodiscard]] static std::array<std::byte, sync_hash_key_size> random_key()
  {
    std::array<std::byte, sync_hash_key_size> key{};
    for (std::size_t at = 0; at < key.size(); at += 8)
      wire::detail::store_le(std::span<std::byte>(key), at, random_u64());
    return key;
  }

  /// The beginning side's first message: its answer for the whole order.
  [[nodiscard]] sync_message begin(const record_table& table, record_time now)
  {
    sync_message m;
    m.step = sync_step::begin;
    m.hash_key = hash_key_;
    open(table, now, sync_key_min, std::nullopt, m.ranges);
    return m;
  }

  /// What one message of the other side leads to.
  struct answer_type
  {
    sync_message reply;            ///< reconcile, or done when nothing is open and nothing wanted
    std::vector<sync_push> pushes; ///< what the other side lacks, to send before the reply
  };

  /// Answers the ranges of `in` (its wants are the caller's to serve).
  [[nodiscard]] answer_type answer(const sync_message& in, const record_table& table, record_time now)
  {
    answer_type out;
    std::vector<sync_range>& ranges = out.reply.ranges;
    std::size_t bytes = sync_wire::fixed + 8; // and the two counts
    sync_key lower = sync_key_min;
    for (const sync_range& theirs : in.ranges) {
      if (bytes + out.reply.wants.size() * 16 + range_reserve > wire::max_sync_payload_size ||
          out.reply.wants.size() + theirs.items.size() > max_sync_wants) {
        // No room for more answers: the rest goes back as one fingerprint, to be split again next round.
        append(ranges, {std::nullopt, sync_mode::fingerprint, fingerprint(table, now, lower, std::nullopt), {}});
        break;
      }
      const std::size_t before = ranges.size();
      switch (theirs.mode) {
      case sync_mode::skip:
        append(ranges, {theirs.upper, sync_mode::skip, {}, {}});
        break;
      case sync_mode::fingerprint:
        if (fingerprint(table, now, lower, theirs.upper) == theirs.fingerprint)
          append(ranges, {theirs.upper, sync_mode::skip, {}, {}});
        else
          open(table, now, lower, theirs.upper, ranges);
        break;
      case sync_mode::items:
        settle(table, now, lower, theirs, out);
        append(ranges, {theirs.upper, sync_mode::skip, {}, {}});
        break;
      }
      for (std::size_t i = before; i < ranges.size(); ++i)
        bytes += encoded_size(ranges[i]);
      if (!theirs.upper)
        break;
      lower = *theirs.upper;
    }
    if (!out.pushes.empty() && !out.reply.wants.empty()) {
      auto wanted = std::make_shared<std::vector<record_id>>(out.reply.wants);
      std::sort(wanted->begin(), wanted->end());
      for (sync_push& push : out.pushes)
        push.wanted = wanted;
    }
    const bool open_ranges =
        std::any_of(ranges.begin(), ranges.end(), [](const sync_range& r) { return r.mode != sync_mode::skip; });
    if (!open_ranges && out.reply.wants.empty()) {
      out.reply.step = sync_step::done;
      ranges.clear();
    }
    return out;
  }

  /// Versions hashed so far: the work the other side made this side do.
  [[nodiscard]] std::uint64_t work() const noexcept { return work_; }

private:
  static std::uint64_t word(const std::array<std::byte, sync_hash_key_size>& key, std::size_t at) noexcept
  {
    return wire::detail::load_le<std::uint64_t>(std::span<const std::byte>(key), at);
  }

  /// Whether a version takes part: an expired one is being forgotten on both sides.
  static bool counts(const record& r, record_time now) noexcept { return r.expires > now; }

  void add(sync_fingerprint& f, const record& r)
  {
    ++work_;
    std::array<std::byte, sync_wire::item> bytes{};
    const std::span<std::byte> out(bytes);
    wire::detail::store_le(out, 0, static_cast<std::uint64_t>(r.last_modified.time_since_epoch().count()));
    std::copy(r.id.guid().bytes().begin(), r.id.guid().bytes().end(), bytes.begin() + 8);
    wire::detail::store_le(out, 24, r.version);
    bytes[28] = std::byte{r.deleted ? sync_wire::item_deleted : std::uint8_t{0}};
    ++f.count;
    f.low += low_(bytes);
    f.high += high_(bytes);
  }

  sync_fingerprint fingerprint(const record_table& table, record_time now, const sync_key& lower,
                               const std::optional<sync_key>& upper)
  {
    sync_fingerprint f;
    table.for_each_between(lower, true, upper, [&](const record& r) {
      if (counts(r, now))
        add(f, r);
      return true;
    });
    return f;
  }

  /// This side's answer for a range whose fingerprints differ: its items when it holds few there, else the
  /// fingerprints of `buckets` parts of about equal size.
  void open(const record_table& table, record_time now, const sync_key& lower, const std::optional<sync_key>& upper,
            std::vector<sync_range>& out)
  {
    std::size_t count = 0;
    table.for_each_between(lower, true, upper, [&](const record& r) {
      count += counts(r, now) ? 1U : 0U;
      ++work_;
      return true;
    });
    if (count <= item_threshold) {
      sync_range range{upper, sync_mode::items, {}, {}};
      table.for_each_between(lower, true, upper, [&](const record& r) {
        if (counts(r, now))
          range.items.push_back({{r.last_modified, r.id}, r.version, r.deleted});
        return true;
      });
      append(out, std::move(range));
      return;
    }
    sync_range part{std::nullopt, sync_mode::fingerprint, {}, {}};
    std::size_t index = 0;
    std::size_t bucket = 0;
    table.for_each_between(lower, true, upper, [&](const record& r) {
      if (!counts(r, now))
        return true;
      // Item `index` starts bucket `index * buckets / count`: each part holds count / buckets items, give or take one.
      const std::size_t its_bucket = index * buckets / count;
      if (its_bucket != bucket) {
        part.upper = sync_key(r.last_modified, r.id);
        append(out, std::exchange(part, sync_range{std::nullopt, sync_mode::fingerprint, {}, {}}));
        bucket = its_bucket;
      }
      add(part.fingerprint, r);
      ++index;
      return true;
    });
    part.upper = upper;
    append(out, std::move(part));
  }

  /// The other side listed its items of [lower, theirs.upper): what it lacks becomes a push, what this side lacks
  /// (or holds older) a want.
  void settle(const record_table& table, record_time now, const sync_key& lower, const sync_range& theirs,
              answer_type& out)
  {
    sync_push push{lower, theirs.upper, theirs.items, nullptr};
    std::sort(push.peer_items.begin(), push.peer_items.end(),
              [](const sync_item& a, const sync_item& b) { return a.key.second < b.key.second; });
    bool lacking = false;
    table.for_each_between(lower, true, theirs.upper, [&](const record& r) {
      ++work_;
      lacking = counts(r, now) && push.lacks(r);
      return !lacking;
    });
    if (lacking)
      out.pushes.push_back(std::move(push));
    for (const sync_item& item : theirs.items) {
      const record* held = table.find(item.key.second);
      if (held == nullptr || std::tie(held->version, held->deleted, held->last_modified) < item.rank())
        out.reply.wants.push_back(item.key.second);
    }
  }

  /// Appends `r`, merged into the previous range when both are skips.
  static void append(std::vector<sync_range>& ranges, sync_range r)
  {
    if (r.mode == sync_mode::skip && !ranges.empty() && ranges.back().mode == sync_mode::skip)
      ranges.back().upper = r.upper;
    else
      ranges.push_back(std::move(r));
  }

  static std::size_t encoded_size(const sync_range& r) noexcept
  {
    std::size_t size = sync_wire::range_head + (r.upper ? sync_wire::key : 0);
    if (r.mode == sync_mode::fingerprint)
      size += sync_wire::fingerprint;
    else if (r.mode == sync_mode::items)
      size += 2 + r.items.size() * sync_wire::item;
    return size;
  }

  std::array<std::byte, sync_hash_key_size> hash_key_;
  siphash24 low_;
  siphash24 high_;
  std::uint64_t work_ = 0;
};

} // namespace peergraph::detail
