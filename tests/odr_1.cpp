//
// tests/odr_1.cpp
// ~~~~~~~~~~~~~~~
// Two translation units that both include every peergraph header, linked into one program: a header that defines
// a non-inline function or variable fails the link, and the library's singletons must be one object program-wide,
// or error codes made in one file would not compare equal in another.
//
#include <peergraph.hpp>

#include <doctest/doctest.h>

#include <system_error>

// Defined in odr_2.cpp.
const std::error_category& category_from_other_translation_unit() noexcept;
std::error_code code_from_other_translation_unit() noexcept;

TEST_CASE("the peergraph error category is one object across translation units")
{
  CHECK(&peergraph::peer_category() == &category_from_other_translation_unit());
}

TEST_CASE("an error code made in another translation unit compares equal to the same peer_errc here")
{
  const std::error_code code = code_from_other_translation_unit();
  CHECK(code == peergraph::peer_errc::connection_reset);
  CHECK(code == peergraph::make_error_code(peergraph::peer_errc::connection_reset));
  CHECK(peergraph::peer_error(code) == peergraph::peer_errc::connection_reset);
}
