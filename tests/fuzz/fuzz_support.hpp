//
// tests/fuzz/fuzz_support.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Shared pieces of the libFuzzer targets: a check that aborts (so libFuzzer records the input as a crash), a small
// deterministic random source driven by the input, and the per-call invariants of wire::frame_decoder.
//
#pragma once

#include <peergraph/wire.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <vector>

/// Aborts with the failed condition when `expr` is false: libFuzzer saves the input that got here as a crash.
#define PEERGRAPH_FUZZ_CHECK(expr)                                                                                     \
  ((expr) ? static_cast<void>(0) : ::peergraph::fuzz::check_failed(#expr, __FILE__, __LINE__))

namespace peergraph::fuzz {

[[noreturn]] inline void check_failed(const char* expr, const char* file, int line)
{
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, expr);
  std::fflush(stderr);
  std::abort();
}

/// The fuzz input as bytes.
inline std::span<const std::byte> as_bytes(const std::uint8_t* data, std::size_t size) noexcept
{
  return {reinterpret_cast<const std::byte*>(data), size};
}

/// A splitmix64 sequence: the same seed gives the same choices, so every run of an input is reproducible.
class choices
{
public:
  explicit choices(std::uint64_t seed) noexcept : state_(seed) {}

  std::uint64_t next() noexcept
  {
    state_ += 0x9E3779B97F4A7C15ULL;
    return detail::mix64(state_);
  }

  /// A number in [0, bound); 0 when bound is 0.
  std::uint64_t below(std::uint64_t bound) noexcept { return bound == 0 ? 0 : next() % bound; }

  /// A piece size of 1 or more: mostly small (the interesting cuts are inside headers), sometimes large.
  std::size_t piece_size() noexcept
  {
    const std::uint64_t pick = below(16);
    if (pick < 10)
      return static_cast<std::size_t>(1 + below(8));
    if (pick < 14)
      return static_cast<std::size_t>(1 + below(64));
    return static_cast<std::size_t>(1 + below(4096));
  }

private:
  std::uint64_t state_;
};

/// The order of the phases a decoder goes through; failed is outside the order.
inline int phase_rank(wire::decoder_phase phase) noexcept
{
  switch (phase) {
  case wire::decoder_phase::preamble:
    return 0;
  case wire::decoder_phase::hello:
    return 1;
  case wire::decoder_phase::reply:
    return 2;
  case wire::decoder_phase::established:
    return 3;
  case wire::decoder_phase::closed:
    return 4;
  case wire::decoder_phase::failed:
    return 5;
  }
  return -1;
}

/// Whether `code` is one of the errors the decoder documents.
inline bool is_decoder_error(peer_errc code) noexcept
{
  return code == peer_errc::protocol_error || code == peer_errc::unsupported_version ||
         code == peer_errc::frame_too_large;
}

/// One decode() call with every documented invariant checked: the call's own result, and how the decoder's state
/// moved. Returns the result unchanged.
inline expected<wire::decode_result, peer_error> checked_decode(wire::frame_decoder& decoder,
                                                                std::span<const std::byte> input)
{
  const bool was_failed = decoder.failed();
  const peer_error old_error = decoder.error();
  const wire::decoder_phase old_phase = decoder.phase();
  const std::uint64_t old_remaining = decoder.payload_remaining();
  const bool old_boundary = decoder.at_frame_boundary();

  auto r = decoder.decode(input);

  PEERGRAPH_FUZZ_CHECK(decoder.max_payload_size() <= wire::max_payload_ceiling);
  if (was_failed) {
    // A failed decoder stays failed and reports the same error, whatever it is fed.
    PEERGRAPH_FUZZ_CHECK(!r);
    PEERGRAPH_FUZZ_CHECK(r.error() == old_error);
    PEERGRAPH_FUZZ_CHECK(decoder.failed());
    PEERGRAPH_FUZZ_CHECK(!decoder.at_frame_boundary());
    return r;
  }
  if (!r) {
    PEERGRAPH_FUZZ_CHECK(decoder.failed());
    PEERGRAPH_FUZZ_CHECK(decoder.phase() == wire::decoder_phase::failed);
    PEERGRAPH_FUZZ_CHECK(r.error() == decoder.error());
    PEERGRAPH_FUZZ_CHECK(is_decoder_error(r.error().code()));
    PEERGRAPH_FUZZ_CHECK(!decoder.at_frame_boundary());
    PEERGRAPH_FUZZ_CHECK(!input.empty()); // nothing can go wrong without a byte
    return r;
  }

  const wire::decode_result& result = *r;
  const wire::decoder_phase phase = decoder.phase();
  PEERGRAPH_FUZZ_CHECK(!decoder.failed());
  PEERGRAPH_FUZZ_CHECK(result.consumed <= input.size());
  PEERGRAPH_FUZZ_CHECK(phase_rank(phase) >= phase_rank(old_phase)); // phases only move forward
  if (decoder.at_frame_boundary())
    PEERGRAPH_FUZZ_CHECK(decoder.payload_remaining() == 0);

  if (result.event == wire::decode_event::need_more) {
    PEERGRAPH_FUZZ_CHECK(result.consumed == input.size());
    PEERGRAPH_FUZZ_CHECK(!result.frame_complete);
    PEERGRAPH_FUZZ_CHECK(result.payload.empty());
    if (input.empty()) {
      PEERGRAPH_FUZZ_CHECK(phase == old_phase);
      PEERGRAPH_FUZZ_CHECK(decoder.at_frame_boundary() == old_boundary);
      PEERGRAPH_FUZZ_CHECK(decoder.payload_remaining() == old_remaining);
    }
    return r;
  }

  // Every event uses at least one byte (a reader loop always progresses), and ends the frame exactly when the
  // decoder is back at a frame boundary.
  PEERGRAPH_FUZZ_CHECK(result.consumed > 0);
  PEERGRAPH_FUZZ_CHECK(result.frame_complete == decoder.at_frame_boundary());
  if (result.event != wire::decode_event::data_payload)
    PEERGRAPH_FUZZ_CHECK(result.payload.empty());

  switch (result.event) {
  case wire::decode_event::hello:
    PEERGRAPH_FUZZ_CHECK(old_phase == wire::decoder_phase::preamble || old_phase == wire::decoder_phase::hello);
    PEERGRAPH_FUZZ_CHECK(phase == wire::decoder_phase::reply);
    PEERGRAPH_FUZZ_CHECK(result.frame_complete);
    {
      const wire::hello_message& hello = decoder.hello();
      PEERGRAPH_FUZZ_CHECK(!hello.graph.empty() && !hello.peer.empty() && static_cast<bool>(hello.node));
      PEERGRAPH_FUZZ_CHECK(hello.kind == connection_kind::neighbor || hello.kind == connection_kind::direct);
      PEERGRAPH_FUZZ_CHECK(!hello.expected_peer || !hello.expected_peer->empty());
    }
    break;
  case wire::decode_event::membership: {
    // Before the hello only (read, like a hello, in the same call as the preamble before it); the phase stays.
    PEERGRAPH_FUZZ_CHECK(old_phase == wire::decoder_phase::preamble || old_phase == wire::decoder_phase::hello);
    PEERGRAPH_FUZZ_CHECK(phase == wire::decoder_phase::hello);
    PEERGRAPH_FUZZ_CHECK(result.frame_complete);
    const wire::membership_message& m = decoder.membership();
    const auto zero = [](const auto& bytes) {
      return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
    };
    PEERGRAPH_FUZZ_CHECK(m.step == wire::membership_step::challenge || m.step == wire::membership_step::answer ||
                         m.step == wire::membership_step::proof);
    PEERGRAPH_FUZZ_CHECK(m.step != wire::membership_step::challenge || zero(m.proof));
    PEERGRAPH_FUZZ_CHECK(m.step != wire::membership_step::proof || zero(m.nonce));
    break;
  }
  case wire::decode_event::accept:
    PEERGRAPH_FUZZ_CHECK(old_phase == wire::decoder_phase::reply);
    PEERGRAPH_FUZZ_CHECK(phase == wire::decoder_phase::established);
    PEERGRAPH_FUZZ_CHECK(result.frame_complete);
    break;
  case wire::decode_event::refuse:
  case wire::decode_event::close: {
    // A refuse answers a hello, or stands in place of the accepting side's own hello (read, like a hello, in the
    // same call as the preamble before it).
    if (result.event == wire::decode_event::refuse)
      PEERGRAPH_FUZZ_CHECK(old_phase == wire::decoder_phase::reply || old_phase == wire::decoder_phase::hello ||
                           old_phase == wire::decoder_phase::preamble);
    else
      PEERGRAPH_FUZZ_CHECK(old_phase == wire::decoder_phase::established);
    PEERGRAPH_FUZZ_CHECK(phase == wire::decoder_phase::closed);
    PEERGRAPH_FUZZ_CHECK(result.frame_complete);
    const wire::close_reason reason = decoder.reason();
    PEERGRAPH_FUZZ_CHECK(reason.code != peer_errc{});
    PEERGRAPH_FUZZ_CHECK(reason.text.size() <= wire::max_reason_text_size);
    PEERGRAPH_FUZZ_CHECK(detail::check_text(reason.text, wire::max_reason_text_size, true) == detail::text_check::ok);
    break;
  }
  case wire::decode_event::ping:
  case wire::decode_event::pong:
    PEERGRAPH_FUZZ_CHECK(old_phase == wire::decoder_phase::established && phase == old_phase);
    PEERGRAPH_FUZZ_CHECK(result.frame_complete);
    break;
  case wire::decode_event::data_header:
    PEERGRAPH_FUZZ_CHECK(old_phase == wire::decoder_phase::established && phase == old_phase);
    PEERGRAPH_FUZZ_CHECK(old_remaining == 0);
    if (result.kind == wire::frame_kind::sync) { // no type; a length the protocol bounds, whatever the maximum
      PEERGRAPH_FUZZ_CHECK(result.type.is_nil());
      PEERGRAPH_FUZZ_CHECK(result.length >= wire::min_sync_payload_size &&
                           result.length <= wire::max_sync_payload_size);
    } else {
      PEERGRAPH_FUZZ_CHECK(!result.type.is_nil());
      PEERGRAPH_FUZZ_CHECK(result.length <= decoder.max_payload_size());
    }
    PEERGRAPH_FUZZ_CHECK(result.frame_complete == (result.length == 0));
    PEERGRAPH_FUZZ_CHECK(decoder.payload_remaining() == result.length);
    break;
  case wire::decode_event::data_payload: {
    PEERGRAPH_FUZZ_CHECK(old_phase == wire::decoder_phase::established && phase == old_phase);
    // A view into this call's input, ending exactly where the call stopped.
    const std::byte* const begin = input.data();
    const std::byte* const end = input.data() + result.consumed;
    PEERGRAPH_FUZZ_CHECK(!result.payload.empty());
    PEERGRAPH_FUZZ_CHECK(result.payload.data() >= begin);
    PEERGRAPH_FUZZ_CHECK(result.payload.data() + result.payload.size() == end);
    PEERGRAPH_FUZZ_CHECK(result.payload.size() <= old_remaining);
    PEERGRAPH_FUZZ_CHECK(decoder.payload_remaining() == old_remaining - result.payload.size());
    PEERGRAPH_FUZZ_CHECK(result.frame_complete == (decoder.payload_remaining() == 0));
    break;
  }
  case wire::decode_event::need_more:
    break;
  }
  return r;
}

/// One decoded event, normalised so that streams cut at different places compare equal: consecutive payload pieces
/// of one data frame are merged.
struct record
{
  wire::decode_event event = wire::decode_event::need_more;
  std::uint64_t number = 0; // data_header: length; ping, pong: token; refuse, close: reason code
  data_type type;           // data_header
  std::string bytes;        // data_payload: the payload so far; refuse, close: the reason text
  std::optional<wire::hello_message> hello;
  std::optional<wire::membership_message> membership;

  friend bool operator==(const record&, const record&) = default;
};

/// The frame the encoders make of a decoded membership message: the wire format has one encoding per message.
inline std::array<std::byte, wire::membership_frame_size> encode_membership(const wire::membership_message& m)
{
  switch (m.step) {
  case wire::membership_step::challenge:
    return wire::encode_membership_challenge(m.nonce);
  case wire::membership_step::answer:
    return wire::encode_membership_answer(m.nonce, m.proof);
  case wire::membership_step::proof:
    break;
  }
  return wire::encode_membership_proof(m.proof);
}

/// An empty record of payload bytes, which the next pieces of the payload are appended to.
inline record payload_record()
{
  record r;
  r.event = wire::decode_event::data_payload;
  return r;
}

/// Appends what `result` reports to `trace`, merging payload pieces.
inline void append_record(std::vector<record>& trace, const wire::frame_decoder& decoder,
                          const wire::decode_result& result)
{
  if (result.event == wire::decode_event::need_more)
    return;
  if (result.event == wire::decode_event::data_payload) {
    if (trace.empty() || trace.back().event != wire::decode_event::data_payload)
      trace.push_back(payload_record());
    trace.back().bytes.append(reinterpret_cast<const char*>(result.payload.data()), result.payload.size());
    return;
  }
  record r;
  r.event = result.event;
  switch (result.event) {
  case wire::decode_event::hello:
    r.hello = decoder.hello();
    break;
  case wire::decode_event::membership:
    r.membership = decoder.membership();
    break;
  case wire::decode_event::refuse:
  case wire::decode_event::close:
    r.number = static_cast<std::uint64_t>(decoder.reason().code);
    r.bytes = std::string(decoder.reason().text);
    break;
  case wire::decode_event::ping:
  case wire::decode_event::pong:
    r.number = result.token;
    break;
  case wire::decode_event::data_header:
    r.number = result.length;
    r.type = result.type;
    break;
  default:
    break;
  }
  trace.push_back(std::move(r));
}

/// Where a decoder ended up, for comparing two decodings of one stream.
struct final_state
{
  wire::decoder_phase phase = wire::decoder_phase::preamble;
  peer_errc error{};
  bool at_frame_boundary = false;
  std::uint64_t payload_remaining = 0;

  friend bool operator==(const final_state&, const final_state&) = default;
};

inline final_state state_of(const wire::frame_decoder& decoder) noexcept
{
  return {decoder.phase(), decoder.failed() ? decoder.error().code() : peer_errc{}, decoder.at_frame_boundary(),
          decoder.payload_remaining()};
}

/// Decodes `stream` as it would arrive in one read, checking every call; the trace and the end state.
inline std::pair<std::vector<record>, final_state> decode_whole(wire::frame_decoder decoder,
                                                                std::span<const std::byte> stream)
{
  std::vector<record> trace;
  while (!stream.empty()) {
    auto r = checked_decode(decoder, stream);
    if (!r)
      break;
    append_record(trace, decoder, *r);
    stream = stream.subspan(r->consumed);
  }
  return {std::move(trace), state_of(decoder)};
}

} // namespace peergraph::fuzz
