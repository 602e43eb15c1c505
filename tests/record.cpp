#include <peergraph/record.hpp>
// The header under test comes first: it must be self-contained.

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using peergraph::attribute_value;
using peergraph::peer_errc;
using peergraph::record;
using peergraph::record_attribute;
using peergraph::record_compare;
using peergraph::record_id;
using peergraph::record_query;
using peergraph::record_time;

constexpr auto chat_line = peergraph::data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da");

record_time at(long long ms)
{
  return record_time(std::chrono::milliseconds(ms));
}

record sample()
{
  record r;
  r.id = record_id::generate();
  r.type = chat_line;
  r.version = 1;
  r.creator = *peergraph::peer_id::make("alice");
  r.modified_by = r.creator;
  r.created = at(1'000);
  r.last_modified = at(1'000);
  r.expires = at(100'000);
  r.attributes = {{"title", std::string("Meeting notes")}, {"priority", std::int64_t{3}}, {"due", at(5'000)}};
  r.data = {std::byte{1}, std::byte{2}};
  return r;
}

bool matches(const record_query& q, const record& r = sample())
{
  return q.matches(r);
}

} // namespace

TEST_SUITE_BEGIN("record");

TEST_CASE("record ids are random GUIDs, distinct from record types, parsed and hashed")
{
  std::unordered_set<record_id> ids;
  for (int i = 0; i < 1000; ++i)
    CHECK(ids.insert(record_id::generate()).second);
  const record_id id = record_id::generate();
  CHECK_FALSE(id.is_nil());
  CHECK(record_id().is_nil());
  auto parsed = record_id::parse(id.to_string());
  REQUIRE(parsed.has_value());
  CHECK(*parsed == id);
  CHECK(record_id::parse("not a guid").error() == peer_errc::invalid_argument);
  CHECK((record_id(peergraph::data_type{}) < id));
  static_assert(!std::is_convertible_v<peergraph::data_type, record_id>, "an id is not a type");
}

TEST_CASE("attributes: alphanumeric unique names, not reserved, bounded")
{
  CHECK(peergraph::validate_attributes(sample().attributes).has_value());
  CHECK(peergraph::validate_attributes({}).has_value());
  const auto refused = [](std::vector<record_attribute> attributes) {
    auto checked = peergraph::validate_attributes(attributes);
    return !checked && checked.error() == peer_errc::invalid_attributes;
  };
  CHECK(refused({{"", std::int64_t{1}}}));
  CHECK(refused({{"two-words", std::int64_t{1}}}));
  CHECK(refused({{"two_words", std::int64_t{1}}}));
  CHECK(refused({{"caf\xc3\xa9", std::int64_t{1}}}));
  CHECK(refused({{std::string(peergraph::max_attribute_name_size + 1, 'a'), std::int64_t{1}}}));
  CHECK_FALSE(refused({{std::string(peergraph::max_attribute_name_size, 'a'), std::int64_t{1}}}));
  CHECK(refused({{"PeerCreatorId", std::string("mallory")}})); // reserved, whatever the case
  CHECK(refused({{"peerrecordid", std::string("x")}}));
  CHECK(refused({{"a", std::int64_t{1}}, {"b", std::int64_t{2}}, {"a", std::int64_t{3}}}));
  CHECK_FALSE(refused({{"a", std::int64_t{1}}, {"A", std::int64_t{2}}})); // names are case-sensitive
  CHECK(refused({{"text", std::string(peergraph::max_attribute_string_size + 1, 'x')}}));
  CHECK_FALSE(refused({{"text", std::string(peergraph::max_attribute_string_size, 'x')}}));
  std::vector<record_attribute> many;
  for (std::size_t i = 0; i <= peergraph::max_record_attributes; ++i)
    many.push_back({"a" + std::to_string(i), std::int64_t{1}});
  CHECK(refused(many));
  many.pop_back();
  CHECK_FALSE(refused(many));
}

TEST_CASE("a record's size counts its data, security data, attributes and fixed fields")
{
  record r = sample();
  const std::size_t base = r.size();
  r.data.resize(r.data.size() + 1000);
  CHECK(r.size() == base + 1000);
  r.security_data.resize(64);
  CHECK(r.size() == base + 1064);
  std::get<std::string>(r.attributes[0].value) += std::string(100, 'x');
  CHECK(r.size() == base + 1164);
  CHECK(base == record::fixed_size + 2 + 2 * 5 + (2 + 5 + 2 + 13) + (2 + 8 + 8) + (2 + 3 + 8));
}

TEST_CASE("supersedes: version, then deletion, then time, then contents: one total order")
{
  const record base = sample();
  record newer = base;
  newer.version = 2;
  CHECK(peergraph::supersedes(newer, base));
  CHECK_FALSE(peergraph::supersedes(base, newer));
  record old_but_later = base;
  old_but_later.last_modified = at(9'000);
  CHECK(peergraph::supersedes(newer, old_but_later)); // the version decides first

  record deleted = base;
  deleted.deleted = true;
  CHECK(peergraph::supersedes(deleted, base));
  CHECK(peergraph::supersedes(deleted, old_but_later)); // a delete at the same version stands
  CHECK(peergraph::supersedes(old_but_later, base));

  // Versions that differ only in contents still order, the same way on every node.
  std::vector<record> variants{base, newer, old_but_later, deleted};
  record other_data = base;
  other_data.data = {std::byte{9}};
  record other_expiry = base;
  other_expiry.expires = at(200'000);
  record other_attribute = base;
  other_attribute.attributes[1].value = std::int64_t{4};
  record fewer_attributes = base;
  fewer_attributes.attributes.pop_back();
  record other_security = base;
  other_security.security_data = {std::byte{7}};
  variants.insert(variants.end(), {other_data, other_expiry, other_attribute, fewer_attributes, other_security});
  for (std::size_t i = 0; i < variants.size(); ++i) {
    CHECK_FALSE(peergraph::supersedes(variants[i], variants[i]));
    for (std::size_t j = 0; j < variants.size(); ++j) {
      if (i == j)
        continue;
      CAPTURE(i);
      CAPTURE(j);
      CHECK(peergraph::supersedes(variants[i], variants[j]) != peergraph::supersedes(variants[j], variants[i]));
      for (std::size_t k = 0; k < variants.size(); ++k)
        if (peergraph::supersedes(variants[i], variants[j]) && peergraph::supersedes(variants[j], variants[k]))
          CHECK(peergraph::supersedes(variants[i], variants[k])); // transitive
    }
  }
}

TEST_CASE("query clauses compare strings, integers and times; a missing or differently typed attribute never matches")
{
  CHECK(matches(record_query::where("priority", record_compare::equal, std::int64_t{3})));
  CHECK(matches(record_query::where("priority", record_compare::greater, std::int64_t{2})));
  CHECK(matches(record_query::where("priority", record_compare::greater_or_equal, std::int64_t{3})));
  CHECK_FALSE(matches(record_query::where("priority", record_compare::greater, std::int64_t{3})));
  CHECK(matches(record_query::where("priority", record_compare::less_or_equal, std::int64_t{3})));
  CHECK(matches(record_query::where("priority", record_compare::not_equal, std::int64_t{4})));
  CHECK(matches(record_query::where("due", record_compare::less, at(6'000))));
  CHECK_FALSE(matches(record_query::where("due", record_compare::less, at(5'000))));
  CHECK(matches(record_query::where("title", record_compare::less, "N")));
  CHECK(matches(record_query::where("title", record_compare::greater_or_equal, "Meeting notes")));

  CHECK_FALSE(matches(record_query::where("missing", record_compare::equal, std::int64_t{3})));
  CHECK_FALSE(matches(record_query::where("missing", record_compare::not_equal, std::int64_t{3})));
  CHECK_FALSE(matches(record_query::where("priority", record_compare::equal, "3")));     // a string is not an int
  CHECK_FALSE(matches(record_query::where("priority", record_compare::not_equal, "3"))); // not even for not_equal
  CHECK_FALSE(matches(record_query::where("Title", record_compare::equal, "*")));        // names are case-sensitive
}

TEST_CASE("string patterns: * any run, ? any one byte, \\ makes the next character literal")
{
  const auto title = [](std::string text) {
    record r = sample();
    r.attributes[0].value = std::move(text);
    return r;
  };
  const auto eq = [](const char* pattern) { return record_query::where("title", record_compare::equal, pattern); };
  CHECK(eq("Meeting notes").matches(title("Meeting notes")));
  CHECK_FALSE(eq("Meeting").matches(title("Meeting notes")));
  CHECK(eq("Meeting*").matches(title("Meeting notes")));
  CHECK(eq("*notes").matches(title("Meeting notes")));
  CHECK(eq("*ting*no*").matches(title("Meeting notes")));
  CHECK(eq("*").matches(title("")));
  CHECK(eq("").matches(title("")));
  CHECK_FALSE(eq("?").matches(title("")));
  CHECK(eq("M??ting notes").matches(title("Meeting notes")));
  CHECK_FALSE(eq("M?ting notes").matches(title("Meeting notes")));
  CHECK(eq("a\\*b").matches(title("a*b")));
  CHECK_FALSE(eq("a\\*b").matches(title("axb")));
  CHECK(eq("a\\?").matches(title("a?")));
  CHECK_FALSE(eq("a\\?").matches(title("ab")));
  CHECK(eq("a\\\\b").matches(title("a\\b")));
  CHECK(eq("trailing\\").matches(title("trailing\\")));
  CHECK(record_query::where("title", record_compare::not_equal, "x*").matches(title("Meeting notes")));
  CHECK_FALSE(record_query::where("title", record_compare::not_equal, "M*").matches(title("Meeting notes")));

  // The worst case stays cheap: many stars against a long text that almost matches.
  std::string pattern;
  for (int i = 0; i < 100; ++i)
    pattern += "*a";
  pattern += "b";
  CHECK_FALSE(eq(pattern.c_str()).matches(title(std::string(4000, 'a'))));
}

TEST_CASE("reserved names search the record's own fields, whatever their case")
{
  const record r = sample();
  CHECK(matches(record_query::where("peercreatorid", record_compare::equal, "alice"), r));
  CHECK(matches(record_query::where("PeerCreatorID", record_compare::equal, "al*"), r));
  CHECK(matches(record_query::where("peerlastmodifiedby", record_compare::equal, "alice"), r));
  CHECK(matches(record_query::where("peerrecordid", record_compare::equal, attribute_value(r.id.to_string())), r));
  CHECK(matches(record_query::where("peerrecordtype", record_compare::equal, "6b29fc40-*"), r));
  CHECK(matches(record_query::where("peercreationtime", record_compare::less, at(2'000)), r));
  CHECK(matches(record_query::where("peerlastmodificationtime", record_compare::greater_or_equal, at(1'000)), r));
  CHECK_FALSE(matches(record_query::where("peercreationtime", record_compare::equal, std::int64_t{1'000}), r));
}

TEST_CASE("all_of, any_of and the operators combine clauses")
{
  const auto high = record_query::where("priority", record_compare::greater, std::int64_t{2});
  const auto low = record_query::where("priority", record_compare::less, std::int64_t{2});
  const auto titled = record_query::where("title", record_compare::equal, "Meeting*");
  CHECK(matches(high && titled));
  CHECK_FALSE(matches(low && titled));
  CHECK(matches(low || titled));
  CHECK_FALSE(matches(low || record_query::where("title", record_compare::equal, "Lunch")));
  CHECK(matches(record_query::all_of({high, titled, high || low})));
  CHECK(matches(record_query::any_of({low, low, titled})));
  CHECK(matches((low || high) && (titled || low)));
}

TEST_CASE("a malformed or oversized query is invalid_search and matches nothing")
{
  const auto invalid = [](const record_query& q) {
    auto checked = q.validate();
    return !checked && checked.error() == peer_errc::invalid_search && !q.matches(sample());
  };
  CHECK(invalid(record_query::all_of({})));
  CHECK(invalid(record_query::any_of({})));
  CHECK(invalid(record_query::where("", record_compare::equal, "x")));
  CHECK(invalid(record_query::where("bad-name", record_compare::equal, "x")));
  CHECK(invalid(
      record_query::where("title", record_compare::equal, std::string(peergraph::max_attribute_string_size + 1, '*'))));
  const auto always = record_query::where("title", record_compare::equal, "*");
  CHECK(always.validate().has_value());

  auto deep = always;
  for (std::size_t i = 0; i < record_query::max_depth; ++i)
    deep = record_query::all_of({deep});
  CHECK(deep.validate().has_value());
  CHECK(invalid(record_query::all_of({deep})));

  std::vector<record_query> wide(record_query::max_nodes - 1, always);
  CHECK(record_query::any_of(wide).validate().has_value());
  wide.push_back(always);
  CHECK(invalid(record_query::any_of(wide)));
}

TEST_CASE("a tombstone matches no query")
{
  record r = sample();
  r.deleted = true;
  CHECK_FALSE(record_query::where("title", record_compare::equal, "*").matches(r));
}

TEST_SUITE_END();
