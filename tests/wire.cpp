//
// tests/wire.cpp
// ~~~~~~~~~~~~~~
// The wire protocol: golden encodings (the bytes of docs/wire.md), round trips, split feeding, every rejection, size
// limits, allocation-free steady state, and randomized mutations checked against an independent whole-buffer parser.
//
#include <peergraph/wire.hpp> // first: the header is self-contained

#include "support/allocation_counter.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <new>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

using namespace peergraph;
using namespace peergraph::literals;
using bytes = std::vector<std::byte>;

namespace {

constexpr data_type sample_type = "6b29fc40-ca47-1067-b31d-00dd010662da"_guid;
constexpr data_type other_type = "{00112233-4455-6677-8899-AABBCCDDEEFF}"_guid;

bytes hex(std::string_view text)
{
  bytes out;
  int high = -1;
  for (const char c : text) {
    int v = -1;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else
      continue;
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<std::byte>(high * 16 + v));
      high = -1;
    }
  }
  REQUIRE(high < 0);
  return out;
}

bytes text_bytes(std::string_view text)
{
  bytes out;
  for (const char c : text)
    out.push_back(static_cast<std::byte>(c));
  return out;
}

template <class Range>
bytes to_bytes(const Range& range)
{
  return bytes(range.begin(), range.end());
}

void append(bytes& out, const bytes& more)
{
  out.insert(out.end(), more.begin(), more.end());
}
template <std::size_t N>
void append(bytes& out, const std::array<std::byte, N>& more)
{
  out.insert(out.end(), more.begin(), more.end());
}

bytes pattern(std::size_t size, unsigned seed)
{
  bytes out(size);
  for (std::size_t i = 0; i < size; ++i)
    out[i] = static_cast<std::byte>((i * 31U + seed * 7U + (i >> 8U)) & 0xFFU);
  return out;
}

peer_id pid(std::string_view text)
{
  return *peer_id::make(text);
}
graph_id gid(std::string_view text)
{
  return *graph_id::make(text);
}

wire::hello_message sample_hello()
{
  wire::hello_message hello;
  hello.kind = connection_kind::neighbor;
  hello.graph = gid("chat");
  hello.peer = pid("alice");
  hello.node = node_id{0x0123456789abcdefULL};
  hello.expected_peer = pid("bob");
  return hello;
}

bytes data_frame(const data_type& type, const bytes& payload)
{
  bytes out = to_bytes(wire::encode_data_header(type, payload.size()));
  append(out, payload);
  return out;
}

// A frame header with arbitrary field values, for malformed input.
bytes raw_header(std::uint8_t kind, std::uint64_t length, const data_type& type = {}, std::uint8_t flags = 0,
                 std::uint16_t reserved = 0)
{
  bytes out(wire::frame_header_size);
  out[0] = static_cast<std::byte>(kind);
  out[1] = static_cast<std::byte>(flags);
  out[2] = static_cast<std::byte>(reserved & 0xFFU);
  out[3] = static_cast<std::byte>(reserved >> 8U);
  std::copy(type.bytes().begin(), type.bytes().end(), out.begin() + 4);
  for (std::size_t i = 0; i < 8; ++i)
    out[20 + i] = static_cast<std::byte>((length >> (8U * i)) & 0xFFU);
  return out;
}

bytes preamble()
{
  return hex("50 47 52 46 01 00 00 00");
}

std::array<std::byte, peergraph::membership_nonce_size> filled_nonce(unsigned value)
{
  std::array<std::byte, peergraph::membership_nonce_size> out{};
  out.fill(static_cast<std::byte>(value));
  return out;
}

/// A hello frame alone, without the preamble that encode_hello() puts first.
bytes hello_frame(const wire::hello_message& hello)
{
  const bytes whole = *wire::encode_hello(hello);
  return bytes(whole.begin() + static_cast<std::ptrdiff_t>(wire::preamble_size), whole.end());
}

template <class T>
peer_errc error_of(const expected<T, peer_error>& result)
{
  REQUIRE_FALSE(result.has_value());
  return result.error().code();
}

// One decoded frame, whole (a data frame's payload assembled from its parts).
struct frame_record
{
  wire::decode_event event = wire::decode_event::need_more; // data frames are recorded as data_header
  wire::hello_message hello;
  wire::membership_message membership;
  peer_errc code = peer_errc::unknown_error;
  std::string text;
  data_type type;
  bytes payload;
  std::uint64_t token = 0;

  friend bool operator==(const frame_record&, const frame_record&) = default;
  friend std::ostream& operator<<(std::ostream& os, const frame_record& r)
  {
    os << "{event " << static_cast<int>(r.event);
    if (r.event == wire::decode_event::data_header)
      os << " type " << r.type << " size " << r.payload.size();
    if (r.event == wire::decode_event::close || r.event == wire::decode_event::refuse)
      os << " code " << static_cast<int>(r.code) << " text '" << r.text << "'";
    if (r.event == wire::decode_event::ping || r.event == wire::decode_event::pong)
      os << " token " << r.token;
    if (r.event == wire::decode_event::hello)
      os << " peer " << r.hello.peer << " graph " << r.hello.graph;
    if (r.event == wire::decode_event::membership)
      os << " step " << static_cast<int>(r.membership.step);
    return os << "}";
  }
};

frame_record data_record(const data_type& type, bytes payload)
{
  frame_record r;
  r.event = wire::decode_event::data_header;
  r.type = type;
  r.payload = std::move(payload);
  return r;
}

frame_record event_record(wire::decode_event event, std::uint64_t token = 0)
{
  frame_record r;
  r.event = event;
  r.token = token;
  return r;
}

frame_record reason_record(wire::decode_event event, peer_errc code, std::string text)
{
  frame_record r;
  r.event = event;
  r.code = code;
  r.text = std::move(text);
  return r;
}

frame_record hello_record(wire::hello_message hello)
{
  frame_record r;
  r.event = wire::decode_event::hello;
  r.hello = std::move(hello);
  return r;
}

frame_record membership_record(const wire::membership_message& membership)
{
  frame_record r;
  r.event = wire::decode_event::membership;
  r.membership = membership;
  return r;
}

// Everything a stream decoded to.
struct outcome
{
  std::vector<frame_record> frames;
  std::optional<peer_errc> error;
  bool complete = true;                // ended at a frame boundary
  std::vector<std::string> violations; // broken decoder invariants (must stay empty)

  friend bool operator==(const outcome& a, const outcome& b)
  {
    return a.frames == b.frames && a.error == b.error && a.complete == b.complete;
  }
  friend std::ostream& operator<<(std::ostream& os, const outcome& o)
  {
    os << o.frames.size() << " frames [";
    for (const auto& f : o.frames)
      os << f << ' ';
    os << "] error " << (o.error ? static_cast<int>(*o.error) : 0) << " complete " << o.complete;
    return os;
  }
};

struct feed_options
{
  std::uint64_t max_payload = 1U << 20U;
  wire::decoder_phase start = wire::decoder_phase::preamble;
  bool use_advance = false; // deliver payloads around the decoder with advance_payload()
};

