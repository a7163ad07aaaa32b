#include "flagrelay/eval/semver.hpp"

#include <gtest/gtest.h>

namespace flagrelay::eval {
namespace {

int Cmp(std::string_view a, std::string_view b) {
  const auto x = ParseSemVer(a);
  const auto y = ParseSemVer(b);
  EXPECT_TRUE(x.has_value()) << a;
  EXPECT_TRUE(y.has_value()) << b;
  return x && y ? CompareSemVer(*x, *y) : 99;
}

TEST(ParseSemVer, FullVersion) {
  const auto v = ParseSemVer("1.22.333-beta.11.x-y+build.007");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->major, 1u);
  EXPECT_EQ(v->minor, 22u);
  EXPECT_EQ(v->patch, 333u);
  EXPECT_EQ(v->prerelease, (std::vector<std::string>{"beta", "11", "x-y"}));
  EXPECT_EQ(v->build, "build.007");  // leading zeros are fine in build metadata
}

TEST(ParseSemVer, MissingMinorAndPatchAreZero) {
  const auto two = ParseSemVer("2");
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->minor, 0u);
  EXPECT_EQ(two->patch, 0u);
  const auto two_one = ParseSemVer("2.1-rc.1");
  ASSERT_TRUE(two_one.has_value());
  EXPECT_EQ(two_one->minor, 1u);
  EXPECT_EQ(two_one->patch, 0u);
  EXPECT_EQ(two_one->prerelease, (std::vector<std::string>{"rc", "1"}));
  EXPECT_EQ(Cmp("2", "2.0.0"), 0);
  EXPECT_EQ(Cmp("2.1", "2.1.0"), 0);
}

TEST(ParseSemVer, RejectsInvalid) {
  for (const char* bad : {"",
                          "v1.2.3",
                          "V2",
                          "01.2.3",
                          "1.02.3",
                          "1.2.03",
                          "1.2.3.4",
                          "1.",
                          "1..2",
                          ".1",
                          "1.2.3-",
                          "1.2.3+",
                          "1.2.3-01",
                          "1.2.3-a..b",
                          "1.2.3-a_b",
                          "1.2.3+a..b",
                          "-1.2.3",
                          "+1",
                          "1.2.3 ",
                          " 1.2.3",
                          "a.b.c",
                          "1.2.x",
                          "99999999999999999999.0.0",
                          "1.2.3-é"}) {
    EXPECT_FALSE(ParseSemVer(bad).has_value()) << '"' << bad << '"';
  }
}

TEST(ParseSemVer, AcceptsZeroAndHyphens) {
  EXPECT_TRUE(ParseSemVer("0.0.0").has_value());
  EXPECT_TRUE(ParseSemVer("1.0.0-0").has_value());
  EXPECT_TRUE(ParseSemVer("1.0.0--").has_value());
  EXPECT_TRUE(ParseSemVer("1.0.0-0a").has_value());  // alphanumeric, so a leading 0 is fine
  EXPECT_TRUE(ParseSemVer("1.0.0+-").has_value());
  EXPECT_TRUE(ParseSemVer("1.0.0+build-1")->prerelease.empty());  // a hyphen in build metadata
}

TEST(CompareSemVer, CoreNumbersCompareNumerically) {
  EXPECT_LT(Cmp("1.2.3", "1.2.10"), 0);
  EXPECT_LT(Cmp("1.9.0", "1.10.0"), 0);
  EXPECT_LT(Cmp("9.0.0", "10.0.0"), 0);
  EXPECT_GT(Cmp("2.0.0", "1.99.99"), 0);
}

TEST(CompareSemVer, SpecPrecedenceChain) {
  // The ordering example from SemVer 2.0.0 §11.
  const char* chain[] = {"1.0.0-alpha",  "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                         "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",       "1.0.0"};
  for (std::size_t i = 0; i + 1 < std::size(chain); ++i) {
    EXPECT_LT(Cmp(chain[i], chain[i + 1]), 0) << chain[i] << " < " << chain[i + 1];
    EXPECT_GT(Cmp(chain[i + 1], chain[i]), 0) << chain[i + 1] << " > " << chain[i];
  }
}

TEST(CompareSemVer, PrereleaseDetails) {
  EXPECT_LT(Cmp("1.0.0-1", "1.0.0-a"), 0);   // numeric below alphanumeric
  EXPECT_LT(Cmp("1.0.0-2", "1.0.0-10"), 0);  // numeric, not lexical
  EXPECT_LT(Cmp("1.0.0-B", "1.0.0-a"), 0);   // ASCII order
  EXPECT_LT(Cmp("1.0.0-99999999999999999999", "1.0.0-100000000000000000000"), 0);
  EXPECT_EQ(Cmp("1.0.0-rc.1", "1.0.0-rc.1"), 0);
}

TEST(CompareSemVer, BuildMetadataIsIgnored) {
  EXPECT_EQ(Cmp("1.0.0+a", "1.0.0+b"), 0);
  EXPECT_EQ(Cmp("1.0.0-rc+a", "1.0.0-rc"), 0);
}

}  // namespace
}  // namespace flagrelay::eval
