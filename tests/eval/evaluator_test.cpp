// Flag evaluation as ld-relay serves it from `evalx` (go-server-sdk-evaluation v3 semantics):
// result shape, off/fallthrough, prerequisites, targets, rules, rollouts and experiments,
// audience filtering, the Evaluations JSON forms and FlagData rebuilds.

#include "flagrelay/eval/evaluator.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "eval_test_util.hpp"
#include "flagrelay/eval/bucketing.hpp"

namespace flagrelay::eval {
namespace {

namespace json = boost::json;
using testing::Ctx;
using testing::Data;
using testing::Eval;
using testing::Item;
using testing::J;
using testing::ReasonOf;
using testing::SameJson;
using testing::ValueOf;
using testing::VariationOf;

constexpr const char* kMalformed = R"({"kind":"ERROR","errorKind":"MALFORMED_FLAG"})";
constexpr const char* kUserU = R"({"kind":"user","key":"u","name":"Ann"})";

// A flag built from a base (key "f", version 1, on, variations ["a","b","c"], off → 0,
// fallthrough → 0) with `overrides` (a JSON object) replacing or adding top-level members.
std::string Flag(std::string_view overrides = "{}") {
  json::object flag =
      J(R"({"key":"f","version":1,"on":true,"salt":"salt",)"
        R"("variations":["a","b","c"],"offVariation":0,"fallthrough":{"variation":0}})")
          .as_object();
  const json::value extra = J(overrides);
  for (const auto& [name, value] : extra.as_object()) flag[name] = value;
  return json::serialize(flag);
}

// A flag with `key` and `overrides`.
std::string FlagWithKey(std::string_view key, std::string_view overrides = "{}") {
  json::object flag = J(Flag(overrides)).as_object();
  flag["key"] = json::string(key);
  return json::serialize(flag);
}

std::string KeyOf(const std::string& flag) {
  const json::value parsed = J(flag);
  return std::string(parsed.as_object().at("key").as_string());
}

json::value EvalOne(const std::string& flag, std::string_view context = kUserU,
                    bool with_reasons = true) {
  const auto data = Data({flag});
  return Eval(*data, KeyOf(flag), context, with_reasons);
}

// ---------------------------------------------------------------------------------------------
// Off, fallthrough and the result shape

TEST(ResultShape, OffServesTheOffVariation) {
  const auto flag = Flag(R"({"on":false,"offVariation":1,"version":7})");
  EXPECT_TRUE(SameJson(EvalOne(flag), R"({"value":"b","variation":1,"version":7,)"
                                      R"("reason":{"kind":"OFF"}})"));
  EXPECT_TRUE(SameJson(EvalOne(flag, kUserU, false), R"({"value":"b","variation":1,"version":7})"));
}

TEST(ResultShape, OffWithoutOffVariationServesNull) {
  EXPECT_TRUE(SameJson(EvalOne(Flag(R"({"on":false,"offVariation":null})")),
                       R"({"value":null,"variation":null,"version":1,"reason":{"kind":"OFF"}})"));
  json::object no_off = J(Flag(R"({"on":false})")).as_object();
  no_off.erase("offVariation");
  EXPECT_TRUE(SameJson(EvalOne(json::serialize(no_off), kUserU, false),
                       R"({"value":null,"variation":null,"version":1})"));
}

TEST(ResultShape, MissingOnMeansOff) {
  json::object flag = J(Flag(R"({"offVariation":2})")).as_object();
  flag.erase("on");
  EXPECT_TRUE(SameJson(EvalOne(json::serialize(flag)),
                       R"({"value":"c","variation":2,"version":1,"reason":{"kind":"OFF"}})"));
}

TEST(ResultShape, BadOffVariationIsMalformed) {
  for (const char* index : {"3", "-1", "4294967296", "4294967295", "9223372036854775807",
                            "-9223372036854775808", "-4294967296"}) {
    const auto result = EvalOne(Flag(std::string(R"({"on":false,"offVariation":)") + index + "}"));
    EXPECT_TRUE(SameJson(result, std::string(R"({"value":null,"variation":null,"version":1,)") +
                                     R"("reason":)" + kMalformed + "}"))
        << "offVariation " << index;
  }
}

TEST(ResultShape, Fallthrough) {
  EXPECT_TRUE(
      SameJson(EvalOne(Flag(R"({"fallthrough":{"variation":2}})")),
               R"({"value":"c","variation":2,"version":1,"reason":{"kind":"FALLTHROUGH"}})"));
  EXPECT_TRUE(SameJson(EvalOne(Flag(R"({"fallthrough":{"variation":2}})"), kUserU, false),
                       R"({"value":"c","variation":2,"version":1})"));
}

TEST(ResultShape, FallthroughWithoutVariationOrRolloutIsMalformed) {
  for (const char* fallthrough :
       {"{}", R"({"variation":null})", R"({"rollout":null})", R"({"rollout":{}})",
        R"({"rollout":{"variations":[]}})", R"({"variation":null,"rollout":{"variations":[]}})"}) {
    EXPECT_TRUE(SameJson(
        EvalOne(Flag(std::string(R"({"fallthrough":)") + fallthrough + "}")),
        std::string(R"({"value":null,"variation":null,"version":1,"reason":)") + kMalformed + "}"))
        << fallthrough;
  }
  json::object flag = J(Flag()).as_object();
  flag.erase("fallthrough");
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(json::serialize(flag))), kMalformed));
}

TEST(ResultShape, BadFallthroughVariationIsMalformedNotWrapped) {
  for (const char* index : {"3", "-1", "4294967296", "4294967297", "-4294967296",
                            "9223372036854775807", "-9223372036854775808"}) {
    const auto result =
        EvalOne(Flag(std::string(R"({"fallthrough":{"variation":)") + index + "}}"));
    EXPECT_TRUE(SameJson(result, std::string(R"({"value":null,"variation":null,"version":1,)") +
                                     R"("reason":)" + kMalformed + "}"))
        << "fallthrough variation " << index;
  }
}

TEST(ResultShape, UnrepresentableVariationIndexIsNeverServed) {
  // Values no integer type holds: the flag may be rejected as unparsable or give an error result,
  // but it must never serve a variation.
  for (const char* index : {"18446744073709551615", "1e300", "-1e300", "1.5", "\"1\"", "true"}) {
    const auto flag = Flag(std::string(R"({"fallthrough":{"variation":)") + index + "}}");
    const auto data = Data({flag});
    const auto result = EvaluateFlag(*data, "f", Ctx(kUserU), true);
    if (!result) continue;
    const auto parsed = J(*result);
    if (std::string_view(index) == "1.5" && VariationOf(parsed) == json::value(1)) continue;
    EXPECT_TRUE(VariationOf(parsed).is_null()) << index << ": " << *result;
  }
}

TEST(ResultShape, VariationValuesAreServedAsIs) {
  const json::array expected =
      J(R"([null,{"a":[1,2,{"b":null}]},[true,"x"],1.5,-7,"s\"q\u00e9",0,false,""])").as_array();
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto one = Flag(R"({"variations":[null,{"a":[1,2,{"b":null}]},[true,"x"],1.5,-7,)"
                          R"("s\"q\u00e9",0,false,""],"fallthrough":{"variation":)" +
                          std::to_string(i) + "}}");
    const auto result = EvalOne(one, kUserU, false);
    EXPECT_TRUE(testing::JsonEqual(ValueOf(result), expected[i])) << json::serialize(result);
    EXPECT_TRUE(testing::JsonEqual(VariationOf(result), json::value(i))) << i;
  }
}

TEST(ResultShape, MinimalFlags) {
  // Go's defaults: no variations, no offVariation, no fallthrough.
  EXPECT_TRUE(SameJson(EvalOne(R"({"key":"m","version":1})"),
                       R"({"value":null,"variation":null,"version":1,"reason":{"kind":"OFF"}})"));
  EXPECT_TRUE(SameJson(
      EvalOne(R"({"key":"m","version":1,"on":true,"fallthrough":{"variation":0}})"),
      std::string(R"({"value":null,"variation":null,"version":1,"reason":)") + kMalformed + "}"));
  EXPECT_TRUE(SameJson(
      EvalOne(R"({"key":"m","version":1,"on":true,"variations":[],"fallthrough":{"variation":0}})"),
      std::string(R"({"value":null,"variation":null,"version":1,"reason":)") + kMalformed + "}"));
}

TEST(ResultShape, VersionIsTheFlagVersion) {
  EXPECT_TRUE(SameJson(EvalOne(Flag(R"({"version":42})"), kUserU, false),
                       R"({"value":"a","variation":0,"version":42})"));
}

TEST(ResultShape, MissingFlagIsNullopt) {
  const auto data = Data({Flag()});
  EXPECT_EQ(EvaluateFlag(*data, "nope", Ctx(kUserU), true), std::nullopt);
  EXPECT_EQ(EvaluateFlag(*data, "", Ctx(kUserU), false), std::nullopt);
}

TEST(ResultShape, WithAndWithoutReasonsDifferOnlyByReason) {
  const auto flag = Flag(R"({"rules":[{"id":"r1","variation":1,"clauses":[]}]})");
  auto with = EvalOne(flag);
  const auto without = EvalOne(flag, kUserU, false);
  EXPECT_TRUE(SameJson(ReasonOf(with), R"({"kind":"RULE_MATCH","ruleIndex":0,"ruleId":"r1"})"));
  with.as_object().erase("reason");
  EXPECT_TRUE(testing::JsonEqual(with, without)) << json::serialize(without);
}

// ---------------------------------------------------------------------------------------------
// trackEvents, trackReason, debugEventsUntilDate

TEST(Tracking, TrackEventsOnlyWhenSet) {
  EXPECT_TRUE(SameJson(EvalOne(Flag(R"({"trackEvents":true})"), kUserU, false),
                       R"({"value":"a","variation":0,"version":1,"trackEvents":true})"));
  EXPECT_TRUE(SameJson(EvalOne(Flag(R"({"trackEvents":false})"), kUserU, false),
                       R"({"value":"a","variation":0,"version":1})"));
  // Also for off flags and errors.
  EXPECT_TRUE(SameJson(EvalOne(Flag(R"({"trackEvents":true,"on":false})"), kUserU, false),
                       R"({"value":"a","variation":0,"version":1,"trackEvents":true})"));
  EXPECT_TRUE(SameJson(EvalOne(Flag(R"({"trackEvents":true,"fallthrough":{"variation":9}})")),
                       std::string(R"({"value":null,"variation":null,"version":1,)") +
                           R"("trackEvents":true,"reason":)" + kMalformed + "}"));
}

