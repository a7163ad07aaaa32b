// Segments as go-server-sdk-evaluation v3 evaluates them (evaluator_segment.go), reached through a
// flag rule with one `segmentMatch` clause.

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "eval_test_util.hpp"
#include "flagrelay/eval/bucketing.hpp"
#include "flagrelay/eval/evaluator.hpp"

namespace flagrelay::eval {
namespace {

using testing::ClauseOutcome;
using testing::Data;
using testing::Eval;
using testing::Outcome;
using testing::OutcomeOf;
using testing::ReasonOf;
using testing::RuleFlag;
using testing::SameJson;

constexpr const char* kMatchS = R"({"op":"segmentMatch","values":["s"]})";

Outcome InSegment(const std::string& segment, std::string_view context,
                  std::vector<std::string> more_segments = {}) {
  more_segments.push_back(segment);
  return ClauseOutcome(kMatchS, context, more_segments);
}

std::string Seg(std::string_view body) {
  return R"({"key":"s","version":1,"salt":"salt")" + std::string(body.empty() ? "" : ",") +
         std::string(body) + "}";
}

constexpr const char* kUserU = R"({"kind":"user","key":"u","name":"Ann"})";
constexpr const char* kOrgO = R"({"kind":"org","key":"o"})";
constexpr const char* kOrgU = R"({"kind":"org","key":"u"})";
constexpr const char* kMultiUO = R"({"kind":"multi","user":{"key":"u"},"org":{"key":"o"}})";

// ---------------------------------------------------------------------------------------------
// Targets

struct SegCase {
  const char* name;
  const char* segment_body;
  const char* context;
  Outcome expected;
};
void PrintTo(const SegCase& c, std::ostream* os) { *os << c.name; }

std::string SegCaseName(const ::testing::TestParamInfo<SegCase>& param_info) {
  return param_info.param.name;
}

class SegmentMembership : public ::testing::TestWithParam<SegCase> {};

TEST_P(SegmentMembership, Is) {
  const auto& c = GetParam();
  EXPECT_EQ(InSegment(Seg(c.segment_body), c.context), c.expected)
      << Seg(c.segment_body) << "\ncontext " << c.context;
}

INSTANTIATE_TEST_SUITE_P(
    Targets, SegmentMembership,
    ::testing::Values(
        SegCase{"EmptySegment", "", kUserU, Outcome::kNoMatch},
        SegCase{"IncludedUserKey", R"("included":["x","u"])", kUserU, Outcome::kMatch},
        SegCase{"NotIncluded", R"("included":["x"])", kUserU, Outcome::kNoMatch},
        SegCase{"IncludedOldUser", R"("included":["u"])", R"({"key":"u"})", Outcome::kMatch},
        SegCase{"IncludedUserInMulti", R"("included":["u"])", kMultiUO, Outcome::kMatch},
        SegCase{"IncludedIsUserKindOnly", R"("included":["u"])", kOrgU, Outcome::kNoMatch},
        SegCase{"IncludedWinsOverExcluded", R"("included":["u"],"excluded":["u"])", kUserU,
                Outcome::kMatch},
        SegCase{"ExcludedBeatsRules", R"("excluded":["u"],"rules":[{"clauses":[]}])", kUserU,
                Outcome::kNoMatch},
        SegCase{"RulesWhenNotExcluded", R"("excluded":["x"],"rules":[{"clauses":[]}])", kUserU,
                Outcome::kMatch},
        SegCase{"IncludedContextsOrg",
                R"("includedContexts":[{"contextKind":"org","values":["o"]}])", kOrgO,
                Outcome::kMatch},
        SegCase{"IncludedContextsOrgInMulti",
                R"("includedContexts":[{"contextKind":"org","values":["o"]}])", kMultiUO,
                Outcome::kMatch},
        SegCase{"IncludedContextsOtherKind",
                R"("includedContexts":[{"contextKind":"org","values":["u"]}])", kUserU,
                Outcome::kNoMatch},
        SegCase{"IncludedContextsKeyOfOtherKind",
                R"("includedContexts":[{"contextKind":"device","values":["o"]}])", kMultiUO,
                Outcome::kNoMatch},
        SegCase{"ExcludedContextsBeatRules",
                R"("excludedContexts":[{"contextKind":"org","values":["o"]}],)"
                R"("rules":[{"clauses":[]}])",
                kMultiUO, Outcome::kNoMatch},
        SegCase{"ExcludedContextsOtherKey",
                R"("excludedContexts":[{"contextKind":"org","values":["p"]}],)"
                R"("rules":[{"clauses":[]}])",
                kMultiUO, Outcome::kMatch},
        // Go checks included, includedContexts, excluded, excludedContexts in that order.
        SegCase{"IncludedContextsBeatExcludedUser",
                R"("excluded":["u"],"includedContexts":[{"contextKind":"org","values":["o"]}])",
                kMultiUO, Outcome::kMatch},
        SegCase{"IncludedUserBeatsExcludedContexts",
                R"("included":["u"],"excludedContexts":[{"contextKind":"org","values":["o"]}])",
                kMultiUO, Outcome::kMatch},
        SegCase{"UserKindIncludedContextsInMulti",
                R"("includedContexts":[{"contextKind":"user","values":["u"]}])", kMultiUO,
                Outcome::kMatch}),
    SegCaseName);

TEST(Segments, UserKindIncludedContextsAreIgnoredForAPlainUserContext) {
  // Go quirk (evaluator_segment.go, isOnlyDefaultKind): for a context that is just a user, only
  // `included`/`excluded` are consulted, never includedContexts/excludedContexts.
  const auto s = Seg(R"("includedContexts":[{"contextKind":"user","values":["u"]}])");
  EXPECT_EQ(InSegment(s, kUserU), Outcome::kNoMatch);
  EXPECT_EQ(InSegment(s, R"({"key":"u"})"), Outcome::kNoMatch);
  const auto e = Seg(R"("excludedContexts":[{"contextKind":"user","values":["u"]}],)"
                     R"("rules":[{"clauses":[]}])");
  EXPECT_EQ(InSegment(e, kUserU), Outcome::kMatch);
}

// ---------------------------------------------------------------------------------------------
// Rules

TEST(SegmentRules, ClausesMustAllMatch) {
  const auto s =
      Seg(R"("rules":[{"id":"a","clauses":[{"attribute":"name","op":"in","values":["Ann"]},)"
          R"({"attribute":"key","op":"in","values":["u"]}]}])");
  EXPECT_EQ(InSegment(s, kUserU), Outcome::kMatch);
  EXPECT_EQ(InSegment(s, R"({"kind":"user","key":"v","name":"Ann"})"), Outcome::kNoMatch);
}

TEST(SegmentRules, AnyRuleMatches) {
  const auto s = Seg(R"("rules":[{"clauses":[{"attribute":"name","op":"in","values":["Bob"]}]},)"
                     R"({"clauses":[{"attribute":"name","op":"in","values":["Ann"]}]}])");
  EXPECT_EQ(InSegment(s, kUserU), Outcome::kMatch);
}

TEST(SegmentRules, ContextKindClauses) {
  const auto s = Seg(
      R"("rules":[{"clauses":[{"contextKind":"org","attribute":"key","op":"in","values":["o"]}]}])");
  EXPECT_EQ(InSegment(s, kMultiUO), Outcome::kMatch);
  EXPECT_EQ(InSegment(s, kUserU), Outcome::kNoMatch);
}

TEST(SegmentRules, MalformedClauseIsAFlagError) {
  const auto s = Seg(R"("rules":[{"clauses":[{"attribute":"","op":"in","values":["x"]}]}])");
  EXPECT_EQ(InSegment(s, kUserU), Outcome::kError);
  // Included users are decided before rules are looked at.
  const auto included =
      Seg(R"("included":["u"],"rules":[{"clauses":[{"attribute":"","op":"in","values":["x"]}]}])");
  EXPECT_EQ(InSegment(included, kUserU), Outcome::kMatch);
}

// Bucket values for segment "s"... use key "seg" so the hash inputs are "seg.salt.<value>":
//   userKeyA 0.5872, userKeyB 0.5102, userKeyC 0.4812, orgKeyA 0.3336, orgKeyD 0.6424,
//   "userKeyA.sec" 0.9154.
std::string WeightedSeg(std::string_view rule_extra) {
  return R"({"key":"seg","version":1,"salt":"salt","rules":[{"clauses":[])" +
         std::string(rule_extra) + "}]}";
}

Outcome InWeighted(const std::string& segment, std::string_view context) {
  return ClauseOutcome(R"({"op":"segmentMatch","values":["seg"]})", context, {segment});
}

TEST(SegmentRules, BucketVectorsAreWhatTheseTestsAssume) {
  EXPECT_NEAR(BucketValue("seg", "salt", "userKeyA", std::nullopt), 0.5872, 1e-4);
  EXPECT_NEAR(BucketValue("seg", "salt", "userKeyB", std::nullopt), 0.5102, 1e-4);
  EXPECT_NEAR(BucketValue("seg", "salt", "userKeyC", std::nullopt), 0.4812, 1e-4);
  EXPECT_NEAR(BucketValue("seg", "salt", "orgKeyA", std::nullopt), 0.3336, 1e-4);
  EXPECT_NEAR(BucketValue("seg", "salt", "orgKeyD", std::nullopt), 0.6424, 1e-4);
  EXPECT_NEAR(BucketValue("seg", "salt", "userKeyA.sec", std::nullopt), 0.9154, 1e-4);
}

TEST(SegmentRules, WeightBucketsByKey) {
  const auto half = WeightedSeg(R"(,"weight":50000)");
  EXPECT_EQ(InWeighted(half, R"({"kind":"user","key":"userKeyC"})"), Outcome::kMatch);
  EXPECT_EQ(InWeighted(half, R"({"kind":"user","key":"userKeyB"})"), Outcome::kNoMatch);
  EXPECT_EQ(InWeighted(half, R"({"kind":"user","key":"userKeyA"})"), Outcome::kNoMatch);
  const auto more = WeightedSeg(R"(,"weight":55000)");
  EXPECT_EQ(InWeighted(more, R"({"kind":"user","key":"userKeyB"})"), Outcome::kMatch);
  EXPECT_EQ(InWeighted(more, R"({"kind":"user","key":"userKeyA"})"), Outcome::kNoMatch);
}

TEST(SegmentRules, WeightComparisonIsDoubleNotGoFloat32) {
  // In double precision these users' buckets are just below the weight, so they match; Go's
  // float32 comparison leaves them out (docs/evaluation.md).
  struct Case {
    const char* key;
    int weight;
  };
  for (const Case c : {Case{"user1905", 28127}, Case{"user2018", 52662}, Case{"user2272", 89711}}) {
    EXPECT_LT(BucketValue("seg", "salt", c.key, std::nullopt), c.weight / 100000.0) << c.key;
    EXPECT_EQ(InWeighted(WeightedSeg(R"(,"weight":)" + std::to_string(c.weight)),
                         std::string(R"({"kind":"user","key":")") + c.key + "\"}"),
              Outcome::kMatch)
        << c.key;
  }
}

TEST(SegmentRules, WeightZeroAndFullAndNull) {
  EXPECT_EQ(InWeighted(WeightedSeg(R"(,"weight":0)"), R"({"kind":"user","key":"userKeyC"})"),
            Outcome::kNoMatch);
  EXPECT_EQ(InWeighted(WeightedSeg(R"(,"weight":100000)"), R"({"kind":"user","key":"userKeyA"})"),
            Outcome::kMatch);
  EXPECT_EQ(InWeighted(WeightedSeg(R"(,"weight":null)"), R"({"kind":"user","key":"userKeyA"})"),
            Outcome::kMatch);
}

TEST(SegmentRules, BucketByAttribute) {
  // Bucketed by "team" (value "userKeyC", bucket 0.48) instead of the key (userKeyA, 0.59).
  const auto s = WeightedSeg(R"(,"weight":50000,"bucketBy":"team")");
  EXPECT_EQ(InWeighted(s, R"({"kind":"user","key":"userKeyA","team":"userKeyC"})"),
            Outcome::kMatch);
  EXPECT_EQ(InWeighted(s, R"({"kind":"user","key":"userKeyC","team":"userKeyA"})"),
            Outcome::kNoMatch);
}

TEST(SegmentRules, BucketByMissingAttributeIsBucketZero) {
  // Go keeps this historical quirk: an unusable bucketBy value gives bucket 0, so the rule matches
  // whenever its weight is above zero.
  const auto s = WeightedSeg(R"(,"weight":1,"bucketBy":"team")");
  EXPECT_EQ(InWeighted(s, R"({"kind":"user","key":"userKeyA"})"), Outcome::kMatch);
  EXPECT_EQ(InWeighted(s, R"({"kind":"user","key":"userKeyA","team":true})"), Outcome::kMatch);
  EXPECT_EQ(InWeighted(s, R"({"kind":"user","key":"userKeyA","team":1.5})"), Outcome::kMatch);
  EXPECT_EQ(InWeighted(WeightedSeg(R"(,"weight":0,"bucketBy":"team")"),
                       R"({"kind":"user","key":"userKeyA"})"),
            Outcome::kNoMatch);
}

TEST(SegmentRules, RolloutContextKind) {
  const auto s = WeightedSeg(R"(,"weight":50000,"rolloutContextKind":"org")");
  // Bucketed by the org key: orgKeyA 0.33 is in even though userKeyA 0.59 would be out...
  EXPECT_EQ(InWeighted(s, R"({"kind":"multi","user":{"key":"userKeyA"},"org":{"key":"orgKeyA"}})"),
            Outcome::kMatch);
  // ...and orgKeyD 0.64 is out even though userKeyC 0.48 would be in.
  EXPECT_EQ(InWeighted(s, R"({"kind":"multi","user":{"key":"userKeyC"},"org":{"key":"orgKeyD"}})"),
            Outcome::kNoMatch);
  // A context without that kind never matches the rule, whatever the weight.
  const auto full = WeightedSeg(R"(,"weight":100000,"rolloutContextKind":"org")");
  EXPECT_EQ(InWeighted(full, R"({"kind":"user","key":"userKeyC"})"), Outcome::kNoMatch);
  EXPECT_EQ(InWeighted(full, R"({"kind":"org","key":"orgKeyD"})"), Outcome::kMatch);
}

TEST(SegmentRules, RolloutContextKindMakesBucketByAPath) {
  const auto s = WeightedSeg(R"(,"weight":50000,"rolloutContextKind":"org","bucketBy":"/a/b")");
  EXPECT_EQ(InWeighted(s, R"({"kind":"org","key":"orgKeyD","a":{"b":"orgKeyA"}})"),
            Outcome::kMatch);
  EXPECT_EQ(InWeighted(s, R"({"kind":"org","key":"orgKeyA","a":{"b":"orgKeyD"}})"),
            Outcome::kNoMatch);
}

TEST(SegmentRules, OldUserSecondaryKeyIsPartOfTheBucket) {
  // "seg.salt.userKeyA" is 0.59 (in at 60%), "seg.salt.userKeyA.sec" is 0.92 (out).
  const auto s = WeightedSeg(R"(,"weight":60000)");
  EXPECT_EQ(InWeighted(s, R"({"key":"userKeyA"})"), Outcome::kMatch);
  EXPECT_EQ(InWeighted(s, R"({"key":"userKeyA","secondary":"sec"})"), Outcome::kNoMatch);
}

// ---------------------------------------------------------------------------------------------
// Segment references

TEST(SegmentReferences, MissingSegmentNeverMatches) {
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["nope"]})", kUserU), Outcome::kNoMatch);
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["nope"],"negate":true})", kUserU),
            Outcome::kMatch);
}

