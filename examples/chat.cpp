//
// examples/chat.cpp
// ~~~~~~~~~~~~~~~~~
// A chat node, one per process, built as the Peer Graphing chat sample is:
// - every line typed is a record of the graph (PeerGraphAddRecord), flooded to every node however far, and kept for
//   an hour: a node that joins later gets the lines said before it came with its first synchronisation;
// - the member list is presence (PeerGraphSetPresence, PeerGraphEnumNodes): `/who` lists every node in the graph,
//   and "* bob is here" / "* bob is gone" say when it changes;
// - `/whisper PEER text` goes to PEER alone, over a direct connection (PeerGraphOpenDirectConnection, SendData);
// - `/connect HOST:PORT` joins another node at any time;
// - the graph repairs itself (CONNECTION_REQUIRED): when a neighbor goes, the node connects to other present nodes.
//   A neighbor whose process ends is noticed at once and the others talk again within about a second; one whose
//   machine vanishes is noticed by keepalive within 10 to 15 s. A node that vanished leaves /who within 30 s (its
//   presence expires); one that quits leaves it at once.
//
// usage: chat <graph-id> <peer-id> <listen-host:port> [<host:port>...]
//
// Hosts are names or IPv4/IPv6 literals; write IPv6 in brackets: 127.0.0.1:5000, localhost:5000, [::1]:5000. Port 0
// listens on a free port, which chat prints ("listening on 127.0.0.1:41234") so that another node can connect to it:
//
//   chat lobby alice 127.0.0.1:5000
//   chat lobby bob   127.0.0.1:0 localhost:5000
//
// On a terminal, lines that arrive are printed above the line being typed, which stays as it was. End of input
// (Ctrl-D), `/quit`, Ctrl-C or SIGTERM leaves the graph. With PEERGRAPH_CHAT_KEY set in the environment (at least 16
// bytes; the same on every node), the graph is closed: only nodes holding that key get in (the environment, not an
// argument, so that the key does not show in ps).
//
#include <peergraph.hpp>
#include <peergraph/psk.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

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
constexpr peergraph::data_type line_type = "5d3c8e1a-7f4b-4c2e-9a61-3b0f2d9e8c41"_guid;
/// The data type of a whisper, sent on a direct connection.
constexpr peergraph::data_type whisper_type = "a4f0c2d9-3e71-4b8a-8c15-6d2e9f07b3a2"_guid;
/// How long a line stays in the graph.
constexpr std::chrono::minutes line_lifetime{60};
/// How long a line waits for the lines its sender typed before it (records travel by every path, so a later line can
/// overtake an earlier one); then it is shown anyway.
constexpr std::chrono::seconds hold_back{2};
/// The most lines that wait for earlier ones, over all senders.
constexpr std::size_t max_held_lines = 1024;
/// The longest line one can type (longer input is cut there).
constexpr std::size_t max_line_size = 4096;

/// Splits "host:port", "[v6-address]:port" (or "::1:port": the last colon starts the port) into host and port.
std::optional<std::pair<std::string, std::string>> split_host_port(std::string_view text)
{
  const bool bracketed = text.starts_with('[');
  const auto colon = bracketed ? text.find("]:") + 1 : text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= text.size())
    return std::nullopt;
  const auto host = bracketed ? text.substr(1, colon - 2) : text.substr(0, colon);
  return std::pair{std::string(host), std::string(text.substr(colon + 1))};
}

std::string to_text(const tcp::endpoint& endpoint)
{
  const auto address = endpoint.address().to_string();
  const auto port = std::to_string(endpoint.port());
  return endpoint.address().is_v6() ? "[" + address + "]:" + port : address + ":" + port;
}

/// Received text made safe for a terminal: control characters (escape sequences, carriage returns) become '?'.
std::string printable(std::string_view bytes)
{
  std::string text(bytes);
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  return text;
}

