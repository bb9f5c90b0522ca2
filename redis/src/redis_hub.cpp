// keel::redis_hub: a local_hub for this instance's members, plus two Redis
// connections on a thread of the hub's own: a publisher that PUBLISHes
// envelopes, and a subscriber that follows the set of rooms with local
// members and delivers what other instances publish.
//
// Why a thread of its own rather than a server I/O thread: the hub exists
// before the server starts (apps build it in setup) and must outlive every
// session; its own io_context also makes "every coroutine joined" literal:
// stop() closes the sockets, the loops return, run() returns, join().
#include <keel/log.hpp>
#include <keel/metrics.hpp>
#include <keel/redis_hub.hpp>


#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <charconv>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

namespace keel {

using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;

namespace {

constexpr auto as_tuple_task = asio::as_tuple(use_task);
// A wake-up for one coroutine on the hub thread: a one-slot channel. try_send
// wakes the receiver, or is kept for its next wait (a full slot coalesces);
// close() ends the current wait and every later one. Not a timer parked at
// time_point::max() and cancelled: a timer here is only ever a deadline.
using wake_channel = asio::experimental::channel<executor, void(error_code)>;
// Envelope: "k1 <origin> <seq> <publish time, µs since the epoch>\n<message>".
constexpr std::string_view envelope_tag = "k1 ";

std::string random_id() {
  std::random_device rd;
  std::uint64_t v = (std::uint64_t(rd()) << 32) ^ rd();
  char buf[17];
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, v >>= 4) buf[i] = hex[v & 15];
  buf[16] = 0;
  return buf;
}

std::int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

struct envelope {
  std::string_view origin;
  std::uint64_t seq = 0;
  std::int64_t ts_us = 0;
  std::string_view body;
};

bool parse_envelope(std::string_view s, envelope& e) {
  if (s.substr(0, envelope_tag.size()) != envelope_tag) return false;
  s.remove_prefix(envelope_tag.size());
  auto sp = s.find(' ');
  if (sp == std::string_view::npos || sp == 0) return false;
  e.origin = s.substr(0, sp);
  s.remove_prefix(sp + 1);
  auto [p1, ec1] = std::from_chars(s.data(), s.data() + s.size(), e.seq);
  if (ec1 != std::errc() || p1 == s.data() + s.size() || *p1 != ' ') return false;
  s.remove_prefix(static_cast<std::size_t>(p1 - s.data()) + 1);
  auto [p2, ec2] = std::from_chars(s.data(), s.data() + s.size(), e.ts_us);
  if (ec2 != std::errc() || p2 == s.data() + s.size() || *p2 != '\n') return false;
  s.remove_prefix(static_cast<std::size_t>(p2 - s.data()) + 1);
  e.body = s;
  return true;
}

struct hub_metrics {
  metrics::counter& publishes;
  metrics::counter& received;
  metrics::counter& deliveries;
  metrics::counter_family dropped;
  metrics::histogram& latency;
  metrics::counter& redis_down;
  metrics::counter& publish_failed;
  metrics::counter& queue_full;
  metrics::counter& gap;
  metrics::counter& duplicate;

  static hub_metrics& get() {
    static hub_metrics m = make();
    return m;
  }
  static hub_metrics make() {
    auto& reg = metrics::global();
    auto dropped = reg.add_counter_family(
        "keel_hub_dropped_total", "Hub messages that did not cross instances, by reason.", {"reason"});
    return hub_metrics{
        reg.add_counter("keel_hub_publishes_total", "Messages published to a hub."),
        reg.add_counter("keel_hub_received_total", "Messages from other instances delivered here."),
        reg.add_counter("keel_hub_deliveries_total", "Hub messages queued to local members, per recipient."),
        dropped,
        reg.add_histogram("keel_hub_delivery_latency_seconds",
                          "From publish on one instance to delivery on another.",
                          {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
        dropped.labels({"redis_down"}),
        dropped.labels({"publish_failed"}),
        dropped.labels({"queue_full"}),
        dropped.labels({"gap"}),
        dropped.labels({"duplicate"}),
    };
  }
};

}  // namespace

struct redis_hub::impl : std::enable_shared_from_this<impl> {
  explicit impl(redis_hub_options o)
      : opts(std::move(o)),
        id(opts.instance_id.empty() ? random_id() : opts.instance_id),
        m(hub_metrics::get()),
        pub_wake(ioc.get_executor(), 1),
        sub_wake(ioc.get_executor(), 1),
        pub_conn(ioc.get_executor()),
        sub_conn(ioc.get_executor()) {
    auto& reg = metrics::global();
    auto fam = reg.add_gauge_family("keel_hub_redis_connected",
                                    "1 while the hub's Redis connection is up, by connection.", {"connection"});
    pub_gauge = &fam.labels({"publish"});
    sub_gauge = &fam.labels({"subscribe"});
  }