TEST(SegmentReferences, DeletedSegmentIsMissing) {
  const auto data =
      FlagData::Build(testing::Items({RuleFlag(R"([{"op":"segmentMatch","values":["s"]}])")}),
                      protocol::ItemSet::FromUnsorted({protocol::MakeTombstone("s", 3)}));
  EXPECT_EQ(OutcomeOf(Eval(*data, "f", kUserU)), Outcome::kNoMatch);
}

TEST(SegmentReferences, AnyListedSegment) {
  const std::vector<std::string> segments = {R"({"key":"a","version":1,"included":["x"]})",
                                             R"({"key":"b","version":1,"included":["u"]})"};
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["a","b"]})", kUserU, segments),
            Outcome::kMatch);
  EXPECT_EQ(
      ClauseOutcome(R"({"op":"segmentMatch","values":["a","b"],"negate":true})", kUserU, segments),
      Outcome::kNoMatch);
  EXPECT_EQ(
      ClauseOutcome(R"({"op":"segmentMatch","values":[5,null,{"k":"b"},"b"]})", kUserU, segments),
      Outcome::kMatch);
}

TEST(SegmentReferences, NestedSegmentMatch) {
  const std::vector<std::string> segments = {
      R"({"key":"outer","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["inner"]}]}]})",
      R"({"key":"inner","version":1,"included":["u"]})"};
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["outer"]})", kUserU, segments),
            Outcome::kMatch);
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["outer"]})",
                          R"({"kind":"user","key":"v"})", segments),
            Outcome::kNoMatch);
}

