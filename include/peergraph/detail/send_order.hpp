//
// peergraph/detail/send_order.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Keeps sends on one socket in the order they were started ("posted buffers are sent in the order supplied"), even
// when several coroutines send at once and some of them have to wait for the socket to become writable.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/detail/socket_ops.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <mutex>
#include <vector>

namespace peergraph::detail {

/// A send that waits its turn on a socket. The queue is intrusive, so waiting allocates nothing.
class send_waiter
{
public:
  /// Called, on the socket's executor, when every earlier send on the socket has finished.
  virtual void start_as_head() noexcept = 0;

  /// Called instead of start_as_head when the socket's pending operations were cancelled or it was closed.
  virtual void abort_waiting() noexcept = 0;

  /// Called, on the socket's executor, on the head of a queue being withdrawn: stops the send with
  /// operation_aborted if it is waiting for writability and has not written a byte, and leaves it alone otherwise.
  virtual void withdraw_head() noexcept = 0;

  /// Frees the head of a queue whose executor shut down while it waited, and every send queued behind it, without
  /// completing them (the executor will never run their handlers).
  virtual void abandon() noexcept = 0;

  /// Frees a send that was queued behind an abandoned head, without completing it.
  virtual void abandon_queued() noexcept = 0;

  send_waiter* next_in_queue = nullptr;
  bool withdrawable = true; // false for bytes already promised to the peer (see send_order::withdraw)

protected:
  send_waiter() noexcept = default;
  send_waiter(const send_waiter&) = delete;
  send_waiter& operator=(const send_waiter&) = delete;
  ~send_waiter() = default;
};

/// Per-socket FIFO queues of sends that have not finished, indexed by socket_index() of the native handle.
///
/// The common case (no send waiting anywhere in the process) costs one relaxed atomic load; the lock is taken only
/// while some socket has a send waiting for writability.
class send_order
{
public:
  static send_order& instance() noexcept
  {
    static send_order registry;
    return registry;
  }

  /// True when no send is pending on `fd`, so a new one may write at once.
  [[nodiscard]] bool idle(native_socket fd) noexcept
  {
    if (queued_sockets_.load(std::memory_order_acquire) == 0)
      return true;
    const std::lock_guard lock(mutex_);
    const auto index = socket_index(fd);
    return index >= queues_.size() || queues_[index].head == nullptr;
  }

  /// Makes room for the queue of `fd` before its first send that has to wait, which then allocates nothing.
  void reserve(native_socket fd)
  {
    const std::lock_guard lock(mutex_);
    make_room(socket_index(fd));
  }

  /// Appends `waiter`; returns true when it is at the head (nothing earlier is pending).
  bool enqueue(native_socket fd, send_waiter* waiter)
  {
    const std::lock_guard lock(mutex_);
    const auto index = socket_index(fd);
    make_room(index);
    queue& q = queues_[index];
    waiter->next_in_queue = nullptr;
    if (q.head == nullptr) {
      q.head = q.tail = waiter;
      queued_sockets_.fetch_add(1, std::memory_order_release);
      return true;
    }
    q.tail->next_in_queue = waiter;
    q.tail = waiter;
    return false;
  }

  /// Removes the finished head `waiter`; returns the send that is now at the head, if any.
  send_waiter* pop_head(native_socket fd, send_waiter* waiter) noexcept
  {
    const std::lock_guard lock(mutex_);
    queue& q = queues_[socket_index(fd)];
    PEERGRAPH_ASSERT(q.head == waiter);
    q.head = waiter->next_in_queue;
    if (q.head == nullptr) {
      q.tail = nullptr;
      queued_sockets_.fetch_sub(1, std::memory_order_release);
    }
    return q.head;
  }

  /// Removes a waiter that is not at the head (it was cancelled before its turn). False if it is not queued there.
  bool remove_waiting(native_socket fd, send_waiter* waiter) noexcept
  {
    const std::lock_guard lock(mutex_);
    const auto index = socket_index(fd);
    if (index >= queues_.size() || queues_[index].head == waiter)
      return false;
    queue& q = queues_[index];
    for (send_waiter* prev = q.head; prev != nullptr; prev = prev->next_in_queue) {
      if (prev->next_in_queue == waiter) {
        prev->next_in_queue = waiter->next_in_queue;
        if (q.tail == waiter)
          q.tail = prev;
        return true;
      }
    }
    return false;
  }

  /// Unlinks every send queued behind the head `waiter` and returns the first of them (linked by next_in_queue).
  send_waiter* detach_followers(native_socket fd, send_waiter* waiter) noexcept
  {
    const std::lock_guard lock(mutex_);
    queue& q = queues_[socket_index(fd)];
    PEERGRAPH_ASSERT(q.head == waiter);
    send_waiter* followers = waiter->next_in_queue;
    waiter->next_in_queue = nullptr;
    q.tail = waiter;
    return followers;
  }

  /// Withdraws the sends on `fd` that may be withdrawn and have not written anything: those waiting their turn
  /// complete with operation_aborted, and so does the head if it is still waiting for writability with nothing
  /// written. Sends that are not withdrawable, and a head that has written part of its bytes, stay queued and go out
  /// in order, so that what follows them on the stream stays intact. Call on the socket's executor.
  void withdraw(native_socket fd) noexcept
  {
    send_waiter* withdrawn = nullptr;
    send_waiter* head = nullptr;
    {
      const std::lock_guard lock(mutex_);
      const auto index = socket_index(fd);
      if (index >= queues_.size() || queues_[index].head == nullptr)
        return;
      queue& q = queues_[index];
      head = q.head;
      send_waiter** last_withdrawn = &withdrawn;
      send_waiter* kept = head;
      for (send_waiter* w = head->next_in_queue; w != nullptr;) {
        send_waiter* following = w->next_in_queue;
        if (w->withdrawable) {
          *last_withdrawn = w;
          last_withdrawn = &w->next_in_queue;
          w->next_in_queue = nullptr;
        } else {
          kept->next_in_queue = w;
          kept = w;
        }
        w = following;
      }
      kept->next_in_queue = nullptr;
      q.tail = kept;
    }
    for (send_waiter* w = withdrawn; w != nullptr;) {
      send_waiter* following = w->next_in_queue;
      w->abort_waiting();
      w = following;
    }
    if (head->withdrawable)
      head->withdraw_head();
  }

private:
  struct queue
  {
    send_waiter* head = nullptr;
    send_waiter* tail = nullptr;
  };

  send_order() = default;

  void make_room(std::size_t index)
  {
    if (index >= queues_.size())
      queues_.resize(std::max(index + 1, 2 * queues_.size()));
  }

  std::mutex mutex_;
  std::vector<queue> queues_;
  std::atomic<std::size_t> queued_sockets_{0};
};

} // namespace peergraph::detail
