//
// peergraph/wire.hpp
// ~~~~~~~~~~~~~~~~~~
// The wire protocol between two nodes: handshake, data frames, close and keepalive; encoders and an incremental,
// bounds-checked decoder. Pure: no I/O, decoding depends on nothing but the bytes fed in. docs/wire.md has the
// byte-level description.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/detail/wire_format.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/membership.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace peergraph::wire {

/// The 4 bytes every connection starts with, in each direction: ASCII "PGRF".
inline constexpr std::array<std::byte, 4> magic{std::byte{'P'}, std::byte{'G'}, std::byte{'R'}, std::byte{'F'}};
/// The protocol version this implementation speaks (and the only one it accepts).
inline constexpr std::uint16_t protocol_version = 1;
/// Size of the preamble: magic, version, reserved.
inline constexpr std::size_t preamble_size = 8;
/// Size of every frame header: kind, flags, reserved, data type, payload length.
inline constexpr std::size_t frame_header_size = 28;
/// Size of a data frame header (the common frame header).
inline constexpr std::size_t data_frame_header_size = frame_header_size;
/// Largest reason text of a refuse or close frame, in bytes of UTF-8.
inline constexpr std::size_t max_reason_text_size = 256;
/// Payload of a refuse or close frame: u32 reason, then the text.
inline constexpr std::size_t min_reason_payload_size = 4;
inline constexpr std::size_t max_reason_payload_size = min_reason_payload_size + max_reason_text_size;
/// Payload of a ping or pong frame: the u64 token.
inline constexpr std::size_t ping_payload_size = 8;
/// A whole ping or pong frame.
inline constexpr std::size_t ping_frame_size = frame_header_size + ping_payload_size;
/// Fixed part of a hello payload: kind, flags, features, node id.
inline constexpr std::size_t hello_fixed_size = 12;
/// Smallest and largest hello payloads (graph id and peer id of 1 byte; three ids of peer_id::max_bytes).
inline constexpr std::size_t min_hello_payload_size = hello_fixed_size + 2 * (2 + 1);
inline constexpr std::size_t max_hello_payload_size = hello_fixed_size + 3 * (2 + peer_id::max_bytes);
/// Payload of a membership frame: step, reserved, a challenge and a proof (fields a step does not use are zero).
inline constexpr std::size_t membership_payload_size = 4 + membership_nonce_size + membership_proof_size;
/// A whole membership frame.
inline constexpr std::size_t membership_frame_size = frame_header_size + membership_payload_size;
/// Hard ceiling on a decoder's maximum payload size: 2^62 bytes, so a length above it (such as 2^63) is always
/// refused, whatever the configuration.
inline constexpr std::uint64_t max_payload_ceiling = std::uint64_t{1} << 62U;
/// Payload bounds of a sync frame (docs/wire.md, "Sync payload"): a step, then what the step carries.
inline constexpr std::size_t min_sync_payload_size = 4;
inline constexpr std::size_t max_sync_payload_size = 256 * 1024;

/// Kind of a frame, the first byte of its header.
enum class frame_kind : std::uint8_t
{
  data = 0x01,       ///< typed application data
  close = 0x02,      ///< orderly close with a reason; the last frame in its direction
  ping = 0x03,       ///< keepalive request with a token
  pong = 0x04,       ///< keepalive answer with the same token
  record = 0x05,     ///< one version of a graph record, its type in the header (flooding between neighbors)
  sync = 0x06,       ///< a message of the record synchronisation between two neighbors
  hello = 0x10,      ///< handshake: who is talking, on which graph
  accept = 0x11,     ///< handshake: the hello was accepted
  refuse = 0x12,     ///< handshake: the hello was refused, with a reason; the last frame in its direction
  membership = 0x13, ///< handshake, closed graphs: a membership challenge or proof, before the hello
};

/// Which message of the membership exchange a membership frame carries (docs/wire.md, "Closed graphs").
enum class membership_step : std::uint8_t
{
  challenge = 1, ///< caller to acceptor: the caller's challenge
  answer = 2,    ///< acceptor to caller: the acceptor's challenge and its proof over both challenges
  proof = 3,     ///< caller to acceptor: the caller's proof over both challenges; its hello follows
};

/// A received membership frame.
struct membership_message
{
  membership_step step = membership_step::challenge;
  /// challenge and answer: the sender's challenge; zero for proof.
  std::array<std::byte, membership_nonce_size> nonce{};
  /// answer and proof: the sender's proof; zero for challenge.
  std::array<std::byte, membership_proof_size> proof{};

  friend bool operator==(const membership_message&, const membership_message&) = default;
};

/// What a node supports, as its hello announces it (docs/wire.md, "Hello payload"): a bit per feature. A receiver
/// ignores the bits it does not know, so a newer node can announce more.
using node_features = std::uint16_t;

