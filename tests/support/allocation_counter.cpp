#include "allocation_counter.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::size_t> allocations{0};
}

std::size_t peergraph::test::heap_allocations() noexcept
{
  return allocations.load(std::memory_order_relaxed);
}

// ThreadSanitizer's runtime defines the global allocation functions itself; a second definition does not link.
#if defined(PEERGRAPH_TEST_SANITIZER_OWNS_NEW)

bool peergraph::test::allocations_counted() noexcept
{
  return false;
}

#else

bool peergraph::test::allocations_counted() noexcept
{
  return true;
}

void* operator new(std::size_t size)
{
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size))
    return p;
  throw std::bad_alloc();
}

void* operator new[](std::size_t size)
{
  return ::operator new(size);
}

void operator delete(void* p) noexcept
{
  std::free(p);
}

void operator delete[](void* p) noexcept
{
  std::free(p);
}

void operator delete(void* p, std::size_t) noexcept
{
  std::free(p);
}

void operator delete[](void* p, std::size_t) noexcept
{
  std::free(p);
}

#endif
