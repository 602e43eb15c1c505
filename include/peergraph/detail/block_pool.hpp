//
// peergraph/detail/block_pool.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Recycled memory blocks for message payloads and read buffers, so that a steady stream of messages does not reach
// the heap. Blocks come in power-of-two size classes; a bounded number of each is kept for reuse.
//
#pragma once

#include <peergraph/config.hpp>

#include <array>
#include <bit>
#include <cstddef>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

namespace peergraph::detail {

/// A process-wide pool of blocks from 64 bytes to 64 KiB. Larger requests go straight to the heap.
///
/// A payload may be freed on another thread than the one that received it, so the pool is shared and locked; the
/// lock is held for a vector push or pop only.
class block_pool
{
public:
  static constexpr std::size_t min_block = 64;
  static constexpr std::size_t max_block = 64 * 1024;
  /// Blocks kept per size class, so that the pool stays bounded (at most about 1,024 x 64 KiB in the largest class).
  static constexpr std::size_t max_kept = 1024;

  static block_pool& instance() noexcept
  {
    static block_pool pool;
    return pool;
  }

  /// The size a request of `size` bytes really gets (its class), or `size` itself past the largest class.
  static constexpr std::size_t block_size(std::size_t size) noexcept
  {
    if (size > max_block)
      return size;
    return size <= min_block ? min_block : std::bit_ceil(size);
  }

  void* allocate(std::size_t size)
  {
    const std::size_t block = block_size(size);
    if (block <= max_block) {
      class_list& list = lists_[class_index(block)];
      const std::lock_guard lock(list.mutex);
      if (!list.free.empty()) {
        void* p = list.free.back();
        list.free.pop_back();
        return p;
      }
    }
    return ::operator new(block);
  }

  void deallocate(void* p, std::size_t size) noexcept
  {
    const std::size_t block = block_size(size);
    if (block <= max_block) {
      class_list& list = lists_[class_index(block)];
      const std::lock_guard lock(list.mutex);
      if (list.free.size() < max_kept) {
        // Reserving max_kept up front keeps this push from allocating (and from throwing).
        list.free.push_back(p);
        return;
      }
    }
    ::operator delete(p);
  }

  block_pool(const block_pool&) = delete;
  block_pool& operator=(const block_pool&) = delete;

  ~block_pool()
  {
    for (auto& list : lists_)
      for (void* p : list.free)
        ::operator delete(p);
  }

private:
  struct class_list
  {
    std::mutex mutex;
    std::vector<void*> free;
  };

  static constexpr std::size_t class_count = std::bit_width(max_block / min_block);

  static std::size_t class_index(std::size_t block) noexcept
  {
    return static_cast<std::size_t>(std::bit_width(block / min_block)) - 1;
  }

  block_pool()
  {
    for (auto& list : lists_)
      list.free.reserve(max_kept);
  }

  std::array<class_list, class_count> lists_;
};

/// A pooled block owned by one object: a read buffer that exists only while data is flowing.
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

} // namespace peergraph::detail
