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
  const std::string yaml = R"(
listen:
  host: 127.0.0.1
  port: 9000
  maxConnections: 500
  headerTimeout: 5s
  idleTimeout: 2m
  maxHeaderBytes: 32KiB
  maxBodyBytes: 2MB
upstream:
  streamUri: http://stream.local:8080/
  baseUri: https://sdk.local/prefix
  eventsUri: https://events.local
  connectTimeout: 1500ms
  readTimeout: 4m
  initialReconnectDelay: 250ms
  maxReconnectDelay: 1m
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
}  // namespace flagrelay::config