/// The node speaks record and sync frames on neighbor connections (docs/wire.md, "Record payload", "Sync payload").
/// The graph refuses a neighbor connection whose other side does not announce it (unsupported_version).
inline constexpr node_features feature_records = 0x0001;

/// What this implementation supports.
inline constexpr node_features supported_features = feature_records;

/// A node's handshake announcement, sent by both sides as soon as a connection opens.
struct hello_message
{
  /// Neighbor or direct connection; both sides of one connection announce the same kind.
  connection_kind kind = connection_kind::neighbor;
  /// The graph the sender belongs to.
  graph_id graph;
  /// The sender's peer id.
  peer_id peer;
  /// The sender's node id: random per graph instance, never 0.
  node_id node;
  /// The peer id the sender expects on the other side, if it expects a particular one.
  std::optional<peer_id> expected_peer;
  /// What the sender supports (feature_records, ...), bits this implementation does not know included.
  node_features features = supported_features;

  friend bool operator==(const hello_message&, const hello_message&) = default;
};

/// The reason of a received refuse or close frame.
struct close_reason
{
  /// Why. Values this implementation does not know (sent by a newer one) read as peer_errc::unknown_error.
  peer_errc code = peer_errc::unknown_error;
  /// Optional human-readable detail: UTF-8, at most max_reason_text_size bytes, no control characters. A view
  /// into the decoder that produced it, valid while that decoder lives and decodes nothing more.
  std::string_view text;

  friend bool operator==(const close_reason&, const close_reason&) = default;
};

/// What one frame_decoder::decode() call found.
enum class decode_event : std::uint8_t
{
  need_more,    ///< every input byte was used and nothing is complete yet
  hello,        ///< the peer's preamble and hello arrived: frame_decoder::hello()
  accept,       ///< the peer accepted our hello
  refuse,       ///< the peer refused our hello: frame_decoder::reason()
  data_header,  ///< a data frame begins: decode_result::type and ::length; its payload follows
  data_payload, ///< the next bytes of the current data frame's payload: decode_result::payload
  close,        ///< the peer closes: frame_decoder::reason()
  ping,         ///< keepalive request: decode_result::token
  pong,         ///< keepalive answer: decode_result::token
  membership,   ///< a membership challenge or proof before the hello: frame_decoder::membership()
};

/// The result of one frame_decoder::decode() call.
struct decode_result
{
  /// What was found.
  decode_event event = decode_event::need_more;
  /// How many input bytes were used, from the front; pass the rest to the next call. Equals the input size for
  /// need_more; for the other events the remaining input may already hold the next frames.
  std::size_t consumed = 0;
  /// Whether the frame ended with this event: every event but need_more, a data_header with a nonzero length, and a
  /// data_payload that is not the last part of its payload.
  bool frame_complete = false;
  /// data_header: the frame's kind, data, record or sync: record and sync payloads stream like data's.
  frame_kind kind = frame_kind::data;
  /// data_header: the data type, or a record frame's record type (never nil); nil for a sync frame.
  data_type type;
  /// data_header: the payload length (at most the decoder's maximum payload size; a sync frame's at most
  /// max_sync_payload_size).
  std::uint64_t length = 0;
  /// data_payload: payload bytes, a view into the input passed to decode().
  std::span<const std::byte> payload;
  /// ping and pong: the token.
  std::uint64_t token = 0;
};

/// Where a frame_decoder is in the conversation (docs/wire.md, "Order of messages").
enum class decoder_phase : std::uint8_t
{
  preamble,    ///< expecting the peer's preamble (magic, version), then its hello
  hello,       ///< preamble done, expecting membership frames (closed graphs), then the hello or a refuse
  reply,       ///< hello done, expecting accept or refuse
  established, ///< expecting data, close, ping and pong frames
  closed,      ///< a close or refuse arrived: any further byte is a protocol error
  failed,      ///< a decoding error happened: every later call reports it again
};

/// Incremental decoder of one direction of a connection, from the first byte (or, with
/// `decoder_phase::established`, from the first frame after the handshake).
///
/// Feed it bytes as they arrive, in order, in pieces of any size. Each decode() call reports at most one event and
/// how many bytes it used; call it again with the rest. Only data payloads are not copied: they are reported as views
/// into the input (data_payload), or the reader can skip the decoder for them entirely:
///
/// @code
/// // many small frames out of one read buffer
/// while (!input.empty()) {
///   auto r = decoder.decode(input);
///   if (!r) return close_connection(r.error());
///   input = input.subspan(r->consumed);
///   // switch (r->event) ...
/// }
/// // a large payload straight into its final buffer: after data_header with length L,
/// //   copy the data_payload views already in the read buffer, then read payload_remaining() bytes from the socket
/// //   into the final buffer and call advance_payload(n) for them.
/// @endcode
///
/// Any malformed input fails the decoder for good: protocol_error (unknown kind, nonzero reserved bits, wrong magic,
/// a frame not allowed in the current phase, a malformed or truncated handshake or control frame),
/// unsupported_version (the peer speaks another version), frame_too_large (a data length over the maximum, refused
/// as soon as the header arrives, before any payload).
class frame_decoder
{
public:
  /// @param max_payload_size the largest data payload accepted, clamped to max_payload_ceiling.
  /// @param start where the stream starts: decoder_phase::preamble for a new connection (the default), or
  /// decoder_phase::established to decode frames without a handshake.
  explicit frame_decoder(std::uint64_t max_payload_size, decoder_phase start = decoder_phase::preamble) noexcept
      : max_payload_(std::min(max_payload_size, max_payload_ceiling)), phase_(start)
  {
  }

