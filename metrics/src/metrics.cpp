#include "flagrelay/metrics/metrics.hpp"

#include <prometheus/text_serializer.h>

#include <algorithm>

namespace flagrelay::metrics {

namespace {

template <class Builder>
auto& Register(Builder&& builder, prometheus::Registry& registry, const char* name,
               const char* help) {
  return builder.Name(name).Help(help).Register(registry);
}

// Cache commits are fsyncs: sub-millisecond on tmpfs, ~1-20 ms on SSDs, worse on network disks.
const prometheus::Histogram::BucketBoundaries kCommitBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

}  // namespace

std::string_view ToString(SdkKind kind) {
  switch (kind) {
    case SdkKind::kMobile:
      return "mobile";
    case SdkKind::kBrowser:
      return "browser";
    case SdkKind::kServer:
      break;
  }
  return "server";
}

void EnvironmentMetrics::SetDataSource(DataSourceLabel source) const {
  for (std::size_t i = 0; i < kDataSources; ++i) {
    data_source[i]->Set(i == static_cast<std::size_t>(source) ? 1 : 0);
  }
}

void EnvironmentMetrics::SetUpstreamState(UpstreamState state) const {
  for (std::size_t i = 0; i < kUpstreamStates; ++i) {
    upstream_state[i]->Set(i == static_cast<std::size_t>(state) ? 1 : 0);
  }
  upstream_connected->Set(state == UpstreamState::kValid ? 1 : 0);
}

RelayMetrics::RelayMetrics(std::string_view version)
    : registry_(std::make_shared<prometheus::Registry>()),
      streams_(Register(prometheus::BuildGauge(), *registry_, "flagrelay_sdk_streams",
                        "SDK streams currently open, by environment and SDK kind")),
      stream_connections_(Register(prometheus::BuildCounter(), *registry_,
                                   "flagrelay_sdk_stream_connections_total",
                                   "SDK streams opened, by environment and SDK kind")),
      slow_disconnects_(Register(
          prometheus::BuildCounter(), *registry_, "flagrelay_sdk_stream_slow_disconnects_total",
          "SDK streams closed because the client fell behind its queue bound")),
      upstream_connected_(
          Register(prometheus::BuildGauge(), *registry_, "flagrelay_upstream_connected",
                   "1 while the upstream stream of the environment is open and healthy")),
      upstream_reconnects_(Register(prometheus::BuildCounter(), *registry_,
                                    "flagrelay_upstream_reconnects_total",
                                    "Upstream stream reconnects after a failure, by error kind")),
      upstream_state_(Register(prometheus::BuildGauge(), *registry_, "flagrelay_upstream_state",
                               "1 for the current data-source state (initializing, valid, "
                               "interrupted, off)")),
      upstream_activity_age_(Register(prometheus::BuildGauge(), *registry_,
                                      "flagrelay_upstream_last_activity_age_seconds",
                                      "Seconds since the last bytes (event or heartbeat) from the "
                                      "upstream")),
      upstream_polls_(Register(prometheus::BuildCounter(), *registry_,
                               "flagrelay_upstream_polls_total",
                               "Polling-fallback requests, by result (ok, not_modified, error)")),
      updates_(Register(
          prometheus::BuildCounter(), *registry_, "flagrelay_updates_total",
          "Data updates received, by kind (put, patch, delete) and result (applied, stale)")),
      last_update_(Register(prometheus::BuildGauge(), *registry_,
                            "flagrelay_data_last_update_timestamp_seconds",
                            "Unix time of the last applied data change")),
      data_age_(Register(
          prometheus::BuildGauge(), *registry_, "flagrelay_data_age_seconds",
          "Seconds since the last applied data change (or since the cached data was saved)")),
      data_source_(
          Register(prometheus::BuildGauge(), *registry_, "flagrelay_data_source",
                   "1 for the source of the data currently served (none, cache, file, upstream)")),
      snapshot_bytes_(Register(prometheus::BuildGauge(), *registry_, "flagrelay_snapshot_bytes",
                               "Size of the served data set as JSON")),
      snapshot_items_(Register(prometheus::BuildGauge(), *registry_, "flagrelay_snapshot_items",
                               "Items in the served data set, by kind")),
      cache_commit_duration_(Register(
          prometheus::BuildHistogram(), *registry_, "flagrelay_cache_commit_duration_seconds",
          "Time to commit a change to the LMDB cache (fsync included)")),
      cache_commits_(Register(prometheus::BuildCounter(), *registry_,
                              "flagrelay_cache_commits_total",
                              "LMDB cache commits, by result (ok, error)")),
      cache_healthy_(Register(prometheus::BuildGauge(), *registry_, "flagrelay_cache_healthy",
                              "0 when the last cache commit for the environment failed")),
      cache_loads_(Register(prometheus::BuildCounter(), *registry_, "flagrelay_cache_loads_total",
                            "Cache loads at start-up, by outcome (loaded, missing, corrupt, "
                            "unsupported_format, error, mismatch, disabled)")),
      http_requests_(Register(prometheus::BuildCounter(), *registry_,
                              "flagrelay_http_requests_total",
                              "HTTP requests served, by route template, method and status class")),
      http_request_duration_(Register(prometheus::BuildHistogram(), *registry_,
                                      "flagrelay_http_request_duration_seconds",
                                      "Time to produce a response (for a stream, to open it), by "
                                      "route template and method; sending it is not included")),
      events_received_(Register(prometheus::BuildCounter(), *registry_,
                                "flagrelay_events_received_total",
                                "Analytics events in the bodies SDKs posted (valid bodies only)")),
      events_forwarded_(Register(prometheus::BuildCounter(), *registry_,
                                 "flagrelay_events_forwarded_total",
                                 "Analytics events the events service accepted")),
      events_dropped_(Register(prometheus::BuildCounter(), *registry_,
                               "flagrelay_events_dropped_total",
                               "Events not forwarded, by reason (disabled, rate_limited, sampled, "
                               "queue_full, diagnostic_queue_full, upstream_rejected, "
                               "refused_batch, undeliverable, shutdown)")),
      diagnostics_forwarded_(Register(prometheus::BuildCounter(), *registry_,
                                      "flagrelay_diagnostic_events_forwarded_total",
                                      "Diagnostic events the events service accepted")),
      events_queued_(Register(prometheus::BuildGauge(), *registry_, "flagrelay_events_queued",
                              "Analytics events accepted and not yet delivered or dropped")),
      events_queued_bytes_(Register(prometheus::BuildGauge(), *registry_,
                                    "flagrelay_events_queued_bytes",
                                    "Bytes of the events in flagrelay_events_queued")),
      events_forwarding_(Register(prometheus::BuildGauge(), *registry_,
                                  "flagrelay_events_forwarding",
                                  "1 while the environment's events are forwarded; 0 when they "
                                  "are switched off or the events service refused the key")) {
  auto& build_info = Register(prometheus::BuildGauge(), *registry_, "flagrelay_build_info",
                              "Always 1; the version label says which flagrelay runs");
  build_info.Add({{"version", std::string(version)}}).Set(1);
  http_connections_ = &Register(prometheus::BuildGauge(), *registry_, "flagrelay_http_connections",
                                "Downstream TCP connections currently open")
                           .Add({});
  http_connections_rejected_ =
      &Register(prometheus::BuildCounter(), *registry_, "flagrelay_http_connections_rejected_total",
                "Downstream connections closed at accept because listen.maxConnections was reached")
           .Add({});
}

namespace {

// The state gauges of a new environment: no upstream connection yet, no data.
void ResetStateGauges(const EnvironmentMetrics& m) {
  for (std::size_t i = 0; i < kUpstreamStates; ++i) m.upstream_state[i]->Set(i == 0 ? 1 : 0);
  for (std::size_t i = 0; i < kDataSources; ++i) m.data_source[i]->Set(i == 0 ? 1 : 0);
  m.upstream_connected->Set(0);
  m.cache_healthy->Set(1);
}

}  // namespace

const EnvironmentMetrics& RelayMetrics::AddEnvironment(std::string_view env_name) {
  const std::string env(env_name);
  {
    std::lock_guard lock(mutex_);
    if (const auto it = environments_.find(env); it != environments_.end()) {
      retired_.erase(env);
      ResetStateGauges(*it->second);
      return *it->second;
    }
  }
  auto m = std::make_unique<EnvironmentMetrics>();
  for (std::size_t i = 0; i < kSdkKinds; ++i) {
    const std::string sdk(ToString(static_cast<SdkKind>(i)));
    m->streams[i] = &streams_.Add({{"env", env}, {"sdk", sdk}});
    m->stream_connections[i] = &stream_connections_.Add({{"env", env}, {"sdk", sdk}});
  }
  m->slow_disconnects = &slow_disconnects_.Add({{"env", env}});
  m->upstream_connected = &upstream_connected_.Add({{"env", env}});
  const char* error_kinds[] = {"network_error", "error_response", "invalid_data", "unknown"};
  for (std::size_t i = 0; i < kErrorKinds; ++i) {
    m->upstream_reconnects[i] = &upstream_reconnects_.Add({{"env", env}, {"kind", error_kinds[i]}});
  }
  const char* states[] = {"initializing", "valid", "interrupted", "off"};
  for (std::size_t i = 0; i < kUpstreamStates; ++i) {
    m->upstream_state[i] = &upstream_state_.Add({{"env", env}, {"state", states[i]}});
  }
  m->upstream_last_activity_age = &upstream_activity_age_.Add({{"env", env}});
  const char* poll_results[] = {"ok", "not_modified", "error"};
  for (std::size_t i = 0; i < 3; ++i) {
    m->upstream_polls[i] = &upstream_polls_.Add({{"env", env}, {"result", poll_results[i]}});
  }
  const char* kinds[] = {"put", "patch", "delete"};
  const char* results[] = {"applied", "stale"};
  for (std::size_t k = 0; k < 3; ++k) {
    for (std::size_t r = 0; r < 2; ++r) {
      m->updates[k][r] = &updates_.Add({{"env", env}, {"kind", kinds[k]}, {"result", results[r]}});
    }
  }
  m->last_update_timestamp = &last_update_.Add({{"env", env}});
  m->data_age = &data_age_.Add({{"env", env}});
  const char* sources[] = {"none", "cache", "file", "upstream"};
  for (std::size_t i = 0; i < kDataSources; ++i) {
    m->data_source[i] = &data_source_.Add({{"env", env}, {"source", sources[i]}});
  }
  m->snapshot_bytes = &snapshot_bytes_.Add({{"env", env}});
  m->snapshot_flags = &snapshot_items_.Add({{"env", env}, {"kind", "flags"}});
  m->snapshot_segments = &snapshot_items_.Add({{"env", env}, {"kind", "segments"}});
  m->cache_commit_duration = &cache_commit_duration_.Add({{"env", env}}, kCommitBuckets);
  m->cache_commits_ok = &cache_commits_.Add({{"env", env}, {"result", "ok"}});
  m->cache_commits_failed = &cache_commits_.Add({{"env", env}, {"result", "error"}});
  m->cache_healthy = &cache_healthy_.Add({{"env", env}});
  m->cache_loads = [this, env](std::string_view outcome) -> prometheus::Counter& {
    return cache_loads_.Add({{"env", env}, {"outcome", std::string(outcome)}});
  };
  m->events_received = &events_received_.Add({{"env", env}});
  m->events_forwarded = &events_forwarded_.Add({{"env", env}});
  const char* drop_reasons[] = {"disabled",      "rate_limited",          "sampled",
                                "queue_full",    "diagnostic_queue_full", "upstream_rejected",
                                "refused_batch", "undeliverable",         "shutdown"};
  static_assert(std::size(drop_reasons) == kEventDropReasons);
  for (std::size_t i = 0; i < kEventDropReasons; ++i) {
    m->events_dropped[i] = &events_dropped_.Add({{"env", env}, {"reason", drop_reasons[i]}});
  }
  m->diagnostics_forwarded = &diagnostics_forwarded_.Add({{"env", env}});
  m->events_queued = &events_queued_.Add({{"env", env}});
  m->events_queued_bytes = &events_queued_bytes_.Add({{"env", env}});
  m->events_forwarding = &events_forwarding_.Add({{"env", env}});
  ResetStateGauges(*m);
  std::lock_guard lock(mutex_);
  return *environments_.emplace(env, std::move(m)).first->second;
}

void RelayMetrics::RetireEnvironment(std::string_view env_name) {
  std::lock_guard lock(mutex_);
  if (environments_.find(env_name) != environments_.end()) retired_.emplace(env_name);
}

prometheus::Counter& RelayMetrics::HttpRequests(std::string_view route, std::string_view method,
                                                std::string_view status_class) {
  return http_requests_.Add({{"route", std::string(route)},
                             {"method", std::string(method)},
                             {"status", std::string(status_class)}});
}

prometheus::Histogram& RelayMetrics::HttpRequestDuration(std::string_view route,
                                                         std::string_view method) {
  // From a cached body (microseconds) to a client-side evaluation of many flags (milliseconds).
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5};
  return http_request_duration_.Add(
      {{"route", std::string(route)}, {"method", std::string(method)}}, kBuckets);
}

void RelayMetrics::OnScrape(std::function<void()> hook) {
  std::lock_guard lock(mutex_);
  hooks_.push_back(std::move(hook));
}

std::string RelayMetrics::Serialize() {
  std::vector<prometheus::MetricFamily> families;
  {
    std::lock_guard lock(mutex_);
    for (const auto& hook : hooks_) hook();
    families = registry_->Collect();
    if (!retired_.empty()) {
      for (prometheus::MetricFamily& family : families) {
        std::erase_if(family.metric, [this](const prometheus::ClientMetric& metric) {
          return std::any_of(metric.label.begin(), metric.label.end(), [this](const auto& label) {
            return label.name == "env" && retired_.count(label.value) != 0;
          });
        });
      }
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace flagrelay::metrics