// Feeds `stream` to a fresh decoder in the pieces given by `sizes` (the rest in one piece), like a reader would, and
// checks the decoder's invariants on the way.
outcome feed(std::span<const std::byte> stream, const std::vector<std::size_t>& sizes, const feed_options& options)
{
  outcome out;
  wire::frame_decoder decoder(options.max_payload, options.start);
  std::optional<frame_record> current; // the data frame being assembled
  std::uint64_t current_length = 0;
  std::size_t offset = 0;
  std::size_t piece = 0;
  bool drained = true;
  const auto violation = [&](std::string what) { out.violations.push_back(std::move(what)); };

  while (offset < stream.size()) {
    const std::size_t size =
        piece < sizes.size() ? std::min(sizes[piece], stream.size() - offset) : stream.size() - offset;
    ++piece;
    std::span<const std::byte> input = stream.subspan(offset, size);
    offset += size;
    // Every event uses at least one byte, so input.size() + 1 calls always suffice.
    drained = false;
    for (std::size_t calls = 0; calls <= size + 1; ++calls) {
      if (options.use_advance && decoder.payload_remaining() > 0 && !input.empty()) {
        const std::uint64_t remaining = decoder.payload_remaining();
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, input.size()));
        current->payload.insert(current->payload.end(), input.begin(), input.begin() + static_cast<std::ptrdiff_t>(n));
        const auto done = decoder.advance_payload(n);
        if (!done || *done != (n == remaining))
          violation("advance_payload result");
        input = input.subspan(n);
        if (done && *done) {
          out.frames.push_back(std::move(*current));
          current.reset();
        }
        continue;
      }
      const auto result = decoder.decode(input);
      if (!result) {
        out.error = result.error().code();
        if (!decoder.failed() || decoder.phase() != wire::decoder_phase::failed)
          violation("not failed after an error");
        const auto again = decoder.decode(stream.subspan(0, std::min<std::size_t>(stream.size(), 40)));
        if (again || again.error().code() != *out.error)
          violation("error not sticky");
        if (decoder.at_frame_boundary())
          violation("failed decoder at a frame boundary");
        out.complete = false;
        return out;
      }
      const auto& r = *result;
      if (r.consumed > input.size())
        violation("consumed more than fed");
      if (r.event == wire::decode_event::need_more) {
        if (r.consumed != input.size())
          violation("need_more without using all input");
        drained = true;
        break;
      }
      if (r.consumed == 0)
        violation("event without consuming");
      switch (r.event) {
      case wire::decode_event::data_header:
        if (current)
          violation("data header inside a data frame");
        if (r.kind == wire::frame_kind::sync
                ? !r.type.is_nil() || r.length < wire::min_sync_payload_size || r.length > wire::max_sync_payload_size
                : r.type.is_nil() || r.length > decoder.max_payload_size())
          violation("bad data header reported");
        if (r.frame_complete != (r.length == 0))
          violation("data header completion");
        current = data_record(r.type, {});
        current_length = r.length;
        if (r.length == 0) {
          out.frames.push_back(std::move(*current));
          current.reset();
        }
        break;
      case wire::decode_event::data_payload: {
        if (!current || r.payload.empty())
          violation("payload outside a data frame");
        // The payload is a view of the bytes just consumed: nothing invented, nothing copied.
        if (r.payload.data() < input.data() || r.payload.data() + r.payload.size() != input.data() + r.consumed)
          violation("payload not a view of the input");
        if (!current)
          break;
        current->payload.insert(current->payload.end(), r.payload.begin(), r.payload.end());
        if (current->payload.size() > current_length)
          violation("more payload than announced");
        if (r.frame_complete != (current->payload.size() == current_length))
          violation("payload completion");
        if (r.frame_complete) {
          out.frames.push_back(std::move(*current));
          current.reset();
        }
        break;
      }
      case wire::decode_event::hello:
        out.frames.push_back(hello_record(decoder.hello()));
        break;
      case wire::decode_event::membership:
        out.frames.push_back(membership_record(decoder.membership()));
        break;
      case wire::decode_event::accept:
        out.frames.push_back(event_record(r.event));
        break;
      case wire::decode_event::refuse:
      case wire::decode_event::close:
        out.frames.push_back(reason_record(r.event, decoder.reason().code, std::string(decoder.reason().text)));
        break;
      case wire::decode_event::ping:
      case wire::decode_event::pong:
        out.frames.push_back(event_record(r.event, r.token));
        break;
      case wire::decode_event::need_more:
        break;
      }
      if (r.event != wire::decode_event::data_header && r.event != wire::decode_event::data_payload &&
          !r.frame_complete)
        violation("complete frame not marked complete");
      input = input.subspan(std::min(r.consumed, input.size()));
    }
  }
  if (!drained)
    violation("input not drained");
  out.complete = decoder.at_frame_boundary();
  if (out.complete && current.has_value())
    violation("at_frame_boundary with a pending data frame");
  return out;
}

outcome feed_whole(std::span<const std::byte> stream, const feed_options& options = {})
{
  return feed(stream, {}, options);
}

// ---------------------------------------------------------------------------------------------------------------
// An independent whole-buffer parser written from docs/wire.md: the oracle for the randomized test.

std::uint64_t le(std::span<const std::byte> s, std::size_t at, std::size_t n)
{
  std::uint64_t v = 0;
  for (std::size_t i = n; i-- > 0;)
    v = (v << 8U) | std::to_integer<std::uint64_t>(s[at + i]);
  return v;
}

bool reference_hello(std::span<const std::byte> body, wire::hello_message& hello)
{
  if (body.size() < 12)
    return false;
  const auto kind = le(body, 0, 1);
  const auto flags = le(body, 1, 1);
  if ((kind != 1 && kind != 2) || flags > 1 || le(body, 4, 8) == 0)
    return false;
  hello.kind = static_cast<connection_kind>(kind);
  hello.features = static_cast<wire::node_features>(le(body, 2, 2));
  hello.node = node_id{le(body, 4, 8)};
  std::size_t at = 12;
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < (flags == 1 ? 3U : 2U); ++i) {
    if (body.size() - at < 2)
      return false;
    const auto size = static_cast<std::size_t>(le(body, at, 2));
    at += 2;
    if (body.size() - at < size)
      return false;
    ids.emplace_back(reinterpret_cast<const char*>(body.data() + at), size);
    at += size;
  }
  if (at != body.size())
    return false;
  const auto graph = graph_id::make(ids[0]);
  const auto peer = peer_id::make(ids[1]);
  if (!graph || !peer)
    return false;
  hello.graph = *graph;
  hello.peer = *peer;
  hello.expected_peer.reset();
  if (flags == 1) {
    const auto expected_peer = peer_id::make(ids[2]);
    if (!expected_peer)
      return false;
    hello.expected_peer = *expected_peer;
  }
  return true;
}

outcome reference_decode(std::span<const std::byte> s, std::uint64_t max_payload)
{
  enum class phase
  {
    preamble,
    hello,
    reply,
    established,
    closed
  } ph = phase::preamble;
  std::uint64_t last_step = 0; // the last membership step in this direction
  outcome out;
  std::size_t pos = 0;
  const auto fail = [&](peer_errc code) {
    out.error = code;
    out.complete = false;
    return out;
  };
  const auto incomplete = [&] {
    out.complete = false;
    return out;
  };
  while (pos < s.size()) {
    if (ph == phase::closed)
      return fail(peer_errc::protocol_error);
    if (ph == phase::preamble) {
      if (s.size() - pos < 8)
        return incomplete();
      if (to_bytes(s.subspan(pos, 4)) != text_bytes("PGRF"))
        return fail(peer_errc::protocol_error);
      if (le(s, pos + 4, 2) != 1)
        return fail(peer_errc::unsupported_version);
      if (le(s, pos + 6, 2) != 0)
        return fail(peer_errc::protocol_error);
      pos += 8;
      ph = phase::hello;
      continue;
    }
    if (s.size() - pos < 28)
      return incomplete();
    const auto kind = le(s, pos, 1);
    const auto type = data_type::from_bytes(s.subspan(pos + 4).first<16>());
    const auto length = le(s, pos + 20, 8);
    if (le(s, pos + 1, 1) != 0 || le(s, pos + 2, 2) != 0)
      return fail(peer_errc::protocol_error);
    const bool handshake_kind = kind >= 0x10 && kind <= 0x13;
    const bool established_kind = kind >= 0x01 && kind <= 0x06;
    if (!handshake_kind && !established_kind)
      return fail(peer_errc::protocol_error);
    // A hello may not follow a challenge alone; a refuse may stand in place of the hello.
    if ((kind == 0x10 && (ph != phase::hello || last_step == 1)) || (kind == 0x11 && ph != phase::reply) ||
        (kind == 0x12 && ph != phase::hello && ph != phase::reply) || (kind == 0x13 && ph != phase::hello) ||
        (established_kind && ph != phase::established))
      return fail(peer_errc::protocol_error);
    if (kind == 0x01 || kind == 0x05) { // data and record frames: a typed payload of any allowed length
      if (type.is_nil())
        return fail(peer_errc::protocol_error);
      if (length > max_payload)
        return fail(peer_errc::frame_too_large);
      if (s.size() - pos - 28 < length)
        return incomplete();
      out.frames.push_back(data_record(type, to_bytes(s.subspan(pos + 28, static_cast<std::size_t>(length)))));
      pos += 28 + static_cast<std::size_t>(length);
      continue;
    }
    if (kind == 0x06) { // sync frames: streamed like data, no type, a length the protocol bounds
      if (!type.is_nil() || length < 4 || length > 256 * 1024)
        return fail(peer_errc::protocol_error);
      if (s.size() - pos - 28 < length)
        return incomplete();
      out.frames.push_back(data_record(type, to_bytes(s.subspan(pos + 28, static_cast<std::size_t>(length)))));
      pos += 28 + static_cast<std::size_t>(length);
      continue;
    }
    std::uint64_t lo = 0;
    std::uint64_t hi = 0;
    switch (kind) {
    case 0x10:
      lo = 18;
      hi = 12 + 3 * 1026;
      break;
    case 0x11:
      break;
    case 0x13:
      lo = hi = 68;
      break;
    case 0x12:
    case 0x02:
      lo = 4;
      hi = 260;
      break;
    default:
      lo = hi = 8;
      break;
    }
    if (!type.is_nil() || length < lo || length > hi)
      return fail(peer_errc::protocol_error);
    if (s.size() - pos - 28 < length)
      return incomplete();
    const auto body = s.subspan(pos + 28, static_cast<std::size_t>(length));
    pos += 28 + body.size();
    if (kind == 0x10) {
      wire::hello_message hello;
      if (!reference_hello(body, hello))
        return fail(peer_errc::protocol_error);
      out.frames.push_back(hello_record(std::move(hello)));
      ph = phase::reply;
    } else if (kind == 0x13) {
      // step, 3 reserved bytes, nonce (zero in a proof), proof (zero in a challenge); challenge then proof, or
      // answer alone.
      const auto step = le(body, 0, 1);
      const bool in_order = last_step == 0 ? (step == 1 || step == 2) : (last_step == 1 && step == 3);
      const auto zero = [](std::span<const std::byte> part) {
        return std::all_of(part.begin(), part.end(), [](std::byte b) { return b == std::byte{0}; });
      };
      if (!in_order || !zero(body.subspan(1, 3)) || (step == 3 && !zero(body.subspan(4, 32))) ||
          (step == 1 && !zero(body.subspan(36, 32))))
        return fail(peer_errc::protocol_error);
      wire::membership_message message;
      message.step = static_cast<wire::membership_step>(step);
      std::copy_n(body.begin() + 4, 32, message.nonce.begin());
      std::copy_n(body.begin() + 36, 32, message.proof.begin());
      out.frames.push_back(membership_record(message));
      last_step = step;
    } else if (kind == 0x11) {
      out.frames.push_back(event_record(wire::decode_event::accept));
      ph = phase::established;
    } else if (kind == 0x12 || kind == 0x02) {
      const auto code = le(body, 0, 4);
      const std::string text(reinterpret_cast<const char*>(body.data() + 4), body.size() - 4);
      if (code == 0 || code > 0x7FFFFFFF || (!text.empty() && !peer_id::make(text)))
        return fail(peer_errc::protocol_error);
      auto errc = peer_errc::unknown_error;
      for (const auto known : all_peer_errc)
        if (static_cast<std::uint64_t>(known) == code)
          errc = known;
      out.frames.push_back(
          reason_record(kind == 0x12 ? wire::decode_event::refuse : wire::decode_event::close, errc, text));
      ph = phase::closed;
    } else {
      out.frames.push_back(
          event_record(kind == 0x03 ? wire::decode_event::ping : wire::decode_event::pong, le(body, 0, 8)));
    }
  }
  return out;
}

