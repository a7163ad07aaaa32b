#include "flagrelay/eval/semver.hpp"

#include <algorithm>
#include <charconv>

namespace flagrelay::eval {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsIdentifierChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

bool AllDigits(std::string_view s) { return std::all_of(s.begin(), s.end(), IsDigit); }

// A numeric version component: digits only, no sign, no leading zero (except "0" itself).
std::optional<std::uint64_t> ParseNumber(std::string_view s) {
  if (s.empty() || !AllDigits(s) || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;  // overflow
  return value;
}

// Splits dot-separated identifiers; each must be non-empty and use [0-9A-Za-z-] only.
std::optional<std::vector<std::string>> SplitIdentifiers(std::string_view s) {
  std::vector<std::string> out;
  while (true) {
    const std::size_t dot = s.find('.');
    const std::string_view part = s.substr(0, dot);
    if (part.empty() || !std::all_of(part.begin(), part.end(), IsIdentifierChar)) {
      return std::nullopt;
    }
    out.emplace_back(part);
    if (dot == std::string_view::npos) return out;
    s.remove_prefix(dot + 1);
  }
}

int Sign(std::uint64_t a, std::uint64_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

}  // namespace

std::optional<SemVer> ParseSemVer(std::string_view text) {
  SemVer result;
  const std::size_t plus = text.find('+');
  if (plus != std::string_view::npos) {
    const auto build = SplitIdentifiers(text.substr(plus + 1));
    if (!build) return std::nullopt;
    result.build = std::string(text.substr(plus + 1));
    text = text.substr(0, plus);
  }
  const std::size_t hyphen = text.find('-');
  if (hyphen != std::string_view::npos) {
    auto prerelease = SplitIdentifiers(text.substr(hyphen + 1));
    if (!prerelease) return std::nullopt;
    // Numeric prerelease identifiers must not have leading zeros (build identifiers may).
    for (const std::string& id : *prerelease) {
      if (id.size() > 1 && id[0] == '0' && AllDigits(id)) return std::nullopt;
    }
    result.prerelease = std::move(*prerelease);
    text = text.substr(0, hyphen);
  }

  // The version core: one to three numeric components.
  std::uint64_t* const fields[] = {&result.major, &result.minor, &result.patch};
  std::size_t index = 0;
  while (true) {
    if (index == 3) return std::nullopt;  // a fourth component
    const std::size_t dot = text.find('.');
    const auto number = ParseNumber(text.substr(0, dot));
    if (!number) return std::nullopt;
    *fields[index++] = *number;
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
  }
  return result;
}

int CompareSemVer(const SemVer& a, const SemVer& b) {
  if (const int c = Sign(a.major, b.major); c != 0) return c;
  if (const int c = Sign(a.minor, b.minor); c != 0) return c;
  if (const int c = Sign(a.patch, b.patch); c != 0) return c;

  // A release outranks any of its prereleases.
  if (a.prerelease.empty() || b.prerelease.empty()) {
    return a.prerelease.empty() == b.prerelease.empty() ? 0 : (a.prerelease.empty() ? 1 : -1);
  }
  const std::size_t n = std::min(a.prerelease.size(), b.prerelease.size());
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& x = a.prerelease[i];
    const std::string& y = b.prerelease[i];
    const bool x_numeric = AllDigits(x);
    const bool y_numeric = AllDigits(y);
    if (x_numeric && y_numeric) {
      // No leading zeros, so a longer numeric identifier is larger; this avoids overflow.
      if (x.size() != y.size()) return x.size() < y.size() ? -1 : 1;
      if (const int c = x.compare(y); c != 0) return c < 0 ? -1 : 1;
    } else if (x_numeric != y_numeric) {
      return x_numeric ? -1 : 1;  // numeric identifiers rank below alphanumeric ones
    } else if (const int c = x.compare(y); c != 0) {
      return c < 0 ? -1 : 1;  // ASCII order
    }
  }
  return Sign(a.prerelease.size(), b.prerelease.size());
}

}  // namespace flagrelay::eval
