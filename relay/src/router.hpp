#pragma once
// Maps an HTTP request to a response: route, credential, environment, and the polling, status
// and health handlers. Beast-free on purpose (plain request/response structs), so it compiles
// fast and is tested without sockets; http_server.cpp does the wire work and the SSE streaming.
//
// Thread safety: Handle is const and may run on any number of threads at once.

#include <array>
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
  Environment* stream_env = nullptr;
  StreamKind stream_kind = StreamKind::kAll;
  metrics::SdkKind stream_sdk = metrics::SdkKind::kServer;
  std::shared_ptr<ClientStream> client_stream;  // kEvaluated streams: the context's evaluator
};

class Router {
 public:
  /// `events` (indexed like `environments`) takes the events SDKs post; without it, events
  /// routes answer 503.
  Router(std::vector<Environment*> environments, metrics::RelayMetrics& metrics,
         std::string version, config::ReadinessConfig readiness = {},
         EventsRelay* events = nullptr);

  [[nodiscard]] HttpResponse Handle(const HttpRequest& request) const;

  /// The metrics listener's handler: `/metrics` only.
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
  Environment* Authenticate(std::string_view authorization) const;
  Environment* AuthenticateMobile(std::string_view authorization) const;
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
  static Environment* FindByKey(const std::unordered_map<Digest, Environment*, DigestHash>& keys,
                                std::string_view authorization);

  std::vector<Environment*> environments_;
  std::unordered_map<Digest, Environment*, DigestHash> by_sdk_key_;
  std::unordered_map<Digest, Environment*, DigestHash> by_mobile_key_;
  std::unordered_map<std::string, Environment*> by_env_id_;
  metrics::RelayMetrics& metrics_;
  std::string version_;
  config::ReadinessConfig readiness_;
  EventsRelay* events_;
  // flagrelay_http_requests_total, resolved per route and status class at construction.
  std::array<std::array<prometheus::Counter*, 5>, static_cast<std::size_t>(RouteId::kCount)>
      requests_{};
};

}  // namespace flagrelay::relay
