#include "router.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstring>

#include "http_util.hpp"
#include "log.hpp"
#include "sha256.hpp"

namespace flagrelay::relay {

namespace {

using RouteId = Router::RouteId;

struct RouteDef {
  RouteId id;
  std::string_view method;
  std::string_view path;  // without the trailing "/{key}"
  bool has_key;
  std::string_view label;  // the `route` metrics label
};

constexpr RouteDef kRoutes[] = {
    {RouteId::kStatus, "GET", "/status", false, "/status"},
    {RouteId::kHealthz, "GET", "/healthz", false, "/healthz"},
    {RouteId::kReadyz, "GET", "/readyz", false, "/readyz"},
    {RouteId::kStreamAll, "GET", "/all", false, "/all"},
    {RouteId::kStreamFlags, "GET", "/flags", false, "/flags"},
    {RouteId::kLatestAll, "GET", "/sdk/latest-all", false, "/sdk/latest-all"},
    {RouteId::kLatestFlags, "GET", "/sdk/latest-flags", false, "/sdk/latest-flags"},
    {RouteId::kLatestFlag, "GET", "/sdk/latest-flags", true, "/sdk/latest-flags/{key}"},
    {RouteId::kLatestSegments, "GET", "/sdk/latest-segments", false, "/sdk/latest-segments"},
    {RouteId::kLatestSegment, "GET", "/sdk/latest-segments", true, "/sdk/latest-segments/{key}"},
    {RouteId::kPhpFlags, "GET", "/sdk/flags", false, "/sdk/flags"},
    {RouteId::kPhpFlag, "GET", "/sdk/flags", true, "/sdk/flags/{key}"},
    {RouteId::kPhpSegment, "GET", "/sdk/segments", true, "/sdk/segments/{key}"},
};

constexpr std::string_view kStatusClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

HttpResponse NoDataYet() {
  return JsonMessage(
      503, "environment has no flag data yet (waiting for the upstream or the data file)");
}

bool EtagMatches(std::string_view if_none_match, std::string_view etag,
                 std::string_view gzip_etag) {
  bool match = false;
  ForEachListElement(if_none_match, [&](std::string_view tag) {
    if (tag.starts_with("W/")) tag.remove_prefix(2);  // If-None-Match uses weak comparison
    if (tag == "*" || tag == etag || tag == gzip_etag) match = true;
  });
  return match;
}

bool AcceptsGzip(std::string_view accept_encoding) {
  bool accepted = false;
  ForEachListElement(accept_encoding, [&](std::string_view coding) {
    const std::size_t semi = coding.find(';');
    if (Trim(coding.substr(0, semi)) != "gzip") return;
    accepted = true;
    if (semi != std::string_view::npos) {
      std::string_view param = Trim(coding.substr(semi + 1));
      if (param.starts_with("q=")) {
        param.remove_prefix(2);
        accepted = !(param == "0" || param == "0.0" || param == "0.00" || param == "0.000");
      }
    }
  });
  return accepted;
}

HttpResponse Polled(const protocol::EncodedBody& body, const HttpRequest& request) {
  HttpResponse response;
  response.content_type = "application/json";
  const std::string& etag = body.ETag();
  // The gzip representation is a different byte sequence, so it gets its own strong ETag.
  const std::string gzip_etag = etag.substr(0, etag.size() - 1) + "-gz\"";
  response.headers.emplace_back("Vary", "Accept-Encoding");
  const bool gzip = AcceptsGzip(request.accept_encoding);
  response.headers.emplace_back("ETag", gzip ? gzip_etag : etag);
  if (!request.if_none_match.empty() && EtagMatches(request.if_none_match, etag, gzip_etag)) {
    response.status = 304;
    return response;
  }
  if (gzip) {
    response.body = body.Gzip();
    response.headers.emplace_back("Content-Encoding", "gzip");
  } else {
    response.body = body.Plain();
  }
  return response;
}

HttpResponse PolledItem(const protocol::Item* item, const HttpRequest& request) {
  if (item == nullptr || item->deleted) {
    HttpResponse response;
    response.status = 404;
    return response;
  }
  HttpResponse response;
  response.content_type = "application/json";
  // Within one key, the version identifies the content (data-file reloads bump it too).
  std::string etag = "\"v" + std::to_string(item->version) + "\"";
  if (!request.if_none_match.empty() && EtagMatches(request.if_none_match, etag, etag)) {
    response.status = 304;
  } else {
    response.body = Bytes(item->json);
  }
  response.headers.emplace_back("ETag", std::move(etag));
  return response;
}

void AppendField(std::string& out, std::string_view name, std::string_view value) {
  protocol::AppendJsonString(out, name);
  out.push_back(':');
  protocol::AppendJsonString(out, value);
  out.push_back(',');
}

void AppendNumber(std::string& out, std::string_view name, std::int64_t value) {
  protocol::AppendJsonString(out, name);
  out.push_back(':');
  out += std::to_string(value);
  out.push_back(',');
}

void AppendDouble(std::string& out, std::string_view name, double value) {
  protocol::AppendJsonString(out, name);
  out.push_back(':');
  char text[32];
  out.append(text, std::to_chars(text, text + sizeof text, value).ptr);
  out.push_back(',');
}

void CloseObject(std::string& out) {
  if (out.back() == ',') out.pop_back();
  out.push_back('}');
}

// Whether this environment's events reach the events service, and what is waiting.
void AppendEventsStatus(std::string& out, const EventsStatus& events) {
  out += "\"events\":{";
  AppendField(out, "state",
              !events.settings.enabled ? "disabled"
              : events.rejected        ? "rejected"
                                       : "forwarding");
  AppendNumber(out, "queued", static_cast<std::int64_t>(events.queued_events));
  AppendNumber(out, "queuedBytes", static_cast<std::int64_t>(events.queued_bytes));
  if (events.settings.rate_limit > 0) AppendDouble(out, "rateLimit", events.settings.rate_limit);
  AppendDouble(out, "sampleRatio", events.settings.sample_ratio);
  CloseObject(out);
  out.push_back(',');
}

}  // namespace

Router::Router(std::vector<std::shared_ptr<Environment>> environments,
               metrics::RelayMetrics& metrics, std::string version,
               config::ReadinessConfig readiness, EventsRelay* events,
               std::vector<std::size_t> events_slots)
    : environments_(std::move(environments)),
      events_slots_(std::move(events_slots)),
      metrics_(metrics),
      version_(std::move(version)),
      readiness_(readiness),
      events_(events) {
  if (events_slots_.empty()) {
    for (std::size_t i = 0; i < environments_.size(); ++i) events_slots_.push_back(i);
  }
  for (const auto& env_ptr : environments_) {
    Environment* env = env_ptr.get();
    const auto config = env->config();
    by_sdk_key_.emplace(CredentialDigest(config->sdk_key.Reveal()), KeyEntry{env});
    if (config->expiring_sdk_key) {
      by_sdk_key_.emplace(CredentialDigest(config->expiring_sdk_key->key.Reveal()),
                          KeyEntry{env, config->expiring_sdk_key->expiry_unix_ms});
    }
    if (config->mobile_key) {
      by_mobile_key_.emplace(CredentialDigest(config->mobile_key->Reveal()), KeyEntry{env});
    }
    if (config->expiring_mobile_key) {
      by_mobile_key_.emplace(CredentialDigest(config->expiring_mobile_key->key.Reveal()),
                             KeyEntry{env, config->expiring_mobile_key->expiry_unix_ms});
    }
    if (!config->env_id.empty()) by_env_id_.emplace(config->env_id, env);
  }
  std::vector<RouteLabel> labels = ClientSideRouteLabels();
  for (const RouteDef& route : kRoutes) labels.push_back({route.id, route.method, route.label});
  labels.push_back({RouteId::kUnmatched, "other", "unmatched"});
  for (const RouteLabel& route : labels) {
    const auto id = static_cast<std::size_t>(route.id);
    for (std::size_t c = 0; c < std::size(kStatusClasses); ++c) {
      requests_[id][c] = &metrics_.HttpRequests(route.label, route.method, kStatusClasses[c]);
    }
    durations_[id] = &metrics_.HttpRequestDuration(route.label, route.method);
  }
}

namespace {

// The path for the request log: a key put in the path by mistake (an SDK key as a client-side
// ID) shows its last five characters only, and long segments (base64 contexts, which may carry
// personal data) only their length.
std::string LoggablePath(std::string_view path) {
  constexpr std::size_t kMaxSegment = 40;
  std::string out;
  while (!path.empty() && out.size() < 512) {
    const std::size_t slash = path.find('/', 1);
    std::string_view segment = path.substr(0, slash);
    path.remove_prefix(segment.size());
    const std::string_view name = segment.substr(segment.starts_with('/') ? 1 : 0);
    out += segment.starts_with('/') ? "/" : "";
    if (name.starts_with("sdk-") || name.starts_with("mob-")) {
      out += std::string(name.substr(0, 4)) + "*" +
             std::string(name.substr(std::max<std::size_t>(name.size(), 9) - 5));
    } else if (name.size() > kMaxSegment) {
      out += "<" + std::to_string(name.size()) + " bytes>";
    } else {
      out += name;
    }
  }
  return out;
}

}  // namespace

Router::Digest Router::CredentialDigest(std::string_view credential) { return Sha256(credential); }

std::size_t Router::DigestHash::operator()(const Digest& d) const noexcept {
  std::size_t h;
  std::memcpy(&h, d.data(), sizeof h);  // a digest's bytes are already uniform
  return h;
}

Environment* Router::FindByKey(const KeyMap& keys, std::string_view authorization,
                               std::int64_t* expires) {
  // ld-relay's rule: an optional `api_key ` prefix, then the whole value is the key.
  if (authorization.starts_with("api_key ")) authorization.remove_prefix(8);
  if (authorization.empty() || authorization.find(' ') != std::string_view::npos) return nullptr;
  auto it = keys.find(CredentialDigest(authorization));
  if (it == keys.end()) return nullptr;
  const KeyEntry& entry = it->second;
  // A rotated-out key past its expiry is as unknown as a wrong one.
  if (entry.expires_unix_ms != 0 && NowUnixMs() >= entry.expires_unix_ms) return nullptr;
  // A key the upstream rejected (401/403) is as unknown downstream as a wrong one (ld-relay).
  if (entry.env->credential_rejected()) return nullptr;
  if (expires != nullptr) *expires = entry.expires_unix_ms;
  return entry.env;
}

Environment* Router::Authenticate(std::string_view authorization, std::int64_t* expires) const {
  return FindByKey(by_sdk_key_, authorization, expires);
}

Environment* Router::AuthenticateMobile(std::string_view authorization,
                                        std::int64_t* expires) const {
  return FindByKey(by_mobile_key_, authorization, expires);
}

HttpResponse Router::Handle(const HttpRequest& request) const {
  const auto start = std::chrono::steady_clock::now();
  RouteId route = RouteId::kUnmatched;
  HttpResponse response = Route(request, route);
  const std::size_t status_class = std::min<std::size_t>(response.status / 100, 5) - 1;
  requests_[static_cast<std::size_t>(route)][status_class]->Increment();
  durations_[static_cast<std::size_t>(route)]->Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (LogEnabled(config::LogLevel::kDebug)) {
    // The credential as ld-relay logs it: its last five characters only.
    const std::string_view auth = request.authorization;
    LogDebug("http", std::string(request.method) + " " +
                         LoggablePath(request.target.substr(0, request.target.find('?'))) + " " +
                         std::to_string(response.status) + " auth=*" +
                         std::string(auth.substr(auth.size() > 5 ? auth.size() - 5 : auth.size())));
  }
  return response;
}

HttpResponse Router::Route(const HttpRequest& request, RouteId& route_id) const {
  std::string_view path = request.target.substr(0, request.target.find('?'));
  if (auto response = RouteClientSide(request, path, route_id)) return std::move(*response);
  const RouteDef* matched = nullptr;
  std::string key;
  bool wrong_method = false;
  for (const RouteDef& route : kRoutes) {
    if (route.has_key) {
      if (path.size() <= route.path.size() + 1 || !path.starts_with(route.path) ||
          path[route.path.size()] != '/' ||
          path.find('/', route.path.size() + 1) != std::string_view::npos) {
        continue;
      }
    } else if (path != route.path) {
      continue;
    }
    if (request.method != route.method) {
      wrong_method = true;
      continue;
    }
    matched = &route;
    if (route.has_key) key = PercentDecode(path.substr(route.path.size() + 1));
    break;
  }
  if (matched == nullptr) {
    if (wrong_method) return Text(405, "method not allowed");
    return Text(404, "not found");
  }
  route_id = matched->id;

  switch (matched->id) {
    case RouteId::kHealthz:
      return JsonMessage(200, "ok");
    case RouteId::kReadyz:
      return Ready();
    case RouteId::kStatus:
      return Status();
    default:
      break;
  }

  std::int64_t expires = 0;
  Environment* env = Authenticate(request.authorization, &expires);
  if (env == nullptr) return Unauthorized();

  if (matched->id == RouteId::kStreamAll || matched->id == RouteId::kStreamFlags) {
    HttpResponse response;
    response.stream_env = env->shared_from_this();
    response.credential_expires_unix_ms = expires;
    response.stream_kind =
        matched->id == RouteId::kStreamAll ? StreamKind::kAll : StreamKind::kFlags;
    response.stream_sdk = metrics::SdkKind::kServer;
    return response;
  }

  const protocol::SnapshotPtr snapshot = env->snapshot();
  if (!snapshot) return NoDataYet();
  switch (matched->id) {
    case RouteId::kLatestAll:
      return Polled(snapshot->AllData(), request);
    case RouteId::kLatestFlags:
    case RouteId::kPhpFlags:
      return Polled(snapshot->FlagsData(), request);
    case RouteId::kLatestSegments:
      return Polled(snapshot->SegmentsData(), request);
    case RouteId::kLatestFlag:
    case RouteId::kPhpFlag:
      return PolledItem(snapshot->flags().Find(key), request);
    case RouteId::kLatestSegment:
    case RouteId::kPhpSegment:
      return PolledItem(snapshot->segments().Find(key), request);
    default:
      break;
  }
  return Text(500, "unhandled route");
}

std::string_view HttpRequest::LaunchDarklyHeader(std::string_view name) const {
  for (const auto& [header, value] : launchdarkly_headers) {
    if (header.size() == name.size() &&
        std::equal(header.begin(), header.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        }))
      return value;
  }
  return {};
}

