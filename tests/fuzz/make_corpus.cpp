//
// tests/fuzz/make_corpus.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// Writes the seed corpus of the fuzz targets: valid streams made with the encoders of <peergraph/wire.hpp>, and a
// few edge cases next to them, in the input format of each target (see the comment at the top of each target).
//
// Usage: fuzz_make_corpus <directory>   (writes <directory>/<target>/<seed>; tests/fuzz/corpus is the committed one)
//
#include <peergraph/detail/graph/record_codec.hpp>
#include <peergraph/detail/graph/record_sync.hpp>
#include <peergraph/record.hpp>
#include <peergraph/wire.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace peergraph;
using bytes = std::vector<std::byte>;

constexpr data_type chat = data_type::from_string("0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9");
constexpr data_type file = data_type::from_string("6b29fc40-ca47-1067-b31d-00dd010662da");
// The connection target's node closes a connection on data of close_request and never delivers data of filtered.
constexpr data_type close_request = data_type::from_string("00000000-0000-0000-0000-000000000001");
constexpr data_type filtered = data_type::from_string("ffffffff-ffff-ffff-ffff-ffffffffffff");

bytes cat(std::initializer_list<std::span<const std::byte>> parts)
{
  bytes out;
  for (const auto part : parts)
    out.insert(out.end(), part.begin(), part.end());
  return out;
}

bytes text(std::string_view s)
{
  bytes out;
  for (const char c : s)
    out.push_back(static_cast<std::byte>(c));
  return out;
}

bytes hello(std::string_view graph, std::string_view peer, connection_kind kind = connection_kind::neighbor,
            std::optional<std::string_view> expected = std::nullopt, std::uint64_t node = 0x0123456789ABCDEFULL)
{
  wire::hello_message message{kind, *graph_id::make(graph), *peer_id::make(peer), node_id(node), std::nullopt};
  if (expected)
    message.expected_peer = *peer_id::make(*expected);
  return *wire::encode_hello(message);
}

bytes data(const data_type& type, std::string_view payload)
{
  return cat({wire::encode_data_header(type, payload.size()), text(payload)});
}

bytes data_header(const data_type& type, std::uint64_t length)
{
  const auto header = wire::encode_data_header(type, length);
  return {header.begin(), header.end()};
}

bytes accept()
{
  const auto frame = wire::encode_accept();
  return {frame.begin(), frame.end()};
}

bytes ping(std::uint64_t token)
{
  const auto frame = wire::encode_ping(token);
  return {frame.begin(), frame.end()};
}

bytes pong(std::uint64_t token)
{
  const auto frame = wire::encode_pong(token);
  return {frame.begin(), frame.end()};
}

bytes close(peer_errc reason, std::string_view why = {})
{
  return *wire::encode_close(reason, why);
}

bytes refuse(peer_errc reason, std::string_view why = {})
{
  return *wire::encode_refuse(reason, why);
}

/// A data header of a nil type: the frame kind is right, the type is refused.
bytes nil_data_header(std::uint64_t length)
{
  bytes header = data_header(chat, length);
  for (std::size_t i = 4; i < 20; ++i)
    header[i] = std::byte{0};
  return header;
}

/// Membership frames of a closed graph, with recognisable challenge and proof bytes.
std::array<std::byte, membership_nonce_size> filled(unsigned value)
{
  std::array<std::byte, membership_nonce_size> out{};
  out.fill(static_cast<std::byte>(value));
  return out;
}

bytes challenge()
{
  const auto frame = wire::encode_membership_challenge(filled(0x11));
  return {frame.begin(), frame.end()};
}

bytes answer()
{
  const auto frame = wire::encode_membership_answer(filled(0x22), filled(0x33));
  return {frame.begin(), frame.end()};
}

bytes proof()
{
  const auto frame = wire::encode_membership_proof(filled(0x44));
  return {frame.begin(), frame.end()};
}

/// A hello frame without the preamble (what follows membership frames, which carry the preamble before them).
bytes hello_frame(std::string_view graph, std::string_view peer)
{
  const bytes whole = hello(graph, peer);
  return {whole.begin() + static_cast<std::ptrdiff_t>(wire::preamble_size), whole.end()};
}

const bytes preamble{std::byte{'P'}, std::byte{'G'}, std::byte{'R'}, std::byte{'F'}, std::byte{1}, {}, {}, {}};

