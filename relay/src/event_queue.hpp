#pragma once
// The Beast-free core of the events relay (events.cpp): splitting an SDK's events body into its
// events without re-serializing them (they are forwarded verbatim), batching them per (channel,
// schema, tags) within per-environment bounds, the rate limit and the sampling under pressure,
// and what an answer from the events service means for a batch.
//
// Thread safety: none; EventsRelay holds an environment's lock around its EnvironmentQueue.

#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "flagrelay/config/config.hpp"

namespace flagrelay::relay::events {

/// The raw text of each element of a JSON array of objects, as given; or, when `body` is not
/// one, what is wrong with it (`error` non-empty). Strict JSON (RFC 8259), nesting at most 64.
struct SplitResult {
  std::vector<std::string_view> events;
  std::string error;
};
[[nodiscard]] SplitResult SplitEvents(std::string_view body);

/// Empty when `body` is one JSON object (a diagnostic event), else what is wrong with it.
[[nodiscard]] std::string CheckObject(std::string_view body);

/// Which SDKs posted the events: decides the outbound path and credential.
enum class Channel : std::uint8_t { kServer, kMobile, kBrowser };

struct BatchKey {
  Channel channel = Channel::kServer;
  std::string schema;  // X-LaunchDarkly-Event-Schema as received
  std::string tags;    // X-LaunchDarkly-Tags as received
  /// X-LaunchDarkly-Unsummarized was present (PHP, which does not summarize): forwarded with
  /// the header, so that the events service summarizes them (docs/events.md).
  bool unsummarized = false;
  friend auto operator<=>(const BatchKey&, const BatchKey&) = default;
};

/// Events on their way upstream in one POST.
struct Batch {
  BatchKey key;
  std::string body;  // a JSON array
  std::size_t events = 0;
};

/// What became of the events of one POST (each counted once).
struct Admission {
  std::size_t accepted = 0;
  std::size_t disabled = 0;      // the environment's events are switched off
  std::size_t rate_limited = 0;  // over events.rateLimit
  std::size_t sampled = 0;       // left out by events.sampleRatio under pressure
  std::size_t queue_full = 0;    // over events.maxQueueEvents / maxQueueBytes
};

/// One environment's accepted events until they are delivered or dropped: batches being filled,
/// and the count and bytes of everything accepted and not yet released, which the bounds limit.
class EnvironmentQueue {
 public:
  using Clock = std::chrono::steady_clock;

  EnvironmentQueue(const config::EventsConfig& limits,
                   const config::EnvironmentEventsConfig& settings, Clock::time_point now);

  /// New switches (SIGHUP): the rate limit starts with a full bucket.
  void Configure(const config::EnvironmentEventsConfig& settings, Clock::time_point now);
  [[nodiscard]] const config::EnvironmentEventsConfig& settings() const { return settings_; }

  /// Takes what the switches and bounds let in; batches that reach events.maxBatch are sealed
  /// and appended to `ready`.
  Admission Add(const BatchKey& key, const std::vector<std::string_view>& events,
                Clock::time_point now, std::vector<Batch>& ready);
  /// Seals every batch being filled (the flush interval, shutdown).
  void SealAll(std::vector<Batch>& ready);
  /// A sealed batch is done with (delivered or dropped): it no longer counts against the bounds.
  void Release(const Batch& batch);

  [[nodiscard]] std::size_t events() const { return events_; }
  [[nodiscard]] std::size_t bytes() const { return bytes_; }
  /// More than half of either bound in use.
  [[nodiscard]] bool UnderPressure() const;

 private:
  struct Filling {
    std::string body;  // '[' and the events so far, comma-separated
    std::size_t events = 0;
  };
  bool TakeToken(Clock::time_point now);
  bool Sample();
  void Seal(std::map<BatchKey, Filling>::iterator it, std::vector<Batch>& ready);

  config::EventsConfig limits_;
  config::EnvironmentEventsConfig settings_;
  std::map<BatchKey, Filling> filling_;
  std::size_t events_ = 0;
  std::size_t bytes_ = 0;
  double tokens_ = 0;
  Clock::time_point refilled_;
  double sample_credit_ = 0;
};

/// What an answer of the events service (0 for a network error or timeout) means for a batch.
enum class Verdict {
  kDelivered,  // 2xx
  kRetry,      // network error, 5xx, 400, 408, 429: once more after a second, then dropped
  kDrop,       // 413 (too large) and other 4xx: this batch is dropped
  kRejected,   // 401, 403: the credential is refused; stop forwarding for the environment
};
[[nodiscard]] Verdict Classify(unsigned status);

}  // namespace flagrelay::relay::events
