//
// peergraph/detail/expected_impl.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The project's own C++20 implementation of std::expected (C++23 [expected]), used where the standard library has none.
//
#pragma once

#include <peergraph/config.hpp>

#include <cstdlib>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <type_traits>
#include <utility>

// Mirrors C++23 [expected] member for member (with the C++23 defect reports LWG 3836, 3877 and 3886 applied), so that
// code compiles and behaves the same whichever implementation peergraph::expected names. Beyond the standard:
// - copy and move assignment are trivial when T and E are trivially copyable, so expected<std::size_t, peer_error> is
//   trivially copyable as a whole;
// - constructors carry noexcept where the operations they perform cannot throw (as the standard libraries do).
// Everything is always compiled, so it stays tested in C++23 builds too.
namespace peergraph::detail::expected_impl {

template <class E>
class unexpected;

template <class T, class E>
class expected;

template <class E>
class bad_expected_access;

/// Tag type selecting the constructors that build an expected holding an error.
struct unexpect_t
{
  explicit unexpect_t() = default;
};

/// Tag selecting the constructors that build an expected holding an error: `expected<T, E>(unexpect, args...)`.
inline constexpr unexpect_t unexpect{};

/// Base of every bad_expected_access<E>, so that all of them can be caught without naming E.
template <>
class bad_expected_access<void> : public std::exception
{
public:
  /// @return A fixed description of the failure.
  const char* what() const noexcept override { return "bad access to an expected that holds an error"; }

protected:
  bad_expected_access() noexcept = default;
  bad_expected_access(const bad_expected_access&) noexcept = default;
  bad_expected_access(bad_expected_access&&) noexcept = default;
  bad_expected_access& operator=(const bad_expected_access&) noexcept = default;
  bad_expected_access& operator=(bad_expected_access&&) noexcept = default;
  ~bad_expected_access() override = default;
};

/// Thrown by expected::value() when the expected holds an error; carries a copy of that error.
template <class E>
class bad_expected_access : public bad_expected_access<void>
{
public:
  /// @param e The error the expected held.
  explicit bad_expected_access(E e) : unex_(std::move(e)) {}

  /// @return The error the expected held.
  E& error() & noexcept { return unex_; }
  /// @return The error the expected held.
  const E& error() const& noexcept { return unex_; }
  /// @return The error the expected held, as an rvalue.
  E&& error() && noexcept { return std::move(unex_); }
  /// @return The error the expected held, as an rvalue.
  const E&& error() const&& noexcept { return std::move(unex_); }

private:
  E unex_;
};

namespace traits {

template <class T>
inline constexpr bool is_unexpected = false;
template <class E>
inline constexpr bool is_unexpected<unexpected<E>> = true;

template <class T>
inline constexpr bool is_expected = false;
template <class T, class E>
inline constexpr bool is_expected<expected<T, E>> = true;

// [expected.un.general]: what may be the E of unexpected<E> (and so of expected<T, E>).
template <class E>
inline constexpr bool valid_error = std::is_object_v<E> && !std::is_array_v<E> && !is_unexpected<std::remove_cv_t<E>> &&
                                    !std::is_const_v<E> && !std::is_volatile_v<E>;

// [expected.object.general]: what may be the T of expected<T, E> (void is handled by the partial specialization).
template <class T>
inline constexpr bool valid_value =
    !std::is_reference_v<T> && !std::is_function_v<T> && !std::is_array_v<T> &&
    !std::is_same_v<std::remove_cv_t<T>, std::in_place_t> && !std::is_same_v<std::remove_cv_t<T>, unexpect_t> &&
    !is_unexpected<std::remove_cv_t<T>>;

// converts-from-any-cvref<T, W> from [optional.ctor]. Class templates rather than variables, so that conjunction and
// disjunction below instantiate them only when the earlier conditions did not already decide; that keeps the check
// from recursing into T's own converting constructors.
template <class T, class W>
struct converts_from_any_cvref
    : std::disjunction<std::is_constructible<T, W&>, std::is_convertible<W&, T>, std::is_constructible<T, W>,
                       std::is_convertible<W, T>, std::is_constructible<T, const W&>, std::is_convertible<const W&, T>,
                       std::is_constructible<T, const W>, std::is_convertible<const W, T>>
{
};

// unexpected<E> must not be constructible from any cvref of Other: such a source is an error, not a value.
template <class E, class Other>
struct unexpected_from_any_cvref
    : std::disjunction<std::is_constructible<unexpected<E>, Other&>, std::is_constructible<unexpected<E>, Other>,
                       std::is_constructible<unexpected<E>, const Other&>,
                       std::is_constructible<unexpected<E>, const Other>>
{
};

// Constraints of expected<T, E>'s converting constructors from expected<U, G> ([expected.object.cons] 17-19).
// The same-type case is left to the copy and move constructors.
template <class T, class E, class U, class G, class UF, class GF>
inline constexpr bool can_convert =
    std::conjunction_v<std::negation<std::conjunction<std::is_same<T, U>, std::is_same<E, G>>>,
                       std::is_constructible<T, UF>, std::is_constructible<E, GF>,
                       std::disjunction<std::is_same<std::remove_cv_t<T>, bool>,
                                        std::negation<converts_from_any_cvref<T, expected<U, G>>>>,
                       std::negation<unexpected_from_any_cvref<E, expected<U, G>>>>;

// Constraints of expected<void, E>'s converting constructors ([expected.void.cons] 8-10).
template <class T, class E, class U, class G, class GF>
inline constexpr bool can_convert_void =
    std::conjunction_v<std::is_void<U>, std::negation<std::conjunction<std::is_same<T, U>, std::is_same<E, G>>>,
                       std::is_constructible<E, GF>, std::negation<unexpected_from_any_cvref<E, expected<U, G>>>>;

} // namespace traits

// Private constructor tags: build the value or the error straight from a function's result (monadic operations), so
// a non-movable result needs no extra move.
struct invoke_value_tag
{
};
struct invoke_error_tag
{
};

// The active member of expected<void, E>'s union when it holds no error.
struct empty_value
{
};

// Runs a rollback unless dismissed: restores the old state when constructing the new one throws.
template <class Rollback>
class rollback_guard
{
public:
  constexpr explicit rollback_guard(Rollback rollback) noexcept : rollback_(std::move(rollback)) {}
  rollback_guard(const rollback_guard&) = delete;
  rollback_guard& operator=(const rollback_guard&) = delete;
  constexpr ~rollback_guard()
  {
    if (active_)
      rollback_();
  }
  constexpr void dismiss() noexcept { active_ = false; }

private:
  Rollback rollback_;
  bool active_ = true;
};

template <class E, class Arg>
[[noreturn]] void throw_bad_expected_access(Arg&& arg)
{
#if defined(__cpp_exceptions)
  throw bad_expected_access<E>(std::forward<Arg>(arg));
#else
  static_cast<void>(arg);
  std::abort();
#endif
}

// reinit-expected ([expected.object.assign] 1): replaces old_value by new_value built from args, keeping old_value
// when that construction throws.
template <class New, class Old, class... Args>
constexpr void reinit_expected(New& new_value, Old& old_value, Args&&... args)
{
  if constexpr (std::is_nothrow_constructible_v<New, Args...>) {
    std::destroy_at(std::addressof(old_value));
    std::construct_at(std::addressof(new_value), std::forward<Args>(args)...);
  } else if constexpr (std::is_nothrow_move_constructible_v<New>) {
    New tmp(std::forward<Args>(args)...);
    std::destroy_at(std::addressof(old_value));
    std::construct_at(std::addressof(new_value), std::move(tmp));
  } else {
    static_assert(std::is_nothrow_move_constructible_v<Old>);
    Old tmp(std::move(old_value));
    std::destroy_at(std::addressof(old_value));
    rollback_guard guard([&] { std::construct_at(std::addressof(old_value), std::move(tmp)); });
    std::construct_at(std::addressof(new_value), std::forward<Args>(args)...);
    guard.dismiss();
  }
}

/// The error of an expected, wrapped so that it cannot be mistaken for a value: `return unexpected(peer_errc::x);`.
template <class E>
class unexpected
{
  static_assert(traits::valid_error<E>,
                "unexpected<E>: E must be a non-array, non-cv object type that is not itself an unexpected");

public:
  constexpr unexpected(const unexpected&) = default;
  constexpr unexpected(unexpected&&) = default;

