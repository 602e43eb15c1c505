//
// benchmarks/harness.cpp
// ~~~~~~~~~~~~~~~~~~~~~~
// The harness and the benchmark program's entry point: one invocation runs one measurement of one contender and
// prints one JSON line; benchmarks/run_benchmarks.py runs the invocations and collects the lines.
//
#include "harness.hpp"

#include <asio/version.hpp>
#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <optional>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace peergraph::bench {

void fail(std::string_view what)
{
  std::fprintf(stderr, "peergraph_bench: FAILED: %.*s\n", static_cast<int>(what.size()), what.data());
  std::fflush(stderr);
  std::_Exit(2);
}

void fail_errno(std::string_view what)
{
  const int err = errno;
  std::string text(what);
  text += ": ";
  text += std::strerror(err);
  fail(text);
}

namespace {

std::string format(const char* fmt, auto... args)
{
  std::array<char, 512> buf{};
  std::snprintf(buf.data(), buf.size(), fmt, args...);
  return buf.data();
}

void store_le32(std::uint8_t* out, std::uint32_t v)
{
  for (int i = 0; i < 4; ++i)
    out[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::uint64_t (*allocation_counter)() noexcept = nullptr;

/// The steady part of a counted stream in the allocation-counting build: the allocations of the whole process while
/// the receiver verifies data frames `first_frame` to `last_frame`, the middle half of the stream, and the sender is
/// still sending. Start-up, the first quarter (where queues and pools reach their working size), the sender's wind-down
/// (its last send, its coroutine's end) and tear-down are left out: a sender that runs ahead of the receiver by more
/// than a quarter of the stream (the socket buffers hold tens of thousands of small frames) ends the window early.
///
/// Whether a sender ever finds its socket full depends on how the two threads happen to be scheduled: in some runs
/// never, in others first in the middle of the stream, where the first use of that path (operations and buffers
/// reaching their working number) would count as if it happened per message. So the receiver stalls once, early in
/// the first quarter (at `stall_frame`), until the sender has made no progress for a while: from then on every path
/// of a stream with a slower receiver is warm.
struct steady_window
{
  std::uint64_t first_frame = 0; // 0: not counted
  std::uint64_t last_frame = 0;
  std::uint64_t stall_frame = 0;
  std::atomic<std::uint64_t> sent{0}; // data frames the sender has sent, while counting
  std::uint64_t start = 0;
  std::atomic<std::uint64_t> verified{0}; // data frames the receiver has verified, while counting
  std::atomic<int> phase{0};              // 0: before the window, 1: in it, 2: after it
  std::uint64_t end = 0;                  // written once, by whoever closes the window
  std::uint64_t end_frame = 0;

  /// Closes the window at receiver frame `frame` if it is open (from the receiver or the finished sender).
  void close(std::uint64_t frame) noexcept
  {
    int open = 1;
    if (phase.compare_exchange_strong(open, 2)) {
      end = allocation_counter();
      end_frame = frame;
    }
  }
};
steady_window steady;

/// Waits until the sender has sent nothing for `quiet` (it waits for room), or `limit` has passed.
void stall_until_sender_waits(std::chrono::milliseconds quiet = std::chrono::milliseconds(20),
                              std::chrono::milliseconds limit = std::chrono::milliseconds(3000))
{
  constexpr auto step = std::chrono::milliseconds(2);
  std::uint64_t last = steady.sent.load(std::memory_order_relaxed);
  auto still = std::chrono::milliseconds(0);
  for (auto waited = std::chrono::milliseconds(0); waited < limit && still < quiet; waited += step) {
    std::this_thread::sleep_for(step);
    const std::uint64_t now = steady.sent.load(std::memory_order_relaxed);
    still = now == last ? still + step : std::chrono::milliseconds(0);
    last = now;
  }
}

} // namespace

frame_header make_header(const guid& type, std::uint32_t payload_bytes)
{
  frame_header h{};
  std::memcpy(h.data(), type.data(), guid_bytes);
  store_le32(h.data() + guid_bytes, payload_bytes);
  return h;
}

end_frame make_end_frame(std::uint64_t frames)
{
  end_frame f{};
  const frame_header h = make_header(end_type, end_payload_bytes);
  std::memcpy(f.data(), h.data(), header_bytes);
  for (std::size_t i = 0; i < end_payload_bytes; ++i)
    f[header_bytes + i] = static_cast<std::uint8_t>(frames >> (8 * i));
  return f;
}

void prepare_pattern(std::size_t max_payload_bytes)
{
  // Allocated once per process, before any measurement, and never freed: senders point into it until exit.
  const std::size_t size = max_payload_bytes + pattern_period;
  auto* bytes = new std::uint8_t[size];
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (std::size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    bytes[i] = static_cast<std::uint8_t>(x >> 32);
  }
  detail::pattern = bytes;
}

frame_checker::frame_checker(std::size_t payload_bytes)
    : data_header_(make_header(data_type, static_cast<std::uint32_t>(payload_bytes))),
      end_header_(make_header(end_type, end_payload_bytes)), payload_bytes_(payload_bytes)
{
}

void frame_checker::feed(const void* data, std::size_t size)
{
  const auto* p = static_cast<const std::uint8_t*>(data);
  while (size > 0) {
    switch (state_) {
    case state::header: {
      const std::size_t take = std::min(size, header_bytes - have_);
      std::memcpy(header_buf_.data() + have_, p, take);
      have_ += take;
      p += take;
      size -= take;
      if (have_ < header_bytes)
        break;
      have_ = 0;
      if (header_buf_ == data_header_)
        state_ = state::payload;
      else if (header_buf_ == end_header_)
        state_ = state::end_payload;
      else
        fail(format("bad frame header after %llu frames", static_cast<unsigned long long>(frames_)));
      break;
    }
    case state::payload: {
      const std::size_t take = std::min(size, payload_bytes_ - have_);
      if (std::memcmp(p, payload_of(frames_) + have_, take) != 0)
        fail(format("payload of frame %llu differs from what was sent (bytes %zu..%zu)",
                    static_cast<unsigned long long>(frames_), have_, have_ + take));
      have_ += take;
      p += take;
      size -= take;
      if (have_ == payload_bytes_) {
        have_ = 0;
        ++frames_;
        state_ = state::header;
        if (steady.first_frame != 0) {
          steady.verified.store(frames_, std::memory_order_relaxed);
          if (frames_ == steady.stall_frame)
            stall_until_sender_waits();
          if (frames_ == steady.first_frame) {
            steady.start = allocation_counter();
            steady.phase.store(1);
          }
          if (frames_ == steady.last_frame)
            steady.close(frames_);
        }
      }
      break;
    }
    case state::end_payload: {
      const std::size_t take = std::min(size, end_payload_bytes - have_);
      std::memcpy(end_buf_.data() + have_, p, take);
      have_ += take;
      p += take;
      size -= take;
      if (have_ < end_payload_bytes)
        break;
      std::uint64_t sent = 0;
      for (std::size_t i = 0; i < end_payload_bytes; ++i)
        sent |= static_cast<std::uint64_t>(end_buf_[i]) << (8 * i);
      if (sent != frames_)
        fail(format("sender sent %llu frames, receiver got %llu", static_cast<unsigned long long>(sent),
                    static_cast<unsigned long long>(frames_)));
      state_ = state::done;
      break;
    }
    case state::done:
      fail(format("%zu bytes arrived after the end frame", size));
    }
  }
}

send_limit send_limit::frames(std::uint64_t count)
{
  send_limit l;
  l.count_ = count;
  if (steady.first_frame != 0)
    l.progress_ = &steady.sent;
  return l;
}

send_limit send_limit::duration(double seconds, std::uint64_t check_every)
{
  send_limit l;
  l.check_mask_ = check_every - 1;
  l.length_ = std::chrono::duration_cast<bench_clock::duration>(std::chrono::duration<double>(seconds));
  return l;
}

void send_limit::sender_finished() noexcept
{
  if (steady.first_frame != 0)
    steady.close(steady.verified.load(std::memory_order_relaxed));
}

void send_limit::start()
{
  deadline_ = bench_clock::now() + length_;
}

send_limit run_spec::limit() const
{
  if (count != 0)
    return send_limit::frames(count);
  // Reading the clock after every small frame would cost as much as an Asio completion; every 64 frames is
  // precise to well under a millisecond.
  return send_limit::duration(seconds, layout.payload_bytes < 4096 ? 64 : 1);
}

void pin_current_thread(unsigned cpu)
{
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % cpus, &set);
  if (const int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); err != 0) {
    errno = err;
    fail_errno("pthread_setaffinity_np");
  }
}