  ~impl() { stop(); }

  redis_hub_options opts;
  std::string id;
  hub_metrics& m;
  local_hub local;
  asio::io_context ioc{1};
  std::thread thread;
  std::mutex stop_mutex;
  std::atomic<bool> stopping{false};
  metrics::gauge* pub_gauge = nullptr;
  metrics::gauge* sub_gauge = nullptr;

  // Publish side, shared with publish() callers.
  struct queued {
    std::string channel;
    std::string envelope;
  };
  std::mutex mutex;
  std::unordered_map<std::string, std::uint64_t> pub_seq;  ///< per room; never reset (receivers track it)
  std::deque<queued> queue;
  bool pub_up = false;
  bool pub_wake_posted = false;
  std::atomic<bool> sub_wake_posted{false};
  std::atomic<bool> sub_up{false};
  bool sub_dirty = false;  ///< hub thread: the rooms changed since sub_writer looked
  clock::time_point sub_last_rx{};    ///< hub thread: the subscriber's last reply
  clock::time_point sub_last_ping{};  ///< hub thread

  // Hub thread only.
  wake_channel pub_wake;
  wake_channel sub_wake;
  redis_connection pub_conn;
  redis_connection sub_conn;
  std::set<std::string> subscribed;
  std::unordered_map<std::string, std::unordered_map<std::string, std::uint64_t>> last_seen;  ///< room → origin → seq

  void start() {
    spawn(publisher(), "publisher");
    spawn(subscriber(), "subscriber");
    thread = std::thread([this] { ioc.run(); });
  }

  template <class Task>
  void spawn(Task t, char const* what) {
    asio::co_spawn(ioc, std::move(t), [what](std::exception_ptr const& e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (std::exception const& x) {
        log::error("redis_hub: coroutine failed", {{"coroutine", what}, {"error", x.what()}});
      }
    });
  }

  void stop() {
    std::lock_guard lock(stop_mutex);
    if (!thread.joinable()) return;
    stopping = true;
    asio::post(ioc, [this] {
      pub_wake.close();
      sub_wake.close();
      pub_conn.close();
      sub_conn.close();
    });
    thread.join();
  }

  // --- waiting ---------------------------------------------------------------

  /// Sleeps until `deadline`, or until stop(); other wake-ups are ignored.
  task<void> pause(wake_channel& w, clock::time_point deadline) {
    steady_timer t(ioc.get_executor(), deadline);
    while (!stopping && clock::now() < deadline) {
      co_await (t.async_wait(as_tuple_task) || w.async_receive(as_tuple_task));
    }
  }

  /// Sleeps until woken (wake()) or stop().
  task<void> wait_woken(wake_channel& w) { co_await w.async_receive(as_tuple_task); }

  /// Hub thread: wakes `w`'s coroutine now or at its next wait (coalesced).
  static void wake(wake_channel& w) { w.try_send(error_code{}); }

  void wake_subscriber() {
    if (sub_wake_posted.exchange(true)) return;
    asio::post(ioc, [this] {
      sub_wake_posted = false;
      sub_dirty = true;
      wake(sub_wake);
    });
  }

  // --- publish ---------------------------------------------------------------

  std::size_t publish(std::string const& room, std::string message) {
    m.publishes.inc();
    {
      std::lock_guard lock(mutex);
      auto seq = ++pub_seq[room];
      if (!pub_up) {
        m.redis_down.inc();
      } else if (queue.size() >= opts.max_queued) {
        m.queue_full.inc();
      } else {
        std::string env;
        env.reserve(64 + message.size());
        env += envelope_tag;
        env += id;
        env += ' ';
        env += std::to_string(seq);
        env += ' ';
        env += std::to_string(now_us());
        env += '\n';
        env += message;
        queue.push_back({opts.channel_prefix + room, std::move(env)});
        if (!pub_wake_posted) {
          pub_wake_posted = true;
          asio::post(ioc, [this] {
            {
              std::lock_guard l(mutex);
              pub_wake_posted = false;
            }
            wake(pub_wake);
          });
        }
      }
    }
    auto n = local.publish(room, std::move(message));
    m.deliveries.inc(n);
    return n;
  }

