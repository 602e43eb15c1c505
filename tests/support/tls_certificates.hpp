//
// tests/support/tls_certificates.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Certificates made at test time with OpenSSL (EC P-256 keys, SHA-256 signatures): a graph CA and node certificates
// it signs, as PEM text, so no key material lives in the repository and every run uses fresh keys.
//
#pragma once

#include <peergraph/detail/tls_session.hpp>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace peergraph::test {

/// A key pair and its certificate, as PEM.
struct pem_identity
{
  std::string certificate;
  std::string key;
  std::shared_ptr<EVP_PKEY> native_key;
  std::shared_ptr<X509> native_certificate;
};

namespace tls_detail {

inline std::string to_pem(const std::function<int(BIO*)>& write)
{
  std::unique_ptr<BIO, detail::bio_deleter> bio(BIO_new(BIO_s_mem()));
  REQUIRE(bio);
  REQUIRE(write(bio.get()) == 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

inline void add_extension(X509* certificate, X509* issuer, int nid, const char* value)
{
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  REQUIRE(extension != nullptr);
  REQUIRE(X509_add_ext(certificate, extension, -1) == 1);
  X509_EXTENSION_free(extension);
}

} // namespace tls_detail

/// Makes a certificate for `common_name`, signed by `issuer` (self-signed when null), valid from `not_before_days`
/// to `not_after_days` relative to now; a CA certificate when `is_ca`.
inline pem_identity make_identity(std::string_view common_name, const pem_identity* issuer, bool is_ca,
                                  long not_before_days = -1, long not_after_days = 365)
{
  pem_identity out;
  out.native_key = std::shared_ptr<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  REQUIRE(out.native_key);
  out.native_certificate = std::shared_ptr<X509>(X509_new(), X509_free);
  X509* certificate = out.native_certificate.get();
  REQUIRE(certificate != nullptr);
  REQUIRE(X509_set_version(certificate, 2) == 1);
  static long serial = 1;
  REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(certificate), ++serial) == 1);
  REQUIRE(X509_gmtime_adj(X509_getm_notBefore(certificate), not_before_days * 24 * 3600) != nullptr);
  REQUIRE(X509_gmtime_adj(X509_getm_notAfter(certificate), not_after_days * 24 * 3600) != nullptr);
  REQUIRE(X509_set_pubkey(certificate, out.native_key.get()) == 1);
  X509_NAME* name = X509_get_subject_name(certificate);
  const std::string cn(common_name);
  REQUIRE(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                                     -1, 0) == 1);
  X509* issuer_certificate = issuer != nullptr ? issuer->native_certificate.get() : certificate;
  EVP_PKEY* issuer_key = issuer != nullptr ? issuer->native_key.get() : out.native_key.get();
  REQUIRE(X509_set_issuer_name(certificate, X509_get_subject_name(issuer_certificate)) == 1);
  tls_detail::add_extension(certificate, issuer_certificate, NID_basic_constraints,
                            is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  tls_detail::add_extension(certificate, issuer_certificate, NID_key_usage,
                            is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  if (!is_ca)
    tls_detail::add_extension(certificate, issuer_certificate, NID_ext_key_usage, "serverAuth,clientAuth");
  REQUIRE(X509_sign(certificate, issuer_key, EVP_sha256()) > 0);
  out.certificate = tls_detail::to_pem([&](BIO* bio) { return PEM_write_bio_X509(bio, certificate); });
  out.key = tls_detail::to_pem([&](BIO* bio) {
    return PEM_write_bio_PrivateKey(bio, out.native_key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  return out;
}

/// A graph's CA and a node certificate it signed, for `common_name`.
inline pem_identity make_node(std::string_view common_name, const pem_identity& ca, long not_before_days = -1,
                              long not_after_days = 365)
{
  return make_identity(common_name, &ca, false, not_before_days, not_after_days);
}

inline pem_identity make_ca(std::string_view common_name)
{
  return make_identity(common_name, nullptr, true);
}

} // namespace peergraph::test
