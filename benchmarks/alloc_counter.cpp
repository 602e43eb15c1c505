//
// benchmarks/alloc_counter.cpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Counts heap allocations, linked only into the allocation-counting program (peergraph_bench_allocs) so that the
// timed program runs on the untouched allocator.
//
// The C allocation functions are replaced in the executable, which takes precedence over the C library for every
// shared library too (libstdc++'s operator new, libzmq), and forwarded to glibc's own entry points (`__libc_malloc`
// and friends are the names glibc exports for exactly this). Every call that returns new memory counts once:
// malloc, calloc, realloc, aligned_alloc, posix_memalign, memalign.
//
#include "harness.hpp"

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* p, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
}

namespace {

constinit std::atomic<std::uint64_t> allocations{0};

void count() noexcept
{
  allocations.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t allocations_so_far() noexcept
{
  return allocations.load(std::memory_order_relaxed);
}

const peergraph::bench::allocation_counter_registration registration{&allocations_so_far};

} // namespace

extern "C" {

void* malloc(std::size_t size) noexcept
{
  count();
  return __libc_malloc(size);
}

void* calloc(std::size_t n, std::size_t size) noexcept
{
  count();
  return __libc_calloc(n, size);
}

void* realloc(void* p, std::size_t size) noexcept
{
  count();
  return __libc_realloc(p, size);
}

void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept
{
  count();
  return __libc_memalign(alignment, size);
}

void* memalign(std::size_t alignment, std::size_t size) noexcept
{
  count();
  return __libc_memalign(alignment, size);
}

int posix_memalign(void** out, std::size_t alignment, std::size_t size) noexcept
{
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0)
    return EINVAL;
  count();
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr)
    return ENOMEM;
  *out = p;
  return 0;
}

} // extern "C"