  /// Decodes from the front of `input` until one event is complete or the input is used up.
  /// @param input the next bytes of the stream, after those already used.
  /// @return the event and the number of bytes used; or the error that failed the decoder (now and on every later
  /// call).
  [[nodiscard]] expected<decode_result, peer_error> decode(std::span<const std::byte> input)
  {
    if (phase_ == decoder_phase::failed)
      return unexpected(error_);
    std::size_t used = 0;
    while (used < input.size()) {
      const auto rest = input.subspan(used);
      if (step_ == step::payload) {
        const std::size_t size =
            payload_remaining_ < rest.size() ? static_cast<std::size_t>(payload_remaining_) : rest.size();
        payload_remaining_ -= size;
        decode_result result;
        result.event = decode_event::data_payload;
        result.consumed = used + size;
        result.payload = rest.first(size);
        result.frame_complete = payload_remaining_ == 0;
        if (result.frame_complete)
          step_ = step::header;
        return result;
      }
      if (step_ == step::body) {
        std::span<std::byte> body = body_buffer();
        const std::size_t size = std::min(body.size() - body_have_, rest.size());
        std::copy_n(rest.begin(), size, body.begin() + static_cast<std::ptrdiff_t>(body_have_));
        body_have_ += size;
        used += size;
        if (body_have_ < body.size())
          continue;
        return finish_body(used);
      }
      // step::header (or the preamble)
      if (phase_ == decoder_phase::closed)
        return fail(peer_errc::protocol_error);
      const std::size_t need = phase_ == decoder_phase::preamble ? preamble_size : frame_header_size;
      std::span<const std::byte> header;
      if (header_have_ == 0 && rest.size() >= need) {
        header = rest.first(need); // the whole header is in the input: no copy
        used += need;
      } else {
        const std::size_t size = std::min(need - header_have_, rest.size());
        std::copy_n(rest.begin(), size, header_buffer_.begin() + static_cast<std::ptrdiff_t>(header_have_));
        header_have_ += size;
        used += size;
        if (header_have_ < need)
          continue;
        header = std::span<const std::byte>(header_buffer_).first(need);
        header_have_ = 0;
      }
      if (phase_ == decoder_phase::preamble) {
        if (const auto ec = check_preamble(header); ec != peer_errc{})
          return fail(ec);
        phase_ = decoder_phase::hello;
        continue;
      }
      if (const auto ec = check_header(header); ec != peer_errc{})
        return fail(ec);
      if (kind_ == frame_kind::data || kind_ == frame_kind::record || kind_ == frame_kind::sync) {
        decode_result result;
        result.event = decode_event::data_header;
        result.kind = kind_;
        result.consumed = used;
        result.type = data_type::from_bytes(header.subspan<detail::header_type_offset, data_type::byte_size>());
        result.length = payload_remaining_;
        result.frame_complete = payload_remaining_ == 0;
        step_ = result.frame_complete ? step::header : step::payload;
        return result;
      }
      step_ = step::body;
      body_have_ = 0;
      if (body_size_ == 0)
        return finish_body(used);
    }
    decode_result result;
    result.consumed = used;
    return result;
  }

  /// Records that the reader delivered `size` bytes of the current data payload itself (e.g. read them from the
  /// socket straight into the payload's final buffer), so the decoder skips them.
  /// @return whether the payload (and its frame) is now complete; or invalid_argument, leaving the decoder
  /// unchanged, if no payload is pending or `size` exceeds payload_remaining(); or the error of a failed decoder.
  [[nodiscard]] expected<bool, peer_error> advance_payload(std::uint64_t size) noexcept
  {
    if (phase_ == decoder_phase::failed)
      return unexpected(error_);
    if (step_ != step::payload || size > payload_remaining_)
      return unexpected(peer_error(peer_errc::invalid_argument));
    payload_remaining_ -= size;
    if (payload_remaining_ != 0)
      return false;
    step_ = step::header;
    return true;
  }

