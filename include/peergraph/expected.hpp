//
// peergraph/expected.hpp
// ~~~~~~~~~~~~~~~~~~~~~~
// peergraph::expected<T, E>: the result type of every fallible operation; std::expected where available.
//
#pragma once

#include <peergraph/config.hpp>

#include <peergraph/detail/expected_impl.hpp>

#if PEERGRAPH_HAS_STD_EXPECTED
#include <expected>
#endif

/// @file
/// `peergraph::expected<T, E>` holds either a value of type T or an error of type E, in place and without
/// allocating; `expected<void, E>` holds success or an error. The interface is exactly that of C++23
/// `std::expected`:
/// - construction from a value, from `unexpected(e)`, `std::in_place` or `unexpect` arguments, or another expected;
/// - `has_value()`, `explicit operator bool`, `*`, `->`, `value()` (throws `bad_expected_access<E>` when an error
///   is held), `error()`, `value_or()`, `error_or()`;
/// - `and_then()`, `transform()`, `or_else()`, `transform_error()` on every value category;
/// - `emplace()`, `swap()`, and `==` against another expected, a value or an unexpected.
///
/// Where the standard library provides `std::expected` (PEERGRAPH_HAS_STD_EXPECTED), these names are that template
/// itself, not wrappers; otherwise they name the project's own C++20 implementation, which mirrors the standard's
/// semantics, is trivially copyable and destructible when T and E are, and is constexpr throughout.
///
/// @code
/// peergraph::expected<std::size_t, peergraph::peer_error> parse_length(std::string_view s)
/// {
///   if (s.empty())
///     return peergraph::unexpected(peergraph::peer_errc::invalid_argument);
///   return s.size();
/// }
/// auto doubled = parse_length("abc").transform([](std::size_t n) { return 2 * n; });  // holds 6
/// @endcode
namespace peergraph {

#if PEERGRAPH_HAS_STD_EXPECTED
/// Either a value of type T or an error of type E; `void` T means success or an error.
using std::expected;
/// The error of an expected, marked as such: `return unexpected(e);`.
using std::unexpected;
/// Thrown by expected::value() when an error is held; error() returns a copy of it.
using std::bad_expected_access;
/// Tag type selecting the error-holding constructors of expected.
using std::unexpect_t;
/// Tag selecting the error-holding constructors of expected: `expected<T, E>(unexpect, args...)`.
using std::unexpect;
#else
/// Either a value of type T or an error of type E; `void` T means success or an error.
using detail::expected_impl::expected;
/// The error of an expected, marked as such: `return unexpected(e);`.
using detail::expected_impl::unexpected;
/// Thrown by expected::value() when an error is held; error() returns a copy of it.
using detail::expected_impl::bad_expected_access;
/// Tag type selecting the error-holding constructors of expected.
using detail::expected_impl::unexpect_t;
/// Tag selecting the error-holding constructors of expected: `expected<T, E>(unexpect, args...)`.
using detail::expected_impl::unexpect;
#endif

} // namespace peergraph