stream_result run_stream(send_limit& limit, const std::function<std::uint64_t()>& sender,
                         const std::function<std::uint64_t()>& receiver)
{
  std::latch start(2);
  bench_clock::time_point begin;
  bench_clock::time_point end;
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::thread rx([&] {
    pin_current_thread(receiver_cpu);
    start.arrive_and_wait();
    received = receiver();
    end = bench_clock::now();
  });
  std::thread tx([&] {
    pin_current_thread(sender_cpu);
    start.arrive_and_wait();
    begin = bench_clock::now();
    limit.start();
    sent = sender();
  });
  tx.join();
  rx.join();
  if (sent != received || sent == 0)
    fail(format("sent %llu frames, received %llu", static_cast<unsigned long long>(sent),
                static_cast<unsigned long long>(received)));
  return {sent, std::chrono::duration<double>(end - begin).count()};
}

measurement stream_measurement(const run_spec& spec, stream_result result)
{
  measurement m;
  const double frames = static_cast<double>(result.frames);
  if (spec.measure == "large_msgs_1m")
    m.values.emplace_back(spec.measure,
                          frames * static_cast<double>(spec.layout.payload_bytes) * 8.0 / result.seconds / 1e9);
  else
    m.values.emplace_back(spec.measure, frames / result.seconds);
  m.details.emplace_back("frames", frames);
  m.details.emplace_back("seconds", result.seconds);
  return m;
}

