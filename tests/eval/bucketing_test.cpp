#include "flagrelay/eval/bucketing.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace flagrelay::eval {
namespace {

// Expected values are the ones LaunchDarkly's own SDK unit tests assert (Ruby, Node and .NET
// server SDKs: flag key "hashKey", salt "saltyA"); all SDKs must agree on them.
TEST(BucketValue, MatchesLaunchDarklyReferenceValues) {
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyA", std::nullopt), 0.42157587, 1e-7);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyB", std::nullopt), 0.6708485, 1e-7);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyC", std::nullopt), 0.10343106, 1e-7);
}

TEST(BucketValue, SeedReplacesKeyAndSalt) {
  // Ruby SDK reference values for seed 61.
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyA", 61), 0.09801207, 1e-7);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyB", 61), 0.14483777, 1e-7);
  // With a seed, the key and salt do not matter.
  EXPECT_EQ(BucketValue("hashKey", "saltyA", "userKeyA", 61),
            BucketValue("otherKey", "otherSalt", "userKeyA", 61));
  EXPECT_NE(BucketValue("hashKey", "saltyA", "userKeyA", 61),
            BucketValue("hashKey", "saltyA", "userKeyA", 62));
}

TEST(BucketValue, NegativeSeedIsFormattedWithSign) {
  // "-1.userKeyA" and "1.userKeyA" are different hash inputs.
  EXPECT_NE(BucketValue("k", "s", "userKeyA", -1), BucketValue("k", "s", "userKeyA", 1));
}

TEST(BucketValue, StaysInRange) {
  for (int i = 0; i < 1000; ++i) {
    const double bucket = BucketValue("flag", "salt", std::to_string(i), std::nullopt);
    EXPECT_GE(bucket, 0.0);
    EXPECT_LT(bucket, 1.0);
  }
}

TEST(BucketableValue, StringsAreUsedAsIs) {
  EXPECT_EQ(BucketableValue(std::string_view("userKeyA")), "userKeyA");
  EXPECT_EQ(BucketableValue(std::string_view("")), "");
}

TEST(BucketableValue, IntegralNumbersBecomeDecimalText) {
  EXPECT_EQ(BucketableValue(33333.0), "33333");
  EXPECT_EQ(BucketableValue(0.0), "0");
  EXPECT_EQ(BucketableValue(-0.0), "0");
  EXPECT_EQ(BucketableValue(-42.0), "-42");
  EXPECT_EQ(BucketableValue(9007199254740992.0), "9007199254740992");
  EXPECT_EQ(BucketableValue(18014398509481984.0), "18014398509481984");  // past 2^53, as Go
  // An integer bucket equals the bucket of the same digits as a string (Node SDK test).
  EXPECT_EQ(BucketValue("hashKey", "saltyA", *BucketableValue(33333.0), std::nullopt),
            BucketValue("hashKey", "saltyA", "33333", std::nullopt));
}

TEST(BucketableValue, OtherNumbersAreNotBucketable) {
  EXPECT_EQ(BucketableValue(33.5), std::nullopt);
  EXPECT_EQ(BucketableValue(1e300), std::nullopt);
  EXPECT_EQ(BucketableValue(9223372036854775808.0), std::nullopt);  // 2^63: no int64
  EXPECT_EQ(BucketableValue(std::numeric_limits<double>::infinity()), std::nullopt);
  EXPECT_EQ(BucketableValue(std::numeric_limits<double>::quiet_NaN()), std::nullopt);
}

}  // namespace
}  // namespace flagrelay::eval
