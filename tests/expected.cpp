//
// tests/expected.cpp
// ~~~~~~~~~~~~~~~~~~
// peergraph::expected and the project's own implementation, run through the same test bodies.
//

// Test that the header is self-contained.
#include <peergraph/expected.hpp>

#include <peergraph/error.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <exception>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// The public names are std::expected's in a C++23 build whose library has it; that library's expected may predate the
// monadic operations and error_or (libstdc++ 12 does), so those tests run on it only when it has them.
#if !PEERGRAPH_HAS_STD_EXPECTED || (defined(__cpp_lib_expected) && __cpp_lib_expected >= 202211L)
#define PEERGRAPH_TEST_PUBLIC_HAS_MONADIC 1
#else
#define PEERGRAPH_TEST_PUBLIC_HAS_MONADIC 0
#endif

namespace {

namespace own = peergraph::detail::expected_impl;

// Each implementation is a family of templates; the test bodies are written once against a family.
struct own_impl
{
  template <class T, class E>
  using expected = own::expected<T, E>;
  template <class E>
  using unexpected = own::unexpected<E>;
  template <class E>
  using bad_expected_access = own::bad_expected_access<E>;
  using unexpect_t = own::unexpect_t;
  static constexpr unexpect_t unexpect = own::unexpect;
  static constexpr bool has_monadic = true;
  static constexpr bool is_own = true;
};

struct public_api
{
  template <class T, class E>
  using expected = peergraph::expected<T, E>;
  template <class E>
  using unexpected = peergraph::unexpected<E>;
  template <class E>
  using bad_expected_access = peergraph::bad_expected_access<E>;
  using unexpect_t = peergraph::unexpect_t;
  static constexpr unexpect_t unexpect = peergraph::unexpect;
  static constexpr bool has_monadic = PEERGRAPH_TEST_PUBLIC_HAS_MONADIC != 0;
  static constexpr bool is_own = PEERGRAPH_HAS_STD_EXPECTED == 0;
};

template <class F, class T, class E>
using expected_t = typename F::template expected<T, E>;
template <class F, class E>
using unexpected_t = typename F::template unexpected<E>;
template <class F, class E>
using bad_access_t = typename F::template bad_expected_access<E>;

// Counts constructions and destructions of every instance, to catch leaks and double destruction.
struct counters
{
  int constructed = 0;
  int destroyed = 0;
  int copied = 0;
  int moved = 0;
};

class counted
{
public:
  static inline counters stats{};
  static void reset() { stats = counters{}; }
  static int live() { return stats.constructed - stats.destroyed; }

  explicit counted(int v) noexcept : value_(v) { ++stats.constructed; }
  counted(const counted& other) noexcept : value_(other.value_)
  {
    ++stats.constructed;
    ++stats.copied;
  }
  counted(counted&& other) noexcept : value_(other.value_)
  {
    other.value_ = -1;
    ++stats.constructed;
    ++stats.moved;
  }
  counted& operator=(const counted& other) noexcept = default;
  counted& operator=(counted&& other) noexcept
  {
    value_ = std::exchange(other.value_, -1);
    return *this;
  }
  ~counted() { ++stats.destroyed; }

  int value() const noexcept { return value_; }

private:
  int value_;
};

// Copying and moving throw while `armed` is set: exercises the strong exception guarantee.
struct throwing
{
  static inline bool armed = false;

  explicit throwing(int v) : value(v) {}
  throwing(const throwing& other) : value(other.value)
  {
    if (armed)
      throw std::runtime_error("copy");
  }
  throwing(throwing&& other) noexcept(false) : value(other.value)
  {
    if (armed)
      throw std::runtime_error("move");
  }
  throwing& operator=(const throwing&) = default;
  throwing& operator=(throwing&&) = default;
  ~throwing() = default;

  int value;
};

struct no_default
{
  explicit no_default(int v) : value(v) {}
  int value;
};

struct explicit_from_int
{
  constexpr explicit explicit_from_int(int v) : value(v) {}
  int value;
};

// Neither copyable nor movable: only guaranteed copy elision can put one into an expected.
struct pinned
{
  explicit pinned(int v) : value(v) {}
  pinned(const pinned&) = delete;
  pinned& operator=(const pinned&) = delete;
  int value;
};

// Nothrow-constructible from an initializer list, as emplace requires.
struct list_sum
{
  constexpr list_sum(std::initializer_list<int> list, int extra) noexcept : total(extra)
  {
    for (int v : list)
      total += v;
  }
  int total;
};

struct base
{
  virtual ~base() = default;
  virtual int id() const { return 1; }
};
struct derived : base
{
  int id() const override { return 2; }
};

// A literal type with user-provided copy, assignment and destructor: drives the non-trivial paths in constexpr.
struct literal
{
  constexpr explicit literal(int v) noexcept : value(v) {}
  constexpr literal(const literal& other) : value(other.value) {}
  constexpr literal(literal&& other) noexcept : value(other.value) { other.value = 0; }
  constexpr literal& operator=(const literal& other)
  {
    value = other.value;
    return *this;
  }
  constexpr literal& operator=(literal&& other) noexcept
  {
    value = other.value;
    other.value = 0;
    return *this;
  }
  constexpr ~literal() { value = -1; }
  int value;
};

enum class category
{
  lvalue,
  const_lvalue,
  rvalue,
  const_rvalue
};

template <class Ref>
constexpr category category_of()
{
  constexpr bool is_const = std::is_const_v<std::remove_reference_t<Ref>>;
  if constexpr (std::is_lvalue_reference_v<Ref>)
    return is_const ? category::const_lvalue : category::lvalue;
  else
    return is_const ? category::const_rvalue : category::rvalue;
}

// Reports the value category it was called with.
struct probe
{
  template <class Arg>
  constexpr category operator()(Arg&&) const
  {
    return category_of<Arg&&>();
  }
};

} // namespace

TYPE_TO_STRING(own_impl);
TYPE_TO_STRING(public_api);

#define PEERGRAPH_BOTH_IMPLS own_impl, public_api