TEST(SegmentReferences, CycleIsMalformed) {
  const std::vector<std::string> two = {
      R"({"key":"a","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["b"]}]}]})",
      R"({"key":"b","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["a"]}]}]})"};
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["a"]})", kUserU, two), Outcome::kError);
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["b"],"negate":true})", kUserU, two),
            Outcome::kError);
  const std::vector<std::string> self = {
      R"({"key":"a","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["a"]}]}]})"};
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["a"]})", kUserU, self),
            Outcome::kError);
}

TEST(SegmentReferences, CycleBehindAnIncludedKeyIsNotReached) {
  const std::vector<std::string> two = {
      R"({"key":"a","version":1,"included":["u"],)"
      R"("rules":[{"clauses":[{"op":"segmentMatch","values":["b"]}]}]})",
      R"({"key":"b","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["a"]}]}]})"};
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["a"]})", kUserU, two), Outcome::kMatch);
}

TEST(SegmentReferences, SharedSegmentsAreNotACycle) {
  // a → b → d and a → c → d: d is visited twice, on two separate paths.
  const std::vector<std::string> diamond = {
      R"({"key":"a","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["b"]}]},)"
      R"({"clauses":[{"op":"segmentMatch","values":["c"]}]}]})",
      R"({"key":"b","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["d"]}]}]})",
      R"({"key":"c","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["d"]}]}]})",
      R"({"key":"d","version":1,"included":["someone-else"]})"};
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["a"]})", kUserU, diamond),
            Outcome::kNoMatch);
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["d","d","a"]})", kUserU, diamond),
            Outcome::kNoMatch);
  // The same segment in two clauses of one rule, and in two rules.
  const auto data = Data({RuleFlag(R"([{"op":"segmentMatch","values":["d"],"negate":true},)"
                                   R"({"op":"segmentMatch","values":["d"],"negate":true}])")},
                         diamond);
  EXPECT_EQ(OutcomeOf(Eval(*data, "f", kUserU)), Outcome::kMatch);
}

