// The client-side routes: flag evaluation for a context (`/sdk/evalx`, `/msdk/evalx`, the JS
// `/sdk/evalx/{envId}`), the client streams (`/eval/{envId}`, `/meval`) and the ping streams
// (`/ping/{envId}`, `/mping`), with CORS and secure mode for the browser routes.
//
// Where ld-relay is stricter than SDKs need, flagrelay is lenient (see docs/behaviour.md): a REPORT
// may carry `application/json` with parameters or no Content-Type at all, and client streams send
// evaluated put/patch/delete rather than pings.

#include <algorithm>
#include <array>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base64.hpp"
#include "http_util.hpp"
#include "router.hpp"

namespace flagrelay::relay {

namespace {

using RouteId = Router::RouteId;

enum class Credential { kSdkKey, kMobileKey, kEnvironmentId };

struct ClientRoute {
  RouteId id = RouteId::kUnmatched;
  Credential credential = Credential::kSdkKey;
  enum Action { kEvaluate, kStream, kPing, kEvents, kDiagnostic } action = kEvaluate;
  bool report = false;               // the context is the body, not a path segment
  std::string_view env_id;           // browser routes
  std::string_view context;          // GET routes: base64url context JSON
  std::string_view allowed_methods;  // browser routes, for CORS
};

// The ld-relay headers browsers may send, plus per-environment `allowedHeader`s.
constexpr std::string_view kCorsAllowedHeaders =
    "Cache-Control,Content-Type,Content-Length,Accept-Encoding,X-LaunchDarkly-User-Agent,"
    "X-LaunchDarkly-Payload-ID,X-LaunchDarkly-Wrapper,X-LaunchDarkly-Event-Schema,"
    "X-LaunchDarkly-Tags";

bool IsContextList(std::string_view segment) { return segment == "contexts" || segment == "users"; }
bool IsContextBody(std::string_view segment) {
  return segment == "context" || segment == "user" || IsContextList(segment);
}

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> segments;
  if (path.starts_with('/')) path.remove_prefix(1);
  while (true) {
    const std::size_t slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}

// Which client-side route `path` is, and whether `method` fits it. Nullopt: not a client-side path.
std::optional<ClientRoute> Match(std::string_view method, std::string_view path,
                                 bool& wrong_method) {
  const std::vector<std::string_view> s = Segments(path);
  const std::size_t n = s.size();
  const bool get = method == "GET", report = method == "REPORT", options = method == "OPTIONS";
  auto server = [&](RouteId id, Credential credential, bool is_report, std::string_view context,
                    bool method_ok) -> std::optional<ClientRoute> {
    if (!method_ok) {
      wrong_method = true;
      return std::nullopt;
    }
    return ClientRoute{id, credential, ClientRoute::kEvaluate, is_report, {}, context, {}};
  };
  auto browser = [&](RouteId id, ClientRoute::Action action, bool is_report, std::string_view env,
                     std::string_view context) -> std::optional<ClientRoute> {
    const bool method_ok = options || (is_report ? report : get);
    if (!method_ok) {
      wrong_method = true;
      return std::nullopt;
    }
    return ClientRoute{options ? RouteId::kBrowserPreflight : id,
                       Credential::kEnvironmentId,
                       action,
                       is_report,
                       env,
                       context,
                       is_report ? "REPORT,OPTIONS" : "GET,OPTIONS"};
  };

  if (n >= 3 && (s[0] == "sdk" || s[0] == "msdk") && s[1] == "evalx") {
    const bool mobile = s[0] == "msdk";
    const Credential credential = mobile ? Credential::kMobileKey : Credential::kSdkKey;
    if (n == 3 && IsContextBody(s[2]))
      return server(mobile ? RouteId::kMobileEvalReport : RouteId::kServerEvalReport, credential,
                    true, {}, report);
    if (n == 4 && IsContextList(s[2]) && (get || mobile))
      return server(mobile ? RouteId::kMobileEvalGet : RouteId::kServerEvalGet, credential, false,
                    s[3], get);
    if (mobile) return std::nullopt;
    if (n == 4 && IsContextList(s[2]) && !IsContextBody(s[3]))
      return server(RouteId::kServerEvalGet, credential, false, s[3], false);  // not a GET: 405
    if (n == 4 && IsContextBody(s[3]))
      return browser(RouteId::kBrowserEvalReport, ClientRoute::kEvaluate, true, s[2], {});
    if (n == 5 && IsContextList(s[3]))
      return browser(RouteId::kBrowserEvalGet, ClientRoute::kEvaluate, false, s[2], s[4]);
    return std::nullopt;
  }
  if (s[0] == "eval" && n == 3)
    return browser(RouteId::kBrowserStreamGet, ClientRoute::kStream, false, s[1], s[2]);
  if (s[0] == "eval" && n == 2)
    return browser(RouteId::kBrowserStreamReport, ClientRoute::kStream, true, s[1], {});
  if (s[0] == "ping" && n == 2)
    return browser(RouteId::kBrowserPing, ClientRoute::kPing, false, s[1], {});
  if (s[0] == "meval" && n <= 2) {
    if (!(n == 2 ? get : report)) {
      wrong_method = true;
      return std::nullopt;
    }
    return ClientRoute{n == 2 ? RouteId::kMobileStreamGet : RouteId::kMobileStreamReport,
                       Credential::kMobileKey,
                       ClientRoute::kStream,
                       n == 1,
                       {},
                       n == 2 ? s[1] : std::string_view(),
                       {}};
  }
  // Events: POST only (OPTIONS too for browsers).
  const bool post = method == "POST";
  auto events = [&](RouteId id, Credential credential,
                    ClientRoute::Action action) -> std::optional<ClientRoute> {
    if (!post) {
      wrong_method = true;
      return std::nullopt;
    }
    return ClientRoute{id, credential, action, false, {}, {}, {}};
  };
  if (n == 1 && s[0] == "bulk")
    return events(RouteId::kServerEvents, Credential::kSdkKey, ClientRoute::kEvents);
  if (n == 1 && s[0] == "diagnostic")
    return events(RouteId::kServerDiagnostic, Credential::kSdkKey, ClientRoute::kDiagnostic);
  if (s[0] == "mobile" &&
      (n == 1 || (n == 2 && s[1] == "events") || (n == 3 && s[1] == "events" && s[2] == "bulk")))
    return events(RouteId::kMobileEvents, Credential::kMobileKey, ClientRoute::kEvents);
  if (n == 3 && s[0] == "mobile" && s[1] == "events" && s[2] == "diagnostic")
    return events(RouteId::kMobileDiagnostic, Credential::kMobileKey, ClientRoute::kDiagnostic);
  if (n == 3 && s[0] == "events" && (s[1] == "bulk" || s[1] == "diagnostic")) {
    if (!post && !options) {
      wrong_method = true;
      return std::nullopt;
    }
    const bool diagnostic = s[1] == "diagnostic";
    const RouteId id = options      ? RouteId::kBrowserPreflight
                       : diagnostic ? RouteId::kBrowserDiagnostic
                                    : RouteId::kBrowserEvents;
    return ClientRoute{id,
                       Credential::kEnvironmentId,
                       diagnostic ? ClientRoute::kDiagnostic : ClientRoute::kEvents,
                       false,
                       s[2],
                       {},
                       "POST,OPTIONS"};
  }
  if (s[0] == "mping" && n == 1) {
    if (!get) {
      wrong_method = true;
      return std::nullopt;
    }
    return ClientRoute{
        RouteId::kMobilePing, Credential::kMobileKey, ClientRoute::kPing, false, {}, {}, {}};
  }
  return std::nullopt;
}

// `application/json`, with or without parameters, or no Content-Type at all (some official SDKs
// send none with REPORT).
bool AcceptableContentType(std::string_view content_type) {
  const std::string_view media = Trim(content_type.substr(0, content_type.find(';')));
  if (media.empty()) return true;
  constexpr std::string_view kJson = "application/json";
  return media.size() == kJson.size() &&
         std::equal(media.begin(), media.end(), kJson.begin(), [](char a, char b) {
           return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
         });
}

std::string SecureModeHash(std::string_view sdk_key, std::string_view fully_qualified_key) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  HMAC(EVP_sha256(), sdk_key.data(), static_cast<int>(sdk_key.size()),
       reinterpret_cast<const unsigned char*>(fully_qualified_key.data()),
       fully_qualified_key.size(), digest.data(), &size);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xF]);
  }
  return hex;
}

