#include <peergraph/graph_properties.hpp>
// The header under test comes first: it must be self-contained.

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace {

using peergraph::graph_properties;
using peergraph::invalid_property;
using peergraph::peer_errc;

graph_properties valid_properties()
{
  graph_properties p;
  p.graph = *peergraph::graph_id::make("properties-test");
  p.peer = *peergraph::peer_id::make("alice");
  return p;
}

/// The field validate() names for `p`, or 0 when `p` is valid.
int invalid_field(const graph_properties& p)
{
  auto valid = p.validate();
  if (valid)
    return 0;
  REQUIRE(valid.error() == peer_errc::invalid_argument);
  REQUIRE(valid.error().cause().category() == peergraph::graph_property_category());
  return valid.error().cause().value();
}

} // namespace

TEST_SUITE_BEGIN("graph_properties");

TEST_CASE("the defaults with a graph id and a peer id are valid")
{
  CHECK(invalid_field(valid_properties()) == 0);
  CHECK(invalid_field(graph_properties{}) == static_cast<int>(invalid_property::graph));
}

TEST_CASE("each rule names its field, at the edge of what it allows")
{
  using namespace std::chrono_literals;
  struct rule
  {
    invalid_property field;
    std::function<void(graph_properties&)> break_it;
    std::function<void(graph_properties&)> edge; // the last value the rule still allows
  };
  const std::vector<rule> rules = {
      {invalid_property::graph, [](auto& p) { p.graph = {}; }, [](auto&) {}},
      {invalid_property::peer, [](auto& p) { p.peer = {}; }, [](auto&) {}},
      {invalid_property::friendly_name, [](auto& p) { p.friendly_name = std::string(257, 'x'); },
       [](auto& p) { p.friendly_name = std::string(256, 'x'); }},
      {invalid_property::max_frame_size, [](auto& p) { p.max_frame_size = peergraph::min_max_frame_size - 1; },
       [](auto& p) { p.max_frame_size = peergraph::min_max_frame_size; }},
      {invalid_property::copy_threshold, [](auto& p) { p.copy_threshold = 32 * 1024 + 1; },
       [](auto& p) { p.copy_threshold = 32 * 1024; }},
      {invalid_property::connect_timeout, [](auto& p) { p.connect_timeout = 0ms; },
       [](auto& p) { p.connect_timeout = 1ms; }},
      {invalid_property::handshake_timeout, [](auto& p) { p.handshake_timeout = -1ms; },
       [](auto& p) { p.handshake_timeout = 1ms; }},
      {invalid_property::keepalive_interval, [](auto& p) { p.keepalive_interval = -1ms; },
       [](auto& p) { p.keepalive_interval = 0ms; }},
      {invalid_property::close_linger, [](auto& p) { p.close_linger = -1ms; }, [](auto& p) { p.close_linger = 0ms; }},
      {invalid_property::max_connections, [](auto& p) { p.max_connections = 0; },
       [](auto& p) { p.max_connections = 1; }},
      {invalid_property::max_connections_per_address, [](auto& p) { p.max_connections_per_address = 0; },
       [](auto& p) { p.max_connections_per_address = 1; }},
      {invalid_property::max_pending_handshakes, [](auto& p) { p.max_pending_handshakes = 0; },
       [](auto& p) { p.max_pending_handshakes = 1; }},
      {invalid_property::max_pending_handshakes_per_address, [](auto& p) { p.max_pending_handshakes_per_address = 0; },
       [](auto& p) { p.max_pending_handshakes_per_address = 1; }},
      {invalid_property::max_connection_output, [](auto& p) { p.max_connection_output = 64 * 1024 - 1; },
       [](auto& p) { p.max_connection_output = 64 * 1024; }},
      {invalid_property::output_stall_timeout, [](auto& p) { p.output_stall_timeout = 0ms; },
       [](auto& p) { p.output_stall_timeout = 1ms; }},
      {invalid_property::max_incoming_bytes, [](auto& p) { p.max_incoming_bytes = 0; },
       [](auto& p) { p.max_incoming_bytes = 1; }},
      {invalid_property::event_queue_depth, [](auto& p) { p.event_queue_depth = 0; },
       [](auto& p) { p.event_queue_depth = 1; }},
      {invalid_property::max_record_size, [](auto& p) { p.max_record_size = peergraph::min_max_frame_size - 1; },
       [](auto& p) { p.max_record_size = peergraph::min_max_frame_size; }},
      {invalid_property::max_records, [](auto& p) { p.max_records = 0; }, [](auto& p) { p.max_records = 1; }},
      {invalid_property::max_record_bytes, [](auto& p) { p.max_record_bytes = p.max_record_size - 1; },
       [](auto& p) { p.max_record_bytes = p.max_record_size; }},
      // A record travels in one frame: max_frame_size caps the largest record, and so what max_record_bytes must hold.
      {invalid_property::max_record_bytes,
       [](auto& p) {
         p.max_frame_size = 4096;
         p.max_record_bytes = 4095;
       },
       [](auto& p) {
         p.max_frame_size = 4096;
         p.max_record_bytes = 4096;
       }},
      {invalid_property::presence_lifetime, [](auto& p) { p.presence_lifetime = 999ms; },
       [](auto& p) { p.presence_lifetime = 1000ms; }},
      {invalid_property::max_neighbors, [](auto& p) { p.max_neighbors = 0; },
       [](auto& p) {
         p.min_neighbors = 0;
         p.max_neighbors = 1;
       }},
      {invalid_property::max_neighbors,
       [](auto& p) {
         p.min_neighbors = 3;
         p.max_neighbors = 2;
       },
       [](auto& p) {
         p.min_neighbors = 3;
         p.max_neighbors = 3;
       }},
      {invalid_property::repair_backoff, [](auto& p) { p.repair_backoff_min = 0ms; },
       [](auto& p) { p.repair_backoff_min = 1ms; }},
      {invalid_property::repair_backoff,
       [](auto& p) {
         p.repair_backoff_min = 2s;
         p.repair_backoff_max = 1s;
       },
       [](auto& p) {
         p.repair_backoff_min = 1s;
         p.repair_backoff_max = 1s;
       }},
  };
  // Every field once, and the fields with two rules twice.
  CHECK(rules.size() == static_cast<std::size_t>(invalid_property::repair_backoff) + 3);
  for (const auto& r : rules) {
    CAPTURE(static_cast<int>(r.field));
    auto broken = valid_properties();
    r.break_it(broken);
    CHECK(invalid_field(broken) == static_cast<int>(r.field));
    const std::string text = peergraph::graph_property_category().message(static_cast<int>(r.field));
    CHECK(text.rfind("graph_properties::", 0) == 0);
    CHECK(broken.validate().error().message().find(text) != std::string::npos);
    auto edge = valid_properties();
    r.edge(edge);
    CHECK(invalid_field(edge) == 0);
  }
}

TEST_CASE("validate() reports the first broken field in the order graph_properties declares them")
{
  auto p = valid_properties();
  p.event_queue_depth = 0;
  p.max_connections_per_address = 0;
  CHECK(invalid_field(p) == static_cast<int>(invalid_property::max_connections_per_address));
  p.peer = {};
  CHECK(invalid_field(p) == static_cast<int>(invalid_property::peer));
  CHECK(peergraph::graph_property_category().name() == std::string("peergraph.graph_properties"));
  CHECK(peergraph::graph_property_category().message(0) == "unknown graph property");
}

TEST_SUITE_END();