TEST_CASE("peergraph::expected names std::expected exactly when the standard library provides it")
{
#if PEERGRAPH_HAS_STD_EXPECTED
  static_assert(std::is_same_v<peergraph::expected<int, long>, std::expected<int, long>>);
  static_assert(std::is_same_v<peergraph::expected<void, long>, std::expected<void, long>>);
  static_assert(std::is_same_v<peergraph::unexpected<long>, std::unexpected<long>>);
  static_assert(std::is_same_v<peergraph::bad_expected_access<long>, std::bad_expected_access<long>>);
  static_assert(std::is_same_v<peergraph::bad_expected_access<void>, std::bad_expected_access<void>>);
  static_assert(std::is_same_v<peergraph::unexpect_t, std::unexpect_t>);
  CHECK(&peergraph::unexpect == &std::unexpect);
  MESSAGE("peergraph::expected is std::expected");
#else
  static_assert(std::is_same_v<peergraph::expected<int, long>, own::expected<int, long>>);
  static_assert(std::is_same_v<peergraph::expected<void, long>, own::expected<void, long>>);
  static_assert(std::is_same_v<peergraph::unexpected<long>, own::unexpected<long>>);
  static_assert(std::is_same_v<peergraph::bad_expected_access<long>, own::bad_expected_access<long>>);
  static_assert(std::is_same_v<peergraph::bad_expected_access<void>, own::bad_expected_access<void>>);
  static_assert(std::is_same_v<peergraph::unexpect_t, own::unexpect_t>);
  CHECK(&peergraph::unexpect == &own::unexpect);
  MESSAGE("peergraph::expected is the project's own implementation");
#endif
}

TEST_CASE("unexpected deduces its error type, so `return unexpected(e);` works")
{
  auto own_error = own::unexpected(3);
  static_assert(std::is_same_v<decltype(own_error), own::unexpected<int>>);
  auto public_error = peergraph::unexpected(peergraph::peer_errc::would_block);
  static_assert(std::is_same_v<decltype(public_error), peergraph::unexpected<peergraph::peer_errc>>);

  auto send_result = [](bool fail) -> peergraph::expected<std::size_t, peergraph::peer_error> {
    if (fail)
      return peergraph::unexpected(peergraph::peer_errc::would_block);
    return std::size_t{42};
  };
  auto failed = send_result(true);
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error() == peergraph::peer_errc::would_block);
  CHECK(failed == peergraph::unexpected(peergraph::peer_errc::would_block));
  CHECK(send_result(false) == std::size_t{42});

  auto own_string_error = [](bool fail) -> own::expected<int, std::string> {
    if (fail)
      return own::unexpected("boom");
    return 1;
  };
  CHECK(own_string_error(true).error() == "boom");
  CHECK(*own_string_error(false) == 1);
}

TEST_CASE("the send result type is trivially copyable in the project's implementation")
{
  using result = own::expected<std::size_t, peergraph::peer_error>;
  static_assert(std::is_trivially_copyable_v<result>);
  static_assert(std::is_trivially_destructible_v<result>);
  static_assert(std::is_nothrow_move_constructible_v<result>);
  static_assert(std::is_trivially_copyable_v<own::expected<void, peergraph::peer_error>>);
  // Whichever implementation is in use, returning one costs no more than a copy of its bytes.
  static_assert(std::is_trivially_copy_constructible_v<peergraph::expected<std::size_t, peergraph::peer_error>>);
  static_assert(std::is_trivially_destructible_v<peergraph::expected<std::size_t, peergraph::peer_error>>);
  result r = own::unexpected(peergraph::peer_errc::connection_reset);
  result copy = r;
  CHECK(copy.error() == peergraph::peer_errc::connection_reset);
}

TEST_CASE_TEMPLATE("unexpected holds and compares an error", F, PEERGRAPH_BOTH_IMPLS)
{
  using u = unexpected_t<F, std::string>;
  u a("boom");
  CHECK(a.error() == "boom");
  u b(std::in_place, 3u, 'x');
  CHECK(b.error() == "xxx");
  unexpected_t<F, std::vector<int>> c(std::in_place, {1, 2, 3});
  const std::vector<int> one_two_three{1, 2, 3};
  CHECK(c.error() == one_two_three);

  static_assert(std::is_same_v<decltype(a.error()), std::string&>);
  static_assert(std::is_same_v<decltype(std::as_const(a).error()), const std::string&>);
  static_assert(std::is_same_v<decltype(std::move(a).error()), std::string&&>);
  static_assert(std::is_same_v<decltype(std::move(std::as_const(a)).error()), const std::string&&>);
  static_assert(!std::is_convertible_v<std::string, u>, "wrapping an error is always explicit");

  CHECK(a != b);
  CHECK(a == u("boom"));
  using unexpected_int = unexpected_t<F, int>;
  CHECK(unexpected_int(3) == unexpected_int(3));
  if constexpr (F::is_own) {
    // Errors of different types compare too; some standard libraries (libc++ 19) reject this.
    using unexpected_long = unexpected_t<F, long>;
    CHECK(unexpected_int(3) == unexpected_long(3L));
    CHECK(unexpected_int(3) != unexpected_long(4L));
  }

  a.swap(b);
  CHECK(a.error() == "xxx");
  CHECK(b.error() == "boom");
  swap(a, b);
  CHECK(a.error() == "boom");

  a.error() = "changed";
  CHECK(a.error() == "changed");
}

