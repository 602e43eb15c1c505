//
// tests/netns/netns_link.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// A link emulator for the multi-host test (netns_test.sh) on kernels without netem: each link is a pair of TUN
// devices, one in each of two network namespaces, joined by this process, which forwards every IP packet after a
// fixed delay and drops a given share of them at random, independently in each direction (what `tc qdisc ... netem
// delay D loss P%` on both ends of a veth pair does).
//
// Usage:
//   netns_link --delay-ms D --loss-percent P [--seed S] [--cut-link K] [--control FIFO]
//              --link NS_A:IF_A:NS_B:IF_B [--link ...]
//
// It creates every TUN device in its namespace (the namespaces are those `ip netns` names, under /run/netns), prints
// `ready`, and forwards until SIGTERM or SIGINT; the addresses and the link state are set with `ip` meanwhile.
// SIGUSR1 cuts link K (counted from 0 in --link order): from then on every packet on it is dropped, both ways, as
// a black hole would. The named pipe FIFO, when given, takes commands one a line: `cut K` cuts link K, `restore K`
// ends its cut (packets flow again, with the delay and the random loss). Each cut and restore prints
// `cut t=.. link=K` or `restore t=.. link=K`, and a command it cannot read `control t=.. error=unknown_command`. On
// exit it prints one line per link and direction with the packets seen, dropped and forwarded (cut=yes when the link is
// cut then).
//
#include "records.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using peergraph::netns::emit;
using peergraph::netns::timestamp;

using clock_type = std::chrono::steady_clock;

/// Most packets in flight at once, over every link; more are dropped (and counted), so memory stays bounded.
constexpr std::size_t max_in_flight = 20'000;

struct link_spec
{
  std::string namespace_a;
  std::string device_a;
  std::string namespace_b;
  std::string device_b;
};

/// One direction of one link: the device packets are read from, the one they are written to, and the counts.
struct direction
{
  std::size_t link = 0;
  const char* name = "";
  int from = -1;
  int to = -1;
  std::uint64_t packets = 0;
  std::uint64_t dropped = 0;     // at random
  std::uint64_t cut_dropped = 0; // because the link was cut
  std::uint64_t forwarded = 0;
  std::uint64_t write_errors = 0;
};

struct in_flight
{
  clock_type::time_point due;
  std::size_t direction = 0;
  std::vector<std::byte> bytes;
};

int fail(const std::string& what)
{
  std::fprintf(stderr, "netns_link: %s: %s\n", what.c_str(), std::strerror(errno));
  return -1;
}

