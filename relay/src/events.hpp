#pragma once
// The events relay: takes the analytics and diagnostic events SDKs post, and forwards them to
// upstream.eventsUri (LaunchDarkly, or another flagrelay) in gzip batches.
//
// Bend, don't break: the HTTP threads only check, split and queue a body (bounded per
// environment, shed and counted beyond); batching, compression and delivery run on the
// forwarder's own thread and io_context, so an event spike costs its environment's events and
// never flag delivery.
//
// Beast-free header; Asio stays in events.cpp.
//
// Thread safety: Accept, Configure and StatusOf may run on any thread at once; Start and Shutdown
// from the thread that owns the relay.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "event_queue.hpp"
#include "flagrelay/config/config.hpp"
#include "flagrelay/metrics/metrics.hpp"

namespace flagrelay::relay {

class Outbound;

/// One inbound events POST, as the router saw it.
struct EventsPost {
  events::Channel channel = events::Channel::kServer;
  bool diagnostic = false;
  std::string_view body;  // as received (possibly gzip)
  std::string_view content_encoding;
  std::string_view schema;    // X-LaunchDarkly-Event-Schema
  std::string_view tags;      // X-LaunchDarkly-Tags
  bool unsummarized = false;  // X-LaunchDarkly-Unsummarized present
  /// Diagnostics go upstream with the SDK's own headers (Authorization, User-Agent,
  /// X-LaunchDarkly-*).
  std::vector<std::pair<std::string_view, std::string_view>> headers;
};

/// One environment's events, for /status.
struct EventsStatus {
  config::EnvironmentEventsConfig settings;  // as currently applied (SIGHUP)
  bool rejected = false;  // the events service refused the credential (until restart or SIGHUP)
  std::size_t queued_events = 0;  // accepted and not yet delivered or dropped
  std::size_t queued_bytes = 0;
};

struct EventsReply {
  unsigned status = 202;
  std::string message;  // for 4xx: what was wrong
};

class EventsRelay {
 public:
  struct Environment {
    std::shared_ptr<const config::EnvironmentConfig> config;  // name, keys, env ID, switches
    const metrics::EnvironmentMetrics* metrics;               // outlives the relay
  };
  /// Environments ever added, removed ones included (their slot drains and is reused when the
  /// name comes back); a reload beyond this is refused.
  static constexpr std::size_t kMaxEnvironments = 1024;

  EventsRelay(const config::EventsConfig& config, const config::UpstreamConfig& upstream,
              std::shared_ptr<Outbound> outbound, std::string user_agent,
              std::vector<Environment> environments);
  ~EventsRelay();
  EventsRelay(const EventsRelay&) = delete;
  EventsRelay& operator=(const EventsRelay&) = delete;

  /// Starts the forwarder's thread and flush timer.
  void Start();
  /// Seals what is queued and delivers it, waiting at most events.shutdownTimeout; what is not
  /// delivered by then is dropped and counted. Then stops the thread.
  void Shutdown();

  /// A reload added an environment: its slot, for Accept, Configure and StatusOf (the slot it had
  /// if the name was here before). Nullopt when kMaxEnvironments slots are taken. Owner thread.
  std::optional<std::size_t> AddEnvironment(Environment environment);

  /// Checks and queues one POST for environment slot `env` (the constructor's list comes first,
  /// in order).
  EventsReply Accept(std::size_t env, const EventsPost& post);

  /// Applies a new config (switches, keys) to environment slot `env` from now on (reload).
  /// Events already accepted are still delivered; a credential that was refused is tried again.
  void Configure(std::size_t env, std::shared_ptr<const config::EnvironmentConfig> config);
  [[nodiscard]] EventsStatus StatusOf(std::size_t env) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flagrelay::relay