/// An identifier of 256 four-byte code points (U+1F600): the longest, 1,024 bytes.
std::string longest_id()
{
  std::string id;
  for (int i = 0; i < 256; ++i)
    id += "\xF0\x9F\x98\x80";
  return id;
}

class writer
{
public:
  explicit writer(std::filesystem::path root) : root_(std::move(root)) {}

  void put(const char* target, const char* name, std::initializer_list<std::span<const std::byte>> parts)
  {
    const auto dir = root_ / target;
    std::filesystem::create_directories(dir);
    const bytes content = cat(parts);
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(content.data()), static_cast<std::streamsize>(content.size()));
    ++count_;
  }

  [[nodiscard]] int count() const noexcept { return count_; }

private:
  std::filesystem::path root_;
  int count_ = 0;
};

/// fuzz_frame_decoder: byte 0 = phase (bits 0-2: preamble, hello, reply, established, closed) | maximum payload
/// (bits 3-5: 0, 1, 28, 1 KiB, 64 KiB, 60 MB, 2^62, 2^64-1) << 3 | cut (bits 6-7: whole, bytes, pieces, pieces with
/// advance_payload) << 6; byte 1 = seed.
bytes config(unsigned phase, unsigned max_payload, unsigned cut, unsigned seed = 7)
{
  return {static_cast<std::byte>(phase | max_payload << 3U | cut << 6U), static_cast<std::byte>(seed)};
}

void frame_decoder_seeds(writer& w)
{
  constexpr const char* t = "fuzz_frame_decoder";
  const std::string longest = longest_id();
  w.put(t, "handshake_then_frames",
        {config(0, 4, 2), preamble, hello("chat", "alice", connection_kind::neighbor, "bob"), accept(),
         data(chat, "hello"), ping(0x1122334455667788ULL), pong(0x1122334455667788ULL),
         close(peer_errc::connection_closed, "bye")});
  w.put(t, "handshake_bytewise", {config(0, 3, 1), preamble, hello("g", "p"), accept(), data(file, "x")});
  w.put(t, "handshake_refused",
        {config(0, 5, 3), preamble, hello("chat", "alice"), refuse(peer_errc::connection_refused, "wrong graph")});
  // The preamble and a refuse in place of the hello arrive in one call of the decoder.
  w.put(t, "refuse_in_place_of_hello",
        {config(0, 5, 0), *wire::encode_refusing_opening(peer_errc::connection_refused, "graph")});
  w.put(t, "refuse_in_place_of_hello_unknown_reason",
        {config(0, 5, 2), *wire::encode_refusing_opening(static_cast<peer_errc>(9999), "newer")});
  w.put(
      t, "membership_caller",
      {config(0, 4, 2), preamble, challenge(), proof(), hello_frame("chat", "alice"), accept(), data(chat, "closed")});
  w.put(t, "membership_acceptor", {config(0, 4, 1), preamble, answer(), hello_frame("chat", "bob"), accept()});
  w.put(t, "membership_refused", {config(0, 5, 0), preamble, challenge(), refuse(peer_errc::not_authenticated)});
  w.put(t, "membership_hello_without_proof", {config(0, 5, 3), preamble, challenge(), hello_frame("chat", "eve")});
  w.put(t, "hello_direct_no_preamble", {config(1, 5, 2), hello("chat", "alice", connection_kind::direct, "bob")});
  w.put(t, "hello_longest_ids",
        {config(0, 5, 2), preamble, hello(longest, longest, connection_kind::neighbor, longest)});
  w.put(t, "hello_utf8_ids", {config(1, 5, 3), hello("gr\xC3\xA4ph", "\xE6\x97\xA5\xE6\x9C\xAC")});
  w.put(t, "reply_accept_then_data", {config(2, 4, 3), accept(), data(chat, "payload"), data(file, "")});
  w.put(t, "reply_refuse_unknown_reason", {config(2, 4, 2), refuse(static_cast<peer_errc>(9999), "newer")});
  w.put(t, "established_many_frames",
        {config(3, 4, 3, 1), data(chat, "one"), data(file, ""), ping(1), pong(2), data(chat, std::string(300, 'z')),
         close(peer_errc::timed_out)});
  w.put(t, "established_advance_payload", {config(3, 5, 3, 99), data(file, std::string(2000, 'a')), ping(7)});
  w.put(t, "established_length_2_63", {config(3, 7, 0), data_header(chat, std::uint64_t{1} << 63U)});
  w.put(t, "established_just_over_max", {config(3, 3, 2), data_header(chat, 1025), text("tail")});
  w.put(t, "established_exactly_max", {config(3, 3, 2), data(chat, std::string(1024, 'm'))});
  w.put(t, "established_nil_type", {config(3, 4, 0), nil_data_header(4), text("abcd")});
  w.put(t, "established_zero_max", {config(3, 0, 2), data(chat, ""), data(chat, "x")});
  w.put(t, "established_truncated_payload", {config(3, 4, 1), data_header(chat, 50), text("only part")});
  w.put(t, "closed_then_byte", {config(4, 4, 0), text("x")});
  w.put(t, "preamble_version_2", {config(0, 4, 0), text("PGRF"), bytes{std::byte{2}, {}, {}, {}}});
  w.put(t, "preamble_bad_magic", {config(0, 4, 1), text("PGRX"), bytes{std::byte{1}, {}, {}, {}}});
}

