#include "flagrelay/eval/timestamp.hpp"

#include <cmath>
#include <cstdint>

namespace flagrelay::eval {
namespace {

// Reads exactly `count` digits at `pos` as a number, advancing `pos`; -1 if not all digits.
int ReadDigits(std::string_view s, std::size_t& pos, std::size_t count) {
  if (s.size() - pos < count) return -1;
  int value = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9') return -1;
    value = value * 10 + (c - '0');
  }
  pos += count;
  return value;
}

bool Expect(std::string_view s, std::size_t& pos, char a, char b) {
  if (pos >= s.size() || (s[pos] != a && s[pos] != b)) return false;
  ++pos;
  return true;
}

bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeapYear(y) ? 29 : kDays[m - 1];
}

// Days since 1970-01-01 for a proleptic Gregorian date (shifts the year to start in March so
// the leap day falls at the end, then counts whole 400-year eras).
std::int64_t DaysFromCivil(int y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t year_of_era = y - era * 400;
  const std::int64_t day_of_year = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const std::int64_t day_of_era =
      year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

}  // namespace

std::optional<double> ParseTimestamp(std::string_view s) {
  std::size_t pos = 0;
  const int year = ReadDigits(s, pos, 4);
  if (year < 0 || !Expect(s, pos, '-', '-')) return std::nullopt;
  const int month = ReadDigits(s, pos, 2);
  if (month < 1 || month > 12 || !Expect(s, pos, '-', '-')) return std::nullopt;
  const int day = ReadDigits(s, pos, 2);
  if (day < 1 || day > DaysInMonth(year, month)) return std::nullopt;
  // RFC 3339 §5.6 allows a lowercase 't' and 'z'.
  if (!Expect(s, pos, 'T', 't')) return std::nullopt;
  const int hour = ReadDigits(s, pos, 2);
  if (hour < 0 || hour > 23 || !Expect(s, pos, ':', ':')) return std::nullopt;
  const int minute = ReadDigits(s, pos, 2);
  if (minute < 0 || minute > 59 || !Expect(s, pos, ':', ':')) return std::nullopt;
  // Leap seconds (60) are rejected, as Go's time.Parse (the reference SDK's parser) does.
  const int second = ReadDigits(s, pos, 2);
  if (second < 0 || second > 59) return std::nullopt;

  // Fractions are kept as whole nanoseconds (digits past the ninth dropped, as Go does) so
  // that ".123" is exactly 123 ms rather than a sum of inexact decimal steps.
  std::int64_t nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    std::int64_t scale = 100'000'000;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      nanos += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;  // a '.' needs at least one digit
  }

  int offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    const int offset_hour = ReadDigits(s, pos, 2);
    if (offset_hour < 0 || offset_hour > 23 || !Expect(s, pos, ':', ':')) return std::nullopt;
    const int offset_minute = ReadDigits(s, pos, 2);
    if (offset_minute < 0 || offset_minute > 59) return std::nullopt;
    offset_minutes = sign * (offset_hour * 60 + offset_minute);
  } else {
    return std::nullopt;  // RFC 3339 requires an offset
  }
  if (pos != s.size()) return std::nullopt;

  const std::int64_t seconds = DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                               second - std::int64_t{offset_minutes} * 60;
  return static_cast<double>(seconds * 1000) + static_cast<double>(nanos) / 1e6;
}

std::optional<double> ParseTimestamp(double epoch_millis) {
  if (!std::isfinite(epoch_millis)) return std::nullopt;
  return epoch_millis;
}

}  // namespace flagrelay::eval
