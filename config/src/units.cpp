#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

#include "flagrelay/config/config.hpp"

namespace flagrelay::config {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads a run of decimal digits at `pos`; nullopt if there is none or it overflows.
std::optional<std::uint64_t> ReadNumber(std::string_view text, std::size_t& pos) {
  const std::size_t begin = pos;
  std::uint64_t value = 0;
  while (pos < text.size() && IsDigit(text[pos])) {
    const auto digit = static_cast<std::uint64_t>(text[pos] - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
    ++pos;
  }
  if (pos == begin) return std::nullopt;
  return value;
}

}  // namespace

std::optional<Duration> ParseDuration(std::string_view text) {
  // Timers take nanoseconds: a longer duration would overflow on the way to any of them.
  constexpr auto kMax = static_cast<std::uint64_t>(kMaxDuration.count());
  std::uint64_t total_ms = 0;
  std::size_t pos = 0;
  if (text.empty()) return std::nullopt;
  while (pos < text.size()) {
    const auto number = ReadNumber(text, pos);
    if (!number || pos == text.size()) return std::nullopt;  // a bare number has no unit
    std::uint64_t unit_ms = 0;
    if (text.substr(pos, 2) == "ms") {
      unit_ms = 1;
      pos += 2;
    } else if (text[pos] == 'h') {
      unit_ms = 3'600'000;
      ++pos;
    } else if (text[pos] == 'm') {
      unit_ms = 60'000;
      ++pos;
    } else if (text[pos] == 's') {
      unit_ms = 1'000;
      ++pos;
    } else {
      return std::nullopt;
    }
    if (*number > (kMax - total_ms) / unit_ms) return std::nullopt;
    total_ms += *number * unit_ms;
  }
  return Duration(static_cast<Duration::rep>(total_ms));
}

std::optional<std::size_t> ParseSize(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    std::uint64_t factor;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},       {"KiB", 1ull << 10}, {"MiB", 1ull << 20},   {"GiB", 1ull << 30},
      {"KB", 1'000}, {"MB", 1'000'000},   {"GB", 1'000'000'000},
  };
  std::size_t pos = 0;
  const auto number = ReadNumber(text, pos);
  if (!number) return std::nullopt;
  const std::string_view suffix = text.substr(pos);
  for (const Unit& unit : kUnits) {
    if (suffix != unit.suffix) continue;
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::size_t>::max());
    if (*number > kMax / unit.factor) return std::nullopt;
    return static_cast<std::size_t>(*number * unit.factor);
  }
  return std::nullopt;
}

}  // namespace flagrelay::config