  /// Wraps an error.
  /// @param e The error, forwarded to E's constructor.
  template <class Err = E>
    requires(!std::is_same_v<std::remove_cvref_t<Err>, unexpected> &&
             !std::is_same_v<std::remove_cvref_t<Err>, std::in_place_t> && std::is_constructible_v<E, Err>)
  constexpr explicit unexpected(Err&& e) noexcept(std::is_nothrow_constructible_v<E, Err>) : unex_(std::forward<Err>(e))
  {
  }

  /// Builds the error in place.
  /// @param args Arguments for E's constructor.
  template <class... Args>
    requires std::is_constructible_v<E, Args...>
  constexpr explicit unexpected(std::in_place_t, Args&&... args) noexcept(std::is_nothrow_constructible_v<E, Args...>)
      : unex_(std::forward<Args>(args)...)
  {
  }

  /// Builds the error in place from an initializer list and more arguments.
  template <class U, class... Args>
    requires std::is_constructible_v<E, std::initializer_list<U>&, Args...>
  constexpr explicit unexpected(std::in_place_t, std::initializer_list<U> list, Args&&... args) noexcept(
      std::is_nothrow_constructible_v<E, std::initializer_list<U>&, Args...>)
      : unex_(list, std::forward<Args>(args)...)
  {
  }

  constexpr unexpected& operator=(const unexpected&) = default;
  constexpr unexpected& operator=(unexpected&&) = default;

  /// @return The error.
  constexpr const E& error() const& noexcept { return unex_; }
  /// @return The error.
  constexpr E& error() & noexcept { return unex_; }
  /// @return The error, as an rvalue.
  constexpr const E&& error() const&& noexcept { return std::move(unex_); }
  /// @return The error, as an rvalue.
  constexpr E&& error() && noexcept { return std::move(unex_); }

  /// Exchanges the errors of two unexpected.
  constexpr void swap(unexpected& other) noexcept(std::is_nothrow_swappable_v<E>)
  {
    static_assert(std::is_swappable_v<E>, "unexpected<E>::swap needs a swappable E");
    using std::swap;
    swap(unex_, other.unex_);
  }

  /// Exchanges the errors of two unexpected.
  friend constexpr void swap(unexpected& x, unexpected& y) noexcept(noexcept(x.swap(y)))
    requires std::is_swappable_v<E>
  {
    x.swap(y);
  }

  /// @return Whether the two errors compare equal.
  template <class E2>
  friend constexpr bool operator==(const unexpected& x, const unexpected<E2>& y)
  {
    return x.error() == y.error();
  }

private:
  E unex_;
};

template <class E>
unexpected(E) -> unexpected<E>;

/// Either a value of type T or an error of type E, stored in place (no allocation).
///
/// The interface and semantics are those of C++23 std::expected: has_value(), `*`, `->`, value() (throws
/// bad_expected_access<E> when there is an error), error(), value_or(), error_or(), and_then(), transform(),
/// or_else(), transform_error(), emplace(), swap() and comparison with expected, values and unexpected.
template <class T, class E>
class expected
{
  static_assert(traits::valid_value<T>,
                "expected<T, E>: T must be void or an object type other than in_place_t, unexpect_t or unexpected");
  static_assert(traits::valid_error<E>, "expected<T, E>: E must be a valid template argument for unexpected");

  template <class, class>
  friend class expected;

  static constexpr bool trivially_copy_constructible =
      std::is_trivially_copy_constructible_v<T> && std::is_trivially_copy_constructible_v<E>;
  static constexpr bool trivially_move_constructible =
      std::is_trivially_move_constructible_v<T> && std::is_trivially_move_constructible_v<E>;
  static constexpr bool trivially_destructible =
      std::is_trivially_destructible_v<T> && std::is_trivially_destructible_v<E>;
  static constexpr bool copy_assignable =
      std::is_copy_assignable_v<T> && std::is_copy_constructible_v<T> && std::is_copy_assignable_v<E> &&
      std::is_copy_constructible_v<E> &&
      (std::is_nothrow_move_constructible_v<T> || std::is_nothrow_move_constructible_v<E>);
  static constexpr bool move_assignable =
      std::is_move_constructible_v<T> && std::is_move_assignable_v<T> && std::is_move_constructible_v<E> &&
      std::is_move_assignable_v<E> &&
      (std::is_nothrow_move_constructible_v<T> || std::is_nothrow_move_constructible_v<E>);
  // Byte-wise assignment is indistinguishable from the specified one when every operation involved is trivial.
  static constexpr bool trivially_copy_assignable = trivially_copy_constructible && trivially_destructible &&
                                                    std::is_trivially_copy_assignable_v<T> &&
                                                    std::is_trivially_copy_assignable_v<E>;
  static constexpr bool trivially_move_assignable = trivially_move_constructible && trivially_destructible &&
                                                    std::is_trivially_move_assignable_v<T> &&
                                                    std::is_trivially_move_assignable_v<E>;

public:
  using value_type = T;
  using error_type = E;
  using unexpected_type = unexpected<E>;

  /// The same kind of expected with another value type.
  template <class U>
  using rebind = expected<U, error_type>;

  /// Holds a value-initialized T.
  constexpr expected() noexcept(std::is_nothrow_default_constructible_v<T>)
    requires std::is_default_constructible_v<T>
      : val_(), has_val_(true)
  {
  }

  /// Copies the value or the error.
  constexpr expected(const expected&)
    requires(std::is_copy_constructible_v<T> && std::is_copy_constructible_v<E> && trivially_copy_constructible)
  = default;

  /// Copies the value or the error.
  constexpr expected(const expected& rhs) noexcept(std::is_nothrow_copy_constructible_v<T> &&
                                                   std::is_nothrow_copy_constructible_v<E>)
    requires(std::is_copy_constructible_v<T> && std::is_copy_constructible_v<E> && !trivially_copy_constructible)
      : has_val_(rhs.has_val_)
  {
    if (has_val_)
      std::construct_at(std::addressof(val_), rhs.val_);
    else
      std::construct_at(std::addressof(unex_), rhs.unex_);
  }

  /// Moves the value or the error; rhs keeps its state, holding a moved-from object.
  constexpr expected(expected&&)
    requires(std::is_move_constructible_v<T> && std::is_move_constructible_v<E> && trivially_move_constructible)
  = default;

  /// Moves the value or the error; rhs keeps its state, holding a moved-from object.
  constexpr expected(expected&& rhs) noexcept(std::is_nothrow_move_constructible_v<T> &&
                                              std::is_nothrow_move_constructible_v<E>)
    requires(std::is_move_constructible_v<T> && std::is_move_constructible_v<E> && !trivially_move_constructible)
      : has_val_(rhs.has_val_)
  {
    if (has_val_)
      std::construct_at(std::addressof(val_), std::move(rhs.val_));
    else
      std::construct_at(std::addressof(unex_), std::move(rhs.unex_));
  }

