#include "log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace flagrelay::relay {

namespace {
std::atomic<config::LogLevel> g_level{config::LogLevel::kInfo};

const char* Name(config::LogLevel level) {
  switch (level) {
    case config::LogLevel::kDebug:
      return "DEBUG";
    case config::LogLevel::kInfo:
      return "INFO";
    case config::LogLevel::kWarn:
      return "WARN";
    case config::LogLevel::kError:
      return "ERROR";
    case config::LogLevel::kNone:
      break;
  }
  return "NONE";
}
}  // namespace

void SetLogLevel(config::LogLevel level) { g_level.store(level, std::memory_order_relaxed); }

bool LogEnabled(config::LogLevel level) {
  return level >= g_level.load(std::memory_order_relaxed) && level != config::LogLevel::kNone;
}

std::string FormatUtc(std::int64_t unix_ms) {
  const auto seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

void Log(config::LogLevel level, std::string_view component, std::string_view message) {
  if (!LogEnabled(level)) return;
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  std::string line;
  line.reserve(64 + component.size() + message.size());
  line.append(stamp).append(".");
  char ms[8];
  std::snprintf(ms, sizeof ms, "%03d", static_cast<int>(millis));
  line.append(ms).append("Z ").append(Name(level)).append(" [").append(component).append("] ");
  line.append(message).push_back('\n');
  std::fwrite(line.data(), 1, line.size(),
              stderr);  // one write: lines from threads don't interleave
}

}  // namespace flagrelay::relay
