//
// tests/support/process_stats.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// What the test process holds, for tests that prove a node's memory and descriptors stay bounded: heap in use (the
// sanitizer runtime's count where it owns the heap), open descriptors, and the kernel's largest TCP buffers.
//
#pragma once

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <system_error>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PEERGRAPH_TEST_SANITIZER_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PEERGRAPH_TEST_SANITIZER_HEAP 1
#endif
#endif
#if defined(PEERGRAPH_TEST_SANITIZER_HEAP) && __has_include(<sanitizer/allocator_interface.h>)
#include <sanitizer/allocator_interface.h>
#elif defined(PEERGRAPH_TEST_SANITIZER_HEAP)
// The sanitizer runtimes' allocator statistics (GCC ships no header declaring them).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#else
#include <malloc.h>
#endif
#if defined(_WIN32)
#include <windows.h>
#endif

namespace peergraph::test {

/// Bytes of heap in use by the whole process.
inline std::size_t heap_in_use()
{
#ifdef PEERGRAPH_TEST_SANITIZER_HEAP
  return __sanitizer_get_current_allocated_bytes();
#elif defined(_WIN32)
  // The C runtime has no running total there: the blocks in use, counted.
  std::size_t used = 0;
  _HEAPINFO entry{};
  while (_heapwalk(&entry) == _HEAPOK)
    used += entry._useflag == _USEDENTRY ? entry._size : 0;
  return used;
#else
  const auto info = mallinfo2();
  return info.uordblks + info.hblkhd;
#endif
}

/// How far the heap in use grew since it was `before` bytes (0 if it shrank).
inline std::size_t heap_growth_since(std::size_t before)
{
  const std::size_t now = heap_in_use();
  return now > before ? now - before : 0;
}

/// Open file descriptors of this process (on Windows, its handles): sockets that were never closed show up here.
inline std::size_t open_descriptors()
{
#if defined(_WIN32)
  DWORD handles = 0;
  return ::GetProcessHandleCount(::GetCurrentProcess(), &handles) ? handles : 0;
#else
  std::size_t count = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator() && count < 100'000; it.increment(ec))
    ++count;
  return count;
#endif
}

/// The largest TCP buffer in one direction (tcp_rmem or tcp_wmem's third value); 32 MiB without the file (Windows).
inline std::size_t kernel_buffer_max(const char* file)
{
  std::ifstream in(file);
  std::size_t low = 0;
  std::size_t initial = 0;
  std::size_t high = 0;
  in >> low >> initial >> high;
  return high != 0 ? high : 32U * 1024 * 1024;
}

} // namespace peergraph::test
