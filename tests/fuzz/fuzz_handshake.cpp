//
// tests/fuzz/fuzz_handshake.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// libFuzzer target: the handshake side of wire::frame_decoder. The input is what a remote node sends from the first
// byte of a connection (preamble, hello or a refuse in its place, accept or refuse, then frames), decoded from the
// preamble phase.
//
// Checked: every call's invariants (fuzz_support.hpp); any hello the decoder accepts re-encodes (wire::encode_hello)
// to exactly the bytes it was read from, and those bytes decode to the same hello, whole or byte by byte; a refuse
// re-encodes (wire::encode_refuse) to bytes that decode to the same reason; and cutting the stream in two anywhere
// gives the same events and end state as one read.
//
#include "fuzz_support.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace {

using namespace peergraph;
using peergraph::fuzz::checked_decode;

/// The graph's default maximum payload (60 MB); it plays no part in the handshake.
constexpr std::uint64_t max_payload = 60ULL * 1024 * 1024;

bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b)
{
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

/// Decodes `stream` from `start` until the first event; need_more when the stream ends first.
wire::decode_event first_event(wire::frame_decoder& decoder, std::span<const std::byte>& stream, std::size_t& used)
{
  used = 0;
  while (!stream.empty()) {
    auto r = checked_decode(decoder, stream);
    if (!r)
      return wire::decode_event::need_more;
    used += r->consumed;
    stream = stream.subspan(r->consumed);
    if (r->event != wire::decode_event::need_more)
      return r->event;
  }
  return wire::decode_event::need_more;
}

/// An encoded hello decodes back to `hello`, in one read and byte by byte.
void check_hello_round_trip(const wire::hello_message& hello, std::span<const std::byte> encoded)
{
  {
    wire::frame_decoder decoder(max_payload);
    auto r = checked_decode(decoder, encoded);
    PEERGRAPH_FUZZ_CHECK(r.has_value());
    PEERGRAPH_FUZZ_CHECK(r->event == wire::decode_event::hello);
    PEERGRAPH_FUZZ_CHECK(r->consumed == encoded.size());
    PEERGRAPH_FUZZ_CHECK(decoder.hello() == hello);
  }
  {
    wire::frame_decoder decoder(max_payload);
    std::size_t events = 0;
    for (std::size_t i = 0; i < encoded.size(); ++i) {
      auto r = checked_decode(decoder, encoded.subspan(i, 1));
      PEERGRAPH_FUZZ_CHECK(r.has_value());
      PEERGRAPH_FUZZ_CHECK(r->consumed == 1);
      if (r->event != wire::decode_event::need_more) {
        PEERGRAPH_FUZZ_CHECK(r->event == wire::decode_event::hello);
        PEERGRAPH_FUZZ_CHECK(i + 1 == encoded.size()); // the hello completes with its last byte, not before
        ++events;
      }
    }
    PEERGRAPH_FUZZ_CHECK(events == 1);
    PEERGRAPH_FUZZ_CHECK(decoder.hello() == hello);
  }
}

/// A refuse with `reason` re-encodes to bytes that decode to the same reason.
void check_refuse_round_trip(const wire::close_reason& reason)
{
  auto encoded = wire::encode_refuse(reason.code, reason.text);
  PEERGRAPH_FUZZ_CHECK(encoded.has_value());
  wire::frame_decoder decoder(max_payload, wire::decoder_phase::reply);
  auto r = checked_decode(decoder, *encoded);
  PEERGRAPH_FUZZ_CHECK(r.has_value());
  PEERGRAPH_FUZZ_CHECK(r->event == wire::decode_event::refuse);
  PEERGRAPH_FUZZ_CHECK(r->consumed == encoded->size());
  PEERGRAPH_FUZZ_CHECK(decoder.reason() == reason);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  const auto stream = fuzz::as_bytes(data, size);

  // The handshake, message by message.
  wire::frame_decoder decoder(max_payload);
  std::span<const std::byte> rest = stream;
  std::size_t used = 0;
  std::span<const std::byte> message = rest; // where the message that first_event() reads next begins
  wire::decode_event first = first_event(decoder, rest, used);
  // Closed graphs: one direction carries membership frames (challenge then proof, or an answer alone) before its
  // hello, each with exactly one encoding; the first comes with the preamble.
  std::size_t membership_frames = 0;
  while (first == wire::decode_event::membership) {
    PEERGRAPH_FUZZ_CHECK(++membership_frames <= 2);
    const auto frame = fuzz::encode_membership(decoder.membership());
    const std::size_t preamble = membership_frames == 1 ? wire::preamble_size : 0;
    PEERGRAPH_FUZZ_CHECK(used == preamble + frame.size());
    PEERGRAPH_FUZZ_CHECK(same_bytes(message.subspan(preamble, frame.size()), frame));
    message = rest;
    first = first_event(decoder, rest, used);
  }
  const std::size_t hello_preamble = membership_frames == 0 ? 0 : wire::preamble_size; // already read
  // A refuse ends the conversation: it re-encodes to the same reason, and nothing may follow it.
  const auto check_refused = [&] {
    check_refuse_round_trip(decoder.reason());
    if (!rest.empty()) {
      auto r = checked_decode(decoder, rest);
      PEERGRAPH_FUZZ_CHECK(!r && r.error() == peer_errc::protocol_error);
    }
  };
  if (first == wire::decode_event::refuse) {
    // An accepting side refusing in place of its hello.
    check_refused();
  } else if (first != wire::decode_event::need_more) {
    // Otherwise only a hello can come first.
    PEERGRAPH_FUZZ_CHECK(first == wire::decode_event::hello);
    const wire::hello_message hello = decoder.hello();
    auto encoded = wire::encode_hello(hello);
    PEERGRAPH_FUZZ_CHECK(encoded.has_value());
    const auto hello_bytes = std::span<const std::byte>(*encoded).subspan(hello_preamble);
    PEERGRAPH_FUZZ_CHECK(same_bytes(message.first(used), hello_bytes)); // one encoding per hello
    check_hello_round_trip(hello, *encoded);

    const std::span<const std::byte> reply_bytes = rest;
    const wire::decode_event reply = first_event(decoder, rest, used);
    if (reply == wire::decode_event::accept) {
      PEERGRAPH_FUZZ_CHECK(same_bytes(reply_bytes.first(used), wire::encode_accept()));
      // The frames of the established connection: the invariants only.
      while (!rest.empty()) {
        auto r = checked_decode(decoder, rest);
        if (!r)
          break;
        rest = rest.subspan(r->consumed);
      }
    } else if (reply == wire::decode_event::refuse) {
      check_refused();
    } else {
      PEERGRAPH_FUZZ_CHECK(reply == wire::decode_event::need_more);
    }
  } else if (decoder.failed()) {
    // A failure inside the handshake is never a frame size problem: handshake frames have fixed bounds.
    PEERGRAPH_FUZZ_CHECK(decoder.error() == peer_errc::protocol_error ||
                         decoder.error() == peer_errc::unsupported_version);
  }

  // Cut in two anywhere (every cut for short inputs, a few for long ones): the same as one read.
  const auto whole = fuzz::decode_whole(wire::frame_decoder(max_payload), stream);
  const auto cut_at = [&](std::size_t cut) {
    wire::frame_decoder pieces(max_payload);
    std::vector<fuzz::record> trace;
    for (const auto part : {stream.first(cut), stream.subspan(cut)}) {
      std::span<const std::byte> left = part;
      while (!left.empty()) {
        auto r = checked_decode(pieces, left);
        if (!r)
          break;
        fuzz::append_record(trace, pieces, *r);
        left = left.subspan(r->consumed);
      }
      if (pieces.failed())
        break;
    }
    PEERGRAPH_FUZZ_CHECK(trace == whole.first);
    PEERGRAPH_FUZZ_CHECK(fuzz::state_of(pieces) == whole.second);
  };
  if (size <= 200) {
    for (std::size_t cut = 1; cut < size; ++cut)
      cut_at(cut);
  } else {
    fuzz::choices random(size);
    for (int i = 0; i < 8; ++i)
      cut_at(1 + static_cast<std::size_t>(random.below(size - 1)));
  }
  return 0;
}