  /// Converts from an expected with other value and error types.
  /// @param rhs Its value converts to T, its error to E.
  template <class U, class G>
    requires traits::can_convert<T, E, U, G, const U&, const G&>
  constexpr explicit(!std::is_convertible_v<const U&, T> || !std::is_convertible_v<const G&, E>)
      expected(const expected<U, G>& rhs) noexcept(std::is_nothrow_constructible_v<T, const U&> &&
                                                   std::is_nothrow_constructible_v<E, const G&>)
      : has_val_(rhs.has_val_)
  {
    if (has_val_)
      std::construct_at(std::addressof(val_), rhs.val_);
    else
      std::construct_at(std::addressof(unex_), rhs.unex_);
  }

  /// Converts from an expected with other value and error types, moving from it.
  /// @param rhs Its value converts to T, its error to E.
  template <class U, class G>
    requires traits::can_convert<T, E, U, G, U, G>
  constexpr explicit(!std::is_convertible_v<U, T> || !std::is_convertible_v<G, E>)
      expected(expected<U, G>&& rhs) noexcept(std::is_nothrow_constructible_v<T, U> &&
                                              std::is_nothrow_constructible_v<E, G>)
      : has_val_(rhs.has_val_)
  {
    if (has_val_)
      std::construct_at(std::addressof(val_), std::move(rhs.val_));
    else
      std::construct_at(std::addressof(unex_), std::move(rhs.unex_));
  }

  /// Holds a value built from v.
  /// @param v Forwarded to T's constructor; implicit when U converts implicitly to T.
  template <class U = std::remove_cv_t<T>>
    requires(!std::is_same_v<std::remove_cvref_t<U>, std::in_place_t> &&
             !std::is_same_v<expected, std::remove_cvref_t<U>> && !traits::is_unexpected<std::remove_cvref_t<U>> &&
             std::is_constructible_v<T, U> &&
             (!std::is_same_v<std::remove_cv_t<T>, bool> || !traits::is_expected<std::remove_cvref_t<U>>))
  constexpr explicit(!std::is_convertible_v<U, T>) expected(U&& v) noexcept(std::is_nothrow_constructible_v<T, U>)
      : val_(std::forward<U>(v)), has_val_(true)
  {
  }

  /// Holds an error copied from e.error().
  template <class G>
    requires std::is_constructible_v<E, const G&>
  constexpr explicit(!std::is_convertible_v<const G&, E>)
      expected(const unexpected<G>& e) noexcept(std::is_nothrow_constructible_v<E, const G&>)
      : unex_(e.error()), has_val_(false)
  {
  }

  /// Holds an error moved from e.error().
  template <class G>
    requires std::is_constructible_v<E, G>
  constexpr explicit(!std::is_convertible_v<G, E>)
      expected(unexpected<G>&& e) noexcept(std::is_nothrow_constructible_v<E, G>)
      : unex_(std::move(e).error()), has_val_(false)
  {
  }

  /// Holds a value built in place from args.
  template <class... Args>
    requires std::is_constructible_v<T, Args...>
  constexpr explicit expected(std::in_place_t, Args&&... args) noexcept(std::is_nothrow_constructible_v<T, Args...>)
      : val_(std::forward<Args>(args)...), has_val_(true)
  {
  }

  /// Holds a value built in place from an initializer list and args.
  template <class U, class... Args>
    requires std::is_constructible_v<T, std::initializer_list<U>&, Args...>
  constexpr explicit expected(std::in_place_t, std::initializer_list<U> list, Args&&... args) noexcept(
      std::is_nothrow_constructible_v<T, std::initializer_list<U>&, Args...>)
      : val_(list, std::forward<Args>(args)...), has_val_(true)
  {
  }

  /// Holds an error built in place from args.
  template <class... Args>
    requires std::is_constructible_v<E, Args...>
  constexpr explicit expected(unexpect_t, Args&&... args) noexcept(std::is_nothrow_constructible_v<E, Args...>)
      : unex_(std::forward<Args>(args)...), has_val_(false)
  {
  }

  /// Holds an error built in place from an initializer list and args.
  template <class U, class... Args>
    requires std::is_constructible_v<E, std::initializer_list<U>&, Args...>
  constexpr explicit expected(unexpect_t, std::initializer_list<U> list, Args&&... args) noexcept(
      std::is_nothrow_constructible_v<E, std::initializer_list<U>&, Args...>)
      : unex_(list, std::forward<Args>(args)...), has_val_(false)
  {
  }

  constexpr ~expected()
    requires trivially_destructible
  = default;

  /// Destroys the value or the error, whichever is held.
  constexpr ~expected()
    requires(!trivially_destructible)
  {
    destroy();
  }

  /// Copies rhs's value or error; if the copy throws, *this is unchanged.
  constexpr expected& operator=(const expected&)
    requires(copy_assignable && trivially_copy_assignable)
  = default;

  /// Copies rhs's value or error; if the copy throws, *this is unchanged.
  constexpr expected& operator=(const expected& rhs) noexcept(std::is_nothrow_copy_assignable_v<T> &&
                                                              std::is_nothrow_copy_constructible_v<T> &&
                                                              std::is_nothrow_copy_assignable_v<E> &&
                                                              std::is_nothrow_copy_constructible_v<E>)
    requires(copy_assignable && !trivially_copy_assignable)
  {
    if (has_val_ && rhs.has_val_)
      val_ = rhs.val_;
    else if (has_val_)
      reinit_expected(unex_, val_, rhs.unex_);
    else if (rhs.has_val_)
      reinit_expected(val_, unex_, rhs.val_);
    else
      unex_ = rhs.unex_;
    has_val_ = rhs.has_val_;
    return *this;
  }

  /// Moves rhs's value or error in; if the move throws, *this is unchanged.
  constexpr expected& operator=(expected&&)
    requires(move_assignable && trivially_move_assignable)
  = default;

  /// Moves rhs's value or error in; if the move throws, *this is unchanged.
  constexpr expected& operator=(expected&& rhs) noexcept(std::is_nothrow_move_assignable_v<T> &&
                                                         std::is_nothrow_move_constructible_v<T> &&
                                                         std::is_nothrow_move_assignable_v<E> &&
                                                         std::is_nothrow_move_constructible_v<E>)
    requires(move_assignable && !trivially_move_assignable)
  {
    if (has_val_ && rhs.has_val_)
      val_ = std::move(rhs.val_);
    else if (has_val_)
      reinit_expected(unex_, val_, std::move(rhs.unex_));
    else if (rhs.has_val_)
      reinit_expected(val_, unex_, std::move(rhs.val_));
    else
      unex_ = std::move(rhs.unex_);
    has_val_ = rhs.has_val_;
    return *this;
  }

  /// Assigns a value: assigns to the held value, or replaces the held error.
  template <class U = std::remove_cv_t<T>>
    requires(!std::is_same_v<expected, std::remove_cvref_t<U>> && !traits::is_unexpected<std::remove_cvref_t<U>> &&
             std::is_constructible_v<T, U> && std::is_assignable_v<T&, U> &&
             (std::is_nothrow_constructible_v<T, U> || std::is_nothrow_move_constructible_v<T> ||
              std::is_nothrow_move_constructible_v<E>))
  constexpr expected& operator=(U&& v)
  {
    if (has_val_) {
      val_ = std::forward<U>(v);
    } else {
      reinit_expected(val_, unex_, std::forward<U>(v));
      has_val_ = true;
    }
    return *this;
  }

