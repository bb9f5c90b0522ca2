#include <keel/middleware/rate_limit.hpp>

#include <keel/context.hpp>
#include <keel/middleware/auth.hpp>

#include <cmath>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace keel::mw {

namespace {

struct bucket {
  double tokens;
  clock::time_point refilled;
  std::list<std::string>::iterator lru;  // position in the shard's recency list
};

// One independently locked part of the key space. The recency list keeps the
// least recently used key at its front, for eviction in O(1).
struct shard {
  std::mutex m;
  std::unordered_map<std::string, bucket> buckets;
  std::list<std::string> lru;
};

struct limiter {
  double rate;
  double burst;
  std::size_t per_shard;
  rate_key key;
  std::vector<std::unique_ptr<shard>> shards;

  // Takes a token for `k`: 0 when granted, else the whole seconds until one is back.
  unsigned take(std::string const& k) {
    auto& sh = *shards[std::hash<std::string>{}(k) % shards.size()];
    auto now = clock::now();
    std::lock_guard lk(sh.m);
    auto it = sh.buckets.find(k);
    if (it == sh.buckets.end()) {
      if (sh.buckets.size() >= per_shard) {
        sh.buckets.erase(sh.lru.front());
        sh.lru.pop_front();
      }
      sh.lru.push_back(k);
      it = sh.buckets.emplace(k, bucket{burst, now, std::prev(sh.lru.end())}).first;
    } else {
      sh.lru.splice(sh.lru.end(), sh.lru, it->second.lru);
    }
    auto& b = it->second;
    double elapsed = std::chrono::duration<double>(now - b.refilled).count();
    b.tokens = std::min(burst, b.tokens + elapsed * rate);
    b.refilled = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    double wait = (1 - b.tokens) / rate;
    return static_cast<unsigned>(std::max(1.0, std::ceil(wait)));
  }
};

task<response> run(context& ctx, next n, limiter& l) {
  // keel's own refusals (431, 400...) keep their status and cost no token.
  auto k = ctx.rejected_status() == 0 ? l.key(ctx) : std::string();
  if (!k.empty()) {
    if (auto retry = l.take(k); retry > 0) {
      auto res = ctx.problem(429, "rate limit exceeded");
      res.set_header("Retry-After", std::to_string(retry));
      co_return res;
    }
  }
  co_return co_await n();
}

}  // namespace

rate_key by_client_address() {
  return [](context& ctx) { return ctx.client_address(); };
}

rate_key by_principal() {
  return [](context& ctx) {
    if (auto const* p = ctx.get<principal>(); p && !p->subject.empty()) return "p:" + p->subject;
    return "a:" + ctx.client_address();
  };
}

middleware rate_limit(rate_limit_options opts) {
  if (!(opts.rate > 0) || !(opts.burst >= 1)) {
    throw std::invalid_argument("keel::mw::rate_limit: rate must be > 0 and burst >= 1");
  }
  auto l = std::make_shared<limiter>();
  l->rate = opts.rate;
  l->burst = opts.burst;
  l->key = opts.key ? std::move(opts.key) : by_client_address();
  auto shards = std::max<std::size_t>(1, opts.shards);
  l->per_shard = std::max<std::size_t>(1, (opts.max_keys + shards - 1) / shards);
  for (std::size_t i = 0; i < shards; ++i) l->shards.push_back(std::make_unique<shard>());
  return [l](context& ctx, next n) { return run(ctx, n, *l); };
}

}  // namespace keel::mw