TEST(Tracking, DebugEventsUntilDateOnlyWhenNonZero) {
  EXPECT_TRUE(SameJson(EvalOne(Flag(R"({"debugEventsUntilDate":1700000000000})"), kUserU, false),
                       R"({"value":"a","variation":0,"version":1,)"
                       R"("debugEventsUntilDate":1700000000000})"));
  for (const char* none : {"0", "null"}) {
    EXPECT_TRUE(SameJson(
        EvalOne(Flag(std::string(R"({"debugEventsUntilDate":)") + none + "}"), kUserU, false),
        R"({"value":"a","variation":0,"version":1})"))
        << none;
  }
}

// Found by fuzz_items: a date past 64-bit milliseconds was converted with undefined behaviour.
TEST(Tracking, DebugEventsUntilDateBeyondItsRangeIsTheLastOne) {
  for (const char* date : {"18446744073709551616", "2e60", "1.7976931348623157e308"}) {
    EXPECT_TRUE(SameJson(
        EvalOne(Flag(std::string(R"({"debugEventsUntilDate":)") + date + "}"), kUserU, false),
        R"({"value":"a","variation":0,"version":1,)"
        R"("debugEventsUntilDate":18446744073709551615})"))
        << date;
  }
}

TEST(Tracking, LegacyTrackEventsFallthroughIsAnExperiment) {
  // Go's isExperiment: trackEventsFallthrough on a FALLTHROUGH result (and a matched rule's
  // trackEvents) make the result "experiment": trackEvents, trackReason and the reason are served.
  const auto flag = Flag(R"({"trackEventsFallthrough":true})");
  EXPECT_TRUE(SameJson(EvalOne(flag, kUserU, false),
                       R"({"value":"a","variation":0,"version":1,"trackEvents":true,)"
                       R"("trackReason":true,"reason":{"kind":"FALLTHROUGH"}})"));
  // Not when the result came from a rule.
  const auto ruled =
      Flag(R"({"trackEventsFallthrough":true,"rules":[{"variation":1,"clauses":[]}]})");
  EXPECT_TRUE(
      SameJson(EvalOne(ruled, kUserU, false), R"({"value":"b","variation":1,"version":1})"));
}

TEST(Tracking, LegacyRuleTrackEventsIsAnExperiment) {
  const auto flag = Flag(
      R"({"rules":[{"id":"no","variation":1,"trackEvents":false,"clauses":[{"attribute":"name","op":"in","values":["Bob"]}]},)"
      R"({"id":"yes","variation":2,"trackEvents":true,"clauses":[{"attribute":"name","op":"in","values":["Ann"]}]}]})");
  EXPECT_TRUE(SameJson(
      EvalOne(flag, kUserU, false),
      R"({"value":"c","variation":2,"version":1,"trackEvents":true,)"
      R"("trackReason":true,"reason":{"kind":"RULE_MATCH","ruleIndex":1,"ruleId":"yes"}})"));
  EXPECT_TRUE(SameJson(EvalOne(flag, R"({"kind":"user","key":"b","name":"Bob"})", false),
                       R"({"value":"b","variation":1,"version":1})"));
  EXPECT_TRUE(SameJson(EvalOne(flag, R"({"kind":"user","key":"c","name":"Cy"})", false),
                       R"({"value":"a","variation":0,"version":1})"));
}

// ---------------------------------------------------------------------------------------------
// Prerequisites

// Flag `key` with prerequisites `prereqs` (JSON array); off → "off", fallthrough → "on".
std::string Merge(std::string base, std::string_view overrides) {
  json::object object = J(base).as_object();
  const json::value extra = J(overrides);
  for (const auto& [name, value] : extra.as_object()) object[name] = value;
  return json::serialize(object);
}

std::string PrereqFlag(std::string_view key, std::string_view prereqs,
                       std::string_view overrides = "{}") {
  return Merge(std::string(R"({"key":")") + std::string(key) +
                   R"(","version":1,"on":true,"variations":["off","on"],"offVariation":0,)"
                   R"("fallthrough":{"variation":1},"prerequisites":)" +
                   std::string(prereqs) + "}",
               overrides);
}

// A prerequisite target: variations ["x","y"], fallthrough → `variation`.
std::string Target(std::string_view key, std::string_view fallthrough_variation,
                   std::string_view overrides = "{}") {
  return Merge(std::string(R"({"key":")") + std::string(key) +
                   R"(","version":1,"on":true,"variations":["x","y"],"offVariation":1,)"
                   R"("fallthrough":{"variation":)" +
                   std::string(fallthrough_variation) + "}}",
               overrides);
}

std::string Failed(std::string_view key, std::string_view prerequisites_json) {
  std::string text = R"({"value":"off","variation":0,"version":1,)";
  if (!prerequisites_json.empty())
    text += R"("prerequisites":)" + std::string(prerequisites_json) + ",";
  text +=
      R"("reason":{"kind":"PREREQUISITE_FAILED","prerequisiteKey":")" + std::string(key) + "\"}}";
  return text;
}

TEST(Prerequisites, MetPrerequisiteContinues) {
  const auto data = Data({PrereqFlag("f", R"([{"key":"p","variation":1}])"), Target("p", "1")});
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU),
                       R"({"value":"on","variation":1,"version":1,"prerequisites":["p"],)"
                       R"("reason":{"kind":"FALLTHROUGH"}})"));
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU, false),
                       R"({"value":"on","variation":1,"version":1,"prerequisites":["p"]})"));
  // The prerequisite's own result lists nothing.
  EXPECT_TRUE(
      SameJson(Eval(*data, "p", kUserU, false), R"({"value":"y","variation":1,"version":1})"));
}

TEST(Prerequisites, MissingPrerequisiteFails) {
  const auto data = Data({PrereqFlag("f", R"([{"key":"nope","variation":1}])")});
  // Go does not evaluate (or report) a prerequisite that does not exist.
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU), Failed("nope", "")));
}

TEST(Prerequisites, DeletedPrerequisiteIsMissing) {
  std::vector<protocol::ItemPtr> flags = {
      testing::Item(PrereqFlag("f", R"([{"key":"p","variation":1}])")),
      protocol::MakeTombstone("p", 5)};
  const auto data = FlagData::Build(protocol::ItemSet::FromUnsorted(flags), {});
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU), Failed("p", "")));
}

TEST(Prerequisites, UnparsablePrerequisiteFails) {
  // An unparsable flag evaluates to MALFORMED_FLAG (evaluator.hpp), so as a prerequisite it is
  // evaluated and not met.
  const auto data = Data({PrereqFlag("f", R"([{"key":"p","variation":1}])"),
                          R"({"key":"p","version":1,"on":true,"variations":5})"});
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU), Failed("p", R"(["p"])")));
}

TEST(Prerequisites, OffPrerequisiteFailsEvenWithTheRightOffVariation) {
  const auto data = Data(
      {PrereqFlag("f", R"([{"key":"p","variation":1}])"), Target("p", "1", R"({"on":false})")});
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU), Failed("p", R"(["p"])")));
}

TEST(Prerequisites, WrongVariationFails) {
  const auto data = Data({PrereqFlag("f", R"([{"key":"p","variation":1}])"), Target("p", "0")});
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU), Failed("p", R"(["p"])")));
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU, false),
                       R"({"value":"off","variation":0,"version":1,"prerequisites":["p"]})"));
}

TEST(Prerequisites, FailedWithoutOffVariationServesNull) {
  const auto data =
      Data({PrereqFlag("f", R"([{"key":"p","variation":1}])", R"({"offVariation":null})"),
            Target("p", "0")});
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU),
                       R"({"value":null,"variation":null,"version":1,"prerequisites":["p"],)"
                       R"("reason":{"kind":"PREREQUISITE_FAILED","prerequisiteKey":"p"}})"));
}

TEST(Prerequisites, PrerequisiteWithABadVariationIndexFailsNotErrors) {
  // Go: the prerequisite's own result is an error (no variation), so the prerequisite is not met;
  // the dependent flag is PREREQUISITE_FAILED, not an error.
  const auto data = Data({PrereqFlag("f", R"([{"key":"p","variation":1}])"), Target("p", "7")});
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU), Failed("p", R"(["p"])")));
  EXPECT_TRUE(SameJson(ReasonOf(Eval(*data, "p", kUserU)), kMalformed));
}

TEST(Prerequisites, PrerequisiteWithAMalformedRuleMakesTheFlagMalformed) {
  // Go (evaluator.go): an error from a prerequisite's rules stops the whole evaluation with
  // MALFORMED_FLAG, unlike a bad variation index.
  const auto data = Data(
      {PrereqFlag("f", R"([{"key":"p","variation":1}])"),
       Target(
           "p", "1",
           R"({"rules":[{"variation":1,"clauses":[{"attribute":"","op":"in","values":["x"]}]}]})")});
  EXPECT_TRUE(SameJson(
      Eval(*data, "f", kUserU),
      std::string(R"({"value":null,"variation":null,"version":1,"reason":)") + kMalformed + "}"));
}

TEST(Prerequisites, PrerequisiteVariationOutOfRangeNeverMatches) {
  for (const char* variation : {"-1", "2", "4294967297", "9223372036854775807"}) {
    const auto data =
        Data({PrereqFlag("f", std::string(R"([{"key":"p","variation":)") + variation + "}]"),
              Target("p", "1")});
    EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU), Failed("p", R"(["p"])"))) << variation;
  }
}

TEST(Prerequisites, EvaluatedInOrderStoppingAtTheFirstFailure) {
  const auto data = Data(
      {PrereqFlag("first-fails", R"([{"key":"no","variation":1},{"key":"yes","variation":1}])"),
       PrereqFlag("second-fails", R"([{"key":"yes","variation":1},{"key":"no","variation":1}])"),
       PrereqFlag("both-ok", R"([{"key":"yes","variation":1},{"key":"yes2","variation":1}])"),
       Target("yes", "1"), Target("yes2", "1"), Target("no", "0")});
  EXPECT_TRUE(SameJson(Eval(*data, "first-fails", kUserU), Failed("no", R"(["no"])")));
  EXPECT_TRUE(SameJson(Eval(*data, "second-fails", kUserU), Failed("no", R"(["yes","no"])")));
  EXPECT_TRUE(SameJson(Eval(*data, "both-ok", kUserU),
                       R"({"value":"on","variation":1,"version":1,"prerequisites":["yes","yes2"],)"
                       R"("reason":{"kind":"FALLTHROUGH"}})"));
}

TEST(Prerequisites, OffFlagDoesNotEvaluatePrerequisites) {
  const auto data = Data(
      {PrereqFlag("f", R"([{"key":"p","variation":1}])", R"({"on":false})"), Target("p", "1")});
  EXPECT_TRUE(SameJson(Eval(*data, "f", kUserU),
                       R"({"value":"off","variation":0,"version":1,"reason":{"kind":"OFF"}})"));
}