void handshake_seeds(writer& w)
{
  constexpr const char* t = "fuzz_handshake";
  const std::string longest = longest_id();
  const bytes h = hello("chat", "alice");
  w.put(t, "hello_minimal", {hello("g", "p")});
  w.put(t, "hello_expected_peer", {hello("chat", "alice", connection_kind::neighbor, "bob")});
  w.put(t, "hello_direct", {hello("chat", "alice", connection_kind::direct, "bob")});
  w.put(t, "hello_longest_ids", {hello(longest, longest, connection_kind::neighbor, longest)});
  w.put(t, "hello_utf8_ids", {hello("gr\xC3\xA4ph", "\xE6\x97\xA5\xE6\x9C\xAC")});
  w.put(t, "hello_accept_frames", {h, accept(), ping(42), data(chat, "hi"), close(peer_errc::connection_closed)});
  w.put(t, "hello_refuse", {h, refuse(peer_errc::connection_refused)});
  w.put(t, "hello_refuse_text", {h, refuse(peer_errc::already_exists, "already connected")});
  w.put(t, "hello_refuse_unknown_reason", {h, refuse(static_cast<peer_errc>(100000), "x")});
  w.put(t, "hello_refuse_then_more", {h, refuse(peer_errc::limit_exceeded), accept()});
  w.put(t, "refuse_in_place_of_hello", {*wire::encode_refusing_opening(peer_errc::connection_refused, "graph")});
  w.put(t, "membership_caller", {preamble, challenge(), proof(), hello_frame("chat", "alice"), accept()});
  w.put(t, "membership_acceptor", {preamble, answer(), hello_frame("chat", "bob"), accept(), ping(1)});
  w.put(t, "membership_then_refuse", {preamble, answer(), refuse(peer_errc::not_authenticated)});
  w.put(t, "membership_twice", {preamble, answer(), answer()});
  w.put(t, "hello_truncated", {std::span<const std::byte>(h).first(h.size() - 3)});
  w.put(t, "hello_trailing_garbage", {h, text("garbage")});
  w.put(t, "preamble_only", {preamble});
  w.put(t, "preamble_version_2", {text("PGRF"), bytes{std::byte{2}, {}, {}, {}}, std::span(h).subspan(8)});
  w.put(t, "hello_twice", {h, std::span(h).subspan(8)});
}

/// fuzz_connection: byte 0 = prefix (bits 0-2) | ending (bits 3-4: shutdown, shutdown, reset, silent) << 3 |
/// cut (bits 5-7) << 5.
bytes op(unsigned prefix, unsigned ending = 0, unsigned cut = 0)
{
  return {static_cast<std::byte>(prefix | ending << 3U | cut << 5U)};
}

