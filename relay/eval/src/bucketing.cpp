#include "flagrelay/eval/bucketing.hpp"

#include <charconv>
#include <cmath>

#include "flagrelay/eval/sha1.hpp"

namespace flagrelay::eval {
namespace {

// 15 hex digits = 60 bits; LaunchDarkly divides by this maximum, not by 2^60.
constexpr double kLongScale = static_cast<double>(0xFFFFFFFFFFFFFFFULL);

// Integral doubles are bucketed by their decimal text while they fit an int64 (Go's IntValue).
constexpr double kMaxBucketableInteger = 9223372036854775808.0;  // 2^63

}  // namespace

double BucketValue(std::string_view flag_or_segment_key, std::string_view salt,
                   std::string_view bucket_by_value, std::optional<std::int64_t> seed) {
  // SHA-1 of "<key>.<salt>.<value>", or "<seed>.<value>" with a seed.
  std::array<std::uint8_t, 20> digest;
  if (seed.has_value()) {
    char text[24];
    const std::string_view seed_text(
        text, static_cast<std::size_t>(std::to_chars(text, text + sizeof text, *seed).ptr - text));
    digest = Sha1({seed_text, ".", bucket_by_value});
  } else {
    digest = Sha1({flag_or_segment_key, ".", salt, ".", bucket_by_value});
  }
  // The first 15 hex digits of the digest are its first 60 bits.
  std::uint64_t prefix = 0;
  for (std::size_t i = 0; i < 8; ++i) prefix = (prefix << 8) | digest[i];
  return static_cast<double>(prefix >> 4) / kLongScale;
}

std::optional<std::string> BucketableValue(std::string_view value) { return std::string(value); }

std::optional<std::string> BucketableValue(double value) {
  if (!std::isfinite(value) || std::trunc(value) != value ||
      std::fabs(value) >= kMaxBucketableInteger) {
    return std::nullopt;
  }
  return std::to_string(static_cast<std::int64_t>(value));
}

}  // namespace flagrelay::eval
