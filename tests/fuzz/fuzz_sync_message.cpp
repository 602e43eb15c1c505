//
// tests/fuzz/fuzz_sync_message.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// libFuzzer target: the record synchronisation (detail/graph/record_sync.hpp) fed arbitrary bytes, as a sync frame's
// payload from a neighbor, answered from a store of a few hundred records.
//
// Input: the payload. Checked: decoding fails with protocol_error or yields a message within the protocol's bounds,
// which re-encodes to exactly the bytes it was read from; the reconciler's answer to it encodes within
// max_sync_payload_size, decodes again, and its pushes and wants stay within what the message and the store hold;
// the work it took is bounded by the store's size times the ranges it was asked about.
//
#include "fuzz_support.hpp"

#include <peergraph/detail/graph/record_sync.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace {

using namespace peergraph;

const record_time now{std::chrono::milliseconds(1'000'000)};

/// 300 records with modification times 1000 ms apart, ids from their index.
const detail::record_table& store()
{
  static const detail::record_table table = [] {
    detail::record_table t;
    for (std::uint32_t i = 0; i < 300; ++i) {
      std::array<std::byte, 16> raw{};
      raw[0] = static_cast<std::byte>(i >> 8U);
      raw[1] = static_cast<std::byte>(i);
      raw[6] = std::byte{0x40};
      record r;
      r.id = record_id(data_type::from_bytes(raw));
      r.type = data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da");
      r.version = 1 + i % 3;
      r.deleted = i % 7 == 0;
      r.creator = *peer_id::make("alice");
      r.modified_by = r.creator;
      r.created = record_time(std::chrono::milliseconds(1000 * i));
      r.last_modified = r.created;
      r.expires = i % 11 == 0 ? now : now + std::chrono::hours(1); // some expired: they take no part
      t.put(std::move(r));
    }
    return t;
  }();
  return table;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  const std::span<const std::byte> payload(reinterpret_cast<const std::byte*>(data), size);
  auto decoded = detail::decode_sync_message(payload);
  if (!decoded) {
    PEERGRAPH_FUZZ_CHECK(decoded.error() == peer_errc::protocol_error);
    return 0;
  }
  const detail::sync_message& m = *decoded;
  PEERGRAPH_FUZZ_CHECK(m.wants.size() <= detail::max_sync_wants);
  std::vector<std::byte> again;
  detail::encode_sync_message(m, again);
  PEERGRAPH_FUZZ_CHECK(again.size() == size && std::equal(again.begin(), again.end(), payload.begin()));
  if (m.step == detail::sync_step::done || m.step == detail::sync_step::clock)
    return 0;
  PEERGRAPH_FUZZ_CHECK(!m.ranges.empty() && !m.ranges.back().upper);

  detail::record_reconciler reconciler(detail::record_reconciler::random_key());
  const auto answer = reconciler.answer(m, store(), now);
  std::vector<std::byte> reply;
  detail::encode_sync_message(answer.reply, reply);
  PEERGRAPH_FUZZ_CHECK(reply.size() <= wire::max_sync_payload_size);
  auto reread = detail::decode_sync_message(reply);
  PEERGRAPH_FUZZ_CHECK(reread.has_value());
  std::size_t listed = 0;
  for (const detail::sync_range& r : m.ranges)
    listed += r.items.size();
  PEERGRAPH_FUZZ_CHECK(answer.reply.wants.size() <= listed);
  PEERGRAPH_FUZZ_CHECK(answer.pushes.size() <= m.ranges.size());
  // Each range asked about costs at most two walks of the store.
  PEERGRAPH_FUZZ_CHECK(reconciler.work() <= 2 * (m.ranges.size() + 1) * store().count());
  return 0;
}