TEST(Prerequisites, ChainOfThree) {
  // a → b → c; only direct prerequisites are listed.
  auto data = Data({PrereqFlag("a", R"([{"key":"b","variation":1}])"),
                    PrereqFlag("b", R"([{"key":"c","variation":1}])"), Target("c", "1")});
  EXPECT_TRUE(SameJson(Eval(*data, "a", kUserU),
                       R"({"value":"on","variation":1,"version":1,"prerequisites":["b"],)"
                       R"("reason":{"kind":"FALLTHROUGH"}})"));
  EXPECT_TRUE(SameJson(Eval(*data, "b", kUserU, false),
                       R"({"value":"on","variation":1,"version":1,"prerequisites":["c"]})"));
  data = Data({PrereqFlag("a", R"([{"key":"b","variation":1}])"),
               PrereqFlag("b", R"([{"key":"c","variation":1}])"), Target("c", "0")});
  EXPECT_TRUE(SameJson(Eval(*data, "a", kUserU), Failed("b", R"(["b"])")));
  EXPECT_TRUE(SameJson(Eval(*data, "b", kUserU), Failed("c", R"(["c"])")));
}

TEST(Prerequisites, SharedPrerequisitesAreNotACycle) {
  const auto data =
      Data({PrereqFlag("a", R"([{"key":"b","variation":1},{"key":"c","variation":1}])"),
            PrereqFlag("b", R"([{"key":"d","variation":1}])"),
            PrereqFlag("c", R"([{"key":"d","variation":1}])"), Target("d", "1")});
  EXPECT_TRUE(SameJson(Eval(*data, "a", kUserU, false),
                       R"({"value":"on","variation":1,"version":1,"prerequisites":["b","c"]})"));
  const auto twice =
      Data({PrereqFlag("a", R"([{"key":"d","variation":1},{"key":"d","variation":1}])"),
            Target("d", "1")});
  EXPECT_TRUE(SameJson(Eval(*twice, "a", kUserU, false),
                       R"({"value":"on","variation":1,"version":1,"prerequisites":["d","d"]})"));
}

TEST(Prerequisites, CycleIsMalformed) {
  const auto malformed =
      std::string(R"({"value":null,"variation":null,"version":1,"reason":)") + kMalformed + "}";
  const auto two = Data({PrereqFlag("a", R"([{"key":"b","variation":1}])"),
                         PrereqFlag("b", R"([{"key":"a","variation":1}])")});
  EXPECT_TRUE(SameJson(Eval(*two, "a", kUserU), malformed));
  EXPECT_TRUE(SameJson(Eval(*two, "b", kUserU), malformed));
  const auto self = Data({PrereqFlag("a", R"([{"key":"a","variation":1}])")});
  EXPECT_TRUE(SameJson(Eval(*self, "a", kUserU), malformed));
  const auto three = Data({PrereqFlag("a", R"([{"key":"b","variation":1}])"),
                           PrereqFlag("b", R"([{"key":"c","variation":1}])"),
                           PrereqFlag("c", R"([{"key":"a","variation":1}])")});
  for (const char* key : {"a", "b", "c"})
    EXPECT_TRUE(SameJson(Eval(*three, key, kUserU), malformed)) << key;
}

TEST(Prerequisites, CycleBehindAFailedPrerequisiteIsNotReached) {
  const auto data =
      Data({PrereqFlag("a", R"([{"key":"no","variation":1},{"key":"b","variation":1}])"),
            PrereqFlag("b", R"([{"key":"a","variation":1}])"), Target("no", "0")});
  EXPECT_TRUE(SameJson(Eval(*data, "a", kUserU), Failed("no", R"(["no"])")));
}

TEST(Prerequisites, DeepChainDoesNotOverflow) {
  std::vector<std::string> flags;
  constexpr int kDepth = 200;
  for (int i = 0; i < kDepth; ++i) {
    flags.push_back(PrereqFlag("f" + std::to_string(i),
                               R"([{"key":"f)" + std::to_string(i + 1) + R"(","variation":1}])"));
  }
  flags.push_back(Target("f" + std::to_string(kDepth), "1"));
  const auto data = Data(flags);
  EXPECT_TRUE(SameJson(Eval(*data, "f0", kUserU, false),
                       R"({"value":"on","variation":1,"version":1,"prerequisites":["f1"]})"));
}

// ---------------------------------------------------------------------------------------------
// Targets

TEST(Targets, UserTargets) {
  const auto flag =
      Flag(R"({"targets":[{"variation":1,"values":["x","u"]},{"variation":2,"values":["u","v"]}],)"
           R"("rules":[{"variation":0,"clauses":[]}]})");
  EXPECT_TRUE(
      SameJson(EvalOne(flag),
               R"({"value":"b","variation":1,"version":1,"reason":{"kind":"TARGET_MATCH"}})"));
  EXPECT_TRUE(
      SameJson(EvalOne(flag, R"({"kind":"user","key":"v"})"),
               R"({"value":"c","variation":2,"version":1,"reason":{"kind":"TARGET_MATCH"}})"));
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(flag, R"({"kind":"user","key":"w"})")),
                       R"({"kind":"RULE_MATCH","ruleIndex":0})"));
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(flag, R"({"key":"u"})")), R"({"kind":"TARGET_MATCH"})"));
  EXPECT_TRUE(
      SameJson(ReasonOf(EvalOne(flag, R"({"kind":"multi","org":{"key":"o"},"user":{"key":"v"}})")),
               R"({"kind":"TARGET_MATCH"})"));
  // An org with the same key is not a user.
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(flag, R"({"kind":"org","key":"u"})")),
                       R"({"kind":"RULE_MATCH","ruleIndex":0})"));
}

TEST(Targets, ContextTargetsByKind) {
  const auto flag = Flag(R"({"contextTargets":[{"contextKind":"org","variation":2,"values":["o"]},)"
                         R"({"contextKind":"user","variation":1,"values":["u"]}]})");
  EXPECT_TRUE(
      SameJson(EvalOne(flag, R"({"kind":"org","key":"o"})"),
               R"({"value":"c","variation":2,"version":1,"reason":{"kind":"TARGET_MATCH"}})"));
  EXPECT_TRUE(SameJson(ValueOf(EvalOne(flag, R"({"kind":"org","key":"u"})")), R"("a")"));
  EXPECT_TRUE(SameJson(ValueOf(EvalOne(flag, kUserU)), R"("b")"));
  // Order of contextTargets decides for a multi-kind context matching two.
  EXPECT_TRUE(
      SameJson(ValueOf(EvalOne(flag, R"({"kind":"multi","user":{"key":"u"},"org":{"key":"o"}})")),
               R"("c")"));
}

TEST(Targets, UserPlaceholderInContextTargetsDefersToTargets) {
  // LaunchDarkly writes user targets to `targets` and puts an empty user entry in contextTargets
  // to fix their order; Go only looks at `targets` through such placeholders.
  const auto flag =
      Flag(R"({"targets":[{"variation":1,"values":["u1"]},{"variation":2,"values":["u2"]}],)"
           R"("contextTargets":[{"contextKind":"org","variation":2,"values":["o"]},)"
           R"({"contextKind":"user","variation":1,"values":[]}]})");
  EXPECT_TRUE(
      SameJson(EvalOne(flag, R"({"kind":"user","key":"u1"})"),
               R"({"value":"b","variation":1,"version":1,"reason":{"kind":"TARGET_MATCH"}})"));
  // u2's target has no placeholder, so it is not consulted.
  EXPECT_TRUE(
      SameJson(EvalOne(flag, R"({"kind":"user","key":"u2"})"),
               R"({"value":"a","variation":0,"version":1,"reason":{"kind":"FALLTHROUGH"}})"));
  // The org entry comes first.
  EXPECT_TRUE(
      SameJson(ValueOf(EvalOne(flag, R"({"kind":"multi","user":{"key":"u1"},"org":{"key":"o"}})")),
               R"("c")"));
  // A placeholder without contextKind is a user placeholder too.
  const auto implicit = Flag(R"({"targets":[{"variation":2,"values":["u2"]}],)"
                             R"("contextTargets":[{"variation":2,"values":[]}]})");
  EXPECT_TRUE(SameJson(ValueOf(EvalOne(implicit, R"({"kind":"user","key":"u2"})")), R"("c")"));
}

// An evaluation looks up its context's keys in one index of every flag's targets.
TEST(Targets, EachFlagKeepsItsOwnTargetsAndOrder) {
  const auto data = Data({
      FlagWithKey("t1",
                  R"({"targets":[{"variation":1,"values":["u"]},{"variation":2,"values":["u"]}]})"),
      FlagWithKey("t2",
                  R"({"targets":[{"variation":2,"values":["u"]},{"variation":1,"values":["u"]}]})"),
      FlagWithKey("t3", R"({"targets":[{"variation":1,"values":["v"]}]})"),
      FlagWithKey("t4",
                  R"({"contextTargets":[{"contextKind":"org","variation":2,"values":["u"]}]})"),
      FlagWithKey("t5", R"({"targets":[{"variation":1,"values":["u"]}],)"
                        R"("contextTargets":[{"contextKind":"org","variation":2,"values":["u"]},)"
                        R"({"contextKind":"user","variation":1,"values":[]}]})"),
      FlagWithKey("t6", R"({"targets":[{"variation":2,"values":["u"]}],)"
                        R"("contextTargets":[{"contextKind":"user","variation":1,"values":[]}]})"),
  });
  const auto values = [&](std::string_view context) {
    const json::object all =
        J(EvaluateAll(*data, Ctx(context), {Audience::kServer, false}).ToJson()).as_object();
    std::string out;
    for (const char* key : {"t1", "t2", "t3", "t4", "t5", "t6"})
      out += std::string(all.at(key).at("value").as_string()) + " ";
    return out;
  };
  EXPECT_EQ(values(kUserU), "b c a a b a ");
  EXPECT_EQ(values(R"({"kind":"user","key":"v"})"), "a a b a a a ");
  EXPECT_EQ(values(R"({"kind":"org","key":"u"})"), "a a a c c a ");
  EXPECT_EQ(values(R"({"kind":"multi","user":{"key":"u"},"org":{"key":"u"}})"), "b c a c c a ");
}

TEST(Targets, BadTargetVariationIsMalformedOnlyWhenMatched) {
  const auto flag = Flag(R"({"targets":[{"variation":9,"values":["u"]}]})");
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(flag)), kMalformed));
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(flag, R"({"kind":"user","key":"v"})")),
                       R"({"kind":"FALLTHROUGH"})"));
}

