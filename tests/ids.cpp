//
// tests/ids.cpp
// ~~~~~~~~~~~~~
// data_type, peer_id, graph_id, connection_id, node_id and connection_kind.
//
#include <peergraph/ids.hpp> // first: the header is self-contained

#include <doctest/doctest.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

using namespace peergraph;
using namespace peergraph::literals;

namespace {

template <class T>
std::string streamed(const T& value)
{
  std::ostringstream os;
  os << value;
  return os.str();
}

std::string repeat(std::string_view piece, std::size_t count)
{
  std::string result;
  for (std::size_t i = 0; i < count; ++i)
    result += piece;
  return result;
}

// A sample GUID built from the fields of a Windows GUID struct.
constexpr data_type sample{0x6b29fc40, 0xca47, 0x1067, {0xb3, 0x1d, 0x00, 0xdd, 0x01, 0x06, 0x62, 0xda}};

} // namespace

// Value-type properties the graph and the send path rely on.
static_assert(std::is_trivially_copyable_v<data_type>);
static_assert(std::is_trivially_copyable_v<connection_id>);
static_assert(std::is_trivially_copyable_v<node_id>);
static_assert(sizeof(data_type) == 16);
static_assert(sizeof(connection_id) == 8 && sizeof(node_id) == 8);
static_assert(!std::is_convertible_v<std::uint64_t, connection_id>, "strong type: no implicit conversion");
static_assert(!std::is_convertible_v<connection_id, node_id> && !std::is_convertible_v<node_id, connection_id>);
static_assert(!std::is_convertible_v<peer_id, graph_id> && !std::is_convertible_v<graph_id, peer_id>);
static_assert(!std::equality_comparable_with<peer_id, graph_id>);
static_assert(!std::is_convertible_v<std::string_view, peer_id>, "ids are made only through make()");