// An all-flags evaluation works out each segment's verdict once and replays it to later flags,
// including that it fails the evaluation or consulted a big segment.
TEST(SegmentReferences, LaterFlagsGetTheSameVerdict) {
  const auto flag = [](std::string key, std::string_view segment) {
    std::string json =
        RuleFlag(R"([{"op":"segmentMatch","values":[")" + std::string(segment) + R"("]}])");
    return json.replace(json.find(R"("key":"f")"), 9, R"("key":")" + key + '"');
  };
  const auto data = Data(
      {flag("cycle1", "a"), flag("cycle2", "a"), flag("big1", "big"), flag("big2", "big"),
       flag("plain1", "s"), flag("plain2", "s")},
      {R"({"key":"a","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["b"]}]}]})",
       R"({"key":"b","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["a"]}]}]})",
       R"({"key":"big","version":1,"unbounded":true,"generation":2,"included":["u"]})",
       Seg(R"("included":["u"])")});
  const boost::json::object all =
      testing::J(EvaluateAll(*data, testing::Ctx(kUserU), {Audience::kServer, true}).ToJson())
          .as_object();
  for (const char* key : {"cycle1", "cycle2"}) {
    EXPECT_TRUE(
        SameJson(all.at(key).at("reason"), R"({"kind":"ERROR","errorKind":"MALFORMED_FLAG"})"))
        << key;
  }
  for (const char* key : {"big1", "big2"}) {
    EXPECT_TRUE(SameJson(all.at(key).at("reason"),
                         R"({"kind":"FALLTHROUGH","bigSegmentsStatus":"NOT_CONFIGURED"})"))
        << key;
  }
  for (const char* key : {"plain1", "plain2"})
    EXPECT_TRUE(SameJson(all.at(key).at("value"), "true")) << key;
}

