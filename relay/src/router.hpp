#pragma once
// Maps an HTTP request to a response: route, credential, environment, and the polling, status
// and health handlers. Beast-free on purpose (plain request/response structs), so it compiles
// fast and is tested without sockets; http_server.cpp does the wire work and the SSE streaming.
//
// Thread safety: Handle is const and may run on any number of threads at once.

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "client_stream.hpp"
#include "environment.hpp"
#include "events.hpp"
#include "flagrelay/metrics/metrics.hpp"

namespace flagrelay::relay {

struct HttpRequest {
  std::string_view method;
  std::string_view target;  // path and query
  std::string_view authorization;
  std::string_view if_none_match;
  std::string_view accept_encoding;
  std::string_view content_type;
  std::string_view origin;
  std::string_view content_encoding;
  std::string_view user_agent;
  /// POSTs only: every X-LaunchDarkly-* header (event schema, tags, SDK user agent, wrapper).
  std::vector<std::pair<std::string_view, std::string_view>> launchdarkly_headers;
  /// REPORT bodies (bounded by listen.maxBodyBytes) and events POSTs (events.maxBodyBytes).
  std::string_view body;

  /// The X-LaunchDarkly-* header `name` (case-insensitive), or empty.
  [[nodiscard]] std::string_view LaunchDarklyHeader(std::string_view name) const;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type;
  protocol::SharedBytes body;  // null = empty
  std::vector<std::pair<std::string, std::string>> headers;
  /// Set when the request opened an SDK stream: the server then keeps the connection and
  /// subscribes it to this environment instead of writing `body`.
  std::shared_ptr<Environment> stream_env;
  StreamKind stream_kind = StreamKind::kAll;
  metrics::SdkKind stream_sdk = metrics::SdkKind::kServer;
  std::shared_ptr<ClientStream> client_stream;  // kEvaluated streams: the context's evaluator
  /// The stream's credential is a rotated-out key: the stream ends at its expiry (0 = never).
  std::int64_t credential_expires_unix_ms = 0;
};

class Router {
 public:
  /// `events` takes the events SDKs post, environment i's in slot `events_slots[i]` (i itself
  /// when `events_slots` is empty); without it, events routes answer 503. The router keeps the
  /// environments alive. A reload builds a new router: the credentials are read from each
  /// environment's config now.
  Router(std::vector<std::shared_ptr<Environment>> environments, metrics::RelayMetrics& metrics,
         std::string version, config::ReadinessConfig readiness = {}, EventsRelay* events = nullptr,
         std::vector<std::size_t> events_slots = {});

  /// Shutdown has begun: /readyz answers 503 from now on, everything else is still served.
  void StartDraining() { draining_.store(true); }

  [[nodiscard]] HttpResponse Handle(const HttpRequest& request) const;

  /// The metrics listener's handler: `/metrics`, and the `/healthz` and `/readyz` probes.
  [[nodiscard]] HttpResponse HandleMetrics(const HttpRequest& request) const;

  enum class RouteId {
    kStatus,
    kHealthz,
    kReadyz,
    kStreamAll,
    kStreamFlags,
    kLatestAll,
    kLatestFlags,
    kLatestFlag,
    kLatestSegments,
    kLatestSegment,
    kPhpFlags,
    kPhpFlag,
    kPhpSegment,
    kServerEvalGet,
    kServerEvalReport,
    kMobileEvalGet,
    kMobileEvalReport,
    kBrowserEvalGet,
    kBrowserEvalReport,
    kBrowserStreamGet,
    kBrowserStreamReport,
    kMobileStreamGet,
    kMobileStreamReport,
    kMobilePing,
    kBrowserPing,
    kBrowserPreflight,
    kServerEvents,
    kServerDiagnostic,
    kMobileEvents,
    kMobileDiagnostic,
    kBrowserEvents,
    kBrowserDiagnostic,
    kUnmatched,
    kCount
  };
  /// How a route appears in flagrelay_http_requests_total.
  struct RouteLabel {
    RouteId id;
    std::string_view method;
    std::string_view label;
  };

 private:
  HttpResponse Route(const HttpRequest& request, RouteId& route) const;
  // `expires`, when given, is set to the credential's expiry (0 = none).
  Environment* Authenticate(std::string_view authorization, std::int64_t* expires = nullptr) const;
  Environment* AuthenticateMobile(std::string_view authorization,
                                  std::int64_t* expires = nullptr) const;
  // The client-side routes (evaluation, client streams): client_side.cpp. Nullopt when `path` is
  // none of them.
  std::optional<HttpResponse> RouteClientSide(const HttpRequest& request, std::string_view path,
                                              RouteId& route) const;
  static std::vector<RouteLabel> ClientSideRouteLabels();
  HttpResponse Events(const HttpRequest& request, const Environment& env, events::Channel channel,
                      bool diagnostic) const;
  HttpResponse Status() const;
  HttpResponse Ready() const;

  // Credentials are looked up by their SHA-256 (CredentialDigest), never compared as strings: a
  // string compare takes longer the more leading characters match, which a client could time to
  // guess a key; what a digest lookup's timing reveals leads to no key.
  using Digest = std::array<unsigned char, 32>;
  struct DigestHash {
    std::size_t operator()(const Digest& d) const noexcept;
  };
  static Digest CredentialDigest(std::string_view credential);
  // A credential's environment; a key being rotated out also has its expiry.
  struct KeyEntry {
    Environment* env;
    std::int64_t expires_unix_ms = 0;  // 0 = never
  };
  using KeyMap = std::unordered_map<Digest, KeyEntry, DigestHash>;
  static Environment* FindByKey(const KeyMap& keys, std::string_view authorization,
                                std::int64_t* expires);

  std::vector<std::shared_ptr<Environment>> environments_;
  std::vector<std::size_t> events_slots_;  // parallel to environments_
  KeyMap by_sdk_key_;
  KeyMap by_mobile_key_;
  std::unordered_map<std::string, Environment*> by_env_id_;
  metrics::RelayMetrics& metrics_;
  std::string version_;
  config::ReadinessConfig readiness_;
  EventsRelay* events_;
  std::atomic<bool> draining_{false};
  // flagrelay_http_requests_total, resolved per route and status class at construction.
  std::array<std::array<prometheus::Counter*, 5>, static_cast<std::size_t>(RouteId::kCount)>
      requests_{};
  std::array<prometheus::Histogram*, static_cast<std::size_t>(RouteId::kCount)> durations_{};
};

}  // namespace flagrelay::relay
