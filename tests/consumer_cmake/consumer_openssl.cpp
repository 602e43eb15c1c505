// A CMake user's program using the optional OpenSSL parts: <peergraph/psk.hpp> linked with peergraph::psk and
// <peergraph/tls.hpp> with peergraph::tls. It calls into libcrypto and libssl, so linking it proves that the targets
// bring OpenSSL in.
#include <peergraph/psk.hpp>
#include <peergraph/tls.hpp>

#include <array>
#include <cstddef>
#include <cstdio>

int main()
{
  const std::array<std::byte, peergraph::pre_shared_key::min_key_size> key{};
  const auto psk = peergraph::pre_shared_key::make(key);
  const auto tls = peergraph::tls_credentials::make("not a CA", "not a certificate", "not a key");
  std::printf("consumer_openssl: pre_shared_key %s, tls_credentials of garbage: %s\n", psk ? "made" : "refused",
              tls ? "made" : tls.error().message().c_str());
  return psk && !tls && tls.error() == peergraph::peer_errc::invalid_argument ? 0 : 1;
}