  void set_pub_up(bool up) {
    std::size_t lost = 0;
    {
      std::lock_guard lock(mutex);
      pub_up = up;
      if (!up) {
        lost = queue.size();
        queue.clear();
      }
    }
    if (lost) m.publish_failed.inc(lost);
    pub_gauge->add(up ? 1 : -1);
  }

  task<void> publisher() {
    backoff retry(opts.reconnect);
    while (!stopping) {
      auto ec = co_await pub_conn.connect(opts.url, opts.connect_timeout);
      if (stopping) break;
      if (ec) {
        auto delay = retry.next();
        log::warn("redis_hub: publisher cannot connect",
                  {{"url", opts.url.str()}, {"error", ec.message()}, {"attempt", retry.attempts()},
                   {"retry_ms", static_cast<std::int64_t>(delay.count())}});
        co_await pause(pub_wake, clock::now() + delay);
        continue;
      }
      set_pub_up(true);
      log::info("redis_hub: publisher connected", {{"url", opts.url.str()}, {"instance", id}});
      auto since = clock::now();
      co_await publish_batches();
      if (clock::now() - since >= opts.reset_after) retry.reset();
      set_pub_up(false);
      pub_conn.close();
      if (!stopping) log::warn("redis_hub: publisher disconnected", {{"url", opts.url.str()}});
    }
  }

  /// Sends what publish() queued until the connection fails or stop().
  task<void> publish_batches() {
    std::vector<redis_command> batch;
    while (!stopping) {
      batch.clear();
      {
        std::lock_guard lock(mutex);
        for (auto& q : queue) batch.push_back({"PUBLISH", std::move(q.channel), std::move(q.envelope)});
        queue.clear();
      }
      if (batch.empty()) {
        // Idle: a reply-less connection that becomes readable has been closed.
        auto r = co_await (wait_woken(pub_wake) || pub_conn.read());
        if (r.index() == 1) co_return;
        continue;
      }
      auto [ec, replies] = co_await pub_conn.pipeline(batch, opts.command_timeout);
      if (ec) {
        m.publish_failed.inc(batch.size());
        co_return;
      }
      for (auto const& r : replies) {
        if (r.is_error()) m.publish_failed.inc();
      }
    }
  }

  // --- subscribe -------------------------------------------------------------

  task<void> subscriber() {
    backoff retry(opts.reconnect);
    while (!stopping) {
      auto ec = co_await sub_conn.connect(opts.url, opts.connect_timeout);
      if (stopping) break;
      if (ec) {
        auto delay = retry.next();
        log::warn("redis_hub: subscriber cannot connect",
                  {{"url", opts.url.str()}, {"error", ec.message()}, {"attempt", retry.attempts()},
                   {"retry_ms", static_cast<std::int64_t>(delay.count())}});
        co_await pause(sub_wake, clock::now() + delay);
        continue;
      }
      subscribed.clear();
      sub_last_rx = sub_last_ping = clock::now();
      sub_up = true;
      sub_gauge->add(1);
      log::info("redis_hub: subscriber connected, subscribing to the rooms with local members",
                {{"url", opts.url.str()}, {"rooms", static_cast<std::uint64_t>(local.rooms().size())}});
      auto since = clock::now();
      co_await (sub_reader() || sub_writer());
      if (clock::now() - since >= opts.reset_after) retry.reset();
      sub_up = false;
      sub_gauge->add(-1);
      sub_conn.close();
      if (!stopping) log::warn("redis_hub: subscriber disconnected", {{"url", opts.url.str()}});
    }
  }