TEST_CASE_TEMPLATE("expected is constructed holding a value or an error", F, PEERGRAPH_BOTH_IMPLS)
{
  SUBCASE("default constructor value-initializes")
  {
    expected_t<F, int, std::string> e;
    REQUIRE(e.has_value());
    CHECK(*e == 0);
    static_assert(!std::is_default_constructible_v<expected_t<F, no_default, int>>);
    static_assert(std::is_default_constructible_v<expected_t<F, int, no_default>>);
  }
  SUBCASE("from a value, converting implicitly where T allows")
  {
    expected_t<F, std::string, int> e = "text";
    REQUIRE(e.has_value());
    CHECK(*e == "text");
    expected_t<F, no_default, int> n(no_default(4));
    CHECK(n->value == 4);
    static_assert(std::is_convertible_v<const char*, expected_t<F, std::string, int>>);
    static_assert(std::is_constructible_v<expected_t<F, explicit_from_int, int>, int>);
    static_assert(!std::is_convertible_v<int, expected_t<F, explicit_from_int, int>>);
  }
  SUBCASE("in place")
  {
    expected_t<F, std::string, int> e(std::in_place, 2u, 'y');
    CHECK(*e == "yy");
    expected_t<F, std::vector<int>, int> list(std::in_place, {4, 5});
    const std::vector<int> four_five{4, 5};
    CHECK(*list == four_five);
    expected_t<F, std::vector<int>, int> list_and_allocator(std::in_place, {6}, std::allocator<int>());
    CHECK(list_and_allocator->size() == 1u);
    CHECK(list_and_allocator->front() == 6);
  }
  SUBCASE("holding an error through unexpect")
  {
    expected_t<F, int, std::string> e(F::unexpect, 3u, 'z');
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error() == "zzz");
    expected_t<F, int, std::vector<int>> list(F::unexpect, {7, 8});
    const std::vector<int> seven_eight{7, 8};
    CHECK(list.error() == seven_eight);
  }
  SUBCASE("from unexpected, converting the error")
  {
    const unexpected_t<F, const char*> lvalue("lvalue");
    expected_t<F, int, std::string> a = lvalue;
    CHECK(a.error() == "lvalue");
    expected_t<F, int, std::string> b = unexpected_t<F, std::string>("rvalue");
    CHECK(b.error() == "rvalue");
    expected_t<F, int, long> c = unexpected_t<F, int>(5);
    CHECK(c.error() == 5L);
    static_assert(!std::is_convertible_v<unexpected_t<F, int>, expected_t<F, int, explicit_from_int>>);
    static_assert(std::is_constructible_v<expected_t<F, int, explicit_from_int>, unexpected_t<F, int>>);
  }
  SUBCASE("from an expected of other types")
  {
    const expected_t<F, int, short> value_source(7);
    expected_t<F, long, int> a = value_source;
    CHECK(*a == 7L);
    const expected_t<F, int, short> error_source(F::unexpect, short{9});
    expected_t<F, long, int> b = error_source;
    CHECK(b.error() == 9);

    expected_t<F, std::unique_ptr<derived>, int> owned(std::make_unique<derived>());
    expected_t<F, std::unique_ptr<base>, int> moved = std::move(owned);
    REQUIRE(moved.has_value());
    CHECK((*moved)->id() == 2);
    CHECK(owned.has_value());
    CHECK(*owned == nullptr);

    static_assert(!std::is_convertible_v<expected_t<F, int, int>, expected_t<F, explicit_from_int, int>>);
    static_assert(std::is_constructible_v<expected_t<F, explicit_from_int, int>, expected_t<F, int, int>>);
    static_assert(!std::is_constructible_v<expected_t<F, int, int>, expected_t<F, std::string, int>>);
  }
}

TEST_CASE("the project's expected<bool, E> converts from expected<int, E> by value (LWG 3836)")
{
  own::expected<bool, int> from_value(own::expected<int, int>(0));
  REQUIRE(from_value.has_value());
  CHECK(*from_value == false);
  own::expected<bool, int> from_error(own::expected<int, int>(own::unexpect, 4));
  REQUIRE_FALSE(from_error.has_value());
  CHECK(from_error.error() == 4);
}

TEST_CASE_TEMPLATE("expected copies, moves and assigns in every combination of states", F, PEERGRAPH_BOTH_IMPLS)
{
  using e_t = expected_t<F, std::string, std::string>;
  const e_t value("value");
  const e_t error(F::unexpect, "error");

  SUBCASE("copy and move construction keep the state")
  {
    e_t a = value;
    CHECK(*a == "value");
    e_t b = error;
    CHECK(b.error() == "error");
    e_t c = std::move(a);
    CHECK(*c == "value");
    e_t d = std::move(b);
    CHECK(d.error() == "error");
  }
  SUBCASE("copy assignment")
  {
    e_t a = value;
    a = value;
    CHECK(*a == "value");
    a = error;
    CHECK(a.error() == "error");
    a = error;
    CHECK(a.error() == "error");
    a = value;
    CHECK(*a == "value");
  }
  SUBCASE("move assignment")
  {
    e_t a = value;
    e_t source = error;
    a = std::move(source);
    CHECK(a.error() == "error");
    source = value;
    a = std::move(source);
    CHECK(*a == "value");
  }
  SUBCASE("assignment of values and errors")
  {
    e_t a = error;
    a = "again a value";
    CHECK(*a == "again a value");
    a = unexpected_t<F, const char*>("first error");
    CHECK(a.error() == "first error");
    const unexpected_t<F, std::string> second("second error");
    a = second;
    CHECK(a.error() == "second error");
    a = std::string("value once more");
    CHECK(*a == "value once more");
  }
  SUBCASE("trivially copyable members take the same paths")
  {
    expected_t<F, int, long> a = 1;
    expected_t<F, int, long> b(F::unexpect, 2L);
    a = b;
    CHECK(a.error() == 2L);
    b = 3;
    a = b;
    CHECK(*a == 3);
    a = unexpected_t<F, long>(4L);
    CHECK(a.error() == 4L);
  }
}

