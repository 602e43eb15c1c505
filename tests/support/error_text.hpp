//
// tests/support/error_text.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The message of an expected's error, for the text of a check on that expected. doctest builds the text of a passing
// check too when asked to report successes (-s), so it must not call error() on a value.
//
#pragma once

#include <string>

namespace peergraph::test {

/// The error's message, or "no error" when `result` holds a value.
template <class Expected>
std::string error_text(const Expected& result)
{
  return result.has_value() ? std::string("no error") : result.error().message();
}

} // namespace peergraph::test
