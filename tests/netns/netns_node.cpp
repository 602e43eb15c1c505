//
// tests/netns/netns_node.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// One node of a peer graph per process, for the multi-host test (netns_test.sh): it listens, publishes its presence,
// connects to its neighbors, sends sequence-numbered messages to every neighbor, checks that each neighbor's messages
// arrive whole, complete and in order, adds records of its own and reports every record of the graph it comes to hold,
// prints every connection, presence and connection_required event with a timestamp, and ends with one summary line per
// neighbor and one for its records.
//
// Usage:
//   netns_node --graph G --peer P --listen ADDR:PORT [--connect ADDR:PORT ...] [--send-count N] [--interval-ms M]
//              [--duration-s S] [--keepalive-ms K] [--message-bytes B] [--connect-attempts A] [--retry-ms R]
//              [--expect-neighbors E] [--records R] [--record-interval-ms I] [--connect-timeout-ms C]
//              [--repair-backoff-max-ms X]
//
// Each connection gets a sender as soon as it is established; it sends N messages, one every M milliseconds. With
// --records R the node also adds R records from its start, one every I milliseconds: attributes `node` (P) and
// `counter` (0, 1, 2, ... over the whole run), data `P#counter`, expiry an hour of peer time ahead. SIGUSR1 starts
// another batch of N messages on every connection still open (the sequence numbers go on) and another batch of R
// records. SIGUSR2 writes the summary and freezes the node's messages: it stops sending and ignores later data, but
// keeps its connections open, so that several nodes can be summarised before any of them closes (a node's close is an
// event at its neighbors); records, connection events and the graph's repair go on. SIGTERM or SIGINT writes the
// summary if that is not done yet, then the record summary, closes the graph and exits; so does the end of
// --duration-s.
//
// The node dials each --connect address until it connects (at most A attempts, R milliseconds apart), and never
// again: a neighbor connection that ends is the graph's to repair. The node publishes its presence (set_presence)
// once it listens, so the presence record carries the --listen address (give one the other nodes can reach, not
// 0.0.0.0, which is not published), and graph_properties::automatic_repair (on, the default) dials present nodes when
// a neighbor connection ends. --connect-timeout-ms is graph_properties::connect_timeout (5000), which bounds each of
// the repair's attempts too; --repair-backoff-max-ms is graph_properties::repair_backoff_max (30000), the longest of
// the repair's waits (they double from repair_backoff_min, 100 ms, with each attempt that fails or finds nobody).
//
// Output, one record a line, `key=value` fields, times in seconds since the Unix epoch (comparable between
// processes):
//   listening t=.. node=P address=A:P
//   connect t=.. node=P address=A:P attempt=K result=connected|already_exists|ERROR
//   event t=.. node=P status=connected|disconnected|failed connection=ID kind=K neighbor=Q address=A:P
//         origin=self|repair|accepted [reason=R]
//   required t=.. node=P neighbors=N lost=Q                          (connection_required: N neighbors are left)
//   presence t=.. node=P change=connected|updated|disconnected peer=Q addresses=A:P,..|-   (node_changed)
//   milestone t=.. node=P neighbor=Q received=K in_order=yes|no      (every N messages from a neighbor)
//   record_batch t=.. node=P target=T                                 (SIGUSR1: T records to add in all)
//   added t=.. node=P id=ID counter=K                                 (add_record of this node completed)
//   record t=.. node=P change=added|updated|deleted|expired id=ID creator=Q counter=K version=V held=H digest=D
//   synchronized t=.. node=P neighbor=Q connection=ID held=H digest=D
//   summary node=P neighbor=Q connection=ID sent=S send_error=E received=K in_order=yes|no corrupt=C
//           disconnected=yes|no reason=R disconnect_t=T connected_t=T first_anomaly=X
//   result node=P neighbors=N ok=yes|no stop=signal|deadline|fatal
//   record_summary node=P held=H digest=D added=A add_failed=F malformed=M changes=C synchronizations=S
// `event` is a connection_changed event; address is the other end's (remote_address): where this node dialled, or
// where an accepted connection came from. origin says who opened the connection: this node's own dialling of a
// --connect address (self: connect() is dialling that address, or returned that connection), the graph's repair
// (repair: the address is one a present node published, and not self), or the other node (accepted). A disconnected
// event repeats its connection's origin. A failed event gets the same guess, which for one of this node's own
// attempts reads repair once connect() has returned (this node dials only at its start, the repair later on).
// `presence` lists the addresses nodes() gives for the node (- once it is gone).
// `record` is a record_changed event, `synchronized` a neighbor_synchronized event; after either, held is the number
// of live records the node holds (records()) and digest their digest: the sum, modulo 2^64, of a hash of each one's
// id and version, as 16 hex digits, so nodes that hold the same versions print the same digest whatever order they
// came in. A record whose attributes or data are not as above counts as malformed. Lines that report a problem start
// with `anomaly` or `fatal`.
// Exit status 0 when every message that arrived was whole and in order, at least --expect-neighbors neighbors
// connected, and every record was added and well formed, 1 otherwise, 2 for a usage error.
//
#include "records.hpp"

