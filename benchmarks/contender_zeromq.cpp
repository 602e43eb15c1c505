//
// benchmarks/contender_zeromq.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// zeromq: libzmq through cppzmq. PUSH/PULL for streams, REQ/REP for round trips, every frame (header + payload) one
// ZeroMQ message. Streams and round trips run their two sides as two processes, each with its own context (and so
// its own I/O thread), as two ZeroMQ programs would: the benchmark forks before any context exists, the child runs
// the sending (or server) side and reports its result over a control channel, the parent runs the receiving (or
// client) side and the timing. Each side is pinned to its CPU before its context starts, so its I/O thread shares
// the CPU of its application thread, as every other contender's side keeps to one CPU.
//
#include "harness.hpp"

#include <zmq.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using namespace peergraph::bench;
using namespace std::chrono_literals;

/// Payloads from this size on go out without a copy (a header part, then the payload as a zero-copy part);
/// smaller frames are copied into one message, which is cheaper for them.
constexpr std::size_t zero_copy_from = 64 * 1024;

/// The longest either process waits for the other (a message, a report, an exit) before the run fails: far beyond
/// any pause of a working run on a loaded machine, and a broken run still ends instead of hanging.
constexpr auto peer_timeout = 10s;

/// A receive of a two-process run waits at most this long at a time, so that silence is noticed.
constexpr auto receive_slice = 1s;

/// The child process of the running measurement (in the parent, while it runs), killed when the run fails.
std::atomic<pid_t> peer_pid{0};

/// Fails the run, killing the other process first so that nothing of the run outlives it.
[[noreturn]] void fail_run(const std::string& what)
{
  if (const pid_t pid = peer_pid.load(); pid > 0)
    ::kill(pid, SIGKILL);
  fail(what);
}

[[noreturn]] void fail_run_errno(const std::string& what)
{
  const int err = errno;
  fail_run(what + ": " + std::strerror(err));
}

/// Runs `body`, turning a ZeroMQ exception into a failed run.
template <class Body>
auto guarded(const char* what, Body body)
{
  return [what, body]() {
    try {
      return body();
    } catch (const zmq::error_t& e) {
      fail_run(std::string(what) + ": " + e.what());
    }
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The control channel between the two processes: a Unix socket pair that carries the endpoint, the start and the
// result. Every wait on it is bounded.

/// Whether `fd` has bytes (or the other end's close) within `timeout`.
bool readable(int fd, std::chrono::milliseconds timeout)
{
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n >= 0)
      return n > 0;
    if (errno != EINTR)
      fail_run_errno("poll of the control channel");
  }
}