// ---------------------------------------------------------------------------------------------
// Unbounded (big) segments: flagrelay has no big-segment store, so they never match and the
// reason says NOT_CONFIGURED, as with Go's evaluator when no BigSegmentProvider is configured.

TEST(BigSegments, WithoutGenerationNeverMatchAndSayNotConfigured) {
  const auto data = Data({RuleFlag(R"([{"op":"segmentMatch","values":["big"]}])")},
                         {R"({"key":"big","version":1,"unbounded":true,"generation":null,)"
                          R"("included":["u"]})"});
  EXPECT_TRUE(SameJson(ReasonOf(Eval(*data, "f", kUserU)),
                       R"({"kind":"FALLTHROUGH","bigSegmentsStatus":"NOT_CONFIGURED"})"));
}

TEST(BigSegments, WithGenerationNeverMatchAndSayNotConfigured) {
  const auto data = Data({RuleFlag(R"([{"op":"segmentMatch","values":["big"]}])")},
                         {R"({"key":"big","version":1,"unbounded":true,"generation":2,)"
                          R"("included":["u"]})"});
  const auto result = Eval(*data, "f", kUserU);
  EXPECT_TRUE(SameJson(result,
                       R"({"value":false,"variation":0,"version":1,)"
                       R"("reason":{"kind":"FALLTHROUGH","bigSegmentsStatus":"NOT_CONFIGURED"}})"));
  // Without reasons there is nowhere to put the status.
  EXPECT_TRUE(
      SameJson(Eval(*data, "f", kUserU, false), R"({"value":false,"variation":0,"version":1})"));
}

