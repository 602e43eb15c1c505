//
// peergraph/detail/block_pool.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Recycled memory blocks for message payloads and read buffers, so that a steady stream of messages does not reach
// the heap. Blocks come in power-of-two size classes; a bounded number of each is kept for reuse.
//
#pragma once

#include <peergraph/config.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <mutex>
#include <new>
#include <utility>

// MinGW: its std::mutex (winpthreads) has no constexpr constructor, so the shared lists are initialised before main
// (no static initialiser of the library allocates from them); and its thread-local storage (emutls) frees a thread's
// variables before the destructors of its other thread-local objects run, so a cache could not be given back when its
// thread ends: there every block goes to and from the shared lists.
#if defined(__MINGW32__)
#define PEERGRAPH_POOL_CONSTEXPR
#define PEERGRAPH_POOL_CONSTINIT
#define PEERGRAPH_POOL_THREAD_CACHE 0
#else
#define PEERGRAPH_POOL_CONSTEXPR constexpr
#define PEERGRAPH_POOL_CONSTINIT constinit
#define PEERGRAPH_POOL_THREAD_CACHE 1
#endif

namespace peergraph::detail {

/// A process-wide pool of blocks from 64 bytes to 64 KiB. Larger requests go straight to the heap.
///
/// Each thread keeps a small cache of free blocks per size class in front of the shared lists, so that a thread that
/// frees what it allocated (a reader and its event consumer, a connection's buffers) takes no lock. A payload may be
/// freed on another thread than the one that received it: blocks a thread's cache has no room for go to the shared
/// lists, which are locked for a list push or pop only.
class block_pool
{
public:
  static constexpr std::size_t min_block = 64;
  static constexpr std::size_t max_block = 64 * 1024;
  /// Bytes kept for reuse per size class in the shared lists, and the least number of blocks kept in any class. Small
  /// classes keep many blocks (a full event queue of small messages, and more, recycles without touching the heap);
  /// the lists as a whole keep at most about 11 MiB, so that what a burst (or a hostile peer) made the node take goes
  /// back to the heap once it is over.
  static constexpr std::size_t kept_bytes_per_class = 1024 * 1024;
  static constexpr std::size_t min_kept = 16;

  static block_pool& instance() noexcept { return pool_; }

  /// The size a request of `size` bytes really gets (its class), or `size` itself past the largest class.
  static constexpr std::size_t block_size(std::size_t size) noexcept
  {
    if (size > max_block)
      return size;
    return size <= min_block ? min_block : std::bit_ceil(size);
  }

  /// How many free blocks of size class `block` are kept.
  static constexpr std::size_t max_kept(std::size_t block) noexcept
  {
    return std::max(min_kept, kept_bytes_per_class / block);
  }

  // The thread's cache is the common path and stays short: the shared lists and the heap are functions of their own.
  void* allocate(std::size_t size)
  {
    if (size <= max_block) [[likely]] {
      const std::size_t index = class_of(size);
#if PEERGRAPH_POOL_THREAD_CACHE
      if (void* cached = local_cache().take(index)) [[likely]]
        return cached;
#endif
      return allocate_shared(index);
    }
    return ::operator new(size);
  }

  void deallocate(void* p, std::size_t size) noexcept
  {
    if (size <= max_block) [[likely]] {
      const std::size_t index = class_of(size);
#if PEERGRAPH_POOL_THREAD_CACHE
      if (local_cache().keep(index, p, cache_limits[index])) [[likely]]
        return;
#endif
      deallocate_shared(p, index);
      return;
    }
    ::operator delete(p);
  }

  block_pool(const block_pool&) = delete;
  block_pool& operator=(const block_pool&) = delete;

  ~block_pool()
  {
    for (auto& list : lists_) {
      while (free_block* head = list.head) {
        list.head = head->next;
        ::operator delete(head);
      }
    }
  }

private:
  struct free_block
  {
    free_block* next;
  };

  struct class_list
  {
    std::mutex mutex;
    free_block* head = nullptr;
    std::size_t count = 0;
  };

  static constexpr std::size_t class_count = std::bit_width(max_block / min_block);
  static constexpr std::size_t thread_cache_bytes_per_class = 256 * 1024;
  /// How many free blocks of each size class one thread's cache keeps: 256 KiB of each (4 blocks of 64 KiB, 4,096
  /// of 64 bytes: a reader queues a whole read buffer of small messages before its consumer frees them).
  static constexpr std::array<std::size_t, class_count> cache_limits = [] {
    std::array<std::size_t, class_count> limits{};
    for (std::size_t index = 0; index < class_count; ++index)
      limits[index] = std::clamp<std::size_t>(thread_cache_bytes_per_class / (min_block << index), 4, 4096);
    return limits;
  }();

  /// One thread's free blocks. Trivial and constant-initialised, so that reaching it costs no initialisation check
  /// on every allocation; `thread_drain` gives its blocks back to the shared lists when the thread ends.
  class thread_cache
  {
  public:
    void* take(std::size_t index) noexcept
    {
      local_list& list = lists_[index];
      free_block* head = list.head;
      if (head != nullptr) {
        list.head = head->next;
        --list.count;
      }
      return head;
    }