TEST(Targets, TargetsComeAfterPrerequisites) {
  const auto data = Data({PrereqFlag("f", R"([{"key":"p","variation":1}])",
                                     R"({"targets":[{"variation":1,"values":["u"]}]})"),
                          Target("p", "0")});
  EXPECT_TRUE(SameJson(ReasonOf(Eval(*data, "f", kUserU)),
                       R"({"kind":"PREREQUISITE_FAILED","prerequisiteKey":"p"})"));
}

// ---------------------------------------------------------------------------------------------
// Rules

TEST(Rules, FirstMatchingRuleWins) {
  const auto flag = Flag(
      R"({"rules":[)"
      R"({"id":"bob","variation":1,"clauses":[{"attribute":"name","op":"in","values":["Bob"]}]},)"
      R"({"id":"ann","variation":2,"clauses":[{"attribute":"name","op":"in","values":["Ann"]}]},)"
      R"({"id":"all","variation":1,"clauses":[]}]})");
  EXPECT_TRUE(SameJson(
      EvalOne(flag),
      R"({"value":"c","variation":2,"version":1,"reason":{"kind":"RULE_MATCH","ruleIndex":1,"ruleId":"ann"}})"));
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(flag, R"({"kind":"user","key":"x","name":"Cy"})")),
                       R"({"kind":"RULE_MATCH","ruleIndex":2,"ruleId":"all"})"));
}

TEST(Rules, RuleIdOmittedWhenEmpty) {
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(Flag(R"({"rules":[{"variation":1,"clauses":[]}]})"))),
                       R"({"kind":"RULE_MATCH","ruleIndex":0})"));
  EXPECT_TRUE(
      SameJson(ReasonOf(EvalOne(Flag(R"({"rules":[{"id":"","variation":1,"clauses":[]}]})"))),
               R"({"kind":"RULE_MATCH","ruleIndex":0})"));
}

TEST(Rules, RuleWithoutVariationOrRolloutIsMalformed) {
  EXPECT_TRUE(
      SameJson(ReasonOf(EvalOne(Flag(R"({"rules":[{"id":"r","clauses":[]}]})"))), kMalformed));
  EXPECT_TRUE(SameJson(
      ReasonOf(EvalOne(Flag(R"({"rules":[{"id":"r","rollout":{"variations":[]},"clauses":[]}]})"))),
      kMalformed));
  // ... but only when it matches.
  EXPECT_TRUE(SameJson(
      ReasonOf(EvalOne(Flag(
          R"({"rules":[{"id":"r","clauses":[{"attribute":"name","op":"in","values":["Bob"]}]}]})"))),
      R"({"kind":"FALLTHROUGH"})"));
}

TEST(Rules, BadRuleVariationIsMalformed) {
  EXPECT_TRUE(SameJson(
      EvalOne(Flag(R"({"rules":[{"id":"r","variation":3,"clauses":[]}]})")),
      std::string(R"({"value":null,"variation":null,"version":1,"reason":)") + kMalformed + "}"));
}

TEST(Rules, MalformedEarlierRuleStopsEvaluation) {
  const auto flag = Flag(
      R"({"rules":[{"id":"bad","variation":1,"clauses":[{"attribute":"","op":"in","values":["x"]}]},)"
      R"({"id":"all","variation":2,"clauses":[]}]})");
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(flag)), kMalformed));
  const auto later =
      Flag(R"({"rules":[{"id":"all","variation":2,"clauses":[]},)"
           R"({"id":"bad","variation":1,"clauses":[{"attribute":"","op":"in","values":["x"]}]}]})");
  EXPECT_TRUE(
      SameJson(ReasonOf(EvalOne(later)), R"({"kind":"RULE_MATCH","ruleIndex":0,"ruleId":"all"})"));
}

// ---------------------------------------------------------------------------------------------
// Rollouts and experiments. Reference buckets for flag "hashKey", salt "saltyA" (LaunchDarkly's
// SDK test vectors): userKeyA 0.42157587, userKeyB 0.6708485, userKeyC 0.10343106; seed 61:
// userKeyA 0.09801207, userKeyB 0.14483777. Computed here: "33333" 0.5477, "-11" 0.3704,
// "userKeyA.sec" 0.6795, "userKeyB.sec" 0.4119, orgKeyA 0.9479.

TEST(Rollouts, BucketVectorsAreWhatTheseTestsAssume) {
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyA", std::nullopt), 0.42157587, 1e-7);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyB", std::nullopt), 0.6708485, 1e-7);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyC", std::nullopt), 0.10343106, 1e-7);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "33333", std::nullopt), 0.5477, 1e-4);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "-11", std::nullopt), 0.3704, 1e-4);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyA.sec", std::nullopt), 0.6795, 1e-4);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyB.sec", std::nullopt), 0.4119, 1e-4);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "orgKeyA", std::nullopt), 0.9479, 1e-4);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyA", 61), 0.09801207, 1e-7);
  EXPECT_NEAR(BucketValue("hashKey", "saltyA", "userKeyB", 61), 0.14483777, 1e-7);
}

// Flag "hashKey"/"saltyA" whose fallthrough is `rollout`: variations v0 [0, .2), v1 [.2, .5),
// v2 [.5, 1) unless the rollout says otherwise.
std::string RolloutFlag(std::string_view rollout_members, std::string_view weights = "") {
  const std::string variations =
      weights.empty() ? R"([{"variation":0,"weight":20000},{"variation":1,"weight":30000},)"
                        R"({"variation":2,"weight":50000}])"
                      : std::string(weights);
  return std::string(R"({"key":"hashKey","version":1,"on":true,"salt":"saltyA",)") +
         R"("variations":["v0","v1","v2"],"offVariation":0,"fallthrough":{"rollout":{"variations":)" +
         variations + std::string(rollout_members) + "}}}";
}

std::string Served(const std::string& flag, std::string_view context) {
  const auto value = ValueOf(EvalOne(flag, context));
  return value.is_string() ? std::string(value.get_string()) : json::serialize(value);
}

TEST(Rollouts, BucketsByKey) {
  const auto flag = RolloutFlag("");
  EXPECT_TRUE(
      SameJson(EvalOne(flag, R"({"kind":"user","key":"userKeyA"})"),
               R"({"value":"v1","variation":1,"version":1,"reason":{"kind":"FALLTHROUGH"}})"));
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyB"})"), "v2");
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyC"})"), "v0");
  EXPECT_EQ(Served(flag, R"({"key":"userKeyA"})"), "v1");
  EXPECT_EQ(Served(flag, R"({"kind":"multi","org":{"key":"userKeyC"},"user":{"key":"userKeyB"}})"),
            "v2");
  EXPECT_EQ(Served(RolloutFlag(R"(,"kind":"rollout")"), R"({"kind":"user","key":"userKeyB"})"),
            "v2");
}

TEST(Rollouts, InRules) {
  const auto flag = std::string(
      R"({"key":"hashKey","version":1,"on":true,"salt":"saltyA","variations":["v0","v1","v2"],)"
      R"("fallthrough":{"variation":0},"rules":[{"id":"r","clauses":[],"rollout":{"variations":[)"
      R"({"variation":0,"weight":20000},{"variation":1,"weight":30000},{"variation":2,"weight":50000}]}}]})");
  EXPECT_TRUE(SameJson(
      EvalOne(flag, R"({"kind":"user","key":"userKeyB"})"),
      R"({"value":"v2","variation":2,"version":1,"reason":{"kind":"RULE_MATCH","ruleIndex":0,"ruleId":"r"}})"));
}

TEST(Rollouts, SeedReplacesKeyAndSalt) {
  const auto flag = RolloutFlag(
      R"(,"seed":61)", R"([{"variation":0,"weight":12000},{"variation":1,"weight":88000}])");
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyA"})"), "v0");
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyB"})"), "v1");
}

TEST(Rollouts, BucketByAttribute) {
  EXPECT_EQ(Served(RolloutFlag(R"(,"bucketBy":"team")"),
                   R"({"kind":"user","key":"userKeyB","team":"userKeyC"})"),
            "v0");
  EXPECT_EQ(Served(RolloutFlag(R"(,"bucketBy":"key")"), R"({"kind":"user","key":"userKeyB"})"),
            "v2");
  EXPECT_EQ(Served(RolloutFlag(R"(,"bucketBy":"name")"),
                   R"({"kind":"user","key":"userKeyB","name":"userKeyA"})"),
            "v1");
  EXPECT_EQ(Served(RolloutFlag(R"(,"bucketBy":"team")"),
                   R"({"key":"userKeyB","custom":{"team":"userKeyC"}})"),
            "v0");
  EXPECT_EQ(
      Served(RolloutFlag(R"(,"bucketBy":"email")"), R"({"key":"userKeyB","email":"userKeyA"})"),
      "v1");
}

TEST(Rollouts, BucketByNumbers) {
  const auto flag = RolloutFlag(R"(,"bucketBy":"n")");
  // Integers hash as their decimal text; key userKeyB alone would give v2 or (bucket 0) v0.
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyC","n":33333})"), "v2");
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyC","n":33333.0})"), "v2");
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyC","n":"33333"})"), "v2");
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyB","n":-11})"), "v1");
  // Anything else is bucket 0: the first variation.
  for (const char* n :
       {"33.5", "true", R"(["userKeyB"])", R"({"a":"userKeyB"})", "null", "1e300"}) {
    EXPECT_EQ(Served(flag, std::string(R"({"kind":"user","key":"userKeyB","n":)") + n + "}"), "v0")
        << n;
  }
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyB"})"), "v0");
}

TEST(Rollouts, ContextKind) {
  const auto org = RolloutFlag(R"(,"contextKind":"org")");
  EXPECT_EQ(Served(org, R"({"kind":"multi","user":{"key":"userKeyB"},"org":{"key":"userKeyA"}})"),
            "v1");
  EXPECT_EQ(Served(org, R"({"kind":"org","key":"userKeyB"})"), "v2");
  // Without an org, bucket 0 (not the user key's v2).
  EXPECT_EQ(Served(org, R"({"kind":"user","key":"userKeyB"})"), "v0");
  EXPECT_EQ(Served(RolloutFlag(R"(,"contextKind":"user")"),
                   R"({"kind":"multi","user":{"key":"userKeyB"},"org":{"key":"userKeyA"}})"),
            "v2");
}

TEST(Rollouts, BucketByIsAPathOnlyWithContextKind) {
  EXPECT_EQ(Served(RolloutFlag(R"(,"contextKind":"user","bucketBy":"/a/b")"),
                   R"({"kind":"user","key":"userKeyB","a":{"b":"userKeyA"}})"),
            "v1");
  EXPECT_EQ(Served(RolloutFlag(R"(,"bucketBy":"/a")"),
                   R"({"kind":"user","key":"userKeyB","/a":"userKeyA"})"),
            "v1");
  EXPECT_EQ(Served(RolloutFlag(R"(,"contextKind":"org","bucketBy":"/a~1b")"),
                   R"({"kind":"org","key":"userKeyB","a/b":"userKeyA"})"),
            "v1");
}

