//
// peergraph/detail/iovec_capture.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Captures a caller's buffer descriptors at initiation (the WSABUF "transient array" rule): after the capture the
// caller's descriptor array may go out of scope; only the bytes it points to must live until completion.
//
#pragma once

#include <peergraph/config.hpp>

#include <asio/buffer.hpp>
#include <peergraph/detail/block_pool.hpp>
#include <peergraph/detail/socket_ops.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <utility>

namespace peergraph::detail {

/// Owns copies of the descriptors (never the bytes) of a buffer sequence as the system's descriptors (iovec, or
/// WSABUF on Windows, where a buffer longer than a ULONG counts is split over several), zero-length buffers dropped.
///
/// Small sequences live inline, so the common one- and two-buffer sends allocate nothing; longer ones use Asio's
/// block pool (detail/block_pool.hpp), so a steady stream of equal-sized gathers does not reach the heap either.
class iovec_capture
{
public:
  static constexpr std::size_t inline_capacity = 8;

  iovec_capture() noexcept = default;

  /// Largest prefix an iovec_capture can own (a frame header).
  static constexpr std::size_t max_prefix_size = 32;

  template <class ConstBufferSequence>
  explicit iovec_capture(const ConstBufferSequence& buffers) : iovec_capture(std::span<const std::byte>(), buffers)
  {
  }

  /// Captures `buffers` behind a copy of `prefix` (at most max_prefix_size bytes, such as a frame header), which the
  /// capture owns, so that the caller's header may be a temporary too.
  template <class ConstBufferSequence>
  iovec_capture(std::span<const std::byte> prefix, const ConstBufferSequence& buffers)
  {
    PEERGRAPH_ASSERT(prefix.size() <= max_prefix_size);
    const auto first = asio::buffer_sequence_begin(buffers);
    const auto last = asio::buffer_sequence_end(buffers);
    reserve(descriptors_for(first, last) + 1);
    if (!prefix.empty()) {
      prefix_size_ = prefix.size();
      std::copy(prefix.begin(), prefix.end(), prefix_);
      data_[count_++] = make_io_buffer(prefix_, prefix_size_);
      total_bytes_ += prefix_size_;
    }
    for (auto it = first; it != last; ++it) {
      const asio::const_buffer buffer(*it);
      const auto* bytes = static_cast<const std::byte*>(buffer.data());
      for (std::size_t done = 0; done != buffer.size();) {
        const std::size_t piece = std::min(buffer.size() - done, max_io_buffer_size);
        data_[count_++] = make_io_buffer(bytes + done, piece);
        done += piece;
      }
      total_bytes_ += buffer.size();
    }
  }

  iovec_capture(iovec_capture&& other) noexcept { take(other); }

  iovec_capture& operator=(iovec_capture&& other) noexcept
  {
    if (this != &other) {
      release();
      take(other);
    }
    return *this;
  }

  iovec_capture(const iovec_capture&) = delete;
  iovec_capture& operator=(const iovec_capture&) = delete;

  ~iovec_capture() { release(); }

  /// The descriptors not yet consumed.
  [[nodiscard]] io_buffer* data() noexcept { return data_ + first_; }
  [[nodiscard]] std::size_t count() const noexcept { return count_ - first_; }
  [[nodiscard]] bool empty() const noexcept { return first_ == count_; }
  /// The bytes of every captured buffer, consumed or not.
  [[nodiscard]] std::size_t total_bytes() const noexcept { return total_bytes_; }

  /// Drops `bytes` from the front: whole descriptors first, then a trim of the one where a partial send stopped.
  /// Only the library's copies of the descriptors change; the bytes they point to are never touched.
  void consume(std::size_t bytes) noexcept
  {
    while (first_ != count_ && bytes >= io_buffer_size(data_[first_])) {
      bytes -= io_buffer_size(data_[first_]);
      ++first_;
    }
    if (first_ != count_ && bytes > 0)
      advance_io_buffer(data_[first_], bytes);
  }

private:
  /// The descriptors the buffers of [first, last) take: one per non-empty buffer, where no buffer is too long for one.
  template <class Iterator>
  static std::size_t descriptors_for(Iterator first, Iterator last)
  {
    if constexpr (max_io_buffer_size == SIZE_MAX) {
      return static_cast<std::size_t>(std::distance(first, last));
    } else {
      std::size_t n = 0;
      for (auto it = first; it != last; ++it)
        n += (asio::const_buffer(*it).size() + max_io_buffer_size - 1) / max_io_buffer_size;
      return n;
    }
  }

  void reserve(std::size_t n)
  {
    if (n > inline_capacity) {
      data_ = pool_allocator<io_buffer>().allocate(n);
      capacity_ = n;
    }
  }

  void take(iovec_capture& other) noexcept
  {
    first_ = other.first_;
    count_ = other.count_;
    total_bytes_ = other.total_bytes_;
    if (other.data_ == other.inline_) {
      // The whole fixed-size arrays: a few wide moves, cheaper than a loop over the entries in use. Every
      // send_data moves its request twice, into the frame of the coroutine that awaits it.
      std::memcpy(inline_, other.inline_, sizeof inline_);
      data_ = inline_;
      capacity_ = inline_capacity;
    } else {
      data_ = std::exchange(other.data_, other.inline_);
      capacity_ = std::exchange(other.capacity_, inline_capacity);
    }
    prefix_size_ = std::exchange(other.prefix_size_, 0);
    if (prefix_size_ != 0) {
      std::memcpy(prefix_, other.prefix_, sizeof prefix_);
      // The prefix is always the first descriptor; re-point it (and any trim of it) at this object's copy.
      if (first_ == 0) {
        const std::size_t trimmed = prefix_size_ - io_buffer_size(data_[0]);
        data_[0] = make_io_buffer(prefix_ + trimmed, prefix_size_ - trimmed);
      }
    }
    other.first_ = 0;
    other.count_ = 0;
    other.total_bytes_ = 0;
  }

  void release() noexcept
  {
    if (data_ != inline_)
      pool_allocator<io_buffer>().deallocate(data_, capacity_);
    data_ = inline_;
    capacity_ = inline_capacity;
  }

  io_buffer inline_[inline_capacity];
  std::byte prefix_[max_prefix_size];
  std::size_t prefix_size_ = 0;
  io_buffer* data_ = inline_;
  std::size_t capacity_ = inline_capacity;
  std::size_t first_ = 0;
  std::size_t count_ = 0;
  std::size_t total_bytes_ = 0;
};

} // namespace peergraph::detail