  /// Where the decoder is in the conversation.
  [[nodiscard]] decoder_phase phase() const noexcept { return phase_; }
  /// Whether a decoding error happened (phase() == decoder_phase::failed).
  [[nodiscard]] bool failed() const noexcept { return phase_ == decoder_phase::failed; }
  /// The error that failed the decoder; meaningful only when failed().
  [[nodiscard]] peer_error error() const noexcept { return error_; }
  /// Bytes of the current data payload not delivered yet (0 outside a data payload).
  [[nodiscard]] std::uint64_t payload_remaining() const noexcept
  {
    return step_ == step::payload ? payload_remaining_ : 0;
  }
  /// Whether the stream may end here: no part of a frame (or of the preamble) is pending and the decoder has not
  /// failed. A reader that sees the connection end when this is false knows the peer stopped mid-frame.
  [[nodiscard]] bool at_frame_boundary() const noexcept
  {
    return phase_ != decoder_phase::failed && step_ == step::header && header_have_ == 0;
  }
  /// The largest data payload accepted.
  [[nodiscard]] std::uint64_t max_payload_size() const noexcept { return max_payload_; }

  /// The peer's hello, after decode_event::hello (the non-const overload lets the caller move it out).
  [[nodiscard]] const hello_message& hello() const noexcept { return hello_; }
  [[nodiscard]] hello_message& hello() noexcept { return hello_; }
  /// The membership frame, after decode_event::membership.
  [[nodiscard]] const membership_message& membership() const noexcept { return membership_; }
  /// The reason of the refuse or close frame, after decode_event::refuse or decode_event::close.
  [[nodiscard]] close_reason reason() const noexcept
  {
    // Built on each call, so a copied or moved decoder views its own buffer.
    return {reason_code_,
            detail::as_text(
                std::span<const std::byte>(control_buffer_).subspan(min_reason_payload_size, reason_text_size_))};
  }

private:
  enum class step : std::uint8_t
  {
    header,
    body,
    payload,
  };

  expected<decode_result, peer_error> fail(peer_errc code) noexcept
  {
    phase_ = decoder_phase::failed;
    error_ = peer_error(code);
    return unexpected(error_);
  }

  std::span<std::byte> body_buffer() noexcept
  {
    if (kind_ == frame_kind::hello)
      return hello_buffer_;
    return std::span<std::byte>(control_buffer_).first(static_cast<std::size_t>(body_size_));
  }

  static peer_errc check_preamble(std::span<const std::byte> preamble) noexcept
  {
    if (!std::equal(magic.begin(), magic.end(), preamble.subspan(detail::preamble_magic_offset).begin()))
      return peer_errc::protocol_error;
    if (detail::load_le<std::uint16_t>(preamble, detail::preamble_version_offset) != protocol_version)
      return peer_errc::unsupported_version;
    if (detail::load_le<std::uint16_t>(preamble, detail::preamble_reserved_offset) != 0)
      return peer_errc::protocol_error;
    return peer_errc{};
  }

  // Validates a frame header against the current phase and the limits; sets kind_ and the body or payload size.
  peer_errc check_header(std::span<const std::byte> header)
  {
    const auto kind = static_cast<frame_kind>(std::to_integer<std::uint8_t>(header[detail::header_kind_offset]));
    if (header[detail::header_flags_offset] != std::byte{0} ||
        detail::load_le<std::uint16_t>(header, detail::header_reserved_offset) != 0)
      return peer_errc::protocol_error;
    const auto type = data_type::from_bytes(header.subspan<detail::header_type_offset, data_type::byte_size>());
    const auto length = detail::load_le<std::uint64_t>(header, detail::header_length_offset);
    std::uint64_t min_length = 0;
    std::uint64_t max_length = 0;
    switch (kind) {
    case frame_kind::hello:
      // A side that began the membership exchange sends its hello only after its last membership frame.
      if (phase_ != decoder_phase::hello || last_step_ == membership_step::challenge)
        return peer_errc::protocol_error;
      min_length = min_hello_payload_size;
      max_length = max_hello_payload_size;
      break;
    case frame_kind::accept:
      if (phase_ != decoder_phase::reply)
        return peer_errc::protocol_error;
      break;
    case frame_kind::refuse:
      // In place of the hello too: an accepting side refuses a caller without introducing itself.
      if (phase_ != decoder_phase::reply && phase_ != decoder_phase::hello)
        return peer_errc::protocol_error;
      min_length = min_reason_payload_size;
      max_length = max_reason_payload_size;
      break;
    case frame_kind::membership:
      if (phase_ != decoder_phase::hello)
        return peer_errc::protocol_error;
      min_length = membership_payload_size;
      max_length = membership_payload_size;
      break;
    case frame_kind::data:
    case frame_kind::record:
      if (phase_ != decoder_phase::established || type.is_nil())
        return peer_errc::protocol_error;
      if (length > max_payload_)
        return peer_errc::frame_too_large;
      kind_ = kind;
      payload_remaining_ = length;
      return peer_errc{};
    case frame_kind::sync:
      // Streamed like a record frame, for the record layer; its size is the protocol's, not the configuration's.
      if (phase_ != decoder_phase::established || !type.is_nil() || length < min_sync_payload_size ||
          length > max_sync_payload_size)
        return peer_errc::protocol_error;
      kind_ = kind;
      payload_remaining_ = length;
      return peer_errc{};
    case frame_kind::close:
      if (phase_ != decoder_phase::established)
        return peer_errc::protocol_error;
      min_length = min_reason_payload_size;
      max_length = max_reason_payload_size;
      break;
    case frame_kind::ping:
    case frame_kind::pong:
      if (phase_ != decoder_phase::established)
        return peer_errc::protocol_error;
      min_length = ping_payload_size;
      max_length = ping_payload_size;
      break;
    default:
      return peer_errc::protocol_error; // unknown kind
    }
    // Handshake and control frames carry no data type, and their sizes are bounded by their contents.
    if (!type.is_nil() || length < min_length || length > max_length)
      return peer_errc::protocol_error;
    kind_ = kind;
    body_size_ = length;
    if (kind == frame_kind::hello)
      hello_buffer_.resize(static_cast<std::size_t>(length));
    return peer_errc{};
  }