std::string printable(std::span<const std::byte> bytes)
{
  return printable(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

/// The terminal, or whatever standard input and output are. On a terminal it edits the line being typed itself
/// (no echo, no line buffering by the terminal), so that a line printed meanwhile goes above it and the typed line is
/// drawn again below; elsewhere (a pipe, a file) it reads whole lines and prints plainly.
class console
{
public:
  console() : interactive_(::isatty(STDIN_FILENO) == 1 && ::isatty(STDOUT_FILENO) == 1)
  {
    if (interactive_ && ::tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO); // Ctrl-C still signals (ISIG stays)
      raw.c_cc[VMIN] = 1;
      raw.c_cc[VTIME] = 0;
      interactive_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    } else {
      interactive_ = false;
    }
  }
  ~console()
  {
    if (interactive_) {
      std::fputs("\r\033[K", stdout);
      ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
    }
  }
  console(const console&) = delete;
  console& operator=(const console&) = delete;

  /// Prints one line; on a terminal above the line being typed.
  void print(const std::string& line)
  {
    if (interactive_)
      std::fputs("\r\033[K", stdout); // back to the start of the typed line, and clear it
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    if (interactive_)
      std::fprintf(stdout, "> %s", typed_.c_str()); // the typed line again
    std::fflush(stdout);
  }

  /// Takes bytes read from standard input; returns the lines they complete. `end` is set by Ctrl-D on an empty line.
  std::vector<std::string> feed(std::string_view bytes, bool& end)
  {
    std::vector<std::string> lines;
    for (const char c : bytes) {
      if (c == '\n' || (interactive_ && c == '\r')) {
        if (!typed_.empty() && typed_.back() == '\r')
          typed_.pop_back(); // a line ending in CR LF
        lines.push_back(std::move(typed_));
        typed_.clear();
        if (interactive_)
          std::fputs("\n> ", stdout); // the typed line stays above, as the record of what one said
      } else if (interactive_ && (c == 0x7f || c == '\b')) {
        while (!typed_.empty() && (static_cast<unsigned char>(typed_.back()) & 0xC0) == 0x80)
          typed_.pop_back(); // the continuation bytes of a UTF-8 character
        if (!typed_.empty()) {
          typed_.pop_back();
          std::fputs("\b \b", stdout);
        }
      } else if (interactive_ && c == 0x04) { // Ctrl-D
        if (typed_.empty())
          end = true;
      } else if (typed_.size() < max_line_size && (!interactive_ || static_cast<unsigned char>(c) >= 0x20)) {
        typed_ += c;
        if (interactive_)
          std::fputc(c, stdout);
      }
    }
    if (interactive_)
      std::fflush(stdout);
    return lines;
  }

  /// What was typed without an end of line yet (sent as a last line at the end of input).
  std::string take_rest() { return std::exchange(typed_, {}); }

  void prompt()
  {
    if (interactive_) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
  }

private:
  bool interactive_;
  termios saved_{};
  std::string typed_;
};

/// Shows each sender's lines in the order they were typed. Every line carries its sender's run (a random number per
/// process) and its number in that run (1, 2, ...); a line that comes before the ones numbered below it waits for
/// them, at most hold_back: they may have expired, or be lost with a node that left.
class line_order
{
public:
  using clock = std::chrono::steady_clock;

  explicit line_order(console& out) : out_(out) {}

  /// A line arrived: shows it and the held lines it lets through, or holds it.
  void arrived(const std::string& sender, std::int64_t run, std::int64_t number, std::string text)
  {
    auto& s = senders_[{sender, run}];
    if (number < s.next) {
      out_.print("<" + sender + "> " + text + " (late)"); // it came after the wait for it ended
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
      out_.print("<" + sender + "> " + first->second.text);
      s.next = first->first + 1;
      s.held.erase(first);
      --held_;
    }
  }

  console& out_;
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

/// One chat node: the graph, the console, and what the node remembers about the others.
class chat
{
public:
  chat(peergraph::graph& graph, console& out, peergraph::peer_id self)
      : graph_(graph), out_(out), self_(std::move(self)), order_(out),
        run_(static_cast<std::int64_t>(std::random_device{}() >> 1U))
  {
  }

  /// Prints what happens in the graph, and the lines and whispers of the others, until the graph closes.
  asio::awaitable<void> show_events()
  {
    asio::steady_timer hold_timer(co_await asio::this_coro::executor);
    asio::co_spawn(hold_timer.get_executor(), release_overdue_lines(hold_timer), asio::detached);
    for (;;) {
      auto event = co_await graph_.next_event();
      if (!event)
        co_return; // the graph was closed
      if (auto* change = std::get_if<peergraph::connection_changed>(&*event))
        connection_changed(*change);
      else if (auto* node = std::get_if<peergraph::node_changed>(&*event))
        node_changed(*node);
      else if (auto* required = std::get_if<peergraph::connection_required>(&*event))
        out_.print("* lost the connection with " + required->lost_peer.str() + " (" +
                   std::to_string(required->neighbors) + " left): looking for other nodes");
      else if (auto* synced = std::get_if<peergraph::neighbor_synchronized>(&*event)) {
        out_.print("* synchronised with " + synced->remote_peer.str());
        order_.release_all(); // the history is here: a line still missing has expired
      } else if (auto* record = std::get_if<peergraph::record_changed>(&*event))
        co_await show_line(*record);
      else if (auto* data = std::get_if<peergraph::incoming_data>(&*event))
        show_whisper(*data);
    }
  }

  /// Handles one typed line: a command, or a line for everyone.
  asio::awaitable<void> typed(const std::string& line)
  {
    if (line.empty())
      co_return;
    if (!line.starts_with('/')) {
      co_await say(line);
      co_return;
    }
    const auto space = line.find(' ');
    const std::string command = line.substr(0, space);
    const std::string rest = space == std::string::npos ? std::string() : line.substr(space + 1);
    if (command == "/who")
      co_await who();
    else if (command == "/whisper" && rest.find(' ') != std::string::npos)
      co_await whisper(rest.substr(0, rest.find(' ')), rest.substr(rest.find(' ') + 1));
    else if (command == "/connect" && !rest.empty())
      co_await connect(rest);
    else
      out_.print("* commands: /who, /whisper PEER text, /connect HOST:PORT, /quit");
  }

  /// Connects to the node at `address` ("host:port"): PeerGraphConnect, by name or literal.
  asio::awaitable<void> connect(const std::string& address)
  {
    auto host_port = split_host_port(address);
    if (!host_port) {
      out_.print("* not a host:port: " + address);
      co_return;
    }
    auto connected = co_await graph_.connect(host_port->first, host_port->second);
    if (!connected)
      out_.print("* cannot connect to " + address + ": " + connected.error().message());
  }

private:
  void connection_changed(const peergraph::connection_changed& change)
  {
    const std::string who = change.remote_peer.empty() ? "a node" : change.remote_peer.str();
    const std::string how = std::string(to_string(change.kind)) + " #" + std::to_string(change.id.value());
    switch (change.status) {
    case peergraph::connection_status::connected:
      peers_[change.id] = change.remote_peer;
      out_.print("* connected to " + who + " (" + how + ")");
      break;
    case peergraph::connection_status::disconnected:
      peers_.erase(change.id);
      std::erase_if(whispers_, [&](const auto& entry) { return entry.second == change.id; });
      out_.print("* disconnected from " + who + " (" + how + ": " +
                 (change.reason ? change.reason->message() : std::string("closed")) + ")");
      break;
    case peergraph::connection_status::failed:
      // Not shown: a /connect or /whisper that fails says so itself, and the repair's attempts (to a node that
      // vanished, until its presence expires) would fill the screen.
      break;
    }
  }

  void node_changed(const peergraph::node_changed& change)
  {
    if (change.peer == self_)
      return;
    if (change.change == peergraph::node_change::connected)
      out_.print("* " + change.peer.str() + " is here");
    else if (change.change == peergraph::node_change::disconnected)
      out_.print("* " + change.peer.str() + " is gone");
  }

  /// A record arrived: if it is another node's line, shows it in its sender's order.
  asio::awaitable<void> show_line(const peergraph::record_changed& change)
  {
    if (change.type != line_type || change.change != peergraph::record_change::added)
      co_return;
    auto line = co_await graph_.get_record(change.id); // gone again only if it expired meanwhile
    if (!line || line->creator == self_)
      co_return;
    const auto run = number_attribute(*line, "run");
    const auto number = number_attribute(*line, "line");
    if (run && number)
      order_.arrived(line->creator.str(), *run, *number, printable(line->data));
    else // a line of a chat that does not number its lines
      out_.print("<" + line->creator.str() + "> " + printable(line->data));
  }

  void show_whisper(const peergraph::incoming_data& data)
  {
    const auto peer = peers_.find(data.connection);
    if (data.type != whisper_type || peer == peers_.end())
      return;
    out_.print("[" + peer->second.str() + " whispers] " + printable(data.payload.bytes()));
  }

  /// Adds `text` to the graph as a record: every node it reaches prints it.
  asio::awaitable<void> say(const std::string& text)
  {
    auto neighbors = co_await graph_.connections(peergraph::connection_kinds::neighbor);
    if (neighbors && neighbors->empty())
      out_.print("* nobody is connected yet (the line waits in the graph for whoever connects)");
    peergraph::record record;
    record.type = line_type;
    record.expires = graph_.peer_time() + line_lifetime; // records carry the graph's time
    const auto* bytes = reinterpret_cast<const std::byte*>(text.data());
    record.data.assign(bytes, bytes + text.size());
    record.attributes = {{"run", run_}, {"line", last_line_ + 1}};
    auto added = co_await graph_.add_record(std::move(record));
    if (added)
      ++last_line_;
    else if (added.error() == peergraph::peer_errc::graph_not_ready)
      out_.print("* not synchronised with the graph yet: try again in a moment");
    else
      out_.print("* could not send the line: " + added.error().message());
  }

  /// Lists the nodes present in the graph (PeerGraphEnumNodes).
  asio::awaitable<void> who()
  {
    auto nodes = co_await graph_.nodes();
    if (!nodes) {
      out_.print("* cannot list the nodes: " + nodes.error().message());
      co_return;
    }
    out_.print("* " + std::to_string(nodes->size()) + " here:");
    for (const auto& node : *nodes) {
      std::string line = "*   " + node.peer.str();
      for (const auto& address : node.addresses)
        line += " " + to_text(address);
      out_.print(line + (node.peer == self_ ? " (you)" : ""));
    }
  }

  /// Sends `text` to `peer_name` alone, over a direct connection opened at its first whisper and kept.
  asio::awaitable<void> whisper(const std::string& peer_name, const std::string& text)
  {
    auto peer = peergraph::peer_id::make(peer_name);
    if (!peer) {
      out_.print("* not a peer id: " + printable(peer_name));
      co_return;
    }
    auto connection = whispers_.find(*peer);
    if (connection == whispers_.end()) {
      auto opened = co_await open_direct(*peer);
      if (!opened)
        co_return;
      connection = whispers_.emplace(*peer, *opened).first;
    }
    auto sent = co_await graph_.send_data(connection->second, whisper_type, asio::buffer(text));
    if (!sent) {
      out_.print("* the whisper to " + peer_name + " was not sent: " + sent.error().message());
      whispers_.erase(*peer);
    }
  }

  /// Opens a direct connection to a present node of `peer`, trying each address it published.
  asio::awaitable<std::optional<peergraph::connection_id>> open_direct(const peergraph::peer_id& peer)
  {
    auto nodes = co_await graph_.nodes(peer);
    if (!nodes || nodes->empty()) {
      out_.print("* " + peer.str() + " is not here (/who lists who is)");
      co_return std::nullopt;
    }
    std::string failures;
    for (const auto& node : *nodes) {
      for (const auto& address : node.addresses) {
        auto opened = co_await graph_.open_direct_connection(peer, address);
        if (opened)
          co_return *opened;
        failures += " " + to_text(address) + ": " + opened.error().message() + ";";
      }
    }
    out_.print("* cannot reach " + peer.str() + ":" + (failures.empty() ? " it published no address" : failures));
    co_return std::nullopt;
  }

  /// Every half second, shows the lines that waited long enough, until `timer` is cancelled or destroyed.
  asio::awaitable<void> release_overdue_lines(asio::steady_timer& timer)
  {
    for (;;) {
      timer.expires_after(std::chrono::milliseconds(500));
      std::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (ec)
        co_return;
      order_.release_overdue();
    }
  }

  peergraph::graph& graph_;
  console& out_;
  peergraph::peer_id self_;
  line_order order_;
  std::map<peergraph::connection_id, peergraph::peer_id> peers_;    // who is behind each connection
  std::map<peergraph::peer_id, peergraph::connection_id> whispers_; // the direct connection to each peer whispered to
  std::int64_t run_;                                                // this process's lines: a random run,
  std::int64_t last_line_ = 0;                                      // and the number of the last line sent in it
};

/// Reads standard input and handles each line; at its end, `/quit` or a signal (which closes `input`), leaves.
asio::awaitable<void> read_input(chat& node, console& out, asio::posix::stream_descriptor& input)
{
  out.prompt();
  std::string buffer(1024, '\0');
  bool end = false;
  while (!end) {
    std::error_code ec;
    const std::size_t n =
        co_await input.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (auto rest = out.take_rest(); ec == asio::error::eof && !rest.empty())
        co_await node.typed(rest); // a last line without a newline
      break;
    }
    for (auto& line : out.feed(std::string_view(buffer.data(), n), end)) {
      if (line == "/quit") {
        end = true;
        break;
      }
      co_await node.typed(line);
    }
  }
}

int usage()
{
  std::fprintf(stderr, "usage: chat <graph-id> <peer-id> <listen-host:port> [<host:port>...]\n"
                       "  hosts are names or IPv4/IPv6 literals: 127.0.0.1:5000, localhost:5000, [::1]:5000;\n"
                       "  port 0 listens on a free port\n");
  return 2;
}

} // namespace