measurement run_rtt(const run_spec& spec, const std::function<std::vector<bench_clock::duration>()>& client,
                    const std::function<std::uint64_t()>& server)
{
  std::latch start(2);
  std::vector<bench_clock::duration> samples;
  std::uint64_t served = 0;
  std::thread srv([&] {
    pin_current_thread(receiver_cpu);
    start.arrive_and_wait();
    served = server();
  });
  std::thread cli([&] {
    pin_current_thread(sender_cpu);
    start.arrive_and_wait();
    samples = client();
  });
  cli.join();
  srv.join();
  const std::uint64_t total = spec.warmup + spec.count;
  if (served != total || samples.size() != total)
    fail(format("round trips: client %zu, server %llu, expected %llu", samples.size(),
                static_cast<unsigned long long>(served), static_cast<unsigned long long>(total)));
  std::vector<double> us;
  us.reserve(spec.count);
  for (std::size_t i = spec.warmup; i < samples.size(); ++i)
    us.push_back(std::chrono::duration<double, std::micro>(samples[i]).count());
  std::sort(us.begin(), us.end());
  const auto rank = [&](double p) {
    const auto n = static_cast<double>(us.size());
    const auto index = static_cast<std::size_t>(std::max(1.0, std::ceil(p * n))) - 1;
    return us[std::min(index, us.size() - 1)];
  };
  measurement m;
  m.values.emplace_back("rtt_64_p50", rank(0.50));
  m.values.emplace_back("rtt_64_p99", rank(0.99));
  m.details.emplace_back("round_trips", static_cast<double>(us.size()));
  m.details.emplace_back("min_us", us.front());
  m.details.emplace_back("max_us", us.back());
  return m;
}

memory_usage memory_usage::now()
{
  memory_usage u;
  const struct mallinfo2 mi = mallinfo2(); // sums every arena, so other threads' allocations count too
  u.heap_bytes = mi.uordblks + mi.hblkhd;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long long size = 0;
    unsigned long long resident = 0;
    if (std::fscanf(f, "%llu %llu", &size, &resident) == 2)
      u.resident_bytes = resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
    std::fclose(f);
  }
  return u;
}

measurement idle_measurement(const memory_usage& before, const memory_usage& after, std::uint64_t connections)
{
  const auto per = [&](std::uint64_t a, std::uint64_t b) {
    return (static_cast<double>(b) - static_cast<double>(a)) / static_cast<double>(connections);
  };
  measurement m;
  m.values.emplace_back("idle_conn_bytes", per(before.heap_bytes, after.heap_bytes));
  m.details.emplace_back("connections", static_cast<double>(connections));
  m.details.emplace_back("resident_bytes_per_conn", per(before.resident_bytes, after.resident_bytes));
  return m;
}

namespace {

void set_nodelay(int fd)
{
  const int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
    fail_errno("setsockopt(TCP_NODELAY)");
}

sockaddr_in loopback_address(std::uint16_t port)
{
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

} // namespace

loopback_listener::loopback_listener()
{
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0)
    fail_errno("socket");
  const int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = loopback_address(0);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    fail_errno("bind");
  if (::listen(fd_, 4096) != 0)
    fail_errno("listen");
  socklen_t len = sizeof(a);
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    fail_errno("getsockname");
  port_ = ntohs(a.sin_port);
}

loopback_listener::~loopback_listener()
{
  close_fd(fd_);
}