TEST_CASE_TEMPLATE("expected holds move-only types", F, PEERGRAPH_BOTH_IMPLS)
{
  using e_t = expected_t<F, std::unique_ptr<int>, std::unique_ptr<int>>;
  static_assert(!std::is_copy_constructible_v<e_t>);
  static_assert(!std::is_copy_assignable_v<e_t>);
  static_assert(std::is_nothrow_move_constructible_v<e_t>);
  static_assert(std::is_nothrow_move_assignable_v<e_t>);

  e_t a(std::make_unique<int>(1));
  e_t b(F::unexpect, std::make_unique<int>(2));
  e_t c = std::move(a);
  CHECK(**c == 1);
  c = std::move(b);
  CHECK(*c.error() == 2);
  c = std::make_unique<int>(3);
  CHECK(**c == 3);

  std::unique_ptr<int> taken = *std::move(c);
  CHECK(*taken == 3);
  CHECK(*c == nullptr);

  // value() needs a copyable error (it copies it into the exception), so use a copyable one here.
  expected_t<F, std::unique_ptr<int>, int> with_int_error(std::make_unique<int>(8));
  std::unique_ptr<int> via_value = std::move(with_int_error).value();
  CHECK(*via_value == 8);

  expected_t<F, std::unique_ptr<int>, int> d(std::make_unique<int>(4));
  std::unique_ptr<int> out = std::move(d).value_or(nullptr);
  CHECK(*out == 4);
  expected_t<F, std::unique_ptr<int>, int> e(F::unexpect, 5);
  CHECK(std::move(e).value_or(nullptr) == nullptr);
}

TEST_CASE_TEMPLATE("observers give access by every value category", F, PEERGRAPH_BOTH_IMPLS)
{
  using e_t = expected_t<F, std::string, int>;
  e_t e("abc");
  const e_t& ce = e;

  CHECK(e.has_value());
  CHECK(static_cast<bool>(e));
  static_assert(!std::is_convertible_v<e_t, bool>, "operator bool is explicit");
  CHECK(e->size() == 3u);
  CHECK(ce->size() == 3u);

  static_assert(std::is_same_v<decltype(*e), std::string&>);
  static_assert(std::is_same_v<decltype(*ce), const std::string&>);
  static_assert(std::is_same_v<decltype(*std::move(e)), std::string&&>);
  static_assert(std::is_same_v<decltype(*std::move(ce)), const std::string&&>);
  static_assert(std::is_same_v<decltype(e.value()), std::string&>);
  static_assert(std::is_same_v<decltype(ce.value()), const std::string&>);
  static_assert(std::is_same_v<decltype(std::move(e).value()), std::string&&>);
  static_assert(std::is_same_v<decltype(std::move(ce).value()), const std::string&&>);
  static_assert(std::is_same_v<decltype(e.error()), int&>);
  static_assert(std::is_same_v<decltype(ce.error()), const int&>);
  static_assert(std::is_same_v<decltype(std::move(e).error()), int&&>);
  static_assert(std::is_same_v<decltype(std::move(ce).error()), const int&&>);
  static_assert(std::is_same_v<typename e_t::value_type, std::string>);
  static_assert(std::is_same_v<typename e_t::error_type, int>);
  static_assert(std::is_same_v<typename e_t::unexpected_type, unexpected_t<F, int>>);
  static_assert(std::is_same_v<typename e_t::template rebind<long>, expected_t<F, long, int>>);

  CHECK(e.value() == "abc");
  CHECK(ce.value() == "abc");
  e.value() += "d";
  CHECK(*e == "abcd");
  std::string moved_out = std::move(e).value();
  CHECK(moved_out == "abcd");

  e_t failed(F::unexpect, 7);
  CHECK_FALSE(failed.has_value());
  CHECK_FALSE(static_cast<bool>(failed));
  CHECK(failed.error() == 7);
  failed.error() = 8;
  CHECK(std::as_const(failed).error() == 8);
}

TEST_CASE_TEMPLATE("value() throws bad_expected_access carrying the error", F, PEERGRAPH_BOTH_IMPLS)
{
  using e_t = expected_t<F, int, std::string>;
  e_t e(F::unexpect, "no route");

  using bad_string_access = bad_access_t<F, std::string>;
  using bad_any_access = bad_access_t<F, void>;
  CHECK_THROWS_AS(static_cast<void>(e.value()), bad_string_access);
  CHECK_THROWS_AS(static_cast<void>(std::as_const(e).value()), bad_any_access);
  CHECK_THROWS_AS(static_cast<void>(std::move(std::as_const(e)).value()), std::exception);

  bool caught = false;
  try {
    static_cast<void>(std::as_const(e).value());
  } catch (const bad_access_t<F, std::string>& ex) {
    caught = true;
    CHECK(ex.error() == "no route");
    CHECK(std::string(ex.what()).size() > 0);
    static_assert(std::is_base_of_v<bad_access_t<F, void>, bad_access_t<F, std::string>>);
    static_assert(std::is_base_of_v<std::exception, bad_access_t<F, void>>);
  }
  CHECK(caught);
  CHECK(e.error() == "no route"); // an lvalue's error is copied into the exception, not moved

  caught = false;
  try {
    static_cast<void>(std::move(e).value());
  } catch (bad_access_t<F, std::string>& ex) {
    caught = true;
    CHECK(ex.error() == "no route");
    std::string taken = std::move(ex).error();
    CHECK(taken == "no route");
    static_assert(std::is_same_v<decltype(std::move(ex).error()), std::string&&>);
    static_assert(std::is_same_v<decltype(std::as_const(ex).error()), const std::string&>);
  }
  CHECK(caught);

  bad_access_t<F, int> direct(42);
  CHECK(direct.error() == 42);

  expected_t<F, void, int> failed_void(F::unexpect, 3);
  using bad_int_access = bad_access_t<F, int>;
  CHECK_THROWS_AS(failed_void.value(), bad_int_access);
  CHECK_THROWS_AS(std::move(failed_void).value(), bad_int_access);
  expected_t<F, void, int> ok;
  CHECK_NOTHROW(ok.value());
}

TEST_CASE_TEMPLATE("value_or and error_or", F, PEERGRAPH_BOTH_IMPLS)
{
  using e_t = expected_t<F, std::string, int>;
  const e_t value("v");
  const e_t error(F::unexpect, 5);
  CHECK(value.value_or("fallback") == "v");
  CHECK(error.value_or("fallback") == "fallback");
  CHECK(e_t("moved").value_or("fallback") == "moved");

  if constexpr (F::has_monadic) {
    CHECK(value.error_or(9) == 9);
    CHECK(error.error_or(9) == 5);
    CHECK(e_t(F::unexpect, 6).error_or(9) == 6);
    using v_t = expected_t<F, void, std::string>;
    const v_t success;
    CHECK(success.error_or("none") == "none");
    CHECK(v_t(F::unexpect, "bad").error_or("none") == "bad");
  }
}