/// Opens the network namespace `name` made by `ip netns add`.
int open_namespace(const std::string& name)
{
  for (const char* dir : {"/run/netns/", "/var/run/netns/"}) {
    const int fd = ::open((dir + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
      return fd;
  }
  return fail("open network namespace " + name);
}

/// Creates the TUN device `device` (IP packets, no extra header) in namespace `ns`, then returns to `home`. The
/// device belongs to the namespace /dev/net/tun was opened in, and it stays bound to the descriptor.
int open_tun(const std::string& ns, const std::string& device, int home)
{
  if (device.empty() || device.size() >= IFNAMSIZ) {
    std::fprintf(stderr, "netns_link: bad device name '%s'\n", device.c_str());
    return -1;
  }
  const int ns_fd = open_namespace(ns);
  if (ns_fd < 0)
    return -1;
  if (::setns(ns_fd, CLONE_NEWNET) != 0) {
    ::close(ns_fd);
    return fail("enter network namespace " + ns);
  }
  ::close(ns_fd);
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    fail("open /dev/net/tun");
  } else {
    ifreq request{};
    request.ifr_flags = IFF_TUN | IFF_NO_PI;
    std::memcpy(request.ifr_name, device.c_str(), device.size() + 1);
    if (::ioctl(fd, TUNSETIFF, &request) != 0) {
      fail("create TUN device " + device + " in " + ns);
      ::close(fd);
      fd = -1;
    }
  }
  if (::setns(home, CLONE_NEWNET) != 0)
    return fail("return to the original network namespace");
  return fd;
}

bool parse_link(std::string_view text, link_spec& spec)
{
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const auto colon = text.find(':', start);
    parts.emplace_back(text.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    if (colon == std::string_view::npos)
      break;
    start = colon + 1;
  }
  if (parts.size() != 4)
    return false;
  for (const auto& part : parts)
    if (part.empty())
      return false;
  spec = {parts[0], parts[1], parts[2], parts[3]};
  return true;
}

template <class Number>
bool parse_number(std::string_view text, Number& value)
{
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

int usage(const std::string& problem)
{
  std::fprintf(stderr,
               "netns_link: %s\n"
               "usage: netns_link --delay-ms D --loss-percent P [--seed S] [--cut-link K] [--control FIFO]\n"
               "                  --link NS_A:IF_A:NS_B:IF_B [--link ...]\n",
               problem.c_str());
  return 2;
}

/// A command of the control pipe: `cut K` or `restore K`.
struct command
{
  bool cut = false;
  std::size_t link = 0;
};

std::optional<command> parse_command(std::string_view line, std::size_t links)
{
  command c;
  std::string_view number;
  if (line.starts_with("cut ")) {
    c.cut = true;
    number = line.substr(4);
  } else if (line.starts_with("restore ")) {
    number = line.substr(8);
  } else {
    return std::nullopt;
  }
  if (!parse_number(number, c.link) || c.link >= links)
    return std::nullopt;
  return c;
}

} // namespace

int main(int argc, char** argv)
{
  long long delay_ms = -1;
  double loss_percent = -1;
  std::uint64_t seed = 1;
  long long cut_link = -1;
  std::string control_path;
  std::vector<link_spec> links;
  for (int i = 1; i < argc; ++i) {
    const std::string_view name = argv[i];
    if (i + 1 >= argc)
      return usage(std::string(name) + " needs a value");
    const std::string_view value = argv[++i];
    bool good = true;
    if (name == "--delay-ms") {
      good = parse_number(value, delay_ms) && delay_ms >= 0 && delay_ms <= 10'000;
    } else if (name == "--loss-percent") {
      good = parse_number(value, loss_percent) && loss_percent >= 0 && loss_percent <= 100;
    } else if (name == "--seed") {
      good = parse_number(value, seed);
    } else if (name == "--cut-link") {
      good = parse_number(value, cut_link) && cut_link >= 0;
    } else if (name == "--control") {
      control_path = value;
      good = !control_path.empty();
    } else if (name == "--link") {
      link_spec spec;
      good = parse_link(value, spec);
      links.push_back(spec);
    } else {
      return usage("unknown option " + std::string(name));
    }
    if (!good)
      return usage("bad value for " + std::string(name) + ": " + std::string(value));
  }
  if (delay_ms < 0 || loss_percent < 0 || links.empty())
    return usage("--delay-ms, --loss-percent and at least one --link are required");
  if (cut_link >= static_cast<long long>(links.size()))
    return usage("--cut-link names no link");

  // Signals arrive through a descriptor, so the loop below sees them between packets.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGUSR1})
    sigaddset(&signals, s);
  if (::sigprocmask(SIG_BLOCK, &signals, nullptr) != 0) {
    fail("block signals");
    return 1;
  }
  const int signal_fd = ::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) {
    fail("signalfd");
    return 1;
  }

  const int home = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) {
    fail("open own network namespace");
    return 1;
  }
  std::vector<direction> directions;
  std::vector<int> devices;
  for (std::size_t k = 0; k < links.size(); ++k) {
    const int a = open_tun(links[k].namespace_a, links[k].device_a, home);
    const int b = a < 0 ? -1 : open_tun(links[k].namespace_b, links[k].device_b, home);
    if (a < 0 || b < 0)
      return 1;
    devices.push_back(a);
    devices.push_back(b);
    directions.push_back({k, "a>b", a, b, 0, 0, 0, 0, 0});
    directions.push_back({k, "b>a", b, a, 0, 0, 0, 0, 0});
  }
  // Opened for reading and writing, so that it never reads end-of-file when no writer has it open.
  const int control = control_path.empty() ? -1 : ::open(control_path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (!control_path.empty() && control < 0) {
    fail("open control pipe " + control_path);
    return 1;
  }
  std::string control_input;
  emit("ready t=" + timestamp() + " links=" + std::to_string(links.size()));

  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> percent(0.0, 100.0);
  std::vector<bool> cut(links.size(), false);
  std::deque<in_flight> queue; // due times only grow: the delay is the same for every packet
  std::uint64_t overflow = 0;
  const auto delay = std::chrono::milliseconds(delay_ms);
  std::vector<pollfd> polled;
  polled.push_back({signal_fd, POLLIN, 0});
  polled.push_back({control, POLLIN, 0}); // a negative descriptor is not polled
  constexpr std::size_t first_device = 2;
  for (const auto& d : directions)
    polled.push_back({d.from, POLLIN, 0});
  std::vector<std::byte> buffer(65536);

  for (bool running = true; running;) {
    // Deliver what is due, then sleep until the next packet is due or something arrives.
    auto now = clock_type::now();
    while (!queue.empty() && queue.front().due <= now) {
      auto& d = directions[queue.front().direction];
      const auto& bytes = queue.front().bytes;
      if (::write(d.to, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()))
        ++d.forwarded;
      else
        ++d.write_errors; // e.g. the device is down
      queue.pop_front();
    }
    timespec wait{};
    const timespec* timeout = nullptr;
    if (!queue.empty()) {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(queue.front().due - now).count();
      wait.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      wait.tv_nsec = static_cast<long>(ns % 1'000'000'000);
      timeout = &wait;
    }
    if (::ppoll(polled.data(), polled.size(), timeout, nullptr) < 0) {
      if (errno == EINTR)
        continue;
      {
        fail("ppoll");
        return 1;
      }
    }
    if ((polled[0].revents & POLLIN) != 0) {
      signalfd_siginfo info{};
      while (::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        if (info.ssi_signo == SIGUSR1 && cut_link >= 0) {
          cut[static_cast<std::size_t>(cut_link)] = true;
          emit("cut t=" + timestamp() + " link=" + std::to_string(cut_link));
        } else if (info.ssi_signo != SIGUSR1) {
          running = false;
        }
      }
    }
    if ((polled[1].revents & POLLIN) != 0) {
      char text[256];
      ssize_t size = 0;
      while ((size = ::read(control, text, sizeof text)) > 0 && control_input.size() < 4096)
        control_input.append(text, static_cast<std::size_t>(size));
      for (auto end = control_input.find('\n'); end != std::string::npos; end = control_input.find('\n')) {
        const std::string line = control_input.substr(0, end);
        control_input.erase(0, end + 1);
        const auto c = parse_command(line, links.size());
        if (!c) {
          emit("control t=" + timestamp() + " error=unknown_command");
          continue;
        }
        cut[c->link] = c->cut;
        emit(std::string(c->cut ? "cut" : "restore") + " t=" + timestamp() + " link=" + std::to_string(c->link));
      }
      if (control_input.size() >= 4096)
        control_input.clear(); // no line that long is a command
    }
    now = clock_type::now();
    for (std::size_t i = first_device; i < polled.size(); ++i) {
      if ((polled[i].revents & POLLIN) == 0)
        continue;
      const std::size_t index = i - first_device;
      direction& d = directions[index];
      // A bounded number of packets per turn, so that one busy device cannot starve the others.
      for (int n = 0; n < 64; ++n) {
        const ssize_t size = ::read(d.from, buffer.data(), buffer.size());
        if (size <= 0)
          break;
        ++d.packets;
        if (cut[d.link]) {
          ++d.cut_dropped;
          continue;
        }
        if (percent(random) < loss_percent) {
          ++d.dropped;
          continue;
        }
        if (queue.size() >= max_in_flight) {
          ++d.dropped;
          ++overflow;
          continue;
        }
        queue.push_back({now + delay, index,
                         std::vector<std::byte>(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(size))});
      }
    }
  }

  for (const auto& d : directions) {
    // The random loss, as a share of the packets that were not cut off.
    const std::uint64_t offered = d.packets - d.cut_dropped;
    const double share = offered == 0 ? 0.0 : 100.0 * static_cast<double>(d.dropped) / static_cast<double>(offered);
    char text[64];
    std::snprintf(text, sizeof text, "%.2f", share);
    emit("stats link=" + std::to_string(d.link) + " direction=" + d.name + " packets=" + std::to_string(d.packets) +
         " dropped=" + std::to_string(d.dropped) + " dropped_percent=" + text +
         " cut_dropped=" + std::to_string(d.cut_dropped) + " forwarded=" + std::to_string(d.forwarded) +
         " write_errors=" + std::to_string(d.write_errors) + " cut=" + (cut[d.link] ? "yes" : "no"));
  }
  emit("overflow dropped=" + std::to_string(overflow));
  for (int fd : devices)
    ::close(fd);
  if (control >= 0)
    ::close(control);
  return 0;
}