  /// Assigns an error: assigns to the held error, or replaces the held value.
  template <class G>
    requires(std::is_constructible_v<E, const G&> && std::is_assignable_v<E&, const G&> &&
             (std::is_nothrow_constructible_v<E, const G&> || std::is_nothrow_move_constructible_v<T> ||
              std::is_nothrow_move_constructible_v<E>))
  constexpr expected& operator=(const unexpected<G>& e)
  {
    if (has_val_) {
      reinit_expected(unex_, val_, e.error());
      has_val_ = false;
    } else {
      unex_ = e.error();
    }
    return *this;
  }

  /// Assigns an error, moving it: assigns to the held error, or replaces the held value.
  template <class G>
    requires(std::is_constructible_v<E, G> && std::is_assignable_v<E&, G> &&
             (std::is_nothrow_constructible_v<E, G> || std::is_nothrow_move_constructible_v<T> ||
              std::is_nothrow_move_constructible_v<E>))
  constexpr expected& operator=(unexpected<G>&& e)
  {
    if (has_val_) {
      reinit_expected(unex_, val_, std::move(e).error());
      has_val_ = false;
    } else {
      unex_ = std::move(e).error();
    }
    return *this;
  }

  /// Destroys the value or error and builds a new value in place from args.
  /// @return The new value.
  template <class... Args>
    requires std::is_nothrow_constructible_v<T, Args...>
  constexpr T& emplace(Args&&... args) noexcept
  {
    destroy();
    std::construct_at(std::addressof(val_), std::forward<Args>(args)...);
    has_val_ = true;
    return val_;
  }

  /// Destroys the value or error and builds a new value in place from an initializer list and args.
  /// @return The new value.
  template <class U, class... Args>
    requires std::is_nothrow_constructible_v<T, std::initializer_list<U>&, Args...>
  constexpr T& emplace(std::initializer_list<U> list, Args&&... args) noexcept
  {
    destroy();
    std::construct_at(std::addressof(val_), list, std::forward<Args>(args)...);
    has_val_ = true;
    return val_;
  }

  /// Exchanges contents with rhs; if a move throws, both keep their original state.
  constexpr void swap(expected& rhs) noexcept(std::is_nothrow_move_constructible_v<T> &&
                                              std::is_nothrow_swappable_v<T> &&
                                              std::is_nothrow_move_constructible_v<E> && std::is_nothrow_swappable_v<E>)
    requires(std::is_swappable_v<T> && std::is_swappable_v<E> && std::is_move_constructible_v<T> &&
             std::is_move_constructible_v<E> &&
             (std::is_nothrow_move_constructible_v<T> || std::is_nothrow_move_constructible_v<E>))
  {
    using std::swap;
    if (has_val_ && rhs.has_val_)
      swap(val_, rhs.val_);
    else if (has_val_)
      swap_value_with_error(*this, rhs);
    else if (rhs.has_val_)
      swap_value_with_error(rhs, *this);
    else
      swap(unex_, rhs.unex_);
  }

  /// Exchanges the contents of x and y.
  friend constexpr void swap(expected& x, expected& y) noexcept(noexcept(x.swap(y)))
    requires requires { x.swap(y); }
  {
    x.swap(y);
  }

  /// @return The address of the value. Precondition: has_value().
  constexpr const T* operator->() const noexcept
  {
    PEERGRAPH_ASSERT(has_val_);
    return std::addressof(val_);
  }
  /// @return The address of the value. Precondition: has_value().
  constexpr T* operator->() noexcept
  {
    PEERGRAPH_ASSERT(has_val_);
    return std::addressof(val_);
  }

  /// @return The value. Precondition: has_value().
  constexpr const T& operator*() const& noexcept
  {
    PEERGRAPH_ASSERT(has_val_);
    return val_;
  }
  /// @return The value. Precondition: has_value().
  constexpr T& operator*() & noexcept
  {
    PEERGRAPH_ASSERT(has_val_);
    return val_;
  }
  /// @return The value, as an rvalue. Precondition: has_value().
  constexpr const T&& operator*() const&& noexcept
  {
    PEERGRAPH_ASSERT(has_val_);
    return std::move(val_);
  }
  /// @return The value, as an rvalue. Precondition: has_value().
  constexpr T&& operator*() && noexcept
  {
    PEERGRAPH_ASSERT(has_val_);
    return std::move(val_);
  }

  /// @return has_value().
  constexpr explicit operator bool() const noexcept { return has_val_; }

  /// @return Whether a value (rather than an error) is held.
  [[nodiscard]] constexpr bool has_value() const noexcept { return has_val_; }

  /// @return The value; throws bad_expected_access<E> carrying a copy of the error if there is none.
  constexpr const T& value() const&
  {
    static_assert(std::is_copy_constructible_v<E>, "expected<T, E>::value() needs a copy-constructible E");
    if (!has_val_)
      throw_bad_expected_access<E>(std::as_const(unex_));
    return val_;
  }
  /// @return The value; throws bad_expected_access<E> carrying a copy of the error if there is none.
  constexpr T& value() &
  {
    static_assert(std::is_copy_constructible_v<E>, "expected<T, E>::value() needs a copy-constructible E");
    if (!has_val_)
      throw_bad_expected_access<E>(std::as_const(unex_));
    return val_;
  }
  /// @return The value as an rvalue; throws bad_expected_access<E> carrying the moved error if there is none.
  constexpr const T&& value() const&&
  {
    static_assert(std::is_copy_constructible_v<E> && std::is_constructible_v<E, const E&&>,
                  "expected<T, E>::value() needs a copy-constructible E");
    if (!has_val_)
      throw_bad_expected_access<E>(std::move(unex_));
    return std::move(val_);
  }
  /// @return The value as an rvalue; throws bad_expected_access<E> carrying the moved error if there is none.
  constexpr T&& value() &&
  {
    static_assert(std::is_copy_constructible_v<E> && std::is_constructible_v<E, E&&>,
                  "expected<T, E>::value() needs a copy-constructible E");
    if (!has_val_)
      throw_bad_expected_access<E>(std::move(unex_));
    return std::move(val_);
  }

  /// @return The error. Precondition: !has_value().
  constexpr const E& error() const& noexcept
  {
    PEERGRAPH_ASSERT(!has_val_);
    return unex_;
  }
  /// @return The error. Precondition: !has_value().
  constexpr E& error() & noexcept
  {
    PEERGRAPH_ASSERT(!has_val_);
    return unex_;
  }
  /// @return The error, as an rvalue. Precondition: !has_value().
  constexpr const E&& error() const&& noexcept
  {
    PEERGRAPH_ASSERT(!has_val_);
    return std::move(unex_);
  }
  /// @return The error, as an rvalue. Precondition: !has_value().
  constexpr E&& error() && noexcept
  {
    PEERGRAPH_ASSERT(!has_val_);
    return std::move(unex_);
  }

  /// @param v Returned (converted to T) when there is no value.
  /// @return A copy of the value, or v.
  template <class U>
  [[nodiscard]] constexpr T value_or(U&& v) const&
  {
    static_assert(std::is_copy_constructible_v<T> && std::is_convertible_v<U, T>,
                  "expected<T, E>::value_or(v) needs a copy-constructible T and a v convertible to T");
    return has_val_ ? val_ : static_cast<T>(std::forward<U>(v));
  }
  /// @param v Returned (converted to T) when there is no value.
  /// @return The value moved out, or v.
  template <class U>
  [[nodiscard]] constexpr T value_or(U&& v) &&
  {
    static_assert(std::is_move_constructible_v<T> && std::is_convertible_v<U, T>,
                  "expected<T, E>::value_or(v) needs a move-constructible T and a v convertible to T");
    return has_val_ ? std::move(val_) : static_cast<T>(std::forward<U>(v));
  }

