//
// peergraph/record.hpp
// ~~~~~~~~~~~~~~~~~~~~
// Records, the shared state of a peer graph (PEER_RECORD): their id, typed attributes (the "string", "int" and
// "date" types of the Peer Graphing record attribute schema), the rule by which one version of a record supersedes
// another, and record_query, the record search query format as a C++ value (and / or over clauses that compare an
// attribute with equal, not equal, less, greater, and string patterns).
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace peergraph {

/// The time of records: milliseconds since the Unix epoch (UTC), the resolution records carry on the wire.
using record_time = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

/// A record's identity (PEER_RECORD::id): a random GUID, made by the graph when the record is added. Distinct from
/// data_type so that an id and a record type cannot be mixed up.
class record_id
{
public:
  /// The nil id, which no record has.
  constexpr record_id() noexcept = default;
  constexpr explicit record_id(const data_type& guid) noexcept : guid_(guid) {}

  /// A fresh random id.
  [[nodiscard]] static record_id generate() { return record_id(data_type::generate()); }

  /// Parses the GUID text of an id (as data_type::parse does).
  [[nodiscard]] static expected<record_id, peer_error> parse(std::string_view text) noexcept
  {
    auto guid = data_type::parse(text);
    if (!guid)
      return unexpected(guid.error());
    return record_id(*guid);
  }

  [[nodiscard]] constexpr const data_type& guid() const noexcept { return guid_; }
  [[nodiscard]] constexpr bool is_nil() const noexcept { return guid_.is_nil(); }
  [[nodiscard]] std::string to_string() const { return guid_.to_string(); }

  friend constexpr auto operator<=>(const record_id&, const record_id&) noexcept = default;
  friend constexpr bool operator==(const record_id&, const record_id&) noexcept = default;

private:
  data_type guid_;
};

/// The value of a record attribute: a string (UTF-8), a 64-bit integer or a time.
using attribute_value = std::variant<std::string, std::int64_t, record_time>;

/// One named attribute of a record, which record_query can search for.
struct record_attribute
{
  /// 1 to max_attribute_name_size ASCII letters and digits (the schema's alphanumeric names); names are
  /// case-sensitive, unique within a record, and the reserved names (reserved_attribute()) are not allowed.
  std::string name;
  attribute_value value;

  friend bool operator==(const record_attribute&, const record_attribute&) = default;
};

/// Most attributes one record may have.
inline constexpr std::size_t max_record_attributes = 64;
/// Longest attribute name, in bytes.
inline constexpr std::size_t max_attribute_name_size = 64;
/// Longest string attribute value, in bytes of UTF-8.
inline constexpr std::size_t max_attribute_string_size = 4096;

/// Whether `name` is one of the attributes every record has, which record_query can search but a record may not
/// set: peercreatorid, peerlastmodifiedby, peerrecordid, peerrecordtype (strings), peercreationtime,
/// peerlastmodificationtime (times). Compared without regard to case.
[[nodiscard]] inline bool reserved_attribute(std::string_view name) noexcept
{
  static constexpr std::string_view reserved[] = {"peercreatorid",  "peerlastmodifiedby", "peerrecordid",
                                                  "peerrecordtype", "peercreationtime",   "peerlastmodificationtime"};
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  return std::any_of(std::begin(reserved), std::end(reserved), [&](std::string_view r) {
    return r.size() == name.size() &&
           std::equal(r.begin(), r.end(), name.begin(), [&](char a, char b) { return a == lower(b); });
  });
}

/// Whether `name` is a well-formed attribute name (not checking reservation): 1 to max_attribute_name_size ASCII
/// letters and digits.
[[nodiscard]] inline bool valid_attribute_name(std::string_view name) noexcept
{
  return !name.empty() && name.size() <= max_attribute_name_size && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  });
}