TEST(Rollouts, InvalidBucketByPathIsMalformed) {
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(RolloutFlag(R"(,"contextKind":"user","bucketBy":"/")"),
                                        R"({"kind":"user","key":"userKeyB"})")),
                       kMalformed));
  // An empty bucketBy means "key".
  EXPECT_EQ(Served(RolloutFlag(R"(,"bucketBy":"")"), R"({"kind":"user","key":"userKeyB"})"), "v2");
}

TEST(Rollouts, BucketsAndWeightsAreDoublesNotGoFloat32) {
  // flagrelay buckets in double precision, as the Node, C++ and Python SDKs do. Go (and so
  // ld-relay) uses float32 for the bucket and the weight sum, which puts these users, whose buckets
  // lie within float32 rounding of the boundary, in v1 instead (docs/evaluation.md).
  struct Case {
    const char* key;
    int weight;
  };
  for (const Case c : {Case{"user188", 90125}, Case{"user1995", 88802}, Case{"user3612", 13123}}) {
    EXPECT_LT(BucketValue("hashKey", "saltyA", c.key, std::nullopt), c.weight / 100000.0) << c.key;
    const auto flag = RolloutFlag("", R"([{"variation":0,"weight":)" + std::to_string(c.weight) +
                                          R"(},{"variation":1,"weight":)" +
                                          std::to_string(100000 - c.weight) + "}]");
    EXPECT_EQ(Served(flag, std::string(R"({"kind":"user","key":")") + c.key + "\"}"), "v0")
        << c.key;
  }
}

TEST(Rollouts, MissingSaltHashesAsEmpty) {
  // "hashKey..userKeyA": place the boundary either side of that bucket.
  const double bucket = BucketValue("hashKey", "", "userKeyA", std::nullopt);
  const int below = static_cast<int>(bucket * 100000) - 50;
  const int above = static_cast<int>(bucket * 100000) + 50;
  for (const int weight : {below, above}) {
    const auto flag =
        std::string(R"({"key":"hashKey","version":1,"on":true,"variations":["v0","v1"],)") +
        R"("fallthrough":{"rollout":{"variations":[{"variation":0,"weight":)" +
        std::to_string(weight) + R"(},{"variation":1,"weight":)" + std::to_string(100000 - weight) +
        "}]}}}";
    EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyA"})"), weight == below ? "v1" : "v0");
  }
}

TEST(Rollouts, VariationWinsOverRollout) {
  const auto flag = Flag(
      R"({"fallthrough":{"variation":2,"rollout":{"variations":[{"variation":1,"weight":100000}]}}})");
  EXPECT_TRUE(SameJson(EvalOne(flag, kUserU, false), R"({"value":"c","variation":2,"version":1})"));
}

TEST(Rollouts, PastTheLastBucketIsTheLastVariation) {
  const auto flag = RolloutFlag("", R"([{"variation":0,"weight":10},{"variation":2,"weight":10}])");
  EXPECT_TRUE(
      SameJson(EvalOne(flag, R"({"kind":"user","key":"userKeyA"})"),
               R"({"value":"v2","variation":2,"version":1,"reason":{"kind":"FALLTHROUGH"}})"));
  const auto zero = RolloutFlag("", R"([{"variation":1,"weight":0}])");
  EXPECT_EQ(Served(zero, R"({"kind":"user","key":"userKeyC"})"), "v1");
}

TEST(Rollouts, NegativeAndHugeWeightsDoNotBreakBucketing) {
  EXPECT_EQ(Served(RolloutFlag(
                       "", R"([{"variation":0,"weight":-50000},{"variation":1,"weight":150000}])"),
                   R"({"kind":"user","key":"userKeyA"})"),
            "v1");
  EXPECT_EQ(
      Served(RolloutFlag("", R"([{"variation":0,"weight":2147483647},{"variation":1,"weight":1}])"),
             R"({"kind":"user","key":"userKeyA"})"),
      "v0");
}

TEST(Rollouts, BadVariationIndexInRolloutIsMalformed) {
  const auto flag =
      RolloutFlag("", R"([{"variation":0,"weight":20000},{"variation":5,"weight":80000}])");
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyC"})"), "v0");
  EXPECT_TRUE(SameJson(
      EvalOne(flag, R"({"kind":"user","key":"userKeyB"})"),
      std::string(R"({"value":null,"variation":null,"version":1,"reason":)") + kMalformed + "}"));
  const auto negative = RolloutFlag("", R"([{"variation":-1,"weight":100000}])");
  EXPECT_TRUE(
      SameJson(ReasonOf(EvalOne(negative, R"({"kind":"user","key":"userKeyB"})")), kMalformed));
}

TEST(Rollouts, OldUserSecondaryKeyIsHashedInRollouts) {
  const auto flag = RolloutFlag("");
  EXPECT_EQ(Served(flag, R"({"key":"userKeyA","secondary":"sec"})"), "v2");  // 0.6795, not 0.4216
  EXPECT_EQ(Served(flag, R"({"key":"userKeyB","secondary":"sec"})"), "v1");  // 0.4119, not 0.6708
  EXPECT_EQ(Served(flag, R"({"key":"userKeyA","secondary":null})"), "v1");
  // With bucketBy, the secondary key is still appended ("<attr value>.<secondary>").
  EXPECT_EQ(Served(RolloutFlag(R"(,"bucketBy":"name")"),
                   R"({"key":"x","name":"userKeyA","secondary":"sec"})"),
            "v2");
}

TEST(Experiments, InExperimentAndTracked) {
  const auto flag = RolloutFlag(R"(,"kind":"experiment")");
  EXPECT_TRUE(
      SameJson(EvalOne(flag, R"({"kind":"user","key":"userKeyB"})", false),
               R"({"value":"v2","variation":2,"version":1,"trackEvents":true,"trackReason":true,)"
               R"("reason":{"kind":"FALLTHROUGH","inExperiment":true}})"));
}

TEST(Experiments, RuleExperiment) {
  const auto flag = std::string(
      R"({"key":"hashKey","version":1,"on":true,"salt":"saltyA","variations":["v0","v1","v2"],)"
      R"("fallthrough":{"variation":0},"rules":[{"id":"x","clauses":[],"rollout":{"kind":"experiment",)"
      R"("variations":[{"variation":0,"weight":20000},{"variation":1,"weight":30000},{"variation":2,"weight":50000}]}}]})");
  EXPECT_TRUE(SameJson(
      EvalOne(flag, R"({"kind":"user","key":"userKeyA"})", false),
      R"({"value":"v1","variation":1,"version":1,"trackEvents":true,"trackReason":true,)"
      R"("reason":{"kind":"RULE_MATCH","ruleIndex":0,"ruleId":"x","inExperiment":true}})"));
}

TEST(Experiments, AlwaysBucketByKeyIgnoringBucketByAndSecondary) {
  const auto flag = RolloutFlag(R"(,"kind":"experiment","bucketBy":"team")");
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyB","team":"userKeyC"})"), "v2");
  EXPECT_EQ(
      Served(RolloutFlag(R"(,"kind":"experiment")"), R"({"key":"userKeyA","secondary":"sec"})"),
      "v1");
}

TEST(Experiments, Seed) {
  const auto flag =
      RolloutFlag(R"(,"kind":"experiment","seed":61)",
                  R"([{"variation":0,"weight":12000},{"variation":1,"weight":88000}])");
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(flag, R"({"kind":"user","key":"userKeyA"})")),
                       R"({"kind":"FALLTHROUGH","inExperiment":true})"));
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyA"})"), "v0");
  EXPECT_EQ(Served(flag, R"({"kind":"user","key":"userKeyB"})"), "v1");
}

TEST(Experiments, UntrackedVariationIsNotInTheExperiment) {
  const auto flag = RolloutFlag(
      R"(,"kind":"experiment")",
      R"([{"variation":0,"weight":50000,"untracked":true},{"variation":1,"weight":50000}])");
  EXPECT_TRUE(SameJson(EvalOne(flag, R"({"kind":"user","key":"userKeyA"})", false),
                       R"({"value":"v0","variation":0,"version":1})"));
  EXPECT_TRUE(
      SameJson(EvalOne(flag, R"({"kind":"user","key":"userKeyB"})", false),
               R"({"value":"v1","variation":1,"version":1,"trackEvents":true,"trackReason":true,)"
               R"("reason":{"kind":"FALLTHROUGH","inExperiment":true}})"));
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(flag, R"({"kind":"user","key":"userKeyA"})")),
                       R"({"kind":"FALLTHROUGH"})"));
}

TEST(Experiments, PastTheLastBucketFollowsTheLastVariationsTracking) {
  const auto tracked = RolloutFlag(R"(,"kind":"experiment")",
                                   R"([{"variation":0,"weight":10},{"variation":2,"weight":10}])");
  EXPECT_TRUE(SameJson(ReasonOf(EvalOne(tracked, R"({"kind":"user","key":"userKeyA"})")),
                       R"({"kind":"FALLTHROUGH","inExperiment":true})"));
  const auto untracked =
      RolloutFlag(R"(,"kind":"experiment")",
                  R"([{"variation":0,"weight":10},{"variation":2,"weight":10,"untracked":true}])");
  EXPECT_TRUE(SameJson(EvalOne(untracked, R"({"kind":"user","key":"userKeyA"})", false),
                       R"({"value":"v2","variation":2,"version":1})"));
}

TEST(Experiments, ContextWithoutTheKindIsNotInTheExperiment) {
  const auto flag = RolloutFlag(R"(,"kind":"experiment","contextKind":"org")");
  EXPECT_TRUE(SameJson(EvalOne(flag, R"({"kind":"user","key":"userKeyB"})", false),
                       R"({"value":"v0","variation":0,"version":1})"));
  EXPECT_TRUE(
      SameJson(EvalOne(flag, R"({"kind":"org","key":"userKeyB"})", false),
               R"({"value":"v2","variation":2,"version":1,"trackEvents":true,"trackReason":true,)"
               R"("reason":{"kind":"FALLTHROUGH","inExperiment":true}})"));
}

TEST(Experiments, ErrorsAreNotExperiments) {
  const auto flag = RolloutFlag(R"(,"kind":"experiment")", R"([{"variation":7,"weight":100000}])");
  EXPECT_TRUE(SameJson(EvalOne(flag, R"({"kind":"user","key":"userKeyA"})", false),
                       R"({"value":null,"variation":null,"version":1})"));
}