TEST_CASE_TEMPLATE("emplace replaces the content with a new value", F, PEERGRAPH_BOTH_IMPLS)
{
  counted::reset();
  {
    expected_t<F, counted, counted> e(F::unexpect, 1);
    counted& ref = e.emplace(2);
    CHECK(&ref == &*e);
    CHECK(e->value() == 2);
    CHECK(counted::stats.destroyed == 1); // the error
    e.emplace(3);
    CHECK(e->value() == 3);
    CHECK(counted::stats.destroyed == 2); // and the old value
    CHECK(counted::live() == 1);
  }
  CHECK(counted::live() == 0);

  expected_t<F, list_sum, int> list(F::unexpect, 1);
  list.emplace({1, 2, 3}, 10);
  CHECK(list->total == 16);

  // emplace is offered only where building the value cannot throw (it has no old state to fall back to).
  constexpr bool vector_emplace = requires(expected_t<F, std::vector<int>, int>& e) { e.emplace(3u, 1); };
  static_assert(!vector_emplace);

  expected_t<F, void, std::string> v(F::unexpect, "error");
  v.emplace();
  CHECK(v.has_value());
  v.emplace();
  CHECK(v.has_value());
}

TEST_CASE_TEMPLATE("swap exchanges contents in every combination of states", F, PEERGRAPH_BOTH_IMPLS)
{
  using e_t = expected_t<F, std::string, int>;
  e_t a("a");
  e_t b("b");
  a.swap(b);
  CHECK(*a == "b");
  CHECK(*b == "a");

  e_t c(F::unexpect, 1);
  a.swap(c);
  CHECK(a.error() == 1);
  CHECK(*c == "b");
  swap(a, c);
  CHECK(*a == "b");
  CHECK(c.error() == 1);

  e_t d(F::unexpect, 2);
  swap(c, d);
  CHECK(c.error() == 2);
  CHECK(d.error() == 1);

  using std::swap;
  expected_t<F, std::unique_ptr<int>, int> p(std::make_unique<int>(5));
  expected_t<F, std::unique_ptr<int>, int> q(F::unexpect, 6);
  swap(p, q);
  CHECK(p.error() == 6);
  CHECK(**q == 5);
  static_assert(std::is_nothrow_swappable_v<expected_t<F, std::unique_ptr<int>, int>>);
  static_assert(!std::is_swappable_v<expected_t<F, pinned, int>>);
}

TEST_CASE_TEMPLATE("equality with expected, values and unexpected", F, PEERGRAPH_BOTH_IMPLS)
{
  using e_t = expected_t<F, int, std::string>;
  const e_t one(1);
  const e_t error(F::unexpect, "e");

  CHECK(one == e_t(1));
  CHECK(one != e_t(2));
  CHECK(one != error);
  CHECK(error == e_t(F::unexpect, "e"));
  CHECK(error != e_t(F::unexpect, "f"));
  using long_string = expected_t<F, long, std::string>;
  using long_chars = expected_t<F, long, const char*>;
  CHECK(one == long_string(1L));
  CHECK(error == long_chars(F::unexpect, "e"));

  CHECK(one == 1);
  CHECK(1 == one);
  CHECK(one != 2);
  CHECK(error != 1);
  CHECK(one == 1L);

  using unexpected_string = unexpected_t<F, std::string>;
  using unexpected_chars = unexpected_t<F, const char*>;
  CHECK(error == unexpected_string("e"));
  CHECK(unexpected_chars("e") == error);
  CHECK(error != unexpected_string("x"));
  CHECK(one != unexpected_string("e"));

  using v_t = expected_t<F, void, int>;
  CHECK(v_t() == v_t());
  CHECK(v_t() != v_t(F::unexpect, 1));
  CHECK(v_t(F::unexpect, 1) == v_t(F::unexpect, 1));
  CHECK(v_t(F::unexpect, 1) != v_t(F::unexpect, 2));
  using void_long = expected_t<F, void, long>;
  using unexpected_int = unexpected_t<F, int>;
  CHECK(v_t(F::unexpect, 1) == void_long(F::unexpect, 1L));
  CHECK(v_t(F::unexpect, 3) == unexpected_int(3));
  CHECK(v_t() != unexpected_int(3));
}

TEST_CASE_TEMPLATE("the void specialization", F, PEERGRAPH_BOTH_IMPLS)
{
  using v_t = expected_t<F, void, std::string>;
  static_assert(std::is_void_v<typename v_t::value_type>);
  static_assert(std::is_same_v<typename v_t::template rebind<int>, expected_t<F, int, std::string>>);
  static_assert(std::is_same_v<decltype(*std::declval<v_t&>()), void>);
  static_assert(std::is_nothrow_default_constructible_v<v_t>);

  v_t ok;
  CHECK(ok.has_value());
  *ok;
  v_t in_place(std::in_place);
  CHECK(in_place.has_value());
  v_t failed(F::unexpect, 2u, 'e');
  CHECK(failed.error() == "ee");
  v_t from_unexpected = unexpected_t<F, const char*>("u");
  CHECK(from_unexpected.error() == "u");
  expected_t<F, void, std::vector<int>> list(F::unexpect, {1, 2});
  const std::vector<int> one_two{1, 2};
  CHECK(list.error() == one_two);

  SUBCASE("copy, move and assignment in every combination of states")
  {
    v_t a = ok;
    CHECK(a.has_value());
    v_t b = failed;
    CHECK(b.error() == "ee");
    v_t c = std::move(b);
    CHECK(c.error() == "ee");
    a = failed;
    CHECK(a.error() == "ee");
    a = failed;
    CHECK(a.error() == "ee");
    a = ok;
    CHECK(a.has_value());
    a = ok;
    CHECK(a.has_value());
    a = v_t(F::unexpect, "moved");
    CHECK(a.error() == "moved");
    a = v_t();
    CHECK(a.has_value());
    a = unexpected_t<F, std::string>("assigned");
    CHECK(a.error() == "assigned");
    const unexpected_t<F, const char*> again("again");
    a = again;
    CHECK(a.error() == "again");
  }
  SUBCASE("swap")
  {
    v_t a;
    v_t b(F::unexpect, "b");
    a.swap(b);
    CHECK(a.error() == "b");
    CHECK(b.has_value());
    swap(a, b);
    CHECK(a.has_value());
    CHECK(b.error() == "b");
    v_t c(F::unexpect, "c");
    b.swap(c);
    CHECK(b.error() == "c");
    CHECK(c.error() == "b");
    v_t d;
    a.swap(d);
    CHECK(a.has_value());
    CHECK(d.has_value());
  }
  SUBCASE("conversion from expected<void, G>")
  {
    expected_t<F, void, long> converted = expected_t<F, void, int>(F::unexpect, 4);
    CHECK(converted.error() == 4L);
    const expected_t<F, void, int> success;
    expected_t<F, void, long> converted_success = success;
    CHECK(converted_success.has_value());
    static_assert(!std::is_convertible_v<expected_t<F, void, int>, expected_t<F, void, explicit_from_int>>);
    static_assert(std::is_constructible_v<expected_t<F, void, explicit_from_int>, expected_t<F, void, int>>);
  }
  SUBCASE("move-only error")
  {
    using p_t = expected_t<F, void, std::unique_ptr<int>>;
    p_t a(F::unexpect, std::make_unique<int>(1));
    p_t b = std::move(a);
    CHECK(*b.error() == 1);
    a = std::move(b);
    CHECK(*a.error() == 1);
    static_assert(!std::is_copy_constructible_v<p_t>);
  }
}