// Compile-time construction, parsing and formatting.
static_assert(data_type{}.is_nil());
static_assert(!sample.is_nil());
static_assert(data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da") == sample);
static_assert(data_type::from_string("{6B29FC40-CA47-1067-B31D-00DD010662DA}") == sample);
static_assert("6b29fc40-ca47-1067-b31d-00dd010662da"_guid == sample);
static_assert(sample.bytes()[0] == std::byte{0x6b} && sample.bytes()[3] == std::byte{0x40});
static_assert(sample.data1() == 0x6b29fc40 && sample.data2() == 0xca47 && sample.data3() == 0x1067);
static_assert(sample.data4()[0] == 0xb3 && sample.data4()[7] == 0xda);
static_assert(sample.to_chars()[8] == '-' && sample.to_chars()[0] == '6' && sample.to_chars()[35] == 'a');
static_assert("00000000-0000-0000-0000-000000000001"_guid < "00000000-0000-0000-0000-000000000100"_guid);
static_assert(connection_id{7} == connection_id{7} && connection_id{} < connection_id{1});
static_assert(!connection_id{} && static_cast<bool>(node_id{1}));

TEST_CASE("data_type: formats in RFC 4122 text order from the Windows GUID fields")
{
  CHECK(sample.to_string() == "6b29fc40-ca47-1067-b31d-00dd010662da");
  CHECK(streamed(sample) == "6b29fc40-ca47-1067-b31d-00dd010662da");
  const data_type::bytes_type expected_bytes{std::byte{0x6b}, std::byte{0x29}, std::byte{0xfc}, std::byte{0x40},
                                             std::byte{0xca}, std::byte{0x47}, std::byte{0x10}, std::byte{0x67},
                                             std::byte{0xb3}, std::byte{0x1d}, std::byte{0x00}, std::byte{0xdd},
                                             std::byte{0x01}, std::byte{0x06}, std::byte{0x62}, std::byte{0xda}};
  CHECK(sample.bytes() == expected_bytes);
  CHECK(data_type(expected_bytes) == sample);
  CHECK(data_type::from_bytes(std::span<const std::byte, 16>(expected_bytes)) == sample);
  // The four fields come back out unchanged, so a Windows GUID converts both ways.
  const data_type copy(sample.data1(), sample.data2(), sample.data3(), sample.data4());
  CHECK(copy == sample);
}

TEST_CASE("data_type: parse accepts both cases, with or without braces, and round-trips")
{
  for (const char* text : {"6b29fc40-ca47-1067-b31d-00dd010662da", "6B29FC40-CA47-1067-B31D-00DD010662DA",
                           "{6b29fc40-ca47-1067-b31d-00dd010662da}", "{6b29FC40-Ca47-1067-b31D-00dD010662Da}"}) {
    CAPTURE(text);
    const auto parsed = data_type::parse(text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == sample);
  }
  for (int i = 0; i < 200; ++i) {
    const auto type = data_type::generate();
    const auto parsed = data_type::parse(type.to_string());
    REQUIRE(parsed.has_value());
    CHECK(*parsed == type);
    const auto braced = data_type::parse("{" + type.to_string() + "}");
    REQUIRE(braced.has_value());
    CHECK(*braced == type);
  }
}

TEST_CASE("data_type: parse rejects malformed text with invalid_argument")
{
  const std::string good = "6b29fc40-ca47-1067-b31d-00dd010662da";
  std::vector<std::string> bad = {
      "",
      "6b29fc40-ca47-1067-b31d-00dd010662d",    // 35 characters
      "6b29fc40-ca47-1067-b31d-00dd010662da0",  // 37
      "6b29fc40ca47-1067-b31d-00dd010662da0",   // dash moved
      "6b29fc40-ca471-067-b31d-00dd010662da",   // dash moved
      "6b29fc40-ca47-1067-b31d-00dd010662dg",   // not hex
      "6b29fc40-ca47-1067-b31d-00dd01 662da",   // space
      "6b29fc40_ca47_1067_b31d_00dd010662da",   // other separator
      "{6b29fc40-ca47-1067-b31d-00dd010662da",  // open brace only
      "6b29fc40-ca47-1067-b31d-00dd010662da}",  // close brace only
      "(6b29fc40-ca47-1067-b31d-00dd010662da)", // other brackets
      "}6b29fc40-ca47-1067-b31d-00dd010662da{", // braces reversed
      " 6b29fc40-ca47-1067-b31d-00dd010662da",  // leading space
      "6b29fc40ca471067b31d00dd010662da",       // no dashes
      "+b29fc40-ca47-1067-b31d-00dd010662da",   // sign
  };
  // Every position replaced by a non-hex character, one at a time.
  for (std::size_t i = 0; i < good.size(); ++i) {
    std::string text = good;
    text[i] = good[i] == '-' ? '0' : 'x';
    bad.push_back(text);
  }
  for (const auto& text : bad) {
    CAPTURE(text);
    const auto parsed = data_type::parse(text);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error() == peer_errc::invalid_argument);
  }
}

TEST_CASE("data_type: nil")
{
  CHECK(data_type{}.is_nil());
  CHECK(data_type{}.to_string() == "00000000-0000-0000-0000-000000000000");
  const auto parsed = data_type::parse("00000000-0000-0000-0000-000000000000");
  REQUIRE(parsed.has_value());
  CHECK(parsed->is_nil());
  CHECK(*parsed == data_type{});
  // Any single nonzero byte is not nil.
  for (std::size_t i = 0; i < data_type::byte_size; ++i) {
    data_type::bytes_type bytes{};
    bytes[i] = std::byte{1};
    CHECK_FALSE(data_type(bytes).is_nil());
  }
}

TEST_CASE("data_type: generate gives distinct version 4, RFC 4122 variant GUIDs")
{
  constexpr int count = 10000;
  std::unordered_set<data_type> seen;
  for (int i = 0; i < count; ++i) {
    const auto type = data_type::generate();
    CHECK_FALSE(type.is_nil());
    CHECK((std::to_integer<unsigned>(type.bytes()[6]) >> 4U) == 4U);    // version nibble
    CHECK((std::to_integer<unsigned>(type.bytes()[8]) >> 6U) == 0b10U); // variant bits
    CHECK(type.to_string()[14] == '4');
    seen.insert(type);
  }
  CHECK(seen.size() == static_cast<std::size_t>(count));
}

