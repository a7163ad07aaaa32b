// Turns YAML text plus environment variables into a validated RelayConfig in three steps:
// parse the file (types and units), apply the ld-relay environment variables, then validate
// (ranges and cross-field rules). Every step records errors and carries on, so a user sees all
// problems at once.

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "expand.hpp"
#include "flagrelay/config/config.hpp"

namespace flagrelay::config {
namespace {

constexpr std::size_t kMinHeaderBytes = 1024;
constexpr std::size_t kMinQueueBytes = 1024;
constexpr std::size_t kMinMapSize = std::size_t{1} << 20;
constexpr std::size_t kMinEventBytes = 1024;
constexpr Duration kMinPollingInterval = std::chrono::seconds(1);
constexpr Duration kMinHeartbeat = std::chrono::seconds(1);
// SDKs give up on a stream after 5 minutes without data; stay well inside that.
constexpr Duration kMaxHeartbeat = std::chrono::minutes(4);
// Shorter values are too likely to occur in ordinary text to scrub them from messages.
constexpr std::size_t kMinScrubbedSecret = 6;
// What a proxy password becomes in messages: entirely hidden, length included.
constexpr std::string_view kMaskedPassword = "****";

constexpr std::string_view kEnvSdkKeyPrefix = "LD_ENV_";
constexpr std::string_view kEnvMobileKeyPrefix = "LD_MOBILE_KEY_";
constexpr std::string_view kEnvClientSideIdPrefix = "LD_CLIENT_SIDE_ID_";

// Where a value came from, so errors found after parsing can still point at it.
struct Origin {
  std::string where;  // "relay.yaml:7:3", or the variable name when from_env
  bool from_env = false;
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool IsAllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit);
}

bool HasWhitespace(std::string_view s) { return std::any_of(s.begin(), s.end(), IsSpace); }

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool IsValidEnvironmentName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' ||
           c == '-';
  });
}

// Lower-cased without separators, so `sdk_key` and `SdkKey` both match `sdkKey`.
std::string Fold(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '_' && c != '-') out.push_back(ToLower(c));
  }
  return out;
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions (`prot` → `port`).
std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::optional<std::string_view> Suggest(std::string_view key,
                                        const std::vector<std::string_view>& candidates) {
  const std::string folded = Fold(key);
  std::optional<std::string_view> best;
  std::size_t best_distance = SIZE_MAX;
  for (std::string_view candidate : candidates) {
    const std::size_t distance = EditDistance(folded, Fold(candidate));
    const std::size_t allowed = candidate.size() <= 4 ? 1 : 2;
    if (distance <= allowed && distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string_view KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a single value";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string FormatDuration(Duration d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  const std::pair<Duration::rep, std::string_view> kUnits[] = {
      {3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}, {1, "ms"}};
  for (const auto& [unit_ms, suffix] : kUnits) {
    if (ms >= unit_ms) {
      out += std::to_string(ms / unit_ms);
      out += suffix;
      ms %= unit_ms;
    }
  }
  return out;
}

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Where a proxy URL's credentials sit: the user info is everything between `scheme://` (or the
// start, when there is none) and the last '@'; the password follows its first ':'. Taking the
// last '@' means a password with a raw '@', '/' or '#' is still found, so it is still masked.
struct UserInfo {
  std::size_t begin = 0;
  std::size_t colon = std::string_view::npos;  // npos: a user name without password
  std::size_t end = 0;                         // the '@'
};

std::optional<UserInfo> FindUserInfo(std::string_view url) {
  const std::size_t scheme = url.find("://");
  const std::size_t begin = scheme == std::string_view::npos ? 0 : scheme + 3;
  const std::size_t at = url.rfind('@');
  if (at == std::string_view::npos || at < begin) return std::nullopt;
  UserInfo info{begin, url.substr(begin, at - begin).find(':'), at};
  if (info.colon != std::string_view::npos) info.colon += begin;
  return info;
}

// The URL as it may be printed: `http://user:****@proxy:3128`.
std::string MaskProxyUrl(std::string_view url) {
  const auto info = FindUserInfo(url);
  if (!info || info->colon == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, info->colon + 1)) + std::string(kMaskedPassword) +
         std::string(url.substr(info->end));
}

bool IsValidPercentEncoding(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || !IsHexDigit(s[i + 1]) || !IsHexDigit(s[i + 2])) return false;
    i += 2;
  }
  return true;
}

std::string ErrnoMessage(int err) {
  return std::error_code(err, std::generic_category()).message();
}

// Where each YAML document starts, and where its root node does; nothing else is kept.
class DocumentMarks : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  std::vector<YAML::Mark> roots;

  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnMapEnd() override {}

 private:
  // A document's first node is its root.
  void Node(const YAML::Mark& mark) {
    if (roots.size() < starts.size()) roots.push_back(mark);
  }
};

class Loader {
 public:
  Loader(std::string_view source, const EnvVars& env) : source_(source), env_(env) {}

  LoadResult Load(std::string_view yaml) {
    if (ParseYaml(yaml)) {
      ApplyEnvVars();
      Validate();
    }
    return Finish();
  }

 private:
  using Handler = std::function<void(const std::string& path, const YAML::Node& value)>;
  struct Field {
    std::string_view key;
    Handler handle;
  };

  // ---- parsing -------------------------------------------------------------------------------

  // False when the file is unusable as a whole (bad syntax, not a mapping): further errors
  // would only be noise.
  bool ParseYaml(std::string_view yaml) {
    const std::string text(yaml);
    YAML::Node root;
    try {
      // Not YAML::LoadAll: on some malformed input (a stray ',' at the top level) yaml-cpp's
      // parser returns empty documents forever without consuming anything, and LoadAll collects
      // them until memory runs out (yaml-cpp issue #1040; Debian 12 has 0.7). The documents are
      // counted here, two at most, and one that starts where the previous one did is an error.
      std::istringstream in(text);
      YAML::Parser parser(in);
      DocumentMarks documents;
      while (documents.starts.size() < 2 && parser.HandleNextDocument(documents)) {
      }
      if (documents.starts.size() == 2) {
        const YAML::Mark& second = documents.starts[1];
        if (second.pos == documents.starts[0].pos) {
          const auto at = static_cast<std::size_t>(std::max(second.pos, 0));
          errors_.push_back(At(second) + ": invalid YAML: unexpected " +
                            (at < text.size() ? Quote(text.substr(at, 1)) : "end of input"));
          return false;
        }
        errors_.push_back(At(documents.roots.size() > 1 ? documents.roots[1] : second) +
                          ": only one YAML document is allowed");
      }
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      errors_.push_back(At(e.mark) + ": invalid YAML: " + e.msg);
      return false;
    }
    if (root.IsNull()) return true;
    if (!root.IsMap()) {
      errors_.push_back(At(root.Mark()) + ": the top level must be a mapping of keys, not " +
                        std::string(KindName(root)));
      return false;
    }
    ParseMap(root, "", RootFields());
    return true;
  }

