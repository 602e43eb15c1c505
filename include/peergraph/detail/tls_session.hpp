//
// peergraph/detail/tls_session.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// TLS 1.3 with mutual certificate authentication against a graph's CA, as a byte transformation without I/O: the
// caller moves ciphertext between the session and its socket itself, so the graph keeps its own reader, send queue
// and ordering, and only the bytes change. Built on OpenSSL (libcrypto and libssl) with memory BIOs.
//
// tls_context: the graph's CA, this node's certificate chain and key; one per graph, shared by its sessions.
// tls_session: one connection: handshake(), then encrypt() and decrypt(), then close().
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/error.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/transport_security.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace peergraph::detail {

struct ssl_ctx_deleter
{
  void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
struct ssl_deleter
{
  void operator()(SSL* p) const noexcept { SSL_free(p); }
};
struct bio_deleter
{
  void operator()(BIO* p) const noexcept { BIO_free_all(p); }
};
struct x509_deleter
{
  void operator()(X509* p) const noexcept { X509_free(p); }
};
struct pkey_deleter
{
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};

/// A read-only memory BIO over `text` (not copied: `text` must outlive the BIO).
inline std::unique_ptr<BIO, bio_deleter> memory_bio(std::string_view text)
{
  return std::unique_ptr<BIO, bio_deleter>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

/// The graph's TLS settings: TLS 1.3 only, both sides present a certificate that chains to the graph's CA.
class tls_context
{
public:
  /// @param ca_pem the graph's CA certificate(s), PEM; peers' certificates must chain to one of them.
  /// @param chain_pem this node's certificate, then any intermediates, PEM.
  /// @param key_pem this node's private key, PEM (unencrypted).
  /// @return the context, or invalid_argument when a PEM does not parse, the key does not match the certificate,
  /// or the CA list is empty.
  [[nodiscard]] static expected<std::shared_ptr<const tls_context>, peer_error> make(std::string_view ca_pem,
                                                                                     std::string_view chain_pem,
                                                                                     std::string_view key_pem)
  {
    std::unique_ptr<SSL_CTX, ssl_ctx_deleter> ctx(SSL_CTX_new(TLS_method()));
    if (!ctx)
      return unexpected(peer_error(peer_errc::out_of_memory));
    const bool configured = SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) == 1 &&
                            SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) == 1 &&
                            load_chain(ctx.get(), chain_pem) && load_key(ctx.get(), key_pem) &&
                            SSL_CTX_check_private_key(ctx.get()) == 1 && load_authorities(ctx.get(), ca_pem);
    ERR_clear_error(); // parse errors are reported as invalid_argument; leave no stale entries to later calls
    if (!configured)
      return unexpected(peer_error(peer_errc::invalid_argument));
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    // No session tickets: nothing is sent after the handshake but application data and the closing alert.
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx.get(), 0);
    auto made = std::make_shared<tls_context>(private_tag{});
    made->ctx_ = std::move(ctx);
    return std::shared_ptr<const tls_context>(std::move(made));
  }

  struct private_tag
  {
  };
  explicit tls_context(private_tag) {}

  [[nodiscard]] SSL_CTX* native() const noexcept { return ctx_.get(); }

private:
  static bool load_chain(SSL_CTX* ctx, std::string_view pem)
  {
    auto bio = memory_bio(pem);
    std::unique_ptr<X509, x509_deleter> leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!leaf || SSL_CTX_use_certificate(ctx, leaf.get()) != 1)
      return false;
    for (int i = 0; i < 16; ++i) {
      std::unique_ptr<X509, x509_deleter> next(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
      if (!next)
        break;
      if (SSL_CTX_add1_chain_cert(ctx, next.get()) != 1)
        return false;
    }
    return true;
  }

  static bool load_key(SSL_CTX* ctx, std::string_view pem)
  {
    auto bio = memory_bio(pem);
    std::unique_ptr<EVP_PKEY, pkey_deleter> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    return key && SSL_CTX_use_PrivateKey(ctx, key.get()) == 1;
  }

  static bool load_authorities(SSL_CTX* ctx, std::string_view pem)
  {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    auto bio = memory_bio(pem);
    int loaded = 0;
    for (int i = 0; i < 64; ++i) {
      std::unique_ptr<X509, x509_deleter> ca(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
      if (!ca)
        break;
      if (X509_STORE_add_cert(store, ca.get()) != 1)
        return false;
      ++loaded;
    }
    return loaded > 0;
  }

  std::unique_ptr<SSL_CTX, ssl_ctx_deleter> ctx_;
};

/// One TLS 1.3 connection, without I/O: the caller (membership_role::caller) is the TLS client. Every call appends
/// the bytes to send to the peer to `out`, which the caller sends in order, even when the call fails (a failed
/// handshake produces the alert that tells the peer why).
class tls_session final : public secure_session
{
public:
  tls_session(std::shared_ptr<const tls_context> context, membership_role side) : context_(std::move(context))
  {
    ssl_.reset(SSL_new(context_->native()));
    if (!ssl_)
      return;
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    if (in == nullptr || out == nullptr) {
      BIO_free(in);
      BIO_free(out);
      ssl_.reset();
      return;
    }
    SSL_set_bio(ssl_.get(), in, out); // the SSL owns both from here
    in_ = in;
    out_ = out;
    if (side == membership_role::caller)
      SSL_set_connect_state(ssl_.get());
    else
      SSL_set_accept_state(ssl_.get());
  }

  /// Whether the session could be set up (false only when memory ran out).
  [[nodiscard]] bool valid() const noexcept { return ssl_ != nullptr; }

  /// One handshake step: takes the peer's bytes (possibly none, for the client's first step).
  /// @return need_more or done; or not_authenticated when the peer's certificate is missing or does not chain to
  /// the graph's CA (or the peer refused ours), protocol_error for anything else that is not TLS 1.3.
  [[nodiscard]] expected<secure_progress, peer_error> handshake(std::span<const std::byte> in,
                                                                std::vector<std::byte>& out) override
  {
    if (!valid() || failed_)
      return unexpected(peer_error(failed_ ? error_ : peer_errc::out_of_memory));
    if (!feed(in))
      return fail(peer_errc::out_of_memory);
    const int r = SSL_do_handshake(ssl_.get());
    drain(out);
    if (r == 1)
      return secure_progress::done;
    const int reason = SSL_get_error(ssl_.get(), r);
    if (reason == SSL_ERROR_WANT_READ)
      return secure_progress::need_more;
    return fail(handshake_error());
  }

  /// Encrypts `buffers`, in order, as application data.
  [[nodiscard]] expected<void, peer_error> encrypt(std::span<const std::span<const std::byte>> buffers,
                                                   std::vector<std::byte>& out) override
  {
    if (!valid() || failed_)
      return unexpected(peer_error(failed_ ? error_ : peer_errc::out_of_memory));
    for (const auto buffer : buffers) {
      std::size_t done = 0;
      while (done < buffer.size()) {
        std::size_t written = 0;
        if (SSL_write_ex(ssl_.get(), buffer.data() + done, buffer.size() - done, &written) != 1) {
          drain(out);
          return fail(peer_errc::protocol_error);
        }
        done += written;
      }
    }
    drain(out);
    return {};
  }

  /// Decrypts the peer's bytes `in`, appending the plaintext to `plaintext`.
  /// @return whether the peer closed the TLS connection (its close_notify arrived); protocol_error for a record
  /// that does not authenticate or does not parse.
  [[nodiscard]] expected<bool, peer_error> decrypt(std::span<const std::byte> in, std::vector<std::byte>& plaintext,
                                                   std::vector<std::byte>& out) override
  {
    if (!valid() || failed_)
      return unexpected(peer_error(failed_ ? error_ : peer_errc::out_of_memory));
    if (!feed(in))
      return fail(peer_errc::out_of_memory);
    for (;;) {
      const std::size_t have = plaintext.size();
      plaintext.resize(have + 16 * 1024);
      std::size_t read = 0;
      const int r = SSL_read_ex(ssl_.get(), plaintext.data() + have, 16 * 1024, &read);
      plaintext.resize(have + (r == 1 ? read : 0));
      if (r == 1)
        continue;
      const int reason = SSL_get_error(ssl_.get(), r);
      drain(out);
      if (reason == SSL_ERROR_WANT_READ)
        return false;
      if (reason == SSL_ERROR_ZERO_RETURN)
        return true;
      // In TLS 1.3 the client's handshake ends before the server has checked the client's certificate: a refusal
      // of that certificate arrives here, as an alert after the handshake.
      return fail(alert_error());
    }
  }

  /// Starts closing: appends the closing alert (close_notify).
  void close(std::vector<std::byte>& out) override
  {
    if (!valid() || failed_)
      return;
    (void)SSL_shutdown(ssl_.get());
    ERR_clear_error();
    drain(out);
  }

  /// The peer certificate's subject common name, after a completed handshake; empty when it has none.
  [[nodiscard]] std::string peer_name() const override
  {
    X509* peer = valid() ? SSL_get0_peer_certificate(ssl_.get()) : nullptr;
    if (peer == nullptr)
      return {};
    const X509_NAME* subject = X509_get_subject_name(peer);
    const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index < 0)
      return {};
    const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                       static_cast<std::size_t>(ASN1_STRING_length(value)));
  }

  /// The negotiated protocol version (TLS1_3_VERSION after a completed handshake).
  [[nodiscard]] int version() const noexcept { return valid() ? SSL_version(ssl_.get()) : 0; }

