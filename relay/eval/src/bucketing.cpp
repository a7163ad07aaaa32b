#include "flagrelay/eval/bucketing.hpp"

#include <charconv>
#include <cmath>

namespace flagrelay::eval {
namespace {

// 15 hex digits = 60 bits; LaunchDarkly divides by this maximum, not by 2^60.
constexpr double kLongScale = static_cast<double>(0xFFFFFFFFFFFFFFFULL);

// Integral doubles are bucketed by their decimal text while they fit an int64 (Go's IntValue).
constexpr double kMaxBucketableInteger = 9223372036854775808.0;  // 2^63

}  // namespace

Sha1Hasher BucketHashPrefix(std::string_view flag_or_segment_key, std::string_view salt,
                            std::optional<std::int64_t> seed) {
  Sha1Hasher hasher;
  if (seed.has_value()) {
    char text[24];
    const auto end = std::to_chars(text, text + sizeof text, *seed).ptr;
    hasher.Update(std::string_view(text, static_cast<std::size_t>(end - text)));
  } else {
    hasher.Update(flag_or_segment_key).Update(".").Update(salt);
  }
  hasher.Update(".");
  return hasher;
}

double BucketValue(const Sha1Hasher& prefix, std::initializer_list<std::string_view> value_parts) {
  Sha1Hasher hasher = prefix;
  for (const std::string_view part : value_parts) hasher.Update(part);
  const std::array<std::uint8_t, 20> digest = hasher.Digest();
  // The first 15 hex digits of the digest are its first 60 bits.
  std::uint64_t prefix_bits = 0;
  for (std::size_t i = 0; i < 8; ++i) prefix_bits = (prefix_bits << 8) | digest[i];
  return static_cast<double>(prefix_bits >> 4) / kLongScale;
}

double BucketValue(std::string_view flag_or_segment_key, std::string_view salt,
                   std::string_view bucket_by_value, std::optional<std::int64_t> seed) {
  return BucketValue(BucketHashPrefix(flag_or_segment_key, salt, seed), {bucket_by_value});
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