// Decodes `stream` expecting exactly `error`, and checks the decoder never reported more than `frames_before`.
void check_rejected(const bytes& stream, peer_errc error, feed_options options = {})
{
  const auto whole = feed_whole(stream, options);
  CHECK(whole.violations.empty());
  REQUIRE(whole.error.has_value());
  CHECK(*whole.error == error);
  // Byte by byte gives the same verdict.
  const auto split = feed(stream, std::vector<std::size_t>(stream.size(), 1), options);
  CHECK(split.violations.empty());
  CHECK(split == whole);
}

bytes handshake_prefix()
{
  bytes out = *wire::encode_hello(sample_hello());
  append(out, wire::encode_accept());
  return out;
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------

static_assert(wire::data_frame_header_size == 28);
static_assert(wire::frame_header_size == 28 && wire::preamble_size == 8 && wire::ping_frame_size == 36);
static_assert(wire::max_hello_payload_size == 3090);
static_assert(noexcept(wire::encode_data_header(sample_type, 0)));
static_assert(noexcept(wire::encode_ping(0)) && noexcept(wire::encode_accept()));
// The data header is a constant expression: its bytes are fixed by the protocol.
static_assert(wire::encode_data_header(sample_type, 0x0102030405)[0] == std::byte{0x01});
static_assert(wire::encode_data_header(sample_type, 0x0102030405)[4] == std::byte{0x6b});
static_assert(wire::encode_data_header(sample_type, 0x0102030405)[20] == std::byte{0x05});
static_assert(wire::encode_data_header(sample_type, 0x0102030405)[24] == std::byte{0x01});
static_assert(wire::encode_ping(0x1122334455667788)[28] == std::byte{0x88});

TEST_CASE("golden: hello (preamble + hello frame) bytes as documented")
{
  const auto encoded = wire::encode_hello(sample_hello());
  REQUIRE(encoded.has_value());
  const bytes expected = hex("50 47 52 46 01 00 00 00"                         // preamble: "PGRF", v1, reserved
                             "10 00 00 00"                                     // hello, flags, reserved
                             "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00" // no data type
                             "1e 00 00 00 00 00 00 00"                         // payload length 30
                             "01 01 01 00"                                     // neighbor, expected peer, records
                             "ef cd ab 89 67 45 23 01"                         // node id
                             "04 00 63 68 61 74"                               // "chat"
                             "05 00 61 6c 69 63 65"                            // "alice"
                             "03 00 62 6f 62");                                // "bob"
  CHECK(*encoded == expected);
  CHECK(encoded->size() == 66);

  wire::hello_message direct = sample_hello();
  direct.kind = connection_kind::direct;
  direct.expected_peer.reset();
  const bytes direct_expected = hex("50 47 52 46 01 00 00 00 10 00 00 00"
                                    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
                                    "19 00 00 00 00 00 00 00"
                                    "02 00 01 00 ef cd ab 89 67 45 23 01"
                                    "04 00 63 68 61 74 05 00 61 6c 69 63 65");
  CHECK(*wire::encode_hello(direct) == direct_expected);
}

TEST_CASE("golden: data header, accept, refuse, close, ping, pong bytes as documented")
{
  const bytes data = hex("01 00 00 00"
                         "6b 29 fc 40 ca 47 10 67 b3 1d 00 dd 01 06 62 da"
                         "05 04 03 02 01 00 00 00");
  CHECK(to_bytes(wire::encode_data_header(sample_type, 0x0102030405)) == data);
  // The span overload writes the same bytes into caller-provided storage.
  std::array<std::byte, wire::data_frame_header_size> slot{};
  slot.fill(std::byte{0xAA});
  wire::encode_data_header(slot, sample_type, 0x0102030405);
  CHECK(to_bytes(slot) == data);

  const bytes zeros16 = bytes(16);
  bytes accept = hex("11 00 00 00");
  append(accept, zeros16);
  append(accept, hex("00 00 00 00 00 00 00 00"));
  CHECK(to_bytes(wire::encode_accept()) == accept);

  bytes ping = hex("03 00 00 00");
  append(ping, zeros16);
  append(ping, hex("08 00 00 00 00 00 00 00 88 77 66 55 44 33 22 11"));
  CHECK(to_bytes(wire::encode_ping(0x1122334455667788)) == ping);
  bytes pong = ping;
  pong[0] = std::byte{0x04};
  CHECK(to_bytes(wire::encode_pong(0x1122334455667788)) == pong);

  bytes close = hex("02 00 00 00");
  append(close, zeros16);
  append(close, hex("07 00 00 00 00 00 00 00 29 00 00 00 62 79 65")); // connection_closed (41), "bye"
  CHECK(*wire::encode_close(peer_errc::connection_closed, "bye") == close);

  bytes refuse = hex("12 00 00 00");
  append(refuse, zeros16);
  append(refuse, hex("04 00 00 00 00 00 00 00 04 00 00 00")); // invalid_graph (4), no text
  CHECK(*wire::encode_refuse(peer_errc::invalid_graph) == refuse);
}

TEST_CASE("round trip: a whole conversation decodes to what was encoded")
{
  for (const auto kind : {connection_kind::neighbor, connection_kind::direct}) {
    for (const bool with_expected : {false, true}) {
      wire::hello_message hello = sample_hello();
      hello.kind = kind;
      if (!with_expected)
        hello.expected_peer.reset();
      bytes stream = *wire::encode_hello(hello);
      append(stream, wire::encode_accept());
      append(stream, data_frame(sample_type, pattern(100, 1)));
      append(stream, data_frame(other_type, {}));
      append(stream, wire::encode_ping(0));
      append(stream, wire::encode_pong(std::numeric_limits<std::uint64_t>::max()));
      append(stream, data_frame(other_type, pattern(1, 2)));
      append(stream, *wire::encode_close(peer_errc::graph_shutting_down, "graph closed \xE2\x9C\x93"));

      const auto out = feed_whole(stream);
      CHECK(out.violations.empty());
      CHECK_FALSE(out.error.has_value());
      CHECK(out.complete);
      const std::vector<frame_record> expected = {
          hello_record(hello),
          event_record(wire::decode_event::accept),
          data_record(sample_type, pattern(100, 1)),
          data_record(other_type, {}),
          event_record(wire::decode_event::ping, 0),
          event_record(wire::decode_event::pong, std::numeric_limits<std::uint64_t>::max()),
          data_record(other_type, pattern(1, 2)),
          reason_record(wire::decode_event::close, peer_errc::graph_shutting_down, "graph closed \xE2\x9C\x93"),
      };
      CHECK(out.frames == expected);
      CHECK(reference_decode(stream, 1U << 20U) == out);
    }
  }
}

TEST_CASE("an accepting side may refuse in place of its hello, introducing nothing of itself")
{
  // Golden: the preamble, then the refuse frame, exactly as a refuse after a hello would carry it.
  bytes expected = preamble();
  append(expected, *wire::encode_refuse(peer_errc::connection_refused, "other graph"));
  const auto opening = wire::encode_refusing_opening(peer_errc::connection_refused, "other graph");
  REQUIRE(opening.has_value());
  CHECK(*opening == expected);
  CHECK(wire::encode_refusing_opening(peer_errc{}).error() == peer_errc::invalid_argument);

  // The caller's decoder reads it as the refusal of its hello, with the reason, and then accepts nothing more.
  const auto decoded = feed_whole(*opening);
  REQUIRE(decoded.frames.size() == 1);
  CHECK(decoded.frames[0] == reason_record(wire::decode_event::refuse, peer_errc::connection_refused, "other graph"));
  CHECK_FALSE(decoded.error.has_value());
  bytes then_hello = *opening;
  const bytes hello = *wire::encode_hello(sample_hello());
  then_hello.insert(then_hello.end(), hello.begin() + wire::preamble_size, hello.end());
  check_rejected(then_hello, peer_errc::protocol_error);
  bytes then_accept = *opening;
  append(then_accept, to_bytes(wire::encode_accept()));
  check_rejected(then_accept, peer_errc::protocol_error);
}

TEST_CASE("golden: membership challenge, answer and proof bytes as documented")
{
  const auto nonce = filled_nonce(0xAA);
  const auto proof = filled_nonce(0xBB);
  const bytes header = hex("13 00 00 00"                                     // membership, flags, reserved
                           "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00" // no data type
                           "44 00 00 00 00 00 00 00");                       // payload length 68
  const auto expect = [&](unsigned step, bool with_nonce, bool with_proof) {
    bytes out = header;
    out.push_back(static_cast<std::byte>(step));
    append(out, hex("00 00 00"));
    append(out, with_nonce ? to_bytes(nonce) : bytes(32));
    append(out, with_proof ? to_bytes(proof) : bytes(32));
    return out;
  };
  CHECK(to_bytes(wire::encode_membership_challenge(nonce)) == expect(1, true, false));
  CHECK(to_bytes(wire::encode_membership_answer(nonce, proof)) == expect(2, true, true));
  CHECK(to_bytes(wire::encode_membership_proof(proof)) == expect(3, false, true));
  CHECK(to_bytes(wire::encode_preamble()) == preamble());
  static_assert(wire::membership_frame_size == 28 + 68);
}

TEST_CASE("membership frames: challenge then proof, or an answer alone, before the hello; the decoder reports each")
{
  const auto nonce = filled_nonce(0x01);
  const auto proof = filled_nonce(0x02);
  // The caller's direction of a closed graph's handshake.
  bytes caller = preamble();
  append(caller, wire::encode_membership_challenge(nonce));
  append(caller, wire::encode_membership_proof(proof));
  append(caller, hello_frame(sample_hello()));
  append(caller, wire::encode_accept());
  const auto decoded = feed_whole(caller);
  CHECK(decoded.violations.empty());
  CHECK_FALSE(decoded.error.has_value());
  REQUIRE(decoded.frames.size() == 4);
  CHECK(decoded.frames[0] == membership_record(wire::membership_message{wire::membership_step::challenge, nonce, {}}));
  CHECK(decoded.frames[1] == membership_record(wire::membership_message{wire::membership_step::proof, {}, proof}));
  CHECK(decoded.frames[2] == hello_record(sample_hello()));
  CHECK(decoded.frames[3] == event_record(wire::decode_event::accept));
  CHECK(feed(caller, std::vector<std::size_t>(caller.size(), 1), {}) == decoded);

  // The acceptor's direction, and a refuse in place of the hello after a challenge.
  bytes acceptor = preamble();
  append(acceptor, wire::encode_membership_answer(nonce, proof));
  append(acceptor, hello_frame(sample_hello()));
  const auto answered = feed_whole(acceptor);
  REQUIRE(answered.frames.size() == 2);
  CHECK(answered.frames[0] == membership_record(wire::membership_message{wire::membership_step::answer, nonce, proof}));
  bytes refused = preamble();
  append(refused, wire::encode_membership_challenge(nonce));
  append(refused, *wire::encode_refuse(peer_errc::not_authenticated));
  const auto refusal = feed_whole(refused);
  REQUIRE(refusal.frames.size() == 2);
  CHECK(refusal.frames[1] == reason_record(wire::decode_event::refuse, peer_errc::not_authenticated, ""));
}

TEST_CASE("membership frames out of order or malformed are protocol errors")
{
  const auto nonce = filled_nonce(0x01);
  const auto proof = filled_nonce(0x02);
  const auto with = [](std::initializer_list<bytes> parts) {
    bytes out = preamble();
    for (const auto& part : parts)
      append(out, part);
    return out;
  };
  const bytes challenge = to_bytes(wire::encode_membership_challenge(nonce));
  const bytes answer = to_bytes(wire::encode_membership_answer(nonce, proof));
  const bytes proof_frame = to_bytes(wire::encode_membership_proof(proof));
  const bytes hello = hello_frame(sample_hello());
  const bytes accept = to_bytes(wire::encode_accept());

  check_rejected(with({challenge, hello}), peer_errc::protocol_error);     // a hello before the proof
  check_rejected(with({proof_frame}), peer_errc::protocol_error);          // a proof without a challenge
  check_rejected(with({challenge, challenge}), peer_errc::protocol_error); // a second challenge
  check_rejected(with({answer, proof_frame}), peer_errc::protocol_error);  // anything after an answer
  check_rejected(with({challenge, answer}), peer_errc::protocol_error);    // both roles in one direction
  check_rejected(with({challenge, proof_frame, proof_frame}), peer_errc::protocol_error);
  check_rejected(with({hello, challenge}), peer_errc::protocol_error);      // after the hello
  check_rejected(with({hello, accept, answer}), peer_errc::protocol_error); // on an established connection

  // Malformed: an unknown step, nonzero reserved bytes, a nonzero unused field, a data type, another length.
  const auto patched = [&](const bytes& frame, std::size_t offset, std::byte value) {
    bytes out = frame;
    out[offset] = value;
    return with({out});
  };
  const std::size_t body = wire::frame_header_size;
  check_rejected(patched(challenge, body, std::byte{0}), peer_errc::protocol_error);
  check_rejected(patched(challenge, body, std::byte{4}), peer_errc::protocol_error);
  for (std::size_t i = 1; i < 4; ++i)
    check_rejected(patched(answer, body + i, std::byte{1}), peer_errc::protocol_error);
  check_rejected(patched(challenge, body + 4 + 32 + 31, std::byte{1}), peer_errc::protocol_error); // proof field
  bytes after_challenge = with({challenge});
  bytes bad_proof = proof_frame;
  bad_proof[body + 4] = std::byte{1}; // nonce field of a proof
  append(after_challenge, bad_proof);
  check_rejected(after_challenge, peer_errc::protocol_error);
  check_rejected(patched(answer, 4, std::byte{1}), peer_errc::protocol_error); // a data type
  for (const std::uint64_t length : {std::uint64_t{67}, std::uint64_t{69}}) {
    bytes frame = answer;
    frame[wire::frame_header_size - 8] = static_cast<std::byte>(length);
    frame.resize(wire::frame_header_size + static_cast<std::size_t>(length));
    check_rejected(with({frame}), peer_errc::protocol_error);
  }
}

TEST_CASE("round trip: every peer_errc as a refuse and a close reason")
{
  for (const auto code : all_peer_errc) {
    CAPTURE(static_cast<int>(code));
    const std::string text = "reason " + std::to_string(static_cast<int>(code));
    bytes refused = *wire::encode_hello(sample_hello());
    append(refused, *wire::encode_refuse(code, text));
    const auto a = feed_whole(refused);
    REQUIRE(a.frames.size() == 2);
    CHECK(a.frames[1] == reason_record(wire::decode_event::refuse, code, text));
    CHECK_FALSE(a.error.has_value());

    bytes closed = handshake_prefix();
    append(closed, *wire::encode_close(code));
    const auto b = feed_whole(closed);
    REQUIRE(b.frames.size() == 3);
    CHECK(b.frames[2] == reason_record(wire::decode_event::close, code, ""));
  }
}

TEST_CASE("round trip: hello with ids at their limits")
{
  std::string longest;
  for (int i = 0; i < 256; ++i)
    longest += "\xF0\x9F\x98\x80"; // 256 code points, 1,024 bytes
  wire::hello_message hello;
  hello.kind = connection_kind::direct;
  hello.graph = gid(longest);
  hello.peer = pid(longest);
  hello.expected_peer = pid(longest);
  hello.node = node_id{std::numeric_limits<std::uint64_t>::max()};
  const auto encoded = wire::encode_hello(hello);
  REQUIRE(encoded.has_value());
  CHECK(encoded->size() == wire::preamble_size + wire::frame_header_size + wire::max_hello_payload_size);
  const auto out = feed_whole(*encoded);
  REQUIRE(out.frames.size() == 1);
  CHECK(out.frames[0].hello == hello);

  wire::hello_message shortest;
  shortest.graph = gid("g");
  shortest.peer = pid("p");
  shortest.node = node_id{1};
  const auto small = wire::encode_hello(shortest);
  REQUIRE(small.has_value());
  CHECK(small->size() == wire::preamble_size + wire::frame_header_size + wire::min_hello_payload_size);
  const auto small_out = feed_whole(*small);
  REQUIRE(small_out.frames.size() == 1);
  CHECK(small_out.frames[0].hello == shortest);
}

TEST_CASE("decoder phases follow the conversation; hello can be moved out")
{
  wire::frame_decoder decoder(1024);
  CHECK(decoder.phase() == wire::decoder_phase::preamble);
  CHECK(decoder.at_frame_boundary());
  const bytes hello = *wire::encode_hello(sample_hello());
  auto r = decoder.decode(std::span(hello).first(wire::preamble_size));
  REQUIRE(r.has_value());
  CHECK(r->event == wire::decode_event::need_more);
  CHECK(decoder.phase() == wire::decoder_phase::hello);
  CHECK(decoder.at_frame_boundary());
  r = decoder.decode(std::span(hello).subspan(wire::preamble_size, 10));
  REQUIRE(r.has_value());
  CHECK(r->event == wire::decode_event::need_more);
  CHECK_FALSE(decoder.at_frame_boundary()); // a stream ending here would truncate the hello
  r = decoder.decode(std::span(hello).subspan(wire::preamble_size + 10));
  REQUIRE(r.has_value());
  CHECK(r->event == wire::decode_event::hello);
  CHECK(decoder.phase() == wire::decoder_phase::reply);
  wire::hello_message taken = std::move(decoder.hello());
  CHECK(taken == sample_hello());

  const auto accept = wire::encode_accept();
  r = decoder.decode(accept);
  REQUIRE(r.has_value());
  CHECK(r->event == wire::decode_event::accept);
  CHECK(r->consumed == wire::frame_header_size);
  CHECK(decoder.phase() == wire::decoder_phase::established);

  const bytes close = *wire::encode_close(peer_errc::connection_closed);
  r = decoder.decode(close);
  REQUIRE(r.has_value());
  CHECK(r->event == wire::decode_event::close);
  CHECK(decoder.phase() == wire::decoder_phase::closed);
  CHECK(decoder.reason() == wire::close_reason{peer_errc::connection_closed, ""});
  // Nothing may follow a close.
  r = decoder.decode(std::span(accept).first(1));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == peer_errc::protocol_error);
}

