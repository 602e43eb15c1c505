#include <peergraph/detail/graph/record_codec.hpp>
// The header under test comes first: it must be self-contained.
//
// The record payload of docs/wire.md: golden bytes, round trips, and every malformation refused.

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace {

using peergraph::peer_errc;
using peergraph::record;
using peergraph::record_time;
using peergraph::detail::decode_record_payload;
using peergraph::detail::encode_record_payload;

constexpr auto chat_line = peergraph::data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da");

record_time at(long long ms)
{
  return record_time(std::chrono::milliseconds(ms));
}

record sample()
{
  record r;
  r.id = peergraph::record_id(peergraph::data_type::from_string("00112233-4455-6677-8899-aabbccddeeff"));
  r.type = chat_line;
  r.version = 2;
  r.creator = *peergraph::peer_id::make("al");
  r.modified_by = r.creator;
  r.created = at(1);
  r.last_modified = at(2);
  r.expires = at(3);
  r.attributes = {{"t", std::string("hi")}, {"n", std::int64_t{-1}}, {"d", at(4)}};
  r.security_data = {std::byte{0xee}};
  r.data = {std::byte{0xaa}, std::byte{0xbb}};
  return r;
}

std::vector<std::byte> encoded(const record& r)
{
  std::vector<std::byte> out;
  REQUIRE(encode_record_payload(r, out).has_value());
  return out;
}

std::vector<std::byte> hex(std::string_view text)
{
  std::vector<std::byte> bytes;
  int high = -1;
  for (const char c : text) {
    int v = -1;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    if (v < 0)
      continue;
    if (high < 0) {
      high = v;
    } else {
      bytes.push_back(static_cast<std::byte>(high * 16 + v));
      high = -1;
    }
  }
  return bytes;
}

bool malformed(const std::vector<std::byte>& payload)
{
  auto decoded = decode_record_payload(chat_line, payload);
  return !decoded && decoded.error() == peer_errc::protocol_error;
}

} // namespace

TEST_SUITE_BEGIN("graph_record_codec");

TEST_CASE("the record payload, byte by byte (docs/wire.md)")
{
  const auto expected = hex("00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff" // record id
                            "02 00 00 00"                                     // version 2
                            "00 00 00 00"                                     // flags, reserved
                            "01 00 00 00 00 00 00 00"                         // created: 1 ms
                            "02 00 00 00 00 00 00 00"                         // last modified
                            "03 00 00 00 00 00 00 00"                         // expires
                            "02 00 61 6c"                                     // creator "al"
                            "02 00 61 6c"                                     // modified by "al"
                            "03 00"                                           // three attributes
                            "01 01 74 02 00 68 69"                            // string t = "hi"
                            "02 01 6e ff ff ff ff ff ff ff ff"                // integer n = -1
                            "03 01 64 04 00 00 00 00 00 00 00"                // time d = 4 ms
                            "01 00 00 00 ee"                                  // security data
                            "aa bb");                                         // data
  CHECK(encoded(sample()) == expected);
  CHECK(sample().size() == expected.size()); // a record's size is its payload's
  auto decoded = decode_record_payload(chat_line, expected);
  REQUIRE(decoded.has_value());
  CHECK(*decoded == sample());
}

