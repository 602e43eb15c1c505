#include <peergraph/graph.hpp>
// The header under test comes first: it must be self-contained.
//
// Resource limits under hostile or broken peers: a node's memory, descriptors and CPU stay bounded whatever a peer
// sends or fails to read, every limit ends only the connection that hit it, with a reason that says why, and what
// send_data reports is the truth. The hostile side is a raw socket speaking the wire protocol by hand.

#include "support/allocation_counter.hpp"
#include "support/co_test.hpp"
#include "support/error_text.hpp"
#include "support/graph_nodes.hpp"
#include "support/graph_support.hpp"
#include "support/process_stats.hpp"
#include "support/socket_pair.hpp"

#include <peergraph/wire.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#if !defined(_WIN32)
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace {

using namespace std::chrono_literals;
using peergraph::connection_changed;
using peergraph::connection_id;
using peergraph::connection_status;
using peergraph::graph_event;
using peergraph::incoming_data;
using peergraph::peer_errc;
using peergraph::peer_error;
using peergraph::test::chat_type;
using peergraph::test::connect_link;
using peergraph::test::error_text;
using peergraph::test::exchange;
using peergraph::test::heap_in_use;
using peergraph::test::hello_of;
using peergraph::test::kernel_buffer_max;
using peergraph::test::listening;
using peergraph::test::node;
using peergraph::test::pattern;
using peergraph::test::pause;
using peergraph::test::pid;
using peergraph::test::props;
using peergraph::test::raw_handshake;
using peergraph::test::raw_link;
using peergraph::test::raw_peer;
using peergraph::test::since;
using peergraph::test::use_tuple;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
namespace wire = peergraph::wire;

constexpr std::size_t mib = 1024 * 1024;

const asio::ip::address loopback_1 = asio::ip::make_address("127.0.0.1");
const asio::ip::address loopback_2 = asio::ip::make_address("127.0.0.2");

/// A raw peer connected to `where` from `source`: 127.0.0.2 is another remote address than 127.0.0.1 to the node.
std::unique_ptr<raw_peer> raw_from(asio::io_context& ctx, const asio::ip::address& source, const tcp::endpoint& where)
{
  auto raw = std::make_unique<raw_peer>(ctx);
  raw->socket().open(tcp::v4());
  raw->socket().bind(tcp::endpoint(source, 0));
  raw->connect(where);
  return raw;
}

/// raw_handshake from a chosen source address.
asio::awaitable<raw_link> raw_handshake_from(asio::io_context& ctx, node& n, const tcp::endpoint& where,
                                             std::string_view peer, const asio::ip::address& source)
{
  auto raw = raw_from(ctx, source, where);
  auto reply = co_await raw->handshake(hello_of(peer));
  REQUIRE_MESSAGE(reply.is(wire::decode_event::accept),
                  "raw handshake of " << peer << " from " << source.to_string() << ": not accepted ("
                                      << (reply.is(wire::decode_event::refuse) ? "refused" : reply.error.message())
                                      << ")");
  auto on_node = co_await n.changed(pid(peer), connection_status::connected);
  REQUIRE_MESSAGE(on_node.has_value(), "the node did not report " << peer << " connected");
  co_return raw_link{std::move(raw), on_node->id};
}

/// `count` raw peers one-0, one-1, ... connected to `n` from `source`.
asio::awaitable<std::vector<raw_link>> connected_from(asio::io_context& ctx, node& n, const tcp::endpoint& where,
                                                      std::size_t count, const asio::ip::address& source)
{
  std::vector<raw_link> links;
  for (std::size_t i = 0; i < count; ++i)
    links.push_back(co_await raw_handshake_from(ctx, n, where, "one-" + std::to_string(i), source));
  co_return links;
}

/// Writes all of `bytes`, waiting at most `timeout` (a node that stops reading must not hang the test).
asio::awaitable<std::error_code> write_for(tcp::socket& socket, std::span<const std::byte> bytes,
                                           std::chrono::milliseconds timeout)
{
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(socket.get_executor());
  timer.expires_after(timeout);
  auto r = co_await (asio::async_write(socket, asio::buffer(bytes.data(), bytes.size()), use_tuple) ||
                     timer.async_wait(use_tuple));
  if (r.index() == 1)
    co_return asio::error::timed_out;
  co_return std::get<0>(std::get<0>(r));
}

std::size_t disconnects_of(node& n, connection_id id)
{
  return n.count([id](const graph_event& e) {
    const auto* c = std::get_if<connection_changed>(&e);
    return c != nullptr && c->id == id && c->status == connection_status::disconnected;
  });
}

bool is_data_on(const graph_event& e, connection_id id)
{
  const auto* d = std::get_if<incoming_data>(&e);
  return d != nullptr && d->connection == id;
}

std::string reason_text(const std::optional<connection_changed>& c)
{
  if (!c)
    return "no event";
  return c->reason ? c->reason->message() : std::string("no reason");
}

#if !defined(_WIN32)
/// CPU time (user and system) this process used so far.
std::chrono::microseconds cpu_time()
{
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto us = [](const timeval& t) {
    return std::chrono::seconds(t.tv_sec) + std::chrono::microseconds(t.tv_usec);
  };
  return std::chrono::duration_cast<std::chrono::microseconds>(us(usage.ru_utime) + us(usage.ru_stime));
}

/// Lowers the soft RLIMIT_NOFILE to `soft` for its lifetime; the old limit is back when it ends, whatever happens.
class descriptor_limit
{
public:
  explicit descriptor_limit(rlim_t soft)
  {
    ok_ = ::getrlimit(RLIMIT_NOFILE, &saved_) == 0;
    rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    ok_ = ok_ && ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
  }
  ~descriptor_limit() { restore(); }
  descriptor_limit(const descriptor_limit&) = delete;
  descriptor_limit& operator=(const descriptor_limit&) = delete;

  [[nodiscard]] bool ok() const noexcept { return ok_; }
  void restore() noexcept
  {
    if (ok_)
      (void)::setrlimit(RLIMIT_NOFILE, &saved_);
    ok_ = false;
  }

private:
  rlimit saved_{};
  bool ok_ = false;
};

/// The lowest descriptor number free now: the one the next accept would get.
int lowest_free_descriptor()
{
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0)
    ::close(fd);
  return fd;
}
#endif

} // namespace

