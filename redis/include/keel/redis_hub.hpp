#pragma once
// A keel::hub whose rooms span server instances, through Redis pub/sub.
//
//   keel::redis_hub_options o;
//   o.url = keel::redis_url::parse("redis://10.0.0.5:6379/0");
//   keel::redis_hub hub(o);                  // owned by the app, outlives sessions
//   hub.join("lobby", ws.handle());          // as with local_hub
//   hub.publish("lobby", text);              // local members now, other instances through Redis
//
// Behaviour:
//  - publish() queues the message for the local members at once (one shared
//    buffer, as local_hub) and hands it to a publisher connection of its own,
//    which PUBLISHes it on channel `<channel_prefix><room>` inside an envelope
//    carrying this instance's id, a sequence number per (instance, room) and
//    the publish time. It returns the number of local members it was queued for.
//  - One subscriber connection is subscribed to exactly the rooms that have
//    local members or observers (observe()). A message from another instance
//    is delivered to the local members and observers once, in publish order
//    per publisher: a sequence number at or below the last one seen is
//    dropped, a jump counts the missed ones. The instance's own echo is
//    ignored (it was delivered locally already).
//  - Delivery across instances is at most once. While Redis is unreachable,
//    local delivery goes on, and publishes that cannot reach Redis are counted
//    as dropped; both connections reconnect with keel::backoff (full jitter),
//    the subscriber then subscribes again to every room with local members,
//    and each of these steps is logged.
//  - Its connections run on a thread of its own, so no server I/O thread ever
//    waits for Redis. Every coroutine it starts is joined by stop() (called
//    by the destructor).
//
// Metrics (keel::metrics::global()):
//   keel_hub_publishes_total                   publish() calls
//   keel_hub_received_total                    messages from other instances, delivered here
//   keel_hub_deliveries_total                  messages queued to local members (per recipient)
//   keel_hub_dropped_total{reason}             redis_down (publish while the publisher is not
//                                              connected), publish_failed (the write or reply
//                                              failed), queue_full, gap (publishes of another
//                                              instance this one missed), duplicate
//   keel_hub_redis_connected{connection}       1 while "publish" / "subscribe" is connected
//                                              (summed over the hubs of a process)
//   keel_hub_delivery_latency_seconds          publish on one instance to delivery on another
//
// Thread-safe: every member may be called from any thread.
#include <keel/backoff.hpp>
#include <keel/hub.hpp>
#include <keel/redis.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace keel {

struct redis_hub_options {
  redis_url url;
  /// This instance's id in envelopes; empty: 16 random hex digits.
  std::string instance_id;
  std::string channel_prefix = "keel:hub:";
  /// Reconnect policy of both connections (SPEC §2's by default).
  backoff_options reconnect{};
  /// A connection that stayed up this long starts the next backoff afresh.
  std::chrono::milliseconds reset_after{std::chrono::seconds(30)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(2)};
  /// Bound on one batch of PUBLISHes and its replies; on expiry the
  /// connection is dropped and the batch counted as publish_failed.
  std::chrono::milliseconds command_timeout{std::chrono::seconds(2)};
  /// The subscriber PINGs this often; a connection silent for twice as long
  /// (a Redis that hangs without closing) is dropped and reconnected. 0: off.
  std::chrono::milliseconds health_interval{std::chrono::seconds(5)};
  /// Publishes waiting for the publisher connection; beyond it: queue_full.
  std::size_t max_queued = 10000;
};

class redis_hub final : public hub {
 public:
  /// Starts connecting at once; a Redis that is down is not an error here.
  explicit redis_hub(redis_hub_options o);
  /// stop(), then waits for nothing else.
  ~redis_hub() override;

  void join(std::string const& room, ws_handle member) override;
  void leave(std::string const& room, ws_handle const& member) override;
  std::size_t publish(std::string const& room, std::string message) override;
  std::size_t member_count(std::string const& room) const override;
  std::vector<std::pair<std::string, std::size_t>> rooms() const override;
  /// Subscribes this instance to the room as a member would: the observer
  /// sees local publishes and those of other instances (once, in order).
  hub_subscription observe(std::string const& room, std::function<void(std::string_view)> fn) override;

  std::string const& instance_id() const;
  /// True while both connections are up (for a readiness check).
  bool connected() const;
  /// Closes both connections and joins the hub's coroutines and thread.
  /// Local delivery keeps working afterwards; idempotent.
  void stop();

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace keel