TEST_CASE("a moved or copied decoder keeps its reason text")
{
  bytes stream = handshake_prefix();
  append(stream, *wire::encode_close(peer_errc::graph_shutting_down, "bye now"));
  wire::frame_decoder decoder(1024);
  const auto out = [&] {
    std::span<const std::byte> input(stream);
    for (int calls = 0; calls < 10 && !input.empty(); ++calls) {
      const auto r = decoder.decode(input);
      REQUIRE(r.has_value());
      input = input.subspan(r->consumed);
      if (r->event == wire::decode_event::close)
        return true;
    }
    return false;
  }();
  REQUIRE(out);
  wire::frame_decoder copy = decoder;
  wire::frame_decoder moved = std::move(decoder);
  decoder = wire::frame_decoder(1024); // the original's buffer is reset
  CHECK(copy.reason() == wire::close_reason{peer_errc::graph_shutting_down, "bye now"});
  CHECK(moved.reason() == wire::close_reason{peer_errc::graph_shutting_down, "bye now"});
  CHECK(moved.phase() == wire::decoder_phase::closed);
}

TEST_CASE("split feeding: every split point of a multi-frame stream gives the same frames")
{
  bytes stream = *wire::encode_hello(sample_hello());
  append(stream, wire::encode_accept());
  for (unsigned i = 0; i < 6; ++i)
    append(stream, data_frame(i % 2 == 0 ? sample_type : other_type, pattern(i * 13U, i)));
  append(stream, wire::encode_ping(7));
  append(stream, data_frame(sample_type, pattern(300, 9)));
  append(stream, wire::encode_pong(7));
  append(stream, *wire::encode_close(peer_errc::operation_aborted, "done"));

  const auto whole = feed_whole(stream);
  REQUIRE(whole.violations.empty());
  REQUIRE_FALSE(whole.error.has_value());
  REQUIRE(whole.frames.size() == 12);
  CHECK(whole == reference_decode(stream, 1U << 20U));

  for (const bool use_advance : {false, true}) {
    feed_options options;
    options.use_advance = use_advance;
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
      CAPTURE(cut);
      const auto split = feed(stream, {cut}, options);
      CHECK(split.violations.empty());
      CHECK(split == whole);
    }
    // Three pieces, every pair of cuts a prime stride apart, and one byte at a time.
    for (std::size_t a = 0; a <= stream.size(); a += 7) {
      for (std::size_t b = 0; b <= stream.size() - a; b += 11) {
        const auto split = feed(stream, {a, b}, options);
        CHECK(split.violations.empty());
        CHECK(split == whole);
      }
    }
    const auto bytewise = feed(stream, std::vector<std::size_t>(stream.size(), 1), options);
    CHECK(bytewise.violations.empty());
    CHECK(bytewise == whole);
  }
}