TEST_SUITE_BEGIN("graph_limits");

// ---- output: a peer that does not read ---------------------------------------------------------------------------

CO_TEST_CASE("a peer that floods pings and never reads: bounded heap, limit_exceeded after the stall, others unharmed")
{
  auto pb = props("bob");
  pb.output_stall_timeout = 400ms;
  node b(ctx, pb);
  const auto where = co_await listening(b);
  node a(ctx, props("alice"));
  const auto healthy = co_await connect_link(a, b, where);

  // A small receive buffer: the node's pongs back up into its own output at once.
  auto link = co_await raw_handshake(ctx, b, where, "flooder", 64 * 1024);
  auto& flooder = link.raw;

  // Whole ping frames, written over and over; a partial write continues where it stopped, so frames stay whole.
  std::vector<std::byte> pings;
  for (std::uint64_t i = 0; i < 64 * 1024 / wire::ping_frame_size; ++i) {
    const auto ping = wire::encode_ping(i);
    pings.insert(pings.end(), ping.begin(), ping.end());
  }
  flooder->socket().non_blocking(true);
  co_await pause(50ms);
  const std::size_t heap_before = heap_in_use();

  const auto start = clock_type::now();
  auto last_progress = start;
  std::optional<clock_type::time_point> gone_at;
  std::size_t sent = 0;
  std::size_t offset = 0;
  std::size_t peak = 0;
  bool exchanged = false;
  std::error_code write_error;
  auto sample_at = start;
  // At most 5 s, 256 MiB sent, or 48 MiB of heap growth (an unbounded node must not take the machine down).
  for (int round = 0; round < 1'000'000 && since(start) < 5s && sent < 256 * mib && peak < 48 * mib; ++round) {
    if (clock_type::now() >= sample_at) {
      peak = std::max(peak, peergraph::test::heap_growth_since(heap_before));
      sample_at = clock_type::now() + 5ms;
    }
    if (disconnects_of(b, link.on_node) != 0) {
      gone_at = clock_type::now();
      break;
    }
    std::error_code ec;
    const std::size_t n = flooder->socket().write_some(asio::buffer(pings.data() + offset, pings.size() - offset), ec);
    if (!ec) {
      sent += n;
      offset = (offset + n) % pings.size();
      last_progress = clock_type::now();
      continue;
    }
    if (ec != asio::error::would_block) {
      write_error = ec; // the node ended the connection
      break;
    }
    // Held back: meanwhile the node's other connection must carry data as usual.
    if (!exchanged && since(last_progress) > 50ms) {
      co_await exchange(a, b, healthy, "while a peer floods");
      exchanged = true;
    }
    co_await pause(2ms);
  }
  peak = std::max(peak, peergraph::test::heap_growth_since(heap_before));
  MESSAGE("pings written: " << sent << " bytes in " << since(start).count() << " ms; heap grew by at most " << peak
                            << " bytes; writes stopped with: "
                            << (write_error ? write_error.message() : std::string("none")));
  CHECK_MESSAGE(peak < 16 * mib, "the node's heap grows with what a non-reading peer makes it answer: " << peak);

  // The flood loop may have seen the disconnect itself, or stopped first (its writes failed, or it ran out of time).
  std::optional<connection_changed> gone;
  if (!gone_at) {
    const auto bound = last_progress + pb.output_stall_timeout + 1500ms;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(bound - clock_type::now());
    gone = co_await b.changed(pid("flooder"), connection_status::disconnected, std::max(left, 1ms));
    if (gone)
      gone_at = clock_type::now();
  }
  REQUIRE_MESSAGE(gone_at.has_value(), "the stalled connection was not ended within output_stall_timeout + 1.5 s");
  const auto stalled_for = std::chrono::duration_cast<std::chrono::milliseconds>(*gone_at - last_progress);
  MESSAGE("disconnected " << stalled_for.count() << " ms after the last write made progress");
  CHECK(stalled_for < pb.output_stall_timeout + 1000ms);
  if (!gone)
    gone = co_await b.changed(pid("flooder"), connection_status::disconnected, 100ms);
  REQUIRE(gone.has_value());
  CHECK(gone->id == link.on_node);
  CHECK_MESSAGE(gone->reason == peer_errc::limit_exceeded, "reason: " << reason_text(gone));

  // The raw peer sees its connection end too; once it is gone, so is what the node held for it.
  flooder->socket().non_blocking(false);
  auto end = co_await flooder->wait_end(2s);
  CHECK_MESSAGE(end.closed, "the flooder's connection is still open: " << end.error.message());
  flooder.reset();
  co_await pause(100ms);
  const std::size_t left_over = peergraph::test::heap_growth_since(heap_before);
  CHECK_MESSAGE(left_over < 4 * mib, "heap still " << left_over << " bytes above its level before the flood");
  if (!exchanged)
    co_await exchange(a, b, healthy, "the flood never blocked");
  co_await exchange(a, b, healthy, "after the flood");
}

