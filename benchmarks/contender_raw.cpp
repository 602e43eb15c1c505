//
// benchmarks/contender_raw.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// raw: blocking POSIX sockets, one thread per side, small frames batched into as few system calls as possible.
// The machine's limit that every library is measured against.
//
#include "harness.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

namespace {

using namespace peergraph::bench;

constexpr std::size_t copy_buffer_bytes = 64 * 1024;
constexpr std::size_t max_iovecs = 1024;

void wait_for(int fd, short events)
{
  pollfd p{fd, events, 0};
  if (::poll(&p, 1, -1) < 0 && errno != EINTR)
    fail_errno("poll");
}

iovec io(const void* data, std::size_t size)
{
  return {const_cast<void*>(data), size}; // writev takes a non-const pointer but only reads
}

/// Writes every byte of iov[0..count), continuing after partial writes; waits if the socket is nonblocking.
void write_all(int fd, iovec* iov, std::size_t count)
{
  while (count > 0) {
    const ssize_t n = ::writev(fd, iov, static_cast<int>(std::min(count, max_iovecs)));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_for(fd, POLLOUT);
        continue;
      }
      fail_errno("writev");
    }
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
}

void write_all(int fd, const void* data, std::size_t size)
{
  iovec v = io(data, size);
  write_all(fd, &v, 1);
}

/// One read of up to buf.size() bytes; waits if the socket is nonblocking. Fails on end of stream.
std::size_t read_some(int fd, std::vector<std::uint8_t>& buf)
{
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0)
      return static_cast<std::size_t>(n);
    if (n == 0)
      fail("connection closed before the end frame");
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      wait_for(fd, POLLIN);
    else if (errno != EINTR)
      fail_errno("read");
  }
}

std::uint64_t receive_stream(int fd, std::size_t payload_bytes, std::vector<std::uint8_t>& buf)
{
  frame_checker checker(payload_bytes);
  while (!checker.ended())
    checker.feed(buf.data(), read_some(fd, buf));
  return checker.frames();
}

/// Small frames, copied one after another into a 64 KiB buffer that goes out in one write when full.
std::uint64_t send_copying(int fd, const frame_layout& layout, const send_limit& limit)
{
  std::vector<std::uint8_t> buf(copy_buffer_bytes);
  const std::size_t frame = layout.frame_bytes();
  std::size_t used = 0;
  std::uint64_t sent = 0;
  while (limit.more(sent)) {
    if (used + frame > buf.size()) {
      write_all(fd, buf.data(), used);
      used = 0;
    }
    std::memcpy(buf.data() + used, layout.header.data(), header_bytes);
    std::memcpy(buf.data() + used + header_bytes, payload_of(sent), layout.payload_bytes);
    used += frame;
    ++sent;
  }
  const end_frame end = make_end_frame(sent);
  if (used + end.size() > buf.size()) {
    write_all(fd, buf.data(), used);
    used = 0;
  }
  std::memcpy(buf.data() + used, end.data(), end.size());
  write_all(fd, buf.data(), used + end.size());
  return sent;
}

/// Frames as iovecs (the header, then the payload pieces), `frames_per_call` frames per writev at most, and never
/// more than 1024 iovecs.
std::uint64_t send_gathering(int fd, const frame_layout& layout, const send_limit& limit, std::size_t frames_per_call)
{
  const std::size_t per_frame = 1 + layout.pieces;
  const std::size_t batch = std::max<std::size_t>(1, std::min(frames_per_call, max_iovecs / per_frame));
  std::vector<iovec> iov(batch * per_frame + 1);
  std::size_t used = 0;
  std::size_t frames = 0;
  std::uint64_t sent = 0;
  while (limit.more(sent)) {
    if (frames == batch) {
      write_all(fd, iov.data(), used);
      used = 0;
      frames = 0;
    }
    iov[used++] = io(layout.header.data(), header_bytes);
    const std::uint8_t* payload = payload_of(sent);
    for (std::size_t i = 0; i < layout.pieces; ++i)
      iov[used++] = io(payload + i * layout.piece_bytes(), layout.piece_bytes());
    ++frames;
    ++sent;
  }
  const end_frame end = make_end_frame(sent);
  iov[used++] = io(end.data(), end.size());
  write_all(fd, iov.data(), used);
  return sent;
}

stream_result one_stream(const run_spec& spec, send_limit limit, bool copying, std::size_t frames_per_call)
{
  const std::pair<int, int> fds = tcp_pair();
  const int tx = fds.first;
  const int rx = fds.second;
  std::vector<std::uint8_t> buf(spec.receive_buffer_bytes);
  const stream_result r = run_stream(
      limit,
      [&] {
        return copying ? send_copying(tx, spec.layout, limit) : send_gathering(tx, spec.layout, limit, frames_per_call);
      },
      [&] { return receive_stream(rx, spec.layout.payload_bytes, buf); });
  close_fd(tx);
  close_fd(rx);
  return r;
}