// ---------------------------------------------------------------------------------------------
// EvaluateAll: audiences, tombstones, Evaluations JSON forms

std::vector<std::string> Keys(const Evaluations& evaluations) {
  std::vector<std::string> keys;
  for (const auto& entry : evaluations.entries()) keys.emplace_back(entry.key);
  return keys;
}

TEST(EvaluateAll, AudienceFiltering) {
  const auto data = Data({
      FlagWithKey(
          "mobile-only",
          R"({"clientSideAvailability":{"usingMobileKey":true,"usingEnvironmentId":false}})"),
      FlagWithKey(
          "js-only",
          R"({"clientSideAvailability":{"usingMobileKey":false,"usingEnvironmentId":true}})"),
      FlagWithKey(
          "both",
          R"({"clientSideAvailability":{"usingMobileKey":true,"usingEnvironmentId":true}})"),
      FlagWithKey(
          "neither",
          R"({"clientSideAvailability":{"usingMobileKey":false,"usingEnvironmentId":false}})"),
      FlagWithKey("old-client-side", R"({"clientSide":true})"),
      FlagWithKey("old-server-side", R"({"clientSide":false})"),
      FlagWithKey("old-unset", "{}"),
      // An explicit clientSideAvailability wins over the legacy field.
      FlagWithKey("explicit-wins",
                  R"({"clientSide":true,"clientSideAvailability":{"usingMobileKey":false}})"),
      // A null clientSideAvailability is the old schema.
      FlagWithKey("null-csa", R"({"clientSide":true,"clientSideAvailability":null})"),
  });
  const auto context = Ctx(kUserU);
  using V = std::vector<std::string>;
  EXPECT_EQ(Keys(EvaluateAll(*data, context, {Audience::kServer, false})),
            (V{"both", "explicit-wins", "js-only", "mobile-only", "neither", "null-csa",
               "old-client-side", "old-server-side", "old-unset"}));
  EXPECT_EQ(
      Keys(EvaluateAll(*data, context, {Audience::kMobile, false})),
      (V{"both", "mobile-only", "null-csa", "old-client-side", "old-server-side", "old-unset"}));
  EXPECT_EQ(Keys(EvaluateAll(*data, context, {Audience::kEnvironmentId, false})),
            (V{"both", "js-only", "null-csa", "old-client-side"}));
}

TEST(EvaluateAll, TombstonesAreLeftOut) {
  std::vector<protocol::ItemPtr> flags = {
      testing::Item(FlagWithKey("live")), protocol::MakeTombstone("gone", 4),
      testing::Item(R"({"key":"deleted","version":2,"deleted":true,"on":true,"variations":["a"],)"
                    R"("fallthrough":{"variation":0}})")};
  const auto data = FlagData::Build(protocol::ItemSet::FromUnsorted(flags), {});
  EXPECT_EQ(data->flag_count(), 1u);
  EXPECT_EQ(data->unparsable_count(), 0u);
  const auto context = Ctx(kUserU);
  const auto all = EvaluateAll(*data, context, {});
  EXPECT_EQ(Keys(all), std::vector<std::string>{"live"});
  EXPECT_EQ(EvaluateFlag(*data, "gone", context, false), std::nullopt);
  EXPECT_EQ(EvaluateFlag(*data, "deleted", context, false), std::nullopt);
  EXPECT_NE(EvaluateFlag(*data, "live", context, false), std::nullopt);
}

TEST(EvaluateAll, UnparsableFlagsAreCountedAndMalformed) {
  // evaluator.hpp: a live flag whose JSON does not fit the schema evaluates to MALFORMED_FLAG.
  const auto data =
      Data({FlagWithKey("live"), R"({"key":"bad","version":3,"on":true,"variations":5})",
            R"({"key":"bad-rules","version":1,"on":true,"variations":[1],"rules":"x"})"});
  EXPECT_EQ(data->flag_count(), 3u);
  EXPECT_EQ(data->unparsable_count(), 2u);
  const auto context = Ctx(kUserU);
  EXPECT_EQ(Keys(EvaluateAll(*data, context, {})),
            (std::vector<std::string>{"bad", "bad-rules", "live"}));
  EXPECT_TRUE(SameJson(
      Eval(*data, "bad", context),
      std::string(R"({"value":null,"variation":null,"version":3,"reason":)") + kMalformed + "}"));
  EXPECT_TRUE(SameJson(Eval(*data, "bad-rules", context, false),
                       R"({"value":null,"variation":null,"version":1})"));
}

TEST(EvaluateAll, FlagUsingAnUnparsableSegmentIsMalformed) {
  const auto data =
      Data({FlagWithKey(
                "uses",
                R"({"rules":[{"variation":1,"clauses":[{"op":"segmentMatch","values":["s"]}]}]})"),
            FlagWithKey("other")},
           {R"({"key":"s","version":1,"included":"u"})"});
  EXPECT_EQ(data->unparsable_count(), 1u);
  EXPECT_TRUE(SameJson(ReasonOf(Eval(*data, "uses", kUserU)), kMalformed));
  EXPECT_TRUE(SameJson(ReasonOf(Eval(*data, "other", kUserU)), R"({"kind":"FALLTHROUGH"})"));
}

TEST(EvaluateAll, EmptyData) {
  const auto data = FlagData::Build({}, {});
  EXPECT_EQ(data->flag_count(), 0u);
  EXPECT_EQ(data->unparsable_count(), 0u);
  const auto all = EvaluateAll(*data, Ctx(kUserU), {});
  EXPECT_TRUE(all.entries().empty());
  EXPECT_EQ(all.ToJson(), "{}");
  std::string out = "x";
  AppendAllJson(out, *data, Ctx(kUserU), {});
  EXPECT_EQ(out, "x{}");
}

std::shared_ptr<const FlagData> MixedData() {
  return Data(
      {FlagWithKey("b", R"({"version":3,"fallthrough":{"variation":1},"trackEvents":true})"),
       FlagWithKey("a", R"({"version":2,"on":false,"debugEventsUntilDate":1700000000000})"),
       FlagWithKey(
           "c-ex",
           R"({"version":9,"fallthrough":{"rollout":{"kind":"experiment","variations":[{"variation":2,"weight":100000}]}}})"),
       FlagWithKey("d/needs\"escaping", R"({"version":1})"),
       PrereqFlag("e", R"([{"key":"b","variation":1}])")});
}

TEST(EvaluateAll, EntriesAreSortedWithVersionsAndMatchEvaluateFlag) {
  const auto data = MixedData();
  for (const bool with_reasons : {false, true}) {
    const auto context = Ctx(kUserU);
    const auto all = EvaluateAll(*data, context, {Audience::kServer, with_reasons});
    EXPECT_EQ(Keys(all), (std::vector<std::string>{"a", "b", "c-ex", "d/needs\"escaping", "e"}));
    const std::uint64_t versions[] = {2, 3, 9, 1, 1};
    for (std::size_t i = 0; i < all.entries().size(); ++i) {
      const auto& entry = all.entries()[i];
      EXPECT_EQ(entry.version, versions[i]) << entry.key;
      const auto single = EvaluateFlag(*data, entry.key, context, with_reasons);
      ASSERT_TRUE(single.has_value()) << entry.key;
      EXPECT_TRUE(testing::JsonEqual(J(entry.json), J(*single))) << entry.json << " vs " << *single;
      EXPECT_EQ(all.Find(entry.key), &entry);
    }
    EXPECT_EQ(all.Find("zzz"), nullptr);
    EXPECT_EQ(all.Find(""), nullptr);
  }
}

TEST(EvaluateAll, ToJsonIsTheMapOfResults) {
  const auto data = MixedData();
  const auto all = EvaluateAll(*data, Ctx(kUserU), {Audience::kServer, false});
  EXPECT_TRUE(SameJson(
      J(all.ToJson()),
      R"({"a":{"value":"a","variation":0,"version":2,"debugEventsUntilDate":1700000000000},)"
      R"("b":{"value":"b","variation":1,"version":3,"trackEvents":true},)"
      R"("c-ex":{"value":"c","variation":2,"version":9,"trackEvents":true,"trackReason":true,)"
      R"("reason":{"kind":"FALLTHROUGH","inExperiment":true}},)"
      R"("d/needs\"escaping":{"value":"a","variation":0,"version":1},)"
      R"("e":{"value":"on","variation":1,"version":1,"prerequisites":["b"]}})"));
}

TEST(EvaluateAll, AppendAllJsonEqualsToJson) {
  const auto data = MixedData();
  for (const auto* context_json : {kUserU, R"({"key":"userKeyA","secondary":"s"})",
                                   R"({"kind":"multi","user":{"key":"u"},"org":{"key":"o"}})"}) {
    const auto context = Ctx(context_json);
    for (const auto audience : {Audience::kServer, Audience::kMobile, Audience::kEnvironmentId}) {
      for (const bool with_reasons : {false, true}) {
        const EvalOptions options{audience, with_reasons};
        std::string out = "prefix:";
        AppendAllJson(out, *data, context, options);
        EXPECT_EQ(out, "prefix:" + EvaluateAll(*data, context, options).ToJson());
      }
    }
  }
}

TEST(EvaluateAll, PatchJsonIsKeyThenResult) {
  const auto data = MixedData();
  const auto all = EvaluateAll(*data, Ctx(kUserU), {Audience::kServer, true});
  ASSERT_NE(all.Find("b"), nullptr);
  const auto patch = Evaluations::PatchJson(*all.Find("b"));
  EXPECT_EQ(patch.rfind(R"({"key":"b",)", 0), 0u) << patch;
  EXPECT_TRUE(SameJson(J(patch),
                       R"({"key":"b","value":"b","variation":1,"version":3,"trackEvents":true,)"
                       R"("reason":{"kind":"FALLTHROUGH"}})"));
  const auto escaped = Evaluations::PatchJson(*all.Find("d/needs\"escaping"));
  EXPECT_TRUE(SameJson(J(escaped),
                       R"({"key":"d/needs\"escaping","value":"a","variation":0,"version":1,)"
                       R"("reason":{"kind":"FALLTHROUGH"}})"));
}