// ---- input: payload buffers and the node-wide budget -------------------------------------------------------------

CO_TEST_CASE("16 data headers announcing 50 MB each, then 1 KiB: the heap grows with the bytes, not the announcement")
{
  node b(ctx, props("bob")); // the default max_frame_size of 60 MB: 50 MB is a valid announcement
  const auto where = co_await listening(b);
  node a(ctx, props("alice"));
  const auto healthy = co_await connect_link(a, b, where);

  constexpr std::size_t connections = 16;
  constexpr std::uint64_t announced = 50'000'000;
  std::vector<raw_link> raws;
  for (std::size_t i = 0; i < connections; ++i)
    raws.push_back(co_await raw_handshake(ctx, b, where, "announcer-" + std::to_string(i)));
  const auto header = wire::encode_data_header(chat_type, announced);
  const auto start = pattern(4, 1024);
  co_await pause(50ms);
  const std::size_t heap_before = heap_in_use();

  for (auto& r : raws) {
    REQUIRE(r.raw->send(header));
    REQUIRE(r.raw->send(start));
  }
  co_await pause(300ms); // the node has read every header and its 1 KiB
  const std::size_t growth = peergraph::test::heap_growth_since(heap_before);
  MESSAGE("heap growth for " << connections << " announced 50 MB payloads: " << growth << " bytes");
  CHECK_MESSAGE(growth < 8 * mib, "the node allocates the announced size before the bytes arrive: " << growth);

  // They are legitimate (if slow) senders: still connected, nothing delivered yet.
  auto list = co_await b->connections();
  REQUIRE(list.has_value());
  CHECK(list->size() == connections + 1);
  for (auto& r : raws)
    CHECK(b.count([&](const graph_event& e) { return is_data_on(e, r.on_node); }) == 0);
  for (auto& r : raws)
    r.raw->reset();
  co_await exchange(a, b, healthy, "after the announcements");
}