  /// @param e Returned (converted to E) when there is a value.
  /// @return A copy of the error, or e.
  template <class G = E>
  [[nodiscard]] constexpr E error_or(G&& e) const&
  {
    static_assert(std::is_copy_constructible_v<E> && std::is_convertible_v<G, E>,
                  "expected<T, E>::error_or(e) needs a copy-constructible E and an e convertible to E");
    if (has_val_)
      return std::forward<G>(e);
    return unex_;
  }
  /// @param e Returned (converted to E) when there is a value.
  /// @return The error moved out, or e.
  template <class G = E>
  [[nodiscard]] constexpr E error_or(G&& e) &&
  {
    static_assert(std::is_move_constructible_v<E> && std::is_convertible_v<G, E>,
                  "expected<T, E>::error_or(e) needs a move-constructible E and an e convertible to E");
    if (has_val_)
      return std::forward<G>(e);
    return std::move(unex_);
  }

  /// Chains an operation that can fail.
  /// @param f Called with the value; must return an expected<U, E>.
  /// @return f(value), or the error.
  template <class F>
    requires std::is_constructible_v<E, E&>
  [[nodiscard]] constexpr auto and_then(F&& f) &
  {
    return and_then_impl(*this, std::forward<F>(f));
  }
  /// @copydoc and_then
  template <class F>
    requires std::is_constructible_v<E, const E&>
  [[nodiscard]] constexpr auto and_then(F&& f) const&
  {
    return and_then_impl(*this, std::forward<F>(f));
  }
  /// @copydoc and_then
  template <class F>
    requires std::is_constructible_v<E, E&&>
  [[nodiscard]] constexpr auto and_then(F&& f) &&
  {
    return and_then_impl(std::move(*this), std::forward<F>(f));
  }
  /// @copydoc and_then
  template <class F>
    requires std::is_constructible_v<E, const E&&>
  [[nodiscard]] constexpr auto and_then(F&& f) const&&
  {
    return and_then_impl(std::move(*this), std::forward<F>(f));
  }

  /// Recovers from an error.
  /// @param f Called with the error; must return an expected<T, G>.
  /// @return The value, or f(error).
  template <class F>
    requires std::is_constructible_v<T, T&>
  [[nodiscard]] constexpr auto or_else(F&& f) &
  {
    return or_else_impl(*this, std::forward<F>(f));
  }
  /// @copydoc or_else
  template <class F>
    requires std::is_constructible_v<T, const T&>
  [[nodiscard]] constexpr auto or_else(F&& f) const&
  {
    return or_else_impl(*this, std::forward<F>(f));
  }
  /// @copydoc or_else
  template <class F>
    requires std::is_constructible_v<T, T&&>
  [[nodiscard]] constexpr auto or_else(F&& f) &&
  {
    return or_else_impl(std::move(*this), std::forward<F>(f));
  }
  /// @copydoc or_else
  template <class F>
    requires std::is_constructible_v<T, const T&&>
  [[nodiscard]] constexpr auto or_else(F&& f) const&&
  {
    return or_else_impl(std::move(*this), std::forward<F>(f));
  }

  /// Maps the value.
  /// @param f Called with the value; its result (possibly void) becomes the new value.
  /// @return expected<result of f, E> holding f(value), or the error.
  template <class F>
    requires std::is_constructible_v<E, E&>
  [[nodiscard]] constexpr auto transform(F&& f) &
  {
    return transform_impl(*this, std::forward<F>(f));
  }
  /// @copydoc transform
  template <class F>
    requires std::is_constructible_v<E, const E&>
  [[nodiscard]] constexpr auto transform(F&& f) const&
  {
    return transform_impl(*this, std::forward<F>(f));
  }
  /// @copydoc transform
  template <class F>
    requires std::is_constructible_v<E, E&&>
  [[nodiscard]] constexpr auto transform(F&& f) &&
  {
    return transform_impl(std::move(*this), std::forward<F>(f));
  }
  /// @copydoc transform
  template <class F>
    requires std::is_constructible_v<E, const E&&>
  [[nodiscard]] constexpr auto transform(F&& f) const&&
  {
    return transform_impl(std::move(*this), std::forward<F>(f));
  }

  /// Maps the error.
  /// @param f Called with the error; its result becomes the new error.
  /// @return expected<T, result of f> holding the value, or f(error).
  template <class F>
    requires std::is_constructible_v<T, T&>
  [[nodiscard]] constexpr auto transform_error(F&& f) &
  {
    return transform_error_impl(*this, std::forward<F>(f));
  }
  /// @copydoc transform_error
  template <class F>
    requires std::is_constructible_v<T, const T&>
  [[nodiscard]] constexpr auto transform_error(F&& f) const&
  {
    return transform_error_impl(*this, std::forward<F>(f));
  }
  /// @copydoc transform_error
  template <class F>
    requires std::is_constructible_v<T, T&&>
  [[nodiscard]] constexpr auto transform_error(F&& f) &&
  {
    return transform_error_impl(std::move(*this), std::forward<F>(f));
  }
  /// @copydoc transform_error
  template <class F>
    requires std::is_constructible_v<T, const T&&>
  [[nodiscard]] constexpr auto transform_error(F&& f) const&&
  {
    return transform_error_impl(std::move(*this), std::forward<F>(f));
  }

  /// @return Whether both hold equal values, or both hold equal errors.
  template <class T2, class E2>
    requires(!std::is_void_v<T2>)
  friend constexpr bool operator==(const expected& x, const expected<T2, E2>& y)
  {
    if (x.has_value() != y.has_value())
      return false;
    if (x.has_value())
      return static_cast<bool>(*x == *y);
    return static_cast<bool>(x.error() == y.error());
  }

  /// @return Whether x holds a value equal to v.
  template <class T2>
  friend constexpr bool operator==(const expected& x, const T2& v)
  {
    return x.has_value() && static_cast<bool>(*x == v);
  }

  /// @return Whether x holds an error equal to e.error().
  template <class E2>
  friend constexpr bool operator==(const expected& x, const unexpected<E2>& e)
  {
    return !x.has_value() && static_cast<bool>(x.error() == e.error());
  }

private:
  template <class F, class... Args>
  constexpr explicit expected(invoke_value_tag, F&& f, Args&&... args)
      : val_(std::invoke(std::forward<F>(f), std::forward<Args>(args)...)), has_val_(true)
  {
  }

  template <class F, class... Args>
  constexpr explicit expected(invoke_error_tag, F&& f, Args&&... args)
      : unex_(std::invoke(std::forward<F>(f), std::forward<Args>(args)...)), has_val_(false)
  {
  }

  constexpr void destroy() noexcept
  {
    if (has_val_)
      std::destroy_at(std::addressof(val_));
    else
      std::destroy_at(std::addressof(unex_));
  }

  // with_value holds a value, with_error an error; afterwards the other way round. [expected.object.swap] table 64.
  static constexpr void swap_value_with_error(expected& with_value, expected& with_error)
  {
    if constexpr (std::is_nothrow_move_constructible_v<E>) {
      E tmp(std::move(with_error.unex_));
      std::destroy_at(std::addressof(with_error.unex_));
      rollback_guard guard([&] { std::construct_at(std::addressof(with_error.unex_), std::move(tmp)); });
      std::construct_at(std::addressof(with_error.val_), std::move(with_value.val_));
      guard.dismiss();
      std::destroy_at(std::addressof(with_value.val_));
      std::construct_at(std::addressof(with_value.unex_), std::move(tmp));
    } else {
      T tmp(std::move(with_value.val_));
      std::destroy_at(std::addressof(with_value.val_));
      rollback_guard guard([&] { std::construct_at(std::addressof(with_value.val_), std::move(tmp)); });
      std::construct_at(std::addressof(with_value.unex_), std::move(with_error.unex_));
      guard.dismiss();
      std::destroy_at(std::addressof(with_error.unex_));
      std::construct_at(std::addressof(with_error.val_), std::move(tmp));
    }
    with_value.has_val_ = false;
    with_error.has_val_ = true;
  }

