#pragma once
// A small logging facade: one line per event on stderr, with a UTC timestamp, level and
// component. Thread safety: any thread; lines are written whole.

#include <cstdint>
#include <string>
#include <string_view>

#include "flagrelay/config/config.hpp"

namespace flagrelay::relay {

/// `2026-12-01T00:00:00Z`: a Unix time in milliseconds as UTC, to the second.
[[nodiscard]] std::string FormatUtc(std::int64_t unix_ms);

void SetLogLevel(config::LogLevel level);
[[nodiscard]] bool LogEnabled(config::LogLevel level);
void Log(config::LogLevel level, std::string_view component, std::string_view message);

inline void LogDebug(std::string_view component, std::string_view message) {
  if (LogEnabled(config::LogLevel::kDebug)) Log(config::LogLevel::kDebug, component, message);
}
inline void LogInfo(std::string_view component, std::string_view message) {
  Log(config::LogLevel::kInfo, component, message);
}
inline void LogWarn(std::string_view component, std::string_view message) {
  Log(config::LogLevel::kWarn, component, message);
}
inline void LogError(std::string_view component, std::string_view message) {
  Log(config::LogLevel::kError, component, message);
}

}  // namespace flagrelay::relay
