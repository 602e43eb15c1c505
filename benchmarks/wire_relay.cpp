//
// benchmarks/wire_relay.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// The counting TCP relay of the record scenarios (wire_relay.hpp).
//
#include "wire_relay.hpp"

#include "asio_support.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/address_v4.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <vector>

namespace peergraph::bench {

wire_counts& wire_counts::operator+=(const wire_counts& other) noexcept
{
  bytes += other.bytes;
  record_frames += other.record_frames;
  record_frame_bytes += other.record_frame_bytes;
  sync_frames += other.sync_frames;
  sync_frame_bytes += other.sync_frame_bytes;
  return *this;
}

wire_counts operator-(const wire_counts& later, const wire_counts& earlier) noexcept
{
  return {later.bytes - earlier.bytes, later.record_frames - earlier.record_frames,
          later.record_frame_bytes - earlier.record_frame_bytes, later.sync_frames - earlier.sync_frames,
          later.sync_frame_bytes - earlier.sync_frame_bytes};
}

namespace {

/// Follows one direction of a connection through the protocol's framing (docs/wire.md): the 8-byte preamble, then
/// frames of a 28-byte header (kind at offset 0, payload length as u64 LE at offset 20) and their payload.
class frame_scanner
{
public:
  void feed(const std::uint8_t* data, std::size_t size, wire_counts& counts)
  {
    counts.bytes += size;
    while (size > 0) {
      std::size_t take = 0;
      if (preamble_left_ > 0) {
        take = std::min<std::size_t>(size, preamble_left_);
        preamble_left_ -= take;
      } else if (payload_left_ > 0) {
        take = static_cast<std::size_t>(std::min<std::uint64_t>(size, payload_left_));
        payload_left_ -= take;
      } else {
        take = std::min(size, header_size - have_);
        std::memcpy(header_.data() + have_, data, take);
        have_ += take;
        if (have_ == header_size) {
          have_ = 0;
          std::uint64_t length = 0;
          for (std::size_t i = 0; i < 8; ++i)
            length |= static_cast<std::uint64_t>(header_[length_offset + i]) << (8 * i);
          payload_left_ = length;
          if (header_[0] == record_kind) {
            ++counts.record_frames;
            counts.record_frame_bytes += header_size + length;
          } else if (header_[0] == sync_kind) {
            ++counts.sync_frames;
            counts.sync_frame_bytes += header_size + length;
          }
        }
      }
      data += take;
      size -= take;
    }
  }

private:
  static constexpr std::size_t preamble_size = 8;
  static constexpr std::size_t header_size = 28;
  static constexpr std::size_t length_offset = 20;
  static constexpr std::uint8_t record_kind = 0x05;
  static constexpr std::uint8_t sync_kind = 0x06;

  std::size_t preamble_left_ = preamble_size;
  std::uint64_t payload_left_ = 0;
  std::array<std::uint8_t, header_size> header_{};
  std::size_t have_ = 0;
};

/// One relayed connection: the accepted socket (the connecting node's) and the relay's own to the listener.
struct link
{
  tcp::socket caller;
  tcp::socket listener;

  void close() noexcept
  {
    asio::error_code ignored;
    caller.close(ignored);
    listener.close(ignored);
  }
};

void set_nodelay(tcp::socket& socket)
{
  asio::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  check(ec, "relay: TCP_NODELAY");
}

/// Runs `f` on `io` and waits until it has run; the relay thread runs short handlers only, so a wait of more than a
/// few seconds means it is stuck, which fails the run.
template <class F>
void run_on(asio::io_context& io, F f)
{
  std::promise<void> ran;
  auto done = ran.get_future();
  asio::post(io, [&] {
    f();
    ran.set_value();
  });
  if (done.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
    fail("relay: the relay thread did not answer within 10 s");
}

} // namespace

struct wire_relay::state
{
  explicit state(asio::io_context& context) : io(context), acceptor(context) {}

