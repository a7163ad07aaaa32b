#include "flagrelay/config/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace flagrelay::config {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr std::string_view kSdkKey = "sdk-12345678-abcd-ef01-2345-67890abcdef9";
constexpr std::string_view kSdkKey2 = "sdk-87654321-dcba-10fe-5432-9fedcba09876";
constexpr std::string_view kMobileKey = "mob-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

// One valid environment, so each test only adds what it is about.
const std::string kEnvs = "environments:\n  prod:\n    sdkKey: " + std::string(kSdkKey) + "\n";

LoadResult Load(std::string_view yaml, const EnvVars& env = {}) {
  return LoadString(yaml, "relay.yaml", env);
}

// Loads and insists on success, so tests of parsed values fail with the errors in view.
RelayConfig LoadOk(std::string_view yaml, const EnvVars& env = {}) {
  LoadResult result = Load(yaml, env);
  EXPECT_TRUE(result.ok()) << ::testing::PrintToString(result.errors);
  EXPECT_EQ(result.config.has_value(), result.ok());
  return result.config.value_or(RelayConfig{});
}

// A file in the temp dir, removed when the test ends.
class TempFile {
 public:
  explicit TempFile(std::string_view contents) {
    path_ =
        (std::filesystem::temp_directory_path() /
         ("flagrelay-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++)))
            .string();
    std::ofstream(path_) << contents;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

// ---- Secret --------------------------------------------------------------------------------

TEST(ConfigSecret, MasksHexDigitsExceptLastFiveAndKeepsPrefix) {
  EXPECT_EQ(Secret(std::string(kSdkKey)).Masked(), "sdk-********-****-****-****-*******cdef9");
  EXPECT_EQ(Secret("sdk-11111111-2222-3333-4444-555555599999").Masked(),
            "sdk-********-****-****-****-*******99999");
  EXPECT_EQ(Secret("mob-0123456789").Masked(), "mob-*****56789");
}

TEST(ConfigSecret, PrefixOnlyForThreeLowercaseLettersAndDash) {
  EXPECT_EQ(Secret("0123456789abcdef").Masked(), "***********bcdef");
  // 'a','b','c' are hex digits, so without the prefix rule they are masked.
  EXPECT_EQ(Secret("abc-0123456789").Masked(), "abc-*****56789");
  EXPECT_EQ(Secret("SDK-1234567890").Masked(), "S*K-*****67890");  // 'D' is a hex digit
  EXPECT_EQ(Secret("ab-123456789").Masked(), "**-****56789");
}

TEST(ConfigSecret, NonHexCharactersAreKept) {
  // The last five characters are "2zz33", so only the first '2' of "22" is masked.
  EXPECT_EQ(Secret("key-zz11zz22zz33").Masked(), "key-zz**zz*2zz33");
}

TEST(ConfigSecret, ShortValuesAreFullyMasked) {
  EXPECT_EQ(Secret("").Masked(), "");
  EXPECT_EQ(Secret("abc").Masked(), "***");
  EXPECT_EQ(Secret("12345").Masked(), "*****");
}

TEST(ConfigSecret, NeverReturnsTheWholeValue) {
  EXPECT_EQ(Secret("sdk-test").Masked(), "sdk-****");
  EXPECT_EQ(Secret("zzzzzzzz").Masked(), "********");
  EXPECT_NE(Secret("zzzzzz1").Masked(), "zzzzzz1");
}

// ---- ParseDuration / ParseSize -------------------------------------------------------------

TEST(ConfigDuration, ParsesUnitsAndCombinations) {
  EXPECT_EQ(ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(ParseDuration("30s"), seconds(30));
  EXPECT_EQ(ParseDuration("1m"), minutes(1));
  EXPECT_EQ(ParseDuration("2h"), hours(2));
  EXPECT_EQ(ParseDuration("1m30s"), seconds(90));
  EXPECT_EQ(ParseDuration("1h2m3s4ms"), hours(1) + minutes(2) + seconds(3) + milliseconds(4));
  EXPECT_EQ(ParseDuration("0s"), milliseconds(0));
}

// Found by fuzz_config: longer durations were accepted, and overflowed when converted to a
// timer's nanoseconds (the timer then fired at a garbage time).
TEST(ConfigDuration, AtMostWhatATimerHolds) {
  EXPECT_EQ(ParseDuration("2562047h47m16s854ms"), kMaxDuration);
  EXPECT_EQ(kMaxDuration, milliseconds(9223372036854));
  for (const char* too_long : {"2562047h47m16s855ms", "2562048h", "9223372036854776s"}) {
    EXPECT_EQ(ParseDuration(too_long), std::nullopt) << too_long;
  }
  EXPECT_THAT(Load(kEnvs + "listen:\n  idleTimeout: 3000000h\n").errors,
              ElementsAre(AllOf(StartsWith("relay.yaml:5:"), HasSubstr("listen.idleTimeout"),
                                HasSubstr("at most 2562047h"))));
}

TEST(ConfigDuration, RejectsBareNumbersAndGarbage) {
  for (std::string_view bad :
       {"", "30", "0", "s", "ms", "1.5s", "-1s", "30 s", " 30s", "1d", "1m30", "30S", "1m 30s",
        "99999999999999999999s", "9999999999999999h"}) {
    EXPECT_EQ(ParseDuration(bad), std::nullopt) << bad;
  }
}

TEST(ConfigSize, ParsesBytesAndUnits) {
  EXPECT_EQ(ParseSize("0"), 0u);
  EXPECT_EQ(ParseSize("1024"), 1024u);
  EXPECT_EQ(ParseSize("64KiB"), 64u * 1024);
  EXPECT_EQ(ParseSize("8MiB"), 8u * 1024 * 1024);
  EXPECT_EQ(ParseSize("1GiB"), std::size_t{1} << 30);
  EXPECT_EQ(ParseSize("5KB"), 5000u);
  EXPECT_EQ(ParseSize("2MB"), 2'000'000u);
  EXPECT_EQ(ParseSize("3GB"), 3'000'000'000u);
}

TEST(ConfigSize, RejectsGarbage) {
  for (std::string_view bad : {"", "KiB", "-1", "1.5MiB", "64kib", "64 KiB", "64K", "1TiB",
                               "64KiBx", "99999999999999999999", "99999999999GiB"}) {
    EXPECT_EQ(ParseSize(bad), std::nullopt) << bad;
  }
}

// ---- defaults and every key ----------------------------------------------------------------

TEST(ConfigLoad, DefaultsWhenKeysOmitted) {
  const RelayConfig config = LoadOk(kEnvs);
  EXPECT_EQ(config.listen.host, "0.0.0.0");
  EXPECT_EQ(config.listen.port, 8030);
  EXPECT_EQ(config.listen.max_connections, 20000u);
  EXPECT_EQ(config.listen.header_timeout, seconds(10));
  EXPECT_EQ(config.listen.idle_timeout, seconds(60));
  EXPECT_EQ(config.listen.max_header_bytes, 16u * 1024);
  EXPECT_EQ(config.listen.max_body_bytes, 1024u * 1024);
  EXPECT_EQ(config.upstream.stream_uri, "https://stream.launchdarkly.com");
  EXPECT_EQ(config.upstream.base_uri, "https://sdk.launchdarkly.com");
  EXPECT_EQ(config.upstream.events_uri, "https://events.launchdarkly.com");
  EXPECT_EQ(config.upstream.connect_timeout, seconds(3));
  EXPECT_EQ(config.upstream.read_timeout, minutes(5));
  EXPECT_EQ(config.upstream.initial_reconnect_delay, seconds(1));
  EXPECT_EQ(config.upstream.max_reconnect_delay, seconds(30));
  EXPECT_EQ(config.upstream.reconnect_reset_after, seconds(60));
  EXPECT_EQ(config.upstream.max_event_bytes, std::size_t{64} << 20);
  EXPECT_EQ(config.upstream.init_timeout, seconds(10));
  EXPECT_FALSE(config.upstream.exit_on_error);
  EXPECT_EQ(config.upstream.disconnected_status_time, minutes(1));
  EXPECT_FALSE(config.upstream.polling_fallback.enabled);
  EXPECT_EQ(config.upstream.polling_fallback.after, minutes(1));
  EXPECT_EQ(config.upstream.polling_fallback.interval, seconds(30));
  EXPECT_EQ(config.upstream.tls.ca_file, "");
  EXPECT_EQ(config.upstream.tls.cert_file, "");
  EXPECT_EQ(config.upstream.tls.key_file, "");
  EXPECT_EQ(config.upstream.tls.min_version, "1.2");
  EXPECT_FALSE(config.listen.tls.has_value());
  EXPECT_EQ(config.proxy.url, "");
  EXPECT_EQ(config.proxy.no_proxy, "");
  EXPECT_EQ(config.proxy.https_proxy_env, "");
  EXPECT_EQ(config.proxy.http_proxy_env, "");
  EXPECT_EQ(config.readiness.mode, ReadinessMode::kData);
  EXPECT_EQ(config.readiness.max_silence, minutes(5));
  EXPECT_EQ(config.streams.heartbeat_interval, seconds(30));
  EXPECT_EQ(config.streams.max_queue_events, 256u);
  EXPECT_EQ(config.streams.max_queue_bytes, 8u * 1024 * 1024);
  EXPECT_EQ(config.streams.write_timeout, seconds(30));
  EXPECT_EQ(config.streams.max_connection_time, milliseconds(0));
  EXPECT_EQ(config.cache.dir, "");
  EXPECT_EQ(config.cache.map_size_bytes, std::size_t{1} << 30);
  EXPECT_EQ(config.metrics.host, "");
  EXPECT_EQ(config.metrics.port, 8031);
  EXPECT_EQ(config.log_level, LogLevel::kInfo);
  EXPECT_EQ(config.threads, 0u);
  ASSERT_THAT(config.environments, SizeIs(1));
  const EnvironmentConfig& env = config.environments[0];
  EXPECT_EQ(env.name, "prod");
  EXPECT_EQ(env.sdk_key.Reveal(), kSdkKey);
  EXPECT_FALSE(env.mobile_key.has_value());
  EXPECT_EQ(env.env_id, "");
  EXPECT_EQ(env.data_file, "");
  EXPECT_EQ(env.data_file_poll_interval, seconds(1));
}

TEST(ConfigLoad, EmptyValuesKeepDefaults) {
  const RelayConfig config = LoadOk("listen:\n  port:\nmetrics: ~\n" + kEnvs);
  EXPECT_EQ(config.listen.port, 8030);
  EXPECT_EQ(config.metrics.port, 8031);
}

TEST(ConfigLoad, EveryKeyParsed) {
  const TempFile data("{}");
  const TempFile server_cert("server cert");
  const TempFile server_key("server key");
  const TempFile ca("ca");
  const TempFile client_cert("client cert");
  const TempFile client_key("client key");
  const std::string yaml = R"(
listen:
  host: 127.0.0.1
  port: 9000
  maxConnections: 500
  headerTimeout: 5s
  idleTimeout: 2m
  maxHeaderBytes: 32KiB
  maxBodyBytes: 2MB
  tls:
    certFile: )" + server_cert.path() +
                           R"(
    keyFile: )" + server_key.path() +
                           R"(
    minVersion: 1.3
upstream:
  streamUri: http://stream.local:8080/
  baseUri: https://sdk.local/prefix
  eventsUri: https://events.local
  connectTimeout: 1500ms
  readTimeout: 4m
  initialReconnectDelay: 250ms
  maxReconnectDelay: 1m
  reconnectResetAfter: 2m
  maxEventBytes: 1MiB
  initTimeout: 0s
  exitOnError: true
  disconnectedStatusTime: 90s
  pollingFallback:
    enabled: true
    after: 0s
    interval: 1s
  tls:
    caFile: )" + ca.path() +
                           R"(
    certFile: )" + client_cert.path() +
                           R"(
    keyFile: )" + client_key.path() +
                           R"(
    minVersion: "1.3"
proxy:
  url: http://user:pa%40ss@proxy.local:3128/
  noProxy: localhost,127.0.0.1,.svc.cluster.local
readiness:
  mode: live
  maxSilence: 2m
streams:
  heartbeatInterval: 15s
  maxQueueEvents: 64
  maxQueueBytes: 1MiB
  writeTimeout: 10s
  maxConnectionTime: 1h
cache:
  dir: /var/lib/flagrelay
  mapSize: 2GiB
metrics:
  host: 127.0.0.2
  port: 0
logLevel: debug
threads: 4
environments:
  prod:
    sdkKey: sdk-aaaa-1111
    mobileKey: mob-bbbb-2222
    envId: 5f0000000000000000000001
    dataFile: )" + data.path() +
                           R"(
    dataFilePollInterval: 2s
  staging.eu-1:
    sdkKey: sdk-cccc-3333
)";
  const RelayConfig config = LoadOk(yaml);
  EXPECT_EQ(config.listen.host, "127.0.0.1");
  EXPECT_EQ(config.listen.port, 9000);
  EXPECT_EQ(config.listen.max_connections, 500u);
  EXPECT_EQ(config.listen.header_timeout, seconds(5));
  EXPECT_EQ(config.listen.idle_timeout, minutes(2));
  EXPECT_EQ(config.listen.max_header_bytes, 32u * 1024);
  EXPECT_EQ(config.listen.max_body_bytes, 2'000'000u);
  EXPECT_EQ(config.upstream.stream_uri, "http://stream.local:8080");
  EXPECT_EQ(config.upstream.base_uri, "https://sdk.local/prefix");
  EXPECT_EQ(config.upstream.events_uri, "https://events.local");
  EXPECT_EQ(config.upstream.connect_timeout, milliseconds(1500));
  EXPECT_EQ(config.upstream.read_timeout, minutes(4));
  EXPECT_EQ(config.upstream.initial_reconnect_delay, milliseconds(250));
  EXPECT_EQ(config.upstream.max_reconnect_delay, minutes(1));
  ASSERT_TRUE(config.listen.tls.has_value());
  EXPECT_EQ(config.listen.tls->cert_file, server_cert.path());
  EXPECT_EQ(config.listen.tls->key_file, server_key.path());
  EXPECT_EQ(config.listen.tls->ca_file, "");
  EXPECT_EQ(config.listen.tls->min_version, "1.3");
  EXPECT_EQ(config.upstream.reconnect_reset_after, minutes(2));
  EXPECT_EQ(config.upstream.max_event_bytes, 1024u * 1024);
  EXPECT_EQ(config.upstream.init_timeout, milliseconds(0));
  EXPECT_TRUE(config.upstream.exit_on_error);
  EXPECT_EQ(config.upstream.disconnected_status_time, seconds(90));
  EXPECT_TRUE(config.upstream.polling_fallback.enabled);
  EXPECT_EQ(config.upstream.polling_fallback.after, milliseconds(0));
  EXPECT_EQ(config.upstream.polling_fallback.interval, seconds(1));
  EXPECT_EQ(config.upstream.tls.ca_file, ca.path());
  EXPECT_EQ(config.upstream.tls.cert_file, client_cert.path());
  EXPECT_EQ(config.upstream.tls.key_file, client_key.path());
  EXPECT_EQ(config.upstream.tls.min_version, "1.3");
  EXPECT_EQ(config.proxy.url, "http://user:pa%40ss@proxy.local:3128");
  EXPECT_EQ(config.proxy.no_proxy, "localhost,127.0.0.1,.svc.cluster.local");
  EXPECT_EQ(config.readiness.mode, ReadinessMode::kLive);
  EXPECT_EQ(config.readiness.max_silence, minutes(2));
  EXPECT_EQ(config.streams.heartbeat_interval, seconds(15));
  EXPECT_EQ(config.streams.max_queue_events, 64u);
  EXPECT_EQ(config.streams.max_queue_bytes, 1024u * 1024);
  EXPECT_EQ(config.streams.write_timeout, seconds(10));
  EXPECT_EQ(config.streams.max_connection_time, hours(1));
  EXPECT_EQ(config.cache.dir, "/var/lib/flagrelay");
  EXPECT_EQ(config.cache.map_size_bytes, std::size_t{2} << 30);
  EXPECT_EQ(config.metrics.host, "127.0.0.2");
  EXPECT_EQ(config.metrics.port, 0);
  EXPECT_EQ(config.log_level, LogLevel::kDebug);
  EXPECT_EQ(config.threads, 4u);
  ASSERT_THAT(config.environments, SizeIs(2));
  const EnvironmentConfig& prod = config.environments[0];
  EXPECT_EQ(prod.name, "prod");
  EXPECT_EQ(prod.sdk_key.Reveal(), "sdk-aaaa-1111");
  ASSERT_TRUE(prod.mobile_key.has_value());
  EXPECT_EQ(prod.mobile_key->Reveal(), "mob-bbbb-2222");
  EXPECT_EQ(prod.env_id, "5f0000000000000000000001");
  EXPECT_EQ(prod.data_file, data.path());
  EXPECT_EQ(prod.data_file_poll_interval, seconds(2));
  EXPECT_EQ(config.environments[1].name, "staging.eu-1");
  EXPECT_EQ(config.environments[1].sdk_key.Reveal(), "sdk-cccc-3333");
}