  expected<decode_result, peer_error> finish_body(std::size_t used)
  {
    step_ = step::header;
    decode_result result;
    result.consumed = used;
    result.frame_complete = true;
    const std::span<const std::byte> body = body_buffer();
    switch (kind_) {
    case frame_kind::hello: {
      const auto ec = parse_hello(body);
      hello_buffer_ = std::vector<std::byte>(); // the handshake buffer is not needed again
      if (ec != peer_errc{})
        return fail(ec);
      phase_ = decoder_phase::reply;
      result.event = decode_event::hello;
      return result;
    }
    case frame_kind::accept:
      phase_ = decoder_phase::established;
      result.event = decode_event::accept;
      return result;
    case frame_kind::refuse:
    case frame_kind::close:
      if (const auto ec = parse_reason(body); ec != peer_errc{})
        return fail(ec);
      phase_ = decoder_phase::closed;
      result.event = kind_ == frame_kind::refuse ? decode_event::refuse : decode_event::close;
      return result;
    case frame_kind::ping:
    case frame_kind::pong:
      result.token = detail::load_le<std::uint64_t>(body, 0);
      result.event = kind_ == frame_kind::ping ? decode_event::ping : decode_event::pong;
      return result;
    case frame_kind::membership:
      if (const auto ec = parse_membership(body); ec != peer_errc{})
        return fail(ec);
      result.event = decode_event::membership;
      return result;
    case frame_kind::data:
    case frame_kind::record:
    case frame_kind::sync:
      break;
    }
    return fail(peer_errc::protocol_error); // unreachable: data, record and sync frames have no buffered body
  }

  template <class Id>
  static bool read_id(detail::byte_reader& reader, Id& id)
  {
    std::uint16_t size = 0;
    std::span<const std::byte> bytes;
    if (!reader.read(size) || size > Id::max_bytes || !reader.read_bytes(size, bytes))
      return false;
    auto made = Id::make(detail::as_text(bytes));
    if (!made)
      return false;
    id = std::move(*made);
    return true;
  }

  peer_errc parse_hello(std::span<const std::byte> body)
  {
    detail::byte_reader reader(body);
    std::uint8_t kind = 0;
    std::uint8_t flags = 0;
    node_features features = 0;
    std::uint64_t node = 0;
    if (!reader.read(kind) || !reader.read(flags) || !reader.read(features) || !reader.read(node))
      return peer_errc::protocol_error;
    if ((kind != 1 && kind != 2) || (flags & ~std::uint8_t{1}) != 0 || node == 0)
      return peer_errc::protocol_error;
    hello_message message;
    message.kind = static_cast<connection_kind>(kind);
    message.node = node_id(node);
    message.features = features;
    if (!read_id(reader, message.graph) || !read_id(reader, message.peer))
      return peer_errc::protocol_error;
    if ((flags & 1U) != 0) {
      peer_id expected_peer;
      if (!read_id(reader, expected_peer))
        return peer_errc::protocol_error;
      message.expected_peer = std::move(expected_peer);
    }
    if (reader.remaining() != 0)
      return peer_errc::protocol_error;
    hello_ = std::move(message);
    return peer_errc{};
  }