TEST_CASE_TEMPLATE("monadic operations chain and forward the value category", F, PEERGRAPH_BOTH_IMPLS)
{
  if constexpr (F::has_monadic) {
    using e_t = expected_t<F, int, std::string>;
    auto half = [](int v) -> e_t {
      if (v % 2 != 0)
        return unexpected_t<F, std::string>("odd");
      return v / 2;
    };

    SUBCASE("and_then")
    {
      CHECK(e_t(8).and_then(half).and_then(half) == 2);
      CHECK(e_t(6).and_then(half).and_then(half).error() == "odd");
      int calls = 0;
      auto counting = [&](int v) {
        ++calls;
        return e_t(v);
      };
      CHECK(e_t(F::unexpect, "early").and_then(counting).error() == "early");
      CHECK(calls == 0);
      auto to_string = [](int v) { return expected_t<F, std::string, std::string>(std::to_string(v)); };
      CHECK(*e_t(12).and_then(to_string) == "12");
    }
    SUBCASE("transform")
    {
      auto r = e_t(4).transform([](int v) { return std::to_string(v * 10); });
      static_assert(std::is_same_v<decltype(r), expected_t<F, std::string, std::string>>);
      CHECK(*r == "40");
      CHECK(e_t(F::unexpect, "kept").transform([](int v) { return v + 1; }).error() == "kept");
      int seen = 0;
      auto to_void = e_t(9).transform([&](int v) { seen = v; });
      static_assert(std::is_same_v<decltype(to_void), expected_t<F, void, std::string>>);
      CHECK(to_void.has_value());
      CHECK(seen == 9);
      auto pinned_result = e_t(5).transform([](int v) { return pinned(v); });
      CHECK(pinned_result->value == 5);
    }
    SUBCASE("or_else")
    {
      auto recover = [](const std::string& e) { return e_t(static_cast<int>(e.size())); };
      CHECK(e_t(F::unexpect, "four").or_else(recover) == 4);
      CHECK(e_t(1).or_else(recover) == 1);
      auto retype = [](const std::string& e) { return expected_t<F, int, std::size_t>(F::unexpect, e.size()); };
      auto r = e_t(F::unexpect, "abc").or_else(retype);
      static_assert(std::is_same_v<decltype(r), expected_t<F, int, std::size_t>>);
      CHECK(r.error() == 3u);
    }
    SUBCASE("transform_error")
    {
      auto r = e_t(F::unexpect, "abcd").transform_error([](const std::string& e) { return e.size(); });
      static_assert(std::is_same_v<decltype(r), expected_t<F, int, std::size_t>>);
      CHECK(r.error() == 4u);
      CHECK(*e_t(2).transform_error([](const std::string& e) { return e.size(); }) == 2);
    }
    SUBCASE("a whole chain")
    {
      auto run = [&](int start) {
        return e_t(start)
            .and_then(half)
            .transform([](int v) { return v + 1; })
            .and_then(half)
            .transform_error([](const std::string& e) { return "failed: " + e; })
            .or_else([](const std::string& e) { return e == "failed: odd" ? e_t(-1) : e_t(F::unexpect, e); });
      };
      CHECK(run(6) == 2);  // 6 -> 3 -> 4 -> 2
      CHECK(run(4) == -1); // 4 -> 2 -> 3 -> odd -> recovered
      CHECK(run(3) == -1); // odd at once -> recovered
    }
    SUBCASE("every overload passes the value or error on with the caller's value category")
    {
      e_t v(1);
      auto and_then_probe = [](auto&& x) { return e_t(static_cast<int>(category_of<decltype(x)>())); };
      CHECK(v.and_then(and_then_probe) == static_cast<int>(category::lvalue));
      CHECK(std::as_const(v).and_then(and_then_probe) == static_cast<int>(category::const_lvalue));
      CHECK(std::move(v).and_then(and_then_probe) == static_cast<int>(category::rvalue));
      CHECK(std::move(std::as_const(v)).and_then(and_then_probe) == static_cast<int>(category::const_rvalue));

      CHECK(v.transform(probe{}) == category::lvalue);
      CHECK(std::as_const(v).transform(probe{}) == category::const_lvalue);
      CHECK(std::move(v).transform(probe{}) == category::rvalue);
      CHECK(std::move(std::as_const(v)).transform(probe{}) == category::const_rvalue);

      e_t e(F::unexpect, "e");
      using c_t = expected_t<F, int, category>;
      auto or_else_probe = [](auto&& x) { return c_t(F::unexpect, category_of<decltype(x)>()); };
      CHECK(e.or_else(or_else_probe).error() == category::lvalue);
      CHECK(std::as_const(e).or_else(or_else_probe).error() == category::const_lvalue);
      CHECK(std::move(e).or_else(or_else_probe).error() == category::rvalue);
      CHECK(std::move(std::as_const(e)).or_else(or_else_probe).error() == category::const_rvalue);

      CHECK(e.transform_error(probe{}).error() == category::lvalue);
      CHECK(std::as_const(e).transform_error(probe{}).error() == category::const_lvalue);
      CHECK(std::move(e).transform_error(probe{}).error() == category::rvalue);
      CHECK(std::move(std::as_const(e)).transform_error(probe{}).error() == category::const_rvalue);
    }
    SUBCASE("rvalue chains move move-only values and errors through")
    {
      using p_t = expected_t<F, std::unique_ptr<int>, std::unique_ptr<int>>;
      auto r = p_t(std::make_unique<int>(2))
                   .and_then([](std::unique_ptr<int> p) {
                     *p *= 10;
                     return p_t(std::move(p));
                   })
                   .transform([](std::unique_ptr<int> p) { return *p + 1; });
      CHECK(r == 21);
      auto e = p_t(F::unexpect, std::make_unique<int>(3))
                   .transform([](std::unique_ptr<int> p) { return *p; })
                   .transform_error([](std::unique_ptr<int> p) { return *p * 2; });
      CHECK(e.error() == 6);
    }
    SUBCASE("the void specialization")
    {
      using v_t = expected_t<F, void, std::string>;
      int calls = 0;
      auto next = [&] {
        ++calls;
        return expected_t<F, int, std::string>(7);
      };
      CHECK(v_t().and_then(next) == 7);
      CHECK(v_t(F::unexpect, "x").and_then(next).error() == "x");
      CHECK(calls == 1);
      auto t = v_t().transform([] { return 8; });
      static_assert(std::is_same_v<decltype(t), expected_t<F, int, std::string>>);
      CHECK(t == 8);
      CHECK(v_t(F::unexpect, "y").transform([] { return 8; }).error() == "y");
      auto recovered = v_t(F::unexpect, "z").or_else([](const std::string&) { return v_t(); });
      CHECK(recovered.has_value());
      auto sized = v_t(F::unexpect, "abc").transform_error([](const std::string& e) { return e.size(); });
      static_assert(std::is_same_v<decltype(sized), expected_t<F, void, std::size_t>>);
      CHECK(sized.error() == 3u);
      CHECK(v_t().transform_error([](const std::string& e) { return e.size(); }).has_value());

      v_t e(F::unexpect, "e");
      CHECK(std::move(e).transform_error(probe{}).error() == category::rvalue);
      CHECK(std::as_const(e).transform_error(probe{}).error() == category::const_lvalue);
    }
  } else {
    MESSAGE("this standard library's std::expected has no monadic operations; tested on the own implementation only");
  }
}