private:
  bool feed(std::span<const std::byte> in)
  {
    std::size_t done = 0;
    while (done < in.size()) {
      std::size_t written = 0;
      if (BIO_write_ex(in_, in.data() + done, in.size() - done, &written) != 1)
        return false;
      done += written;
    }
    return true;
  }

  void drain(std::vector<std::byte>& out)
  {
    const auto pending = BIO_ctrl_pending(out_);
    if (pending == 0)
      return;
    const std::size_t have = out.size();
    out.resize(have + pending);
    std::size_t read = 0;
    if (BIO_read_ex(out_, out.data() + have, pending, &read) != 1)
      read = 0;
    out.resize(have + read);
  }

  /// Why the handshake failed: a certificate problem on either side is not_authenticated.
  peer_errc handshake_error()
  {
    if (SSL_get_verify_result(ssl_.get()) != X509_V_OK) {
      ERR_clear_error();
      return peer_errc::not_authenticated;
    }
    return alert_error();
  }

  /// not_authenticated when the peer's alert (or our own check) says a certificate was refused, else
  /// protocol_error.
  static peer_errc alert_error()
  {
    const unsigned long error = ERR_peek_last_error();
    ERR_clear_error();
    if (ERR_GET_LIB(error) == ERR_LIB_SSL) {
      switch (ERR_GET_REASON(error)) {
      case SSL_R_CERTIFICATE_VERIFY_FAILED:
      case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
      case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
      case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
      case SSL_R_TLSV1_ALERT_DECRYPT_ERROR: // a signature that does not verify, e.g. a look-alike CA
      case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return peer_errc::not_authenticated;
      default:
        break;
      }
    }
    return peer_errc::protocol_error;
  }

  unexpected<peer_error> fail(peer_errc code)
  {
    failed_ = true;
    error_ = code;
    ERR_clear_error();
    return unexpected(peer_error(code));
  }

  std::shared_ptr<const tls_context> context_;
  std::unique_ptr<SSL, ssl_deleter> ssl_;
  BIO* in_ = nullptr;  // owned by ssl_
  BIO* out_ = nullptr; // owned by ssl_
  bool failed_ = false;
  peer_errc error_ = peer_errc::protocol_error;
};

} // namespace peergraph::detail
