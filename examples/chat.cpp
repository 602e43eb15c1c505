//
// examples/chat.cpp
// ~~~~~~~~~~~~~~~~~
// A chat node, one per process, as the Peer Graphing chat sample does it: every line typed on standard input is a
// record of the graph (PeerGraphAddRecord), flooded to every node, however far; each node prints the lines that
// arrive (record_changed, then PeerGraphGetRecord) with their creator's peer id, each sender's lines in the order they
// were typed. A node that connects to others joins their graph: its first synchronisation brings the lines said before
// it came. End of input (Ctrl-D), Ctrl-C or SIGTERM leaves the graph.
//
// usage: chat <graph-id> <peer-id> <listen-address:port> [<connect-address:port>...]
//
// Addresses are IPv4 or IPv6 literals; write IPv6 in brackets: 127.0.0.1:5000, [::1]:5000. Port 0 listens on a
// free port, which chat prints ("listening on 127.0.0.1:41234") so that another node can connect to it:
//
//   chat lobby alice 127.0.0.1:5000
//   chat lobby bob   127.0.0.1:0 127.0.0.1:5000
//
// With PEERGRAPH_CHAT_KEY set in the environment (at least 16 bytes; the same on every node), the graph is closed:
// only nodes holding that key get in (the environment, not an argument, so that the key does not show in ps).
//
#include <peergraph.hpp>
#include <peergraph/psk.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace {

using namespace peergraph::literals;
using asio::ip::tcp;

/// The record type of a chat line; nodes only understand each other's lines when they agree on it.
constexpr peergraph::data_type chat_type = "5d3c8e1a-7f4b-4c2e-9a61-3b0f2d9e8c41"_guid;
/// How long a line stays in the graph.
constexpr std::chrono::minutes line_lifetime{60};
/// How long a line waits for the lines its sender typed before it (records travel by every path, so a later line can
/// overtake an earlier one); then it is shown anyway.
constexpr std::chrono::seconds hold_back{2};
/// The most lines that wait for earlier ones, over all senders.
constexpr std::size_t max_held_lines = 1024;

/// Parses "1.2.3.4:port", "[::1]:port" (or "::1:port": the last colon starts the port).
std::optional<tcp::endpoint> parse_endpoint(std::string_view text)
{
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos)
      return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  std::uint16_t port_number = 0;
  const auto [end, parsed] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (parsed != std::errc{} || end != port.data() + port.size() || port.empty())
    return std::nullopt;
  std::error_code ec;
  const auto address = asio::ip::make_address(std::string(host), ec);
  if (ec)
    return std::nullopt;
  return tcp::endpoint(address, port_number);
}

std::string to_text(const tcp::endpoint& endpoint)
{
  const auto address = endpoint.address().to_string();
  const auto port = std::to_string(endpoint.port());
  return endpoint.address().is_v6() ? "[" + address + "]:" + port : address + ":" + port;
}

/// A received line made safe for a terminal: control characters (escape sequences, carriage returns) become '?'.
std::string printable(std::span<const std::byte> bytes)
{
  std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  return text;
}

/// Shows each sender's lines in the order they were typed. Every line carries its sender's run (a random number per
/// process) and its number in that run (1, 2, ...); a line that comes before the ones numbered below it waits for
/// them, at most hold_back: they may have expired, or be lost with a node that left.
class line_order
{
public:
  using clock = std::chrono::steady_clock;

  /// A line arrived: shows it and the held lines it lets through, or holds it.
  void arrived(const std::string& sender, std::int64_t run, std::int64_t number, std::string text)
  {
    auto& s = senders_[{sender, run}];
    if (number < s.next) {
      std::printf("<%s> %s (late)\n", sender.c_str(), text.c_str()); // it came after the wait for it ended
      return;
    }
    s.held.emplace(number, held_line{std::move(text), clock::now()});
    ++held_;
    release(sender, s, false);
    if (held_ > max_held_lines)
      release_all();
  }

  /// Shows what waited longer than hold_back (call it now and then).
  void release_overdue()
  {
    const auto now = clock::now();
    for (auto& [key, s] : senders_)
      if (!s.held.empty() && now - s.held.begin()->second.since >= hold_back)
        release(key.first, s, true);
  }

  /// Shows every held line: the node is synchronised, so whatever is missing is not coming.
  void release_all()
  {
    for (auto& [key, s] : senders_)
      release(key.first, s, true);
  }

private:
  struct held_line
  {
    std::string text;
    clock::time_point since;
  };
  struct sender_state
  {
    std::int64_t next = 1;                  // the number of the next line to show
    std::map<std::int64_t, held_line> held; // lines that came before `next`'s
  };

  /// Shows the held lines from `next` on while there is no gap, or (`skip_gaps`) all of them.
  void release(const std::string& sender, sender_state& s, bool skip_gaps)
  {
    while (!s.held.empty() && (skip_gaps || s.held.begin()->first == s.next)) {
      auto first = s.held.begin();
      std::printf("<%s> %s\n", sender.c_str(), first->second.text.c_str());
      s.next = first->first + 1;
      s.held.erase(first);
      --held_;
    }
  }