void put(int fd, const void* data, std::size_t size)
{
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      fail_run_errno("write to the control channel");
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

/// Reads exactly `size` bytes; false if the other end closed first (its process ended). Fails the run when nothing
/// arrives for peer_timeout.
bool get(int fd, void* data, std::size_t size)
{
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    if (!readable(fd, peer_timeout))
      fail_run("the other process said nothing for 10 s");
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      fail_run_errno("read from the control channel");
    if (n == 0)
      return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

void put_endpoint(int fd, const std::string& endpoint)
{
  const auto size = static_cast<std::uint32_t>(endpoint.size());
  put(fd, &size, sizeof size);
  put(fd, endpoint.data(), endpoint.size());
}

/// The endpoint the other process bound, or an empty string if it ended first.
std::string get_endpoint(int fd)
{
  std::uint32_t size = 0;
  if (!get(fd, &size, sizeof size) || size > 4096)
    return {};
  std::string endpoint(size, '\0');
  if (!get(fd, endpoint.data(), size))
    return {};
  return endpoint;
}

/// The child process that runs one side of a measurement, and the parent's end of the control channel to it.
class peer_process
{
public:
  /// Forks. The child runs `body` with its end of the channel and exits with status 0; a failure in it ends it
  /// through fail() (status 2), which the parent learns from the channel's close.
  template <class Body>
  explicit peer_process(Body body)
  {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
      fail_errno("socketpair");
    std::fflush(nullptr); // else the child could write out the parent's buffered output a second time
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0)
      fail_errno("fork");
    if (pid == 0) {
      ::close(fds[0]);
      // Killed when the parent's forking (main) thread ends, however the parent ends: a failed or killed run leaves
      // nothing behind that still sends or waits.
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent)
        std::_Exit(2);
      body(fds[1]);
      // No destructors or exit handlers: what the child inherited belongs to the parent.
      std::_Exit(0);
    }
    ::close(fds[1]);
    fd_ = fds[0];
    pid_ = pid;
    peer_pid = pid;
  }

  ~peer_process()
  {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    peer_pid = 0;
    close_fd(fd_);
  }

  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;

  /// The parent's end of the control channel.
  int control() const noexcept { return fd_; }

  /// Waits for the child's 64-bit result. `done_here` tells when this process's side has finished: the result is
  /// due then, so from then on the wait is bounded (before, this side's own receives are).
  std::uint64_t result(const std::atomic<bool>& done_here)
  {
    std::chrono::milliseconds waited_after_done{0};
    constexpr std::chrono::milliseconds step{100};
    while (!readable(fd_, step)) {
      if (done_here.load())
        waited_after_done += step;
      if (waited_after_done >= peer_timeout)
        fail_run("the other process did not report its result");
    }
    std::uint64_t value = 0;
    if (!get(fd_, &value, sizeof value))
      ended_early();
    return value;
  }

  /// Reaps the child (waiting at most peer_timeout) and fails the run unless it exited with status 0.
  void finish()
  {
    int status = 0;
    for (auto waited = 0ms;; waited += 1ms) {
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_)
        break;
      if (r < 0 && errno != EINTR)
        fail_run_errno("waitpid");
      if (waited >= peer_timeout)
        fail_run("the other process did not exit");
      std::this_thread::sleep_for(1ms);
    }
    pid_ = 0;
    peer_pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail("the other process failed (wait status " + std::to_string(status) + ")");
  }

  /// The channel closed before the child's result: it ended, and so did the run.
  [[noreturn]] void ended_early()
  {
    finish();
    fail("the other process ended before its result");
  }

private:
  int fd_ = -1;
  pid_t pid_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// Messages.

void send_message(zmq::socket_t& socket, const void* data, std::size_t size)
{
  zmq::message_t msg(data, size); // copies
  if (!socket.send(msg, zmq::send_flags::none))
    fail_run("zmq send would block");
}

/// Sends data frame `seq` as one message (or, for large payloads, a header part and a zero-copy payload part).
void send_frame(zmq::socket_t& socket, const frame_layout& layout, std::uint64_t seq)
{
  const std::uint8_t* payload = payload_of(seq);
  if (layout.payload_bytes >= zero_copy_from) {
    zmq::message_t head(layout.header.data(), header_bytes);
    socket.send(head, zmq::send_flags::sndmore);
    // No free function: the pattern outlives every message.
    zmq::message_t body(const_cast<std::uint8_t*>(payload), layout.payload_bytes, nullptr);
    socket.send(body, zmq::send_flags::none);
    return;
  }
  zmq::message_t msg(layout.frame_bytes());
  auto* out = static_cast<std::uint8_t*>(msg.data());
  std::memcpy(out, layout.header.data(), header_bytes);
  for (std::size_t i = 0; i < layout.pieces; ++i) // gather: the pieces are copied one by one into the message
    std::memcpy(out + header_bytes + i * layout.piece_bytes(), payload + i * layout.piece_bytes(),
                layout.piece_bytes());
  socket.send(msg, zmq::send_flags::none);
}

void send_end(zmq::socket_t& socket, std::uint64_t frames)
{
  const end_frame end = make_end_frame(frames);
  send_message(socket, end.data(), end.size());
}

/// Receives one message (part) and feeds it to `checker`. Sockets of two-process runs have a receive timeout
/// (receive_slice): there a peer that sends nothing for peer_timeout fails the run.
void receive_into(zmq::socket_t& socket, zmq::message_t& msg, frame_checker& checker)
{
  for (auto waited = 0ms; !socket.recv(msg, zmq::recv_flags::none); waited += receive_slice)
    if (waited >= peer_timeout)
      fail_run("nothing arrived for 10 s");
  checker.feed(msg.data(), msg.size());
}

std::string bind_loopback(zmq::socket_t& socket)
{
  socket.bind("tcp://127.0.0.1:*");
  return socket.get(zmq::sockopt::last_endpoint);
}

void bound_receives(zmq::socket_t& socket)
{
  socket.set(zmq::sockopt::rcvtimeo, static_cast<int>(std::chrono::milliseconds(receive_slice).count()));
}