void connection_seeds(writer& w)
{
  constexpr const char* t = "fuzz_connection";
  const bytes h = hello("fuzz-graph", "raw-client");
  w.put(t, "raw_full_session", {op(0), h, accept(), data(chat, "hello"), ping(5), close(peer_errc::connection_closed)});
  w.put(t, "raw_full_session_cut", {op(0, 0, 2), h, accept(), data(chat, "hello"), data(file, "world"), ping(9)});
  w.put(
      t, "raw_direct",
      {op(0), hello("fuzz-graph", "raw-client", connection_kind::direct, "fuzz-node"), accept(), data(chat, "direct")});
  w.put(t, "raw_wrong_graph", {op(0), hello("other-graph", "raw-client"), accept(), data(chat, "x")});
  w.put(t, "raw_wrong_expected_peer",
        {op(0), hello("fuzz-graph", "raw-client", connection_kind::neighbor, "nobody"), accept()});
  w.put(t, "raw_hello_then_reset", {op(0, 2), h});
  w.put(t, "raw_half_hello_silent", {op(0, 3), std::span<const std::byte>(h).first(20)});
  w.put(t, "raw_membership_challenge",
        {op(0), preamble, challenge(), proof(), hello_frame("fuzz-graph", "raw-client"), accept(), data(chat, "x")});
  // What a TLS node sends first: a handshake record header, then the start of a ClientHello.
  w.put(t, "raw_tls_client_hello",
        {op(0),
         bytes{std::byte{0x16}, std::byte{0x03}, std::byte{0x01}, std::byte{0x00}, std::byte{0x40}, std::byte{0x01},
               std::byte{0x00}, std::byte{0x00}, std::byte{0x3c}, std::byte{0x03}, std::byte{0x03}}});
  w.put(t, "raw_garbage", {op(0), text("GET / HTTP/1.1\r\nHost: x\r\n\r\n")});
  w.put(t, "preamble_then_hello_frame", {op(1), std::span(h).subspan(8), accept(), data(file, "payload")});
  w.put(t, "hello_then_accept", {op(2, 0, 1), accept(), ping(77), data(chat, "a")});
  w.put(t, "hello_then_refuse", {op(2), refuse(peer_errc::limit_exceeded, "full")});
  w.put(t, "established_frames",
        {op(3), data(chat, "one"), data(file, ""), ping(1), pong(2), data(chat, "two"),
         close(peer_errc::connection_closed, "done")});
  w.put(t, "established_frames_reset", {op(3, 2, 3), data(chat, "one"), data_header(chat, 100), text("partial")});
  w.put(t, "established_large_frame", {op(3, 0, 4), data(file, std::string(3000, 'L'))});
  w.put(t, "established_length_2_63", {op(3), data_header(chat, std::uint64_t{1} << 63U)});
  w.put(t, "established_just_over_max", {op(3), data_header(chat, 64 * 1024 + 1), text("x")});
  w.put(t, "established_nil_type", {op(3), nil_data_header(1), text("x")});
  w.put(t, "established_second_hello", {op(3), std::span(h).subspan(8)});
  w.put(t, "established_bad_reserved", {op(3), bytes{std::byte{1}, std::byte{1}}, bytes(26)});
  w.put(t, "direct_frames", {op(4, 0, 2), data(chat, "direct data"), ping(3)});
  // Data of type ...0001 asks the node to close the connection (it can for a direct one); ffff... is filtered out.
  w.put(t, "direct_close_request",
        {op(4, 0, 3), data(chat, "before"), data(close_request, "close"), data(chat, "after"), ping(4),
         data(chat, "later")});
  w.put(t, "neighbor_close_request", {op(3, 0, 2), data(close_request, "close"), data(chat, "stays")});
  w.put(t, "filtered_type", {op(3), data(filtered, "skipped"), data(chat, "kept"), data(filtered, "")});
  w.put(t, "wrong_graph_frames", {op(5), data(chat, "x")});
  w.put(t, "wrong_expected_peer", {op(6), data(chat, "x")});
  // Structured (prefix 7): op bytes; 0-2 small data (length, payload), 3 large data (length - 16 KiB as u16,
  // filler seed), 4 ping and 5 pong (8 token bytes), 6 close (reason, text length, letters), 7 raw (length, bytes).
  w.put(t, "structured_small",
        {op(7), bytes{std::byte{0}, std::byte{5}}, text("hello"), bytes{std::byte{4}}, text("12345678"),
         bytes{std::byte{9}, std::byte{3}}, text("abc"), bytes{std::byte{6}, std::byte{41}, std::byte{3}},
         text("xyz")});
  w.put(t, "structured_large",
        {op(7, 0, 3), bytes{std::byte{3}, std::byte{0x10}, std::byte{0x00}, std::byte{0x42}}, bytes{std::byte{4}},
         text("pingpong")});
  w.put(t, "structured_too_large", {op(7), bytes{std::byte{3}, std::byte{0xFF}, std::byte{0xFF}, std::byte{1}}});
  w.put(t, "structured_raw", {op(7, 2, 1), bytes{std::byte{7}, std::byte{5}}, text("\x01\x00\x00\x00\x00")});
}

} // namespace