TEST(ConfigLoad, EnvironmentsKeepFileOrder) {
  const RelayConfig config = LoadOk(
      "environments:\n  zeta: {sdkKey: k-zzzzzz1}\n  alpha: {sdkKey: k-aaaaaa2}\n"
      "  mid: {sdkKey: k-mmmmmm3}\n");
  ASSERT_THAT(config.environments, SizeIs(3));
  EXPECT_EQ(config.environments[0].name, "zeta");
  EXPECT_EQ(config.environments[1].name, "alpha");
  EXPECT_EQ(config.environments[2].name, "mid");
}

TEST(ConfigLoad, LogLevels) {
  const std::pair<std::string_view, LogLevel> cases[] = {{"debug", LogLevel::kDebug},
                                                         {"info", LogLevel::kInfo},
                                                         {"warn", LogLevel::kWarn},
                                                         {"error", LogLevel::kError},
                                                         {"none", LogLevel::kNone}};
  for (const auto& [text, level] : cases) {
    EXPECT_EQ(LoadOk("logLevel: " + std::string(text) + "\n" + kEnvs).log_level, level) << text;
  }
  EXPECT_THAT(Load("logLevel: verbose\n" + kEnvs).errors,
              ElementsAre("relay.yaml:1:1: logLevel: must be one of debug, info, warn, error, "
                          "none; got 'verbose'"));
}

TEST(ConfigLoad, Threads) {
  EXPECT_EQ(LoadOk("threads: 0\n" + kEnvs).threads, 0u);
  EXPECT_EQ(LoadOk("threads: 16\n" + kEnvs).threads, 16u);
  EXPECT_THAT(Load("threads: -1\n" + kEnvs).errors,
              ElementsAre("relay.yaml:1:1: threads: expected a whole number, got '-1'"));
}

