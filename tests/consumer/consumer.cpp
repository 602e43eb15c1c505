// A user's program: everything comes from the one umbrella header.
#include <peergraph.hpp>

#include <cstdio>
#include <string>

namespace {

// A function in the library's style: failures travel as values.
peergraph::expected<int, peergraph::peer_error> parse_port(int value)
{
  if (value <= 0 || value > 65535)
    return peergraph::unexpected(peergraph::peer_error(peergraph::peer_errc::invalid_address));
  return value;
}

} // namespace

int main()
{
  const peergraph::peer_error reset(peergraph::peer_errc::connection_reset);
  const std::string text = reset.message();
  std::printf("peergraph %d.%d.%d: %s (WSA %d)\n", PEERGRAPH_VERSION_MAJOR, PEERGRAPH_VERSION_MINOR,
              PEERGRAPH_VERSION_PATCH, text.c_str(), reset.wsa_error());

  const auto good = parse_port(7000);
  const auto bad = parse_port(70000);
  if (text.empty() || reset != peergraph::peer_errc::connection_reset || reset.wsa_error() != 10054)
    return 1;
  if (!good || *good != 7000 || bad || bad.error() != peergraph::peer_errc::invalid_address)
    return 1;
  return 0;
}