  // Self is expected with the caller's const and value category; the value or error is passed on with the same.
  template <class Self, class Member>
  static constexpr decltype(auto) forward_member(Member& m) noexcept
  {
    if constexpr (std::is_lvalue_reference_v<Self>)
      return static_cast<Member&>(m);
    else
      return static_cast<Member&&>(m);
  }

  template <class Self, class F>
  static constexpr auto and_then_impl(Self&& self, F&& f)
  {
    using value_ref = decltype(forward_member<Self>(self.val_));
    using result = std::remove_cvref_t<std::invoke_result_t<F, value_ref>>;
    static_assert(traits::is_expected<result>, "and_then(f): f(value) must return an expected");
    static_assert(std::is_same_v<typename result::error_type, E>,
                  "and_then(f): f(value) must return an expected with the same error type");
    if (self.has_val_)
      return std::invoke(std::forward<F>(f), forward_member<Self>(self.val_));
    return result(unexpect, forward_member<Self>(self.unex_));
  }

  template <class Self, class F>
  static constexpr auto or_else_impl(Self&& self, F&& f)
  {
    using error_ref = decltype(forward_member<Self>(self.unex_));
    using result = std::remove_cvref_t<std::invoke_result_t<F, error_ref>>;
    static_assert(traits::is_expected<result>, "or_else(f): f(error) must return an expected");
    static_assert(std::is_same_v<typename result::value_type, T>,
                  "or_else(f): f(error) must return an expected with the same value type");
    if (self.has_val_)
      return result(std::in_place, forward_member<Self>(self.val_));
    return std::invoke(std::forward<F>(f), forward_member<Self>(self.unex_));
  }

  template <class Self, class F>
  static constexpr auto transform_impl(Self&& self, F&& f)
  {
    using value_ref = decltype(forward_member<Self>(self.val_));
    using mapped = std::remove_cv_t<std::invoke_result_t<F, value_ref>>;
    static_assert(std::is_void_v<mapped> || traits::valid_value<mapped>,
                  "transform(f): f(value) must return void or a type expected can hold");
    using result = expected<mapped, E>;
    if (!self.has_val_)
      return result(unexpect, forward_member<Self>(self.unex_));
    if constexpr (std::is_void_v<mapped>) {
      std::invoke(std::forward<F>(f), forward_member<Self>(self.val_));
      return result();
    } else {
      return result(invoke_value_tag{}, std::forward<F>(f), forward_member<Self>(self.val_));
    }
  }

  template <class Self, class F>
  static constexpr auto transform_error_impl(Self&& self, F&& f)
  {
    using error_ref = decltype(forward_member<Self>(self.unex_));
    using mapped = std::remove_cv_t<std::invoke_result_t<F, error_ref>>;
    static_assert(traits::valid_error<mapped>, "transform_error(f): f(error) must return a type unexpected can hold");
    using result = expected<T, mapped>;
    if (self.has_val_)
      return result(std::in_place, forward_member<Self>(self.val_));
    return result(invoke_error_tag{}, std::forward<F>(f), forward_member<Self>(self.unex_));
  }

  union
  {
    T val_;
    E unex_;
  };
  bool has_val_;
};

/// expected<void, E>: success without a value, or an error of type E.
template <class T, class E>
  requires std::is_void_v<T>
class expected<T, E>
{
  static_assert(traits::valid_error<E>, "expected<void, E>: E must be a valid template argument for unexpected");

  template <class, class>
  friend class expected;

  static constexpr bool copy_assignable = std::is_copy_assignable_v<E> && std::is_copy_constructible_v<E>;
  static constexpr bool move_assignable = std::is_move_assignable_v<E> && std::is_move_constructible_v<E>;
  static constexpr bool trivially_copy_assignable = std::is_trivially_copy_constructible_v<E> &&
                                                    std::is_trivially_copy_assignable_v<E> &&
                                                    std::is_trivially_destructible_v<E>;
  static constexpr bool trivially_move_assignable = std::is_trivially_move_constructible_v<E> &&
                                                    std::is_trivially_move_assignable_v<E> &&
                                                    std::is_trivially_destructible_v<E>;

public:
  using value_type = T;
  using error_type = E;
  using unexpected_type = unexpected<E>;

  /// The same kind of expected with another value type.
  template <class U>
  using rebind = expected<U, error_type>;

  /// Holds success.
  constexpr expected() noexcept : empty_(), has_val_(true) {}

  /// Copies the success or the error.
  constexpr expected(const expected&)
    requires(std::is_copy_constructible_v<E> && std::is_trivially_copy_constructible_v<E>)
  = default;

  /// Copies the success or the error.
  constexpr expected(const expected& rhs) noexcept(std::is_nothrow_copy_constructible_v<E>)
    requires(std::is_copy_constructible_v<E> && !std::is_trivially_copy_constructible_v<E>)
      : empty_(), has_val_(rhs.has_val_)
  {
    if (!has_val_)
      std::construct_at(std::addressof(unex_), rhs.unex_);
  }

  /// Moves the success or the error.
  constexpr expected(expected&&)
    requires(std::is_move_constructible_v<E> && std::is_trivially_move_constructible_v<E>)
  = default;

  /// Moves the success or the error.
  constexpr expected(expected&& rhs) noexcept(std::is_nothrow_move_constructible_v<E>)
    requires(std::is_move_constructible_v<E> && !std::is_trivially_move_constructible_v<E>)
      : empty_(), has_val_(rhs.has_val_)
  {
    if (!has_val_)
      std::construct_at(std::addressof(unex_), std::move(rhs.unex_));
  }

  /// Converts from an expected<void, G>.
  template <class U, class G>
    requires traits::can_convert_void<T, E, U, G, const G&>
  constexpr explicit(!std::is_convertible_v<const G&, E>)
      expected(const expected<U, G>& rhs) noexcept(std::is_nothrow_constructible_v<E, const G&>)
      : empty_(), has_val_(rhs.has_val_)
  {
    if (!has_val_)
      std::construct_at(std::addressof(unex_), rhs.unex_);
  }

  /// Converts from an expected<void, G>, moving its error.
  template <class U, class G>
    requires traits::can_convert_void<T, E, U, G, G>
  constexpr explicit(!std::is_convertible_v<G, E>)
      expected(expected<U, G>&& rhs) noexcept(std::is_nothrow_constructible_v<E, G>)
      : empty_(), has_val_(rhs.has_val_)
  {
    if (!has_val_)
      std::construct_at(std::addressof(unex_), std::move(rhs.unex_));
  }

  /// Holds an error copied from e.error().
  template <class G>
    requires std::is_constructible_v<E, const G&>
  constexpr explicit(!std::is_convertible_v<const G&, E>)
      expected(const unexpected<G>& e) noexcept(std::is_nothrow_constructible_v<E, const G&>)
      : unex_(e.error()), has_val_(false)
  {
  }

