#include "allocation_counter.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

// Asio allocates its operations with aligned_alloc, which is counted too, except under AddressSanitizer, whose
// runtime owns the C allocation functions.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PEERGRAPH_TEST_ASAN_OWNS_MALLOC
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define PEERGRAPH_TEST_ASAN_OWNS_MALLOC
#endif

#if defined(_WIN32)
#include <malloc.h> // _aligned_malloc: the C runtime's free() cannot release an aligned block there
#elif !defined(PEERGRAPH_TEST_ASAN_OWNS_MALLOC)
extern "C" void* __libc_memalign(std::size_t alignment, std::size_t size);
#endif

namespace {
std::atomic<std::size_t> allocations{0};
std::atomic<std::size_t> fail_above{0}; // 0: disarmed
std::atomic<std::size_t> refused{0};

/// Frees a block of the aligned operator new.
[[maybe_unused]] void free_aligned(void* p) noexcept
{
#if defined(_WIN32)
  _aligned_free(p);
#else
  std::free(p);
#endif
}

/// Counts a request of `size` bytes; false when it is to fail (fail_allocations_above).
[[maybe_unused]] bool admit(std::size_t size) noexcept
{
  allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t limit = fail_above.load(std::memory_order_relaxed);
  if (limit == 0 || size <= limit)
    return true;
  refused.fetch_add(1, std::memory_order_relaxed);
  return false;
}
} // namespace

std::size_t peergraph::test::heap_allocations() noexcept
{
  return allocations.load(std::memory_order_relaxed);
}

void peergraph::test::fail_allocations_above(std::size_t bytes) noexcept
{
  fail_above.store(bytes, std::memory_order_relaxed);
}

std::size_t peergraph::test::refused_allocations() noexcept
{
  return refused.load(std::memory_order_relaxed);
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
  if (!admit(size))
    throw std::bad_alloc();
  if (void* p = std::malloc(size == 0 ? 1 : size))
    return p;
  throw std::bad_alloc();
}

void* operator new[](std::size_t size)
{
  return ::operator new(size);
}

void* operator new(std::size_t size, std::align_val_t alignment)
{
  if (!admit(size))
    throw std::bad_alloc();
  const auto align = static_cast<std::size_t>(alignment);
  const std::size_t rounded = (size == 0 ? align : (size + align - 1) / align * align); // aligned_alloc's rule
#if defined(_WIN32)
  void* p = _aligned_malloc(rounded, align);
#elif defined(PEERGRAPH_TEST_ASAN_OWNS_MALLOC)
  void* p = std::aligned_alloc(align, rounded);
#else
  void* p = __libc_memalign(align, rounded); // not through aligned_alloc, which would count it again
#endif
  if (p != nullptr)
    return p;
  throw std::bad_alloc();
}

void* operator new[](std::size_t size, std::align_val_t alignment)
{
  return ::operator new(size, alignment);
}

void operator delete(void* p, std::align_val_t) noexcept
{
  free_aligned(p);
}

void operator delete[](void* p, std::align_val_t) noexcept
{
  free_aligned(p);
}

void operator delete(void* p, std::size_t, std::align_val_t) noexcept
{
  free_aligned(p);
}

void operator delete[](void* p, std::size_t, std::align_val_t) noexcept
{
  free_aligned(p);
}

void operator delete(void* p) noexcept
{
  std::free(p);
}

#if !defined(PEERGRAPH_TEST_ASAN_OWNS_MALLOC) && !defined(_WIN32)
extern "C" void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept
{
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, size);
}
#endif

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