  // One direction carries either challenge then proof (the caller) or answer alone (the acceptor), and each field
  // a step does not use is zero, so every accepted frame has exactly one encoding.
  peer_errc parse_membership(std::span<const std::byte> body) noexcept
  {
    const auto received = static_cast<membership_step>(std::to_integer<std::uint8_t>(body[0]));
    const bool in_order = last_step_ == membership_step{}
                              ? received == membership_step::challenge || received == membership_step::answer
                              : last_step_ == membership_step::challenge && received == membership_step::proof;
    if (!in_order || body[1] != std::byte{0} || detail::load_le<std::uint16_t>(body, 2) != 0)
      return peer_errc::protocol_error;
    membership_message message;
    message.step = received;
    const auto nonce = body.subspan(4, membership_nonce_size);
    const auto proof = body.subspan(4 + membership_nonce_size, membership_proof_size);
    std::copy(nonce.begin(), nonce.end(), message.nonce.begin());
    std::copy(proof.begin(), proof.end(), message.proof.begin());
    const auto is_zero = [](const auto& bytes) {
      return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
    };
    if ((received == membership_step::proof && !is_zero(message.nonce)) ||
        (received == membership_step::challenge && !is_zero(message.proof)))
      return peer_errc::protocol_error;
    membership_ = message;
    last_step_ = received;
    return peer_errc{};
  }

  peer_errc parse_reason(std::span<const std::byte> body) noexcept
  {
    const auto code = detail::load_le<std::uint32_t>(body, 0);
    const auto text = detail::as_text(body.subspan(min_reason_payload_size));
    if (code == 0 || code > static_cast<std::uint32_t>(std::numeric_limits<int>::max()))
      return peer_errc::protocol_error;
    if (peergraph::detail::check_text(text, max_reason_text_size, true) != peergraph::detail::text_check::ok)
      return peer_errc::protocol_error;
    reason_code_ = known_reason(static_cast<int>(code)) ? static_cast<peer_errc>(code) : peer_errc::unknown_error;
    reason_text_size_ = text.size();
    return peer_errc{};
  }

  static bool known_reason(int code) noexcept
  {
    return std::any_of(all_peer_errc.begin(), all_peer_errc.end(),
                       [code](peer_errc known) { return static_cast<int>(known) == code; });
  }

  std::uint64_t max_payload_;
  decoder_phase phase_;
  step step_ = step::header;
  frame_kind kind_ = frame_kind::data;
  std::size_t header_have_ = 0;
  std::uint64_t body_size_ = 0;
  std::size_t body_have_ = 0;
  std::uint64_t payload_remaining_ = 0;
  peer_error error_;
  peer_errc reason_code_ = peer_errc::unknown_error;
  std::size_t reason_text_size_ = 0;
  hello_message hello_;
  membership_message membership_;
  membership_step last_step_{}; // the last membership frame in this direction; 0 for none
  std::array<std::byte, frame_header_size> header_buffer_{};
  // Large enough for every control frame body: reasons, tokens and membership frames.
  std::array<std::byte, std::max(max_reason_payload_size, membership_payload_size)> control_buffer_{};
  std::vector<std::byte> hello_buffer_;
};

/// Writes the header of a data frame carrying `payload_size` bytes of type `type` into `out`. Allocation-free: the
/// send path gathers [header, payload buffers...] into one write without copying the payload.
/// @param out where the header goes.
/// @param type the data type; must not be nil (peers refuse such frames).
/// @param payload_size the number of payload bytes that follow the header.
/// @param kind frame_kind::data, or frame_kind::record for a record frame (`type` is then the record's type).
constexpr void encode_data_header(std::span<std::byte, data_frame_header_size> out, const data_type& type,
                                  std::uint64_t payload_size, frame_kind kind = frame_kind::data) noexcept
{
  PEERGRAPH_ASSERT(!type.is_nil() && (kind == frame_kind::data || kind == frame_kind::record));
  out[detail::header_kind_offset] = static_cast<std::byte>(kind);
  out[detail::header_flags_offset] = std::byte{0};
  detail::store_le<std::uint16_t>(out, detail::header_reserved_offset, 0);
  std::copy(type.bytes().begin(), type.bytes().end(), out.subspan(detail::header_type_offset).begin());
  detail::store_le<std::uint64_t>(out, detail::header_length_offset, payload_size);
}

/// The header of a data frame carrying `payload_size` bytes of type `type` (not nil). Allocation-free.
[[nodiscard]] constexpr std::array<std::byte, data_frame_header_size> encode_data_header(
    const data_type& type, std::uint64_t payload_size) noexcept
{
  std::array<std::byte, data_frame_header_size> header{};
  encode_data_header(header, type, payload_size);
  return header;
}

/// The header of a record frame carrying a record payload of `payload_size` bytes of record type `type` (not nil).
[[nodiscard]] constexpr std::array<std::byte, data_frame_header_size> encode_record_header(
    const data_type& type, std::uint64_t payload_size) noexcept
{
  std::array<std::byte, data_frame_header_size> header{};
  encode_data_header(header, type, payload_size, frame_kind::record);
  return header;
}