TEST(ConfigLoad, Events) {
  const RelayConfig defaults = LoadOk(kEnvs);
  EXPECT_EQ(defaults.events.flush_interval, seconds(5));
  EXPECT_EQ(defaults.events.max_batch, 500u);
  EXPECT_TRUE(defaults.environments[0].events.enabled);
  EXPECT_EQ(defaults.environments[0].events.sample_ratio, 1.0);

  const RelayConfig c = LoadOk(
      "events:\n  flushInterval: 2s\n  maxBatch: 50\n  maxBodyBytes: 2MiB\n"
      "  maxQueueEvents: 100\n  maxQueueBytes: 1MiB\n  maxDiagnosticQueue: 4\n"
      "  sendTimeout: 10s\n  shutdownTimeout: 3s\n" +
      kEnvs +
      "    events:\n      enabled: false\n      rateLimit: 1000\n      rateBurst: 2500.5\n"
      "      sampleRatio: 0.25\n");
  EXPECT_EQ(c.events.flush_interval, seconds(2));
  EXPECT_EQ(c.events.max_batch, 50u);
  EXPECT_EQ(c.events.max_body_bytes, 2u << 20);
  EXPECT_EQ(c.events.max_queue_events, 100u);
  EXPECT_EQ(c.events.max_queue_bytes, 1u << 20);
  EXPECT_EQ(c.events.max_diagnostic_queue, 4u);
  EXPECT_EQ(c.events.send_timeout, seconds(10));
  EXPECT_EQ(c.events.shutdown_timeout, seconds(3));
  const config::EnvironmentEventsConfig& e = c.environments[0].events;
  EXPECT_FALSE(e.enabled);
  EXPECT_EQ(e.rate_limit, 1000.0);
  EXPECT_EQ(e.rate_burst, 2500.5);
  EXPECT_EQ(e.sample_ratio, 0.25);
}

TEST(ConfigLoad, EventsErrors) {
  EXPECT_THAT(
      Load("events:\n  maxBatch: 50\n  maxQueueEvents: 10\n" + kEnvs).errors,
      ElementsAre(HasSubstr("events.maxQueueEvents: must be at least events.maxBatch (50)")));
  EXPECT_THAT(
      Load(kEnvs + "    events:\n      sampleRatio: 1.5\n").errors,
      ElementsAre(HasSubstr("environments.prod.events.sampleRatio: must be between 0 and 1")));
  EXPECT_THAT(Load(kEnvs + "    events:\n      rateLimit: -1\n").errors,
              ElementsAre(HasSubstr("expected a number of at least 0, got '-1'")));
  EXPECT_THAT(Load(kEnvs + "    events:\n      rateLimit: fast\n").errors,
              ElementsAre(HasSubstr("environments.prod.events.rateLimit")));
  EXPECT_THAT(Load(kEnvs + "    events:\n      rateBurst: 10\n").errors,
              ElementsAre(HasSubstr("rateBurst: needs events.rateLimit")));
  EXPECT_THAT(Load(kEnvs + "    events:\n      enable: false\n").errors,
              ElementsAre(HasSubstr("unknown key (did you mean 'enabled'?)")));
}

TEST(ConfigEnv, LdRelayEventsVariables) {
  const RelayConfig c = LoadOk(kEnvs, {{"USE_EVENTS", "false"},
                                       {"EVENTS_FLUSH_INTERVAL", "1s"},
                                       {"EVENTS_CAPACITY", "5000"},
                                       {"EVENTS_MAX_INBOUND_PAYLOAD_SIZE", "1MiB"}});
  EXPECT_FALSE(c.environments[0].events.enabled);
  EXPECT_EQ(c.events.flush_interval, seconds(1));
  EXPECT_EQ(c.events.max_queue_events, 5000u);
  EXPECT_EQ(c.events.max_body_bytes, 1u << 20);
  EXPECT_TRUE(LoadOk(kEnvs, {{"USE_EVENTS", "1"}}).environments[0].events.enabled);
}

// ---- durations and sizes in the file -------------------------------------------------------

TEST(ConfigLoad, DurationWithoutUnitIsAnError) {
  EXPECT_THAT(Load("streams:\n  writeTimeout: 30\n" + kEnvs).errors,
              ElementsAre("relay.yaml:2:3: streams.writeTimeout: duration needs a unit, e.g. 30s"));
}

TEST(ConfigLoad, InvalidDurationAndSize) {
  const LoadResult result = Load("listen:\n  idleTimeout: soon\n  maxBodyBytes: 1.5MiB\n" + kEnvs);
  EXPECT_THAT(
      result.errors,
      ElementsAre(StartsWith("relay.yaml:2:3: listen.idleTimeout: invalid duration 'soon'"),
                  StartsWith("relay.yaml:3:3: listen.maxBodyBytes: invalid size '1.5MiB'")));
  EXPECT_FALSE(result.config.has_value());
}

TEST(ConfigLoad, CountsRejectUnits) {
  EXPECT_THAT(Load("listen:\n  maxConnections: 1KiB\n" + kEnvs).errors,
              ElementsAre("relay.yaml:2:3: listen.maxConnections: expected a whole number, got "
                          "'1KiB'"));
}

// ---- ${VAR} expansion ----------------------------------------------------------------------

TEST(ConfigExpand, ExpandsVariablesInAnyScalar) {
  const RelayConfig config = LoadOk(
      "listen:\n  port: ${PORT_X}\n  host: ${HOST_A}.${HOST_B}\nenvironments:\n"
      "  prod:\n    sdkKey: ${PROD_KEY}\n",
      {{"PORT_X", "9100"},
       {"HOST_A", "relay"},
       {"HOST_B", "local"},
       {"PROD_KEY", std::string(kSdkKey)}});
  EXPECT_EQ(config.listen.port, 9100);
  EXPECT_EQ(config.listen.host, "relay.local");
  ASSERT_THAT(config.environments, SizeIs(1));
  EXPECT_EQ(config.environments[0].sdk_key.Reveal(), kSdkKey);
}

TEST(ConfigExpand, DefaultsApplyWhenUnsetOrEmpty) {
  const std::string yaml = "listen:\n  host: ${H:-10.0.0.1}\n  idleTimeout: ${T:-45s}\n" + kEnvs;
  EXPECT_EQ(LoadOk(yaml).listen.host, "10.0.0.1");
  EXPECT_EQ(LoadOk(yaml, {{"H", ""}}).listen.host, "10.0.0.1");
  EXPECT_EQ(LoadOk(yaml, {{"H", "::1"}}).listen.host, "::1");
  EXPECT_EQ(LoadOk(yaml).listen.idle_timeout, seconds(45));
  EXPECT_EQ(LoadOk("cache:\n  dir: ${D:-}\n" + kEnvs).cache.dir, "");
}

TEST(ConfigExpand, DoubleDollarIsALiteral) {
  EXPECT_EQ(LoadOk("cache:\n  dir: /a/$${HOME}/b$c$\n" + kEnvs).cache.dir, "/a/${HOME}/b$c$");
}

TEST(ConfigExpand, ExpandedTextIsNotExpandedAgain) {
  EXPECT_EQ(LoadOk("cache:\n  dir: ${D}\n" + kEnvs, {{"D", "${E}"}, {"E", "no"}}).cache.dir,
            "${E}");
}

TEST(ConfigExpand, UnsetVariableNamesKeyLineAndVariable) {
  const LoadResult result =
      Load("environments:\n  prod:\n    sdkKey: ${PROD_SDK_KEY}\n    envId: ${A}${B}\n");
  EXPECT_THAT(
      result.errors,
      ElementsAre("relay.yaml:3:5: environments.prod.sdkKey: environment variable "
                  "'PROD_SDK_KEY' is not set",
                  "relay.yaml:4:5: environments.prod.envId: environment variable 'A' is not set",
                  "relay.yaml:4:5: environments.prod.envId: environment variable 'B' is not set"));
}

TEST(ConfigExpand, MalformedReferences) {
  EXPECT_THAT(Load("cache:\n  dir: ${OPEN\n" + kEnvs).errors,
              ElementsAre(HasSubstr("cache.dir: unterminated '${'")));
  EXPECT_THAT(Load("cache:\n  dir: ${1BAD}\n" + kEnvs).errors,
              ElementsAre(HasSubstr("cache.dir: invalid variable name '1BAD'")));
}

// ---- unknown keys, types, syntax -----------------------------------------------------------

TEST(ConfigErrors, UnknownKeyNamesPathLineAndSuggestion) {
  const std::string yaml =
      "logLevel: info\n"
      "listen:\n"
      "  prot: 8030\n";
  EXPECT_THAT(Load(yaml + kEnvs).errors,
              ElementsAre("relay.yaml:3:3: listen.prot: unknown key (did you mean 'port'?)"));
}

TEST(ConfigErrors, UnknownKeysAtEveryLevel) {
  const LoadResult result = Load(
      "lissten: {}\n"
      "colour: red\n"
      "environments:\n"
      "  prod:\n"
      "    sdk_key: x\n"
      "    sdkKey: sdk-0000-1111\n");
  EXPECT_THAT(result.errors,
              ElementsAre("relay.yaml:1:1: lissten: unknown key (did you mean 'listen'?)",
                          "relay.yaml:2:1: colour: unknown key",
                          "relay.yaml:5:5: environments.prod.sdk_key: unknown key (did you mean "
                          "'sdkKey'?)"));
}