/// Checks a record's attributes: invalid_attributes when there are more than max_record_attributes, a name is
/// malformed, reserved or repeated, or a string value is longer than max_attribute_string_size.
[[nodiscard]] inline expected<void, peer_error> validate_attributes(const std::vector<record_attribute>& attributes)
{
  if (attributes.size() > max_record_attributes)
    return unexpected(peer_error(peer_errc::invalid_attributes));
  for (std::size_t i = 0; i < attributes.size(); ++i) {
    const record_attribute& a = attributes[i];
    if (!valid_attribute_name(a.name) || reserved_attribute(a.name))
      return unexpected(peer_error(peer_errc::invalid_attributes));
    if (const auto* text = std::get_if<std::string>(&a.value); text && text->size() > max_attribute_string_size)
      return unexpected(peer_error(peer_errc::invalid_attributes));
    for (std::size_t j = 0; j < i; ++j)
      if (attributes[j].name == a.name)
        return unexpected(peer_error(peer_errc::invalid_attributes));
  }
  return {};
}

/// A record of a graph (PEER_RECORD). The application sets type, expires, attributes, data (and, through the
/// graph's record security, security_data); the graph sets the rest when the record is added or updated.
struct record
{
  record_id id;                ///< made by the graph on add
  data_type type;              ///< the application's record type; never nil
  std::uint32_t version = 0;   ///< 1 when added, one more on every update
  peer_id creator;             ///< the peer that added it; only it may update or delete it
  peer_id modified_by;         ///< the peer that made this version (the creator)
  record_time created{};       ///< when it was added
  record_time last_modified{}; ///< when this version was made
  record_time expires{};       ///< when it expires everywhere; only grows with updates
  std::vector<record_attribute> attributes;
  std::vector<std::byte> data;          ///< the application's bytes
  std::vector<std::byte> security_data; ///< what the graph's record security made of it (e.g. a signature)
  bool deleted = false;                 ///< a tombstone: kept until it expires, so that no sync brings it back

  /// The application's attribute `name`, or null. (Searches also see the reserved names: see record_query::where.)
  [[nodiscard]] const attribute_value* attribute(std::string_view name) const noexcept
  {
    for (const record_attribute& a : attributes)
      if (a.name == name)
        return &a.value;
    return nullptr;
  }

  /// The record's size: the bytes of its record frame's payload on the wire (docs/wire.md, "Record payload"),
  /// which the graph's record size and store limits count.
  [[nodiscard]] std::size_t size() const noexcept
  {
    std::size_t bytes =
        fixed_size + data.size() + security_data.size() + creator.str().size() + modified_by.str().size();
    for (const record_attribute& a : attributes) {
      const auto* text = std::get_if<std::string>(&a.value);
      bytes += 2 + a.name.size() + (text != nullptr ? 2 + text->size() : 8); // type, name, value
    }
    return bytes;
  }

  /// What every record's payload holds besides its variable parts: id, version, flags, three times, and the
  /// lengths of the creator, the modifier, the attribute list and the security data.
  static constexpr std::size_t fixed_size = data_type::byte_size + 4 + 4 + 3 * 8 + 2 + 2 + 2 + 4;

  friend bool operator==(const record&, const record&) = default;
};

/// Whether version `a` of a record supersedes version `b` (same id): the rule by which every node converges on the
/// same version whatever order versions arrive in. A higher version wins; at the same version a deletion wins over
/// the record (a delete and an update made at once: the delete stands); then the later last_modified; then the
/// version whose contents compare greater (data, security data, expiry, attributes, in that order), so that two
/// different versions never tie.
[[nodiscard]] inline bool supersedes(const record& a, const record& b)
{
  const auto key = [](const record& r) {
    return std::tie(r.version, r.deleted, r.last_modified, r.data, r.security_data, r.expires);
  };
  if (key(a) != key(b))
    return key(a) > key(b);
  const auto attribute_less = [](const record_attribute& x, const record_attribute& y) {
    return std::tie(x.name, x.value) < std::tie(y.name, y.value);
  };
  return std::lexicographical_compare(b.attributes.begin(), b.attributes.end(), a.attributes.begin(),
                                      a.attributes.end(), attribute_less);
}

