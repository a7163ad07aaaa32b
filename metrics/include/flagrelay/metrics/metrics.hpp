#pragma once
// flagrelay's Prometheus metrics: every series is declared here, resolved once at start-up and
// handed to components as references, so the hot path only does atomic increments (no label
// lookups). Label values are low-cardinality by construction: environment names from the config,
// route templates, SDK kinds, status classes. Never a key, a flag or a context.
//
// Thread safety: handles are prometheus-cpp metrics (atomic, thread-safe). The Add*/Resolve
// functions take a lock and are meant for start-up; Serialize may run concurrently with updates.
// The metric names are a contract, documented in docs/metrics.md.

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace flagrelay::metrics {

enum class SdkKind { kServer, kMobile, kBrowser };
inline constexpr std::size_t kSdkKinds = 3;
[[nodiscard]] std::string_view ToString(SdkKind kind);  // "server" | "mobile" | "browser"

enum class UpdateKind { kPut, kPatch, kDelete };
enum class UpdateResult { kApplied, kStale };
enum class DataSourceLabel { kNone, kCache, kFile, kUpstream };
inline constexpr std::size_t kDataSources = 4;
/// Upstream connection states, as in /status (label values in lower case).
enum class UpstreamState { kInitializing, kValid, kInterrupted, kOff };
inline constexpr std::size_t kUpstreamStates = 4;
/// Why the upstream connection failed (ld-relay's error kinds, lower case).
enum class ErrorKind { kNetworkError, kErrorResponse, kInvalidData, kUnknown };
inline constexpr std::size_t kErrorKinds = 4;
enum class PollResult { kOk, kNotModified, kError };

/// Why accepted-for-reading events were not forwarded (flagrelay_events_dropped_total{reason}).
enum class EventDropReason {
  kDisabled,             // environments.<name>.events.enabled is false
  kRateLimited,          // over events.rateLimit
  kSampled,              // left out by events.sampleRatio under pressure
  kQueueFull,            // over events.maxQueueEvents / maxQueueBytes
  kDiagnosticQueueFull,  // over events.maxDiagnosticQueue
  kUpstreamRejected,     // the events service refused the credential (401/403)
  kRefusedBatch,         // the events service refused the batch (413, other 4xx)
  kUndeliverable,        // network error or 5xx/400/408/429 twice
  kShutdown,             // still queued when events.shutdownTimeout passed
};
inline constexpr std::size_t kEventDropReasons = 9;

/// The series of one environment (label `env`).
struct EnvironmentMetrics {
  std::array<prometheus::Gauge*, kSdkKinds> streams{};               // flagrelay_sdk_streams
  std::array<prometheus::Counter*, kSdkKinds> stream_connections{};  // ..._stream_connections_total
  prometheus::Counter* slow_disconnects = nullptr;  // flagrelay_sdk_stream_slow_disconnects_total
  prometheus::Gauge* upstream_connected = nullptr;  // flagrelay_upstream_connected
  std::array<prometheus::Gauge*, kUpstreamStates>
      upstream_state{};  // flagrelay_upstream_state{state}
  std::array<prometheus::Counter*, kErrorKinds>
      upstream_reconnects{};  // ..._reconnects_total{kind}
  prometheus::Gauge* upstream_last_activity_age =
      nullptr;  // ..._last_activity_age_seconds (at scrape)
  std::array<prometheus::Counter*, 3> upstream_polls{};  // flagrelay_upstream_polls_total{result}
  std::array<std::array<prometheus::Counter*, 2>, 3> updates{};  // [UpdateKind][UpdateResult]
  prometheus::Gauge* last_update_timestamp =
      nullptr;                            // flagrelay_data_last_update_timestamp_seconds
  prometheus::Gauge* data_age = nullptr;  // flagrelay_data_age_seconds (set at scrape)
  std::array<prometheus::Gauge*, kDataSources> data_source{};  // flagrelay_data_source{source}
  prometheus::Gauge* snapshot_bytes = nullptr;                 // flagrelay_snapshot_bytes
  prometheus::Gauge* snapshot_flags = nullptr;     // flagrelay_snapshot_items{kind="flags"}
  prometheus::Gauge* snapshot_segments = nullptr;  // flagrelay_snapshot_items{kind="segments"}
  prometheus::Histogram* cache_commit_duration = nullptr;  // ..._cache_commit_duration_seconds
  prometheus::Counter* cache_commits_ok = nullptr;  // flagrelay_cache_commits_total{result="ok"}
  prometheus::Counter* cache_commits_failed = nullptr;  // ...{result="error"}
  prometheus::Gauge* cache_healthy = nullptr;           // flagrelay_cache_healthy
  std::function<prometheus::Counter&(std::string_view outcome)> cache_loads;  // start-up only
  prometheus::Counter* events_received = nullptr;   // flagrelay_events_received_total
  prometheus::Counter* events_forwarded = nullptr;  // flagrelay_events_forwarded_total
  std::array<prometheus::Counter*, kEventDropReasons> events_dropped{};  // ..._dropped_total
  prometheus::Counter* diagnostics_forwarded = nullptr;  // ..._diagnostic_events_forwarded_total
  prometheus::Gauge* events_queued = nullptr;            // flagrelay_events_queued
  prometheus::Gauge* events_queued_bytes = nullptr;      // flagrelay_events_queued_bytes
  prometheus::Gauge* events_forwarding = nullptr;        // flagrelay_events_forwarding (1 or 0)
  prometheus::Counter& EventsDropped(EventDropReason reason) const {
    return *events_dropped[static_cast<std::size_t>(reason)];
  }

  prometheus::Counter& Updates(UpdateKind kind, UpdateResult result) const {
    return *updates[static_cast<std::size_t>(kind)][static_cast<std::size_t>(result)];
  }
  void SetDataSource(DataSourceLabel source) const;
  void SetUpstreamState(UpstreamState state) const;
  prometheus::Counter& Reconnects(ErrorKind kind) const {
    return *upstream_reconnects[static_cast<std::size_t>(kind)];
  }
  prometheus::Counter& Polls(PollResult result) const {
    return *upstream_polls[static_cast<std::size_t>(result)];
  }
};

class RelayMetrics {
 public:
  explicit RelayMetrics(std::string_view version);
  RelayMetrics(const RelayMetrics&) = delete;
  RelayMetrics& operator=(const RelayMetrics&) = delete;

  /// Registers the series of one environment. The reference stays valid for the life of this
  /// object. A name seen before (an environment removed and added again by a reload) gets its
  /// series back, shown again, with its state gauges reset.
  const EnvironmentMetrics& AddEnvironment(std::string_view env_name);
  /// Hides an environment's series from scrapes (it was removed by a reload). They stay
  /// allocated, so whatever still holds the reference can keep using it safely.
  void RetireEnvironment(std::string_view env_name);

  /// flagrelay_http_requests_total{route,method,status}; `status` is a class such as "2xx".
  /// Start-up only: callers resolve every combination they will use into a table.
  prometheus::Counter& HttpRequests(std::string_view route, std::string_view method,
                                    std::string_view status_class);

  /// flagrelay_http_request_duration_seconds{route,method}: time to produce the response (for a
  /// stream, to open it), not to send it. Start-up only, like HttpRequests.
  prometheus::Histogram& HttpRequestDuration(std::string_view route, std::string_view method);

  prometheus::Gauge& http_connections() { return *http_connections_; }
  prometheus::Counter& http_connections_rejected() { return *http_connections_rejected_; }

  /// Runs `hook` before each serialization (to refresh gauges derived from time, like ages).
  void OnScrape(std::function<void()> hook);

  /// The Prometheus text exposition format (0.0.4).
  [[nodiscard]] std::string Serialize();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& streams_;
  prometheus::Family<prometheus::Counter>& stream_connections_;
  prometheus::Family<prometheus::Counter>& slow_disconnects_;
  prometheus::Family<prometheus::Gauge>& upstream_connected_;
  prometheus::Family<prometheus::Counter>& upstream_reconnects_;
  prometheus::Family<prometheus::Gauge>& upstream_state_;
  prometheus::Family<prometheus::Gauge>& upstream_activity_age_;
  prometheus::Family<prometheus::Counter>& upstream_polls_;
  prometheus::Family<prometheus::Counter>& updates_;
  prometheus::Family<prometheus::Gauge>& last_update_;
  prometheus::Family<prometheus::Gauge>& data_age_;
  prometheus::Family<prometheus::Gauge>& data_source_;
  prometheus::Family<prometheus::Gauge>& snapshot_bytes_;
  prometheus::Family<prometheus::Gauge>& snapshot_items_;
  prometheus::Family<prometheus::Histogram>& cache_commit_duration_;
  prometheus::Family<prometheus::Counter>& cache_commits_;
  prometheus::Family<prometheus::Gauge>& cache_healthy_;
  prometheus::Family<prometheus::Counter>& cache_loads_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_request_duration_;
  prometheus::Family<prometheus::Counter>& events_received_;
  prometheus::Family<prometheus::Counter>& events_forwarded_;
  prometheus::Family<prometheus::Counter>& events_dropped_;
  prometheus::Family<prometheus::Counter>& diagnostics_forwarded_;
  prometheus::Family<prometheus::Gauge>& events_queued_;
  prometheus::Family<prometheus::Gauge>& events_queued_bytes_;
  prometheus::Family<prometheus::Gauge>& events_forwarding_;
  prometheus::Gauge* http_connections_;
  prometheus::Counter* http_connections_rejected_;

  std::mutex mutex_;  // guards environments_, retired_ and hooks_
  std::map<std::string, std::unique_ptr<EnvironmentMetrics>, std::less<>> environments_;
  std::set<std::string, std::less<>> retired_;
  std::vector<std::function<void()>> hooks_;
};

}  // namespace flagrelay::metrics