TEST(ConfigErrors, DuplicateKeysInAMapping) {
  EXPECT_THAT(Load("listen:\n  port: 1\n  port: 2\n" + kEnvs).errors,
              ElementsAre("relay.yaml:3:3: listen.port: duplicate key"));
  EXPECT_THAT(Load(kEnvs + "  prod:\n    sdkKey: sdk-other\n").errors,
              ElementsAre("relay.yaml:4:3: environments.prod: duplicate environment"));
}

TEST(ConfigErrors, WrongNodeTypesAreErrors) {
  const LoadResult result = Load(
      "listen: 8030\n"
      "metrics:\n"
      "  port: [1, 2]\n"
      "upstream:\n"
      "  - streamUri: http://x\n"
      "environments:\n"
      "  - prod\n");
  EXPECT_THAT(
      result.errors,
      ElementsAre("relay.yaml:1:1: listen: expected a mapping, got a single value",
                  "relay.yaml:3:3: metrics.port: expected a single value, got a list",
                  "relay.yaml:4:1: upstream: expected a mapping, got a list",
                  "relay.yaml:6:1: environments: expected a mapping of environment names, got a "
                  "list",
                  "relay.yaml:6:1: environments: at least one environment is required (in the "
                  "file or as LD_ENV_<name>)"));
}

TEST(ConfigErrors, TopLevelMustBeAMapping) {
  EXPECT_THAT(Load("- a\n- b\n").errors,
              ElementsAre("relay.yaml:1:1: the top level must be a mapping of keys, not a list"));
}

TEST(ConfigErrors, YamlSyntaxErrorIsOneErrorWithPosition) {
  const LoadResult result = Load("listen:\n  port: [8030\nenvironments: {}\n");
  ASSERT_THAT(result.errors, SizeIs(1));
  EXPECT_THAT(result.errors[0], AllOf(StartsWith("relay.yaml:"), HasSubstr(": invalid YAML: ")));
  EXPECT_THAT(result.errors[0], ::testing::MatchesRegex("relay\\.yaml:[0-9]+:[0-9]+: .*"));
  EXPECT_FALSE(result.config.has_value());

  const LoadResult tabs = Load("listen:\n  port: 1\n bad: [\n");
  ASSERT_THAT(tabs.errors, SizeIs(1));
  EXPECT_THAT(tabs.errors[0], StartsWith("relay.yaml:3:"));
}

// Found by fuzz_config: yaml-cpp's LoadAll never returns on these (a stray ',' where a node
// should start), filling memory with empty documents.
TEST(ConfigErrors, StrayCommaIsAnErrorNotAHang) {
  for (const std::string_view yaml : {std::string_view(","), std::string_view(",!!"),
                                      std::string_view("\0,!!", 4), std::string_view("  ,\n")}) {
    const LoadResult result = Load(yaml);
    ASSERT_THAT(result.errors, SizeIs(1)) << yaml;
    EXPECT_THAT(result.errors[0], StartsWith("relay.yaml:1:")) << yaml;
    EXPECT_THAT(result.errors[0], HasSubstr(": invalid YAML: ")) << yaml;
    EXPECT_FALSE(result.config.has_value());
  }
}

TEST(ConfigErrors, MultipleDocumentsAreRejected) {
  EXPECT_THAT(Load(kEnvs + "---\nlogLevel: info\n").errors,
              ElementsAre(StartsWith("relay.yaml:5:1: only one YAML document is allowed")));
}

TEST(ConfigErrors, AllErrorsAreCollected) {
  const LoadResult result = Load(
      "listen:\n"
      "  port: 0\n"
      "  maxConnections: 0\n"
      "  headerTimeout: 10\n"
      "upstream:\n"
      "  streamUri: stream.launchdarkly.com\n"
      "  readTimeout: 0s\n"
      "streams:\n"
      "  heartbeatInterval: 10m\n"
      "environments:\n"
      "  prod:\n"
      "    envId: abc\n");
  EXPECT_THAT(
      result.errors,
      ElementsAre(
          "relay.yaml:2:3: listen.port: must be between 1 and 65535",
          "relay.yaml:4:3: listen.headerTimeout: duration needs a unit, e.g. 30s",
          "relay.yaml:3:3: listen.maxConnections: must be at least 1",
          "relay.yaml:6:3: upstream.streamUri: must be an absolute http:// or https:// URI, got "
          "'stream.launchdarkly.com'",
          "relay.yaml:7:3: upstream.readTimeout: must be greater than 0",
          "relay.yaml:9:3: streams.heartbeatInterval: must be between 1s and 4m (SDKs drop a "
          "stream after 5 minutes of silence), got 10m",
          "relay.yaml:11:3: environments.prod.sdkKey: required"));
  EXPECT_FALSE(result.config.has_value());
}

// ---- validation ----------------------------------------------------------------------------

TEST(ConfigValidate, NeedsAnEnvironment) {
  EXPECT_THAT(Load("").errors,
              ElementsAre("relay.yaml: environments: at least one environment is required (in "
                          "the file or as LD_ENV_<name>)"));
  EXPECT_THAT(Load("environments: {}\n").errors,
              ElementsAre(StartsWith("relay.yaml:1:1: environments: at least one environment")));
}

TEST(ConfigValidate, SdkKeyRules) {
  EXPECT_THAT(Load("environments:\n  prod:\n").errors,
              ElementsAre("relay.yaml:2:3: environments.prod.sdkKey: required"));
  EXPECT_THAT(Load("environments:\n  prod:\n    sdkKey: \"\"\n").errors,
              ElementsAre("relay.yaml:3:5: environments.prod.sdkKey: must not be empty"));
  EXPECT_THAT(Load("environments:\n  prod:\n    sdkKey: \"sdk-1234 5678-abcdef\"\n").errors,
              ElementsAre(StartsWith(
                  "relay.yaml:3:5: environments.prod.sdkKey: must not contain whitespace")));
  // An empty mobile key (an optional Secret expanded to "") means none, not an error.
  const auto empty_mobile = Load(kEnvs + "    mobileKey: \"${NO_SUCH_MOBILE_KEY:-}\"\n");
  ASSERT_TRUE(empty_mobile.ok());
  EXPECT_FALSE(empty_mobile.config->environments[0].mobile_key.has_value());
}

TEST(ConfigValidate, EnvironmentNames) {
  EXPECT_THAT(Load("environments:\n  \"my env\": {sdkKey: sdk-xyz-1}\n").errors,
              ElementsAre("relay.yaml:2:3: environments.my env: invalid environment name 'my "
                          "env' (use letters, digits, '_', '.', '-')"));
  EXPECT_THAT(Load("environments:\n  \"\": {sdkKey: sdk-xyz-1}\n").errors,
              ElementsAre(HasSubstr("invalid environment name ''")));
}

TEST(ConfigValidate, DuplicateKeysAcrossEnvironmentsNameBothAndMask) {
  const std::string yaml =
      "environments:\n"
      "  prod:\n"
      "    sdkKey: " +
      std::string(kSdkKey) +
      "\n"
      "    mobileKey: " +
      std::string(kMobileKey) +
      "\n"
      "    envId: id-1\n"
      "  test:\n"
      "    sdkKey: " +
      std::string(kSdkKey) +
      "\n"
      "    mobileKey: " +
      std::string(kMobileKey) +
      "\n"
      "    envId: id-1\n";
  const LoadResult result = Load(yaml);
  EXPECT_THAT(
      result.errors,
      ElementsAre("relay.yaml:7:5: environments.test.sdkKey: SDK key "
                  "sdk-********-****-****-****-*******cdef9 is also used by environment 'prod'",
                  "relay.yaml:8:5: environments.test.mobileKey: mobile key "
                  "mob-********-****-****-****-*******eeeee is also used by environment 'prod'",
                  "relay.yaml:9:5: environments.test.envId: envId 'id-1' is also used by "
                  "environment 'prod'"));
}

TEST(ConfigValidate, UrisAreNormalizedAndChecked) {
  const RelayConfig config = LoadOk(
      "upstream:\n  streamUri: https://stream.example.com//\n  baseUri: http://[::1]:8080/\n" +
      kEnvs);
  EXPECT_EQ(config.upstream.stream_uri, "https://stream.example.com");
  EXPECT_EQ(config.upstream.base_uri, "http://[::1]:8080");

  EXPECT_THAT(Load("upstream:\n  streamUri: https:///path\n  baseUri: http://:80\n"
                   "  eventsUri: https://e.com/?a=1\n" +
                   kEnvs)
                  .errors,
              ElementsAre("relay.yaml:2:3: upstream.streamUri: has no host: 'https:///path'",
                          "relay.yaml:3:3: upstream.baseUri: has no host: 'http://:80'",
                          "relay.yaml:4:3: upstream.eventsUri: must not have a query or "
                          "fragment, got 'https://e.com/?a=1'"));
}