TEST(EvaluateAll, ResultsAreCompactJson) {
  const auto data = MixedData();
  const auto json_text = EvaluateAll(*data, Ctx(kUserU), {Audience::kServer, true}).ToJson();
  EXPECT_EQ(json_text.find('\n'), std::string::npos);
  EXPECT_EQ(json_text.find(": "), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// FlagData rebuilds

std::vector<std::string> ContextsForComparison() {
  return {kUserU, R"({"key":"userKeyA","secondary":"s"})", R"({"kind":"org","key":"o"})",
          R"({"kind":"multi","user":{"key":"userKeyB","name":"Ann"},"org":{"key":"o"}})"};
}

std::string AllJson(const FlagData& data, std::string_view context) {
  return EvaluateAll(data, Ctx(context), {Audience::kServer, true}).ToJson();
}

TEST(FlagDataBuild, RebuildWithPreviousGivesIdenticalResults) {
  const auto flags = testing::Items(
      {FlagWithKey(
           "a",
           R"({"rules":[{"id":"r","variation":1,"clauses":[{"op":"segmentMatch","values":["s"]}]}]})"),
       PrereqFlag("p", R"([{"key":"a","variation":1}])"), RolloutFlag(R"(,"bucketBy":"name")"),
       R"({"key":"bad","variations":{}})"});
  const auto segments = testing::Items(
      {R"({"key":"s","version":1,"included":["u"],"rules":[{"clauses":[{"contextKind":"org","attribute":"key","op":"in","values":["o"]}]}]})"});
  auto first = FlagData::Build(flags, segments);
  const auto second = FlagData::Build(flags, segments, first.get());
  EXPECT_EQ(second->flag_count(), first->flag_count());
  EXPECT_EQ(second->unparsable_count(), first->unparsable_count());
  EXPECT_EQ(second->unparsable_count(), 1u);
  std::vector<std::string> before;
  for (const auto& context : ContextsForComparison()) {
    before.push_back(AllJson(*first, context));
    EXPECT_EQ(AllJson(*second, context), before.back()) << context;
  }
  first.reset();  // the rebuilt data must not depend on the previous one staying alive
  std::size_t i = 0;
  for (const auto& context : ContextsForComparison())
    EXPECT_EQ(AllJson(*second, context), before[i++]);
}

TEST(FlagDataBuild, ChangedSegmentIsSeenByUnchangedFlags) {
  const auto flags = testing::Items({FlagWithKey(
      "a",
      R"({"rules":[{"id":"r","variation":1,"clauses":[{"op":"segmentMatch","values":["s"]}]}]})")});
  const auto v1 =
      FlagData::Build(flags, testing::Items({R"({"key":"s","version":1,"included":["u"]})"}));
  EXPECT_TRUE(SameJson(ValueOf(Eval(*v1, "a", kUserU)), R"("b")"));
  const auto v2 = FlagData::Build(
      flags, testing::Items({R"({"key":"s","version":2,"included":["x"]})"}), v1.get());
  EXPECT_TRUE(SameJson(ValueOf(Eval(*v2, "a", kUserU)), R"("a")"));
  const auto v3 = FlagData::Build(flags, {}, v2.get());
  EXPECT_TRUE(SameJson(ValueOf(Eval(*v3, "a", kUserU)), R"("a")"));
  const auto v4 = FlagData::Build(
      flags, testing::Items({R"({"key":"s","version":3,"included":["u"]})"}), v3.get());
  EXPECT_TRUE(SameJson(ValueOf(Eval(*v4, "a", kUserU)), R"("b")"));
  // The older snapshots are unchanged.
  EXPECT_TRUE(SameJson(ValueOf(Eval(*v1, "a", kUserU)), R"("b")"));
  EXPECT_TRUE(SameJson(ValueOf(Eval(*v2, "a", kUserU)), R"("a")"));
}

TEST(FlagDataBuild, ChangedPrerequisiteIsSeenByUnchangedFlags) {
  const auto dependent = testing::Item(PrereqFlag("f", R"([{"key":"p","variation":1}])"));
  const auto v1 = FlagData::Build(
      protocol::ItemSet::FromUnsorted({dependent, testing::Item(Target("p", "1"))}), {});
  EXPECT_TRUE(SameJson(ValueOf(Eval(*v1, "f", kUserU)), R"("on")"));
  const auto v2 = FlagData::Build(
      protocol::ItemSet::FromUnsorted(
          {dependent,
           testing::Item(
               R"({"key":"p","version":2,"on":true,"variations":["x","y"],"fallthrough":{"variation":0}})")}),
      {}, v1.get());
  EXPECT_TRUE(SameJson(ValueOf(Eval(*v2, "f", kUserU)), R"("off")"));
  const auto v3 = FlagData::Build(protocol::ItemSet::FromUnsorted({dependent}), {}, v2.get());
  EXPECT_TRUE(SameJson(ReasonOf(Eval(*v3, "f", kUserU)),
                       R"({"kind":"PREREQUISITE_FAILED","prerequisiteKey":"p"})"));
  EXPECT_EQ(v3->flag_count(), 1u);
}

TEST(FlagDataBuild, RemovedAndAddedFlags) {
  const auto a = testing::Item(FlagWithKey("a"));
  const auto b = testing::Item(FlagWithKey("b"));
  const auto v1 = FlagData::Build(protocol::ItemSet::FromUnsorted({a, b}), {});
  const auto v2 = FlagData::Build(protocol::ItemSet::FromUnsorted({a}), {}, v1.get());
  EXPECT_EQ(v2->flag_count(), 1u);
  EXPECT_EQ(EvaluateFlag(*v2, "b", Ctx(kUserU), false), std::nullopt);
  const auto v3 = FlagData::Build(
      protocol::ItemSet::FromUnsorted({a, b, testing::Item(FlagWithKey("c"))}), {}, v2.get());
  EXPECT_EQ(v3->flag_count(), 3u);
  EXPECT_NE(EvaluateFlag(*v3, "c", Ctx(kUserU), false), std::nullopt);
}

TEST(FlagDataBuild, SameKeyNewItemIsRecompiled) {
  const auto v1 = Data({FlagWithKey("a", R"({"fallthrough":{"variation":0}})")});
  const auto v2 =
      Data({FlagWithKey("a", R"({"version":2,"fallthrough":{"variation":2}})")}, {}, v1.get());
  EXPECT_TRUE(
      SameJson(Eval(*v2, "a", kUserU, false), R"({"value":"c","variation":2,"version":2})"));
  // An unparsable replacement is not served from the previous compiled form.
  const auto v3 = Data({R"({"key":"a","version":3,"on":true,"variations":"nope"})"}, {}, v2.get());
  EXPECT_EQ(v3->unparsable_count(), 1u);
  EXPECT_TRUE(
      SameJson(Eval(*v3, "a", kUserU, false), R"({"value":null,"variation":null,"version":3})"));
}

// One evaluation runs each distinct clause once and reuses the result in other flags: clauses
// that differ only in negation, context kind, operator or value type must not share it.
TEST(FlagDataBuild, RepeatedClausesAcrossFlagsKeepTheirOwnMeaning) {
  const auto rule = [](std::string_view key, std::string_view clause) {
    return FlagWithKey(key, std::string(R"({"rules":[{"id":"r","variation":1,"clauses":[)") +
                                std::string(clause) + "]}]}");
  };
  const auto data = Data({
      rule("a1", R"({"attribute":"name","op":"in","values":["Ann"]})"),
      rule("a2", R"({"attribute":"name","op":"in","values":["Ann"],"negate":true})"),
      rule("a3", R"({"contextKind":"org","attribute":"name","op":"in","values":["Ann"]})"),
      rule("a4", R"({"attribute":"name","op":"startsWith","values":["Ann"]})"),
      rule("a5", R"({"attribute":"name","op":"in","values":["Ann"]})"),
      rule("a6", R"({"attribute":"kind","op":"in","values":["user"]})"),
      rule("a7", R"({"contextKind":"user","attribute":"/kind","op":"in","values":["user"]})"),
      rule("a8", R"({"attribute":"n","op":"in","values":[1]})"),
      rule("a9", R"({"attribute":"n","op":"in","values":["1"]})"),
  });
  const std::string context = R"({"kind":"user","key":"u","name":"Ann","n":1})";
  const std::map<std::string, std::string> expected = {
      {"a1", R"("b")"}, {"a2", R"("a")"}, {"a3", R"("a")"}, {"a4", R"("b")"}, {"a5", R"("b")"},
      {"a6", R"("b")"}, {"a7", R"("b")"}, {"a8", R"("b")"}, {"a9", R"("a")"}};
  // In one all-flags evaluation (one session) and one flag at a time.
  const std::string all = EvaluateAll(*data, Ctx(context), {Audience::kServer, false}).ToJson();
  const json::object results = J(all).as_object();
  for (const auto& [key, value] : expected) {
    EXPECT_TRUE(SameJson(results.at(key).at("value"), value)) << key;
    EXPECT_TRUE(SameJson(ValueOf(Eval(*data, key, context)), value)) << key;
  }
}

// An evaluation computes the clauses on one attribute together (in-lists by value, semantic
// versions by rank among all the versions the clauses name, and so on): each clause must still
// give what it gives alone, for every type of value.
TEST(FlagDataBuild, ClausesOnOneAttributeAgreeWithEachAlone) {
  const std::vector<std::string> clauses = {
      R"("op":"semVerEqual","values":["1.0.0"])",
      R"("op":"semVerEqual","values":["1.0.0+build.7"])",
      R"("op":"semVerEqual","values":["1.0"])",
      R"("op":"semVerEqual","values":["0.5.0","3.0.0"])",
      R"("op":"semVerLessThan","values":["1.0.0-alpha"])",
      R"("op":"semVerLessThan","values":["1.0.0-alpha.1"])",
      R"("op":"semVerLessThan","values":["1.0.0-beta"])",
      R"("op":"semVerLessThan","values":["2.0.0"])",
      R"("op":"semVerLessThan","values":["not-a-version"])",
      R"("op":"semVerGreaterThan","values":["1.0.0-rc.1"])",
      R"("op":"semVerGreaterThan","values":["0.9.9"])",
      R"("op":"semVerGreaterThan","values":["1.0.0"])",
      R"("op":"lessThan","values":[5])",
      R"("op":"lessThanOrEqual","values":[1,10])",
      R"("op":"greaterThan","values":[4.5])",
      R"("op":"greaterThanOrEqual","values":[5])",
      R"("op":"greaterThan","values":["5"])",
      R"("op":"before","values":["2024-01-01T00:00:00Z"])",
      R"("op":"after","values":[1700000000000])",
      R"("op":"before","values":["garbage"])",
      R"("op":"in","values":["a","b"])",
      R"("op":"in","values":["b","c"])",
      R"("op":"in","values":[1,"a"])",
      R"("op":"in","values":[true])",
      R"("op":"in","values":[])",
      R"("op":"startsWith","values":["a","1."])",
      R"("op":"endsWith","values":[".0"])",
      R"("op":"contains","values":["-",5])",
      R"("op":"matches","values":["^[ab]"])",
  };
  std::vector<std::string> flags;
  for (std::size_t i = 0; i < clauses.size(); ++i) {
    for (const char* negate : {"false", "true"}) {
      flags.push_back(
          FlagWithKey("f" + std::to_string(i) + negate,
                      R"({"rules":[{"id":"r","variation":1,"clauses":[{"attribute":"v","negate":)" +
                          std::string(negate) + "," + clauses[i] + "}]}]}"));
    }
  }
  const std::vector<std::string> values = {R"("1.0.0")",
                                           R"("1.0.0-alpha.1")",
                                           R"("1.0.0+other")",
                                           R"("1.0")",
                                           R"("2.0.0")",
                                           R"("0.9.9")",
                                           R"("3.0.0")",
                                           R"("0.1.0")",
                                           R"("9.0.0")",
                                           R"("a")",
                                           R"("b")",
                                           R"("c")",
                                           "5",
                                           "1",
                                           "10",
                                           "4.5",
                                           R"("2023-06-01T00:00:00Z")",
                                           "1800000000000",
                                           "true",
                                           R"(["a","c"])",
                                           R"(["a",1])",
                                           "[]",
                                           "null",
                                           R"({"o":1})"};
  const auto together = Data(flags);
  for (const std::string& value : values) {
    const std::string context = R"({"kind":"user","key":"u","v":)" + value + "}";
    const json::object all =
        J(EvaluateAll(*together, Ctx(context), {Audience::kServer, false}).ToJson()).as_object();
    for (const std::string& flag : flags) {
      const std::string key = KeyOf(flag);
      EXPECT_TRUE(
          SameJson(all.at(key).at("value"), json::serialize(ValueOf(EvalOne(flag, context)))))
          << key << " for v = " << value;
    }
  }
}

// Clauses too long to number (values over 1 KB as JSON) are computed each time, and still right.
TEST(FlagDataBuild, LongClausesWithoutANumber) {
  std::string values = R"(["Ann")";
  for (int i = 0; i < 300; ++i) values += R"(,"someone-)" + std::to_string(i) + '"';
  values += "]";
  const auto rule = [&](std::string_view key, std::string_view negate) {
    return FlagWithKey(key, std::string(R"({"rules":[{"id":"r","variation":1,"clauses":[)") +
                                R"({"attribute":"name","op":"in","negate":)" + std::string(negate) +
                                R"(,"values":)" + values + "}]}]}");
  };
  const auto data =
      Data({rule("long", "false"), rule("long-again", "false"), rule("long-negated", "true")});
  const json::object all =
      J(EvaluateAll(*data, Ctx(kUserU), {Audience::kServer, false}).ToJson()).as_object();
  EXPECT_TRUE(SameJson(all.at("long").at("value"), R"("b")"));
  EXPECT_TRUE(SameJson(all.at("long-again").at("value"), R"("b")"));
  EXPECT_TRUE(SameJson(all.at("long-negated").at("value"), R"("a")"));
  const std::string bob = R"({"kind":"user","key":"v","name":"Bob"})";
  EXPECT_TRUE(SameJson(ValueOf(Eval(*data, "long", bob)), R"("a")"));
  EXPECT_TRUE(SameJson(ValueOf(Eval(*data, "long-negated", bob)), R"("b")"));
}

// Rebuilds reuse unchanged flags, whose compiled form refers to numbered kinds, attributes and
// clauses; while other flags churn, the numbering grows and is started afresh now and then.
// Results must stay right throughout.
TEST(FlagDataBuild, LongChurnKeepsReusedFlagsRight) {
  const auto kept = testing::Item(FlagWithKey(
      "kept",
      R"({"rules":[{"id":"r","variation":1,"clauses":[{"attribute":"name","op":"in","values":["Ann"]},{"op":"segmentMatch","values":["s"]}]}],"fallthrough":{"rollout":{"variations":[{"variation":0,"weight":50000},{"variation":2,"weight":50000}],"bucketBy":"name"}}})"));
  const auto segments = testing::Items({R"({"key":"s","version":1,"included":["u"]})"});
  const std::string context = R"({"kind":"user","key":"u","name":"Ann"})";
  const std::string other_context = R"({"kind":"user","key":"v","name":"Bob"})";
  auto data = FlagData::Build(protocol::ItemSet::FromUnsorted({kept}), segments);
  const auto kept_of = [&](std::string_view ctx) { return J(AllJson(*data, ctx)).at("kept"); };
  const std::string kept_result = json::serialize(kept_of(context));
  const std::string kept_other = json::serialize(kept_of(other_context));
  EXPECT_NE(kept_result, kept_other);
  for (int i = 0; i < 400; ++i) {
    // A changing flag with a new kind, attribute and clause every time.
    const std::string n = std::to_string(i);
    const auto churn = testing::Item(FlagWithKey(
        "churn", R"({"version":)" + std::to_string(i + 2) +
                     R"(,"rules":[{"id":"r","variation":1,"clauses":[{"contextKind":"k)" + n +
                     R"(","attribute":"a)" + n + R"(","op":"in","values":["v)" + n + R"("]}]}]})"));
    data = FlagData::Build(protocol::ItemSet::FromUnsorted({kept, churn}), segments, data.get());
    ASSERT_TRUE(SameJson(kept_of(context), kept_result)) << "rebuild " << i;
    ASSERT_TRUE(SameJson(kept_of(other_context), kept_other)) << "rebuild " << i;
    const std::string matching =
        R"({"kind":"k)" + n + R"(","key":"x","a)" + n + R"(":"v)" + n + R"("})";
    ASSERT_TRUE(SameJson(ValueOf(Eval(*data, "churn", matching)), R"("b")")) << "rebuild " << i;
  }
}