  std::vector<Field> RootFields() {
    return {
        {"listen", Section(&Loader::ListenFields)},
        {"upstream", Section(&Loader::UpstreamFields)},
        {"streams", Section(&Loader::StreamsFields)},
        {"cache", Section(&Loader::CacheFields)},
        {"metrics", Section(&Loader::MetricsFields)},
        {"proxy", Section(&Loader::ProxyFields)},
        {"readiness", Section(&Loader::ReadinessFields)},
        {"events", Section(&Loader::EventsFields)},
        {"reload", Section(&Loader::ReloadFields)},
        {"shutdown", Section(&Loader::ShutdownFields)},
        {"logLevel",
         [this](const std::string& path, const YAML::Node& node) {
           if (auto text = ScalarText(path, node)) SetLogLevel(path, *text);
         }},
        {"threads",
         [this](const std::string& path, const YAML::Node& node) {
           std::size_t threads = 0;
           if (auto text = ScalarText(path, node); text && SetCount(path, *text, threads)) {
             if (threads > UINT_MAX) {
               Error(path, "too large");
             } else {
               config_.threads = static_cast<unsigned>(threads);
             }
           }
         }},
        {"environments", [this](const std::string& path,
                                const YAML::Node& node) { ParseEnvironments(path, node); }},
    };
  }

  std::vector<Field> ListenFields() {
    ListenConfig& c = config_.listen;
    return {
        {"host", StringField(c.host)},
        {"port", PortField(c.port, 1)},
        {"maxConnections", CountField(c.max_connections)},
        {"headerTimeout", DurationField(c.header_timeout)},
        {"idleTimeout", DurationField(c.idle_timeout)},
        {"maxHeaderBytes", SizeField(c.max_header_bytes)},
        {"maxBodyBytes", SizeField(c.max_body_bytes)},
        {"tls",
         [this](const std::string& path, const YAML::Node& node) {
           if (!node.IsMap()) {
             ParseMap(node, path, {});  // reports the wrong type
             return;
           }
           // Present (even as `{}`) means "serve HTTPS"; validation then asks for the files.
           ParseMap(node, path, TlsFields(config_.listen.tls.emplace(), /*listener=*/true));
         }},
    };
  }

  std::vector<Field> UpstreamFields() {
    UpstreamConfig& c = config_.upstream;
    return {
        {"streamUri", StringField(c.stream_uri)},
        {"baseUri", StringField(c.base_uri)},
        {"eventsUri", StringField(c.events_uri)},
        {"connectTimeout", DurationField(c.connect_timeout)},
        {"readTimeout", DurationField(c.read_timeout)},
        {"initialReconnectDelay", DurationField(c.initial_reconnect_delay)},
        {"maxReconnectDelay", DurationField(c.max_reconnect_delay)},
        {"reconnectResetAfter", DurationField(c.reconnect_reset_after)},
        {"maxEventBytes", SizeField(c.max_event_bytes)},
        {"initTimeout", DurationField(c.init_timeout)},
        {"exitOnError", BoolField(c.exit_on_error)},
        {"disconnectedStatusTime", DurationField(c.disconnected_status_time)},
        {"pollingFallback", Section(&Loader::PollingFallbackFields)},
        {"tls",
         [this, &c](const std::string& path, const YAML::Node& node) {
           ParseMap(node, path, TlsFields(c.tls, /*listener=*/false));
         }},
    };
  }

  std::vector<Field> PollingFallbackFields() {
    PollingFallbackConfig& c = config_.upstream.polling_fallback;
    return {
        {"enabled", BoolField(c.enabled)},
        {"after", DurationField(c.after)},
        {"interval", DurationField(c.interval)},
    };
  }

  // listen.tls and upstream.tls share the keys; a listener has no use for caFile (it does not
  // ask clients for certificates), so there it is an error rather than silently ignored.
  std::vector<Field> TlsFields(TlsConfig& c, bool listener) {
    Handler ca_file = StringField(c.ca_file);
    if (listener) {
      ca_file = [this](const std::string& path, const YAML::Node&) {
        Error(path,
              "not allowed here: the listener does not verify client certificates (caFile "
              "belongs under upstream.tls)");
      };
    }
    return {
        {"caFile", std::move(ca_file)},
        {"certFile", StringField(c.cert_file)},
        {"keyFile", StringField(c.key_file)},
        {"minVersion",
         [this, &c](const std::string& path, const YAML::Node& node) {
           if (auto text = ScalarText(path, node)) {
             if (*text == "1.2" || *text == "1.3") {
               c.min_version = std::move(*text);
             } else {
               Error(path, "must be 1.2 or 1.3, got " + Quote(*text));
             }
           }
         }},
    };
  }

  std::vector<Field> ProxyFields() {
    ProxyConfig& c = config_.proxy;
    return {
        {"url",
         [this, &c](const std::string& path, const YAML::Node& node) {
           if (auto text = ScalarText(path, node)) {
             KeepProxyCredentials(*text);
             c.url = std::move(*text);
           }
         }},
        {"noProxy",
         [this, &c](const std::string& path, const YAML::Node& node) {
           if (auto text = ScalarText(path, node)) {
             c.no_proxy = std::move(*text);
             no_proxy_from_file_ = true;
           }
         }},
    };
  }

  std::vector<Field> ReadinessFields() {
    ReadinessConfig& c = config_.readiness;
    return {
        {"mode",
         [this, &c](const std::string& path, const YAML::Node& node) {
           if (auto text = ScalarText(path, node)) {
             if (*text == "data") {
               c.mode = ReadinessMode::kData;
             } else if (*text == "live") {
               c.mode = ReadinessMode::kLive;
             } else {
               Error(path, "must be data or live, got " + Quote(*text));
             }
           }
         }},
        {"maxSilence", DurationField(c.max_silence)},
    };
  }

  std::vector<Field> StreamsFields() {
    StreamsConfig& c = config_.streams;
    return {
        {"heartbeatInterval", DurationField(c.heartbeat_interval)},
        {"maxQueueEvents", CountField(c.max_queue_events)},
        {"maxQueueBytes", SizeField(c.max_queue_bytes)},
        {"writeTimeout", DurationField(c.write_timeout)},
        {"maxConnectionTime", DurationField(c.max_connection_time)},
    };
  }