TEST(ConfigValidate, Ranges) {
  const LoadResult result = Load(
      "listen:\n"
      "  port: 65536\n"
      "  maxHeaderBytes: 1000\n"
      "  maxBodyBytes: 0\n"
      "upstream:\n"
      "  initialReconnectDelay: 1m\n"
      "  maxReconnectDelay: 30s\n"
      "streams:\n"
      "  heartbeatInterval: 500ms\n"
      "  maxQueueEvents: 0\n"
      "  maxQueueBytes: 1023\n"
      "metrics:\n"
      "  port: 70000\n" +
      kEnvs);
  EXPECT_THAT(
      result.errors,
      ElementsAre("relay.yaml:2:3: listen.port: must be between 1 and 65535",
                  "relay.yaml:13:3: metrics.port: must be between 0 (off) and 65535",
                  "relay.yaml:3:3: listen.maxHeaderBytes: must be at least 1KiB",
                  "relay.yaml:4:3: listen.maxBodyBytes: must be at least 1",
                  "relay.yaml:6:3: upstream.initialReconnectDelay: must not exceed "
                  "upstream.maxReconnectDelay (1m > 30s)",
                  HasSubstr("streams.heartbeatInterval: must be between 1s and 4m (SDKs drop a "
                            "stream after 5 minutes of silence), got 500ms"),
                  "relay.yaml:10:3: streams.maxQueueEvents: must be at least 1",
                  "relay.yaml:11:3: streams.maxQueueBytes: must be at least 1KiB"));
}

TEST(ConfigValidate, BoundaryValuesAreAccepted) {
  const RelayConfig config = LoadOk(
      "listen: {port: 65535, maxHeaderBytes: 1KiB, maxBodyBytes: 1}\n"
      "streams: {heartbeatInterval: 4m, maxQueueEvents: 1, maxQueueBytes: 1024}\n"
      "upstream: {initialReconnectDelay: 30s, maxReconnectDelay: 30s}\n" +
      kEnvs);
  EXPECT_EQ(config.listen.port, 65535);
  EXPECT_EQ(config.streams.heartbeat_interval, minutes(4));
  EXPECT_EQ(LoadOk("streams: {heartbeatInterval: 1s}\n" + kEnvs).streams.heartbeat_interval,
            seconds(1));
}

TEST(ConfigValidate, MetricsPortMustDifferFromListenPort) {
  EXPECT_THAT(Load("listen: {port: 9000}\nmetrics: {port: 9000}\n" + kEnvs).errors,
              ElementsAre(HasSubstr("metrics.port: must differ from listen.port")));
  EXPECT_EQ(
      LoadOk("listen: {port: 9000, host: 10.0.0.1}\nmetrics: {port: 9000, host: 127.0.0.1}\n" +
             kEnvs)
          .metrics.port,
      9000);
}

TEST(ConfigValidate, DataFileMustBeReadable) {
  const std::string missing = "/nonexistent/flagrelay/flags.json";
  EXPECT_THAT(Load(kEnvs + "    dataFile: " + missing + "\n").errors,
              ElementsAre("relay.yaml:4:5: environments.prod.dataFile: cannot read '" + missing +
                          "': No such file or directory"));
  const std::string dir = std::filesystem::temp_directory_path().string();
  EXPECT_THAT(Load(kEnvs + "    dataFile: " + dir + "\n").errors,
              ElementsAre(HasSubstr("is a directory")));
  const TempFile data(R"({"flags":{},"segments":{}})");
  EXPECT_EQ(LoadOk(kEnvs + "    dataFile: " + data.path() + "\n").environments[0].data_file,
            data.path());
}

// ---- environment variables -----------------------------------------------------------------

TEST(ConfigEnv, UriAndPortOverrides) {
  const RelayConfig config =
      LoadOk("listen: {port: 9000}\nupstream: {streamUri: https://file.example}\n" + kEnvs,
             {{"STREAM_URI", "https://stream.env/"},
              {"BASE_URI", "https://base.env"},
              {"EVENTS_URI", "http://events.env:8080"},
              {"PORT", "7000"}});
  EXPECT_EQ(config.upstream.stream_uri, "https://stream.env");
  EXPECT_EQ(config.upstream.base_uri, "https://base.env");
  EXPECT_EQ(config.upstream.events_uri, "http://events.env:8080");
  EXPECT_EQ(config.listen.port, 7000);
}

TEST(ConfigEnv, EnvValuesAreValidatedLikeFileValues) {
  EXPECT_THAT(Load(kEnvs, {{"PORT", "http"}, {"STREAM_URI", "stream.env"}}).errors,
              ElementsAre("env PORT: expected a whole number, got 'http'",
                          "env STREAM_URI: must be an absolute http:// or https:// URI, got "
                          "'stream.env'"));
  EXPECT_THAT(Load(kEnvs, {{"PORT", "0"}}).errors,
              ElementsAre("env PORT: must be between 1 and 65535"));
  EXPECT_THAT(Load("", {{"LD_ENV_prod", ""}}).errors,
              ElementsAre("env LD_ENV_prod: must not be empty"));
}

TEST(ConfigEnv, LdEnvAddsEnvironmentsSortedAfterFileOnes) {
  const RelayConfig config =
      LoadOk("environments:\n  zeta: {sdkKey: sdk-zzzz-0001}\n  alpha: {sdkKey: sdk-aaaa-0002}\n",
             {{"LD_ENV_staging", "sdk-ssss-0003"},
              {"LD_ENV_dev", "sdk-dddd-0004"},
              {"LD_MOBILE_KEY_dev", "mob-dddd-0005"},
              {"LD_CLIENT_SIDE_ID_dev", "client-dev"}});
  ASSERT_THAT(config.environments, SizeIs(4));
  EXPECT_EQ(config.environments[0].name, "zeta");
  EXPECT_EQ(config.environments[1].name, "alpha");
  EXPECT_EQ(config.environments[2].name, "dev");
  EXPECT_EQ(config.environments[3].name, "staging");
  const EnvironmentConfig& dev = config.environments[2];
  EXPECT_EQ(dev.sdk_key.Reveal(), "sdk-dddd-0004");
  ASSERT_TRUE(dev.mobile_key.has_value());
  EXPECT_EQ(dev.mobile_key->Reveal(), "mob-dddd-0005");
  EXPECT_EQ(dev.env_id, "client-dev");
  EXPECT_EQ(dev.data_file_poll_interval, seconds(1));
}

TEST(ConfigEnv, LdEnvOverridesFileEnvironment) {
  const RelayConfig config =
      LoadOk(kEnvs + "    envId: file-id\n",
             {{"LD_ENV_prod", std::string(kSdkKey2)}, {"LD_CLIENT_SIDE_ID_prod", "env-id"}});
  ASSERT_THAT(config.environments, SizeIs(1));
  EXPECT_EQ(config.environments[0].sdk_key.Reveal(), kSdkKey2);
  EXPECT_EQ(config.environments[0].env_id, "env-id");
}

TEST(ConfigEnv, EnvVarsAloneAreAWholeConfig) {
  const RelayConfig config = LoadOk("", {{"LD_ENV_prod", std::string(kSdkKey)}});
  ASSERT_THAT(config.environments, SizeIs(1));
  EXPECT_EQ(config.environments[0].name, "prod");
}

TEST(ConfigEnv, MobileKeyOrClientSideIdForUnknownEnvironmentIsAnError) {
  const LoadResult result =
      Load(kEnvs, {{"LD_MOBILE_KEY_nope", "mob-1234-5678"}, {"LD_CLIENT_SIDE_ID_other", "x"}});
  EXPECT_THAT(result.errors,
              ElementsAre("env LD_CLIENT_SIDE_ID_other: no environment 'other' (define it in "
                          "the file or set LD_ENV_other)",
                          "env LD_MOBILE_KEY_nope: no environment 'nope' (define it in the file "
                          "or set LD_ENV_nope)"));
}

TEST(ConfigEnv, InvalidNameInLdEnv) {
  EXPECT_THAT(Load(kEnvs, {{"LD_ENV_", "sdk-x"}, {"LD_ENV_a b", "sdk-y"}}).errors,
              ElementsAre(StartsWith("env LD_ENV_: '' is not a valid environment name"),
                          StartsWith("env LD_ENV_a b: 'a b' is not a valid environment name")));
}

TEST(ConfigEnv, DuplicateKeyFromEnvNamesVariable) {
  EXPECT_THAT(Load(kEnvs, {{"LD_ENV_other", std::string(kSdkKey)}}).errors,
              ElementsAre("env LD_ENV_other: SDK key sdk-********-****-****-****-*******cdef9 is "
                          "also used by environment 'prod'"));
}

TEST(ConfigEnv, EnvVarsFromProcessReadsEnviron) {
  ASSERT_EQ(::setenv("FLAGRELAY_CONFIG_TEST_VAR", "a=b", 1), 0);
  const EnvVars vars = EnvVarsFromProcess();
  ::unsetenv("FLAGRELAY_CONFIG_TEST_VAR");
  ASSERT_EQ(vars.count("FLAGRELAY_CONFIG_TEST_VAR"), 1u);
  EXPECT_EQ(vars.at("FLAGRELAY_CONFIG_TEST_VAR"), "a=b");
}

// ---- upstream resilience, TLS, proxy, readiness ----------------------------------------------

TEST(ConfigUpstream, BadValues) {
  const LoadResult result = Load(
      "upstream:\n"
      "  exitOnError: maybe\n"
      "  maxEventBytes: 12\n"
      "  pollingFallback:\n"
      "    interval: 100ms\n"
      "    enabled: yes\n"
      "  tls:\n"
      "    minVersion: 1.1\n" +
      kEnvs);
  EXPECT_THAT(result.errors,
              ElementsAre("relay.yaml:2:3: upstream.exitOnError: expected true or false, got "
                          "'maybe'",
                          "relay.yaml:6:5: upstream.pollingFallback.enabled: expected true or "
                          "false, got 'yes'",
                          "relay.yaml:8:5: upstream.tls.minVersion: must be 1.2 or 1.3, got '1.1'",
                          "relay.yaml:3:3: upstream.maxEventBytes: must be at least 1KiB",
                          "relay.yaml:5:5: upstream.pollingFallback.interval: must be at least "
                          "1s, got 100ms"));
  EXPECT_FALSE(result.config.has_value());
}