  asio::io_context& io;
  tcp::acceptor acceptor;
  tcp::endpoint target;
  mutable std::mutex mutex; // guards counts, which the relay thread writes and any thread reads
  relay_counts counts;
  std::vector<std::weak_ptr<link>> links; // relay thread only
};

namespace {

using relay_state = wire_relay::state;

/// Forwards `from` to `to` until `from` ends, counting what it reads into `counts`.
asio::awaitable<void> pump(std::shared_ptr<relay_state> s, std::shared_ptr<link> l, tcp::socket& from, tcp::socket& to,
                           wire_counts relay_counts::* direction)
{
  std::vector<std::uint8_t> buf(64 * 1024);
  frame_scanner scanner;
  for (;;) {
    asio::error_code ec;
    const std::size_t n =
        co_await from.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (n > 0) {
      {
        const std::lock_guard lock(s->mutex);
        scanner.feed(buf.data(), n, s->counts.*direction);
      }
      asio::error_code wec;
      co_await asio::async_write(to, asio::buffer(buf.data(), n), asio::redirect_error(asio::use_awaitable, wec));
      if (wec) {
        l->close();
        co_return;
      }
    }
    if (ec == asio::error::eof) {
      asio::error_code ignored;
      to.shutdown(tcp::socket::shutdown_send, ignored); // the half-close goes on
      co_return;
    }
    if (ec) {
      l->close();
      co_return;
    }
  }
}

asio::awaitable<void> accept_loop(std::shared_ptr<relay_state> s)
{
  for (;;) {
    asio::error_code ec;
    tcp::socket caller = co_await s->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !s->acceptor.is_open())
      co_return;
    check(ec, "relay: accept");
    auto l = std::make_shared<link>(link{std::move(caller), tcp::socket(s->io)});
    co_await l->listener.async_connect(s->target, asio::redirect_error(asio::use_awaitable, ec));
    check(ec, "relay: connect to the node");
    set_nodelay(l->caller);
    set_nodelay(l->listener);
    std::erase_if(s->links, [](const std::weak_ptr<link>& w) { return w.expired(); });
    s->links.push_back(l);
    asio::co_spawn(s->io, pump(s, l, l->caller, l->listener, &relay_counts::out), asio::detached);
    asio::co_spawn(s->io, pump(s, l, l->listener, l->caller, &relay_counts::in), asio::detached);
  }
}

void cut_links(relay_state& s)
{
  for (const auto& w : s.links)
    if (auto l = w.lock())
      l->close();
  s.links.clear();
}

} // namespace

relay_thread::relay_thread(unsigned cpu)
{
  work_.emplace(io_.get_executor());
  thread_ = std::thread([this, cpu] {
    pin_current_thread(cpu);
    io_.run();
    finished_.set_value();
  });
}

relay_thread::~relay_thread()
{
  // Once the relays are gone their connections end at once; whatever is left after a while is stopped.
  work_.reset();
  if (finished_.get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready)
    io_.stop();
  thread_.join();
}

wire_relay::wire_relay(relay_thread& thread, const asio::ip::tcp::endpoint& target)
    : thread_(thread), state_(std::make_shared<state>(thread.context()))
{
  run_on(thread_.context(), [&] {
    asio::error_code ec;
    state_->target = target;
    const tcp::endpoint here(asio::ip::address_v4::loopback(), 0);
    state_->acceptor.open(here.protocol(), ec);
    check(ec, "relay: open");
    state_->acceptor.bind(here, ec);
    check(ec, "relay: bind");
    state_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    check(ec, "relay: listen");
    endpoint_ = state_->acceptor.local_endpoint(ec);
    check(ec, "relay: local_endpoint");
    asio::co_spawn(state_->io, accept_loop(state_), asio::detached);
  });
}

wire_relay::~wire_relay()
{
  run_on(thread_.context(), [&] {
    asio::error_code ignored;
    state_->acceptor.close(ignored);
    cut_links(*state_);
  });
}

relay_counts wire_relay::counts() const
{
  const std::lock_guard lock(state_->mutex);
  return state_->counts;
}

void wire_relay::cut()
{
  run_on(thread_.context(), [&] { cut_links(*state_); });
}

} // namespace peergraph::bench