TEST(BigSegments, NegatedClauseMatchesAndKeepsTheStatus) {
  const auto data = Data({RuleFlag(R"([{"op":"segmentMatch","values":["big"],"negate":true}])")},
                         {R"({"key":"big","version":1,"unbounded":true,"generation":2})"});
  EXPECT_TRUE(SameJson(ReasonOf(Eval(*data, "f", kUserU)),
                       R"({"kind":"RULE_MATCH","ruleIndex":0,"ruleId":"r",)"
                       R"("bigSegmentsStatus":"NOT_CONFIGURED"})"));
}

TEST(BigSegments, StatusStaysWhenALaterRuleMatches) {
  const auto flag =
      R"({"key":"f","version":1,"on":true,"variations":["a","b","c"],"fallthrough":{"variation":0},)"
      R"("rules":[{"id":"big","variation":1,"clauses":[{"op":"segmentMatch","values":["big"]}]},)"
      R"({"id":"name","variation":2,"clauses":[{"attribute":"name","op":"in","values":["Ann"]}]}]})";
  const auto data = Data({flag}, {R"({"key":"big","version":1,"unbounded":true,"generation":2})"});
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU),
                       R"({"value":"c","variation":2,"version":1,"reason":{"kind":"RULE_MATCH",)"
                       R"("ruleIndex":1,"ruleId":"name","bigSegmentsStatus":"NOT_CONFIGURED"}})"));
}