TEST_CASE_TEMPLATE("every contained object is destroyed exactly once", F, PEERGRAPH_BOTH_IMPLS)
{
  using e_t = expected_t<F, counted, counted>;
  counted::reset();
  {
    e_t value(std::in_place, 1);
    e_t error(F::unexpect, 2);
    e_t a = value;
    e_t b = error;
    e_t c = std::move(a);
    a = error;        // value -> error
    a = value;        // error -> value
    a = value;        // value -> value
    b = error;        // error -> error
    b = std::move(c); // error -> value, by move
    c = unexpected_t<F, counted>(counted(3));
    c = counted(4);
    c.emplace(5);
    a.swap(c);
    swap(a, error);
    b = std::move(error);
    CHECK(a.error().value() == 2);
    CHECK(counted::live() == 5); // value, error, a, b and c each hold one
    if constexpr (F::has_monadic) {
      auto t = value.transform([](const counted& x) { return counted(x.value() + 1); });
      auto u = error.transform_error([](const counted& x) { return counted(x.value()); });
      auto w = std::move(value).and_then([](counted x) { return e_t(std::move(x)); });
      auto z = e_t(F::unexpect, 9).or_else([](counted x) { return e_t(std::move(x)); });
      CHECK(t->value() == 2);
      CHECK(z->value() == 9);
    }
    counted fallback = e_t(F::unexpect, 1).value_or(counted(6));
    CHECK(fallback.value() == 6);
  }
  CHECK(counted::live() == 0);
  CHECK(counted::stats.destroyed == counted::stats.constructed);

  counted::reset();
  {
    using v_t = expected_t<F, void, counted>;
    v_t a;
    v_t b(F::unexpect, 1);
    a = b;
    a = v_t();
    a = std::move(b);
    b.emplace();
    a.swap(b);
    v_t c = b;
    v_t d = std::move(c);
    CHECK(counted::live() == 3); // b, c and d hold an error (c a moved-from one); a holds success
  }
  CHECK(counted::live() == 0);
}

TEST_CASE_TEMPLATE("a throwing copy or move leaves the old state intact", F, PEERGRAPH_BOTH_IMPLS)
{
  using e_t = expected_t<F, throwing, counted>;
  struct disarm
  {
    ~disarm() { throwing::armed = false; }
  } guard;
  counted::reset();
  {
    e_t error(F::unexpect, 7);
    const e_t value(std::in_place, 1);

    throwing::armed = true;
    CHECK_THROWS_AS(error = value, std::runtime_error);
    throwing::armed = false;
    REQUIRE_FALSE(error.has_value());
    CHECK(error.error().value() == 7);

    throwing::armed = true;
    CHECK_THROWS_AS(error = throwing(2), std::runtime_error);
    throwing::armed = false;
    REQUIRE_FALSE(error.has_value());
    CHECK(error.error().value() == 7);

    e_t other(std::in_place, 3);
    throwing::armed = true;
    CHECK_THROWS_AS(other.swap(error), std::runtime_error);
    throwing::armed = false;
    REQUIRE(other.has_value());
    CHECK(other->value == 3);
    REQUIRE_FALSE(error.has_value());
    CHECK(error.error().value() == 7);

    error = value;
    CHECK(error->value == 1);
    CHECK(counted::live() == 0);
  }
  CHECK(counted::live() == 0);
}