    bool keep(std::size_t index, void* p, std::size_t limit) noexcept
    {
      if (state_ != cache_state::armed) [[unlikely]] {
        if (state_ == cache_state::ended)
          return false; // the thread is past its drain: the block goes to the shared lists
        arm_drain();
      }
      local_list& list = lists_[index];
      if (list.count >= limit)
        return false;
      list.head = ::new (p) free_block{list.head};
      ++list.count;
      return true;
    }

    /// Gives every kept block to the shared lists; from then on the thread keeps none.
    void drain() noexcept
    {
      for (std::size_t index = 0; index < class_count; ++index) {
        while (free_block* head = lists_[index].head) {
          lists_[index].head = head->next;
          instance().deallocate_shared(head, index);
        }
        lists_[index].count = 0;
      }
      state_ = cache_state::ended;
    }

  private:
    // unarmed: no drain registered yet; armed: the thread's end drains the cache; ended: drained, keeps nothing.
    enum class cache_state : unsigned char
    {
      unarmed,
      armed,
      ended
    };

    struct local_list
    {
      free_block* head;
      std::size_t count;
    };

    /// The first block a thread keeps registers the drain that runs when the thread ends.
    void arm_drain() noexcept;

    std::array<local_list, class_count> lists_;
    cache_state state_;
  };

  /// Drains the thread's cache when the thread ends.
  struct thread_drain
  {
    thread_drain() noexcept = default;
    thread_drain(const thread_drain&) = delete;
    thread_drain& operator=(const thread_drain&) = delete;
    ~thread_drain() { local_cache().drain(); }
  };

  static thread_cache& local_cache() noexcept { return local_cache_; }

  void* allocate_shared(std::size_t index)
  {
    class_list& list = lists_[index];
    {
      const std::lock_guard lock(list.mutex);
      if (free_block* head = list.head) {
        list.head = head->next;
        --list.count;
        return head;
      }
    }
    return ::operator new(min_block << index);
  }

  void deallocate_shared(void* p, std::size_t index) noexcept
  {
    class_list& list = lists_[index];
    {
      const std::lock_guard lock(list.mutex);
      if (list.count < max_kept(min_block << index)) {
        // The free list lives in the free blocks themselves: keeping one allocates nothing.
        list.head = ::new (p) free_block{list.head};
        ++list.count;
        return;
      }
    }
    ::operator delete(p);
  }

  /// The size class of a request of `size` bytes (at most max_block): the class of block_size(size), in one step.
  static std::size_t class_of(std::size_t size) noexcept
  {
    return size <= min_block ? 0 : static_cast<std::size_t>(std::bit_width((size - 1) / min_block));
  }

  PEERGRAPH_POOL_CONSTEXPR block_pool() noexcept = default;

  std::array<class_list, class_count> lists_;

  static block_pool pool_;
  static thread_local thread_cache local_cache_;
};

// Constant-initialised (but on MinGW, above): reaching the pool and a thread's cache costs no initialisation check.
inline PEERGRAPH_POOL_CONSTINIT block_pool block_pool::pool_{};
inline constinit thread_local block_pool::thread_cache block_pool::local_cache_{};

inline void block_pool::thread_cache::arm_drain() noexcept
{
  static thread_local thread_drain drain_at_exit;
  (void)drain_at_exit;
  state_ = cache_state::armed;
}

class pooled_buffer
{
public:
  pooled_buffer() noexcept = default;
  explicit pooled_buffer(std::size_t size)
      : data_(static_cast<std::byte*>(block_pool::instance().allocate(size))), size_(size)
  {
  }
  pooled_buffer(pooled_buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0))
  {
  }
  pooled_buffer& operator=(pooled_buffer&& other) noexcept
  {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~pooled_buffer() { release(); }

  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] explicit operator bool() const noexcept { return data_ != nullptr; }

  void release() noexcept
  {
    if (data_ != nullptr)
      block_pool::instance().deallocate(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }

private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// An allocator over the block pool: the default allocator of peergraph's own operations (a send waiting for the
/// socket, a waiting next_event), so that they recycle through the thread's cache rather than compete with Asio's
/// own operations for its two recycled blocks per thread.
template <class T>
class pool_allocator
{
public:
  using value_type = T;

  pool_allocator() noexcept = default;
  template <class U>
  pool_allocator(const pool_allocator<U>&) noexcept // NOLINT: implicit, as allocators convert
  {
  }

  [[nodiscard]] T* allocate(std::size_t n)
  {
    static_assert(alignof(T) <= alignof(std::max_align_t), "pool blocks are aligned like operator new's");
    if (n > static_cast<std::size_t>(-1) / sizeof(T))
      throw std::bad_array_new_length();
    return static_cast<T*>(block_pool::instance().allocate(n * sizeof(T)));
  }

  void deallocate(T* p, std::size_t n) noexcept { block_pool::instance().deallocate(p, n * sizeof(T)); }

  template <class U>
  friend bool operator==(const pool_allocator&, const pool_allocator<U>&) noexcept
  {
    return true;
  }
};

} // namespace peergraph::detail
