//
// tests/netns/records.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~
// The output records of the netns test's programs (netns_node, netns_link): one line each, time-stamped with the
// clock every process of the test shares, flushed at once because the test reads them while the programs run.
//
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace peergraph::netns {

/// Seconds since the Unix epoch, with microseconds.
inline std::string timestamp()
{
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count();
  char text[32];
  std::snprintf(text, sizeof text, "%lld.%06lld", static_cast<long long>(us / 1'000'000),
                static_cast<long long>(us % 1'000'000));
  return text;
}

/// Writes one record on standard output and flushes it.
inline void emit(const std::string& record)
{
  std::fputs(record.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

} // namespace peergraph::netns