HttpResponse Router::Events(const HttpRequest& request, const Environment& env,
                            events::Channel channel, bool diagnostic) const {
  if (events_ == nullptr) return JsonMessage(503, "events are not relayed");
  EventsPost post;
  post.channel = channel;
  post.diagnostic = diagnostic;
  post.body = request.body;
  post.content_encoding = request.content_encoding;
  post.schema = request.LaunchDarklyHeader("X-LaunchDarkly-Event-Schema");
  post.tags = request.LaunchDarklyHeader("X-LaunchDarkly-Tags");
  // PHP sends "true": only its presence matters, a value keeps proxies from dropping it.
  post.unsummarized = !request.LaunchDarklyHeader("X-LaunchDarkly-Unsummarized").empty();
  if (diagnostic) {
    // Passed through with the SDK's own identity, as ld-relay does.
    if (!request.authorization.empty())
      post.headers.emplace_back("Authorization", request.authorization);
    if (!request.user_agent.empty()) post.headers.emplace_back("User-Agent", request.user_agent);
    post.headers.emplace_back("Content-Type", "application/json");
    for (const auto& header : request.launchdarkly_headers) post.headers.push_back(header);
  }
  const auto index =
      static_cast<std::size_t>(std::find_if(environments_.begin(), environments_.end(),
                                            [&env](const auto& e) { return e.get() == &env; }) -
                               environments_.begin());
  EventsReply reply = events_->Accept(events_slots_.at(index), post);
  if (reply.status != 202) return JsonMessage(reply.status, reply.message);
  HttpResponse response;
  response.status = 202;
  return response;
}