CO_TEST_CASE("max_incoming_bytes: an unread node holds about its budget; when read, every message arrives in order")
{
  auto pb = props("bob");
  pb.max_frame_size = 1 * mib;
  pb.max_incoming_bytes = 2 * mib;
  node b(ctx, pb, /*pump=*/false);
  const auto where = co_await listening(b);

  constexpr std::size_t senders = 4;
  constexpr std::uint32_t per_sender = 16;
  constexpr std::size_t size = 512 * 1024; // 4 x 16 x 512 KiB: 32 MiB, 16 times the budget
  std::vector<std::unique_ptr<node>> nodes;
  std::vector<connection_id> ids;
  for (std::size_t i = 0; i < senders; ++i) {
    nodes.push_back(std::make_unique<node>(ctx, props("sender-" + std::to_string(i))));
    auto id = co_await (*nodes.back())->connect(where);
    REQUIRE_MESSAGE(id.has_value(), "connect: " << error_text(id));
    ids.push_back(*id);
  }
  const auto block = pattern(7, size);
  co_await pause(50ms);
  const std::size_t heap_before = heap_in_use();

  std::vector<std::uint32_t> completed(senders, 0);
  std::vector<std::optional<peer_error>> failed(senders);
  for (std::size_t s = 0; s < senders; ++s) {
    asio::co_spawn(
        ctx,
        [&, s]() -> asio::awaitable<void> {
          for (std::uint32_t seq = 0; seq < per_sender; ++seq) {
            // The sequence number, then the block: one message without copying the block.
            std::array<asio::const_buffer, 2> parts{asio::buffer(&seq, sizeof seq),
                                                    asio::buffer(block.data() + sizeof seq, size - sizeof seq)};
            auto r = co_await (*nodes[s])->send_data(ids[s], chat_type, parts);
            if (!r) {
              failed[s] = r.error();
              co_return;
            }
            ++completed[s];
          }
        },
        asio::detached);
  }

  // Watch the heap until the senders stop making progress (at most 3 s).
  auto total_completed = [&] {
    std::uint32_t n = 0;
    for (const auto c : completed)
      n += c;
    return n;
  };
  std::size_t peak = 0;
  auto quiet_since = clock_type::now();
  std::uint32_t seen = 0;
  const auto start = clock_type::now();
  for (int i = 0; i < 300 && since(start) < 3s; ++i) {
    co_await pause(10ms);
    peak = std::max(peak, peergraph::test::heap_growth_since(heap_before));
    if (total_completed() != seen) {
      seen = total_completed();
      quiet_since = clock_type::now();
    } else if (since(quiet_since) > 300ms && since(start) > 600ms) {
      break;
    }
  }
  MESSAGE("unread: " << total_completed() << " of " << senders * per_sender << " sends completed; heap grew by at most "
                     << peak << " bytes (budget " << pb.max_incoming_bytes << ")");
  CHECK_MESSAGE(peak <= pb.max_incoming_bytes + 3 * mib,
                "an unread node holds far more than max_incoming_bytes: " << peak);

  // The consumer resumes: every message of every sender, whole and in order.
  b.start_pump();
  for (std::size_t s = 0; s < senders; ++s) {
    auto on_b = co_await b.changed(nodes[s]->peer(), connection_status::connected);
    REQUIRE_MESSAGE(on_b.has_value(), "sender " << s << " never reported connected");
    for (std::uint32_t seq = 0; seq < per_sender; ++seq) {
      auto got = co_await b.data(on_b->id, 3s);
      REQUIRE_MESSAGE(got.has_value(), "sender " << s << ": message " << seq << " missing");
      REQUIRE_MESSAGE(got->payload.size() == size, "sender " << s << ": message " << seq << " has the wrong size");
      std::uint32_t number = 0;
      std::memcpy(&number, got->payload.data(), sizeof number);
      REQUIRE_MESSAGE(number == seq, "sender " << s << ": message " << number << " where " << seq << " was due");
      REQUIRE_MESSAGE(std::equal(block.begin() + sizeof seq, block.end(), got->payload.begin() + sizeof seq),
                      "sender " << s << ": message " << seq << " is corrupted");
    }
  }
  for (int i = 0; i < 400 && total_completed() < senders * per_sender; ++i)
    co_await pause(5ms);
  for (std::size_t s = 0; s < senders; ++s) {
    CHECK_MESSAGE(!failed[s].has_value(), "sender " << s << ": " << failed[s]->message());
    CHECK(completed[s] == per_sender);
  }
}

static asio::awaitable<void> allocation_failure(asio::io_context& ctx);