  std::map<std::pair<std::string, std::int64_t>, sender_state> senders_;
  std::size_t held_ = 0;
};

/// The integer attribute `name` of `line`, if it has one.
std::optional<std::int64_t> number_attribute(const peergraph::record& line, std::string_view name)
{
  for (const auto& attribute : line.attributes)
    if (attribute.name == name)
      if (const auto* value = std::get_if<std::int64_t>(&attribute.value))
        return *value;
  return std::nullopt;
}

/// Every half second, shows the lines that waited long enough, until `timer` is cancelled or destroyed (the caller
/// owns both; after that this touches neither).
asio::awaitable<void> release_overdue_lines(asio::steady_timer& timer, line_order& order)
{
  for (;;) {
    timer.expires_after(std::chrono::milliseconds(500));
    std::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      co_return;
    order.release_overdue();
  }
}

/// Prints connection events and the lines of other nodes until the graph closes.
asio::awaitable<void> show_events(peergraph::graph& graph, peergraph::peer_id self)
{
  line_order order;
  asio::steady_timer hold_timer(co_await asio::this_coro::executor);
  asio::co_spawn(hold_timer.get_executor(), release_overdue_lines(hold_timer, order), asio::detached);
  std::map<peergraph::connection_id, std::string> peers; // who is behind each connection id
  for (;;) {
    auto event = co_await graph.next_event();
    if (!event)
      co_return; // the graph was closed
    if (auto* change = std::get_if<peergraph::connection_changed>(&*event)) {
      const std::string who = change->remote_peer.empty() ? "a node" : change->remote_peer.str();
      const std::string kind(to_string(change->kind));
      const std::string id = " #" + std::to_string(change->id.value());
      switch (change->status) {
      case peergraph::connection_status::connected:
        peers[change->id] = who;
        std::printf("* %s joined (%s%s)\n", who.c_str(), kind.c_str(), id.c_str());
        break;
      case peergraph::connection_status::disconnected:
        peers.erase(change->id);
        std::printf("* %s left (%s%s: %s)\n", who.c_str(), kind.c_str(), id.c_str(),
                    change->reason ? change->reason->message().c_str() : "closed");
        break;
      case peergraph::connection_status::failed:
        std::printf("* connection with %s failed (%s%s: %s)\n", who.c_str(), kind.c_str(), id.c_str(),
                    change->reason ? change->reason->message().c_str() : "unknown reason");
        break;
      }
    } else if (auto* synced = std::get_if<peergraph::neighbor_synchronized>(&*event)) {
      std::printf("* synchronised with %s\n", synced->remote_peer.str().c_str());
      order.release_all(); // the history is here: a line still missing has expired
    } else if (auto* record = std::get_if<peergraph::record_changed>(&*event)) {
      if (record->type != chat_type || record->change != peergraph::record_change::added)
        continue;
      auto line = co_await graph.get_record(record->id); // gone again only if it expired meanwhile
      if (!line || line->creator == self)
        continue;
      const auto run = number_attribute(*line, "run");
      const auto number = number_attribute(*line, "line");
      if (run && number)
        order.arrived(line->creator.str(), *run, *number, printable(line->data));
      else // a line of a chat that does not number its lines
        std::printf("<%s> %s\n", line->creator.str().c_str(), printable(line->data).c_str());
    }
  }
}

/// This process's lines: a random run, and the number of the last line sent in it.
struct line_numbers
{
  std::int64_t run = 0;
  std::int64_t last = 0;
};

/// Adds `line` to the graph as a record: every node it reaches prints it.
asio::awaitable<void> send_line(peergraph::graph& graph, line_numbers& numbers, const std::string& line)
{
  auto neighbors = co_await graph.connections(peergraph::connection_kinds::neighbor);
  if (neighbors && neighbors->empty())
    std::printf("* nobody is connected yet\n");
  peergraph::record record;
  record.type = chat_type;
  record.expires = graph.peer_time() + line_lifetime; // records carry the graph's time
  const auto* bytes = reinterpret_cast<const std::byte*>(line.data());
  record.data.assign(bytes, bytes + line.size());
  record.attributes = {{"run", numbers.run}, {"line", numbers.last + 1}};
  auto added = co_await graph.add_record(std::move(record));
  if (added)
    ++numbers.last;
  if (!added && added.error() == peergraph::peer_errc::graph_not_ready)
    std::printf("* not synchronised with the graph yet: try again in a moment\n");
  else if (!added)
    std::printf("* could not send the line: %s\n", added.error().message().c_str());
}

