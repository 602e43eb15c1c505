//
// tests/support/allocation_counter.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Counts calls of the global operator new (plain and aligned), for tests that prove a path allocates nothing. Link
// support/allocation_counter.cpp into the test program to replace the global allocation functions.
//
#pragma once

#include <cstddef>

namespace peergraph::test {

/// Number of global operator new calls since the program started.
std::size_t heap_allocations() noexcept;

/// False in builds whose sanitizer runtime owns the global allocation functions (ThreadSanitizer), where nothing is
/// counted and tests of allocation counts skip themselves.
bool allocations_counted() noexcept;

} // namespace peergraph::test
