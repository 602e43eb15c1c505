//
// tests/support/allocation_counter.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Counts calls of the global operator new (plain and aligned), for tests that prove a path allocates nothing, and can
// make large ones fail, for tests that prove a node survives an allocation failure. Link
// support/allocation_counter.cpp into the test program to replace the global allocation functions.
//
#pragma once

#include <cstddef>

namespace peergraph::test {

/// Number of global operator new calls since the program started.
std::size_t heap_allocations() noexcept;

/// False in builds whose sanitizer runtime owns the global allocation functions (ThreadSanitizer), where nothing is
/// counted or made to fail, and tests of allocations skip themselves.
bool allocations_counted() noexcept;

/// From now on every global operator new (plain or aligned) of more than `bytes` throws std::bad_alloc; 0 disarms.
void fail_allocations_above(std::size_t bytes) noexcept;

/// Requests refused since the program started.
std::size_t refused_allocations() noexcept;

/// Arms fail_allocations_above for its lifetime; disarms when it ends, also when a test fails half-way.
class allocation_failure_scope
{
public:
  explicit allocation_failure_scope(std::size_t bytes) noexcept { fail_allocations_above(bytes); }
  ~allocation_failure_scope() { fail_allocations_above(0); }
  allocation_failure_scope(const allocation_failure_scope&) = delete;
  allocation_failure_scope& operator=(const allocation_failure_scope&) = delete;
};

} // namespace peergraph::test
