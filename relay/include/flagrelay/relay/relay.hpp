#pragma once
// The relay as a whole, for the composition root (main.cpp).

#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "flagrelay/config/config.hpp"

namespace flagrelay::relay {

/// The version of this build (from CMake's project version).
[[nodiscard]] std::string_view Version();

/// Loads the config again (from the same file and environment variables), for SIGHUP.
using ConfigReloader = std::function<config::LoadResult()>;

/// Runs the relay with a validated config until SIGINT or SIGTERM, then shuts down in order:
/// readiness 503 for shutdown.drainDelay, stop accepting, stop data sources, close streams,
/// flush events (bounded) and pending cache commits. Returns the process exit code (non-zero
/// when it cannot start, e.g. the port is taken).
///
/// On SIGHUP, or when `config_path`'s content changes (reload.watchInterval), `reload` loads the
/// config again: environments are added, removed or changed without touching the others, and
/// the log level applies; an invalid config is logged and the running one kept.
[[nodiscard]] int Run(const config::RelayConfig& config, const ConfigReloader& reload = {},
                      const std::string& config_path = {});

/// `flagrelay cache inspect|verify|export ...` (`args` without "cache"): reads the cache
/// directory of a relay, running or not, and changes nothing. Returns the exit code: 0 success,
/// 1 problems found or failure, 2 usage error.
[[nodiscard]] int RunCacheCommand(const std::vector<std::string>& args, std::ostream& out,
                                  std::ostream& err);

}  // namespace flagrelay::relay
