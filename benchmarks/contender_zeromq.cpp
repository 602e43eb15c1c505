//
// benchmarks/contender_zeromq.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// zeromq: libzmq through cppzmq. PUSH/PULL for streams, REQ/REP for round trips, one context (and so one I/O
// thread) per side as two processes would have. Every frame (header + payload) is one ZeroMQ message.
//
#include "harness.hpp"

#include <zmq.hpp>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

using namespace peergraph::bench;

/// Payloads from this size on go out without a copy (a header part, then the payload as a zero-copy part);
/// smaller frames are copied into one message, which is cheaper for them.
constexpr std::size_t zero_copy_from = 64 * 1024;

/// Runs `body`, turning a ZeroMQ exception into a failed run.
template <class Body>
auto guarded(const char* what, Body body)
{
  return [what, body]() {
    try {
      return body();
    } catch (const zmq::error_t& e) {
      fail(std::string(what) + ": " + e.what());
    }
  };
}

void send_message(zmq::socket_t& socket, const void* data, std::size_t size)
{
  zmq::message_t msg(data, size); // copies
  if (!socket.send(msg, zmq::send_flags::none))
    fail("zmq send would block");
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

/// Receives one message (part) and feeds it to `checker`.
void receive_into(zmq::socket_t& socket, zmq::message_t& msg, frame_checker& checker)
{
  if (!socket.recv(msg, zmq::recv_flags::none))
    fail("zmq recv would block");
  checker.feed(msg.data(), msg.size());
}

std::string bind_loopback(zmq::socket_t& socket)
{
  socket.bind("tcp://127.0.0.1:*");
  return socket.get(zmq::sockopt::last_endpoint);
}

measurement stream(const run_spec& spec)
{
  zmq::context_t send_ctx(1);
  zmq::context_t receive_ctx(1);
  zmq::socket_t pull(receive_ctx, zmq::socket_type::pull);
  zmq::socket_t push(send_ctx, zmq::socket_type::push);
  push.connect(bind_loopback(pull));
  send_limit limit = spec.limit();
  frame_checker checker(spec.layout.payload_bytes);
  const stream_result r = run_stream(limit,
                                     guarded("sender",
                                             [&] {
                                               std::uint64_t sent = 0;
                                               for (; limit.more(sent); ++sent)
                                                 send_frame(push, spec.layout, sent);
                                               send_end(push, sent);
                                               return sent;
                                             }),
                                     guarded("receiver", [&] {
                                       zmq::message_t msg;
                                       while (!checker.ended())
                                         receive_into(pull, msg, checker);
                                       return checker.frames();
                                     }));
  return stream_measurement(spec, r);
}

measurement rtt(const run_spec& spec)
{
  zmq::context_t client_ctx(1);
  zmq::context_t server_ctx(1);
  zmq::socket_t rep(server_ctx, zmq::socket_type::rep);
  zmq::socket_t req(client_ctx, zmq::socket_type::req);
  req.connect(bind_loopback(rep));
  const std::uint64_t total = spec.warmup + spec.count;
  return run_rtt(spec,
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
                               fail("a reply was not one whole frame");
                             samples.push_back(bench_clock::now() - t0);
                           }
                           send_end(req, total);
                           return samples;
                         }),
                 guarded("server", [&] {
                   frame_checker checker(spec.layout.payload_bytes);
                   zmq::message_t request;
                   for (std::uint64_t replied = 0;; ++replied) {
                     receive_into(rep, request, checker);
                     if (checker.ended())
                       break;
                     send_frame(rep, spec.layout, replied);
                   }
                   return checker.frames();
                 }));
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