TEST_CASE("many small frames out of one read buffer: payloads are views into the buffer")
{
  bytes buffer;
  constexpr int count = 1000;
  for (int i = 0; i < count; ++i)
    append(buffer, data_frame(sample_type, pattern(static_cast<std::size_t>(i % 17), static_cast<unsigned>(i))));
  wire::frame_decoder decoder(64, wire::decoder_phase::established);
  std::span<const std::byte> input(buffer);
  int frames = 0;
  std::size_t payload_bytes = 0;
  for (int calls = 0; calls < 3 * count && !input.empty(); ++calls) {
    const auto r = decoder.decode(input);
    REQUIRE(r.has_value());
    if (r->event == wire::decode_event::data_payload) {
      // Zero copy: the payload points at its own bytes inside the read buffer.
      CHECK(r->payload.data() == input.data());
      payload_bytes += r->payload.size();
    }
    if (r->frame_complete)
      ++frames;
    input = input.subspan(r->consumed);
  }
  CHECK(input.empty());
  CHECK(frames == count);
  std::size_t expected_bytes = 0;
  for (int i = 0; i < count; ++i)
    expected_bytes += static_cast<std::size_t>(i % 17);
  CHECK(payload_bytes == expected_bytes);
}

TEST_CASE("large payload straight into its final buffer with advance_payload")
{
  const bytes payload = pattern(1U << 20U, 5);
  bytes stream = data_frame(other_type, payload);
  append(stream, wire::encode_ping(99));

  wire::frame_decoder decoder(1U << 20U, wire::decoder_phase::established);
  // The first read brings the header and 1000 payload bytes.
  std::span<const std::byte> first_read = std::span<const std::byte>(stream).first(wire::frame_header_size + 1000);
  auto r = decoder.decode(first_read);
  REQUIRE(r.has_value());
  REQUIRE(r->event == wire::decode_event::data_header);
  CHECK(r->type == other_type);
  CHECK(r->length == payload.size());
  CHECK_FALSE(r->frame_complete);
  first_read = first_read.subspan(r->consumed);

  bytes final_buffer(static_cast<std::size_t>(r->length)); // the payload's own buffer, allocated once
  std::size_t filled = 0;
  r = decoder.decode(first_read);
  REQUIRE(r.has_value());
  REQUIRE(r->event == wire::decode_event::data_payload);
  CHECK(r->payload.size() == 1000);
  std::copy(r->payload.begin(), r->payload.end(), final_buffer.begin());
  filled += r->payload.size();
  CHECK(decoder.payload_remaining() == payload.size() - 1000);

  // Misuse leaves the decoder unchanged.
  auto bad = decoder.advance_payload(decoder.payload_remaining() + 1);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error() == peer_errc::invalid_argument);
  CHECK_FALSE(decoder.failed());

  // The rest is "read from the socket" directly into final_buffer, in two reads, bypassing the decoder.
  const std::size_t socket_at = wire::frame_header_size + 1000;
  const std::size_t half = (payload.size() - filled) / 2;
  std::copy_n(stream.begin() + static_cast<std::ptrdiff_t>(socket_at), half,
              final_buffer.begin() + static_cast<std::ptrdiff_t>(filled));
  auto done = decoder.advance_payload(half);
  REQUIRE(done.has_value());
  CHECK_FALSE(*done);
  filled += half;
  const std::size_t rest = payload.size() - filled;
  std::copy_n(stream.begin() + static_cast<std::ptrdiff_t>(socket_at + half), rest,
              final_buffer.begin() + static_cast<std::ptrdiff_t>(filled));
  done = decoder.advance_payload(rest);
  REQUIRE(done.has_value());
  CHECK(*done);
  CHECK(final_buffer == payload);
  CHECK(decoder.payload_remaining() == 0);
  CHECK(decoder.at_frame_boundary());

  // No payload pending now: advance_payload is a misuse.
  bad = decoder.advance_payload(1);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error() == peer_errc::invalid_argument);

  // The decoder carries on with the next frame.
  r = decoder.decode(std::span<const std::byte>(stream).subspan(wire::frame_header_size + payload.size()));
  REQUIRE(r.has_value());
  CHECK(r->event == wire::decode_event::ping);
  CHECK(r->token == 99);
}

TEST_CASE("max payload boundary: exactly max is accepted, max + 1 is refused at the header")
{
  for (const std::uint64_t max : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{1024}, std::uint64_t{65536}}) {
    CAPTURE(max);
    feed_options options;
    options.max_payload = max;
    options.start = wire::decoder_phase::established;
    const auto ok = feed_whole(data_frame(sample_type, pattern(static_cast<std::size_t>(max), 3)), options);
    CHECK(ok.violations.empty());
    CHECK_FALSE(ok.error.has_value());
    REQUIRE(ok.frames.size() == 1);
    CHECK(ok.frames[0].payload.size() == max);

    // Only the header of the oversized frame is fed: the refusal comes before any payload.
    wire::frame_decoder decoder(max, wire::decoder_phase::established);
    const auto header = wire::encode_data_header(sample_type, max + 1);
    const auto r = decoder.decode(header);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == peer_errc::frame_too_large);
    CHECK(decoder.failed());
  }
}