TEST_CASE("data_type: ordering follows the canonical text, hashing works in unordered containers")
{
  std::vector<data_type> types;
  for (int i = 0; i < 300; ++i)
    types.push_back(data_type::generate());
  types.push_back(data_type{});
  auto by_value = types;
  std::sort(by_value.begin(), by_value.end());
  auto by_text = types;
  std::sort(by_text.begin(), by_text.end(),
            [](const data_type& a, const data_type& b) { return a.to_string() < b.to_string(); });
  CHECK(by_value == by_text);

  std::unordered_map<data_type, int> counts;
  for (std::size_t i = 0; i < types.size(); ++i)
    counts[types[i]] = static_cast<int>(i);
  CHECK(counts.size() == types.size());
  for (std::size_t i = 0; i < types.size(); ++i)
    CHECK(counts.at(types[i]) == static_cast<int>(i));
  CHECK(std::hash<data_type>{}(sample) == std::hash<data_type>{}(*data_type::parse(sample.to_string())));

  // Structured GUIDs (one counter byte apart) spread over many hash values.
  std::set<std::size_t> hashes;
  for (unsigned i = 0; i < 256; ++i) {
    data_type::bytes_type bytes{};
    bytes[15] = static_cast<std::byte>(i);
    hashes.insert(std::hash<data_type>{}(data_type(bytes)));
  }
  CHECK(hashes.size() == 256);
}

TEST_CASE("peer_id and graph_id: make validates, str/view give the text back")
{
  const auto alice = peer_id::make("alice");
  REQUIRE(alice.has_value());
  CHECK(alice->str() == "alice");
  CHECK(alice->view() == "alice");
  CHECK_FALSE(alice->empty());
  CHECK(*alice == "alice");
  CHECK(streamed(*alice) == "alice");

  const auto graph = graph_id::make("chat graph \xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80"); // spaces and non-ASCII
  REQUIRE(graph.has_value());
  CHECK(graph->view() == "chat graph \xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80");

  CHECK(peer_id{}.empty());
  CHECK(peer_id{}.view().empty());
}

TEST_CASE("peer_id: length limit is 256 code points")
{
  static_assert(peer_id::max_length == 256 && graph_id::max_length == 256);
  for (const std::string_view piece : {std::string_view("a"), std::string_view("\xC3\xA9"),
                                       std::string_view("\xE2\x82\xAC"), std::string_view("\xF0\x9F\x98\x80")}) {
    CAPTURE(piece.size());
    const auto at_limit = peer_id::make(repeat(piece, 256));
    REQUIRE(at_limit.has_value());
    CHECK(at_limit->view().size() == 256 * piece.size());
    const auto over = peer_id::make(repeat(piece, 257));
    REQUIRE_FALSE(over.has_value());
    CHECK(over.error() == peer_errc::invalid_argument);
    CHECK(graph_id::make(repeat(piece, 256)).has_value());
    CHECK_FALSE(graph_id::make(repeat(piece, 257)).has_value());
  }
  // 255 four-byte code points plus one ASCII: 1,021 bytes, 256 code points.
  CHECK(peer_id::make(repeat("\xF0\x9F\x98\x80", 255) + "x").has_value());
  CHECK_FALSE(peer_id::make(repeat("\xF0\x9F\x98\x80", 256) + "x").has_value());
}

TEST_CASE("peer_id: empty, malformed UTF-8 and control characters are rejected")
{
  const std::vector<std::string> bad = {
      std::string(),
      std::string("a\0b", 3), // embedded NUL
      std::string(1, '\0'),   // NUL alone
      "line\nbreak",          // C0
      "tab\there",            // C0
      "\x1b[31m",             // escape
      "del\x7f",              // DEL
      "c1\xC2\x85",           // U+0085 (C1 NEL)
      "c1\xC2\x9F",           // U+009F
      "\x80",                 // stray continuation
      "a\xBF",                // stray continuation after ASCII
      "\xC0\xAF",             // overlong '/'
      "\xC1\xBF",             // overlong
      "\xE0\x80\xAF",         // overlong 3-byte
      "\xF0\x80\x80\xAF",     // overlong 4-byte
      "\xED\xA0\x80",         // surrogate U+D800
      "\xED\xBF\xBF",         // surrogate U+DFFF
      "\xF4\x90\x80\x80",     // U+110000
      "\xF5\x80\x80\x80",     // invalid lead
      "\xFF",                 // invalid byte
      "\xE2\x82",             // truncated 3-byte
      "ok\xF0\x9F\x98",       // truncated 4-byte at the end
      "\xC3\x28",             // bad continuation
      "\xE2\x28\xA1",         // bad continuation
  };
  for (const auto& text : bad) {
    CAPTURE(text.size());
    const auto id = peer_id::make(text);
    REQUIRE_FALSE(id.has_value());
    CHECK(id.error() == peer_errc::invalid_argument);
    CHECK_FALSE(graph_id::make(text).has_value());
  }
  // Boundaries that are valid.
  for (const std::string text : {"\xC2\xA0", "\xED\x9F\xBF", "\xEE\x80\x80", "\xF4\x8F\xBF\xBF", "~", " "}) {
    CAPTURE(text);
    CHECK(peer_id::make(text).has_value());
  }
}