HttpResponse Router::Status() const {
  // ld-relay's /status shape, plus what an operator needs to know: where the data comes from,
  // how old it is, and whether the cache works.
  std::string out = "{\"environments\":{";
  bool healthy = true;
  const std::int64_t now = NowUnixMs();
  std::size_t index = 0;
  for (const auto& env : environments_) {
    const auto config_ptr = env->config();
    const config::EnvironmentConfig& config = *config_ptr;
    const EnvironmentStatus status = env->Status();
    healthy = healthy && status.connected;
    protocol::AppendJsonString(out, config.name);
    out += ":{";
    AppendField(out, "sdkKey", config.sdk_key.Masked());
    if (!config.env_id.empty()) AppendField(out, "envId", config.env_id);
    if (config.mobile_key) AppendField(out, "mobileKey", config.mobile_key->Masked());
    // ld-relay shows a rotated-out key while it is still accepted.
    if (config.expiring_sdk_key && now < config.expiring_sdk_key->expiry_unix_ms)
      AppendField(out, "expiringSdkKey", config.expiring_sdk_key->key.Masked());
    if (config.expiring_mobile_key && now < config.expiring_mobile_key->expiry_unix_ms)
      AppendField(out, "expiringMobileKey", config.expiring_mobile_key->key.Masked());
    AppendField(out, "status", status.connected ? "connected" : "disconnected");
    out += "\"connectionStatus\":{";
    AppendField(out, "state", ToString(status.state));
    AppendNumber(out, "stateSince", status.state_since_unix_ms);
    AppendField(out, "mode", ToString(status.mode));
    if (status.last_activity_unix_ms != 0)
      AppendNumber(out, "lastActivityAt", status.last_activity_unix_ms);
    if (status.last_error) {
      out += "\"lastError\":{";
      AppendField(out, "kind", status.last_error->kind);
      if (status.last_error->status_code != 0)
        AppendNumber(out, "statusCode", status.last_error->status_code);
      AppendField(out, "message", status.last_error->message);
      AppendNumber(out, "time", status.last_error->time_unix_ms);
      CloseObject(out);
      out.push_back(',');
    }
    CloseObject(out);
    out.push_back(',');
    const protocol::SnapshotPtr& snap = status.snapshot;
    AppendField(out, "dataSource", snap ? protocol::ToString(snap->source()) : "none");
    AppendNumber(out, "dataVersion", snap ? static_cast<std::int64_t>(snap->data_version()) : 0);
    if (snap) {
      AppendNumber(out, "dataUpdatedAt", snap->updated_at_unix_ms());
      AppendNumber(out, "dataAgeMs", now - snap->updated_at_unix_ms());
    }
    AppendNumber(out, "flagCount",
                 snap ? static_cast<std::int64_t>(snap->flags().live_count()) : 0);
    AppendNumber(out, "segmentCount",
                 snap ? static_cast<std::int64_t>(snap->segments().live_count()) : 0);
    out += "\"cache\":{";
    AppendField(out, "state", status.cache_state);
    AppendField(out, "load", status.cache_load);
    if (!status.cache_error.empty()) AppendField(out, "lastError", status.cache_error);
    CloseObject(out);
    out.push_back(',');
    if (!config.data_file.empty()) AppendField(out, "dataFile", config.data_file);
    if (events_ != nullptr) AppendEventsStatus(out, events_->StatusOf(events_slots_.at(index)));
    CloseObject(out);
    out.push_back(',');
    ++index;
  }
  if (out.back() == ',') out.pop_back();
  out += "},";
  AppendField(out, "status", healthy ? "healthy" : "degraded");
  AppendField(out, "version", version_);
  CloseObject(out);

  HttpResponse response;
  response.content_type = "application/json";
  response.headers.emplace_back("Cache-Control", "no-store");
  response.body = Bytes(std::move(out));
  return response;
}