// A large payload buffer the allocator refuses ends that one connection with out_of_memory; nothing escapes the
// graph's handlers and the node goes on.
TEST_CASE("an allocation failure while a payload grows ends that connection with out_of_memory; the node goes on")
{
  if (!peergraph::test::allocations_counted()) {
    MESSAGE("skipped: the sanitizer runtime owns the global allocation functions");
    return;
  }
  asio::io_context ctx;
  try {
    ::peergraph::test::run_coroutine_test(ctx, [&ctx]() { return allocation_failure(ctx); });
  } catch (const std::bad_alloc&) {
    peergraph::test::fail_allocations_above(0);
    FAIL("std::bad_alloc escaped the graph's handlers: the node does not survive an allocation failure");
  }
  peergraph::test::fail_allocations_above(0);
}

static asio::awaitable<void> allocation_failure(asio::io_context& ctx)
{
  node b(ctx, props("bob"));
  const auto where = co_await listening(b);
  node a(ctx, props("alice"));
  const auto healthy = co_await connect_link(a, b, where);
  auto glutton = co_await raw_handshake(ctx, b, where, "glutton");
  const auto header = wire::encode_data_header(chat_type, 50'000'000);
  const auto body = pattern(5, 4 * mib);

  {
    const std::size_t refused_before = peergraph::test::refused_allocations();
    const peergraph::test::allocation_failure_scope armed(1 * mib);
    REQUIRE(glutton.raw->send(header));
    const auto wrote = co_await write_for(glutton.raw->socket(), body, 3s);
    MESSAGE(
        "writing 4 MiB of the 50 MB payload ended with: " << (wrote ? wrote.message() : std::string("all written")));
    auto gone = co_await b.changed(pid("glutton"), connection_status::disconnected, 2s);
    MESSAGE("allocations refused: " << peergraph::test::refused_allocations() - refused_before);
    REQUIRE_MESSAGE(gone.has_value(), "the connection whose buffer could not grow was not ended");
    CHECK(gone->id == glutton.on_node);
    CHECK_MESSAGE(gone->reason == peer_errc::out_of_memory, "reason: " << reason_text(gone));
    auto end = co_await glutton.raw->wait_end(2s);
    CHECK_MESSAGE(end.closed, "the raw peer's connection is still open: " << end.error.message());
    // Still armed: small messages need no large allocation.
    co_await exchange(a, b, healthy, "under allocation failure");
  }
  co_await exchange(a, b, healthy, "after allocation failure");
  co_await pause(100ms);
  CHECK(disconnects_of(b, glutton.on_node) == 1);
  CHECK(b.count([&](const graph_event& e) { return is_data_on(e, glutton.on_node); }) == 0);
}

// ---- send results ------------------------------------------------------------------------------------------------

CO_TEST_CASE("sends to a peer that is gone: at most what the kernel could take succeed, then every one fails")
{
  node b(ctx, props("bob"));
  const auto where = co_await listening(b);
  node a(ctx, props("alice"));
  const auto healthy = co_await connect_link(a, b, where);

  constexpr std::size_t calls = 100'000;
  constexpr std::size_t size = 64;
  const std::size_t frame = size + wire::data_frame_header_size;
  const std::size_t bound = (kernel_buffer_max("/proc/sys/net/ipv4/tcp_wmem") + 64 * 1024) / frame + 64;
  const auto message = pattern(6, size);

  // The peer's socket is reset (as a killed process's is when it had unread data) or closed (when it had none).
  for (const bool reset : {true, false}) {
    const std::string name = reset ? "ghost-reset" : "ghost-closed";
    auto g = co_await raw_handshake(ctx, b, where, name);
    if (reset) {
      g.raw->reset();
    } else {
      std::error_code ignored;
      g.raw->socket().shutdown(tcp::socket::shutdown_both, ignored);
      g.raw->socket().close(ignored);
    }

    // No pause in between: the node's reader has not seen the end yet, only the sends can tell.
    std::size_t succeeded = 0;
    std::size_t succeeded_after_failure = 0;
    std::optional<std::size_t> first_failure;
    std::set<std::string> errors;
    bool unexpected_error = false;
    const auto start = clock_type::now();
    for (std::size_t i = 0; i < calls; ++i) {
      auto r = co_await b->send_data(g.on_node, chat_type, asio::buffer(message));
      if (r) {
        ++succeeded;
        if (first_failure)
          ++succeeded_after_failure;
        continue;
      }
      if (!first_failure)
        first_failure = i;
      errors.insert(r.error().message());
      unexpected_error =
          unexpected_error || !(r.error() == peer_errc::connection_reset || r.error() == peer_errc::shut_down ||
                                r.error() == peer_errc::connection_not_found);
    }
    std::string error_list;
    for (const auto& e : errors)
      error_list += (error_list.empty() ? "" : "; ") + e;
    MESSAGE(name << ": " << succeeded << " of " << calls << " sends succeeded (bound " << bound << ") in "
                 << since(start).count() << " ms; errors: " << error_list);
    CHECK_MESSAGE(succeeded <= bound, name << ": " << succeeded << " sends reported success to a peer that is gone");
    CHECK_MESSAGE(succeeded_after_failure == 0,
                  name << ": " << succeeded_after_failure << " sends succeeded after one had failed");
    CHECK_MESSAGE(!unexpected_error, name << ": unexpected send errors: " << error_list);

    auto gone = co_await b.changed(pid(name), connection_status::disconnected, 2s);
    REQUIRE_MESSAGE(gone.has_value(), name << ": no disconnected event");
    CHECK(gone->id == g.on_node);
    MESSAGE(name << ": disconnected with " << reason_text(gone));
    CHECK_MESSAGE(gone->reason.has_value(), name << ": disconnected without a reason");
    CHECK_MESSAGE(!(gone->reason == peer_errc::protocol_error), name << ": the peer's end taken for a protocol error");
    co_await pause(200ms);
    CHECK_MESSAGE(disconnects_of(b, g.on_node) == 1,
                  name << ": disconnected reported " << disconnects_of(b, g.on_node) << " times");
  }
  co_await exchange(a, b, healthy, "after sends to the dead");
}

