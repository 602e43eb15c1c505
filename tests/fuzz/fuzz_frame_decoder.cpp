//
// tests/fuzz/fuzz_frame_decoder.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// libFuzzer target: wire::frame_decoder fed arbitrary bytes, from any starting phase, in arbitrary pieces.
//
// Input: byte 0 chooses the start phase (bits 0-2, modulo 5), the maximum payload size (bits 3-5) and how the
// stream is cut (bits 6-7: whole, byte by byte, random pieces, random pieces with advance_payload() and decoder
// copies); byte 1 seeds the random pieces; the rest is the stream.
//
// Checked: every call's invariants (fuzz_support.hpp: consumed <= input, a failed decoder stays failed, payload views
// inside the input, frame_complete agrees with at_frame_boundary(), phases only move forward); cutting the stream
// anywhere changes nothing (same events, same payload bytes, same end state as one whole read); and every frame the
// decoder accepts is canonical: the encoders of <peergraph/wire.hpp> re-create exactly the bytes it was read from.
//
#include "fuzz_support.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <vector>

namespace {

using namespace peergraph;
using peergraph::fuzz::checked_decode;

constexpr std::array<wire::decoder_phase, 5> start_phases{wire::decoder_phase::preamble, wire::decoder_phase::hello,
                                                          wire::decoder_phase::reply, wire::decoder_phase::established,
                                                          wire::decoder_phase::closed};

constexpr std::array<std::uint64_t, 8> max_payload_sizes{
    0, 1, 28, 1024, 65536, 60ULL * 1024 * 1024, wire::max_payload_ceiling, std::numeric_limits<std::uint64_t>::max()};

bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b)
{
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

/// Decodes the stream as one read and checks that each accepted frame is exactly what the encoders make of what the
/// decoder reported (the wire format has one encoding per message). Returns the trace for the comparison.
std::pair<std::vector<fuzz::record>, fuzz::final_state> decode_reference(std::uint64_t max_payload,
                                                                         wire::decoder_phase start,
                                                                         std::span<const std::byte> stream)
{
  wire::frame_decoder decoder(max_payload, start);
  PEERGRAPH_FUZZ_CHECK(decoder.max_payload_size() == std::min(max_payload, wire::max_payload_ceiling));
  PEERGRAPH_FUZZ_CHECK(decoder.phase() == start && decoder.at_frame_boundary());
  std::vector<fuzz::record> trace;
  std::span<const std::byte> rest = stream;
  while (!rest.empty()) {
    const bool preamble_pending = decoder.phase() == wire::decoder_phase::preamble;
    auto r = checked_decode(decoder, rest);
    if (!r)
      break;
    const std::span<const std::byte> used = rest.first(r->consumed);
    switch (r->event) {
    case wire::decode_event::hello: {
      auto encoded = wire::encode_hello(decoder.hello());
      PEERGRAPH_FUZZ_CHECK(encoded.has_value());
      // Without a preamble pending, the call used the hello frame alone.
      const auto frame = std::span<const std::byte>(*encoded).subspan(preamble_pending ? 0 : wire::preamble_size);
      PEERGRAPH_FUZZ_CHECK(same_bytes(used, frame));
      break;
    }
    case wire::decode_event::membership: {
      const wire::membership_message& m = decoder.membership();
      const auto frame = fuzz::encode_membership(m);
      // Like a hello, the first membership frame comes in the same call as the preamble before it.
      const std::size_t preamble = preamble_pending ? wire::preamble_size : 0;
      PEERGRAPH_FUZZ_CHECK(used.size() == preamble + frame.size());
      const auto preamble_bytes = wire::encode_preamble();
      const auto expected_preamble = std::span<const std::byte>(preamble_bytes).first(preamble);
      PEERGRAPH_FUZZ_CHECK(same_bytes(used.first(preamble), expected_preamble));
      PEERGRAPH_FUZZ_CHECK(same_bytes(used.subspan(preamble), frame));
      break;
    }
    case wire::decode_event::accept:
      PEERGRAPH_FUZZ_CHECK(same_bytes(used, wire::encode_accept()));
      break;
    case wire::decode_event::refuse:
    case wire::decode_event::close: {
      const wire::close_reason reason = decoder.reason();
      // A refuse in place of the hello comes in the same call as the preamble before it.
      PEERGRAPH_FUZZ_CHECK(!preamble_pending || r->event == wire::decode_event::refuse);
      auto encoded = preamble_pending                         ? wire::encode_refusing_opening(reason.code, reason.text)
                     : r->event == wire::decode_event::refuse ? wire::encode_refuse(reason.code, reason.text)
                                                              : wire::encode_close(reason.code, reason.text);
      PEERGRAPH_FUZZ_CHECK(encoded.has_value());
      PEERGRAPH_FUZZ_CHECK(encoded->size() == used.size());
      // Reasons this implementation does not know read as unknown_error: only the code field may differ then.
      const std::size_t code_offset = (preamble_pending ? wire::preamble_size : 0) + wire::frame_header_size;
      const std::uint32_t sent_code = wire::detail::load_le<std::uint32_t>(used, code_offset);
      if (sent_code == static_cast<std::uint32_t>(reason.code))
        PEERGRAPH_FUZZ_CHECK(same_bytes(used, *encoded));
      else
        PEERGRAPH_FUZZ_CHECK(reason.code == peer_errc::unknown_error);
      break;
    }
    case wire::decode_event::ping:
      PEERGRAPH_FUZZ_CHECK(same_bytes(used, wire::encode_ping(r->token)));
      break;
    case wire::decode_event::pong:
      PEERGRAPH_FUZZ_CHECK(same_bytes(used, wire::encode_pong(r->token)));
      break;
    case wire::decode_event::data_header:
      PEERGRAPH_FUZZ_CHECK(same_bytes(used, r->kind == wire::frame_kind::sync ? wire::encode_sync_header(r->length)
                                            : r->kind == wire::frame_kind::record
                                                ? wire::encode_record_header(r->type, r->length)
                                                : wire::encode_data_header(r->type, r->length)));
      break;
    case wire::decode_event::data_payload:
    case wire::decode_event::need_more:
      break;
    }
    fuzz::append_record(trace, decoder, *r);
    rest = rest.subspan(r->consumed);
  }
  return {std::move(trace), fuzz::state_of(decoder)};
}

/// Decodes the stream cut into pieces; with `extras`, also skips payload bytes with advance_payload() (as a reader
/// that reads them itself would), makes misuse calls that must change nothing, and carries on with copies.
std::pair<std::vector<fuzz::record>, fuzz::final_state> decode_in_pieces(std::uint64_t max_payload,
                                                                         wire::decoder_phase start,
                                                                         std::span<const std::byte> stream,
                                                                         bool byte_by_byte, bool extras,
                                                                         fuzz::choices& random)
{
  wire::frame_decoder decoder(max_payload, start);
  std::vector<fuzz::record> trace;
  std::size_t position = 0;
  std::size_t calls = 0;
  while (position < stream.size()) {
    PEERGRAPH_FUZZ_CHECK(++calls <= 4 * stream.size() + 64); // progress: no call loops on its input
    if (extras) {
      const std::uint64_t pick = random.below(16);
      if (pick == 0) {
        auto copy = decoder; // a copied decoder carries on exactly like the original
        decoder = std::move(copy);
      } else if (pick == 1) {
        // An empty read changes nothing.
        auto r = checked_decode(decoder, {});
        if (!r)
          break;
      } else if (pick <= 4 && decoder.payload_remaining() != 0) {
        // The reader takes some payload bytes itself.
        const std::uint64_t left = stream.size() - position;
        const std::uint64_t most = std::min(decoder.payload_remaining(), left);
        const std::uint64_t take = random.below(most + 1);
        const std::uint64_t before = decoder.payload_remaining();
        auto done = decoder.advance_payload(take);
        PEERGRAPH_FUZZ_CHECK(done.has_value());
        PEERGRAPH_FUZZ_CHECK(decoder.payload_remaining() == before - take);
        PEERGRAPH_FUZZ_CHECK(*done == (decoder.payload_remaining() == 0));
        PEERGRAPH_FUZZ_CHECK(*done == decoder.at_frame_boundary());
        if (take != 0) {
          const auto skipped = stream.subspan(position, static_cast<std::size_t>(take));
          if (trace.empty() || trace.back().event != wire::decode_event::data_payload)
            trace.push_back(fuzz::payload_record());
          trace.back().bytes.append(reinterpret_cast<const char*>(skipped.data()), skipped.size());
          position += static_cast<std::size_t>(take);
        }
        continue;
      } else if (pick == 5) {
        // Too much, or nothing pending: refused, and the decoder is unchanged.
        const auto before = fuzz::state_of(decoder);
        const std::uint64_t remaining = decoder.payload_remaining();
        auto refused = decoder.advance_payload(remaining == 0 ? 1 + random.below(100) : remaining + 1);
        PEERGRAPH_FUZZ_CHECK(!refused.has_value());
        PEERGRAPH_FUZZ_CHECK(refused.error() ==
                             (decoder.failed() ? decoder.error() : peer_error(peer_errc::invalid_argument)));
        PEERGRAPH_FUZZ_CHECK(fuzz::state_of(decoder) == before);
      }
    }
    const std::size_t size = byte_by_byte ? 1 : std::min(random.piece_size(), stream.size() - position);
    std::span<const std::byte> piece = stream.subspan(position, size);
    // A piece is decoded to the end, as a reader does with one read buffer.
    bool failed = false;
    do {
      auto r = checked_decode(decoder, piece);
      if (!r) {
        failed = true;
        break;
      }
      fuzz::append_record(trace, decoder, *r);
      piece = piece.subspan(r->consumed);
    } while (!piece.empty());
    if (failed)
      break;
    position += size;
  }
  if (decoder.failed()) {
    // Stays failed for whatever follows, including advance_payload().
    const peer_error error = decoder.error();
    auto again = checked_decode(decoder, stream.subspan(std::min(position, stream.size())));
    PEERGRAPH_FUZZ_CHECK(!again && again.error() == error);
    auto advanced = decoder.advance_payload(0);
    PEERGRAPH_FUZZ_CHECK(!advanced && advanced.error() == error);
  }
  return {std::move(trace), fuzz::state_of(decoder)};
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  if (size < 2)
    return 0;
  const std::uint8_t config = data[0];
  const wire::decoder_phase start = start_phases[(config & 7U) % start_phases.size()];
  const std::uint64_t max_payload = max_payload_sizes[(config >> 3U) & 7U];
  const unsigned cut = (config >> 6U) & 3U;
  fuzz::choices random(std::uint64_t{data[1]} * 0x100000001B3ULL + size);
  const auto stream = fuzz::as_bytes(data + 2, size - 2);

  const auto reference = decode_reference(max_payload, start, stream);
  // The same stream, decoded without the checks of the reference pass, must agree with it (a sanity check of the
  // harness itself).
  PEERGRAPH_FUZZ_CHECK(fuzz::decode_whole(wire::frame_decoder(max_payload, start), stream) == reference);
  if (cut == 0)
    return 0;
  const auto pieces = decode_in_pieces(max_payload, start, stream, cut == 1, cut == 3, random);
  PEERGRAPH_FUZZ_CHECK(pieces.first == reference.first);
  PEERGRAPH_FUZZ_CHECK(pieces.second == reference.second);
  return 0;
}