TEST(ConfigUpstream, BooleansAreOnlyTrueAndFalse) {
  EXPECT_TRUE(LoadOk("upstream: {exitOnError: true}\n" + kEnvs).upstream.exit_on_error);
  EXPECT_FALSE(LoadOk("upstream: {exitOnError: false}\n" + kEnvs).upstream.exit_on_error);
  EXPECT_TRUE(LoadOk("upstream: {exitOnError: \"${X:-true}\"}\n" + kEnvs).upstream.exit_on_error);
  for (std::string_view bad : {"yes", "no", "on", "1", "0", "True", "FALSE"}) {
    EXPECT_THAT(Load("upstream: {exitOnError: " + std::string(bad) + "}\n" + kEnvs).errors,
                ElementsAre(HasSubstr("upstream.exitOnError: expected true or false, got '" +
                                      std::string(bad) + "'")))
        << bad;
  }
}

TEST(ConfigUpstream, Ranges) {
  EXPECT_THAT(Load("upstream:\n  reconnectResetAfter: 0s\n  disconnectedStatusTime: 0s\n"
                   "readiness:\n  maxSilence: 0s\n" +
                   kEnvs)
                  .errors,
              ElementsAre("relay.yaml:2:3: upstream.reconnectResetAfter: must be greater than 0",
                          "relay.yaml:3:3: upstream.disconnectedStatusTime: must be greater than 0",
                          "relay.yaml:5:3: readiness.maxSilence: must be greater than 0"));
  const RelayConfig boundaries = LoadOk(
      "upstream: {maxEventBytes: 1KiB, initTimeout: 0s, pollingFallback: {after: 0s, "
      "interval: 1s}}\n" +
      kEnvs);
  EXPECT_EQ(boundaries.upstream.max_event_bytes, 1024u);
  EXPECT_EQ(boundaries.upstream.init_timeout, milliseconds(0));
  EXPECT_EQ(boundaries.upstream.polling_fallback.interval, seconds(1));
  EXPECT_THAT(Load("upstream: {maxEventBytes: 1023}\n" + kEnvs).errors,
              ElementsAre(HasSubstr("upstream.maxEventBytes: must be at least 1KiB")));
  EXPECT_THAT(Load("upstream: {initTimeout: 10}\n" + kEnvs).errors,
              ElementsAre(HasSubstr("upstream.initTimeout: duration needs a unit")));
}

TEST(ConfigReadiness, Modes) {
  EXPECT_EQ(LoadOk("readiness: {mode: data}\n" + kEnvs).readiness.mode, ReadinessMode::kData);
  EXPECT_EQ(LoadOk("readiness: {mode: live}\n" + kEnvs).readiness.mode, ReadinessMode::kLive);
  EXPECT_THAT(Load("readiness:\n  mode: ready\n" + kEnvs).errors,
              ElementsAre("relay.yaml:2:3: readiness.mode: must be data or live, got 'ready'"));
}

TEST(ConfigErrors, UnknownKeysInTheNewSections) {
  const LoadResult result = Load(
      "readiness:\n"
      "  mod: live\n"
      "upstream:\n"
      "  pollingFallback:\n"
      "    intervall: 1m\n"
      "  tls:\n"
      "    cafile: /x\n"
      "proxy:\n"
      "  noproxy: x\n"
      "listen:\n"
      "  tls:\n"
      "    cert: /x\n" +
      kEnvs);
  EXPECT_THAT(result.errors,
              ElementsAre("relay.yaml:2:3: readiness.mod: unknown key (did you mean 'mode'?)",
                          "relay.yaml:5:5: upstream.pollingFallback.intervall: unknown key (did "
                          "you mean 'interval'?)",
                          "relay.yaml:7:5: upstream.tls.cafile: unknown key (did you mean "
                          "'caFile'?)",
                          "relay.yaml:9:3: proxy.noproxy: unknown key (did you mean 'noProxy'?)",
                          "relay.yaml:12:5: listen.tls.cert: unknown key",
                          "relay.yaml:11:3: listen.tls.certFile: required to serve HTTPS",
                          "relay.yaml:11:3: listen.tls.keyFile: required to serve HTTPS"));
}

TEST(ConfigTls, ListenerNeedsCertAndKey) {
  const TempFile cert("cert");
  EXPECT_THAT(Load("listen:\n  tls:\n    certFile: " + cert.path() + "\n" + kEnvs).errors,
              ElementsAre("relay.yaml:2:3: listen.tls.keyFile: required to serve HTTPS"));
  EXPECT_THAT(Load("listen:\n  tls: {}\n" + kEnvs).errors,
              ElementsAre("relay.yaml:2:3: listen.tls.certFile: required to serve HTTPS",
                          "relay.yaml:2:3: listen.tls.keyFile: required to serve HTTPS"));
  // An empty value counts as omitted: no TLS.
  EXPECT_FALSE(LoadOk("listen:\n  tls:\n" + kEnvs).listen.tls.has_value());
  EXPECT_THAT(Load("listen:\n  tls: on\n" + kEnvs).errors,
              ElementsAre("relay.yaml:2:3: listen.tls: expected a mapping, got a single value"));
}

TEST(ConfigTls, ListenerRejectsCaFile) {
  const TempFile cert("cert");
  const TempFile key("key");
  EXPECT_THAT(Load("listen:\n  tls:\n    certFile: " + cert.path() +
                   "\n    keyFile: " + key.path() + "\n    caFile: " + cert.path() + "\n" + kEnvs)
                  .errors,
              ElementsAre(StartsWith("relay.yaml:5:5: listen.tls.caFile: not allowed here")));
}

TEST(ConfigTls, UpstreamCertAndKeyTogetherOrNeither) {
  const TempFile file("pem");
  EXPECT_THAT(Load("upstream:\n  tls:\n    certFile: " + file.path() + "\n" + kEnvs).errors,
              ElementsAre("relay.yaml:2:3: upstream.tls.keyFile: required when "
                          "upstream.tls.certFile is set"));
  EXPECT_THAT(Load("upstream:\n  tls:\n    keyFile: " + file.path() + "\n" + kEnvs).errors,
              ElementsAre("relay.yaml:2:3: upstream.tls.certFile: required when "
                          "upstream.tls.keyFile is set"));
  const RelayConfig ca_only =
      LoadOk("upstream:\n  tls:\n    caFile: " + file.path() + "\n" + kEnvs);
  EXPECT_EQ(ca_only.upstream.tls.ca_file, file.path());
  EXPECT_EQ(ca_only.upstream.tls.cert_file, "");
  // https URIs need no TLS settings at all.
  EXPECT_EQ(LoadOk("upstream: {streamUri: https://stream.example}\n" + kEnvs).upstream.tls.ca_file,
            "");
}

TEST(ConfigTls, FilesMustBeReadable) {
  const std::string missing = "/nonexistent/flagrelay/ca.pem";
  EXPECT_THAT(Load("upstream:\n  tls:\n    caFile: " + missing + "\n" + kEnvs).errors,
              ElementsAre("relay.yaml:3:5: upstream.tls.caFile: cannot read '" + missing +
                          "': No such file or directory"));
  const TempFile key("key");
  EXPECT_THAT(Load("listen:\n  tls: {certFile: /nonexistent/cert.pem, keyFile: " + key.path() +
                   "}\n" + kEnvs)
                  .errors,
              ElementsAre("relay.yaml:2:9: listen.tls.certFile: cannot read "
                          "'/nonexistent/cert.pem': No such file or directory"));
  const std::string dir = std::filesystem::temp_directory_path().string();
  EXPECT_THAT(
      Load("upstream:\n  tls: {certFile: " + dir + ", keyFile: " + key.path() + "}\n" + kEnvs)
          .errors,
      ElementsAre(HasSubstr("upstream.tls.certFile: '" + dir + "' is a directory")));
}

TEST(ConfigTls, MinVersion) {
  EXPECT_EQ(LoadOk("upstream: {tls: {minVersion: 1.2}}\n" + kEnvs).upstream.tls.min_version, "1.2");
  EXPECT_EQ(LoadOk("upstream: {tls: {minVersion: \"1.3\"}}\n" + kEnvs).upstream.tls.min_version,
            "1.3");
  for (std::string_view bad : {"1.1", "1.0", "1.30", "TLS1.3", "1"}) {
    EXPECT_THAT(Load("upstream: {tls: {minVersion: " + std::string(bad) + "}}\n" + kEnvs).errors,
                ElementsAre(HasSubstr("upstream.tls.minVersion: must be 1.2 or 1.3, got '" +
                                      std::string(bad) + "'")))
        << bad;
  }
}

TEST(ConfigProxy, UrlForms) {
  EXPECT_EQ(LoadOk("proxy: {url: \"http://proxy.local:3128\"}\n" + kEnvs).proxy.url,
            "http://proxy.local:3128");
  EXPECT_EQ(LoadOk("proxy: {url: \"http://proxy.local/\"}\n" + kEnvs).proxy.url,
            "http://proxy.local");
  EXPECT_EQ(LoadOk("proxy: {url: \"http://[fd00::1]:8080\"}\n" + kEnvs).proxy.url,
            "http://[fd00::1]:8080");
  EXPECT_EQ(LoadOk("proxy: {url: \"http://me@proxy:1\"}\n" + kEnvs).proxy.url, "http://me@proxy:1");
  EXPECT_EQ(LoadOk("proxy: {url: \"\"}\n" + kEnvs).proxy.url, "");
}