HttpResponse Router::Ready() const {
  if (draining_.load()) return JsonMessage(503, "shutting down");
  const bool live = readiness_.mode == config::ReadinessMode::kLive;
  const std::int64_t now = NowUnixMs();
  std::string waiting;
  for (const auto& env : environments_) {
    bool ready = env->snapshot() != nullptr;
    if (ready && live) {
      // Live: the data source is healthy now, and (for a stream) has been heard from recently.
      const EnvironmentStatus status = env->Status();
      ready = status.state == ConnectionState::kValid &&
              (status.mode == SourceMode::kFile ||
               now - status.last_activity_unix_ms <= readiness_.max_silence.count());
    }
    if (!ready) waiting += (waiting.empty() ? "" : ", ") + env->name();
  }
  if (waiting.empty()) return JsonMessage(200, "ready");
  return JsonMessage(503,
                     std::string(live ? "no live data for: " : "no flag data yet for: ") + waiting);
}

HttpResponse Router::HandleMetrics(const HttpRequest& request) const {
  std::string_view path = request.target.substr(0, request.target.find('?'));
  if (path != "/metrics" && path != "/healthz" && path != "/readyz") {
    return Text(404, "not found; metrics are at /metrics");
  }
  if (request.method != "GET") return Text(405, "method not allowed");
  // The probes answer here too. This listener has its own connection cap, so a liveness probe
  // sent here still gets through when listen.maxConnections SDK connections fill the SDK port:
  // restarting a full relay would drop all its streams.
  if (path == "/healthz") return JsonMessage(200, "ok");
  if (path == "/readyz") return Ready();
  HttpResponse response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = Bytes(metrics_.Serialize());
  return response;
}

}  // namespace flagrelay::relay
