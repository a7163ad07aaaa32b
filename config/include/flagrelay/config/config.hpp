#pragma once
// flagrelay configuration: YAML file + `${VAR}` expansion + ld-relay environment variables, turned
// into validated, immutable value types. Nothing past this boundary re-checks raw strings.
//
// Thread safety: all types are plain values; loading is a pure function of its inputs.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flagrelay::config {

using Duration = std::chrono::milliseconds;

/// A credential (SDK key, mobile key). Only `Masked()` may reach logs, `/status`, metrics or
/// errors.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  /// The raw value, for comparing against request credentials and for upstream requests only.
  [[nodiscard]] const std::string& Reveal() const { return value_; }
  /// ld-relay's masking: a leading `abc-` prefix is kept; every hex digit except those in the last
  /// five characters becomes `*` (`sdk-********-****-****-****-*******99999`).
  [[nodiscard]] std::string Masked() const;
  [[nodiscard]] bool empty() const { return value_.empty(); }

  friend bool operator==(const Secret&, const Secret&) = default;

 private:
  std::string value_;
};

enum class LogLevel { kDebug, kInfo, kWarn, kError, kNone };

/// TLS material for an outbound connection (upstream.tls) or a listener (listen.tls).
struct TlsConfig {
  std::string ca_file;    // tls.caFile: extra trusted CAs (PEM), on top of the system store
  std::string cert_file;  // tls.certFile: certificate chain (PEM); client cert upstream
  std::string key_file;   // tls.keyFile: its private key (PEM)
  std::string min_version = "1.2";  // tls.minVersion: "1.2" | "1.3"
  friend bool operator==(const TlsConfig&, const TlsConfig&) = default;
};

struct ListenConfig {
  std::string host = "0.0.0.0";
  std::uint16_t port = 8030;
  std::size_t max_connections = 20000;                 // listen.maxConnections
  Duration header_timeout = std::chrono::seconds(10);  // listen.headerTimeout
  Duration idle_timeout =
      std::chrono::seconds(60);              // listen.idleTimeout (keep-alive between requests)
  std::size_t max_header_bytes = 16 * 1024;  // listen.maxHeaderBytes
  std::size_t max_body_bytes = 1024 * 1024;  // listen.maxBodyBytes
  /// listen.tls: serve HTTPS when cert_file and key_file are set (ca_file unused here).
  std::optional<TlsConfig> tls;
  friend bool operator==(const ListenConfig&, const ListenConfig&) = default;
};

struct PollingFallbackConfig {
  bool enabled = false;                          // upstream.pollingFallback.enabled
  Duration after = std::chrono::minutes(1);      // ...after: streaming failing this long
  Duration interval = std::chrono::seconds(30);  // ...interval: between polls
  friend bool operator==(const PollingFallbackConfig&, const PollingFallbackConfig&) = default;
};

struct ProxyConfig {
  /// proxy.url (`http://[user:pass@]host:port`); else HTTPS_PROXY / HTTP_PROXY by the target's
  /// scheme (either case). Empty = direct.
  std::string url;
  /// proxy.noProxy, else NO_PROXY: comma-separated hosts, `.domain` suffixes, `*`.
  std::string no_proxy;
  /// HTTPS_PROXY / https_proxy and HTTP_PROXY / http_proxy (upper case wins), used by target
  /// scheme when `url` is empty. The loader is the one place that reads the environment.
  std::string https_proxy_env;
  std::string http_proxy_env;
  friend bool operator==(const ProxyConfig&, const ProxyConfig&) = default;
};

struct UpstreamConfig {
  std::string stream_uri =
      "https://stream.launchdarkly.com";                  // upstream.streamUri, no trailing '/'
  std::string base_uri = "https://sdk.launchdarkly.com";  // upstream.baseUri
  std::string events_uri = "https://events.launchdarkly.com";  // upstream.eventsUri
  Duration connect_timeout = std::chrono::seconds(3);          // upstream.connectTimeout
  Duration read_timeout = std::chrono::minutes(5);             // upstream.readTimeout
  Duration initial_reconnect_delay = std::chrono::seconds(1);  // upstream.initialReconnectDelay
  Duration max_reconnect_delay = std::chrono::seconds(30);     // upstream.maxReconnectDelay
  Duration reconnect_reset_after = std::chrono::seconds(60);   // upstream.reconnectResetAfter
  std::size_t max_event_bytes = 64ull << 20;                   // upstream.maxEventBytes
  /// upstream.initTimeout: how long start-up waits for an environment's live data before serving
  /// what it has (cache or nothing). A refused/failed first connection ends the wait early.
  Duration init_timeout = std::chrono::seconds(10);
  /// upstream.exitOnError: exit non-zero when an environment has no live data after initTimeout
  /// or its key is rejected (401/403).
  bool exit_on_error = false;
  /// upstream.disconnectedStatusTime: how long a non-VALID state is tolerated before /status
  /// says "disconnected".
  Duration disconnected_status_time = std::chrono::minutes(1);
  PollingFallbackConfig polling_fallback;  // upstream.pollingFallback
  TlsConfig tls;                           // upstream.tls (caFile, certFile, keyFile, minVersion)
  friend bool operator==(const UpstreamConfig&, const UpstreamConfig&) = default;
};