// ---------------------------------------------------------------------------------------------------------------
// The two sides, whatever runs them.

std::uint64_t send_stream(zmq::socket_t& push, const frame_layout& layout, const send_limit& limit)
{
  std::uint64_t sent = 0;
  for (; limit.more(sent); ++sent)
    send_frame(push, layout, sent);
  send_end(push, sent);
  return sent;
}

std::uint64_t receive_stream(zmq::socket_t& pull, frame_checker& checker)
{
  zmq::message_t msg;
  while (!checker.ended())
    receive_into(pull, msg, checker);
  return checker.frames();
}

/// Answers each request with the data frame of the same number until the end frame; returns the requests served.
std::uint64_t serve(zmq::socket_t& rep, const frame_layout& layout)
{
  frame_checker checker(layout.payload_bytes);
  zmq::message_t request;
  for (std::uint64_t replied = 0;; ++replied) {
    receive_into(rep, request, checker);
    if (checker.ended())
      break;
    send_frame(rep, layout, replied);
  }
  return checker.frames();
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements.

/// Two threads of one process, one context each: the allocation-counting program counts only its own process, so
/// there both sides have to be in it. What each side allocates does not depend on where the other side runs.
measurement stream_threads(const run_spec& spec)
{
  zmq::context_t send_ctx(1);
  zmq::context_t receive_ctx(1);
  zmq::socket_t pull(receive_ctx, zmq::socket_type::pull);
  zmq::socket_t push(send_ctx, zmq::socket_type::push);
  push.connect(bind_loopback(pull));
  send_limit limit = spec.limit();
  frame_checker checker(spec.layout.payload_bytes);
  const stream_result r = run_stream(limit, guarded("sender", [&] { return send_stream(push, spec.layout, limit); }),
                                     guarded("receiver", [&] { return receive_stream(pull, checker); }));
  return stream_measurement(spec, r);
}

/// Two processes. The parent's sending thread (pinned, released with the receiving one as in run_stream) stands in
/// for the child: it starts the child's sender and returns the frames the child reports.
measurement stream_processes(const run_spec& spec)
{
  peer_process sender([&](int control) {
    guarded("sender", [&] {
      const std::string endpoint = get_endpoint(control);
      if (endpoint.empty())
        std::_Exit(2);
      pin_current_thread(sender_cpu); // before the context, whose threads take this CPU from the thread starting them
      zmq::context_t ctx(1);
      zmq::socket_t push(ctx, zmq::socket_type::push);
      push.connect(endpoint);
      char go = 0;
      if (!get(control, &go, 1))
        std::_Exit(2);
      send_limit limit = spec.limit();
      limit.start();
      const std::uint64_t sent = send_stream(push, spec.layout, limit);
      put(control, &sent, sizeof sent);
      return 0; // the socket, then the context: their linger sends what is still queued
    })();
  });
  pin_current_thread(receiver_cpu); // the parent is the receiving side, its context's threads included
  zmq::context_t ctx(1);
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  bound_receives(pull);
  put_endpoint(sender.control(), bind_loopback(pull));
  send_limit unused = spec.limit(); // the child has the limit that counts
  frame_checker checker(spec.layout.payload_bytes);
  std::atomic<bool> received{false};
  const stream_result r = run_stream(
      unused,
      [&] {
        const char go = 1;
        put(sender.control(), &go, 1);
        return sender.result(received);
      },
      guarded("receiver", [&] {
        const std::uint64_t frames = receive_stream(pull, checker);
        received = true;
        return frames;
      }));
  sender.finish();
  return stream_measurement(spec, r);
}

measurement stream(const run_spec& spec)
{
  return counting_allocations() ? stream_threads(spec) : stream_processes(spec);
}

/// Two processes: the child is the server, the parent's client does the timing. The parent's server thread (pinned,
/// released with the client as in run_rtt) stands in for the child and returns the requests it reports.
measurement rtt(const run_spec& spec)
{
  peer_process server([&](int control) {
    guarded("server", [&] {
      pin_current_thread(receiver_cpu); // before the context, whose threads take this CPU from the thread starting them
      zmq::context_t ctx(1);
      zmq::socket_t rep(ctx, zmq::socket_type::rep);
      bound_receives(rep);
      put_endpoint(control, bind_loopback(rep));
      const std::uint64_t served = serve(rep, spec.layout);
      put(control, &served, sizeof served);
      return 0;
    })();
  });
  const std::string endpoint = get_endpoint(server.control());
  if (endpoint.empty())
    server.ended_early();
  pin_current_thread(sender_cpu); // the parent is the client side, its context's threads included
  zmq::context_t ctx(1);
  zmq::socket_t req(ctx, zmq::socket_type::req);
  bound_receives(req);
  req.connect(endpoint);
  const std::uint64_t total = spec.warmup + spec.count;
  std::atomic<bool> done{false};
  measurement m = run_rtt(spec,
                          guarded("client",
                                  [&] {
                                    std::vector<bench_clock::duration> samples;
                                    samples.reserve(total);
                                    frame_checker checker(spec.layout.payload_bytes);
                                    zmq::message_t reply;
                                    for (std::uint64_t i = 0; i < total; ++i) {
                                      const auto t0 = bench_clock::now();
                                      send_frame(req, spec.layout, i);
                                      receive_into(req, reply, checker);
                                      if (checker.frames() != i + 1)
                                        fail_run("a reply was not one whole frame");
                                      samples.push_back(bench_clock::now() - t0);
                                    }
                                    send_end(req, total);
                                    done = true;
                                    return samples;
                                  }),
                          [&] { return server.result(done); });
  server.finish();
  return m;
}

/// Both ends in the calling thread (ZeroMQ's own I/O thread still does the socket work).
measurement rtt_one_thread(const run_spec& spec)
{
  zmq::context_t ctx(1);
  zmq::socket_t rep(ctx, zmq::socket_type::rep);
  zmq::socket_t req(ctx, zmq::socket_type::req);
  req.connect(bind_loopback(rep));
  frame_checker at_server(spec.layout.payload_bytes);
  frame_checker at_client(spec.layout.payload_bytes);
  zmq::message_t msg;
  guarded("round trips", [&] {
    for (std::uint64_t i = 0; i < spec.count; ++i) {
      send_frame(req, spec.layout, i);
      receive_into(rep, msg, at_server);
      send_frame(rep, spec.layout, i);
      receive_into(req, msg, at_client);
    }
    send_end(req, spec.count);
    receive_into(rep, msg, at_server);
    return 0;
  })();
  if (!at_server.ended() || at_client.frames() != spec.count)
    fail("one-thread round trips did not complete");
  measurement m;
  m.values.emplace_back("round_trips", static_cast<double>(at_client.frames()));
  return m;
}

/// Idle connections the way ZeroMQ addresses peers: one ROUTER socket that every peer connects to, and one DEALER
/// socket per peer. Each DEALER says hello once, so every connection is known to be up when memory is measured.
measurement idle_conn(const run_spec& spec)
{
  zmq::context_t ctx(1, static_cast<int>(spec.count) + 16);
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::backlog, 4096); // the default (100) drops connects, which then retry after seconds
  const std::string endpoint = bind_loopback(router);
  const memory_usage before = memory_usage::now();
  std::vector<zmq::socket_t> dealers;
  dealers.reserve(spec.count);
  guarded("idle connections", [&] {
    for (std::uint64_t i = 0; i < spec.count; ++i) {
      zmq::socket_t& d = dealers.emplace_back(ctx, zmq::socket_type::dealer);
      d.set(zmq::sockopt::linger, 0);
      d.connect(endpoint);
      d.send(zmq::str_buffer("h"), zmq::send_flags::none);
    }
    zmq::message_t id;
    zmq::message_t hello;
    for (std::uint64_t i = 0; i < spec.count; ++i) {
      if (!router.recv(id, zmq::recv_flags::none) || !router.recv(hello, zmq::recv_flags::none) ||
          hello.to_string_view() != "h")
        fail("a hello did not arrive");
    }
    return 0;
  })();
  const memory_usage after = memory_usage::now();
  return idle_measurement(before, after, spec.count);
}

const contender_registration registration{{"zeromq",
                                           {
                                               {"small_msgs_64", &stream},
                                               {"small_msgs_1k", &stream},
                                               {"large_msgs_1m", &stream},
                                               {"gather_256x64", &stream},
                                               {"rtt_64", &rtt},
                                               {"rtt_64_one_thread", &rtt_one_thread},
                                               {"idle_conn", &idle_conn},
                                           }}};

} // namespace