namespace detail {

/// Writes the header of a frame without data type.
constexpr void encode_plain_header(std::span<std::byte> out, frame_kind kind, std::uint64_t payload_size) noexcept
{
  out[header_kind_offset] = static_cast<std::byte>(kind);
  std::fill_n(out.subspan(header_flags_offset).begin(), header_length_offset - header_flags_offset, std::byte{0});
  store_le<std::uint64_t>(out, header_length_offset, payload_size);
}

constexpr std::array<std::byte, ping_frame_size> encode_keepalive(frame_kind kind, std::uint64_t token) noexcept
{
  std::array<std::byte, ping_frame_size> frame{};
  encode_plain_header(frame, kind, ping_payload_size);
  store_le<std::uint64_t>(frame, frame_header_size, token);
  return frame;
}

inline expected<std::vector<std::byte>, peer_error> encode_reason(frame_kind kind, peer_errc reason,
                                                                  std::string_view text)
{
  if (static_cast<int>(reason) <= 0 || text.size() > max_reason_text_size ||
      peergraph::detail::check_text(text, max_reason_text_size, true) != peergraph::detail::text_check::ok)
    return unexpected(peer_error(peer_errc::invalid_argument));
  std::vector<std::byte> frame(frame_header_size + min_reason_payload_size + text.size());
  encode_plain_header(frame, kind, min_reason_payload_size + text.size());
  store_le<std::uint32_t>(frame, frame_header_size, static_cast<std::uint32_t>(reason));
  const auto bytes = as_bytes(text);
  const auto text_out = std::span<std::byte>(frame).subspan(frame_header_size + min_reason_payload_size);
  std::copy(bytes.begin(), bytes.end(), text_out.begin());
  return frame;
}

/// Writes the preamble (magic, version, reserved) at the start of `out`.
inline void encode_preamble(std::span<std::byte> out) noexcept
{
  std::copy(magic.begin(), magic.end(), out.subspan(preamble_magic_offset).begin());
  store_le<std::uint16_t>(out, preamble_version_offset, protocol_version);
  store_le<std::uint16_t>(out, preamble_reserved_offset, 0);
}

template <class Id>
void append_id(std::vector<std::byte>& out, const Id& id)
{
  const auto size = static_cast<std::uint16_t>(id.view().size());
  out.push_back(static_cast<std::byte>(size & 0xFFU));
  out.push_back(static_cast<std::byte>(size >> 8U));
  const auto bytes = as_bytes(id.view());
  out.insert(out.end(), bytes.begin(), bytes.end());
}

} // namespace detail

/// The header of a sync frame carrying `payload_size` bytes (min_sync_payload_size ..= max_sync_payload_size).
[[nodiscard]] constexpr std::array<std::byte, frame_header_size> encode_sync_header(std::uint64_t payload_size) noexcept
{
  std::array<std::byte, frame_header_size> header{};
  detail::encode_plain_header(header, frame_kind::sync, payload_size);
  return header;
}

/// The preamble every connection starts with, in each direction (magic, version, reserved). Allocation-free.
[[nodiscard]] inline std::array<std::byte, preamble_size> encode_preamble() noexcept
{
  std::array<std::byte, preamble_size> preamble{};
  detail::encode_preamble(preamble);
  return preamble;
}

namespace detail {

inline std::array<std::byte, membership_frame_size> encode_membership(membership_step step,
                                                                      std::span<const std::byte> nonce,
                                                                      std::span<const std::byte> proof) noexcept
{
  std::array<std::byte, membership_frame_size> frame{};
  encode_plain_header(frame, frame_kind::membership, membership_payload_size);
  frame[frame_header_size] = static_cast<std::byte>(step);
  std::copy(nonce.begin(), nonce.end(), frame.begin() + frame_header_size + 4);
  std::copy(proof.begin(), proof.end(), frame.begin() + frame_header_size + 4 + membership_nonce_size);
  return frame;
}

} // namespace detail

/// The caller's first membership frame in a closed graph: its challenge (fresh random bytes). Allocation-free.
[[nodiscard]] inline std::array<std::byte, membership_frame_size> encode_membership_challenge(
    membership_nonce_view caller_nonce) noexcept
{
  return detail::encode_membership(membership_step::challenge, caller_nonce, {});
}

/// The acceptor's membership frame: its own challenge and its proof over both. Allocation-free.
[[nodiscard]] inline std::array<std::byte, membership_frame_size> encode_membership_answer(
    membership_nonce_view acceptor_nonce, std::span<const std::byte, membership_proof_size> proof) noexcept
{
  return detail::encode_membership(membership_step::answer, acceptor_nonce, proof);
}