// ---- accept under descriptor exhaustion --------------------------------------------------------------------------

// POSIX: the descriptors run out through setrlimit. Windows has no limit of a process's socket handles to lower, so
// an accept cannot be made to fail for want of them there (the accept loop's pause for that case is the same code).
#if !defined(_WIN32)
CO_TEST_CASE("out of descriptors: accept backs off instead of spinning, and resumes by itself when they are back")
{
  node b(ctx, props("bob"));
  const auto where = co_await listening(b);
  // Every socket this test needs is made now: with the limit lowered none could be.
  raw_peer waiting(ctx);
  waiting.socket().open(tcp::v4());
  co_await pause(50ms);

  const int lowest = lowest_free_descriptor();
  REQUIRE_MESSAGE(lowest >= 0, "no descriptor could be opened to find the lowest free one");
  std::chrono::microseconds cpu{};
  {
    descriptor_limit limit(static_cast<rlim_t>(lowest));
    REQUIRE_MESSAGE(limit.ok(), "setrlimit: " << std::strerror(errno));
    const int probe = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const int probe_errno = errno;
    if (probe >= 0)
      ::close(probe);
    REQUIRE_MESSAGE(probe < 0, "the lowered limit does not stop new descriptors");
    REQUIRE(probe_errno == EMFILE);

    // The kernel completes the connection into the listener's backlog; the node's accept fails with EMFILE.
    waiting.connect(where);
    const auto cpu_before = cpu_time();
    co_await pause(1s);
    cpu = cpu_time() - cpu_before;
    limit.restore();
  }
  MESSAGE("CPU time over 1 s of failing accepts: " << cpu.count() << " us");
  CHECK_MESSAGE(cpu < 250ms, "accept spins while out of descriptors: " << cpu.count() << " us of CPU in 1 s");

  // Descriptors are back: the waiting connection is accepted and handshakes, and a real node connects, promptly.
  const auto restored = clock_type::now();
  auto reply = co_await waiting.handshake(hello_of("patient"), 2500ms);
  CHECK_MESSAGE(reply.is(wire::decode_event::accept),
                "the connection that waited in the backlog was not served: " << reply.error.message());
  node c(ctx, props("carol"));
  auto id = co_await c->connect(where);
  CHECK_MESSAGE(id.has_value(), "connect after the limit was restored: " << error_text(id));
  const auto took = since(restored);
  MESSAGE("served " << took.count() << " ms after the limit was restored");
  CHECK(took < 2000ms);
}
#endif

// ---- reasons -----------------------------------------------------------------------------------------------------