  std::vector<Field> EventsFields() {
    EventsConfig& c = config_.events;
    return {
        {"flushInterval", DurationField(c.flush_interval)},
        {"maxBatch", CountField(c.max_batch)},
        {"maxBodyBytes", SizeField(c.max_body_bytes)},
        {"maxQueueEvents", CountField(c.max_queue_events)},
        {"maxQueueBytes", SizeField(c.max_queue_bytes)},
        {"maxDiagnosticQueue", CountField(c.max_diagnostic_queue)},
        {"sendTimeout", DurationField(c.send_timeout)},
        {"shutdownTimeout", DurationField(c.shutdown_timeout)},
    };
  }

  std::vector<Field> EnvironmentEventsFields(EnvironmentEventsConfig& c) {
    return {
        {"enabled", BoolField(c.enabled)},
        {"rateLimit", NumberField(c.rate_limit)},
        {"rateBurst", NumberField(c.rate_burst)},
        {"sampleRatio", NumberField(c.sample_ratio)},
    };
  }

  std::vector<Field> ReloadFields() {
    return {{"watchInterval", DurationField(config_.reload.watch_interval)}};
  }

  std::vector<Field> ShutdownFields() {
    return {{"drainDelay", DurationField(config_.shutdown.drain_delay)}};
  }

  // expiringSdkKey / expiringMobileKey: {key, expiry}, both required.
  Handler ExpiringKeyField(std::optional<ExpiringKey>& out) {
    return [this, &out](const std::string& path, const YAML::Node& node) {
      ExpiringKey key;
      // seen: a value was there (and any problem with it is reported already).
      bool has_key = false, has_expiry = false, key_seen = false, expiry_seen = false;
      ParseMap(node, path,
               {{"key",
                 [&](const std::string& key_path, const YAML::Node& value) {
                   key_seen = true;
                   if (auto text = ScalarText(key_path, value)) {
                     key.key = KeepSecret(std::move(*text));
                     has_key = CheckKey(key_path, key.key);
                   }
                 }},
                {"expiry", [&](const std::string& expiry_path, const YAML::Node& value) {
                   expiry_seen = true;
                   auto text = ScalarText(expiry_path, value);
                   if (!text) return;
                   if (auto time = ParseTimestamp(*text)) {
                     key.expiry_unix_ms = *time;
                     has_expiry = true;
                   } else {
                     Error(expiry_path,
                           "expected an RFC 3339 time such as 2026-12-01T00:00:00Z, got " +
                               Quote(*text));
                   }
                 }}});
      if (!node.IsMap()) return;
      if (!key_seen) Error(path + ".key", "required");
      if (!expiry_seen) Error(path + ".expiry", "required");
      if (has_key && has_expiry) out = std::move(key);
    };
  }

  std::vector<Field> CacheFields() {
    CacheConfig& c = config_.cache;
    return {
        {"dir", StringField(c.dir)},
        {"mapSize", SizeField(c.map_size_bytes)},
    };
  }

  std::vector<Field> MetricsFields() {
    MetricsConfig& c = config_.metrics;
    return {
        {"host", StringField(c.host)},
        {"port", PortField(c.port, 0)},
    };
  }

  // Valid only until the next environment is added (the vector may reallocate).
  std::vector<Field> EnvironmentFields(EnvironmentConfig& e) {
    return {
        {"sdkKey", SecretField(e.sdk_key)},
        {"mobileKey",
         [this, &e](const std::string& path, const YAML::Node& node) {
           // Empty (e.g. `${LD_MOBILE_KEY:-}` from an optional Secret) means "no mobile key".
           if (auto text = ScalarText(path, node); text && !text->empty()) {
             e.mobile_key = KeepSecret(std::move(*text));
           }
         }},
        {"expiringSdkKey", ExpiringKeyField(e.expiring_sdk_key)},
        {"expiringMobileKey", ExpiringKeyField(e.expiring_mobile_key)},
        {"envId", StringField(e.env_id)},
        {"dataFile", StringField(e.data_file)},
        {"dataFilePollInterval", DurationField(e.data_file_poll_interval)},
        {"allowedOrigin", StringListField(e.allowed_origins)},
        {"allowedHeader", StringListField(e.allowed_headers)},
        {"secureMode", BoolField(e.secure_mode)},
        {"events",
         [this, &e](const std::string& path, const YAML::Node& node) {
           ParseMap(node, path, EnvironmentEventsFields(e.events));
         }},
    };
  }

  Handler Section(std::vector<Field> (Loader::*fields)()) {
    return [this, fields](const std::string& path, const YAML::Node& node) {
      ParseMap(node, path, (this->*fields)());
    };
  }
  Handler StringField(std::string& out) {
    return [this, &out](const std::string& path, const YAML::Node& node) {
      if (auto text = ScalarText(path, node)) out = std::move(*text);
    };
  }
  Handler SecretField(Secret& out) {
    return [this, &out](const std::string& path, const YAML::Node& node) {
      if (auto text = ScalarText(path, node)) out = KeepSecret(std::move(*text));
    };
  }
  // A YAML sequence of strings, or one comma-separated string (handy from `${VAR}`).
  Handler StringListField(std::vector<std::string>& out) {
    return [this, &out](const std::string& path, const YAML::Node& node) {
      out.clear();
      auto add = [&out](std::string_view text) {
        while (!text.empty()) {
          const std::size_t comma = text.find(',');
          std::string_view item = text.substr(0, comma);
          while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
          while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
          if (!item.empty()) out.emplace_back(item);
          if (comma == std::string_view::npos) break;
          text.remove_prefix(comma + 1);
        }
      };
      if (node.IsSequence()) {
        for (std::size_t i = 0; i < node.size(); ++i) {
          if (auto text = ScalarText(path + "[" + std::to_string(i) + "]", node[i])) add(*text);
        }
      } else if (auto text = ScalarText(path, node)) {
        add(*text);
      }
    };
  }
  Handler DurationField(Duration& out) {
    return [this, &out](const std::string& path, const YAML::Node& node) {
      if (auto text = ScalarText(path, node)) SetDuration(path, *text, out);
    };
  }
  Handler SizeField(std::size_t& out) {
    return [this, &out](const std::string& path, const YAML::Node& node) {
      if (auto text = ScalarText(path, node)) SetSize(path, *text, out);
    };
  }
  Handler BoolField(bool& out) {
    return [this, &out](const std::string& path, const YAML::Node& node) {
      if (auto text = ScalarText(path, node)) SetBool(path, *text, out, /*allow_digits=*/false);
    };
  }
  // A non-negative decimal number (`0.25`, `1000`).
  Handler NumberField(double& out) {
    return [this, &out](const std::string& path, const YAML::Node& node) {
      auto text = ScalarText(path, node);
      if (!text) return;
      double value = 0;
      const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
      if (text->empty() || ec != std::errc() || end != text->data() + text->size() ||
          !std::isfinite(value) || value < 0) {
        Error(path, "expected a number of at least 0, got " + Quote(*text));
        return;
      }
      out = value;
    };
  }
  Handler CountField(std::size_t& out) {
    return [this, &out](const std::string& path, const YAML::Node& node) {
      if (auto text = ScalarText(path, node)) SetCount(path, *text, out);
    };
  }
  Handler PortField(std::uint16_t& out, unsigned min_port) {
    return [this, &out, min_port](const std::string& path, const YAML::Node& node) {
      if (auto text = ScalarText(path, node)) SetPort(path, *text, out, min_port);
    };
  }