enum class ReadinessMode {
  kData,  // ready when every environment has data (cache, file or upstream)
  kLive,  // ready only when every environment is VALID with recent upstream activity
};

struct ReadinessConfig {
  ReadinessMode mode = ReadinessMode::kData;       // readiness.mode: data | live
  Duration max_silence = std::chrono::minutes(5);  // readiness.maxSilence (live mode)
  friend bool operator==(const ReadinessConfig&, const ReadinessConfig&) = default;
};

struct StreamsConfig {
  Duration heartbeat_interval = std::chrono::seconds(30);  // streams.heartbeatInterval
  std::size_t max_queue_events = 256;                 // streams.maxQueueEvents (per subscriber)
  std::size_t max_queue_bytes = 8 * 1024 * 1024;      // streams.maxQueueBytes (per subscriber)
  Duration write_timeout = std::chrono::seconds(30);  // streams.writeTimeout
  Duration max_connection_time{0};                    // streams.maxConnectionTime, 0 = off
  friend bool operator==(const StreamsConfig&, const StreamsConfig&) = default;
};

struct CacheConfig {
  std::string dir;                             // cache.dir; empty = no cache
  std::size_t map_size_bytes = 1024ull << 20;  // cache.mapSize
  friend bool operator==(const CacheConfig&, const CacheConfig&) = default;
};

struct MetricsConfig {
  std::string host;           // metrics.host; empty = listen.host
  std::uint16_t port = 8031;  // metrics.port; 0 = no metrics listener
  friend bool operator==(const MetricsConfig&, const MetricsConfig&) = default;
};

/// Top-level `events:`: how the analytics events SDKs post are batched and forwarded to
/// upstream.eventsUri, and the bounds that keep an event spike to its own environment.
struct EventsConfig {
  Duration flush_interval = std::chrono::seconds(5);  // events.flushInterval
  std::size_t max_batch = 500;  // events.maxBatch: events per POST upstream (sent when reached)
  /// events.maxBodyBytes: one inbound events POST, as read and after gunzip.
  std::size_t max_body_bytes = 8ull << 20;
  /// events.maxQueueEvents / maxQueueBytes: per environment, everything accepted and not yet
  /// delivered (waiting, in a POST, or waiting for its retry). New events beyond are shed.
  std::size_t max_queue_events = 10000;
  std::size_t max_queue_bytes = 16ull << 20;
  std::size_t max_diagnostic_queue = 16;             // events.maxDiagnosticQueue: per environment
  Duration send_timeout = std::chrono::seconds(30);  // events.sendTimeout: one POST upstream
  Duration shutdown_timeout = std::chrono::seconds(5);  // events.shutdownTimeout
  friend bool operator==(const EventsConfig&, const EventsConfig&) = default;
};

/// environments.<name>.events: the switches SIGHUP applies to a running relay.
struct EnvironmentEventsConfig {
  bool enabled = true;    // events.enabled: off = accepted (202), counted and discarded
  double rate_limit = 0;  // events.rateLimit: events per second; 0 = no limit
  double rate_burst = 0;  // events.rateBurst: events above the rate at once; 0 = a second's worth
  /// events.sampleRatio: under pressure (queue over half full, or over the rate), the fraction
  /// of events kept rather than shed.
  double sample_ratio = 1.0;
  friend bool operator==(const EnvironmentEventsConfig&, const EnvironmentEventsConfig&) = default;
};

/// A credential being rotated out: still accepted until `expiry_unix_ms` (ld-relay's expiring
/// keys), so SDKs can move to the new key without an outage.
struct ExpiringKey {
  Secret key;
  std::int64_t expiry_unix_ms = 0;  // expiry: an RFC 3339 time
  friend bool operator==(const ExpiringKey&, const ExpiringKey&) = default;
};

