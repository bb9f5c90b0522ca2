// Loading the server's certificate and key, and the handshake settings every
// TLS connection shares. Errors are found here, at startup or on SIGHUP, so a
// handshake never meets a half-configured context.
#include "server/tls_context.hpp"

#include <keel/config.hpp>
#include <keel/log.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fstream>

namespace keel::detail {

namespace {

using boost::system::error_code;

// Mozilla's "intermediate" TLS 1.2 list: forward secrecy and AEAD only. TLS 1.3
// suites are OpenSSL's defaults (all AEAD).
constexpr char const* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// ALPN: keel speaks HTTP/1.1 only. A client that offers only other protocols
// (h2) gets no ALPN answer rather than a failed handshake, as nginx does.
int select_alpn(SSL*, unsigned char const** out, unsigned char* outlen, unsigned char const* in,
                unsigned int inlen, void*) {
  static unsigned char const ours[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, ours, sizeof ours, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

std::string why(error_code ec) {
  auto m = ec.message();
  return m.empty() ? std::string("unknown OpenSSL error") : m;
}

void require_readable(std::string const& setting, std::string const& file) {
  std::ifstream in(file);
  if (!in) throw config_error(setting + " " + file + ": cannot be read");
}

}  // namespace

std::shared_ptr<asio::ssl::context> tls_context::load(std::string const& cert_file, std::string const& key_file) {
  if (cert_file.empty() || key_file.empty()) {
    throw config_error("--tls-cert and --tls-key must be given together");
  }
  require_readable("tls_cert", cert_file);
  require_readable("tls_key", key_file);
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  auto* h = ctx->native_handle();
  SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION);
  SSL_CTX_set_options(h, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle connections (keep-alive, WebSockets) give their ~34 KiB of record
  // buffers back to the allocator until they next have traffic.
  SSL_CTX_set_mode(h, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(h, tls12_ciphers) != 1) throw config_error("TLS: the cipher list was refused");
  SSL_CTX_set_alpn_select_cb(h, select_alpn, nullptr);

  error_code ec;
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) throw config_error("tls_cert " + cert_file + ": does not load: " + why(ec));
  X509* cert = SSL_CTX_get0_certificate(h);
  if (!cert) throw config_error("tls_cert " + cert_file + ": holds no certificate");
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
    throw config_error("tls_cert " + cert_file + ": the certificate has expired");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    throw config_error("tls_cert " + cert_file + ": the certificate is not valid yet");
  }
  ctx->use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) {
    // OpenSSL checks the pair when the key is set after the certificate.
    if (ERR_GET_LIB(ec.value()) == ERR_LIB_X509 && ERR_GET_REASON(ec.value()) == X509_R_KEY_VALUES_MISMATCH) {
      throw config_error("tls_key " + key_file + ": does not match the certificate in tls_cert " + cert_file);
    }
    throw config_error("tls_key " + key_file + ": does not load: " + why(ec));
  }
  if (SSL_CTX_check_private_key(h) != 1) {
    throw config_error("tls_key " + key_file + ": does not match the certificate in tls_cert " + cert_file);
  }
  return ctx;
}

tls_context::tls_context(std::string cert_file, std::string key_file)
    : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)), current_(load(cert_file_, key_file_)) {}

std::shared_ptr<asio::ssl::context> tls_context::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

bool tls_context::reload() {
  std::shared_ptr<asio::ssl::context> fresh;
  try {
    fresh = load(cert_file_, key_file_);
  } catch (std::exception const& x) {
    log::error("TLS reload failed, keeping the certificate in use", {{"error", x.what()}});
    return false;
  }
  {
    std::lock_guard lock(mutex_);
    current_.swap(fresh);
  }
  log::info("TLS certificate reloaded", {{"tls_cert", cert_file_}, {"tls_key", key_file_}});
  return true;
}

}  // namespace keel::detail