  // Walks one mapping: each key must be known and appear once. An empty value (`key:`) counts as
  // omitted, so the default stays.
  void ParseMap(const YAML::Node& node, const std::string& path, const std::vector<Field>& fields) {
    if (node.IsNull()) return;
    if (!node.IsMap()) {
      Error(path, "expected a mapping, got " + std::string(KindName(node)));
      return;
    }
    std::vector<std::string> seen;
    for (const auto& entry : node) {
      // By value: yaml-cpp's iterator hands out a temporary pair, so `it->first` would dangle.
      const YAML::Node key_node = entry.first;
      const YAML::Node value = entry.second;
      if (!key_node.IsScalar()) {
        Report(Origin{At(key_node.Mark())}, path,
               "keys must be plain names, not " + std::string(KindName(key_node)));
        continue;
      }
      const std::string key = key_node.Scalar();
      const std::string full = path.empty() ? key : path + "." + key;
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
        Report(Origin{At(key_node.Mark())}, full, "duplicate key");
        continue;
      }
      seen.push_back(key);
      const auto field =
          std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.key == key; });
      if (field == fields.end()) {
        std::vector<std::string_view> names;
        for (const Field& f : fields) names.push_back(f.key);
        std::string message = "unknown key";
        if (auto suggestion = Suggest(key, names)) {
          message += " (did you mean " + Quote(*suggestion) + "?)";
        }
        Report(Origin{At(key_node.Mark())}, full, message);
        continue;
      }
      origins_[full] = Origin{At(key_node.Mark())};
      if (!value.IsNull()) field->handle(full, value);
    }
  }

  void ParseEnvironments(const std::string& path, const YAML::Node& node) {
    if (!node.IsMap()) {
      Error(path, "expected a mapping of environment names, got " + std::string(KindName(node)));
      return;
    }
    for (const auto& entry : node) {
      const YAML::Node key_node = entry.first;
      if (!key_node.IsScalar()) {
        Report(Origin{At(key_node.Mark())}, path,
               "environment names must be plain names, not " + std::string(KindName(key_node)));
        continue;
      }
      const std::string name = key_node.Scalar();
      const std::string full = path + "." + name;
      if (FindEnvironment(name) != nullptr) {
        Report(Origin{At(key_node.Mark())}, full, "duplicate environment");
        continue;
      }
      origins_[full] = Origin{At(key_node.Mark())};
      EnvironmentConfig& environment = config_.environments.emplace_back();
      environment.name = name;
      ParseMap(entry.second, full, EnvironmentFields(environment));
    }
  }

  // The scalar at `node` with `${VAR}` expanded; nullopt (and an error) for anything else.
  std::optional<std::string> ScalarText(const std::string& path, const YAML::Node& node) {
    if (!node.IsScalar()) {
      Error(path, "expected a single value, got " + std::string(KindName(node)));
      unparsed_.insert(path);
      return std::nullopt;
    }
    detail::Expansion expansion = detail::Expand(node.Scalar(), env_);
    for (const std::string& message : expansion.errors) Error(path, message);
    if (!expansion.errors.empty()) {
      unparsed_.insert(path);
      return std::nullopt;
    }
    return std::move(expansion.value);
  }

  // ---- typed values --------------------------------------------------------------------------

  Secret KeepSecret(std::string value) {
    secrets_.push_back(value);
    return Secret(std::move(value));
  }

  // Registers a proxy URL's `user:password` (and the password alone, when long enough not to
  // occur in ordinary text) to be masked in every message, wherever the URL ends up echoed.
  void KeepProxyCredentials(std::string_view url) {
    const auto info = FindUserInfo(url);
    if (!info || info->colon == std::string_view::npos || info->colon + 1 == info->end) return;
    const std::string_view user_password = url.substr(info->begin, info->end - info->begin);
    const std::string_view password = url.substr(info->colon + 1, info->end - info->colon - 1);
    scrubs_.emplace_back(std::string(user_password),
                         std::string(url.substr(info->begin, info->colon + 1 - info->begin)) +
                             std::string(kMaskedPassword));
    if (password.size() >= kMinScrubbedSecret) {
      scrubs_.emplace_back(std::string(password), std::string(kMaskedPassword));
    }
  }

  void SetDuration(const std::string& path, std::string_view text, Duration& out) {
    if (auto duration = ParseDuration(text)) {
      out = *duration;
    } else if (IsAllDigits(text)) {
      Error(path, "duration needs a unit, e.g. 30s");
    } else {
      Error(path,
            "invalid duration " + Quote(text) + " (e.g. 500ms, 30s, 1m30s, 2h; at most 2562047h)");
    }
  }

  void SetSize(const std::string& path, std::string_view text, std::size_t& out) {
    if (auto size = ParseSize(text)) {
      out = *size;
    } else {
      Error(path, "invalid size " + Quote(text) + " (bytes, or e.g. 64KiB, 8MiB, 1GiB, 10MB)");
    }
  }

  // Only the words `true` and `false` (YAML 1.1's yes/no/on/off are too easy to misread);
  // environment variables may also say 1 / 0.
  void SetBool(const std::string& path, std::string_view text, bool& out, bool allow_digits) {
    if (text == "true" || (allow_digits && text == "1")) {
      out = true;
    } else if (text == "false" || (allow_digits && text == "0")) {
      out = false;
    } else {
      Error(path,
            std::string(allow_digits ? "expected true, false, 1 or 0" : "expected true or false") +
                ", got " + Quote(text));
    }
  }

  bool SetCount(const std::string& path, std::string_view text, std::size_t& out) {
    std::size_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!IsAllDigits(text) || ec != std::errc() || end != text.data() + text.size()) {
      Error(path, "expected a whole number, got " + Quote(text));
      return false;
    }
    out = value;
    return true;
  }

  void SetPort(const std::string& path, std::string_view text, std::uint16_t& out,
               unsigned min_port) {
    std::size_t value = 0;
    if (!SetCount(path, text, value)) return;
    if (value < min_port || value > 65535) {
      Error(path, min_port == 0 ? "must be between 0 (off) and 65535"
                                : "must be between " + std::to_string(min_port) + " and 65535");
      return;
    }
    out = static_cast<std::uint16_t>(value);
  }

  void SetLogLevel(const std::string& path, std::string_view text) {
    static constexpr std::pair<std::string_view, LogLevel> kLevels[] = {{"debug", LogLevel::kDebug},
                                                                        {"info", LogLevel::kInfo},
                                                                        {"warn", LogLevel::kWarn},
                                                                        {"error", LogLevel::kError},
                                                                        {"none", LogLevel::kNone}};
    std::string lower;
    for (char c : text) lower.push_back(ToLower(c));
    for (const auto& [name, level] : kLevels) {
      if (lower == name) {
        config_.log_level = level;
        return;
      }
    }
    Error(path, "must be one of debug, info, warn, error, none; got " + Quote(text));
  }

  // ---- environment variables -----------------------------------------------------------------

  // ld-relay's variables, for drop-in migration. EnvVars is sorted, so environments created here
  // are appended in name order after the file's.
  void ApplyEnvVars() {
    for (const auto& [var, value] : env_) {
      if (!var.starts_with(kEnvSdkKeyPrefix)) continue;
      const std::string name = var.substr(kEnvSdkKeyPrefix.size());
      if (!IsValidEnvironmentName(name)) {
        Report(
            Origin{var, true}, "",
            Quote(name) + " is not a valid environment name " + "(letters, digits, '_', '.', '-')");
        continue;
      }
      EnvironmentConfig* environment = FindEnvironment(name);
      if (environment == nullptr) {
        environment = &config_.environments.emplace_back();
        environment->name = name;
        origins_["environments." + name] = Origin{var, true};
      }
      environment->sdk_key = KeepSecret(value);
      origins_["environments." + name + ".sdkKey"] = Origin{var, true};
    }
    for (const auto& [var, value] : env_) {
      const bool mobile = var.starts_with(kEnvMobileKeyPrefix);
      if (!mobile && !var.starts_with(kEnvClientSideIdPrefix)) continue;
      const std::string name =
          var.substr(mobile ? kEnvMobileKeyPrefix.size() : kEnvClientSideIdPrefix.size());
      EnvironmentConfig* environment = FindEnvironment(name);
      if (environment == nullptr) {
        Report(Origin{var, true}, "",
               "no environment " + Quote(name) + " (define it in the file or set LD_ENV_" + name +
                   ")");
        continue;
      }
      if (mobile) {
        environment->mobile_key = KeepSecret(value);
        origins_["environments." + name + ".mobileKey"] = Origin{var, true};
      } else {
        environment->env_id = value;
        origins_["environments." + name + ".envId"] = Origin{var, true};
      }
    }
    const std::pair<std::string_view, std::string*> kUris[] = {
        {"STREAM_URI", &config_.upstream.stream_uri},
        {"BASE_URI", &config_.upstream.base_uri},
        {"EVENTS_URI", &config_.upstream.events_uri},
    };
    for (const auto& [var, target] : kUris) {
      if (auto it = env_.find(std::string(var)); it != env_.end()) {
        *target = it->second;
        const std::string key(var == "STREAM_URI" ? "streamUri"
                              : var == "BASE_URI" ? "baseUri"
                                                  : "eventsUri");
        origins_["upstream." + key] = Origin{std::string(var), true};
      }
    }
    if (auto it = env_.find("PORT"); it != env_.end()) {
      origins_["listen.port"] = Origin{"PORT", true};
      SetPort("listen.port", it->second, config_.listen.port, 1);
    }
    UpstreamConfig& upstream = config_.upstream;
    if (const std::string* value = FromEnv("INIT_TIMEOUT", "upstream.initTimeout")) {
      SetDuration("upstream.initTimeout", *value, upstream.init_timeout);
    }
    if (const std::string* value = FromEnv("EXIT_ON_ERROR", "upstream.exitOnError")) {
      SetBool("upstream.exitOnError", *value, upstream.exit_on_error, /*allow_digits=*/true);
    }
    if (const std::string* value =
            FromEnv("DISCONNECTED_STATUS_TIME", "upstream.disconnectedStatusTime")) {
      SetDuration("upstream.disconnectedStatusTime", *value, upstream.disconnected_status_time);
    }
    if (const std::string* value =
            FromEnv("MAX_CLIENT_CONNECTION_TIME", "streams.maxConnectionTime")) {
      SetDuration("streams.maxConnectionTime", *value, config_.streams.max_connection_time);
    }
    // ld-relay's [Events] variables. USE_EVENTS is ld-relay's sendEvents, for every environment.
    if (const std::string* value = FromEnv("USE_EVENTS", "events")) {
      bool enabled = true;
      SetBool("USE_EVENTS", *value, enabled, /*allow_digits=*/true);
      for (EnvironmentConfig& e : config_.environments) e.events.enabled = enabled;
    }
    EventsConfig& events = config_.events;
    if (const std::string* value = FromEnv("EVENTS_FLUSH_INTERVAL", "events.flushInterval")) {
      SetDuration("events.flushInterval", *value, events.flush_interval);
    }
    if (const std::string* value = FromEnv("EVENTS_CAPACITY", "events.maxQueueEvents")) {
      SetCount("events.maxQueueEvents", *value, events.max_queue_events);
    }
    if (const std::string* value =
            FromEnv("EVENTS_MAX_INBOUND_PAYLOAD_SIZE", "events.maxBodyBytes")) {
      SetSize("events.maxBodyBytes", *value, events.max_body_bytes);
    }
    ApplyProxyEnvVars();
  }

  // The variable's value, recording it as the origin of `path`; nullptr when unset.
  const std::string* FromEnv(const std::string& var, const std::string& path) {
    const auto it = env_.find(var);
    if (it == env_.end()) return nullptr;
    origins_[path] = Origin{var, true};
    return &it->second;
  }

  // The first of the names set to a non-empty value (as Go's net/http and curl read them).
  std::optional<std::pair<std::string, std::string>> FirstNonEmpty(
      std::initializer_list<std::string_view> vars) const {
    for (std::string_view var : vars) {
      if (const auto it = env_.find(std::string(var)); it != env_.end() && !it->second.empty()) {
        return *it;
      }
    }
    return std::nullopt;
  }

  // PROXY_URL overrides proxy.url. With neither, the standard variables are kept for the relay
  // to choose by the target's scheme; NO_PROXY applies unless the file sets proxy.noProxy.
  void ApplyProxyEnvVars() {
    ProxyConfig& proxy = config_.proxy;
    // Any of these may carry a password, whether or not it ends up used.
    for (std::string_view var :
         {"PROXY_URL", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"}) {
      if (const auto it = env_.find(std::string(var)); it != env_.end()) {
        KeepProxyCredentials(it->second);
      }
    }
    if (auto found = FirstNonEmpty({"PROXY_URL"})) {
      proxy.url = std::move(found->second);
      origins_["proxy.url"] = Origin{found->first, true};
    }
    if (proxy.url.empty()) {
      const std::tuple<std::string_view, std::string_view, std::string_view, std::string*>
          kStandard[] = {
              {"HTTPS_PROXY", "https_proxy", "proxy.httpsProxyEnv", &proxy.https_proxy_env},
              {"HTTP_PROXY", "http_proxy", "proxy.httpProxyEnv", &proxy.http_proxy_env},
          };
      for (const auto& [upper, lower, path, target] : kStandard) {
        auto found = FirstNonEmpty({upper, lower});
        if (!found) continue;
        // `proxy.corp:3128` is common in these variables; curl and Go read it as http://.
        if (found->second.find("://") == std::string::npos) {
          found->second.insert(0, "http://");
        }
        *target = std::move(found->second);
        origins_[std::string(path)] = Origin{found->first, true};
      }
    }
    if (!no_proxy_from_file_) {
      if (auto found = FirstNonEmpty({"NO_PROXY", "no_proxy"})) {
        proxy.no_proxy = std::move(found->second);
        origins_["proxy.noProxy"] = Origin{found->first, true};
      }
    }
  }

  EnvironmentConfig* FindEnvironment(std::string_view name) {
    auto& environments = config_.environments;
    const auto it = std::find_if(environments.begin(), environments.end(),
                                 [&](const EnvironmentConfig& e) { return e.name == name; });
    return it == environments.end() ? nullptr : &*it;
  }

  // ---- validation ----------------------------------------------------------------------------

  void Validate() {
    ValidateListen();
    ValidateUpstream();
    ValidateStreams();
    ValidateEvents();
    if (config_.cache.map_size_bytes < kMinMapSize) Error("cache.mapSize", "must be at least 1MiB");
    const MetricsConfig& metrics = config_.metrics;
    if (metrics.port != 0 && metrics.port == config_.listen.port &&
        (metrics.host.empty() || metrics.host == config_.listen.host)) {
      Error("metrics.port", "must differ from listen.port (" + std::to_string(metrics.port) +
                                "); use 0 to turn the metrics listener off");
    }
    ValidateProxy();
    RequirePositive("readiness.maxSilence", config_.readiness.max_silence);
    ValidateEnvironments();
  }

  void ValidateListen() {
    const ListenConfig& c = config_.listen;
    if (c.host.empty()) Error("listen.host", "must not be empty");
    if (c.max_connections < 1) Error("listen.maxConnections", "must be at least 1");
    RequirePositive("listen.headerTimeout", c.header_timeout);
    RequirePositive("listen.idleTimeout", c.idle_timeout);
    if (c.max_header_bytes < kMinHeaderBytes)
      Error("listen.maxHeaderBytes", "must be at least 1KiB");
    if (c.max_body_bytes < 1) Error("listen.maxBodyBytes", "must be at least 1");
    if (c.tls) ValidateTls("listen.tls", *c.tls, /*listener=*/true);
  }

  void ValidateUpstream() {
    UpstreamConfig& c = config_.upstream;
    NormalizeUri("upstream.streamUri", c.stream_uri);
    NormalizeUri("upstream.baseUri", c.base_uri);
    NormalizeUri("upstream.eventsUri", c.events_uri);
    RequirePositive("upstream.connectTimeout", c.connect_timeout);
    RequirePositive("upstream.readTimeout", c.read_timeout);
    // Backoff doubles the delay, so zero would mean reconnecting in a tight loop forever.
    RequirePositive("upstream.initialReconnectDelay", c.initial_reconnect_delay);
    if (c.initial_reconnect_delay > c.max_reconnect_delay) {
      Error("upstream.initialReconnectDelay", "must not exceed upstream.maxReconnectDelay (" +
                                                  FormatDuration(c.initial_reconnect_delay) +
                                                  " > " + FormatDuration(c.max_reconnect_delay) +
                                                  ")");
    }
    // Zero would reset the backoff on every connection, however short-lived.
    RequirePositive("upstream.reconnectResetAfter", c.reconnect_reset_after);
    if (c.max_event_bytes < kMinEventBytes)
      Error("upstream.maxEventBytes", "must be at least 1KiB");
    // initTimeout: any value, 0 = don't wait.
    RequirePositive("upstream.disconnectedStatusTime", c.disconnected_status_time);
    // pollingFallback.after: any value, 0 = poll as soon as streaming fails.
    if (c.polling_fallback.interval < kMinPollingInterval) {
      Error("upstream.pollingFallback.interval",
            "must be at least 1s, got " + FormatDuration(c.polling_fallback.interval));
    }
    ValidateTls("upstream.tls", c.tls, /*listener=*/false);
  }

  // A listener needs a certificate and its key; upstream, a client certificate is optional but
  // comes with its key. Every named file must be readable now, not at the first handshake.
  void ValidateTls(const std::string& base, const TlsConfig& c, bool listener) {
    const bool has_cert = !c.cert_file.empty();
    const bool has_key = !c.key_file.empty();
    if (listener) {
      if (!has_cert) Error(base + ".certFile", "required to serve HTTPS");
      if (!has_key) Error(base + ".keyFile", "required to serve HTTPS");
    } else if (has_cert && !has_key) {
      Error(base + ".keyFile", "required when " + base + ".certFile is set");
    } else if (has_key && !has_cert) {
      Error(base + ".certFile", "required when " + base + ".keyFile is set");
    }
    const std::pair<std::string_view, const std::string*> kFiles[] = {
        {"caFile", &c.ca_file}, {"certFile", &c.cert_file}, {"keyFile", &c.key_file}};
    for (const auto& [key, file] : kFiles) {
      if (!file->empty()) CheckReadable(base + "." + std::string(key), *file);
    }
  }

  void ValidateProxy() {
    ProxyConfig& c = config_.proxy;
    if (!c.url.empty()) CheckProxyUrl("proxy.url", c.url);
    if (!c.https_proxy_env.empty()) CheckProxyUrl("proxy.httpsProxyEnv", c.https_proxy_env);
    if (!c.http_proxy_env.empty()) CheckProxyUrl("proxy.httpProxyEnv", c.http_proxy_env);
  }

  // `http://[user:password@]host[:port][/]`; the port defaults to 80 (URL rules), a trailing '/'
  // is removed. Messages show the URL with its password masked.
  void CheckProxyUrl(const std::string& path, std::string& url) {
    const std::string shown = Quote(MaskProxyUrl(url));
    if (!url.starts_with("http://")) {
      Error(path,
            "must be an http:// URL (flagrelay speaks plain HTTP to the proxy and tunnels TLS "
            "through it with CONNECT), got " +
                shown);
      return;
    }
    if (HasWhitespace(url)) {
      Error(path, "must not contain whitespace");
      return;
    }
    std::string_view rest = std::string_view(url).substr(7);
    if (const std::size_t at = rest.rfind('@'); at != std::string_view::npos) {
      const std::string_view userinfo = rest.substr(0, at);
      if (userinfo.find_first_of("@/?#") != std::string_view::npos) {
        Error(path,
              "the user name and password must percent-encode '@', '/', '?' and '#' (%40, %2F, "
              "%3F, %23), got " +
                  shown);
        return;
      }
      if (!IsValidPercentEncoding(userinfo)) {
        Error(path, "invalid percent-encoding in the user name or password, got " + shown);
        return;
      }
      rest.remove_prefix(at + 1);
    }
    const std::size_t tail = rest.find_first_of("/?#");
    if (tail != std::string_view::npos && rest.substr(tail) != "/") {
      Error(path, "must not have a path, query or fragment, got " + shown);
      return;
    }
    const std::string_view host_port = rest.substr(0, tail);
    std::string_view host = host_port;
    std::optional<std::string_view> port;
    if (host_port.starts_with('[')) {
      const std::size_t close = host_port.find(']');
      const std::string_view after =
          close == std::string_view::npos ? "" : host_port.substr(close + 1);
      if (close == std::string_view::npos || (!after.empty() && after[0] != ':')) {
        Error(path, "invalid host in " + shown);
        return;
      }
      host = host_port.substr(0, close + 1);
      if (!after.empty()) port = after.substr(1);
    } else if (const std::size_t colon = host_port.find(':'); colon != std::string_view::npos) {
      host = host_port.substr(0, colon);
      port = host_port.substr(colon + 1);
    }
    if (host.empty() || host == "[]") {
      Error(path, "has no host: " + shown);
      return;
    }
    if (port) {
      unsigned value = 0;
      const auto [end, ec] = std::from_chars(port->data(), port->data() + port->size(), value);
      if (!IsAllDigits(*port) || ec != std::errc() || end != port->data() + port->size() ||
          value < 1 || value > 65535) {
        Error(path, "invalid port in " + shown + " (1-65535; without one, 80 is used)");
        return;
      }
    }
    if (tail != std::string_view::npos) url.pop_back();  // the lone trailing '/'
  }

  void ValidateStreams() {
    const StreamsConfig& c = config_.streams;
    if (c.heartbeat_interval < kMinHeartbeat || c.heartbeat_interval > kMaxHeartbeat) {
      Error("streams.heartbeatInterval",
            "must be between 1s and 4m (SDKs drop a stream after 5 minutes of silence), got " +
                FormatDuration(c.heartbeat_interval));
    }
    if (c.max_queue_events < 1) Error("streams.maxQueueEvents", "must be at least 1");
    if (c.max_queue_bytes < kMinQueueBytes) Error("streams.maxQueueBytes", "must be at least 1KiB");
    RequirePositive("streams.writeTimeout", c.write_timeout);
  }

  void ValidateEvents() {
    const EventsConfig& c = config_.events;
    RequirePositive("events.flushInterval", c.flush_interval);
    if (c.max_batch < 1) Error("events.maxBatch", "must be at least 1");
    if (c.max_body_bytes < kMinQueueBytes) Error("events.maxBodyBytes", "must be at least 1KiB");
    if (c.max_queue_events < c.max_batch) {
      Error("events.maxQueueEvents",
            "must be at least events.maxBatch (" + std::to_string(c.max_batch) + ")");
    }
    if (c.max_queue_bytes < kMinQueueBytes) Error("events.maxQueueBytes", "must be at least 1KiB");
    RequirePositive("events.shutdownTimeout", c.shutdown_timeout);
    RequirePositive("events.sendTimeout", c.send_timeout);
    for (const EnvironmentConfig& e : config_.environments) {
      if (e.events.sample_ratio > 1) {
        Error("environments." + e.name + ".events.sampleRatio", "must be between 0 and 1");
      }
      if (e.events.rate_burst > 0 && e.events.rate_limit == 0) {
        Error("environments." + e.name + ".events.rateBurst", "needs events.rateLimit");
      }
    }
  }

  void ValidateEnvironments() {
    if (config_.environments.empty()) {
      Error("environments",
            "at least one environment is required (in the file or as LD_ENV_<name>)");
      return;
    }
    // Value → owning environment, to name both sides of a clash.
    std::map<std::string, std::string> sdk_keys;
    std::map<std::string, std::string> mobile_keys;
    std::map<std::string, std::string> env_ids;
    for (const EnvironmentConfig& e : config_.environments) {
      const std::string base = "environments." + e.name;
      if (!IsValidEnvironmentName(e.name)) {
        Error(base, "invalid environment name " + Quote(e.name) +
                        " (use letters, digits, '_', '.', '-')");
      }
      const std::string sdk_path = base + ".sdkKey";
      if (unparsed_.count(sdk_path) != 0) {
        // Already reported; "must not be empty" would only add noise.
      } else if (origins_.count(sdk_path) == 0) {
        Error(sdk_path, "required");
      } else if (CheckKey(sdk_path, e.sdk_key)) {
        CheckUnique(sdk_path, "SDK key", e.sdk_key.Reveal(), e.sdk_key.Masked(), e.name, sdk_keys);
      }
      if (e.mobile_key) {
        const std::string mobile_path = base + ".mobileKey";
        if (CheckKey(mobile_path, *e.mobile_key)) {
          CheckUnique(mobile_path, "mobile key", e.mobile_key->Reveal(), e.mobile_key->Masked(),
                      e.name, mobile_keys);
        }
      }
      // An expiring key authenticates like the current one: it must be unique as well.
      if (e.expiring_sdk_key) {
        CheckUnique(base + ".expiringSdkKey.key", "SDK key", e.expiring_sdk_key->key.Reveal(),
                    e.expiring_sdk_key->key.Masked(), e.name, sdk_keys);
      }
      if (e.expiring_mobile_key) {
        CheckUnique(base + ".expiringMobileKey.key", "mobile key",
                    e.expiring_mobile_key->key.Reveal(), e.expiring_mobile_key->key.Masked(),
                    e.name, mobile_keys);
      }
      if (!e.env_id.empty()) {
        const std::string id_path = base + ".envId";
        if (HasWhitespace(e.env_id)) {
          Error(id_path, "must not contain whitespace");
        } else {
          CheckUnique(id_path, "envId", e.env_id, Quote(e.env_id), e.name, env_ids);
        }
      }
      if (!e.data_file.empty()) CheckReadable(base + ".dataFile", e.data_file);
      RequirePositive(base + ".dataFilePollInterval", e.data_file_poll_interval);
    }
  }

  bool CheckKey(const std::string& path, const Secret& key) {
    if (key.empty()) {
      Error(path, "must not be empty");
      return false;
    }
    if (HasWhitespace(key.Reveal())) {
      Error(path, "must not contain whitespace (" + key.Masked() + ")");
      return false;
    }
    return true;
  }

  // `shown` is what may be printed: masked for secrets.
  void CheckUnique(const std::string& path, std::string_view what, const std::string& value,
                   const std::string& shown, const std::string& owner,
                   std::map<std::string, std::string>& seen) {
    const auto [it, inserted] = seen.emplace(value, owner);
    if (!inserted) {
      Error(path,
            std::string(what) + " " + shown + " is also used by environment " + Quote(it->second));
    }
  }

  void CheckReadable(const std::string& path, const std::string& file) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status status = fs::status(file, ec);
    if (ec) {
      Error(path, "cannot read " + Quote(file) + ": " + ec.message());
      return;
    }
    if (fs::is_directory(status)) {
      Error(path, Quote(file) + " is a directory, not a file");
      return;
    }
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> handle(std::fopen(file.c_str(), "rb"),
                                                           &std::fclose);
    if (!handle) Error(path, "cannot read " + Quote(file) + ": " + ErrnoMessage(errno));
  }

  void NormalizeUri(const std::string& path, std::string& uri) {
    std::size_t scheme_end = 0;
    if (uri.starts_with("https://")) {
      scheme_end = 8;
    } else if (uri.starts_with("http://")) {
      scheme_end = 7;
    } else {
      Error(path, "must be an absolute http:// or https:// URI, got " + Quote(uri));
      return;
    }
    if (HasWhitespace(uri)) {
      Error(path, "must not contain whitespace");
      return;
    }
    if (uri.find_first_of("?#") != std::string::npos) {
      Error(path, "must not have a query or fragment, got " + Quote(uri));
      return;
    }
    const std::string_view rest = std::string_view(uri).substr(scheme_end);
    std::string_view host = rest.substr(0, rest.find('/'));
    if (const std::size_t at = host.rfind('@'); at != std::string_view::npos) {
      host.remove_prefix(at + 1);
    }
    host =
        host.starts_with('[') ? host.substr(0, host.find(']') + 1) : host.substr(0, host.find(':'));
    if (host.empty()) {
      Error(path, "has no host: " + Quote(uri));
      return;
    }
    // Paths are appended to these, so `https://x/` would produce `https://x//all`.
    while (uri.size() > scheme_end && uri.back() == '/') uri.pop_back();
  }

  void RequirePositive(const std::string& path, Duration value) {
    if (value <= Duration::zero()) Error(path, "must be greater than 0");
  }

  // ---- errors --------------------------------------------------------------------------------

  std::string At(const YAML::Mark& mark) const {
    if (mark.is_null()) return source_;
    return source_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }

  // An error about `path`, located where that key (or its nearest parent) was set.
  void Error(const std::string& path, std::string_view message) {
    std::string key = path;
    while (true) {
      if (const auto it = origins_.find(key); it != origins_.end()) {
        Report(it->second, path, message);
        return;
      }
      const std::size_t dot = key.rfind('.');
      if (dot == std::string::npos) break;
      key.resize(dot);
    }
    Report(Origin{source_}, path, message);
  }

  void Report(const Origin& origin, const std::string& path, std::string_view message) {
    // The variable name says which key it sets, so env errors skip the dotted path.
    std::string line = origin.from_env ? "env " + origin.where : origin.where;
    if (!origin.from_env && !path.empty()) line += ": " + path;
    line += ": ";
    line += message;
    errors_.push_back(std::move(line));
  }

  LoadResult Finish() {
    // Last line of defence: no message may carry a whole key, whatever code path produced it.
    for (const std::string& secret : secrets_) {
      if (secret.size() < kMinScrubbedSecret) continue;
      const std::string masked = Secret(secret).Masked();
      for (std::string& error : errors_) {
        for (std::size_t pos = error.find(secret); pos != std::string::npos;
             pos = error.find(secret, pos + masked.size())) {
          error.replace(pos, secret.size(), masked);
        }
      }
    }
    // Proxy credentials: longest first, so `user:password` is replaced before the password.
    std::stable_sort(scrubs_.begin(), scrubs_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    for (const auto& [raw, masked] : scrubs_) {
      for (std::string& error : errors_) {
        for (std::size_t pos = error.find(raw); pos != std::string::npos;
             pos = error.find(raw, pos + masked.size())) {
          error.replace(pos, raw.size(), masked);
        }
      }
    }
    LoadResult result;
    if (errors_.empty()) result.config = std::move(config_);
    result.errors = std::move(errors_);
    return result;
  }

  std::string source_;
  const EnvVars& env_;
  RelayConfig config_;
  std::map<std::string, Origin> origins_;  // dotted key → where it was set
  std::vector<std::string> errors_;
  std::vector<std::string> secrets_;  // every raw key seen, to scrub from messages
  std::set<std::string> unparsed_;    // keys whose value was rejected while parsing
  // Proxy credentials and what they become in messages.
  std::vector<std::pair<std::string, std::string>> scrubs_;
  bool no_proxy_from_file_ = false;  // proxy.noProxy given a value in the file
};

}  // namespace

LoadResult LoadString(std::string_view yaml, std::string_view source_name, const EnvVars& env) {
  return Loader(source_name, env).Load(yaml);
}

LoadResult LoadFile(const std::string& path, const EnvVars& env) {
  const auto unreadable = [&path](int err) {
    LoadResult result;
    result.errors.push_back(path + ": cannot read file: " + ErrnoMessage(err));
    return result;
  };
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) return unreadable(errno);
  std::string text;
  char buffer[1 << 14];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, n);
  if (std::ferror(file.get()) != 0) return unreadable(errno);
  return LoadString(text, path, env);
}

}  // namespace flagrelay::config