TEST_CASE("peer_id: comparison, ordering and hashing")
{
  const auto a = *peer_id::make("alice");
  const auto a2 = *peer_id::make("alice");
  const auto b = *peer_id::make("bob");
  CHECK(a == a2);
  CHECK(a != b);
  CHECK(a < b);
  CHECK((b <=> a) == std::strong_ordering::greater);
  CHECK(std::hash<peer_id>{}(a) == std::hash<peer_id>{}(a2));

  std::unordered_map<peer_id, int> map;
  std::unordered_set<graph_id> graphs;
  for (int i = 0; i < 500; ++i) {
    map.emplace(*peer_id::make("peer-" + std::to_string(i)), i);
    graphs.insert(*graph_id::make("graph-" + std::to_string(i % 50)));
  }
  CHECK(map.size() == 500);
  CHECK(graphs.size() == 50);
  for (int i = 0; i < 500; ++i)
    CHECK(map.at(*peer_id::make("peer-" + std::to_string(i))) == i);
  CHECK(graphs.count(*graph_id::make("graph-49")) == 1);
  CHECK(graphs.count(*graph_id::make("graph-50")) == 0);

  // Copies and moves keep the value.
  peer_id copy = a;
  CHECK(copy == a);
  peer_id moved = std::move(copy);
  CHECK(moved == a);
}

TEST_CASE("connection_id: 0 means none, value, comparison, hash, decimal output")
{
  constexpr connection_id none;
  CHECK(none.value() == 0);
  CHECK_FALSE(none);
  const connection_id id{42};
  CHECK(id);
  CHECK(id.value() == 42);
  CHECK(id == connection_id{42});
  CHECK(id != connection_id{43});
  CHECK(id < connection_id{43});
  CHECK(streamed(id) == "42");
  CHECK(streamed(none) == "0");
  CHECK(streamed(connection_id{UINT64_MAX}) == "18446744073709551615");

  std::unordered_set<connection_id> ids;
  for (std::uint64_t i = 1; i <= 1000; ++i)
    ids.insert(connection_id{i});
  CHECK(ids.size() == 1000);
  CHECK(ids.count(connection_id{1000}) == 1);
  CHECK(ids.count(connection_id{1001}) == 0);
}

TEST_CASE("node_id: generate is random and nonzero, hex output, hash")
{
  constexpr node_id none;
  CHECK_FALSE(none);
  CHECK(streamed(node_id{0x0123456789abcdefULL}) == "0123456789abcdef");
  CHECK(streamed(node_id{1}) == "0000000000000001");
  CHECK(streamed(node_id{UINT64_MAX}) == "ffffffffffffffff");
  CHECK(node_id{5} < node_id{6});

  std::unordered_set<node_id> ids;
  for (int i = 0; i < 1000; ++i) {
    const auto id = node_id::generate();
    CHECK(id);
    ids.insert(id);
  }
  CHECK(ids.size() == 1000);
}

TEST_CASE("connection_kind: values of PEER_CONNECTION_FLAGS, names")
{
  CHECK(static_cast<int>(connection_kind::neighbor) == 1);
  CHECK(static_cast<int>(connection_kind::direct) == 2);
  CHECK(to_string(connection_kind::neighbor) == "neighbor");
  CHECK(to_string(connection_kind::direct) == "direct");
  CHECK(to_string(static_cast<connection_kind>(9)) == "unknown");
  CHECK(streamed(connection_kind::direct) == "direct");
}