TEST_CASE_TEMPLATE("expected stores its content in place", F, PEERGRAPH_BOTH_IMPLS)
{
  // No heap: the value or error lives inside the object, which is just larger than the larger of the two.
  using block = std::array<char, 256>;
  static_assert(sizeof(expected_t<F, block, int>) >= sizeof(block));
  static_assert(sizeof(expected_t<F, block, int>) <= sizeof(block) + alignof(int) + sizeof(int));
  static_assert(sizeof(expected_t<F, int, block>) <= sizeof(block) + alignof(int) + sizeof(int));
  static_assert(sizeof(expected_t<F, void, block>) <= sizeof(block) + 1);
  static_assert(sizeof(expected_t<F, std::size_t, long>) == 2 * sizeof(std::size_t));
  static_assert(alignof(expected_t<F, std::size_t, char>) == alignof(std::size_t));

  expected_t<F, block, int> e(std::in_place);
  e->back() = 'x';
  const auto* begin = static_cast<const char*>(static_cast<const void*>(&e));
  const auto* value = static_cast<const char*>(static_cast<const void*>(&*e));
  CHECK(value >= begin);
  CHECK(value + sizeof(block) <= begin + sizeof(e));
}

TEST_CASE_TEMPLATE("special members are trivial when T and E are", F, PEERGRAPH_BOTH_IMPLS)
{
  using trivial = expected_t<F, std::size_t, int>;
  using trivial_void = expected_t<F, void, int>;
  // Guaranteed by the standard for both implementations.
  static_assert(std::is_trivially_copy_constructible_v<trivial>);
  static_assert(std::is_trivially_move_constructible_v<trivial>);
  static_assert(std::is_trivially_destructible_v<trivial>);
  static_assert(std::is_trivially_copy_constructible_v<trivial_void>);
  static_assert(std::is_trivially_move_constructible_v<trivial_void>);
  static_assert(std::is_trivially_destructible_v<trivial_void>);
  static_assert(!std::is_trivially_destructible_v<expected_t<F, std::string, int>>);
  static_assert(!std::is_trivially_destructible_v<expected_t<F, int, std::string>>);
  static_assert(!std::is_trivially_copy_constructible_v<expected_t<F, std::string, int>>);
  static_assert(!std::is_trivially_destructible_v<expected_t<F, void, std::string>>);
  static_assert(std::is_nothrow_move_constructible_v<expected_t<F, std::string, std::string>>);
  static_assert(!std::is_nothrow_move_constructible_v<expected_t<F, throwing, int>>);

  if constexpr (F::is_own) {
    // Beyond the standard: assignment is trivial too, so the whole type is trivially copyable.
    static_assert(std::is_trivially_copyable_v<trivial>);
    static_assert(std::is_trivially_copy_assignable_v<trivial>);
    static_assert(std::is_trivially_move_assignable_v<trivial>);
    static_assert(std::is_trivially_copyable_v<trivial_void>);
    static_assert(!std::is_trivially_copyable_v<expected_t<F, std::string, int>>);
    static_assert(!std::is_trivially_copy_assignable_v<expected_t<F, int, std::string>>);
    static_assert(std::is_nothrow_copy_constructible_v<trivial>);
  }
  CHECK(sizeof(trivial) >= sizeof(std::size_t) + 1);
}

namespace {

template <class F>
constexpr int constexpr_scalar()
{
  using e_t = expected_t<F, int, int>;
  e_t a;
  e_t b(F::unexpect, 5);
  e_t c = 3;
  a = b;
  b = c;
  c = unexpected_t<F, int>(9);
  b.swap(c);
  int total = a.error() + b.error() + *c + b.value_or(100) + c.value_or(100);
  expected_t<F, void, int> v;
  v = unexpected_t<F, int>(1);
  total += v.error();
  v.emplace();
  total += v.has_value() ? 1000 : 0;
  total += (a == unexpected_t<F, int>(5)) ? 10000 : 0;
  return total; // 5 + 9 + 3 + 100 + 3 + 1 + 1000 + 10000
}

template <class F>
constexpr int constexpr_nontrivial()
{
  using e_t = expected_t<F, literal, literal>;
  e_t a(std::in_place, 1);
  e_t b(F::unexpect, 2);
  e_t c = a;
  c = b; // value -> error
  c = a; // error -> value
  e_t d = std::move(b);
  a.swap(d); // value <-> error
  d = literal(4);
  d.emplace(5);
  int total = a.error().value + c->value + d->value;
  if constexpr (F::has_monadic) {
    total += c.transform([](const literal& x) { return x.value * 10; }).value();
    total += a.transform_error([](const literal& x) { return x.value * 100; }).error();
    total += a.or_else([](const literal& x) { return e_t(std::in_place, x.value); })->value;
    total += c.and_then([](const literal& x) { return e_t(std::in_place, x.value + 1); })->value;
  }
  expected_t<F, void, literal> v(F::unexpect, 7);
  expected_t<F, void, literal> w = v;
  v.emplace();
  v.swap(w);
  total += v.error().value;
  return total;
}

} // namespace

TEST_CASE_TEMPLATE("expected is usable in constant expressions", F, PEERGRAPH_BOTH_IMPLS)
{
  static_assert(constexpr_scalar<F>() == 11121);
  constexpr int nontrivial = constexpr_nontrivial<F>();
  if constexpr (F::has_monadic)
    static_assert(nontrivial == 2 + 1 + 5 + 10 + 200 + 2 + 2 + 7);
  else
    static_assert(nontrivial == 2 + 1 + 5 + 7);
  CHECK(constexpr_scalar<F>() == 11121);
  CHECK(constexpr_nontrivial<F>() == nontrivial);

  constexpr expected_t<F, explicit_from_int, int> e(std::in_place, 3);
  static_assert(e->value == 3);
  static_assert(e.has_value());
  constexpr expected_t<F, int, int> u(F::unexpect, 4);
  static_assert(u.error() == 4);
  static_assert(u != 4);
}