TEST_CASE("round trips: tombstones, empty parts, the largest attributes, times before the epoch")
{
  record r = sample();
  r.deleted = true;
  r.data.clear();
  r.attributes.clear();
  r.security_data.clear();
  CHECK(decode_record_payload(chat_line, encoded(r)).value() == r);

  r = sample();
  r.created = at(-86'400'000);
  r.attributes.clear();
  for (std::size_t i = 0; i < peergraph::max_record_attributes; ++i)
    r.attributes.push_back(
        {std::string(peergraph::max_attribute_name_size - 2, 'a') + std::to_string(i % 10) + std::to_string(i / 10),
         std::string(peergraph::max_attribute_string_size, 'x')});
  r.data.assign(100'000, std::byte{7});
  CHECK(decode_record_payload(chat_line, encoded(r)).value() == r);
  CHECK(encoded(r).size() == r.size());

  std::vector<std::byte> out;
  r.attributes.push_back({"extra", std::int64_t{1}});
  CHECK(encode_record_payload(r, out).error() == peer_errc::invalid_record);
  r.attributes.pop_back();
  std::get<std::string>(r.attributes[0].value).push_back('x');
  CHECK(encode_record_payload(r, out).error() == peer_errc::invalid_record);
  CHECK(out.empty()); // nothing appended for a record that cannot be sent
}

TEST_CASE("every truncation and every malformed field is protocol_error")
{
  const std::vector<std::byte> good = encoded(sample());
  // Every cut that ends inside the fixed fields, the ids, the attributes or the security data.
  const std::size_t data_at = good.size() - 2;
  for (std::size_t cut = 0; cut < data_at; ++cut) {
    CAPTURE(cut);
    CHECK(malformed(std::vector<std::byte>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut))));
  }
  // Cutting the data only shortens the data.
  CHECK(decode_record_payload(chat_line, std::span(good).first(data_at)).value().data.empty());

  const auto with = [&](std::size_t at, std::byte value) {
    std::vector<std::byte> bad = good;
    bad[at] = value;
    return bad;
  };
  CHECK(malformed(std::vector<std::byte>(16, std::byte{0}))); // nil id and nothing else
  auto nil_id = good;
  std::fill(nil_id.begin(), nil_id.begin() + 16, std::byte{0});
  CHECK(malformed(nil_id));
  CHECK(malformed(with(20, std::byte{0x02}))); // an unknown flag
  CHECK(malformed(with(21, std::byte{0x01}))); // reserved
  CHECK(malformed(with(23, std::byte{0x01}))); // reserved
  CHECK(malformed(with(48, std::byte{0x00}))); // an empty creator
  CHECK(malformed(with(50, std::byte{0x01}))); // a control character in the creator
  CHECK(malformed(with(56, std::byte{0x41}))); // 65 attributes
  CHECK(malformed(with(58, std::byte{0x04}))); // an unknown attribute type
  CHECK(malformed(with(59, std::byte{0x00}))); // an empty attribute name
  CHECK(malformed(with(60, std::byte{0x5f}))); // "_" in an attribute name
  CHECK(malformed(with(61, std::byte{0xff}))); // a string longer than the payload
  CHECK(malformed(with(87, std::byte{0x05}))); // security data longer than the payload
}

TEST_CASE("random bytes never crash the decoder and never decode into an invalid record")
{
  std::mt19937 random(11);
  const std::vector<std::byte> good = encoded(sample());
  int decoded_count = 0;
  for (int round = 0; round < 20'000; ++round) {
    std::vector<std::byte> bytes = good;
    const int flips = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < flips; ++i)
      bytes[random() % bytes.size()] = static_cast<std::byte>(random() & 0xFF);
    if (random() % 4 == 0)
      bytes.resize(random() % (bytes.size() + 1));
    auto decoded = decode_record_payload(chat_line, bytes);
    if (!decoded) {
      CHECK(decoded.error() == peer_errc::protocol_error);
      continue;
    }
    ++decoded_count;
    CHECK_FALSE(decoded->id.is_nil());
    CHECK_FALSE(decoded->creator.empty());
    CHECK(decoded->attributes.size() <= peergraph::max_record_attributes);
    for (const auto& a : decoded->attributes)
      CHECK(peergraph::valid_attribute_name(a.name));
    std::vector<std::byte> again;
    REQUIRE(encode_record_payload(*decoded, again).has_value());
    CHECK(decode_record_payload(chat_line, again).value() == *decoded);
  }
  CHECK(decoded_count > 0);
}

TEST_SUITE_END();