CO_TEST_CASE("a peer that ends its stream or resets in the middle of a payload: disconnected once, connection_reset")
{
  node b(ctx, props("bob"));
  const auto where = co_await listening(b);
  node a(ctx, props("alice"));
  const auto healthy = co_await connect_link(a, b, where);

  // A payload read through the read buffer, and one read straight into the message; each ended both ways.
  const std::array<std::size_t, 2> lengths{100, 100'000};
  int index = 0;
  for (const bool reset : {false, true}) {
    for (const std::size_t length : lengths) {
      const std::string name = std::string(reset ? "resetter-" : "quitter-") + std::to_string(index++);
      auto t = co_await raw_handshake(ctx, b, where, name);
      REQUIRE(t.raw->send(wire::encode_data_header(chat_type, length)));
      REQUIRE(t.raw->send(pattern(1, length / 5)));
      co_await pause(20ms); // the node has read the partial frame
      if (reset)
        t.raw->reset();
      else
        t.raw->socket().shutdown(tcp::socket::shutdown_send);
      const auto start = clock_type::now();
      auto gone = co_await b.changed(pid(name), connection_status::disconnected, 1500ms);
      REQUIRE_MESSAGE(gone.has_value(), name << ": no disconnect, payload " << length);
      CHECK(since(start) < 1000ms);
      CHECK_MESSAGE(gone->reason == peer_errc::connection_reset,
                    name << " (payload " << length << "): reason " << reason_text(gone));
      co_await pause(100ms);
      CHECK_MESSAGE(disconnects_of(b, t.on_node) == 1,
                    name << ": reported " << disconnects_of(b, t.on_node) << " times");
      CHECK(b.count([&](const graph_event& e) { return is_data_on(e, t.on_node); }) == 0);
    }
  }
  co_await exchange(a, b, healthy, "after peers vanished mid-payload");
}

CO_TEST_CASE("a node of another graph: connect() fails with wrong_graph on both sides, and the message says so")
{
  node b(ctx, props("bob", "other-graph"));
  const auto where_b = co_await listening(b);
  node a(ctx, props("alice"));
  node carol(ctx, props("carol"));
  const auto where_carol = co_await listening(carol);
  const auto healthy = co_await connect_link(a, carol, where_carol);

  auto r = co_await a->connect(where_b);
  REQUIRE_FALSE(r.has_value());
  CHECK_MESSAGE(r.error() == peer_errc::wrong_graph, "connect() failed with: " << r.error().message());
  const std::string text = r.error().message();
  CHECK_FALSE(text.empty());
  CHECK(text != peer_error(peer_errc::connection_refused).message());
  CHECK_MESSAGE(text.find("graph") != std::string::npos, "the message does not say why: " << text);

  auto on_a = co_await a.changed([](const connection_changed& c) { return c.status == connection_status::failed; });
  REQUIRE_MESSAGE(on_a.has_value(), "no failed event on the caller");
  CHECK_MESSAGE(on_a->reason == peer_errc::wrong_graph, "caller's failed event: " << reason_text(on_a));
  auto on_b = co_await b.changed(pid("alice"), connection_status::failed);
  REQUIRE_MESSAGE(on_b.has_value(), "no failed event on the node of the other graph");
  CHECK_MESSAGE(on_b->reason == peer_errc::wrong_graph, "listener's failed event: " << reason_text(on_b));

  // What another implementation reads on the wire: the refuse frame carries the same reason.
  raw_peer stranger(ctx);
  stranger.connect(where_b);
  auto hello = wire::encode_hello(hello_of("stranger"));
  REQUIRE(hello.has_value());
  REQUIRE(stranger.send(*hello));
  auto reply = co_await stranger.next(2s);
  REQUIRE_MESSAGE(reply.is(wire::decode_event::refuse), "no refuse frame: " << reply.error.message());
  CHECK_MESSAGE(reply.reason == peer_errc::wrong_graph, "refuse frame reason: " << peer_error(reply.reason).message());

  auto list = co_await b->connections();
  REQUIRE(list.has_value());
  CHECK(list->empty());
  co_await exchange(a, carol, healthy, "after the wrong graph");
}

// ---- per-address limits ------------------------------------------------------------------------------------------

CO_TEST_CASE("max_pending_handshakes_per_address: one address's silent connections cannot keep others out")
{
  auto pb = props("bob");
  pb.max_pending_handshakes = 64;
  pb.max_pending_handshakes_per_address = 4;
  pb.handshake_timeout = 3s;
  node b(ctx, pb);
  const auto where = co_await listening(b); // 127.0.0.1: reachable from sockets bound to 127.0.0.2 as well

  std::vector<std::unique_ptr<raw_peer>> holders;
  for (std::size_t i = 0; i < pb.max_pending_handshakes_per_address; ++i)
    holders.push_back(raw_from(ctx, loopback_1, where));
  co_await pause(100ms);

  // The 5th to 20th silent connections from 127.0.0.1 are closed at once, without a byte: each is seen closed
  // within 300 ms of connecting (the handshake timeout is 3 s).
  std::vector<std::unique_ptr<raw_peer>> extras;
  for (std::size_t i = holders.size(); i < 20; ++i)
    extras.push_back(raw_from(ctx, loopback_1, where));
  const auto connected = clock_type::now();
  std::size_t closed = 0;
  for (std::size_t i = 0; i < extras.size(); ++i) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(connected + 300ms - clock_type::now());
    auto end = co_await extras[i]->wait_end(std::max(left, 1ms));
    CHECK_MESSAGE(end.closed, "silent connection " << holders.size() + i + 1 << " from 127.0.0.1 still open "
                                                   << since(connected).count() << " ms after connecting");
    CHECK(end.bytes == 0);
    closed += end.closed ? 1 : 0;
  }
  MESSAGE(closed << " of " << extras.size() << " extra silent connections were closed within 300 ms");

  // Another address still gets in, promptly.
  const auto start = clock_type::now();
  auto other = co_await raw_handshake_from(ctx, b, where, "neighbor-2", loopback_2);
  CHECK(since(start) < 1000ms);
  // The holders are still waiting in their handshakes.
  for (auto& holder : holders)
    CHECK((co_await holder->wait_end(20ms)).error == asio::error::timed_out);

  // Once they leave, 127.0.0.1 gets in again: the per-address slots are given back.
  for (auto& holder : holders)
    holder->socket().close();
  co_await pause(100ms);
  auto back = co_await raw_handshake_from(ctx, b, where, "neighbor-1", loopback_1);
  auto list = co_await b->connections();
  REQUIRE(list.has_value());
  CHECK(list->size() == 2);
}