  /// Holds an error moved from e.error().
  template <class G>
    requires std::is_constructible_v<E, G>
  constexpr explicit(!std::is_convertible_v<G, E>)
      expected(unexpected<G>&& e) noexcept(std::is_nothrow_constructible_v<E, G>)
      : unex_(std::move(e).error()), has_val_(false)
  {
  }

  /// Holds success.
  constexpr explicit expected(std::in_place_t) noexcept : empty_(), has_val_(true) {}

  /// Holds an error built in place from args.
  template <class... Args>
    requires std::is_constructible_v<E, Args...>
  constexpr explicit expected(unexpect_t, Args&&... args) noexcept(std::is_nothrow_constructible_v<E, Args...>)
      : unex_(std::forward<Args>(args)...), has_val_(false)
  {
  }

  /// Holds an error built in place from an initializer list and args.
  template <class U, class... Args>
    requires std::is_constructible_v<E, std::initializer_list<U>&, Args...>
  constexpr explicit expected(unexpect_t, std::initializer_list<U> list, Args&&... args) noexcept(
      std::is_nothrow_constructible_v<E, std::initializer_list<U>&, Args...>)
      : unex_(list, std::forward<Args>(args)...), has_val_(false)
  {
  }

  constexpr ~expected()
    requires std::is_trivially_destructible_v<E>
  = default;

  /// Destroys the error, if one is held.
  constexpr ~expected()
    requires(!std::is_trivially_destructible_v<E>)
  {
    if (!has_val_)
      std::destroy_at(std::addressof(unex_));
  }

  /// Copies rhs's state; if copying the error throws, *this is unchanged.
  constexpr expected& operator=(const expected&)
    requires(copy_assignable && trivially_copy_assignable)
  = default;

  /// Copies rhs's state; if copying the error throws, *this is unchanged.
  constexpr expected& operator=(const expected& rhs) noexcept(std::is_nothrow_copy_assignable_v<E> &&
                                                              std::is_nothrow_copy_constructible_v<E>)
    requires(copy_assignable && !trivially_copy_assignable)
  {
    if (has_val_ && !rhs.has_val_)
      set_error(rhs.unex_);
    else if (!has_val_ && rhs.has_val_)
      set_success();
    else if (!has_val_)
      unex_ = rhs.unex_;
    return *this;
  }

  /// Moves rhs's state in; if moving the error throws, *this is unchanged.
  constexpr expected& operator=(expected&&)
    requires(move_assignable && trivially_move_assignable)
  = default;

  /// Moves rhs's state in; if moving the error throws, *this is unchanged.
  constexpr expected& operator=(expected&& rhs) noexcept(std::is_nothrow_move_assignable_v<E> &&
                                                         std::is_nothrow_move_constructible_v<E>)
    requires(move_assignable && !trivially_move_assignable)
  {
    if (has_val_ && !rhs.has_val_)
      set_error(std::move(rhs.unex_));
    else if (!has_val_ && rhs.has_val_)
      set_success();
    else if (!has_val_)
      unex_ = std::move(rhs.unex_);
    return *this;
  }

  /// Assigns an error.
  template <class G>
    requires(std::is_constructible_v<E, const G&> && std::is_assignable_v<E&, const G&>)
  constexpr expected& operator=(const unexpected<G>& e)
  {
    if (has_val_)
      set_error(e.error());
    else
      unex_ = e.error();
    return *this;
  }

  /// Assigns an error, moving it.
  template <class G>
    requires(std::is_constructible_v<E, G> && std::is_assignable_v<E&, G>)
  constexpr expected& operator=(unexpected<G>&& e)
  {
    if (has_val_)
      set_error(std::move(e).error());
    else
      unex_ = std::move(e).error();
    return *this;
  }

  /// Destroys the error, if any, and holds success.
  constexpr void emplace() noexcept
  {
    if (!has_val_)
      set_success();
  }

  /// Exchanges contents with rhs.
  constexpr void swap(expected& rhs) noexcept(std::is_nothrow_move_constructible_v<E> && std::is_nothrow_swappable_v<E>)
    requires(std::is_swappable_v<E> && std::is_move_constructible_v<E>)
  {
    if (has_val_ && !rhs.has_val_) {
      set_error(std::move(rhs.unex_));
      rhs.set_success();
    } else if (!has_val_ && rhs.has_val_) {
      rhs.set_error(std::move(unex_));
      set_success();
    } else if (!has_val_) {
      using std::swap;
      swap(unex_, rhs.unex_);
    }
  }

  /// Exchanges the contents of x and y.
  friend constexpr void swap(expected& x, expected& y) noexcept(noexcept(x.swap(y)))
    requires requires { x.swap(y); }
  {
    x.swap(y);
  }

  /// @return has_value().
  constexpr explicit operator bool() const noexcept { return has_val_; }

  /// @return Whether success (rather than an error) is held.
  [[nodiscard]] constexpr bool has_value() const noexcept { return has_val_; }

  /// Does nothing. Precondition: has_value().
  constexpr void operator*() const noexcept { PEERGRAPH_ASSERT(has_val_); }

  /// Throws bad_expected_access<E> carrying a copy of the error if there is one.
  constexpr void value() const&
  {
    static_assert(std::is_copy_constructible_v<E>, "expected<void, E>::value() needs a copy-constructible E");
    if (!has_val_)
      throw_bad_expected_access<E>(unex_);
  }
  /// Throws bad_expected_access<E> carrying the moved error if there is one.
  constexpr void value() &&
  {
    static_assert(std::is_copy_constructible_v<E> && std::is_move_constructible_v<E>,
                  "expected<void, E>::value() needs a copy-constructible E");
    if (!has_val_)
      throw_bad_expected_access<E>(std::move(unex_));
  }

  /// @return The error. Precondition: !has_value().
  constexpr const E& error() const& noexcept
  {
    PEERGRAPH_ASSERT(!has_val_);
    return unex_;
  }
  /// @return The error. Precondition: !has_value().
  constexpr E& error() & noexcept
  {
    PEERGRAPH_ASSERT(!has_val_);
    return unex_;
  }
  /// @return The error, as an rvalue. Precondition: !has_value().
  constexpr const E&& error() const&& noexcept
  {
    PEERGRAPH_ASSERT(!has_val_);
    return std::move(unex_);
  }
  /// @return The error, as an rvalue. Precondition: !has_value().
  constexpr E&& error() && noexcept
  {
    PEERGRAPH_ASSERT(!has_val_);
    return std::move(unex_);
  }

  /// @param e Returned (converted to E) on success.
  /// @return A copy of the error, or e.
  template <class G = E>
  [[nodiscard]] constexpr E error_or(G&& e) const&
  {
    static_assert(std::is_copy_constructible_v<E> && std::is_convertible_v<G, E>,
                  "expected<void, E>::error_or(e) needs a copy-constructible E and an e convertible to E");
    if (has_val_)
      return std::forward<G>(e);
    return unex_;
  }
  /// @param e Returned (converted to E) on success.
  /// @return The error moved out, or e.
  template <class G = E>
  [[nodiscard]] constexpr E error_or(G&& e) &&
  {
    static_assert(std::is_move_constructible_v<E> && std::is_convertible_v<G, E>,
                  "expected<void, E>::error_or(e) needs a move-constructible E and an e convertible to E");
    if (has_val_)
      return std::forward<G>(e);
    return std::move(unex_);
  }