#include <peergraph.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace {

using peergraph::netns::emit;
using peergraph::netns::timestamp;

using namespace peergraph::literals;
using asio::ip::tcp;

/// The data type of the test's messages.
constexpr peergraph::data_type sequence_type = "3f6b2d8e-91c4-4a57-b0e3-6d2f8a1c9e74"_guid;

/// Every message starts with its sequence number and its own length, both 64-bit little-endian.
constexpr std::size_t header_size = 16;

/// The record type of the test's records.
constexpr peergraph::data_type record_type = "8d41c7a2-5e93-4f06-a1b8-2c7e9d03f654"_guid;

struct options
{
  std::string graph;
  std::string peer;
  std::optional<tcp::endpoint> listen;
  std::vector<tcp::endpoint> connect;
  std::uint64_t send_count = 100;
  std::chrono::milliseconds interval{10};
  std::chrono::seconds duration{30};
  std::chrono::milliseconds keepalive{1000};
  std::size_t message_bytes = 2000;
  int connect_attempts = 50;
  std::chrono::milliseconds retry{200};
  std::size_t expect_neighbors = 0;
  std::uint64_t records = 0;
  std::chrono::milliseconds record_interval{50};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds repair_backoff_max{30'000};
};

std::string to_text(const tcp::endpoint& endpoint)
{
  const auto address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

std::string error_name(const peergraph::peer_error& error)
{
  return std::string(peergraph::peer_errc_name(error.code()));
}

/// The length of message `sequence`: it varies from header_size to `max_bytes`, so that some messages span several
/// TCP segments and some share one.
std::size_t message_size(std::uint64_t sequence, std::size_t max_bytes)
{
  const std::uint64_t span = max_bytes - header_size + 1;
  return header_size + static_cast<std::size_t>((sequence * 7919U) % span);
}

std::byte pattern(std::uint64_t sequence, std::size_t index)
{
  return static_cast<std::byte>((sequence * 131U + index) & 0xffU);
}

void put_u64(std::byte* out, std::uint64_t value)
{
  for (std::size_t i = 0; i < 8; ++i)
    out[i] = static_cast<std::byte>((value >> (8 * i)) & 0xffU);
}

std::uint64_t get_u64(const std::byte* in)
{
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i)
    value |= static_cast<std::uint64_t>(in[i]) << (8 * i);
  return value;
}

void build_message(std::vector<std::byte>& message, std::uint64_t sequence, std::size_t max_bytes)
{
  message.resize(message_size(sequence, max_bytes));
  put_u64(message.data(), sequence);
  put_u64(message.data() + 8, message.size());
  for (std::size_t i = header_size; i < message.size(); ++i)
    message[i] = pattern(sequence, i);
}

/// True when `bytes` is a whole message as build_message() makes them; its sequence number goes to `sequence`.
bool check_message(std::span<const std::byte> bytes, std::uint64_t& sequence)
{
  if (bytes.size() < header_size)
    return false;
  sequence = get_u64(bytes.data());
  if (get_u64(bytes.data() + 8) != bytes.size())
    return false;
  for (std::size_t i = header_size; i < bytes.size(); ++i)
    if (bytes[i] != pattern(sequence, i))
      return false;
  return true;
}

/// The data of the record `counter` of `peer`: "peer#counter".
std::vector<std::byte> record_data(const std::string& peer, std::int64_t counter)
{
  const std::string text = peer + "#" + std::to_string(counter);
  std::vector<std::byte> data(text.size());
  std::transform(text.begin(), text.end(), data.begin(), [](char c) { return static_cast<std::byte>(c); });
  return data;
}

/// The counter attribute of `r` when it is one of the test's records, well formed (attributes node = its creator and
/// counter, data as record_data makes it); else nothing.
std::optional<std::int64_t> record_counter(const peergraph::record& r)
{
  const auto* node = r.attribute("node");
  const auto* counter = r.attribute("counter");
  if (r.type != record_type || node == nullptr || counter == nullptr || r.attributes.size() != 2)
    return std::nullopt;
  const auto* name = std::get_if<std::string>(node);
  const auto* value = std::get_if<std::int64_t>(counter);
  if (name == nullptr || value == nullptr || *name != r.creator.str() || r.data != record_data(*name, *value))
    return std::nullopt;
  return *value;
}

/// A 64-bit hash of a record version's identity: its id and version (FNV-1a, then the splitmix64 finaliser).
std::uint64_t version_hash(const peergraph::record& r)
{
  std::uint64_t h = 0xcbf29ce484222325ULL;
  const auto add = [&h](std::uint8_t byte) {
    h ^= byte;
    h *= 0x100000001b3ULL;
  };
  for (const std::byte b : r.id.guid().bytes())
    add(static_cast<std::uint8_t>(b));
  for (std::size_t i = 0; i < 4; ++i)
    add(static_cast<std::uint8_t>((r.version >> (8 * i)) & 0xffU));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

std::string hex64(std::uint64_t value)
{
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

const char* change_name(peergraph::record_change change)
{
  switch (change) {
  case peergraph::record_change::added:
    return "added";
  case peergraph::record_change::updated:
    return "updated";
  case peergraph::record_change::deleted:
    return "deleted";
  case peergraph::record_change::expired:
    return "expired";
  }
  return "unknown";
}

/// What a node knows about one of its connections.
struct neighbor
{
  explicit neighbor(asio::io_context& ctx) : pace(ctx) {}

  peergraph::connection_id id;
  std::string peer;
  std::string kind;
  std::string connected_at;
  asio::steady_timer pace; // paces the sender, and holds it while it has sent every message asked for
  bool open = true;
  bool idle = false;
  std::uint64_t sent = 0;
  std::string send_error = "none";
  std::uint64_t received = 0;
  std::uint64_t next_sequence = 0;
  std::uint64_t corrupt = 0;
  bool in_order = true;
  std::string first_anomaly = "-";
  bool disconnected = false;
  std::string reason = "-";
  std::string disconnected_at = "-";
};

class node
{
public:
  node(asio::io_context& ctx, options opts, peergraph::graph graph)
      : ctx_(ctx), opts_(std::move(opts)), graph_(std::move(graph)), signals_(ctx, SIGTERM, SIGINT, SIGUSR1),
        deadline_(ctx), record_pace_(ctx), target_(opts_.send_count), record_target_(opts_.records)
  {
    std::error_code ignored; // without SIGUSR2 the node still works: it summarises on SIGTERM
    signals_.add(SIGUSR2, ignored);
  }

  /// Starts everything; ctx.run() returns once the node has stopped.
  void start()
  {
    wait_for_signal();
    deadline_.expires_after(opts_.duration);
    deadline_.async_wait([this](std::error_code ec) {
      if (!ec)
        shut_down("deadline");
    });
    asio::co_spawn(ctx_, handle_events(), asio::detached);
    asio::co_spawn(ctx_, listen_and_connect(), asio::detached);
    if (opts_.records > 0)
      asio::co_spawn(ctx_, add_records(), asio::detached);
  }

  [[nodiscard]] int exit_code() const noexcept { return exit_code_; }

private:
  void wait_for_signal()
  {
    signals_.async_wait([this](std::error_code ec, int signal) {
      if (ec || closed_)
        return;
      if (signal == SIGUSR1) {
        if (!stopping_)
          next_batch();
        if (opts_.records > 0)
          next_record_batch();
        wait_for_signal();
      } else if (signal == SIGUSR2) {
        summarize("signal");
        wait_for_signal();
      } else {
        shut_down("signal");
      }
    });
  }

  asio::awaitable<void> listen_and_connect()
  {
    auto bound = co_await graph_.listen(*opts_.listen);
    if (!bound) {
      emit("fatal t=" + timestamp() + " node=" + opts_.peer + " listen=" + to_text(*opts_.listen) +
           " error=" + error_name(bound.error()));
      fatal_ = true;
      shut_down("fatal");
      co_return;
    }
    emit("listening t=" + timestamp() + " node=" + opts_.peer + " address=" + to_text(*bound));
    // The presence record publishes the address just bound: the graph's repair dials it when a neighbor is lost.
    if (auto present = co_await graph_.set_presence(true); !present) {
      emit("fatal t=" + timestamp() + " node=" + opts_.peer + " set_presence error=" + error_name(present.error()));
      fatal_ = true;
      shut_down("fatal");
      co_return;
    }
    for (const auto& address : opts_.connect)
      asio::co_spawn(ctx_, connect_to(address), asio::detached);
  }

  /// Connects to the neighbor at `address`, retrying while it is not up yet; a bounded number of attempts. The graph
  /// may connect first (its repair dials present nodes while this node has fewer than min_neighbors): already_exists
  /// means the connection is there.
  asio::awaitable<void> connect_to(tcp::endpoint address)
  {
    asio::steady_timer retry(ctx_);
    retry_timers_.push_back(&retry);
    const auto ended = [this] { return closed_ || stopping_; };
    for (int attempt = 1; attempt <= opts_.connect_attempts && !ended(); ++attempt) {
      dialling_.push_back(address);
      auto id = co_await graph_.connect(address);
      dialling_.erase(std::find(dialling_.begin(), dialling_.end(), address));
      if (id)
        own_connections_.insert(id->value());
      if (ended())
        break;
      const bool exists = !id && id.error().code() == peergraph::peer_errc::already_exists;
      if (id || exists) {
        emit("connect t=" + timestamp() + " node=" + opts_.peer + " address=" + to_text(address) +
             " attempt=" + std::to_string(attempt) + " result=" + (id ? "connected" : "already_exists"));
        break;
      }
      emit("connect t=" + timestamp() + " node=" + opts_.peer + " address=" + to_text(address) +
           " attempt=" + std::to_string(attempt) + " result=" + error_name(id.error()));
      if (attempt == opts_.connect_attempts) {
        fatal_ = true;
        break;
      }
      std::error_code ec;
      retry.expires_after(opts_.retry);
      co_await retry.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    std::erase(retry_timers_, &retry);
  }

  asio::awaitable<void> handle_events()
  {
    for (;;) {
      auto event = co_await graph_.next_event();
      if (!event)
        co_return; // the graph was closed
      if (closed_)
        continue; // later events are the shutdown's own
      if (auto* change = std::get_if<peergraph::connection_changed>(&*event))
        on_connection_changed(*change);
      else if (auto* data = std::get_if<peergraph::incoming_data>(&*event); data && !stopping_)
        on_data(*data); // once the summary is written, data is no longer counted
      else if (auto* record = std::get_if<peergraph::record_changed>(&*event))
        co_await on_record_changed(*record);
      else if (auto* synced = std::get_if<peergraph::neighbor_synchronized>(&*event))
        co_await on_synchronized(*synced);
      else if (auto* presence = std::get_if<peergraph::node_changed>(&*event))
        co_await on_node_changed(*presence);
      else if (auto* required = std::get_if<peergraph::connection_required>(&*event))
        emit("required t=" + timestamp() + " node=" + opts_.peer + " neighbors=" + std::to_string(required->neighbors) +
             " lost=" + (required->lost_peer.empty() ? "-" : required->lost_peer.str()));
    }
  }

  /// A node's presence changed: reads nodes() again (the addresses the repair may dial) and prints the node's.
  asio::awaitable<void> on_node_changed(const peergraph::node_changed& change)
  {
    if (auto listed = co_await graph_.nodes())
      present_ = std::move(*listed);
    std::string addresses;
    for (const auto& info : present_) {
      if (info.node != change.node)
        continue;
      for (const auto& address : info.addresses)
        addresses += (addresses.empty() ? "" : ",") + to_text(address);
    }
    const char* what = change.change == peergraph::node_change::connected      ? "connected"
                       : change.change == peergraph::node_change::disconnected ? "disconnected"
                                                                               : "updated";
    emit("presence t=" + timestamp() + " node=" + opts_.peer + " change=" + what + " peer=" + change.peer.str() +
         " addresses=" + (addresses.empty() ? "-" : addresses));
  }

  /// Who opened connection `id`, to or from `address` (see the output's `origin`). Its connected event may come
  /// before or after this node's connect() of it completes: either the address is still being dialled, or the
  /// connection is one connect() returned.
  const char* origin_of(const peergraph::connection_id& id, const tcp::endpoint& address) const
  {
    if (own_connections_.contains(id.value()) ||
        std::find(dialling_.begin(), dialling_.end(), address) != dialling_.end())
      return "self";
    for (const auto& info : present_)
      if (std::find(info.addresses.begin(), info.addresses.end(), address) != info.addresses.end())
        return "repair";
    return "accepted";
  }

  /// Reads the records this node holds into `held`, and their number and digest into held_ and digest_; `*found`
  /// points at the one whose id is `*wanted`, when one is wanted and held.
  asio::awaitable<void> tally(const peergraph::record_id* wanted, const peergraph::record** found,
                              std::vector<peergraph::record>& held)
  {
    auto listed = co_await graph_.records(record_type);
    if (!listed) {
      held.clear();
      co_return;
    }
    held = std::move(*listed);
    std::uint64_t digest = 0;
    for (const peergraph::record& r : held) {
      digest += version_hash(r);
      if (wanted != nullptr && r.id == *wanted)
        *found = &r;
    }
    held_ = held.size();
    digest_ = digest;
  }

  std::string record_state() const { return " held=" + std::to_string(held_) + " digest=" + hex64(digest_); }

  asio::awaitable<void> on_record_changed(const peergraph::record_changed& change)
  {
    ++record_changes_;
    std::vector<peergraph::record> held;
    const peergraph::record* r = nullptr;
    co_await tally(&change.id, &r, held);
    std::string line = "record t=" + timestamp() + " node=" + opts_.peer + " change=" + change_name(change.change) +
                       " id=" + change.id.to_string();
    if (r == nullptr) {
      line += " creator=- counter=- version=-";
    } else {
      const auto counter = record_counter(*r);
      line += " creator=" + r->creator.str() + " counter=" + (counter ? std::to_string(*counter) : "-") +
              " version=" + std::to_string(r->version);
      if (!counter) {
        ++malformed_;
        emit("anomaly t=" + timestamp() + " node=" + opts_.peer + " malformed record " + change.id.to_string());
      }
    }
    emit(line + record_state());
  }

  asio::awaitable<void> on_synchronized(const peergraph::neighbor_synchronized& synced)
  {
    ++synchronizations_;
    std::vector<peergraph::record> held;
    co_await tally(nullptr, nullptr, held);
    emit("synchronized t=" + timestamp() + " node=" + opts_.peer + " neighbor=" + synced.remote_peer.str() +
         " connection=" + std::to_string(synced.connection.value()) + record_state());
  }

  /// Adds every record asked for so far, one per record interval, until the node closes.
  asio::awaitable<void> add_records()
  {
    auto next = std::chrono::steady_clock::now();
    while (!closed_) {
      std::error_code ec;
      if (record_counter_ >= record_target_) {
        record_idle_ = true;
        record_pace_.expires_at(std::chrono::steady_clock::time_point::max());
        co_await record_pace_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        record_idle_ = false;
        next = std::chrono::steady_clock::now();
        continue;
      }
      const auto counter = static_cast<std::int64_t>(record_counter_++);
      peergraph::record r;
      r.type = record_type;
      r.expires = graph_.peer_time() + std::chrono::hours(1);
      r.attributes = {{"node", opts_.peer}, {"counter", counter}};
      r.data = record_data(opts_.peer, counter);
      auto id = co_await graph_.add_record(std::move(r));
      if (closed_)
        co_return;
      if (id) {
        ++records_added_;
        emit("added t=" + timestamp() + " node=" + opts_.peer + " id=" + id->to_string() +
             " counter=" + std::to_string(counter));
      } else {
        ++records_failed_;
        emit("anomaly t=" + timestamp() + " node=" + opts_.peer + " add_record counter=" + std::to_string(counter) +
             " error=" + error_name(id.error()));
      }
      next += opts_.record_interval;
      record_pace_.expires_at(next);
      co_await record_pace_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  void next_record_batch()
  {
    record_target_ += opts_.records;
    emit("record_batch t=" + timestamp() + " node=" + opts_.peer + " target=" + std::to_string(record_target_));
    if (record_idle_)
      record_pace_.cancel();
  }

  void on_connection_changed(const peergraph::connection_changed& change)
  {
    const char* status = change.status == peergraph::connection_status::connected      ? "connected"
                         : change.status == peergraph::connection_status::disconnected ? "disconnected"
                                                                                       : "failed";
    std::string origin = origin_of(change.id, change.remote_address);
    if (change.status == peergraph::connection_status::connected) {
      origins_.insert_or_assign(change.id.value(), origin);
    } else if (auto it = origins_.find(change.id.value());
               change.status == peergraph::connection_status::disconnected && it != origins_.end()) {
      origin = it->second;
      origins_.erase(it);
    }
    std::string record = "event t=" + timestamp() + " node=" + opts_.peer + " status=" + status +
                         " connection=" + std::to_string(change.id.value()) +
                         " kind=" + std::string(to_string(change.kind)) +
                         " neighbor=" + (change.remote_peer.empty() ? "-" : change.remote_peer.str()) +
                         " address=" + to_text(change.remote_address) + " origin=" + origin;
    if (change.reason)
      record += " reason=" + error_name(*change.reason);
    emit(record);

    if (stopping_)
      return; // the summary is written: no more senders, and the neighbors' counts stay as summarised
    if (change.status == peergraph::connection_status::connected) {
      auto n = std::make_unique<neighbor>(ctx_);
      n->id = change.id;
      n->peer = change.remote_peer.str();
      n->kind = std::string(to_string(change.kind));
      n->connected_at = timestamp();
      neighbor& sender = *n;
      neighbors_.insert_or_assign(change.id.value(), std::move(n));
      asio::co_spawn(ctx_, send_to(sender), asio::detached);
    } else if (change.status == peergraph::connection_status::disconnected) {
      auto it = neighbors_.find(change.id.value());
      if (it == neighbors_.end())
        return;
      neighbor& n = *it->second;
      n.open = false;
      n.disconnected = true;
      n.reason = change.reason ? error_name(*change.reason) : "-";
      n.disconnected_at = timestamp();
      n.pace.cancel();
    }
  }

  void on_data(const peergraph::incoming_data& data)
  {
    auto it = neighbors_.find(data.connection.value());
    if (it == neighbors_.end()) {
      emit("anomaly t=" + timestamp() + " node=" + opts_.peer + " data on unknown connection " +
           std::to_string(data.connection.value()));
      fatal_ = true;
      return;
    }
    neighbor& n = *it->second;
    std::uint64_t sequence = 0;
    ++n.received;
    if (data.type != sequence_type || !check_message(data.payload.bytes(), sequence)) {
      ++n.corrupt;
      note_anomaly(n, "corrupt_message_" + std::to_string(n.received));
    } else if (sequence != n.next_sequence) {
      note_anomaly(n, "expected_" + std::to_string(n.next_sequence) + "_got_" + std::to_string(sequence));
      n.next_sequence = sequence + 1;
    } else {
      ++n.next_sequence;
    }
    if (opts_.send_count != 0 && n.received % opts_.send_count == 0)
      emit("milestone t=" + timestamp() + " node=" + opts_.peer + " neighbor=" + n.peer +
           " received=" + std::to_string(n.received) + " in_order=" + (n.in_order ? "yes" : "no"));
  }

  void note_anomaly(neighbor& n, std::string what)
  {
    if (n.in_order) {
      n.first_anomaly = std::move(what);
      emit("anomaly t=" + timestamp() + " node=" + opts_.peer + " neighbor=" + n.peer + " " + n.first_anomaly);
    }
    n.in_order = false;
  }

  /// Sends every message asked for so far on `n`, one per interval, until the connection or the node ends.
  asio::awaitable<void> send_to(neighbor& n)
  {
    std::vector<std::byte> message;
    auto next = std::chrono::steady_clock::now();
    while (!stopping_ && n.open) {
      std::error_code ec;
      if (n.sent >= target_) {
        n.idle = true;
        n.pace.expires_at(std::chrono::steady_clock::time_point::max());
        co_await n.pace.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        n.idle = false;
        next = std::chrono::steady_clock::now();
        continue;
      }
      build_message(message, n.sent, opts_.message_bytes);
      auto sent = co_await graph_.send_data(n.id, sequence_type, asio::buffer(message));
      if (!sent) {
        if (!stopping_)
          n.send_error = error_name(sent.error());
        co_return;
      }
      ++n.sent;
      next += opts_.interval;
      n.pace.expires_at(next);
      co_await n.pace.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  void next_batch()
  {
    target_ += opts_.send_count;
    emit("batch t=" + timestamp() + " node=" + opts_.peer + " target=" + std::to_string(target_));
    for (auto& [id, n] : neighbors_)
      if (n->open && n->idle)
        n->pace.cancel();
  }

  /// Writes the summary: the state at this moment. From then on the node sends nothing and ignores every event.
  void summarize(const char* why)
  {
    if (stopping_)
      return;
    stopping_ = true;
    bool ok = !fatal_ && neighbors_.size() >= opts_.expect_neighbors && records_failed_ == 0 && malformed_ == 0;
    for (const auto& [id, n] : neighbors_) {
      ok = ok && n->in_order && n->corrupt == 0;
      emit("summary node=" + opts_.peer + " neighbor=" + n->peer + " connection=" + std::to_string(id) +
           " sent=" + std::to_string(n->sent) + " send_error=" + n->send_error +
           " received=" + std::to_string(n->received) + " in_order=" + (n->in_order ? "yes" : "no") +
           " corrupt=" + std::to_string(n->corrupt) + " disconnected=" + (n->disconnected ? "yes" : "no") +
           " reason=" + n->reason + " disconnect_t=" + n->disconnected_at + " connected_t=" + n->connected_at +
           " first_anomaly=" + n->first_anomaly);
    }
    emit("result node=" + opts_.peer + " neighbors=" + std::to_string(neighbors_.size()) +
         " ok=" + (ok ? "yes" : "no") + " stop=" + why);
    exit_code_ = ok ? 0 : 1;
    for (auto& [id, n] : neighbors_)
      n->pace.cancel();
  }

  /// Writes the summary unless it is written, then the record summary, then closes the graph and cancels every wait,
  /// so that ctx.run() returns.
  void shut_down(const char* why)
  {
    summarize(why);
    if (closed_)
      return;
    closed_ = true;
    std::error_code ignored;
    signals_.cancel(ignored);
    deadline_.cancel();
    record_pace_.cancel();
    for (auto* timer : retry_timers_)
      timer->cancel();
    asio::co_spawn(ctx_, close_graph(), asio::detached);
  }

  asio::awaitable<void> close_graph()
  {
    if (opts_.records > 0) {
      std::vector<peergraph::record> held;
      co_await tally(nullptr, nullptr, held);
      emit("record_summary node=" + opts_.peer + record_state() + " added=" + std::to_string(records_added_) +
           " add_failed=" + std::to_string(records_failed_) + " malformed=" + std::to_string(malformed_) +
           " changes=" + std::to_string(record_changes_) + " synchronizations=" + std::to_string(synchronizations_));
      if (records_failed_ != 0 || malformed_ != 0)
        exit_code_ = 1;
    }
    graph_.close(asio::detached);
  }

  asio::io_context& ctx_;
  options opts_;
  peergraph::graph graph_;
  asio::signal_set signals_;
  asio::steady_timer deadline_;
  asio::steady_timer record_pace_; // paces add_records, and holds it while it has added every record asked for
  std::map<std::uint64_t, std::unique_ptr<neighbor>> neighbors_; // by connection id
  std::map<std::uint64_t, std::string> origins_;                 // who opened each open connection, by id
  std::vector<tcp::endpoint> dialling_;                          // the addresses connect_to is dialling now
  std::set<std::uint64_t> own_connections_;                      // the connections connect_to opened
  std::vector<peergraph::node_info> present_;                    // nodes(), as of the last node_changed event
  std::vector<asio::steady_timer*> retry_timers_;                // of the connectors still retrying
  std::uint64_t target_;                                         // messages each connection is to send in all
  std::uint64_t record_target_;                                  // records this node is to add in all
  std::uint64_t record_counter_ = 0;                             // records it tried to add
  std::uint64_t records_added_ = 0;
  std::uint64_t records_failed_ = 0;
  std::uint64_t malformed_ = 0; // records seen that are not as add_records makes them
  std::uint64_t record_changes_ = 0;
  std::uint64_t synchronizations_ = 0;
  std::size_t held_ = 0;     // live records of record_type, at the last record event
  std::uint64_t digest_ = 0; // their digest
  bool record_idle_ = false;
  bool stopping_ = false; // the summary is written
  bool closed_ = false;
  bool fatal_ = false;
  int exit_code_ = 1;
};

std::optional<tcp::endpoint> parse_endpoint(std::string_view text)
{
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return std::nullopt;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535)
    return std::nullopt;
  std::error_code address_error;
  const auto address = asio::ip::make_address(std::string(host), address_error);
  if (address_error)
    return std::nullopt;
  return tcp::endpoint(address, static_cast<unsigned short>(port));
}

template <class Integer>
bool parse_number(std::string_view text, Integer& value)
{
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

int usage(const std::string& problem)
{
  std::fprintf(stderr,
               "netns_node: %s\n"
               "usage: netns_node --graph G --peer P --listen ADDR:PORT [--connect ADDR:PORT ...] [--send-count N]\n"
               "                  [--interval-ms M] [--duration-s S] [--keepalive-ms K] [--message-bytes B]\n"
               "                  [--connect-attempts A] [--retry-ms R] [--expect-neighbors E] [--records R]\n"
               "                  [--record-interval-ms I] [--connect-timeout-ms C] [--repair-backoff-max-ms X]\n",
               problem.c_str());
  return 2;
}

/// Reads the command line into `opts`; an empty string on success, else what is wrong.
std::string parse_options(int argc, char** argv, options& opts)
{
  for (int i = 1; i < argc; ++i) {
    const std::string_view name = argv[i];
    if (i + 1 >= argc)
      return std::string(name) + " needs a value";
    const std::string_view value = argv[++i];
    bool good = true;
    if (name == "--graph") {
      opts.graph = value;
    } else if (name == "--peer") {
      opts.peer = value;
    } else if (name == "--listen") {
      opts.listen = parse_endpoint(value);
      good = opts.listen.has_value();
    } else if (name == "--connect") {
      auto endpoint = parse_endpoint(value);
      good = endpoint.has_value();
      if (good)
        opts.connect.push_back(*endpoint);
    } else if (name == "--send-count") {
      good = parse_number(value, opts.send_count);
    } else if (name == "--interval-ms") {
      long long ms = 0;
      good = parse_number(value, ms) && ms >= 0;
      opts.interval = std::chrono::milliseconds(ms);
    } else if (name == "--duration-s") {
      long long s = 0;
      good = parse_number(value, s) && s > 0;
      opts.duration = std::chrono::seconds(s);
    } else if (name == "--keepalive-ms") {
      long long ms = 0;
      good = parse_number(value, ms) && ms >= 0;
      opts.keepalive = std::chrono::milliseconds(ms);
    } else if (name == "--message-bytes") {
      good = parse_number(value, opts.message_bytes) && opts.message_bytes >= header_size &&
             opts.message_bytes <= 1'000'000;
    } else if (name == "--connect-attempts") {
      good = parse_number(value, opts.connect_attempts) && opts.connect_attempts > 0;
    } else if (name == "--retry-ms") {
      long long ms = 0;
      good = parse_number(value, ms) && ms >= 0;
      opts.retry = std::chrono::milliseconds(ms);
    } else if (name == "--expect-neighbors") {
      good = parse_number(value, opts.expect_neighbors);
    } else if (name == "--records") {
      good = parse_number(value, opts.records) && opts.records <= 1'000'000;
    } else if (name == "--record-interval-ms") {
      long long ms = 0;
      good = parse_number(value, ms) && ms >= 0;
      opts.record_interval = std::chrono::milliseconds(ms);
    } else if (name == "--connect-timeout-ms") {
      long long ms = 0;
      good = parse_number(value, ms) && ms > 0;
      opts.connect_timeout = std::chrono::milliseconds(ms);
    } else if (name == "--repair-backoff-max-ms") {
      long long ms = 0;
      good = parse_number(value, ms) && ms > 0;
      opts.repair_backoff_max = std::chrono::milliseconds(ms);
    } else {
      return "unknown option " + std::string(name);
    }
    if (!good)
      return "bad value for " + std::string(name) + ": " + std::string(value);
  }
  if (opts.graph.empty() || opts.peer.empty() || !opts.listen)
    return "--graph, --peer and --listen are required";
  return {};
}

} // namespace

int main(int argc, char** argv)
{
  options opts;
  if (auto problem = parse_options(argc, argv, opts); !problem.empty())
    return usage(problem);

  peergraph::graph_properties properties;
  auto graph_id = peergraph::graph_id::make(opts.graph);
  auto peer = peergraph::peer_id::make(opts.peer);
  if (!graph_id || !peer)
    return usage("invalid graph or peer id");
  properties.graph = std::move(*graph_id);
  properties.peer = std::move(*peer);
  properties.friendly_name = opts.peer;
  properties.keepalive_interval = opts.keepalive;
  properties.connect_timeout = opts.connect_timeout;
  // The repair's waits double from repair_backoff_min (100 ms) up to this while its attempts fail (as they do while
  // a link is cut): each wait is at most this long, which bounds how soon a node tries again once the link is back.
  properties.repair_backoff_max = opts.repair_backoff_max;
  properties.repair_backoff_min = std::min(properties.repair_backoff_min, opts.repair_backoff_max);
  properties.handshake_timeout = std::chrono::seconds(5);
  properties.max_frame_size = std::max<std::uint64_t>(peergraph::min_max_frame_size, opts.message_bytes);

  asio::io_context ctx;
  auto graph = peergraph::graph::create(ctx.get_executor(), std::move(properties));
  if (!graph)
    return usage("graph properties: " + graph.error().message());

  node n(ctx, std::move(opts), std::move(*graph));
  n.start();
  ctx.run();
  return n.exit_code();
}
