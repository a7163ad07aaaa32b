#include "flagrelay/eval/bucketing.hpp"

#include <cmath>
#include <cstdio>

#include "flagrelay/eval/sha1.hpp"

namespace flagrelay::eval {
namespace {

// 15 hex digits = 60 bits; LaunchDarkly divides by this maximum, not by 2^60.
constexpr double kLongScale = static_cast<double>(0xFFFFFFFFFFFFFFFULL);

// Integers beyond 2^53 cannot be told apart as doubles; other SDKs cap there too.
constexpr double kMaxExactInteger = 9007199254740992.0;

}  // namespace

double BucketValue(std::string_view flag_or_segment_key, std::string_view salt,
                   std::string_view bucket_by_value, std::optional<std::int64_t> seed) {
  std::string input;
  if (seed.has_value()) {
    input = std::to_string(*seed);
  } else {
    input.append(flag_or_segment_key).append(".").append(salt);
  }
  input.append(".").append(bucket_by_value);

  const std::string hex = Sha1Hex(input);
  std::uint64_t prefix = 0;
  for (std::size_t i = 0; i < 15; ++i) {
    const char c = hex[i];
    prefix = (prefix << 4) | static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  return static_cast<double>(prefix) / kLongScale;
}

std::optional<std::string> BucketableValue(std::string_view value) { return std::string(value); }

std::optional<std::string> BucketableValue(double value) {
  if (!std::isfinite(value) || std::trunc(value) != value || std::fabs(value) > kMaxExactInteger) {
    return std::nullopt;
  }
  return std::to_string(static_cast<std::int64_t>(value));
}

}  // namespace flagrelay::eval