struct EnvironmentConfig {
  std::string name;  // the key under `environments:`
  Secret sdk_key;    // required
  std::optional<Secret> mobile_key;
  std::optional<ExpiringKey> expiring_sdk_key;     // expiringSdkKey: {key, expiry}
  std::optional<ExpiringKey> expiring_mobile_key;  // expiringMobileKey: {key, expiry}
  std::string env_id;                              // client-side ID; empty = none
  std::string data_file;  // non-empty = served from this JSON file, no upstream stream
  Duration data_file_poll_interval = std::chrono::seconds(1);  // dataFilePollInterval
  // Browser (JS) routes: CORS origins allowed (empty = any), extra allowed request headers, and
  // secure mode (evaluations need the context's HMAC-SHA256 hash, keyed by the SDK key).
  std::vector<std::string> allowed_origins;  // allowedOrigin
  std::vector<std::string> allowed_headers;  // allowedHeader
  bool secure_mode = false;                  // secureMode
  EnvironmentEventsConfig events;            // events
  friend bool operator==(const EnvironmentConfig&, const EnvironmentConfig&) = default;
};

/// reload: applying a changed config file without a restart (besides SIGHUP).
struct ReloadConfig {
  /// reload.watchInterval: how often the config file is checked for a change (content hash);
  /// 0 = only on SIGHUP.
  Duration watch_interval{0};
  friend bool operator==(const ReloadConfig&, const ReloadConfig&) = default;
};

/// shutdown: what SIGTERM does before the listener closes.
struct ShutdownConfig {
  /// shutdown.drainDelay: /readyz answers 503 for this long while everything is still served, so
  /// that load balancers (Kubernetes endpoints) stop sending new SDKs first.
  Duration drain_delay{0};
  friend bool operator==(const ShutdownConfig&, const ShutdownConfig&) = default;
};

struct RelayConfig {
  ListenConfig listen;
  UpstreamConfig upstream;
  StreamsConfig streams;
  CacheConfig cache;
  MetricsConfig metrics;
  ProxyConfig proxy;
  ReadinessConfig readiness;
  EventsConfig events;
  ReloadConfig reload;
  ShutdownConfig shutdown;
  LogLevel log_level = LogLevel::kInfo;
  unsigned threads = 0;                         // 0 = one per hardware thread
  std::vector<EnvironmentConfig> environments;  // in file order; names unique
};

/// Environment variables as seen by the loader (injected so tests need not touch the process).
using EnvVars = std::map<std::string, std::string>;
[[nodiscard]] EnvVars EnvVarsFromProcess();

struct LoadResult {
  std::optional<RelayConfig> config;  // set exactly when errors is empty
  /// Every problem found, each naming its source, line and key:
  /// `relay.yaml:12:5: environments.prod.sdkKey: must not be empty`.
  std::vector<std::string> errors;
  [[nodiscard]] bool ok() const { return errors.empty(); }
};

/// Loads and validates a YAML config file, then applies the environment variables.
[[nodiscard]] LoadResult LoadFile(const std::string& path, const EnvVars& env);
/// Same, from text; `source_name` prefixes error messages.
[[nodiscard]] LoadResult LoadString(std::string_view yaml, std::string_view source_name,
                                    const EnvVars& env);

/// The longest duration a timer can take (steady_clock counts nanoseconds): 2562047h47m16.854s,
/// the same bound as Go's time.Duration and so ld-relay's.
inline constexpr Duration kMaxDuration =
    std::chrono::duration_cast<Duration>(std::chrono::steady_clock::duration::max());

/// Parses `500ms`, `30s`, `1m`, `1h`, `1m30s`; nullopt on anything else (a bare number included)
/// and beyond kMaxDuration.
[[nodiscard]] std::optional<Duration> ParseDuration(std::string_view text);
/// Parses an RFC 3339 time (`2026-12-01T00:00:00Z`, `2026-12-01T01:30:00.5+01:30`) into
/// milliseconds since the Unix epoch; nullopt on anything else.
[[nodiscard]] std::optional<std::int64_t> ParseTimestamp(std::string_view text);
/// Parses `1024`, `64KiB`, `8MiB`, `1GiB` (also KB/MB/GB as powers of 1000); nullopt otherwise.
[[nodiscard]] std::optional<std::size_t> ParseSize(std::string_view text);

}  // namespace flagrelay::config
