//
// tests/odr_2.cpp
// ~~~~~~~~~~~~~~~
// The second translation unit of the odr test (see odr_1.cpp).
//
#include <peergraph.hpp>

#include <system_error>

const std::error_category& category_from_other_translation_unit() noexcept;
std::error_code code_from_other_translation_unit() noexcept;

const std::error_category& category_from_other_translation_unit() noexcept
{
  return peergraph::peer_category();
}

std::error_code code_from_other_translation_unit() noexcept
{
  return peergraph::make_error_code(peergraph::peer_errc::connection_reset);
}