TEST(ConfigProxy, BadUrls) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"ftp://x", "must be an http:// URL"},
      {"https://proxy:3128", "must be an http:// URL"},
      {"proxy:3128", "must be an http:// URL"},
      {"http://", "has no host: 'http://'"},
      {"http://:3128", "has no host: 'http://:3128'"},
      {"http://proxy:0", "invalid port in 'http://proxy:0' (1-65535; without one, 80 is used)"},
      {"http://proxy:65536", "invalid port in"},
      {"http://proxy:", "invalid port in"},
      {"http://proxy:31x", "invalid port in"},
      {"http://[::1", "invalid host in"},
      {"http://proxy:3128/path", "must not have a path, query or fragment"},
      {"http://proxy:3128?a=1", "must not have a path, query or fragment"},
      {"http://pro xy:3128", "must not contain whitespace"},
      {"http://u:p%zz@proxy", "invalid percent-encoding in the user name or password"},
  };
  for (const auto& [url, message] : cases) {
    EXPECT_THAT(Load("proxy:\n  url: \"" + std::string(url) + "\"\n" + kEnvs).errors,
                ElementsAre(StartsWith("relay.yaml:2:3: proxy.url: " + std::string(message))))
        << url;
  }
}

TEST(ConfigProxy, PasswordNeverAppearsInErrors) {
  // Long and short passwords, in every kind of bad URL, from the file and the environment.
  const std::string password = "s3cr3t-Passw0rd";
  const std::string short_password = "pw";
  const std::string urls[] = {
      "ftp://alice:" + password + "@proxy:3128",
      "https://alice:" + password + "@proxy:3128",
      "alice:" + password + "@proxy:3128",
      "http://alice:" + password + "@:3128",
      "http://alice:" + password + "@proxy:99999",
      "http://alice:" + password + "@proxy:3128/path",
      "http://alice:pa/" + password + "@proxy:3128",
      "http://alice:p@" + password + "@proxy:3128",
      "http://alice:" + password + "%zz@proxy:3128",
      "ftp://bob:" + short_password + "@proxy:3128",
      "http://bob:" + short_password + "@:3128",
  };
  for (const std::string& url : urls) {
    const LoadResult from_file = Load("proxy:\n  url: \"" + url + "\"\n" + kEnvs);
    const LoadResult from_env = Load(kEnvs, {{"PROXY_URL", url}});
    const LoadResult from_standard = Load(kEnvs, {{"HTTPS_PROXY", url}, {"http_proxy", url}});
    // Echoed by an unrelated key, too.
    const LoadResult echoed =
        Load("listen: {port: \"${P}\"}\n" + kEnvs, {{"P", url}, {"PROXY_URL", url}});
    for (const LoadResult* result : {&from_file, &from_env, &from_standard, &echoed}) {
      // A scheme-less HTTPS_PROXY is read as http://, so that one may be valid.
      if (result != &from_standard) {
        ASSERT_THAT(result->errors, Not(::testing::IsEmpty())) << url;
      }
      for (const std::string& error : result->errors) {
        EXPECT_THAT(error, Not(HasSubstr(password))) << url;
        EXPECT_THAT(error, Not(HasSubstr("bob:" + short_password))) << url;
        EXPECT_THAT(error, Not(HasSubstr(":" + short_password + "@"))) << url;
      }
    }
  }
  EXPECT_THAT(Load("proxy:\n  url: \"ftp://alice:" + password + "@proxy:3128\"\n" + kEnvs).errors,
              ElementsAre(HasSubstr("got 'ftp://alice:****@proxy:3128'")));
  EXPECT_THAT(
      Load(kEnvs, {{"HTTPS_PROXY", "http://bob:" + short_password + "@proxy:0"}}).errors,
      ElementsAre(StartsWith("env HTTPS_PROXY: invalid port in 'http://bob:****@proxy:0'")));
}

// ---- environment variables for the new settings ----------------------------------------------

TEST(ConfigEnv, UpstreamResilienceVariables) {
  const RelayConfig config = LoadOk(
      "upstream: {initTimeout: 1s, exitOnError: false, disconnectedStatusTime: 5m}\n" + kEnvs,
      {{"INIT_TIMEOUT", "30s"}, {"EXIT_ON_ERROR", "1"}, {"DISCONNECTED_STATUS_TIME", "2m"}});
  EXPECT_EQ(config.upstream.init_timeout, seconds(30));
  EXPECT_TRUE(config.upstream.exit_on_error);
  EXPECT_EQ(config.upstream.disconnected_status_time, minutes(2));

  EXPECT_TRUE(LoadOk(kEnvs, {{"EXIT_ON_ERROR", "true"}}).upstream.exit_on_error);
  EXPECT_FALSE(LoadOk("upstream: {exitOnError: true}\n" + kEnvs, {{"EXIT_ON_ERROR", "0"}})
                   .upstream.exit_on_error);
  EXPECT_FALSE(LoadOk("upstream: {exitOnError: true}\n" + kEnvs, {{"EXIT_ON_ERROR", "false"}})
                   .upstream.exit_on_error);
  EXPECT_EQ(LoadOk(kEnvs, {{"INIT_TIMEOUT", "0s"}}).upstream.init_timeout, milliseconds(0));
}

TEST(ConfigEnv, UpstreamResilienceVariablesAreValidated) {
  EXPECT_THAT(
      Load(kEnvs,
           {{"INIT_TIMEOUT", "10"}, {"EXIT_ON_ERROR", "yes"}, {"DISCONNECTED_STATUS_TIME", "0s"}})
          .errors,
      ElementsAre("env INIT_TIMEOUT: duration needs a unit, e.g. 30s",
                  "env EXIT_ON_ERROR: expected true, false, 1 or 0, got 'yes'",
                  "env DISCONNECTED_STATUS_TIME: must be greater than 0"));
}

TEST(ConfigEnv, ProxyUrlOverridesTheFile) {
  const std::string yaml = "proxy: {url: \"http://file-proxy:3128\"}\n" + kEnvs;
  EXPECT_EQ(LoadOk(yaml, {{"PROXY_URL", "http://env-proxy:8080/"}}).proxy.url,
            "http://env-proxy:8080");
  EXPECT_EQ(LoadOk(kEnvs, {{"PROXY_URL", "http://env-proxy:8080"}}).proxy.url,
            "http://env-proxy:8080");
  // Empty means unset, as for the standard proxy variables.
  EXPECT_EQ(LoadOk(yaml, {{"PROXY_URL", ""}}).proxy.url, "http://file-proxy:3128");
  EXPECT_THAT(Load(kEnvs, {{"PROXY_URL", "ftp://x"}}).errors,
              ElementsAre(StartsWith("env PROXY_URL: must be an http:// URL")));
}

TEST(ConfigEnv, StandardProxyVariables) {
  const RelayConfig config = LoadOk(kEnvs, {{"HTTPS_PROXY", "http://upper:3128"},
                                            {"https_proxy", "http://lower:3128"},
                                            {"http_proxy", "http://plain-lower:8080/"}});
  EXPECT_EQ(config.proxy.url, "");
  EXPECT_EQ(config.proxy.https_proxy_env, "http://upper:3128");
  EXPECT_EQ(config.proxy.http_proxy_env, "http://plain-lower:8080");

  EXPECT_EQ(LoadOk(kEnvs, {{"https_proxy", "http://lower:3128"}}).proxy.https_proxy_env,
            "http://lower:3128");
  // An empty upper-case variable counts as unset.
  EXPECT_EQ(LoadOk(kEnvs, {{"HTTPS_PROXY", ""}, {"https_proxy", "http://lower:3128"}})
                .proxy.https_proxy_env,
            "http://lower:3128");
  EXPECT_EQ(LoadOk(kEnvs, {{"HTTP_PROXY", "http://upper:1"}, {"http_proxy", "http://lower:2"}})
                .proxy.http_proxy_env,
            "http://upper:1");
  // Without a scheme, http:// is meant (curl, Go).
  EXPECT_EQ(LoadOk(kEnvs, {{"HTTPS_PROXY", "proxy.corp:3128"}}).proxy.https_proxy_env,
            "http://proxy.corp:3128");
}

TEST(ConfigEnv, StandardProxyVariablesIgnoredWhenAProxyIsConfigured) {
  const EnvVars env = {{"HTTPS_PROXY", "socks5://ignored:1080"}, {"HTTP_PROXY", "nonsense://"}};
  const RelayConfig from_file = LoadOk("proxy: {url: \"http://file:3128\"}\n" + kEnvs, env);
  EXPECT_EQ(from_file.proxy.https_proxy_env, "");
  EXPECT_EQ(from_file.proxy.http_proxy_env, "");
  EXPECT_EQ(LoadOk(kEnvs, {{"PROXY_URL", "http://env:3128"}, {"HTTPS_PROXY", "socks5://x:1"}})
                .proxy.https_proxy_env,
            "");
}

TEST(ConfigEnv, StandardProxyVariablesAreValidated) {
  EXPECT_THAT(Load(kEnvs, {{"HTTPS_PROXY", "https://secure-proxy:443"}}).errors,
              ElementsAre(StartsWith("env HTTPS_PROXY: must be an http:// URL")));
  EXPECT_THAT(Load(kEnvs, {{"https_proxy", "socks5://x:1080"}}).errors,
              ElementsAre(StartsWith("env https_proxy: must be an http:// URL")));
  EXPECT_THAT(Load(kEnvs, {{"HTTP_PROXY", "http://:80"}}).errors,
              ElementsAre("env HTTP_PROXY: has no host: 'http://:80'"));
}

