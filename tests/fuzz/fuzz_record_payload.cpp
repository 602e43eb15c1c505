//
// tests/fuzz/fuzz_record_payload.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// libFuzzer target: the record payload codec (detail/graph/record_codec.hpp) fed arbitrary bytes, as a record frame's
// payload from a neighbor.
//
// Input: the payload. Checked: decoding fails with protocol_error or yields a record whose id is not nil, whose
// creator and modifier are valid peer ids, whose attributes are at most max_record_attributes with well-formed names
// and bounded strings; such a record re-encodes to exactly the bytes it was read from (the encoding is canonical), and
// its size() is their count.
//
#include "fuzz_support.hpp"

#include <peergraph/detail/graph/record_codec.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  using namespace peergraph;
  constexpr auto type = data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da");
  const std::span<const std::byte> payload(reinterpret_cast<const std::byte*>(data), size);
  auto decoded = detail::decode_record_payload(type, payload);
  if (!decoded) {
    PEERGRAPH_FUZZ_CHECK(decoded.error() == peer_errc::protocol_error);
    return 0;
  }
  const record& r = *decoded;
  PEERGRAPH_FUZZ_CHECK(!r.id.is_nil() && r.type == type);
  PEERGRAPH_FUZZ_CHECK(!r.creator.empty() && !r.modified_by.empty());
  PEERGRAPH_FUZZ_CHECK(r.attributes.size() <= max_record_attributes);
  for (const record_attribute& a : r.attributes) {
    PEERGRAPH_FUZZ_CHECK(valid_attribute_name(a.name));
    if (const auto* text = std::get_if<std::string>(&a.value))
      PEERGRAPH_FUZZ_CHECK(text->size() <= max_attribute_string_size);
  }
  PEERGRAPH_FUZZ_CHECK(r.size() == size);
  std::vector<std::byte> again;
  PEERGRAPH_FUZZ_CHECK(detail::encode_record_payload(r, again).has_value());
  PEERGRAPH_FUZZ_CHECK(again.size() == size && std::equal(again.begin(), again.end(), payload.begin()));
  return 0;
}