int main(int argc, char* argv[])
{
  if (argc < 4)
    return usage();
  std::setvbuf(stdout, nullptr, _IOLBF, 0); // one line at a time, also into a pipe

  const std::vector<std::string_view> arg_list(argv + 1, argv + argc);
  const std::span<const std::string_view> args(arg_list);
  auto graph = peergraph::graph_id::make(args[0]);
  auto peer = peergraph::peer_id::make(args[1]);
  if (!graph || !peer) {
    std::fprintf(stderr, "chat: the graph id and the peer id must be 1 to 256 characters, no control characters\n");
    return usage();
  }
  for (auto address : args.subspan(2)) {
    if (!split_host_port(address)) {
      std::fprintf(stderr, "chat: not a host:port: %.*s\n", static_cast<int>(address.size()), address.data());
      return usage();
    }
  }

  asio::io_context ctx;
  const auto [listen_host, listen_port] = *split_host_port(args[2]);
  std::error_code resolved;
  const auto listen_at = tcp::resolver(ctx).resolve(listen_host, listen_port, resolved);
  if (resolved || listen_at.empty()) {
    std::fprintf(stderr, "chat: cannot resolve %s: %s\n", std::string(args[2]).c_str(), resolved.message().c_str());
    return 1;
  }

  peergraph::graph_properties properties;
  properties.graph = std::move(*graph);
  properties.peer = std::move(*peer);
  properties.friendly_name = std::string(args[1].substr(0, 256));
  // A node given addresses to connect to joins a graph that others hold (its lines wait for the first
  // synchronisation, which brings the lines already said); one given none starts the graph.
  if (args.size() > 3)
    properties.start = peergraph::graph_start::join;
  properties.keepalive_interval = std::chrono::seconds(5); // a silent neighbor is dropped within 10 to 15 s
  properties.presence_lifetime = std::chrono::seconds(30); // a node that vanished leaves /who within 30 s
  // automatic_repair is on by default: a lost neighbor makes the node connect to other present nodes.
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
  const peergraph::peer_id self = properties.peer;
  peergraph::graph graph_node(ctx.get_executor(), std::move(properties));
  console out;
  chat node(graph_node, out, self);

  // Standard input in Asio's hands becomes non-blocking; give it back as it was, since a shell shares it.
  const int stdin_flags = ::fcntl(STDIN_FILENO, F_GETFL);
  asio::posix::stream_descriptor input(ctx, ::dup(STDIN_FILENO));
  asio::signal_set signals(ctx, SIGINT, SIGTERM);
  int exit_code = 0;

  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        // PeerGraphListen, PeerGraphSetPresence, then PeerGraphConnect to each address given.
        auto bound = co_await graph_node.listen(listen_at.begin()->endpoint());
        if (!bound) {
          std::fprintf(stderr, "chat: cannot listen on %s: %s\n", to_text(listen_at.begin()->endpoint()).c_str(),
                       bound.error().message().c_str());
          exit_code = 1;
        } else {
          out.print("listening on " + to_text(*bound));
          asio::co_spawn(ctx, node.show_events(), asio::detached);
          if (auto present = co_await graph_node.set_presence(true); !present)
            out.print("* cannot publish presence: " + present.error().message());
          for (auto address : args.subspan(3))
            co_await node.connect(std::string(address));
          co_await read_input(node, out, input);
          out.print("* leaving");
        }
        signals.cancel();
        input.close();
        if (auto closed = co_await graph_node.close(); !closed) // PeerGraphClose: every neighbor sees us leave
          std::fprintf(stderr, "chat: close: %s\n", closed.error().message().c_str());
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