/// Reads standard input line by line and sends each line; at its end (or on a signal) closes the graph.
asio::awaitable<void> read_input(peergraph::graph& graph, asio::posix::stream_descriptor& input)
{
  line_numbers numbers;
  numbers.run = static_cast<std::int64_t>(std::random_device{}() >> 1U);
  std::string buffer;
  for (;;) {
    std::error_code ec;
    const std::size_t n = co_await asio::async_read_until(input, asio::dynamic_buffer(buffer), '\n',
                                                          asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::eof && !buffer.empty())
        co_await send_line(graph, numbers, buffer); // a last line without a newline
      break;
    }
    std::string line = buffer.substr(0, n - 1);
    buffer.erase(0, n);
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (!line.empty())
      co_await send_line(graph, numbers, line);
  }
  std::printf("* leaving\n");
  if (auto closed = co_await graph.close(); !closed) // PeerGraphClose: every neighbor sees us leave
    std::fprintf(stderr, "chat: close: %s\n", closed.error().message().c_str());
}

int usage()
{
  std::fprintf(stderr, "usage: chat <graph-id> <peer-id> <listen-address:port> [<connect-address:port>...]\n"
                       "  addresses are IPv4 or IPv6 literals: 127.0.0.1:5000, [::1]:5000; port 0 picks a free port\n");
  return 2;
}

} // namespace

int main(int argc, char* argv[])
{
  if (argc < 4)
    return usage();
  std::setvbuf(stdout, nullptr, _IOLBF, 0); // one line at a time, also into a pipe

  const std::vector<std::string_view> args(argv + 1, argv + argc);
  auto graph = peergraph::graph_id::make(args[0]);
  auto peer = peergraph::peer_id::make(args[1]);
  if (!graph || !peer) {
    std::fprintf(stderr, "chat: the graph id and the peer id must be 1 to 256 characters, no control characters\n");
    return usage();
  }
  std::vector<tcp::endpoint> addresses;
  for (auto text : std::vector<std::string_view>(args.begin() + 2, args.end())) {
    auto endpoint = parse_endpoint(text);
    if (!endpoint) {
      std::fprintf(stderr, "chat: not an address:port: %.*s\n", static_cast<int>(text.size()), text.data());
      return usage();
    }
    addresses.push_back(*endpoint);
  }

  asio::io_context ctx;
  peergraph::graph_properties properties;
  properties.graph = std::move(*graph);
  properties.peer = std::move(*peer);
  properties.friendly_name = std::string(args[1].substr(0, 256));
  // A node given addresses joins a graph that others hold (its lines wait for the first synchronisation, which
  // brings the lines already said); one given none starts the graph.
  if (addresses.size() > 1)
    properties.start = peergraph::graph_start::join;
  if (const char* secret = std::getenv("PEERGRAPH_CHAT_KEY"); secret != nullptr) {
    const std::string_view text(secret);
    auto key = peergraph::pre_shared_key::make(std::as_bytes(std::span(text.data(), text.size())));
    if (!key) {
      std::fprintf(stderr, "chat: PEERGRAPH_CHAT_KEY must be %zu to %zu bytes\n",
                   peergraph::pre_shared_key::min_key_size, peergraph::pre_shared_key::max_key_size);
      return 2;
    }
    properties.membership = std::move(*key);
    std::printf("closed graph: only nodes with the same PEERGRAPH_CHAT_KEY get in\n");
  }
  const peergraph::peer_id self = properties.peer; // its own lines are not printed twice
  peergraph::graph node(ctx.get_executor(), std::move(properties));

  // Standard input in Asio's hands becomes non-blocking; give it back as it was, since a shell shares it.
  const int stdin_flags = ::fcntl(STDIN_FILENO, F_GETFL);
  asio::posix::stream_descriptor input(ctx, ::dup(STDIN_FILENO));
  asio::signal_set signals(ctx, SIGINT, SIGTERM);
  int exit_code = 0;

  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        // PeerGraphListen, then PeerGraphConnect to each address given.
        auto bound = co_await node.listen(addresses.front());
        if (!bound) {
          std::fprintf(stderr, "chat: cannot listen on %s: %s\n", to_text(addresses.front()).c_str(),
                       bound.error().message().c_str());
          exit_code = 1;
          signals.cancel();
          input.close();
          co_await node.close();
          co_return;
        }
        std::printf("listening on %s\n", to_text(*bound).c_str());
        asio::co_spawn(ctx, show_events(node, self), asio::detached);
        for (std::size_t i = 1; i < addresses.size(); ++i) {
          auto id = co_await node.connect(addresses[i]);
          if (!id)
            std::printf("* cannot connect to %s: %s\n", to_text(addresses[i]).c_str(), id.error().message().c_str());
        }
        co_await read_input(node, input);
        signals.cancel();
      },
      asio::detached);
  signals.async_wait([&](const std::error_code& ec, int) {
    if (!ec)
      input.close(); // ends read_input (now or at its next read), which closes the graph
  });

  ctx.run();
  if (stdin_flags != -1)
    ::fcntl(STDIN_FILENO, F_SETFL, stdin_flags);
  return exit_code;
}