TEST(ConfigEnv, NoProxyOnlyWhenTheFileHasNone) {
  EXPECT_EQ(LoadOk(kEnvs, {{"NO_PROXY", "localhost,.internal"}}).proxy.no_proxy,
            "localhost,.internal");
  EXPECT_EQ(LoadOk(kEnvs, {{"no_proxy", "lower"}}).proxy.no_proxy, "lower");
  EXPECT_EQ(LoadOk(kEnvs, {{"NO_PROXY", "upper"}, {"no_proxy", "lower"}}).proxy.no_proxy, "upper");
  EXPECT_EQ(
      LoadOk("proxy: {noProxy: \"file.local\"}\n" + kEnvs, {{"NO_PROXY", "env"}}).proxy.no_proxy,
      "file.local");
  // Set in the file to empty: still set, NO_PROXY is not used.
  EXPECT_EQ(LoadOk("proxy: {noProxy: \"\"}\n" + kEnvs, {{"NO_PROXY", "env"}}).proxy.no_proxy, "");
  // An empty value (`noProxy:`) counts as omitted.
  EXPECT_EQ(LoadOk("proxy:\n  noProxy:\n" + kEnvs, {{"NO_PROXY", "env"}}).proxy.no_proxy, "env");
  // NO_PROXY applies to proxy.url as well.
  const RelayConfig with_url =
      LoadOk("proxy: {url: \"http://p:3128\"}\n" + kEnvs, {{"NO_PROXY", "*.local"}});
  EXPECT_EQ(with_url.proxy.no_proxy, "*.local");
}

// ---- secrets never leak --------------------------------------------------------------------

TEST(ConfigSecrets, NoErrorMessageContainsAWholeKey) {
  const std::string secret = std::string(kSdkKey);
  const std::string spaced = "sdk-aaaa bbbb-cccc-dddd";
  const std::string mobile = std::string(kMobileKey);
  const std::string yaml =
      "listen:\n"
      "  port: ${KEY}\n"  // the key in the wrong place is echoed back
      "  host: [\"${KEY}\"]\n"
      "upstream:\n"
      "  streamUri: ${KEY}\n"
      "environments:\n"
      "  a:\n"
      "    sdkKey: ${KEY}\n"
      "    mobileKey: " +
      mobile +
      "\n"
      "  b:\n"
      "    sdkKey: ${KEY}\n"
      "    mobileKey: " +
      mobile +
      "\n"
      "  c:\n"
      "    sdkKey: \"" +
      spaced + "\"\n";
  const LoadResult result =
      Load(yaml, {{"KEY", secret}, {"LD_ENV_d", secret}, {"LD_MOBILE_KEY_d", mobile}});
  ASSERT_THAT(result.errors, SizeIs(::testing::Ge(6u)));
  for (const std::string& error : result.errors) {
    EXPECT_THAT(error, Not(HasSubstr(secret)));
    EXPECT_THAT(error, Not(HasSubstr(mobile)));
    EXPECT_THAT(error, Not(HasSubstr(spaced)));
  }
  EXPECT_THAT(result.errors, Contains(HasSubstr("sdk-********-****-****-****-*******cdef9")));
}

// ---- LoadFile ------------------------------------------------------------------------------

TEST(ConfigFile, MissingFileIsOneError) {
  const LoadResult result = LoadFile("/nonexistent/relay.yaml", {});
  EXPECT_THAT(result.errors,
              ElementsAre("/nonexistent/relay.yaml: cannot read file: No such file or directory"));
  EXPECT_FALSE(result.config.has_value());
}

TEST(ConfigFile, DirectoryIsOneError) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  EXPECT_THAT(LoadFile(dir, {}).errors, ElementsAre(dir + ": cannot read file: Is a directory"));
}

TEST(ConfigFile, LoadsAndPrefixesErrorsWithThePath) {
  const TempFile good(kEnvs + "logLevel: warn\n");
  const LoadResult ok = LoadFile(good.path(), {});
  ASSERT_TRUE(ok.ok()) << ::testing::PrintToString(ok.errors);
  EXPECT_EQ(ok.config->log_level, LogLevel::kWarn);

  const TempFile bad(kEnvs + "logLevl: warn\n");
  EXPECT_THAT(LoadFile(bad.path(), {}).errors,
              ElementsAre(bad.path() + ":4:1: logLevl: unknown key (did you mean 'logLevel'?)"));
}

}  // namespace
// ---- live reconfiguration keys -----------------------------------------------------------------

TEST(ConfigTimestamp, ParsesRfc3339) {
  EXPECT_EQ(ParseTimestamp("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseTimestamp("2026-12-01T00:00:00Z"), 1796083200000);
  EXPECT_EQ(ParseTimestamp("2026-12-01T01:30:00+01:30"), 1796083200000);
  EXPECT_EQ(ParseTimestamp("2026-11-30T22:00:00.250-02:00"), 1796083200250);
  EXPECT_EQ(ParseTimestamp("2024-02-29t12:00:00z"), 1709208000000);
}

TEST(ConfigTimestamp, RejectsWhatIsNotRfc3339) {
  for (const char* text :
       {"", "2026-12-01", "2026-12-01 00:00:00Z", "2026-12-01T00:00:00", "2026-13-01T00:00:00Z",
        "2025-02-29T00:00:00Z", "2026-12-01T24:00:00Z", "2026-12-01T00:00:00.Z",
        "2026-12-01T00:00:00+0100", "tomorrow", "2026-12-01T00:00:00Zjunk"}) {
    EXPECT_EQ(ParseTimestamp(text), std::nullopt) << text;
  }
}

TEST(ConfigLoad, ReloadAndShutdown) {
  const RelayConfig defaults = LoadOk(kEnvs);
  EXPECT_EQ(defaults.reload.watch_interval, milliseconds(0));
  EXPECT_EQ(defaults.shutdown.drain_delay, milliseconds(0));
  const RelayConfig c =
      LoadOk("reload:\n  watchInterval: 10s\nshutdown:\n  drainDelay: 5s\n" + kEnvs);
  EXPECT_EQ(c.reload.watch_interval, seconds(10));
  EXPECT_EQ(c.shutdown.drain_delay, seconds(5));
  EXPECT_THAT(Load("shutdown:\n  drainDelay: 5\n" + kEnvs).errors,
              Contains(HasSubstr("shutdown.drainDelay")));
}

TEST(ConfigLoad, ExpiringKeys) {
  const RelayConfig c = LoadOk(kEnvs + "    mobileKey: " + std::string(kMobileKey) +
                               "\n    expiringSdkKey:\n      key: " + std::string(kSdkKey2) +
                               "\n      expiry: 2026-12-01T00:00:00Z\n"
                               "    expiringMobileKey:\n      key: mob-old\n"
                               "      expiry: 2026-12-02T00:00:00Z\n");
  ASSERT_TRUE(c.environments[0].expiring_sdk_key);
  EXPECT_EQ(c.environments[0].expiring_sdk_key->key.Reveal(), kSdkKey2);
  EXPECT_EQ(c.environments[0].expiring_sdk_key->expiry_unix_ms, 1796083200000);
  ASSERT_TRUE(c.environments[0].expiring_mobile_key);
  EXPECT_EQ(c.environments[0].expiring_mobile_key->expiry_unix_ms, 1796083200000 + 86400000);
}

TEST(ConfigLoad, ExpiringKeyErrors) {
  const std::string base = kEnvs + "    expiringSdkKey:\n";
  EXPECT_THAT(Load(base + "      key: sdk-old\n").errors,
              ElementsAre(HasSubstr("environments.prod.expiringSdkKey.expiry: required")));
  EXPECT_THAT(Load(base + "      expiry: 2026-12-01T00:00:00Z\n").errors,
              ElementsAre(HasSubstr("environments.prod.expiringSdkKey.key: required")));
  EXPECT_THAT(Load(base + "      key: sdk-old\n      expiry: next week\n").errors,
              ElementsAre(HasSubstr("expected an RFC 3339 time")));
  EXPECT_THAT(
      Load(base + "      key: sdk-old\n      expiry: 2026-12-01T00:00:00Z\n      when: now\n")
          .errors,
      ElementsAre(HasSubstr("expiringSdkKey.when: unknown key")));
  // The expiring key is the current one, or another environment's: which environment it opens
  // would be ambiguous. The error never shows the key whole.
  const LoadResult same =
      Load(base + "      key: " + std::string(kSdkKey) + "\n      expiry: 2026-12-01T00:00:00Z\n");
  EXPECT_THAT(same.errors, ElementsAre(AllOf(HasSubstr("expiringSdkKey.key: SDK key"),
                                             HasSubstr("also used by environment 'prod'"),
                                             Not(HasSubstr(std::string(kSdkKey))))));
}

TEST(ConfigEnv, MaxClientConnectionTime) {
  const RelayConfig c = LoadOk(kEnvs, {{"MAX_CLIENT_CONNECTION_TIME", "30m"}});
  EXPECT_EQ(c.streams.max_connection_time, minutes(30));
  EXPECT_THAT(Load(kEnvs, {{"MAX_CLIENT_CONNECTION_TIME", "30"}}).errors,
              Contains(HasSubstr("MAX_CLIENT_CONNECTION_TIME")));
}

}  // namespace flagrelay::config