TEST_CASE("huge lengths are refused whatever the configured maximum")
{
  for (const std::uint64_t max : {std::uint64_t{60} << 20U, std::numeric_limits<std::uint64_t>::max()}) {
    for (const std::uint64_t length : {std::uint64_t{1} << 63U, std::numeric_limits<std::uint64_t>::max(),
                                       (std::uint64_t{1} << 62U) + 1, std::uint64_t{1} << 32U}) {
      CAPTURE(max);
      CAPTURE(length);
      wire::frame_decoder decoder(max, wire::decoder_phase::established);
      CHECK(decoder.max_payload_size() <= wire::max_payload_ceiling);
      const auto r = decoder.decode(wire::encode_data_header(sample_type, length));
      if (length > decoder.max_payload_size()) {
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error() == peer_errc::frame_too_large);
      } else {
        REQUIRE(r.has_value());
        CHECK(r->length == length);
      }
    }
  }
}

TEST_CASE("rejected: wrong magic, unsupported version, nonzero preamble bits")
{
  const bytes hello = *wire::encode_hello(sample_hello());
  for (std::size_t i = 0; i < 4; ++i) {
    bytes bad = hello;
    bad[i] ^= std::byte{0x20};
    check_rejected(bad, peer_errc::protocol_error);
  }
  check_rejected(text_bytes("GET / HTTP/1.1\r\n\r\n"), peer_errc::protocol_error);
  for (const unsigned version : {0U, 2U, 0x0100U, 0xFFFFU}) {
    CAPTURE(version);
    bytes bad = hello;
    bad[4] = static_cast<std::byte>(version & 0xFFU);
    bad[5] = static_cast<std::byte>(version >> 8U);
    check_rejected(bad, peer_errc::unsupported_version);
  }
  for (const std::size_t at : {std::size_t{6}, std::size_t{7}}) {
    bytes bad = hello;
    bad[at] = std::byte{0x01};
    check_rejected(bad, peer_errc::protocol_error);
  }
  // The verdict comes with the 8th byte: the decoder does not wait for more.
  wire::frame_decoder decoder(1024);
  bytes v2 = preamble();
  v2[4] = std::byte{2};
  const auto r = decoder.decode(v2);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == peer_errc::unsupported_version);
}

TEST_CASE("record frames: their type in the header, their payload streamed like data, checked like data")
{
  const auto header = wire::encode_record_header(sample_type, 3);
  CHECK(header[0] == std::byte{0x05});
  CHECK(std::equal(header.begin() + 4, header.begin() + 20, sample_type.bytes().begin()));
  bytes stream = handshake_prefix();
  append(stream, header);
  append(stream, bytes{std::byte{1}, std::byte{2}, std::byte{3}});
  wire::frame_decoder decoder(1024);
  std::span<const std::byte> rest(stream);
  std::optional<wire::decode_result> record_header;
  bytes payload;
  for (int i = 0; i < 16 && !rest.empty(); ++i) {
    auto r = decoder.decode(rest);
    REQUIRE(r.has_value());
    rest = rest.subspan(r->consumed);
    if (r->event == wire::decode_event::data_header)
      record_header = *r;
    if (r->event == wire::decode_event::data_payload)
      payload.insert(payload.end(), r->payload.begin(), r->payload.end());
  }
  REQUIRE(record_header.has_value());
  CHECK(record_header->kind == wire::frame_kind::record);
  CHECK(record_header->type == sample_type);
  CHECK(record_header->length == 3);
  CHECK(payload == bytes{std::byte{1}, std::byte{2}, std::byte{3}});
  CHECK(decoder.at_frame_boundary());

  bytes nil_type = handshake_prefix();
  append(nil_type, raw_header(0x05, 0));
  check_rejected(nil_type, peer_errc::protocol_error);
  bytes too_large = handshake_prefix();
  append(too_large, wire::encode_record_header(sample_type, (1U << 20U) + 1));
  check_rejected(too_large, peer_errc::frame_too_large);
  bytes before_accept = *wire::encode_hello(sample_hello());
  append(before_accept, wire::encode_record_header(sample_type, 0));
  check_rejected(before_accept, peer_errc::protocol_error);
}

TEST_CASE("sync frames: no type, a payload of 4 to 256 KiB streamed like data, only once established")
{
  const auto header = wire::encode_sync_header(12);
  CHECK(header[0] == std::byte{0x06});
  CHECK(std::all_of(header.begin() + 1, header.begin() + 20, [](std::byte b) { return b == std::byte{0}; }));
  bytes stream = handshake_prefix();
  append(stream, header);
  append(stream, pattern(12, 3));
  wire::frame_decoder decoder(64); // the sync bound is the protocol's, not the decoder's maximum
  std::span<const std::byte> rest(stream);
  std::optional<wire::decode_result> sync_header;
  bytes payload;
  for (int i = 0; i < 16 && !rest.empty(); ++i) {
    auto r = decoder.decode(rest);
    REQUIRE(r.has_value());
    rest = rest.subspan(r->consumed);
    if (r->event == wire::decode_event::data_header)
      sync_header = *r;
    if (r->event == wire::decode_event::data_payload)
      payload.insert(payload.end(), r->payload.begin(), r->payload.end());
  }
  REQUIRE(sync_header.has_value());
  CHECK(sync_header->kind == wire::frame_kind::sync);
  CHECK(sync_header->type.is_nil());
  CHECK(payload == pattern(12, 3));
  CHECK(decoder.at_frame_boundary());

  for (const std::uint64_t length : {std::uint64_t{0}, std::uint64_t{3}, std::uint64_t{256 * 1024 + 1}}) {
    CAPTURE(length);
    bytes bad = handshake_prefix();
    append(bad, wire::encode_sync_header(length));
    check_rejected(bad, peer_errc::protocol_error);
  }
  bytes typed = handshake_prefix();
  auto typed_header = wire::encode_sync_header(4);
  std::copy(sample_type.bytes().begin(), sample_type.bytes().end(), typed_header.begin() + 4);
  append(typed, typed_header);
  check_rejected(typed, peer_errc::protocol_error);
  bytes before_accept = *wire::encode_hello(sample_hello());
  append(before_accept, wire::encode_sync_header(4));
  check_rejected(before_accept, peer_errc::protocol_error);
}

TEST_CASE("rejected: unknown frame kinds and nonzero reserved bits")
{
  for (const unsigned kind : {0x00U, 0x07U, 0x0FU, 0x13U, 0x20U, 0x81U, 0xFFU}) {
    CAPTURE(kind);
    bytes stream = handshake_prefix();
    append(stream, raw_header(static_cast<std::uint8_t>(kind), 0));
    check_rejected(stream, peer_errc::protocol_error);
  }
  for (unsigned bit = 0; bit < 8; ++bit) {
    CAPTURE(bit);
    bytes stream = handshake_prefix();
    append(stream, raw_header(0x01, 4, sample_type, static_cast<std::uint8_t>(1U << bit)));
    append(stream, bytes(4));
    check_rejected(stream, peer_errc::protocol_error);
  }
  for (unsigned bit = 0; bit < 16; ++bit) {
    CAPTURE(bit);
    bytes stream = handshake_prefix();
    append(stream, raw_header(0x03, 8, {}, 0, static_cast<std::uint16_t>(1U << bit)));
    append(stream, bytes(8));
    check_rejected(stream, peer_errc::protocol_error);
  }
  // A nonzero flags byte also fails handshake frames.
  bytes hello = *wire::encode_hello(sample_hello());
  hello[wire::preamble_size + 1] = std::byte{0x80};
  check_rejected(hello, peer_errc::protocol_error);
}

TEST_CASE("rejected: data type rules")
{
  bytes nil_data = handshake_prefix();
  append(nil_data, raw_header(0x01, 0, data_type{}));
  check_rejected(nil_data, peer_errc::protocol_error);
  for (const unsigned kind : {0x02U, 0x03U, 0x04U}) {
    CAPTURE(kind);
    bytes typed_control = handshake_prefix();
    append(typed_control, raw_header(static_cast<std::uint8_t>(kind), 8, sample_type));
    append(typed_control, bytes(8));
    check_rejected(typed_control, peer_errc::protocol_error);
  }
  bytes typed_accept = *wire::encode_hello(sample_hello());
  append(typed_accept, raw_header(0x11, 0, sample_type));
  check_rejected(typed_accept, peer_errc::protocol_error);
}

