#pragma once
// The relay as a whole, for the composition root (main.cpp).

#include <string_view>

#include "flagrelay/config/config.hpp"

namespace flagrelay::relay {

/// The version of this build (from CMake's project version).
[[nodiscard]] std::string_view Version();

/// Runs the relay with a validated config until SIGINT or SIGTERM, then shuts down in order:
/// stop accepting, stop data sources, close streams, flush pending cache commits. Returns the
/// process exit code (non-zero when it cannot start, e.g. the port is taken).
[[nodiscard]] int Run(const config::RelayConfig& config);

}  // namespace flagrelay::relay
