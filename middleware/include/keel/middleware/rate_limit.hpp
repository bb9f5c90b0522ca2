#pragma once
// Token-bucket rate limiting per client, principal or any key.
//
//   app.use(keel::mw::rate_limit({.rate = 50, .burst = 100}));            // per client address
//   api.use(keel::mw::rate_limit({.rate = 5, .burst = 10, .key = keel::mw::by_principal()}));
//
// Each key has a bucket of `burst` tokens refilled at `rate` per second; a
// request takes one. An empty bucket answers 429 problem with `Retry-After`
// (whole seconds until a token is back, at least 1) and the handler does not
// run. A key function returning an empty string exempts the request.
//
// Memory is bounded: at most `max_keys` buckets (split over the shards), the
// least recently used evicted first (it is the one most likely full again, so
// forgetting it costs nothing). Thread-safe: keys are spread over `shards`
// independently locked maps, so I/O threads rarely contend.
#include <keel/middleware.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace keel::mw {

namespace name {
inline constexpr std::string_view rate_limit = "rate_limit";
}

using rate_key = std::function<std::string(context&)>;

/// The client address (the peer, or what a trusted proxy says).
rate_key by_client_address();
/// The principal's subject (authenticate() must run first); the client
/// address when there is none.
rate_key by_principal();

struct rate_limit_options {
  double rate = 10;    ///< tokens added per second
  double burst = 20;   ///< bucket size: requests allowed at once
  rate_key key;        ///< default: by_client_address()
  std::size_t max_keys = 100'000;
  std::size_t shards = 16;
};

middleware rate_limit(rate_limit_options opts);

}  // namespace keel::mw
