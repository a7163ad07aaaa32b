#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flagrelay::eval {

// A parsed semantic version (SemVer 2.0.0), as used by the semVer* clause operators.
struct SemVer {
  std::uint64_t major = 0;
  std::uint64_t minor = 0;
  std::uint64_t patch = 0;
  std::vector<std::string> prerelease;  // dot-separated identifiers after '-'
  std::string build;                    // text after '+'; ignored for precedence
};

// Parses a version the way LaunchDarkly does: strict SemVer 2.0.0 except that minor and patch
// may be omitted ("2", "2.1" mean "2.0.0", "2.1.0"). No "v" prefix; no leading zeros.
std::optional<SemVer> ParseSemVer(std::string_view text);

// SemVer 2.0.0 precedence: negative if a < b, zero if equal, positive if a > b. Build ignored.
int CompareSemVer(const SemVer& a, const SemVer& b);

}  // namespace flagrelay::eval
