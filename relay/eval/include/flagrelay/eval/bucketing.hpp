#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "flagrelay/eval/sha1.hpp"

namespace flagrelay::eval {

// LaunchDarkly's bucket for a value, in [0, 1) except 1.0 for an all-f hash: the SHA-1 of
// "<key>.<salt>.<value>" ("<seed>.<value>" if seeded), first 15 hex digits / 0xFFFFFFFFFFFFFFF.
double BucketValue(std::string_view flag_or_segment_key, std::string_view salt,
                   std::string_view bucket_by_value, std::optional<std::int64_t> seed);

// The same in two steps, for a rollout that buckets many contexts: a hasher that has taken the
// input's constant start ("<key>.<salt>." or "<seed>."), then the bucket for the value parts
// that follow it (their concatenation is the value).
Sha1Hasher BucketHashPrefix(std::string_view flag_or_segment_key, std::string_view salt,
                            std::optional<std::int64_t> seed);
double BucketValue(const Sha1Hasher& prefix, std::initializer_list<std::string_view> value_parts);

// The string form of a string attribute used for bucketing: the string itself.
std::optional<std::string> BucketableValue(std::string_view value);

// The string form of a numeric attribute: its decimal text if integral, else nullopt
// (fractional and non-finite numbers, and integers beyond int64, are not bucketable). Callers pass
// JSON numbers as doubles, as Go and JavaScript hold them.
std::optional<std::string> BucketableValue(double value);

}  // namespace flagrelay::eval