/// The caller's second membership frame: its proof over both challenges; its hello follows. Allocation-free.
[[nodiscard]] inline std::array<std::byte, membership_frame_size> encode_membership_proof(
    std::span<const std::byte, membership_proof_size> proof) noexcept
{
  return detail::encode_membership(membership_step::proof, {}, proof);
}

/// The accept frame (the handshake reply that lets the connection proceed). Allocation-free.
[[nodiscard]] constexpr std::array<std::byte, frame_header_size> encode_accept() noexcept
{
  std::array<std::byte, frame_header_size> frame{};
  detail::encode_plain_header(frame, frame_kind::accept, 0);
  return frame;
}

/// A ping frame carrying `token`; the peer answers with a pong carrying the same token. Allocation-free.
[[nodiscard]] constexpr std::array<std::byte, ping_frame_size> encode_ping(std::uint64_t token) noexcept
{
  return detail::encode_keepalive(frame_kind::ping, token);
}

/// A pong frame answering the ping that carried `token`. Allocation-free.
[[nodiscard]] constexpr std::array<std::byte, ping_frame_size> encode_pong(std::uint64_t token) noexcept
{
  return detail::encode_keepalive(frame_kind::pong, token);
}

/// The refuse frame (the handshake reply that ends the connection).
/// @param reason why; any peer_errc (not 0).
/// @param text optional detail: UTF-8 without control characters, at most max_reason_text_size bytes.
/// @return the frame bytes, or invalid_argument for a bad reason or text.
[[nodiscard]] inline expected<std::vector<std::byte>, peer_error> encode_refuse(peer_errc reason,
                                                                                std::string_view text = {})
{
  return detail::encode_reason(frame_kind::refuse, reason, text);
}

/// The close frame (the last frame a side sends on an established connection).
/// @param reason why; any peer_errc (not 0).
/// @param text optional detail: UTF-8 without control characters, at most max_reason_text_size bytes.
/// @return the frame bytes, or invalid_argument for a bad reason or text.
[[nodiscard]] inline expected<std::vector<std::byte>, peer_error> encode_close(peer_errc reason,
                                                                               std::string_view text = {})
{
  return detail::encode_reason(frame_kind::close, reason, text);
}

/// The answer of an accepting side that refuses a caller without introducing itself (another graph, another
/// expected peer): the preamble followed by a refuse frame in place of the hello.
/// @param reason why; any peer_errc (not 0).
/// @param text optional detail, as for encode_refuse.
/// @return the bytes to send, or invalid_argument for a bad reason or text.
[[nodiscard]] inline expected<std::vector<std::byte>, peer_error> encode_refusing_opening(peer_errc reason,
                                                                                          std::string_view text = {})
{
  auto refuse = detail::encode_reason(frame_kind::refuse, reason, text);
  if (!refuse)
    return refuse;
  std::vector<std::byte> out(preamble_size);
  detail::encode_preamble(out);
  out.insert(out.end(), refuse->begin(), refuse->end());
  return out;
}

/// The opening of a connection: the preamble followed by the hello frame.
/// @param hello what to announce: graph and peer must not be empty, node must not be 0, expected_peer (if any)
/// must not be empty, and kind must be neighbor or direct.
/// @return the bytes to send first, or invalid_argument.
[[nodiscard]] inline expected<std::vector<std::byte>, peer_error> encode_hello(const hello_message& hello)
{
  if ((hello.kind != connection_kind::neighbor && hello.kind != connection_kind::direct) || hello.graph.empty() ||
      hello.peer.empty() || !hello.node || (hello.expected_peer && hello.expected_peer->empty()))
    return unexpected(peer_error(peer_errc::invalid_argument));
  const std::size_t payload_size = hello_fixed_size + 2 + hello.graph.view().size() + 2 + hello.peer.view().size() +
                                   (hello.expected_peer ? 2 + hello.expected_peer->view().size() : 0);
  std::vector<std::byte> out(preamble_size + frame_header_size + hello_fixed_size);
  out.reserve(preamble_size + frame_header_size + payload_size);
  const std::span<std::byte> fixed(out);
  detail::encode_preamble(fixed);
  detail::encode_plain_header(fixed.subspan(preamble_size), frame_kind::hello, payload_size);
  const std::size_t body = preamble_size + frame_header_size;
  fixed[body] = static_cast<std::byte>(hello.kind);
  fixed[body + 1] = hello.expected_peer ? std::byte{1} : std::byte{0};
  detail::store_le<std::uint16_t>(fixed, body + 2, hello.features);
  detail::store_le<std::uint64_t>(fixed, body + 4, hello.node.value());
  detail::append_id(out, hello.graph);
  detail::append_id(out, hello.peer);
  if (hello.expected_peer)
    detail::append_id(out, *hello.expected_peer);
  return out;
}

} // namespace peergraph::wire