void AddCorsHeaders(HttpResponse& response, const config::EnvironmentConfig& config,
                    std::string_view origin, std::string_view methods) {
  std::string allowed_origin;
  const auto& origins = config.allowed_origins;
  if (origins.empty()) {
    allowed_origin = origin.empty() ? "*" : std::string(origin);
  } else {
    const bool listed = std::find(origins.begin(), origins.end(), origin) != origins.end();
    allowed_origin = listed ? std::string(origin) : origins.front();
  }
  std::string allowed_headers(kCorsAllowedHeaders);
  for (const std::string& header : config.allowed_headers) allowed_headers += "," + header;
  auto& h = response.headers;
  h.emplace_back("Access-Control-Allow-Origin", std::move(allowed_origin));
  h.emplace_back("Access-Control-Allow-Credentials", "false");
  h.emplace_back("Access-Control-Max-Age", "300");
  h.emplace_back("Access-Control-Expose-Headers", "Date");
  h.emplace_back("Access-Control-Allow-Headers", std::move(allowed_headers));
  h.emplace_back("Access-Control-Allow-Methods", std::string(methods));
  h.emplace_back("Vary", "Origin");
}

}  // namespace

std::vector<Router::RouteLabel> Router::ClientSideRouteLabels() {
  return {
      {RouteId::kServerEvalGet, "GET", "/sdk/evalx/contexts/{context}"},
      {RouteId::kServerEvalReport, "REPORT", "/sdk/evalx/context"},
      {RouteId::kMobileEvalGet, "GET", "/msdk/evalx/contexts/{context}"},
      {RouteId::kMobileEvalReport, "REPORT", "/msdk/evalx/context"},
      {RouteId::kBrowserEvalGet, "GET", "/sdk/evalx/{envId}/contexts/{context}"},
      {RouteId::kBrowserEvalReport, "REPORT", "/sdk/evalx/{envId}/context"},
      {RouteId::kBrowserStreamGet, "GET", "/eval/{envId}/{context}"},
      {RouteId::kBrowserStreamReport, "REPORT", "/eval/{envId}"},
      {RouteId::kMobileStreamGet, "GET", "/meval/{context}"},
      {RouteId::kMobileStreamReport, "REPORT", "/meval"},
      {RouteId::kMobilePing, "GET", "/mping"},
      {RouteId::kBrowserPing, "GET", "/ping/{envId}"},
      {RouteId::kBrowserPreflight, "OPTIONS", "browser preflight"},
      {RouteId::kServerEvents, "POST", "/bulk"},
      {RouteId::kServerDiagnostic, "POST", "/diagnostic"},
      {RouteId::kMobileEvents, "POST", "/mobile/events/bulk"},
      {RouteId::kMobileDiagnostic, "POST", "/mobile/events/diagnostic"},
      {RouteId::kBrowserEvents, "POST", "/events/bulk/{envId}"},
      {RouteId::kBrowserDiagnostic, "POST", "/events/diagnostic/{envId}"},
  };
}

