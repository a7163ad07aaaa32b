// The YAML configuration with `${VAR}` expansion and the ld-relay environment variables, as
// `flagrelay --config` and `--check-config` load it.
//
// Input: YAML; after a line `#%env` (a comment to YAML), `NAME=value` lines that are added to a
// fixed set of environment variables.
//
// Properties beyond "no crash": a config comes back exactly when there are no errors, and every
// duration in it can arm a timer.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "flagrelay/config/config.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace flagrelay;

config::EnvVars Env(std::string_view lines) {
  config::EnvVars env = {
      {"LD_SDK_KEY_PRODUCTION", "sdk-11111111-2222-3333-4444-555555555555"},
      {"LD_SDK_KEY_STAGING", "sdk-66666666-7777-8888-9999-000000000000"},
      {"FLAGRELAY_UPSTREAM", "http://127.0.0.1:9"},
      {"EMPTY", ""},
  };
  while (!lines.empty()) {
    const std::size_t eol = lines.find('\n');
    const std::string_view line = lines.substr(0, eol);
    lines = eol == std::string_view::npos ? std::string_view() : lines.substr(eol + 1);
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  return env;
}

// Asio saturates `now + d`, but d must first convert to the clock's nanoseconds.
void CheckTimer(config::Duration d) {
  FUZZ_CHECK(d.count() >= 0);
  FUZZ_CHECK(d <= std::chrono::duration_cast<config::Duration>(
                      std::chrono::steady_clock::duration::max()));
}

void CheckDurations(const config::RelayConfig& c) {
  for (const config::Duration d :
       {c.listen.header_timeout, c.listen.idle_timeout, c.upstream.connect_timeout,
        c.upstream.read_timeout, c.upstream.initial_reconnect_delay, c.upstream.max_reconnect_delay,
        c.upstream.reconnect_reset_after, c.upstream.init_timeout,
        c.upstream.disconnected_status_time, c.upstream.polling_fallback.after,
        c.upstream.polling_fallback.interval, c.readiness.max_silence, c.streams.heartbeat_interval,
        c.streams.write_timeout, c.streams.max_connection_time, c.events.flush_interval,
        c.events.send_timeout, c.events.shutdown_timeout}) {
    CheckTimer(d);
  }
  for (const config::EnvironmentConfig& e : c.environments) CheckTimer(e.data_file_poll_interval);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kEnvMarker = "\n#%env\n";
  const std::size_t marker = input.find(kEnvMarker);
  const std::string_view yaml = input.substr(0, marker);
  const config::EnvVars env =
      Env(marker == std::string_view::npos ? std::string_view()
                                           : input.substr(marker + kEnvMarker.size()));

  const config::LoadResult result = config::LoadString(yaml, "fuzz.yaml", env);
  FUZZ_CHECK(result.ok() == result.config.has_value());
  for (const std::string& error : result.errors) FUZZ_CHECK(!error.empty());
  if (result.config) {
    FUZZ_CHECK(!result.config->environments.empty());
    CheckDurations(*result.config);
  }
  return 0;
}