std::pair<int, int> loopback_listener::connect_pair()
{
  const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0)
    fail_errno("socket");
  sockaddr_in a = loopback_address(port_);
  if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    fail_errno("connect");
  const int s = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (s < 0)
    fail_errno("accept");
  set_nodelay(c);
  set_nodelay(s);
  return {c, s};
}

std::pair<int, int> tcp_pair()
{
  loopback_listener l;
  return l.connect_pair();
}

void close_fd(int fd) noexcept
{
  if (fd >= 0)
    ::close(fd);
}

// ---------------------------------------------------------------------------------------------------------------
// The table and the command line.

namespace {

std::vector<contender>& contender_table()
{
  static std::vector<contender> table;
  return table;
}

} // namespace

contender_registration::contender_registration(contender entry)
{
  auto& table = contender_table();
  const auto known = std::find_if(table.begin(), table.end(), [&](const contender& c) { return c.name == entry.name; });
  if (known == table.end())
    table.push_back(std::move(entry));
  else
    known->measures.insert(known->measures.end(), entry.measures.begin(), entry.measures.end());
}

allocation_counter_registration::allocation_counter_registration(std::uint64_t (*allocations)() noexcept)
{
  allocation_counter = allocations;
}

bool counting_allocations() noexcept
{
  return allocation_counter != nullptr;
}

namespace {

struct measure_def
{
  std::string_view name;
  std::size_t payload_bytes;
  std::size_t pieces;
  std::size_t receive_buffer_bytes;
  std::uint64_t default_count; // 0: a timed stream
};

// The measurements a contender can implement. Scenario values come from these: rtt_64 gives rtt_64_p50 and
// rtt_64_p99, rtt_64_one_thread gives instr_per_rtt (under callgrind), small_msgs_64 with a count gives
// syscalls_per_msg (under perf or strace) and allocs_per_msg (in the allocation-counting build). The record
// scenarios are measurements of their own; their payload length is the bytes of data of each record, their count the
// number of records. repair_after_loss is one too; its count is the number of nodes.
constexpr std::array<measure_def, 12> measure_defs{{
    {"small_msgs_64", 64, 1, 65536, 0},
    {"small_msgs_1k", 1024, 1, 65536, 0},
    {"large_msgs_1m", 1u << 20, 1, 1u << 18, 0},
    {"gather_256x64", 256 * 64, 256, 65536, 0},
    {"rtt_64", 64, 1, 65536, 10000},
    {"rtt_64_one_thread", 64, 1, 65536, 1000},
    {"idle_conn", 0, 1, 0, 2000},
    {"record_flood_20", 256, 1, 0, 10000},
    {"record_sync_join", 1024, 1, 0, 100000},
    {"record_resync_100", 1024, 1, 0, 100000},
    {"record_store_sqlite", 256, 1, 0, 10000},
    {"repair_after_loss", 0, 1, 0, 20},
}};

std::string json_string(std::string_view s)
{
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double v)
{
  return format("%.10g", v);
}

std::string json_object(const std::vector<std::pair<std::string, double>>& items)
{
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0)
      out += ", ";
    out += json_string(items[i].first) + ": " + json_number(items[i].second);
  }
  return out + "}";
}

void print_list()
{
  std::string out = "{\"contenders\": {";
  bool first = true;
  for (const contender& c : contender_table()) {
    out += first ? "" : ", ";
    first = false;
    out += json_string(c.name) + ": [";
    for (std::size_t i = 0; i < c.measures.size(); ++i)
      out += (i != 0 ? ", " : "") + json_string(c.measures[i].first);
    out += "]";
  }
  out += "}, \"measures\": [";
  for (std::size_t i = 0; i < measure_defs.size(); ++i)
    out += (i != 0 ? ", " : "") + json_string(measure_defs[i].name);
  out += "]}";
  std::puts(out.c_str());
}

std::string compiler_name()
{
#if defined(__clang__)
  return std::string("clang++ ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown";
#endif
}

void print_machine()
{
  int major = 0;
  int minor = 0;
  int patch = 0;
  zmq_version(&major, &minor, &patch);
  std::string out = "{";
  out += "\"compiler\": " + json_string(compiler_name());
  out += ", \"asio\": " +
         json_string(format("%d.%d.%d", ASIO_VERSION / 100000, ASIO_VERSION / 100 % 1000, ASIO_VERSION % 100));
  out += ", \"libzmq\": " + json_string(format("%d.%d.%d", major, minor, patch));
#if defined(NDEBUG) && defined(__OPTIMIZE__)
  out += ", \"build\": \"optimized, NDEBUG\"";
#else
  out += ", \"build\": \"NOT an optimized NDEBUG build\"";
#endif
  out += "}";
  std::puts(out.c_str());
}

[[noreturn]] void usage(const char* why)
{
  std::fprintf(stderr,
               "peergraph_bench: %s\n"
               "usage: peergraph_bench --list | --machine\n"
               "       peergraph_bench --contender NAME --measure NAME [--count N] [--seconds S] [--warmup N]\n",
               why);
  std::exit(64);
}

void raise_open_file_limit()
{
  rlimit l{};
  if (::getrlimit(RLIMIT_NOFILE, &l) == 0 && l.rlim_cur < l.rlim_max) {
    l.rlim_cur = l.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &l);
  }
}