CO_TEST_CASE("max_connections_per_address: a 4th connection from one address is refused with limit_exceeded")
{
  auto pb = props("bob");
  pb.max_connections_per_address = 3;
  node b(ctx, pb);
  const auto where = co_await listening(b);

  auto from_one = co_await connected_from(ctx, b, where, pb.max_connections_per_address, loopback_1);

  // A 4th from 127.0.0.1 reads the reason in the refuse frame, and the node reports the failure.
  auto fourth = raw_from(ctx, loopback_1, where);
  auto reply = co_await fourth->handshake(hello_of("one-3"));
  CHECK_MESSAGE(reply.is(wire::decode_event::refuse),
                "the 4th connection from 127.0.0.1 was not refused: "
                    << (reply.is(wire::decode_event::accept) ? "accepted" : reply.error.message()));
  CHECK_MESSAGE(reply.reason == peer_errc::limit_exceeded, "refuse reason: " << peer_error(reply.reason).message());
  auto failed = co_await b.changed(pid("one-3"), connection_status::failed, 1s);
  REQUIRE_MESSAGE(failed.has_value(), "no failed event for the 4th connection from 127.0.0.1");
  CHECK(failed->reason == peer_errc::limit_exceeded);

  // 127.0.0.2 is another address: accepted.
  auto two = co_await raw_handshake_from(ctx, b, where, "two-0", loopback_2);

  auto list = co_await b->connections();
  REQUIRE(list.has_value());
  CHECK(list->size() == pb.max_connections_per_address + 1);

  // One leaves: 127.0.0.1 has a free slot again.
  from_one[0].raw->reset();
  REQUIRE((co_await b.changed(pid("one-0"), connection_status::disconnected)).has_value());
  auto again = co_await raw_handshake_from(ctx, b, where, "one-4", loopback_1);
  CHECK(disconnects_of(b, two.on_node) == 0);
}

CO_TEST_CASE("max_connections_per_address counts what others open: this node may still call out to that address")
{
  auto pb = props("bob");
  pb.max_connections_per_address = 3;
  node b(ctx, pb);
  const auto where = co_await listening(b);
  auto from_one = co_await connected_from(ctx, b, where, pb.max_connections_per_address, loopback_1);

  // The limit keeps strangers from taking every slot; the node's own choice to call 127.0.0.1 is not a stranger's.
  node callee(ctx, props("callee"));
  const auto where_callee = co_await listening(callee);
  auto out = co_await b->connect(where_callee);
  REQUIRE_MESSAGE(out.has_value(), "an outgoing connection to a busy address was refused: " << error_text(out));
  auto list = co_await b->connections();
  REQUIRE(list.has_value());
  CHECK(list->size() == pb.max_connections_per_address + 1);
}

TEST_SUITE_END();