std::optional<HttpResponse> Router::RouteClientSide(const HttpRequest& request,
                                                    std::string_view path,
                                                    RouteId& route_id) const {
  bool wrong_method = false;
  const std::optional<ClientRoute> route = Match(request.method, path, wrong_method);
  if (!route) {
    if (wrong_method) return Text(405, "method not allowed");
    return std::nullopt;
  }
  route_id = route->id;

  Environment* env = nullptr;
  std::int64_t expires = 0;
  switch (route->credential) {
    case Credential::kSdkKey:
      env = Authenticate(request.authorization, &expires);
      break;
    case Credential::kMobileKey:
      env = AuthenticateMobile(request.authorization, &expires);
      break;
    case Credential::kEnvironmentId: {
      auto it = by_env_id_.find(PercentDecode(route->env_id));
      if (it != by_env_id_.end() && !it->second->credential_rejected()) env = it->second;
      // ld-relay answers an unknown environment ID with 404 and no CORS headers.
      if (env == nullptr) return Text(404, "URL did not contain an environment ID");
      break;
    }
  }
  if (env == nullptr) return Unauthorized();
  const auto config_ptr = env->config();
  const config::EnvironmentConfig& config = *config_ptr;
  const bool browser = route->credential == Credential::kEnvironmentId;
  auto respond = [&](HttpResponse response) {
    if (browser) AddCorsHeaders(response, config, request.origin, route->allowed_methods);
    return response;
  };
  if (request.method == "OPTIONS") return respond(HttpResponse{});

  const metrics::SdkKind sdk = browser ? metrics::SdkKind::kBrowser
                               : route->credential == Credential::kMobileKey
                                   ? metrics::SdkKind::kMobile
                                   : metrics::SdkKind::kServer;
  if (route->action == ClientRoute::kEvents || route->action == ClientRoute::kDiagnostic) {
    const events::Channel channel = browser                            ? events::Channel::kBrowser
                                    : sdk == metrics::SdkKind::kMobile ? events::Channel::kMobile
                                                                       : events::Channel::kServer;
    return respond(Events(request, *env, channel, route->action == ClientRoute::kDiagnostic));
  }
  if (route->action == ClientRoute::kPing) {
    HttpResponse response;
    response.stream_env = env->shared_from_this();
    response.credential_expires_unix_ms = expires;
    response.stream_kind = StreamKind::kPing;
    response.stream_sdk = sdk;
    return respond(std::move(response));
  }

  std::string decoded;  // a GET's context, from the path
  std::string_view context_json;
  if (route->report) {
    if (!AcceptableContentType(request.content_type))
      return respond(Text(415, "Content-Type must be application/json."));
    context_json = request.body;
  } else {
    auto from_path = DecodeBase64(PercentDecode(route->context));
    if (!from_path) return respond(JsonMessage(400, "context is not valid base64url"));
    decoded = std::move(*from_path);
    context_json = decoded;
  }
  auto context = eval::Context::Parse(context_json);
  if (!context) return respond(JsonMessage(400, context.error().message));

  if (browser && config.secure_mode) {
    const std::optional<std::string> hash = QueryParam(request.target, "h");
    const std::string expected =
        SecureModeHash(config.sdk_key.Reveal(), context->FullyQualifiedKey());
    if (!hash || hash->size() != expected.size() ||
        CRYPTO_memcmp(hash->data(), expected.data(), expected.size()) != 0) {
      return respond(
          JsonMessage(400, "Environment is in secure mode, and context hash does not match."));
    }
  }

  const eval::EvalOptions options{browser ? eval::Audience::kEnvironmentId
                                  : route->credential == Credential::kMobileKey
                                      ? eval::Audience::kMobile
                                      : eval::Audience::kServer,
                                  QueryParam(request.target, "withReasons") == "true"};
  if (route->action == ClientRoute::kStream) {
    HttpResponse response;
    response.stream_env = env->shared_from_this();
    response.credential_expires_unix_ms = expires;
    response.stream_kind = StreamKind::kEvaluated;
    response.stream_sdk = sdk;
    response.client_stream = std::make_shared<ClientStream>(std::move(*context), options);
    return respond(std::move(response));
  }

  const std::shared_ptr<const eval::FlagData> data = env->EvalData();
  if (!data) return respond(JsonMessage(503, "Service not initialized"));
  std::string body;
  eval::AppendAllJson(body, *data, *context, options);
  HttpResponse response;
  response.content_type = "application/json";
  response.headers.emplace_back("Cache-Control", "no-store");
  response.body = Bytes(std::move(body));
  return respond(std::move(response));
}

}  // namespace flagrelay::relay