int run(const std::vector<std::string_view>& args)
{
  std::string_view contender_name;
  std::string_view measure_name;
  std::optional<std::uint64_t> count;
  std::optional<double> seconds;
  std::uint64_t warmup = 0;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a == "--list") {
      print_list();
      return 0;
    }
    if (a == "--machine") {
      print_machine();
      return 0;
    }
    if (i + 1 >= args.size())
      usage("missing value");
    const std::string value(args[++i]);
    if (a == "--contender")
      contender_name = args[i];
    else if (a == "--measure")
      measure_name = args[i];
    else if (a == "--count")
      count = std::strtoull(value.c_str(), nullptr, 10);
    else if (a == "--seconds")
      seconds = std::strtod(value.c_str(), nullptr);
    else if (a == "--warmup")
      warmup = std::strtoull(value.c_str(), nullptr, 10);
    else
      usage("unknown option");
  }

  const auto def = std::find_if(measure_defs.begin(), measure_defs.end(),
                                [&](const measure_def& d) { return d.name == measure_name; });
  if (def == measure_defs.end())
    usage("unknown measurement");
  const auto& table = contender_table();
  const auto who =
      std::find_if(table.begin(), table.end(), [&](const contender& c) { return c.name == contender_name; });
  if (who == table.end())
    usage("unknown contender");
  const auto fn =
      std::find_if(who->measures.begin(), who->measures.end(), [&](const auto& m) { return m.first == measure_name; });
  if (fn == who->measures.end())
    usage("the contender does not implement this measurement");

  run_spec spec;
  spec.measure = std::string(def->name);
  spec.layout.payload_bytes = def->payload_bytes;
  spec.layout.pieces = def->pieces;
  spec.layout.header = make_header(data_type, static_cast<std::uint32_t>(def->payload_bytes));
  spec.receive_buffer_bytes = def->receive_buffer_bytes;
  spec.count = count.value_or(def->default_count);
  spec.seconds = seconds.value_or(spec.count == 0 ? 1.0 : 0.0);
  spec.warmup = warmup;
  if (spec.count == 0 && !(spec.seconds > 0))
    usage("a positive --count or --seconds is needed");
  prepare_pattern(def->payload_bytes);

  // Counted streams (a frame count in the allocation-counting build) also report their steady middle half.
  if (allocation_counter != nullptr && spec.count >= 4 && def->payload_bytes != 0 &&
      !spec.measure.starts_with("record_")) {
    steady.first_frame = spec.count / 4;
    steady.last_frame = spec.count - spec.count / 4;
    steady.stall_frame = std::max<std::uint64_t>(1, spec.count / 64);
  }
  const std::uint64_t allocations_before = allocation_counter != nullptr ? allocation_counter() : 0;
  const measurement m = fn->second(spec);
  const std::uint64_t allocations_after = allocation_counter != nullptr ? allocation_counter() : 0;

  std::string out = "{\"contender\": " + json_string(who->name) + ", \"measure\": " + json_string(def->name);
  out += ", \"values\": " + json_object(m.values) + ", \"details\": " + json_object(m.details);
  if (allocation_counter != nullptr)
    out += format(", \"allocations\": %llu", static_cast<unsigned long long>(allocations_after - allocations_before));
  if (steady.phase.load() == 2 && steady.end_frame > steady.first_frame)
    out += format(", \"steady_allocations\": %llu, \"steady_frames\": %llu",
                  static_cast<unsigned long long>(steady.end - steady.start),
                  static_cast<unsigned long long>(steady.end_frame - steady.first_frame));
  out += "}";
  std::puts(out.c_str());
  return 0;
}

} // namespace

} // namespace peergraph::bench

int main(int argc, char** argv)
{
  std::signal(SIGPIPE, SIG_IGN);
  peergraph::bench::raise_open_file_limit();
  std::vector<std::string_view> args;
  for (int i = 1; i < argc; ++i)
    args.emplace_back(argv[i]);
  return peergraph::bench::run(args);
}
