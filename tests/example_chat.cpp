//
// tests/example_chat.cpp
// ~~~~~~~~~~~~~~~~~~~~~~
// examples/chat driven as a person would: three chat processes talking through pipes (lines reach every node, /who
// lists them, /whisper reaches its target alone, the others go on talking when the middle node is killed), and one
// on a pseudo-terminal (a line that arrives does not garble the line being typed). The program's path comes in
// PEERGRAPH_CHAT_PROGRAM (tests/meson.build).
//
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern char** environ;

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

/// How long a line, an event or an exit may take to show (generous: sanitizer builds on a loaded machine).
constexpr auto show_bound = 10s;

std::string chat_program()
{
  const char* path = std::getenv("PEERGRAPH_CHAT_PROGRAM");
  REQUIRE_MESSAGE(path != nullptr, "PEERGRAPH_CHAT_PROGRAM names the chat example to test");
  return path;
}

/// One chat process: its standard input and output through pipes, or through a pseudo-terminal.
class chat_process
{
public:
  enum class terminal
  {
    pipes,
    pty
  };

  chat_process(const std::vector<std::string>& args, terminal how = terminal::pipes)
  {
    int child_in = -1;
    int child_out = -1;
    if (how == terminal::pty) {
      input_ = output_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
      REQUIRE(input_ >= 0);
      REQUIRE(::grantpt(input_) == 0);
      REQUIRE(::unlockpt(input_) == 0);
      child_in = child_out = ::open(::ptsname(input_), O_RDWR | O_NOCTTY | O_CLOEXEC);
      REQUIRE(child_in >= 0);
    } else {
      int in[2];
      int out[2];
      REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
      REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
      child_in = in[0];
      input_ = in[1];
      output_ = out[0];
      child_out = out[1];
    }
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, child_in, STDIN_FILENO);
    ::posix_spawn_file_actions_adddup2(&actions, child_out, STDOUT_FILENO);
    ::posix_spawn_file_actions_adddup2(&actions, child_out, STDERR_FILENO);
    const std::string program = chat_program();
    std::vector<std::string> argv_text{program};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : argv_text)
      argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int spawned = ::posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(child_in);
    if (child_out != child_in)
      ::close(child_out);
    REQUIRE_MESSAGE(spawned == 0, "cannot start " << program);
    ::fcntl(output_, F_SETFL, ::fcntl(output_, F_GETFL) | O_NONBLOCK);
  }

  ~chat_process()
  {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    close_input();
    if (output_ >= 0)
      ::close(output_);
  }

  chat_process(const chat_process&) = delete;
  chat_process& operator=(const chat_process&) = delete;

  /// Types `text` (give the "\n" of a line yourself).
  void type(std::string_view text)
  {
    REQUIRE(input_ >= 0);
    REQUIRE(::write(input_, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  }

  /// Ends the standard input (pipes only: a terminal ends it with Ctrl-D).
  void close_input()
  {
    if (input_ >= 0 && input_ != output_)
      ::close(input_);
    if (input_ != output_)
      input_ = -1;
  }

  /// Waits until the output holds `text`; false after `timeout`.
  bool wait_for(std::string_view text, clock_type::duration timeout = show_bound)
  {
    const auto deadline = clock_type::now() + timeout;
    while (output_text_.find(text) == std::string::npos) {
      if (clock_type::now() >= deadline || !read_some(deadline))
        return output_text_.find(text) != std::string::npos;
    }
    return true;
  }

  /// The port of its "listening on 127.0.0.1:PORT" line.
  std::string port()
  {
    constexpr std::string_view listening = "listening on 127.0.0.1:";
    REQUIRE(wait_for(listening));
    REQUIRE(wait_for("\n"));
    const auto start = output_text_.find(listening) + listening.size();
    return output_text_.substr(start, output_text_.find_first_not_of("0123456789", start) - start);
  }

  /// Everything it printed so far (reads what is there now).
  const std::string& output()
  {
    read_some(clock_type::now());
    return output_text_;
  }

  void kill()
  {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  /// Waits for the process to end by itself; its exit status, or nothing after `timeout`.
  std::optional<int> wait_exit(clock_type::duration timeout = show_bound)
  {
    const auto deadline = clock_type::now() + timeout;
    while (clock_type::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        read_some(clock_type::now());
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      read_some(std::min(deadline, clock_type::now() + 50ms)); // keeps its output from filling the pipe
    }
    return std::nullopt;
  }

private:
  /// Reads what arrives until `deadline` or the first bytes; false at end of output or on an error.
  bool read_some(clock_type::time_point deadline)
  {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    pollfd ready{output_, POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(std::max<long long>(0, left.count()))) <= 0)
      return true; // nothing yet
    char buffer[4096];
    const ssize_t n = ::read(output_, buffer, sizeof buffer);
    if (n <= 0)
      return false;
    output_text_.append(buffer, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int input_ = -1;
  int output_ = -1;
  std::string output_text_;
};

} // namespace

TEST_CASE("three chat nodes: lines reach all, /who lists them, /whisper reaches one, a killed middle node")
{
  chat_process alice({"lobby", "alice", "127.0.0.1:0"});
  const auto alice_port = alice.port();
  chat_process bob({"lobby", "bob", "127.0.0.1:0", "127.0.0.1:" + alice_port});
  const auto bob_port = bob.port();
  chat_process carol({"lobby", "carol", "127.0.0.1:0", "localhost:" + bob_port}); // a host name
  const auto carol_port = carol.port();

  // Presence: each learns of the others.
  REQUIRE(alice.wait_for("* bob is here"));
  REQUIRE(alice.wait_for("* carol is here"));
  REQUIRE(carol.wait_for("* alice is here"));
  REQUIRE(carol.wait_for("* synchronised with"));

  alice.type("hello from alice\n");
  carol.type("hi from carol\n");
  CHECK(bob.wait_for("<alice> hello from alice\n"));
  CHECK(carol.wait_for("<alice> hello from alice\n"));
  CHECK(alice.wait_for("<carol> hi from carol\n"));
  CHECK(bob.wait_for("<carol> hi from carol\n"));

  carol.type("/who\n");
  CHECK(carol.wait_for("* 3 here:\n"));
  CHECK(carol.wait_for("*   alice 127.0.0.1:" + alice_port + "\n"));
  CHECK(carol.wait_for("*   bob 127.0.0.1:" + bob_port + "\n"));
  CHECK(carol.wait_for("*   carol 127.0.0.1:" + carol_port + " (you)\n"));

  alice.type("/whisper bob the cake is in the oven\n");
  CHECK(bob.wait_for("[alice whispers] the cake is in the oven\n"));
  alice.type("/whisper dave hello?\n");
  CHECK(alice.wait_for("* dave is not here"));
  // A line said after the whisper reaches carol; the whisper never does.
  alice.type("marker\n");
  REQUIRE(carol.wait_for("<alice> marker\n"));
  CHECK(carol.output().find("cake") == std::string::npos);
  CHECK(alice.output().find("whispers]") == std::string::npos);

  // Kill the node that brought carol in: alice and carol go on talking, within the bound the chat states (about a
  // second; a killed process's sockets close at once).
  bob.kill();
  const auto killed = clock_type::now();
  alice.type("bob is gone\n");
  carol.type("so it seems\n");
  CHECK(carol.wait_for("<alice> bob is gone\n", 5s));
  CHECK(alice.wait_for("<carol> so it seems\n", 5s));
  MESSAGE("talking again " << std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - killed).count()
                           << " ms after the kill");

  // End of input leaves the graph cleanly: the other node sees alice go at once (her presence is withdrawn).
  alice.close_input();
  CHECK(alice.wait_exit() == 0);
  CHECK(alice.output().find("* leaving") != std::string::npos);
  CHECK(carol.wait_for("* alice is gone"));
  carol.close_input();
  CHECK(carol.wait_exit() == 0);
}

TEST_CASE("on a terminal, a line that arrives is printed above the line being typed, which stays intact")
{
  chat_process alice({"lobby", "alice", "127.0.0.1:0"}, chat_process::terminal::pty);
  const auto alice_port = alice.port();
  chat_process bob({"lobby", "bob", "127.0.0.1:0", "127.0.0.1:" + alice_port});
  REQUIRE(bob.wait_for("* synchronised with alice"));
  REQUIRE(alice.wait_for("* bob is here"));

  alice.type("hel");
  REQUIRE(alice.wait_for("> hel"));
  bob.type("hi there\n");
  // Clear the typed line, print the arrival, draw the typed line again (the terminal turns "\n" into "\r\n").
  CHECK(alice.wait_for("\r\033[K<bob> hi there\r\n> hel"));
  alice.type("x\x7flo\r"); // a typo, backspace, the rest, Enter
  CHECK(bob.wait_for("<alice> hello\n"));
  CHECK(bob.output().find("helx") == std::string::npos);

  alice.type("\x04"); // Ctrl-D on an empty line leaves
  CHECK(alice.wait_exit() == 0);
  CHECK(bob.wait_for("* alice is gone"));
  bob.close_input();
  CHECK(bob.wait_exit() == 0);
}
