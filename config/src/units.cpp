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

// Exactly `digits` decimal digits at `pos`.
std::optional<int> ReadFixed(std::string_view text, std::size_t& pos, std::size_t digits) {
  if (pos + digits > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    if (!IsDigit(text[pos + i])) return std::nullopt;
    value = value * 10 + (text[pos + i] - '0');
  }
  pos += digits;
  return value;
}

bool Expect(std::string_view text, std::size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t DaysFromCivil(int y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<std::int64_t>(era) * 146097 + doe - 719468;
}

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

}  // namespace

std::optional<std::int64_t> ParseTimestamp(std::string_view text) {
  std::size_t pos = 0;
  const auto year = ReadFixed(text, pos, 4);
  if (!year || !Expect(text, pos, '-')) return std::nullopt;
  const auto month = ReadFixed(text, pos, 2);
  if (!month || *month < 1 || *month > 12 || !Expect(text, pos, '-')) return std::nullopt;
  const auto day = ReadFixed(text, pos, 2);
  if (!day || *day < 1 || *day > DaysInMonth(*year, *month)) return std::nullopt;
  if (!Expect(text, pos, 'T') && !Expect(text, pos, 't')) return std::nullopt;
  const auto hour = ReadFixed(text, pos, 2);
  if (!hour || *hour > 23 || !Expect(text, pos, ':')) return std::nullopt;
  const auto minute = ReadFixed(text, pos, 2);
  if (!minute || *minute > 59 || !Expect(text, pos, ':')) return std::nullopt;
  const auto second = ReadFixed(text, pos, 2);
  if (!second || *second > 59) return std::nullopt;  // leap seconds are not worth a key expiry
  std::int64_t millis = 0;
  if (Expect(text, pos, '.')) {
    const std::size_t begin = pos;
    std::int64_t scale = 100;
    while (pos < text.size() && IsDigit(text[pos])) {
      millis += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == begin) return std::nullopt;
  }
  std::int64_t offset_minutes = 0;
  if (Expect(text, pos, 'Z') || Expect(text, pos, 'z')) {
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos++] == '-' ? -1 : 1;
    const auto oh = ReadFixed(text, pos, 2);
    if (!oh || *oh > 23 || !Expect(text, pos, ':')) return std::nullopt;
    const auto om = ReadFixed(text, pos, 2);
    if (!om || *om > 59) return std::nullopt;
    offset_minutes = sign * (*oh * 60 + *om);
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;
  const std::int64_t seconds = DaysFromCivil(*year, *month, *day) * 86400 + *hour * 3600 +
                               *minute * 60 + *second - offset_minutes * 60;
  return seconds * 1000 + millis;
}

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
