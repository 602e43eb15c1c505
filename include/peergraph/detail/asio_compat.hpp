//
// peergraph/detail/asio_compat.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Names that moved between Asio versions: as_tuple and deferred live in asio::experimental up to 1.22.
//
#pragma once

#include <peergraph/config.hpp>

#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>

#if PEERGRAPH_ASIO_HAS_STABLE_AS_TUPLE
#include <asio/as_tuple.hpp>
#include <asio/deferred.hpp>
#else
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>
#endif

namespace peergraph::detail::asio_compat {

#if PEERGRAPH_ASIO_HAS_STABLE_AS_TUPLE
using asio::as_tuple;
using asio::as_tuple_t;
inline constexpr auto& deferred = asio::deferred;
#else
using asio::experimental::as_tuple;
using asio::experimental::as_tuple_t;
inline constexpr auto& deferred = asio::experimental::deferred;
#endif

/// use_awaitable wrapped so that the error code arrives as a value instead of an exception.
inline constexpr as_tuple_t<asio::use_awaitable_t<>> use_awaitable_tuple{};

} // namespace peergraph::detail::asio_compat