  /// Keeps the subscriptions equal to the rooms with local members or observers.
  task<void> sub_writer() {
    while (!stopping) {
      sub_dirty = false;
      std::set<std::string> desired;
      for (auto& [room, n] : local.rooms()) desired.insert(opts.channel_prefix + room);
      for (auto& room : local.observed_rooms()) desired.insert(opts.channel_prefix + room);
      std::string out;
      redis_command sub{"SUBSCRIBE"}, unsub{"UNSUBSCRIBE"};
      for (auto const& c : desired) {
        if (!subscribed.count(c)) sub.push_back(c);
      }
      for (auto const& c : subscribed) {
        if (!desired.count(c)) unsub.push_back(c);
      }
      if (sub.size() > 1) redis_connection::format(out, sub);
      if (unsub.size() > 1) redis_connection::format(out, unsub);
      // A room subscribed again later starts its sequence tracking afresh.
      std::erase_if(last_seen, [&](auto const& e) { return !desired.count(opts.channel_prefix + e.first); });
      subscribed = std::move(desired);
      if (!out.empty()) {
        if (auto ec = co_await sub_conn.write(out)) co_return;
      }
      if (auto h = opts.health_interval; h.count() > 0) {
        auto now = clock::now();
        if (now - sub_last_rx > 2 * h) {
          log::warn("redis_hub: subscriber connection silent, reconnecting",
                    {{"url", opts.url.str()}, {"silent_ms", static_cast<std::int64_t>(
                        std::chrono::duration_cast<std::chrono::milliseconds>(now - sub_last_rx).count())}});
          co_return;
        }
        if (now - sub_last_ping >= h) {
          std::string ping;
          redis_connection::format(ping, {"PING"});
          sub_last_ping = now;
          if (auto ec = co_await sub_conn.write(ping)) co_return;
        }
        if (!sub_dirty && !stopping) co_await pause_or_wake(sub_wake, sub_last_ping + h);
      } else if (!sub_dirty && !stopping) {
        co_await wait_woken(sub_wake);
      }
    }
  }

  /// Sleeps until `deadline`, a wake-up or stop().
  task<void> pause_or_wake(wake_channel& w, clock::time_point deadline) {
    steady_timer t(ioc.get_executor(), deadline);
    co_await (t.async_wait(as_tuple_task) || w.async_receive(as_tuple_task));
  }

  task<void> sub_reader() {
    for (;;) {
      auto [ec, r] = co_await sub_conn.read();
      if (ec) co_return;
      sub_last_rx = clock::now();  // a message, an acknowledgement or a pong
      if (r.type != redis_reply::kind::array || r.elements.size() != 3) continue;
      if (r.elements[0].str != "message") continue;  // subscribe/unsubscribe acknowledgements
      on_message(r.elements[1].str, r.elements[2].str);
    }
  }

  void on_message(std::string const& channel, std::string const& payload) {
    if (!subscribed.count(channel)) return;  // in flight while we unsubscribed
    envelope e;
    if (!parse_envelope(payload, e)) {
      log::warn("redis_hub: a message that is not a hub envelope", {{"channel", channel}});
      return;
    }
    if (e.origin == id) return;  // delivered locally at publish time
    auto room = channel.substr(opts.channel_prefix.size());
    auto& last = last_seen[room][std::string(e.origin)];
    if (e.seq <= last) {
      m.duplicate.inc();
      return;
    }
    if (last != 0 && e.seq > last + 1) m.gap.inc(e.seq - last - 1);
    last = e.seq;
    auto age = now_us() - e.ts_us;
    if (age >= 0) m.latency.observe(static_cast<double>(age) / 1e6);
    m.received.inc();
    m.deliveries.inc(local.publish(room, std::string(e.body)));
  }
};

redis_hub::redis_hub(redis_hub_options o) : impl_(std::make_shared<impl>(std::move(o))) { impl_->start(); }

redis_hub::~redis_hub() { impl_->stop(); }

void redis_hub::join(std::string const& room, ws_handle member) {
  if (!member || !member.is_open()) return;
  impl_->local.join(room, member);
  // After local_hub's own leave (registered first, run first): when the
  // session ends the subscriber recomputes the rooms with local members.
  std::weak_ptr<impl> weak = impl_;
  member.on_end([weak] {
    if (auto h = weak.lock()) h->wake_subscriber();
  });
  impl_->wake_subscriber();
}

void redis_hub::leave(std::string const& room, ws_handle const& member) {
  impl_->local.leave(room, member);
  impl_->wake_subscriber();
}

std::size_t redis_hub::publish(std::string const& room, std::string message) {
  return impl_->publish(room, std::move(message));
}

std::size_t redis_hub::member_count(std::string const& room) const { return impl_->local.member_count(room); }

std::vector<std::pair<std::string, std::size_t>> redis_hub::rooms() const { return impl_->local.rooms(); }

hub_subscription redis_hub::observe(std::string const& room, std::function<void(std::string_view)> fn) {
  auto inner = std::make_shared<hub_subscription>(impl_->local.observe(room, std::move(fn)));
  impl_->wake_subscriber();
  std::weak_ptr<impl> weak = impl_;
  return hub_subscription([weak, inner] {
    inner->reset();
    if (auto h = weak.lock()) h->wake_subscriber();
  });
}

std::string const& redis_hub::instance_id() const { return impl_->id; }

bool redis_hub::connected() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->pub_up && impl_->sub_up;
}

void redis_hub::stop() { impl_->stop(); }

}  // namespace keel
