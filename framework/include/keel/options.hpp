#pragma once
// Every server setting of SPEC §2 with its safe default.
//
// Each setting has one name spelled three ways: JSON key `header_timeout`,
// environment `KEEL_HEADER_TIMEOUT`, flag `--header-timeout` (see keel/config.hpp).
// Tests set timeouts to milliseconds through these fields.
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace keel {

using std::chrono::milliseconds;

struct reconnect_policy {
  milliseconds base{500};
  double multiplier = 2.0;
  milliseconds cap{30'000};
  milliseconds reset_after{30'000};  ///< a connection up this long resets the backoff
};

struct options {
  std::string listen = "127.0.0.1:8080";  ///< HOST:PORT; port 0 picks a free port
  unsigned threads = 0;                   ///< 0 = the CPUs in the affinity mask

  milliseconds header_timeout{10'000};
  milliseconds body_timeout{30'000};
  std::size_t body_min_rate = 240;  ///< bytes per second, averaged after the grace
  milliseconds body_min_rate_grace{5'000};
  milliseconds idle_timeout{60'000};
  milliseconds write_timeout{30'000};
  milliseconds handler_timeout{30'000};

  std::size_t max_head = 16 * 1024;
  std::size_t max_header_count = 100;
  std::size_t max_body = 1024 * 1024;
  std::size_t max_connections = 10'000;
  /// Open connections from one client address (trusted proxies are not capped).
  std::size_t max_connections_per_client = 1'000;

  milliseconds ws_handshake_timeout{10'000};
  milliseconds ws_ping_interval{30'000};
  milliseconds ws_pong_timeout{10'000};
  std::size_t ws_max_message = 64 * 1024;
  std::size_t ws_send_queue = 1024 * 1024;
  bool ws_permessage_deflate = false;
  /// Empty = same host only. "*" allows any origin.
  std::vector<std::string> ws_allowed_origins;

  milliseconds drain_timeout{10'000};
  milliseconds drain_delay{0};
  std::vector<std::string> trusted_proxies;  ///< CIDRs
  std::string admin_listen;                  ///< empty = admin endpoints on the main listener (app::admin_routes)
  bool dev_mode = false;

  std::string tls_cert;
  std::string tls_key;
  milliseconds tls_handshake_timeout{10'000};
  /// With TLS: a plain-HTTP listener on this HOST:PORT answering every request
  /// with a 308 to the same path on the https listener. Empty = none.
  std::string https_redirect;
  milliseconds sse_heartbeat{15'000};

  std::string log_level = "info";  ///< debug, info, warn, error

  std::size_t offload_threads = 4;     ///< blocking-work pool size
  std::size_t offload_queue = 1024;    ///< queued jobs before offload refuses with 503

  reconnect_policy reconnect;
  std::string redis;  ///< redis://HOST:PORT/DB, empty = in-process hub

  /// The thread count after resolving 0 to the affinity mask.
  unsigned effective_threads() const;
};

}  // namespace keel
