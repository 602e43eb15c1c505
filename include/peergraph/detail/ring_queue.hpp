//
// peergraph/detail/ring_queue.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A FIFO on a circular array that keeps its storage, so a queue that is filled and drained over and over allocates
// only while it grows to its working size (std::deque allocates and frees a block every few elements).
//
#pragma once

#include <peergraph/config.hpp>

#include <cstddef>
#include <memory>
#include <new>
#include <utility>

namespace peergraph::detail {

/// A FIFO with std::deque's push_back, front, pop_front, size and clear.
template <class T>
class ring_queue
{
public:
  ring_queue() noexcept = default;
  ring_queue(const ring_queue& other) : ring_queue() { copy_from(other); }
  ring_queue(ring_queue&& other) noexcept { swap(other); }
  ring_queue& operator=(const ring_queue& other)
  {
    if (this != &other) {
      clear();
      copy_from(other);
    }
    return *this;
  }
  ring_queue& operator=(ring_queue&& other) noexcept
  {
    if (this != &other) {
      clear();
      swap(other);
    }
    return *this;
  }
  ~ring_queue()
  {
    clear();
    ::operator delete(slots_, std::align_val_t(alignof(T)));
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

  void push_back(T&& value) { emplace_back(std::move(value)); }

  /// Constructs the new last element from `args`.
  template <class... Args>
  void emplace_back(Args&&... args)
  {
    if (size_ == capacity_)
      grow();
    ::new (static_cast<void*>(slot(size_))) T(std::forward<Args>(args)...);
    ++size_;
  }

  [[nodiscard]] T& front() noexcept { return *slot(0); }

  void pop_front() noexcept
  {
    std::destroy_at(slot(0));
    head_ = (head_ + 1) & (capacity_ - 1);
    --size_;
  }

  void clear() noexcept
  {
    while (size_ > 0)
      pop_front();
    head_ = 0;
  }

private:
  // The capacity is a power of two, so positions wrap with a mask rather than a division.
  T* slot(std::size_t index) const noexcept { return slots_ + ((head_ + index) & (capacity_ - 1)); }

  void grow()
  {
    // Small at first: a graph with a few connections sees a few events at a time and should not hold more.
    const std::size_t next = capacity_ == 0 ? 2 : capacity_ * 2;
    T* fresh = static_cast<T*>(::operator new(next * sizeof(T), std::align_val_t(alignof(T))));
    for (std::size_t i = 0; i < size_; ++i) {
      ::new (static_cast<void*>(fresh + i)) T(std::move(*slot(i)));
      std::destroy_at(slot(i));
    }
    ::operator delete(slots_, std::align_val_t(alignof(T)));
    slots_ = fresh;
    capacity_ = next;
    head_ = 0;
  }

  void copy_from(const ring_queue& other)
  {
    for (std::size_t i = 0; i < other.size_; ++i)
      emplace_back(*other.slot(i));
  }

  void swap(ring_queue& other) noexcept
  {
    std::swap(slots_, other.slots_);
    std::swap(capacity_, other.capacity_);
    std::swap(head_, other.head_);
    std::swap(size_, other.size_);
  }

  T* slots_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

} // namespace peergraph::detail
