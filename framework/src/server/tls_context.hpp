#pragma once
// The server's TLS settings (tls_cert, tls_key): TLS 1.2 and 1.3 only, a modern
// cipher list, ALPN http/1.1. Loading checks that the certificate chain and the
// key load, that they match and that the certificate has not expired, and
// throws keel::config_error naming the file otherwise. reload() (SIGHUP) swaps
// in a freshly loaded context for new connections; open ones keep the one they
// started with (each holds a shared_ptr to it).
#include <keel/net.hpp>

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <mutex>
#include <string>

namespace keel::detail {

class tls_context {
 public:
  /// Loads both files now; throws config_error naming the one at fault.
  tls_context(std::string cert_file, std::string key_file);

  /// The context new connections use. Any thread.
  std::shared_ptr<asio::ssl::context> current() const;
  /// Loads the files again; on failure logs why and keeps the old context.
  /// Returns whether the new files took. Any thread.
  bool reload();

  /// Builds a server context from the files; throws config_error naming the file.
  static std::shared_ptr<asio::ssl::context> load(std::string const& cert_file, std::string const& key_file);

 private:
  std::string cert_file_;
  std::string key_file_;
  mutable std::mutex mutex_;
  std::shared_ptr<asio::ssl::context> current_;
};

}  // namespace keel::detail