measurement stream(const run_spec& spec)
{
  const bool small = spec.layout.pieces == 1 && spec.layout.frame_bytes() + end_payload_bytes <= copy_buffer_bytes;
  if (!small) // large frames and gather sends: one writev per send
    return stream_measurement(spec, one_stream(spec, spec.limit(), false, 1));
  if (spec.count != 0) // counted runs (system calls, allocations) use the strategy with the fewest calls
    return stream_measurement(spec, one_stream(spec, spec.limit(), true, 0));
  // Timed runs: the better of the two batching strategies, each given half the time.
  run_spec half = spec;
  half.seconds = spec.seconds / 2;
  const stream_result copied = one_stream(half, half.limit(), true, 0);
  const stream_result gathered = one_stream(half, half.limit(), false, max_iovecs);
  const double copied_rate = static_cast<double>(copied.frames) / copied.seconds;
  const double gathered_rate = static_cast<double>(gathered.frames) / gathered.seconds;
  measurement m = stream_measurement(spec, copied_rate >= gathered_rate ? copied : gathered);
  m.details.emplace_back("copy_64k_msgs_per_s", copied_rate);
  m.details.emplace_back("writev_1024_msgs_per_s", gathered_rate);
  return m;
}

/// Sends data frame `seq` (request or reply) with one writev.
void send_frame(int fd, const frame_layout& layout, std::uint64_t seq)
{
  std::array<iovec, 2> iov{io(layout.header.data(), header_bytes), io(payload_of(seq), layout.payload_bytes)};
  write_all(fd, iov.data(), iov.size());
}

void send_end(int fd, std::uint64_t frames)
{
  const end_frame end = make_end_frame(frames);
  write_all(fd, end.data(), end.size());
}

/// Reads until `checker` has verified `frames` data frames.
void receive_until(int fd, frame_checker& checker, std::uint64_t frames, std::vector<std::uint8_t>& buf)
{
  while (checker.frames() < frames)
    checker.feed(buf.data(), read_some(fd, buf));
}

measurement rtt(const run_spec& spec)
{
  const std::pair<int, int> fds = tcp_pair();
  const int client_fd = fds.first;
  const int server_fd = fds.second;
  const std::uint64_t total = spec.warmup + spec.count;
  const measurement m = run_rtt(
      spec,
      [&] {
        std::vector<bench_clock::duration> samples;
        samples.reserve(total);
        std::vector<std::uint8_t> buf(spec.receive_buffer_bytes);
        frame_checker checker(spec.layout.payload_bytes);
        for (std::uint64_t i = 0; i < total; ++i) {
          const auto t0 = bench_clock::now();
          send_frame(client_fd, spec.layout, i);
          receive_until(client_fd, checker, i + 1, buf);
          samples.push_back(bench_clock::now() - t0);
        }
        send_end(client_fd, total);
        return samples;
      },
      [&] {
        std::vector<std::uint8_t> buf(spec.receive_buffer_bytes);
        frame_checker checker(spec.layout.payload_bytes);
        std::uint64_t replied = 0;
        while (!checker.ended()) {
          checker.feed(buf.data(), read_some(server_fd, buf));
          for (; replied < checker.frames(); ++replied)
            send_frame(server_fd, spec.layout, replied);
        }
        return checker.frames();
      });
  close_fd(client_fd);
  close_fd(server_fd);
  return m;
}

/// Both ends on the calling thread with nonblocking sockets: request, verified at the server, reply, verified at the
/// client, in turn.
measurement rtt_one_thread(const run_spec& spec)
{
  const std::pair<int, int> fds = tcp_pair();
  const int client_fd = fds.first;
  const int server_fd = fds.second;
  for (const int fd : {client_fd, server_fd})
    if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
      fail_errno("fcntl");
  std::vector<std::uint8_t> buf(spec.receive_buffer_bytes);
  frame_checker at_server(spec.layout.payload_bytes);
  frame_checker at_client(spec.layout.payload_bytes);
  for (std::uint64_t i = 0; i < spec.count; ++i) {
    send_frame(client_fd, spec.layout, i);
    receive_until(server_fd, at_server, i + 1, buf);
    send_frame(server_fd, spec.layout, i);
    receive_until(client_fd, at_client, i + 1, buf);
  }
  send_end(client_fd, spec.count);
  while (!at_server.ended())
    at_server.feed(buf.data(), read_some(server_fd, buf));
  close_fd(client_fd);
  close_fd(server_fd);
  measurement m;
  m.values.emplace_back("round_trips", static_cast<double>(at_client.frames()));
  return m;
}

/// Connected pairs registered for reading with an epoll set: what an event loop over raw sockets holds per
/// connection.
measurement idle_conn(const run_spec& spec)
{
  loopback_listener listener;
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0)
    fail_errno("epoll_create1");
  const memory_usage before = memory_usage::now();
  std::vector<std::pair<int, int>> pairs;
  pairs.reserve(spec.count);
  for (std::uint64_t i = 0; i < spec.count; ++i) {
    const auto p = listener.connect_pair();
    pairs.push_back(p);
    for (const int fd : {p.first, p.second}) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        fail_errno("epoll_ctl");
    }
  }
  const memory_usage after = memory_usage::now();
  for (const auto& [a, b] : pairs) {
    close_fd(a);
    close_fd(b);
  }
  close_fd(ep);
  return idle_measurement(before, after, spec.count);
}

const contender_registration registration{{"raw",
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
