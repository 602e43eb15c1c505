//
// peergraph/config.hpp
// ~~~~~~~~~~~~~~~~~~~~
// Version, feature detection and the project's assertion macro. The only header that branches on the compiler or
// the standard library.
//
#pragma once

// Asio up to 1.23 recognises clang's C++20 coroutines only through <experimental/coroutine>, so with clang and
// libstdc++ it leaves asio::awaitable undefined. Turning it on must happen before Asio's configuration is read.
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT) &&                              \
    !defined(ASIO_DISABLE_CO_AWAIT)
#if defined(ASIO_DETAIL_CONFIG_HPP)
#error "with clang, include peergraph headers before any Asio header, or compile with -DASIO_HAS_CO_AWAIT=1"
#endif
#define ASIO_HAS_CO_AWAIT 1
#endif

#include <asio/version.hpp>

#include <cassert>

#define PEERGRAPH_VERSION_MAJOR 0
#define PEERGRAPH_VERSION_MINOR 1
#define PEERGRAPH_VERSION_PATCH 0
/// The version as one number: major * 10000 + minor * 100 + patch.
#define PEERGRAPH_VERSION (PEERGRAPH_VERSION_MAJOR * 10000 + PEERGRAPH_VERSION_MINOR * 100 + PEERGRAPH_VERSION_PATCH)

#if __cplusplus < 202002L
#error "peergraph needs C++20 (-std=c++20 or later)"
#endif

#if !defined(__cpp_impl_coroutine) && !defined(__cpp_coroutines)
#error "peergraph needs compiler support for C++20 coroutines"
#endif

#if ASIO_VERSION < 102201
#error "peergraph needs Asio 1.22.1 or newer"
#endif

// std::expected takes over from the project's own implementation where the standard library provides it.
#if defined(__has_include)
#if __has_include(<version>)
#include <version>
#endif
#endif
#if defined(__cpp_lib_expected) && __cpp_lib_expected >= 202202L
#define PEERGRAPH_HAS_STD_EXPECTED 1
#else
#define PEERGRAPH_HAS_STD_EXPECTED 0
#endif

// Asio 1.23 moved as_tuple and deferred out of asio::experimental; detail/asio_compat.hpp hides the difference.
#if ASIO_VERSION >= 102300
#define PEERGRAPH_ASIO_HAS_STABLE_AS_TUPLE 1
#else
#define PEERGRAPH_ASIO_HAS_STABLE_AS_TUPLE 0
#endif

// Linux-only kernel features used when present; everything has a portable fallback.
#if defined(__linux__)
#define PEERGRAPH_HAS_MSG_ZEROCOPY 1
#else
#define PEERGRAPH_HAS_MSG_ZEROCOPY 0
#endif

/// Checks an internal invariant in debug builds. Never used for input validation: bad input yields a peer_error.
#define PEERGRAPH_ASSERT(expr) assert(expr)

/// Keeps a rarely taken path (a failure, a limit reached) out of the per-message functions that call it, so that
/// those stay small enough to be inlined where they are called.
#if defined(__GNUC__) || defined(__clang__)
#define PEERGRAPH_COLD __attribute__((noinline, cold))
#else
#define PEERGRAPH_COLD
#endif