/// How a record_query clause compares an attribute with its value.
enum class record_compare : std::uint8_t
{
  equal,            ///< strings: a pattern (see record_query::where)
  not_equal,        ///< strings: the pattern does not match
  less,             ///< strings compare by bytes (UTF-8 code point order)
  less_or_equal,    ///<
  greater,          ///<
  greater_or_equal, ///<
};

/// A record search (PeerGraphSearchRecords' query format as a value): clauses that compare one attribute each,
/// combined with all_of (and, `&&`) and any_of (or, `||`).
///
/// @code
/// using peergraph::record_query;
/// auto recent_from_alice = record_query::where("peercreatorid", peergraph::record_compare::equal, "alice") &&
///                          record_query::where("peercreationtime", peergraph::record_compare::greater, since);
/// auto titled = record_query::where("title", peergraph::record_compare::equal, "Meeting*");
/// @endcode
class record_query
{
public:
  /// Most clauses and combinations one query may hold, and how deep they may nest.
  static constexpr std::size_t max_nodes = 256;
  static constexpr std::size_t max_depth = 16;

  /// A clause: the record's attribute `attribute` (or reserved field, see reserved_attribute()) compared with `value`.
  /// A record without that attribute, or whose attribute has another type than `value`, does not match (for
  /// not_equal too). For strings, equal and not_equal take `value` as a pattern: `*` matches any run of characters,
  /// `?` any one byte, and `\` makes the next character literal; other comparisons compare the bytes.
  [[nodiscard]] static record_query where(std::string attribute, record_compare compare, attribute_value value)
  {
    record_query q;
    q.kind_ = kind::clause;
    q.attribute_ = std::move(attribute);
    q.compare_ = compare;
    q.value_ = std::move(value);
    return q;
  }

  /// A clause with a string value (a C string would otherwise pick the integer alternative).
  [[nodiscard]] static record_query where(std::string attribute, record_compare compare, const char* value)
  {
    return where(std::move(attribute), compare, attribute_value(std::string(value)));
  }

  /// Matches when every one of `queries` matches (at least one is needed).
  [[nodiscard]] static record_query all_of(std::vector<record_query> queries)
  {
    return combined(kind::all, std::move(queries));
  }

  /// Matches when at least one of `queries` matches (at least one is needed).
  [[nodiscard]] static record_query any_of(std::vector<record_query> queries)
  {
    return combined(kind::any, std::move(queries));
  }

  friend record_query operator&&(record_query a, record_query b) { return all_of({std::move(a), std::move(b)}); }
  friend record_query operator||(record_query a, record_query b) { return any_of({std::move(a), std::move(b)}); }

  /// Checks the query: invalid_search when an attribute name is malformed, a combination is empty, a pattern is
  /// longer than max_attribute_string_size, or the query has more than max_nodes parts or nests deeper than
  /// max_depth. A query that fails validate() matches nothing.
  [[nodiscard]] expected<void, peer_error> validate() const
  {
    std::size_t nodes = 0;
    if (!valid(0, nodes))
      return unexpected(peer_error(peer_errc::invalid_search));
    return {};
  }

  /// Whether `r` matches (a tombstone never does).
  [[nodiscard]] bool matches(const record& r) const
  {
    if (r.deleted || !validate())
      return false;
    return evaluate(r);
  }

private:
  record_query() = default;

  enum class kind : std::uint8_t
  {
    clause,
    all,
    any,
  };

  static record_query combined(kind k, std::vector<record_query> queries)
  {
    record_query q;
    q.kind_ = k;
    q.children_ = std::move(queries);
    return q;
  }

  bool valid(std::size_t depth, std::size_t& nodes) const
  {
    if (++nodes > max_nodes || depth > max_depth)
      return false;
    if (kind_ == kind::clause) {
      const auto* text = std::get_if<std::string>(&value_);
      return valid_attribute_name(attribute_) && (text == nullptr || text->size() <= max_attribute_string_size);
    }
    return !children_.empty() && std::all_of(children_.begin(), children_.end(),
                                             [&](const record_query& c) { return c.valid(depth + 1, nodes); });
  }