/// A record as a neighbor floods it, with attributes of each type, security data and data.
record sample_record(bool deleted)
{
  record r;
  r.id = record_id(data_type::from_string("00112233-4455-6677-8899-aabbccddeeff"));
  r.type = chat;
  r.version = deleted ? 2 : 1;
  r.creator = *peer_id::make("alice");
  r.modified_by = r.creator;
  r.created = record_time(std::chrono::milliseconds(1'700'000'000'000));
  r.last_modified = r.created;
  r.expires = r.created + std::chrono::hours(24);
  r.deleted = deleted;
  if (!deleted) {
    r.attributes = {{"text", std::string("hello")}, {"priority", std::int64_t{3}}, {"due", r.expires}};
    r.security_data = text("signature");
    r.data = text("a line of chat");
  }
  return r;
}

bytes record_payload(const record& r)
{
  bytes out;
  (void)detail::encode_record_payload(r, out);
  return out;
}

/// fuzz_record_payload: the payload itself; fuzz_frame_decoder: a record frame on an established connection.
void record_payload_seeds(writer& w)
{
  const bytes live = record_payload(sample_record(false));
  const bytes tombstone = record_payload(sample_record(true));
  w.put("fuzz_record_payload", "record", {live});
  w.put("fuzz_record_payload", "tombstone", {tombstone});
  w.put("fuzz_record_payload", "truncated", {std::span<const std::byte>(live).first(live.size() / 2)});
  w.put("fuzz_frame_decoder", "record_frame",
        {config(3, 5, 2), wire::encode_record_header(chat, live.size()), live, wire::encode_ping(9)});
}

/// fuzz_sync_message: a begin over a store, a reconcile with wants, fingerprints and items, a done and a clock;
/// fuzz_frame_decoder: a sync frame on an established connection.
void sync_message_seeds(writer& w)
{
  detail::record_table table;
  for (std::uint32_t i = 0; i < 100; ++i) {
    record r = sample_record(i % 9 == 0);
    std::array<std::byte, 16> raw{};
    raw[0] = static_cast<std::byte>(i);
    raw[6] = std::byte{0x40};
    r.id = record_id(data_type::from_bytes(raw));
    r.last_modified = r.created + std::chrono::milliseconds(1000 * i); // spread over the fuzzed store's times
    table.put(std::move(r));
  }
  const auto encoded = [](const detail::sync_message& m) {
    bytes out;
    detail::encode_sync_message(m, out);
    return out;
  };
  detail::record_reconciler reconciler(detail::record_reconciler::random_key());
  const record_time now(std::chrono::milliseconds(1'000'000));
  const bytes begin = encoded(reconciler.begin(table, now));
  detail::sync_message reconcile;
  reconcile.wants = {sample_record(false).id};
  reconcile.ranges.push_back({detail::sync_key(record_time(std::chrono::milliseconds(50'000)), record_id()),
                              detail::sync_mode::fingerprint,
                              detail::sync_fingerprint{3, 1, 2},
                              {}});
  detail::sync_range items{std::nullopt, detail::sync_mode::items, {}, {}};
  items.items.push_back({{record_time(std::chrono::milliseconds(60'000)), sample_record(false).id}, 2, false});
  reconcile.ranges.push_back(items);
  detail::sync_message done;
  done.step = detail::sync_step::done;
  detail::sync_message clock;
  clock.step = detail::sync_step::clock;
  clock.clock = now;
  w.put("fuzz_sync_message", "begin", {begin});
  w.put("fuzz_sync_message", "reconcile", {encoded(reconcile)});
  w.put("fuzz_sync_message", "done", {encoded(done)});
  w.put("fuzz_sync_message", "clock", {encoded(clock)});
  w.put("fuzz_frame_decoder", "sync_frame", {config(3, 5, 2), wire::encode_sync_header(begin.size()), begin});
}

int main(int argc, char** argv)
{
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <directory>\n", argc > 0 ? argv[0] : "fuzz_make_corpus");
    return 2;
  }
  writer w{std::filesystem::path(argv[1])};
  frame_decoder_seeds(w);
  handshake_seeds(w);
  connection_seeds(w);
  record_payload_seeds(w);
  sync_message_seeds(w);
  std::printf("%d seeds written under %s\n", w.count(), argv[1]);
  return 0;
}