  /// Chains an operation that can fail.
  /// @param f Called with no argument on success; must return an expected<U, E>.
  /// @return f(), or the error.
  template <class F>
    requires std::is_constructible_v<E, E&>
  [[nodiscard]] constexpr auto and_then(F&& f) &
  {
    return and_then_impl(*this, std::forward<F>(f));
  }
  /// @copydoc and_then
  template <class F>
    requires std::is_constructible_v<E, const E&>
  [[nodiscard]] constexpr auto and_then(F&& f) const&
  {
    return and_then_impl(*this, std::forward<F>(f));
  }
  /// @copydoc and_then
  template <class F>
    requires std::is_constructible_v<E, E&&>
  [[nodiscard]] constexpr auto and_then(F&& f) &&
  {
    return and_then_impl(std::move(*this), std::forward<F>(f));
  }
  /// @copydoc and_then
  template <class F>
    requires std::is_constructible_v<E, const E&&>
  [[nodiscard]] constexpr auto and_then(F&& f) const&&
  {
    return and_then_impl(std::move(*this), std::forward<F>(f));
  }

  /// Recovers from an error.
  /// @param f Called with the error; must return an expected<void, G>.
  /// @return Success, or f(error).
  template <class F>
  [[nodiscard]] constexpr auto or_else(F&& f) &
  {
    return or_else_impl(*this, std::forward<F>(f));
  }
  /// @copydoc or_else
  template <class F>
  [[nodiscard]] constexpr auto or_else(F&& f) const&
  {
    return or_else_impl(*this, std::forward<F>(f));
  }
  /// @copydoc or_else
  template <class F>
  [[nodiscard]] constexpr auto or_else(F&& f) &&
  {
    return or_else_impl(std::move(*this), std::forward<F>(f));
  }
  /// @copydoc or_else
  template <class F>
  [[nodiscard]] constexpr auto or_else(F&& f) const&&
  {
    return or_else_impl(std::move(*this), std::forward<F>(f));
  }

  /// Maps success to a value.
  /// @param f Called with no argument on success; its result (possibly void) becomes the value.
  /// @return expected<result of f, E> holding f(), or the error.
  template <class F>
    requires std::is_constructible_v<E, E&>
  [[nodiscard]] constexpr auto transform(F&& f) &
  {
    return transform_impl(*this, std::forward<F>(f));
  }
  /// @copydoc transform
  template <class F>
    requires std::is_constructible_v<E, const E&>
  [[nodiscard]] constexpr auto transform(F&& f) const&
  {
    return transform_impl(*this, std::forward<F>(f));
  }
  /// @copydoc transform
  template <class F>
    requires std::is_constructible_v<E, E&&>
  [[nodiscard]] constexpr auto transform(F&& f) &&
  {
    return transform_impl(std::move(*this), std::forward<F>(f));
  }
  /// @copydoc transform
  template <class F>
    requires std::is_constructible_v<E, const E&&>
  [[nodiscard]] constexpr auto transform(F&& f) const&&
  {
    return transform_impl(std::move(*this), std::forward<F>(f));
  }

  /// Maps the error.
  /// @param f Called with the error; its result becomes the new error.
  /// @return expected<void, result of f> holding success, or f(error).
  template <class F>
  [[nodiscard]] constexpr auto transform_error(F&& f) &
  {
    return transform_error_impl(*this, std::forward<F>(f));
  }
  /// @copydoc transform_error
  template <class F>
  [[nodiscard]] constexpr auto transform_error(F&& f) const&
  {
    return transform_error_impl(*this, std::forward<F>(f));
  }
  /// @copydoc transform_error
  template <class F>
  [[nodiscard]] constexpr auto transform_error(F&& f) &&
  {
    return transform_error_impl(std::move(*this), std::forward<F>(f));
  }
  /// @copydoc transform_error
  template <class F>
  [[nodiscard]] constexpr auto transform_error(F&& f) const&&
  {
    return transform_error_impl(std::move(*this), std::forward<F>(f));
  }

  /// @return Whether both hold success, or both hold equal errors.
  template <class T2, class E2>
    requires std::is_void_v<T2>
  friend constexpr bool operator==(const expected& x, const expected<T2, E2>& y)
  {
    if (x.has_value() != y.has_value())
      return false;
    return x.has_value() || static_cast<bool>(x.error() == y.error());
  }

  /// @return Whether x holds an error equal to e.error().
  template <class E2>
  friend constexpr bool operator==(const expected& x, const unexpected<E2>& e)
  {
    return !x.has_value() && static_cast<bool>(x.error() == e.error());
  }

private:
  template <class F, class... Args>
  constexpr explicit expected(invoke_error_tag, F&& f, Args&&... args)
      : unex_(std::invoke(std::forward<F>(f), std::forward<Args>(args)...)), has_val_(false)
  {
  }

  // Success to error; if building the error throws, success stays.
  template <class... Args>
  constexpr void set_error(Args&&... args)
  {
    std::construct_at(std::addressof(unex_), std::forward<Args>(args)...);
    has_val_ = false;
  }

  // Error to success.
  constexpr void set_success() noexcept
  {
    std::destroy_at(std::addressof(unex_));
    std::construct_at(std::addressof(empty_));
    has_val_ = true;
  }

  template <class Self, class Member>
  static constexpr decltype(auto) forward_member(Member& m) noexcept
  {
    if constexpr (std::is_lvalue_reference_v<Self>)
      return static_cast<Member&>(m);
    else
      return static_cast<Member&&>(m);
  }

  template <class Self, class F>
  static constexpr auto and_then_impl(Self&& self, F&& f)
  {
    using result = std::remove_cvref_t<std::invoke_result_t<F>>;
    static_assert(traits::is_expected<result>, "and_then(f): f() must return an expected");
    static_assert(std::is_same_v<typename result::error_type, E>,
                  "and_then(f): f() must return an expected with the same error type");
    if (self.has_val_)
      return std::invoke(std::forward<F>(f));
    return result(unexpect, forward_member<Self>(self.unex_));
  }

  template <class Self, class F>
  static constexpr auto or_else_impl(Self&& self, F&& f)
  {
    using error_ref = decltype(forward_member<Self>(self.unex_));
    using result = std::remove_cvref_t<std::invoke_result_t<F, error_ref>>;
    static_assert(traits::is_expected<result>, "or_else(f): f(error) must return an expected");
    static_assert(std::is_same_v<typename result::value_type, T>,
                  "or_else(f): f(error) must return an expected with the same (void) value type");
    if (self.has_val_)
      return result();
    return std::invoke(std::forward<F>(f), forward_member<Self>(self.unex_));
  }

  template <class Self, class F>
  static constexpr auto transform_impl(Self&& self, F&& f)
  {
    using mapped = std::remove_cv_t<std::invoke_result_t<F>>;
    static_assert(std::is_void_v<mapped> || traits::valid_value<mapped>,
                  "transform(f): f() must return void or a type expected can hold");
    using result = expected<mapped, E>;
    if (!self.has_val_)
      return result(unexpect, forward_member<Self>(self.unex_));
    if constexpr (std::is_void_v<mapped>) {
      std::invoke(std::forward<F>(f));
      return result();
    } else {
      return result(invoke_value_tag{}, std::forward<F>(f));
    }
  }

  template <class Self, class F>
  static constexpr auto transform_error_impl(Self&& self, F&& f)
  {
    using error_ref = decltype(forward_member<Self>(self.unex_));
    using mapped = std::remove_cv_t<std::invoke_result_t<F, error_ref>>;
    static_assert(traits::valid_error<mapped>, "transform_error(f): f(error) must return a type unexpected can hold");
    using result = expected<T, mapped>;
    if (self.has_val_)
      return result();
    return result(invoke_error_tag{}, std::forward<F>(f), forward_member<Self>(self.unex_));
  }

  union
  {
    empty_value empty_;
    E unex_;
  };
  bool has_val_;
};

} // namespace peergraph::detail::expected_impl