TEST(FlagDataBuild, ConcurrentEvaluation) {
  const auto data = MixedData();
  const auto expected = AllJson(*data, kUserU);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      const auto context = Ctx(kUserU);
      for (int i = 0; i < 200; ++i) {
        if (EvaluateAll(*data, context, {Audience::kServer, true}).ToJson() != expected)
          ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// EvaluateChanged evaluates exactly the flags whose inputs changed along a chain of builds:
// their own item, a prerequisite (or its prerequisites), a segment they use, or a segment that
// segment's rules use; coming or going counts.
TEST(FlagDataBuild, EvaluateChangedFollowsPrerequisitesAndSegments) {
  const auto flag = [](std::string key, int version, std::string extra = "") {
    return Item(
        R"({"key":")" + key + R"(","version":)" + std::to_string(version) +
        R"(,"on":true,"fallthrough":{"variation":0},"offVariation":1,"variations":["on","off"])" +
        extra + "}");
  };
  const auto uses_segment = [](std::string segment) {
    return R"(,"rules":[{"id":"r","variation":1,"clauses":[{"attribute":"","op":"segmentMatch","values":[")" +
           segment + R"("]}]}])";
  };
  const auto prerequisite = [](std::string key) {
    return R"(,"prerequisites":[{"key":")" + key + R"(","variation":0}])";
  };
  const auto segment = [](std::string key, int version, std::string extra = "") {
    return Item(R"({"key":")" + key + R"(","version":)" + std::to_string(version) +
                R"(,"included":["u"])" + extra + "}");
  };
  std::map<std::string, protocol::ItemPtr> flags = {
      {"a", flag("a", 1)},
      {"b", flag("b", 1, prerequisite("a"))},
      {"c", flag("c", 1, prerequisite("b"))},
      {"d", flag("d", 1, uses_segment("s"))},
      {"e", flag("e", 1, uses_segment("t"))},
      {"f", flag("f", 1)},
      {"g", flag("g", 1, prerequisite("missing"))},
  };
  std::map<std::string, protocol::ItemPtr> segments = {
      {"s", segment("s", 1)},
      {"t",
       segment(
           "t", 1,
           R"(,"rules":[{"id":"sr","clauses":[{"attribute":"","op":"segmentMatch","values":["s"]}]}])")},
  };
  const auto build = [&](const FlagData* previous) {
    std::vector<protocol::ItemPtr> f, g;
    for (const auto& [key, item] : flags) f.push_back(item);
    for (const auto& [key, item] : segments) g.push_back(item);
    return FlagData::Build(protocol::ItemSet::FromUnsorted(std::move(f)),
                           protocol::ItemSet::FromUnsorted(std::move(g)), previous);
  };
  const Context context = Ctx(R"({"kind":"user","key":"u"})");
  const auto evaluated = [&](const FlagData& data, const FlagData* since) {
    const Evaluations changed = EvaluateChanged(data, since, context, {});
    const Evaluations all = EvaluateAll(data, context, {});
    EXPECT_EQ(changed.entries().size(), all.entries().size());
    std::string keys;
    for (std::size_t i = 0; i < changed.entries().size(); ++i) {
      const auto& entry = changed.entries()[i];
      EXPECT_EQ(entry.key, all.entries()[i].key);
      EXPECT_EQ(entry.version, all.entries()[i].version);
      if (!entry.evaluated) continue;
      EXPECT_EQ(entry.json, all.entries()[i].json) << entry.key;
      keys += entry.key;
    }
    return keys;
  };

  const auto d0 = build(nullptr);
  EXPECT_EQ(evaluated(*d0, nullptr), "abcdefg");
  EXPECT_EQ(evaluated(*d0, d0.get()), "");
  const auto d1 = build(d0.get());
  EXPECT_EQ(evaluated(*d1, d0.get()), "") << "nothing changed";
  flags["a"] = flag("a", 2);  // and so b (its prerequisite) and c (b's)
  const auto d2 = build(d1.get());
  EXPECT_EQ(evaluated(*d2, d1.get()), "abc");
  segments["s"] = segment("s", 2);  // d uses s; e uses t, whose rule uses s
  const auto d3 = build(d2.get());
  EXPECT_EQ(evaluated(*d3, d2.get()), "de");
  EXPECT_EQ(evaluated(*d3, d1.get()), "abcde") << "skipping a build adds up both changes";
  segments.erase("t");
  const auto d4 = build(d3.get());
  EXPECT_EQ(evaluated(*d4, d3.get()), "e") << "a segment going away";
  flags["missing"] = flag("missing", 1);
  const auto d5 = build(d4.get());
  EXPECT_EQ(evaluated(*d5, d4.get()), "gmissing") << "a prerequisite coming";
  flags.erase("f");
  const auto d6 = build(d5.get());
  EXPECT_EQ(evaluated(*d6, d5.get()), "") << "a flag going is no evaluation";
  EXPECT_EQ(evaluated(*d6, build(nullptr).get()), "abcdegmissing") << "another chain: all";
  EXPECT_EQ(evaluated(*d2, d6.get()), "abcdefg") << "a later build as `since`: all";
}

}  // namespace
}  // namespace flagrelay::eval
