#include "flagrelay/eval/bucketing.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

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
  // "<key>.<salt>.<value>" or "<seed>.<value>", built without allocating in the common case.
  char seed_text[24];
  std::string_view first = flag_or_segment_key;
  if (seed.has_value()) {
    first = std::string_view(
        seed_text,
        static_cast<std::size_t>(std::to_chars(seed_text, seed_text + sizeof seed_text, *seed).ptr -
                                 seed_text));
  }
  const std::size_t size =
      first.size() + 1 + (seed.has_value() ? 0 : salt.size() + 1) + bucket_by_value.size();
  char stack[256];
  std::string heap;
  char* input = stack;
  if (size > sizeof stack) {
    heap.resize(size);
    input = heap.data();
  }
  char* out = std::copy(first.begin(), first.end(), input);
  *out++ = '.';
  if (!seed.has_value()) {
    out = std::copy(salt.begin(), salt.end(), out);
    *out++ = '.';
  }
  std::copy(bucket_by_value.begin(), bucket_by_value.end(), out);

  // The first 15 hex digits of the digest are its first 60 bits.
  const std::array<std::uint8_t, 20> digest = Sha1(std::string_view(input, size));
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