TEST_CASE("rejected: malformed and truncated control frames")
{
  // Wrong keepalive sizes.
  for (const std::uint64_t length : {0U, 1U, 7U, 9U, 16U}) {
    CAPTURE(length);
    for (const std::uint8_t kind : {std::uint8_t{0x03}, std::uint8_t{0x04}}) {
      bytes stream = handshake_prefix();
      append(stream, raw_header(kind, length));
      append(stream, bytes(static_cast<std::size_t>(length)));
      check_rejected(stream, peer_errc::protocol_error);
    }
  }
  // Close shorter than its reason code, or longer than code + 256 bytes of text (refused at the header).
  for (const std::uint64_t length : {std::uint64_t{0}, std::uint64_t{3}, std::uint64_t{261}, std::uint64_t{1} << 40U}) {
    CAPTURE(length);
    bytes stream = handshake_prefix();
    append(stream, raw_header(0x02, length));
    check_rejected(stream, peer_errc::protocol_error);
  }
  // Accept with a payload.
  bytes accept_payload = *wire::encode_hello(sample_hello());
  append(accept_payload, raw_header(0x11, 1));
  append(accept_payload, bytes(1));
  check_rejected(accept_payload, peer_errc::protocol_error);
  // Reason 0 (success is not a reason), and a reason beyond the int range.
  for (const std::uint32_t code : {0U, 0x80000000U, 0xFFFFFFFFU}) {
    CAPTURE(code);
    bytes stream = handshake_prefix();
    append(stream, raw_header(0x02, 4));
    for (std::size_t i = 0; i < 4; ++i)
      stream.push_back(static_cast<std::byte>((code >> (8U * i)) & 0xFFU));
    check_rejected(stream, peer_errc::protocol_error);
  }
  // Text that is not clean UTF-8.
  for (const std::string_view text : {std::string_view("\xC0\xAF"), std::string_view("bad\nline"),
                                      std::string_view("nul\0", 4), std::string_view("\xED\xA0\x80")}) {
    bytes stream = handshake_prefix();
    append(stream, raw_header(0x02, 4 + text.size()));
    append(stream, hex("2a 00 00 00"));
    append(stream, text_bytes(text));
    check_rejected(stream, peer_errc::protocol_error);
  }
  // A truncated control frame is not an error yet, but the stream cannot end there cleanly.
  bytes stream = handshake_prefix();
  append(stream, to_bytes(wire::encode_ping(1)));
  stream.resize(stream.size() - 3);
  const auto truncated = feed_whole(stream);
  CHECK_FALSE(truncated.error.has_value());
  CHECK_FALSE(truncated.complete);
  CHECK(truncated.frames.size() == 2);
}

TEST_CASE("refuse and close reasons from a newer peer read as unknown_error")
{
  bytes stream = handshake_prefix();
  append(stream, raw_header(0x02, 4 + 3));
  append(stream, hex("e8 03 00 00")); // 1000: no such peer_errc (yet)
  append(stream, text_bytes("new"));
  const auto out = feed_whole(stream);
  CHECK_FALSE(out.error.has_value());
  REQUIRE(out.frames.size() == 3);
  CHECK(out.frames[2] == reason_record(wire::decode_event::close, peer_errc::unknown_error, "new"));
}

TEST_CASE("hello features: every bit is carried, those this implementation does not know included")
{
  for (const wire::node_features features :
       {wire::node_features{0}, wire::feature_records, wire::node_features{0xfffe}, wire::node_features{0xffff}}) {
    wire::hello_message hello = sample_hello();
    hello.features = features;
    const auto encoded = wire::encode_hello(hello);
    REQUIRE(encoded.has_value());
    const std::size_t at = wire::preamble_size + wire::frame_header_size + 2;
    CHECK(std::to_integer<unsigned>((*encoded)[at]) == (features & 0xffU));
    CHECK(std::to_integer<unsigned>((*encoded)[at + 1]) == (features >> 8U));
    const auto out = feed_whole(*encoded);
    CHECK_FALSE(out.error.has_value());
    REQUIRE(out.frames.size() == 1);
    CHECK(out.frames[0] == hello_record(hello));
  }
  CHECK(wire::hello_message{}.features == wire::supported_features);
  CHECK((wire::supported_features & wire::feature_records) != 0);
}

TEST_CASE("rejected: malformed hello")
{
  const bytes good = *wire::encode_hello(sample_hello());
  const std::size_t body = wire::preamble_size + wire::frame_header_size;
  const auto with = [&](std::size_t at, std::uint8_t value) {
    bytes bad = good;
    bad[at] = static_cast<std::byte>(value);
    return bad;
  };
  check_rejected(with(body + 0, 0), peer_errc::protocol_error);    // kind 0
  check_rejected(with(body + 0, 3), peer_errc::protocol_error);    // kind 3
  check_rejected(with(body + 1, 0x03), peer_errc::protocol_error); // unknown flag
  check_rejected(with(body + 1, 0x80), peer_errc::protocol_error); // unknown flag
  check_rejected(with(body + 1, 0x00), peer_errc::protocol_error); // flag cleared: "bob" becomes trailing bytes
  {
    bytes bad = good; // node id 0
    std::fill_n(bad.begin() + static_cast<std::ptrdiff_t>(body + 4), 8, std::byte{0});
    check_rejected(bad, peer_errc::protocol_error);
  }
  check_rejected(with(body + 12, 5), peer_errc::protocol_error);    // graph id length runs into the peer id
  check_rejected(with(body + 12, 0), peer_errc::protocol_error);    // empty graph id
  check_rejected(with(body + 13, 1), peer_errc::protocol_error);    // length 260: past the end
  check_rejected(with(body + 14, 0x07), peer_errc::protocol_error); // control character in the graph id
  check_rejected(with(body + 20, 0xFF), peer_errc::protocol_error); // invalid UTF-8 in the peer id
  check_rejected(with(body + 27, 0x80), peer_errc::protocol_error); // stray continuation in the expected peer id

  // Trailing bytes after the last id (the frame length says 31, one byte more than the ids use).
  {
    bytes bad = good;
    bad[wire::preamble_size + 20] = std::byte{31};
    bad.push_back(std::byte{'x'});
    check_rejected(bad, peer_errc::protocol_error);
  }
  // An id of 257 code points (the frame is otherwise well-formed).
  {
    bytes bad = preamble();
    const std::string long_id(257, 'a');
    bytes payload = hex("01 00 00 00 01 00 00 00 00 00 00 00");
    append(payload, hex("01 00"));
    append(payload, text_bytes("g"));
    payload.push_back(static_cast<std::byte>(long_id.size() & 0xFFU));
    payload.push_back(static_cast<std::byte>(long_id.size() >> 8U));
    append(payload, text_bytes(long_id));
    append(bad, raw_header(0x10, payload.size()));
    append(bad, payload);
    check_rejected(bad, peer_errc::protocol_error);
  }
  // Hello lengths outside [min, max] are refused at the header, before the body arrives.
  for (const std::uint64_t length : {std::uint64_t{0}, std::uint64_t{wire::min_hello_payload_size - 1},
                                     std::uint64_t{wire::max_hello_payload_size + 1}, std::uint64_t{1} << 63U}) {
    CAPTURE(length);
    bytes bad = preamble();
    append(bad, raw_header(0x10, length));
    check_rejected(bad, peer_errc::protocol_error);
  }
}

TEST_CASE("rejected: frames out of order")
{
  const bytes hello = *wire::encode_hello(sample_hello());
  const auto accept = to_bytes(wire::encode_accept());
  const auto ping = to_bytes(wire::encode_ping(1));
  const auto data = data_frame(sample_type, pattern(3, 1));
  const bytes hello_frame(hello.begin() + wire::preamble_size, hello.end());

  const auto refuse = *wire::encode_refuse(peer_errc::invalid_graph);
  const auto close = *wire::encode_close(peer_errc::connection_closed);
  const auto concat = [](std::initializer_list<bytes> parts) {
    bytes out;
    for (const auto& part : parts)
      append(out, part);
    return out;
  };
  const std::vector<std::pair<const char*, bytes>> cases = {
      {"frame before the preamble", accept},
      {"data instead of hello", concat({preamble(), data})},
      {"accept instead of hello", concat({preamble(), accept})},
      {"ping in the handshake", concat({hello, ping})},
      {"data before accept", concat({hello, data})},
      {"second hello", concat({hello, hello_frame})},
      {"second preamble", concat({hello, hello})},
      {"hello after accept", concat({handshake_prefix(), hello_frame})},
      {"second accept", concat({handshake_prefix(), accept})},
      {"refuse after accept", concat({handshake_prefix(), refuse})},
      {"data after close", concat({handshake_prefix(), close, data})},
      {"anything after refuse", concat({hello, refuse, accept})},
  };
  for (const auto& [name, stream] : cases) {
    CAPTURE(name);
    check_rejected(stream, peer_errc::protocol_error);
  }
}

TEST_CASE("a failed decoder stays failed")
{
  wire::frame_decoder decoder(1024, wire::decoder_phase::established);
  const auto bad = raw_header(0x7F, 0);
  auto r = decoder.decode(bad);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == peer_errc::protocol_error);
  CHECK(decoder.error() == peer_errc::protocol_error);
  // Valid frames and empty input afterwards all report the same error.
  for (const auto& next : {to_bytes(wire::encode_ping(1)), data_frame(sample_type, pattern(5, 1)), bytes{}}) {
    r = decoder.decode(next);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == peer_errc::protocol_error);
  }
  const auto advanced = decoder.advance_payload(0);
  REQUIRE_FALSE(advanced.has_value());
  CHECK(advanced.error() == peer_errc::protocol_error);
  CHECK(decoder.phase() == wire::decoder_phase::failed);
}