  bool evaluate(const record& r) const
  {
    switch (kind_) {
    case kind::clause:
      return clause_matches(r);
    case kind::all:
      return std::all_of(children_.begin(), children_.end(), [&](const record_query& c) { return c.evaluate(r); });
    case kind::any:
      return std::any_of(children_.begin(), children_.end(), [&](const record_query& c) { return c.evaluate(r); });
    }
    return false;
  }

  /// The value of attribute `name` of `r`, the reserved names giving the record's own fields.
  static std::optional<attribute_value> value_of(const record& r, std::string_view name)
  {
    if (reserved_attribute(name)) {
      std::string lower(name);
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
      if (lower == "peercreatorid")
        return attribute_value(std::string(r.creator.view()));
      if (lower == "peerlastmodifiedby")
        return attribute_value(std::string(r.modified_by.view()));
      if (lower == "peerrecordid")
        return attribute_value(r.id.to_string());
      if (lower == "peerrecordtype")
        return attribute_value(r.type.to_string());
      if (lower == "peercreationtime")
        return attribute_value(r.created);
      return attribute_value(r.last_modified); // peerlastmodificationtime
    }
    if (const attribute_value* v = r.attribute(name))
      return *v;
    return std::nullopt;
  }

  bool clause_matches(const record& r) const
  {
    const std::optional<attribute_value> actual = value_of(r, attribute_);
    if (!actual || actual->index() != value_.index())
      return false;
    if (const auto* text = std::get_if<std::string>(&*actual);
        text && (compare_ == record_compare::equal || compare_ == record_compare::not_equal)) {
      const bool match = pattern_matches(std::get<std::string>(value_), *text);
      return compare_ == record_compare::equal ? match : !match;
    }
    switch (compare_) {
    case record_compare::equal:
      return *actual == value_;
    case record_compare::not_equal:
      return *actual != value_;
    case record_compare::less:
      return *actual < value_;
    case record_compare::less_or_equal:
      return *actual <= value_;
    case record_compare::greater:
      return *actual > value_;
    case record_compare::greater_or_equal:
      return *actual >= value_;
    }
    return false;
  }

  /// Whether `text` matches `pattern` (`*`, `?`, `\` escapes), in time linear in their sizes' product at worst.
  static bool pattern_matches(std::string_view pattern, std::string_view text) noexcept
  {
    std::size_t p = 0;
    std::size_t t = 0;
    std::size_t star = std::string_view::npos; // the pattern position after the last `*`
    std::size_t star_text = 0;                 // where in the text that `*` began matching
    while (t < text.size()) {
      if (p < pattern.size() && pattern[p] == '*') {
        star = ++p;
        star_text = t;
        continue;
      }
      if (p < pattern.size()) {
        const bool escaped = pattern[p] == '\\' && p + 1 < pattern.size();
        const char wanted = escaped ? pattern[p + 1] : pattern[p];
        if ((!escaped && wanted == '?') || wanted == text[t]) {
          p += escaped ? 2 : 1;
          ++t;
          continue;
        }
      }
      if (star == std::string_view::npos)
        return false;
      p = star; // let the last `*` take one more character
      t = ++star_text;
    }
    while (p < pattern.size() && pattern[p] == '*')
      ++p;
    return p == pattern.size();
  }

  kind kind_ = kind::clause;
  record_compare compare_ = record_compare::equal;
  std::string attribute_;
  attribute_value value_;
  std::vector<record_query> children_;
};

/// How a record changed (PEER_RECORD_CHANGE_TYPE), as record_changed events report it.
enum class record_change : std::uint8_t
{
  added = 1,
  updated = 2,
  deleted = 3,
  expired = 4,
};

} // namespace peergraph

template <>
struct std::hash<peergraph::record_id>
{
  std::size_t operator()(const peergraph::record_id& id) const noexcept
  {
    return std::hash<peergraph::data_type>{}(id.guid());
  }
};