TEST(BigSegments, ContextWithoutTheSegmentKindIsNotAQuery) {
  // Go returns before consulting the big-segment store when the context lacks the segment's kind,
  // so no status is reported.
  const auto data = Data({RuleFlag(R"([{"op":"segmentMatch","values":["big"]}])")},
                         {R"({"key":"big","version":1,"unbounded":true,"generation":2,)"
                          R"("unboundedContextKind":"org"})"});
  EXPECT_TRUE(SameJson(ReasonOf(Eval(*data, "f", kUserU)), R"({"kind":"FALLTHROUGH"})"));
  EXPECT_TRUE(SameJson(ReasonOf(Eval(*data, "f", kOrgO)),
                       R"({"kind":"FALLTHROUGH","bigSegmentsStatus":"NOT_CONFIGURED"})"));
}

TEST(BigSegments, StatusFromAPrerequisiteIsReported) {
  const std::vector<std::string> flags = {
      R"({"key":"p","version":1,"on":true,"variations":[false,true],"fallthrough":{"variation":0},)"
      R"("rules":[{"id":"r","variation":1,"clauses":[{"op":"segmentMatch","values":["big"]}]}]})",
      R"({"key":"f","version":1,"on":true,"variations":["x","y"],"fallthrough":{"variation":1},)"
      R"("offVariation":0,"prerequisites":[{"key":"p","variation":0}]})"};
  const auto data = Data(flags, {R"({"key":"big","version":1,"unbounded":true,"generation":2})"});
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU),
                       R"({"value":"y","variation":1,"version":1,"prerequisites":["p"],)"
                       R"("reason":{"kind":"FALLTHROUGH","bigSegmentsStatus":"NOT_CONFIGURED"}})"));
}

TEST(BigSegments, NestedInARegularSegment) {
  const auto data = Data(
      {RuleFlag(R"([{"op":"segmentMatch","values":["outer"]}])")},
      {R"({"key":"outer","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["big"]}]}]})",
       R"({"key":"big","version":1,"unbounded":true,"generation":7})"});
  EXPECT_TRUE(SameJson(ReasonOf(Eval(*data, "f", kUserU)),
                       R"({"kind":"FALLTHROUGH","bigSegmentsStatus":"NOT_CONFIGURED"})"));
}

TEST(BigSegments, RegularSegmentsSayNothing) {
  const auto data = Data({RuleFlag(R"([{"op":"segmentMatch","values":["s"]}])")},
                         {Seg(R"("unbounded":false,"generation":3)")});
  EXPECT_TRUE(SameJson(ReasonOf(Eval(*data, "f", kUserU)), R"({"kind":"FALLTHROUGH"})"));
}

}  // namespace
}  // namespace flagrelay::eval