TEST_CASE("encoders refuse what a peer would refuse")
{
  wire::hello_message hello = sample_hello();
  CHECK(wire::encode_hello(hello).has_value());
  {
    auto bad = hello;
    bad.graph = graph_id{};
    CHECK(error_of(wire::encode_hello(bad)) == peer_errc::invalid_argument);
  }
  {
    auto bad = hello;
    bad.peer = peer_id{};
    CHECK(error_of(wire::encode_hello(bad)) == peer_errc::invalid_argument);
  }
  {
    auto bad = hello;
    bad.node = node_id{};
    CHECK(error_of(wire::encode_hello(bad)) == peer_errc::invalid_argument);
  }
  {
    auto bad = hello;
    bad.expected_peer = peer_id{};
    CHECK(error_of(wire::encode_hello(bad)) == peer_errc::invalid_argument);
  }
  {
    auto bad = hello;
    bad.kind = static_cast<connection_kind>(3);
    CHECK(error_of(wire::encode_hello(bad)) == peer_errc::invalid_argument);
  }
  CHECK(error_of(wire::encode_close(peer_errc{})) == peer_errc::invalid_argument);
  CHECK(error_of(wire::encode_refuse(static_cast<peer_errc>(-5))) == peer_errc::invalid_argument);
  CHECK(wire::encode_close(peer_errc::timed_out, std::string(256, 'x')).has_value());
  CHECK(error_of(wire::encode_close(peer_errc::timed_out, std::string(257, 'x'))) == peer_errc::invalid_argument);
  CHECK(error_of(wire::encode_close(peer_errc::timed_out, "\xC0\xAF")) == peer_errc::invalid_argument);
  CHECK(error_of(wire::encode_refuse(peer_errc::timed_out, "tab\t")) == peer_errc::invalid_argument);
  // The longest text decodes back intact.
  bytes stream = handshake_prefix();
  append(stream, *wire::encode_close(peer_errc::timed_out, std::string(256, 'x')));
  const auto out = feed_whole(stream);
  REQUIRE(out.frames.size() == 3);
  CHECK(out.frames[2].text == std::string(256, 'x'));
}

TEST_CASE("steady state allocates nothing: encoding data headers and keepalives, decoding data and keepalives")
{
  bytes stream;
  for (unsigned i = 0; i < 200; ++i) {
    append(stream, data_frame(sample_type, pattern(i % 50U, i)));
    append(stream, wire::encode_ping(i));
  }
  wire::frame_decoder decoder(1024, wire::decoder_phase::established);
  std::array<std::byte, wire::data_frame_header_size> slot{};
  std::size_t frames = 0;
  std::size_t mismatches = 0;

  const std::size_t before = peergraph::test::heap_allocations();
  for (std::size_t i = 0; i < 1000; ++i) {
    wire::encode_data_header(slot, sample_type, i);
    const auto header = wire::encode_data_header(sample_type, i);
    const auto ping = wire::encode_ping(i);
    if (slot != header || std::to_integer<std::size_t>(ping[28]) != (i & 0xFFU))
      ++mismatches;
  }
  std::span<const std::byte> input(stream);
  // Fed in 100-byte reads, so headers and pings straddle reads too.
  for (std::size_t at = 0; at < stream.size(); at += 100) {
    auto piece = input.subspan(at, std::min<std::size_t>(100, stream.size() - at));
    for (int calls = 0; calls < 300 && !piece.empty(); ++calls) {
      const auto r = decoder.decode(piece);
      if (!r)
        break;
      if (r->frame_complete)
        ++frames;
      piece = piece.subspan(r->consumed);
    }
  }
  const std::size_t after = peergraph::test::heap_allocations();
  CHECK(after == before);
  CHECK(frames == 400);
  CHECK(mismatches == 0);
}

TEST_CASE("randomized: 20,000 mutated streams decode like the reference parser, whole and in random pieces")
{
  constexpr std::uint64_t max_payload = 64;
  // Two valid streams: one accepted conversation, one refused handshake.
  bytes accepted = *wire::encode_hello(sample_hello());
  std::vector<std::size_t> header_offsets = {wire::preamble_size};
  header_offsets.push_back(accepted.size());
  append(accepted, wire::encode_accept());
  const std::vector<std::size_t> sizes = {0, 1, 5, 40, 64, 13};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    header_offsets.push_back(accepted.size());
    append(accepted, data_frame(i % 2 == 0 ? sample_type : other_type, pattern(sizes[i], static_cast<unsigned>(i))));
    if (i == 2) {
      header_offsets.push_back(accepted.size());
      append(accepted, wire::encode_ping(0xABCDEF));
      header_offsets.push_back(accepted.size());
      append(accepted, wire::encode_pong(0xABCDEF));
    }
  }
  header_offsets.push_back(accepted.size());
  append(accepted, *wire::encode_close(peer_errc::connection_closed, "bye"));
  bytes refused = *wire::encode_hello(sample_hello());
  append(refused, *wire::encode_refuse(peer_errc::invalid_graph, "wrong graph"));
  // A closed graph's caller: membership frames before the hello.
  bytes closed = preamble();
  append(closed, wire::encode_membership_challenge(filled_nonce(0x11)));
  append(closed, wire::encode_membership_proof(filled_nonce(0x22)));
  append(closed, hello_frame(sample_hello()));
  append(closed, wire::encode_accept());
  append(closed, data_frame(sample_type, pattern(9, 1)));

  REQUIRE(reference_decode(accepted, max_payload).frames.size() == 11);
  REQUIRE(reference_decode(closed, max_payload).frames.size() == 5);
  REQUIRE(feed_whole(accepted, {max_payload}) == reference_decode(accepted, max_payload));

  std::mt19937_64 rng(0x5EED'2024'0601ULL);
  const auto below = [&](std::size_t n) { return n == 0 ? std::size_t{0} : static_cast<std::size_t>(rng() % n); };
  const std::uint64_t interesting[] = {
      0, 1, 7, 8, 63, 64, 65, 4, 260, 261, 3090, std::uint64_t{1} << 63U, std::numeric_limits<std::uint64_t>::max()};
  std::size_t errors = 0;
  std::size_t clean = 0;
  std::size_t failures = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    const std::size_t base = below(8);
    const bool use_refused = base == 0;
    const bool use_closed = base == 1;
    bytes stream = use_refused ? refused : use_closed ? closed : accepted;
    const std::size_t operations = 1 + below(3);
    for (std::size_t op = 0; op < operations; ++op) {
      const std::size_t at = below(stream.size() + 1);
      switch (below(8)) {
      case 0: // flip a bit
        if (at < stream.size())
          stream[at] ^= static_cast<std::byte>(1U << below(8));
        break;
      case 1: // set a byte
        if (at < stream.size())
          stream[at] = static_cast<std::byte>(below(256));
        break;
      case 2: { // insert random bytes
        bytes more(1 + below(8));
        for (auto& b : more)
          b = static_cast<std::byte>(below(256));
        stream.insert(stream.begin() + static_cast<std::ptrdiff_t>(at), more.begin(), more.end());
        break;
      }
      case 3: // erase bytes
        stream.erase(stream.begin() + static_cast<std::ptrdiff_t>(at),
                     stream.begin() + static_cast<std::ptrdiff_t>(std::min(stream.size(), at + 1 + below(8))));
        break;
      case 4: // truncate
        stream.resize(at);
        break;
      case 5: { // duplicate a range somewhere else
        const std::size_t from = below(stream.size());
        const std::size_t size = std::min(stream.size() - from, 1 + below(40));
        const bytes copy(stream.begin() + static_cast<std::ptrdiff_t>(from),
                         stream.begin() + static_cast<std::ptrdiff_t>(from + size));
        const std::size_t to = below(stream.size() + 1);
        stream.insert(stream.begin() + static_cast<std::ptrdiff_t>(to), copy.begin(), copy.end());
        break;
      }
      default: { // an interesting value in a frame's length field, or a byte of its kind/flags/type
        if (use_refused || use_closed)
          break;
        const std::size_t header = header_offsets[below(header_offsets.size())];
        if (header + wire::frame_header_size > stream.size())
          break;
        if (below(2) == 0) {
          const std::uint64_t value = interesting[below(std::size(interesting))];
          for (std::size_t i = 0; i < 8; ++i)
            stream[header + 20 + i] = static_cast<std::byte>((value >> (8U * i)) & 0xFFU);
        } else {
          stream[header + below(20)] = static_cast<std::byte>(below(256));
        }
        break;
      }
      }
    }

    const auto expected = reference_decode(stream, max_payload);
    feed_options options;
    options.max_payload = max_payload;
    options.use_advance = below(2) == 0;
    std::vector<std::size_t> pieces;
    for (std::size_t total = 0; total < stream.size();) {
      pieces.push_back(1 + below(below(4) == 0 ? 4 : 64));
      total += pieces.back();
    }
    const auto split = feed(stream, pieces, options);
    const auto whole = feed_whole(stream, options);
    const bool ok = split.violations.empty() && whole.violations.empty() && split == expected && whole == expected;
    if (!ok) {
      ++failures;
      if (failures <= 3) {
        CAPTURE(iteration);
        CHECK(split.violations.empty());
        CHECK(whole.violations.empty());
        CHECK(split == expected);
        CHECK(whole == expected);
      }
    }
    if (expected.error)
      ++errors;
    else
      ++clean;
  }
  CHECK(failures == 0);
  // The mutations reach both outcomes in quantity (not just one kind of rejection).
  CHECK(errors > 5000);
  CHECK(clean > 1000);
  MESSAGE("mutated streams: " << errors << " rejected, " << clean << " accepted (possibly incomplete)");
}
