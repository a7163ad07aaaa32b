// Robustness: every node of a rich flag/segment/context set is replaced in turn by junk of every
// JSON type (and every member removed). Building and evaluating must never crash or throw, and
// every served result must still be a well-formed result object. Meant to run under ASan+UBSan.

#include <gtest/gtest.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "eval_test_util.hpp"
#include "flagrelay/eval/evaluator.hpp"

namespace flagrelay::eval {
namespace {

namespace json = boost::json;
using testing::J;

constexpr const char* kRichFlag = R"({
 "key":"rich","version":5,"on":true,"salt":"salty",
 "variations":["v0",{"obj":[1,2]},[3],4.5,null],
 "offVariation":1,
 "prerequisites":[{"key":"p","variation":1}],
 "targets":[{"variation":1,"values":["u","u2"]}],
 "contextTargets":[{"contextKind":"org","variation":2,"values":["o"]},
                   {"contextKind":"user","variation":1,"values":[]}],
 "rules":[
  {"id":"r0","variation":0,"trackEvents":true,
   "clauses":[{"attribute":"email","op":"endsWith","values":["@nope.com"],"negate":false}]},
  {"id":"r1","variation":2,"clauses":[
   {"contextKind":"user","attribute":"/address/city","op":"in","values":["Paris","Rome"]},
   {"attribute":"age","op":"greaterThanOrEqual","values":[18]},
   {"attribute":"name","op":"matches","values":["^[A-Z]"]},
   {"attribute":"version","op":"semVerLessThan","values":["2.0.0"]},
   {"attribute":"joined","op":"before","values":["2030-01-01T00:00:00Z",1900000000000]},
   {"attribute":"kind","op":"in","values":["user"]}]},
  {"id":"r2","rollout":{"kind":"experiment","seed":7,"contextKind":"org",
   "variations":[{"variation":0,"weight":30000},{"variation":3,"weight":70000,"untracked":true}]},
   "clauses":[{"op":"segmentMatch","values":["s","big"]}]},
  {"id":"r3","rollout":{"bucketBy":"team","variations":[{"variation":4,"weight":50000},
   {"variation":0,"weight":50000}]},"clauses":[
   {"attribute":"groups","op":"contains","values":["adm"]},
   {"attribute":"score","op":"lessThan","values":[100]},
   {"attribute":"ts","op":"after","values":[0]},
   {"attribute":"v","op":"semVerEqual","values":["1.2"]},
   {"attribute":"v","op":"semVerGreaterThan","values":["1.0.0-rc.1"]},
   {"attribute":"name","op":"startsWith","values":["A"]},
   {"attribute":"score","op":"lessThanOrEqual","values":[100]},
   {"attribute":"score","op":"greaterThan","values":[1]},
   {"attribute":"weird","op":"unknownOp","values":[1],"negate":true}]}],
 "fallthrough":{"rollout":{"variations":[{"variation":0,"weight":60000},
                                         {"variation":2,"weight":40000}]}},
 "clientSideAvailability":{"usingMobileKey":true,"usingEnvironmentId":true},
 "clientSide":true,"trackEvents":false,"trackEventsFallthrough":true,
 "debugEventsUntilDate":1700000000000})";

constexpr const char* kPrereqFlag = R"({
 "key":"p","version":2,"on":true,"variations":[false,true],"offVariation":0,
 "fallthrough":{"variation":1},
 "rules":[{"id":"pr","variation":0,"clauses":[{"attribute":"key","op":"in","values":["blocked"]}]}],
 "prerequisites":[{"key":"q","variation":0}]})";

constexpr const char* kLeafFlag =
    R"({"key":"q","version":1,"on":true,"variations":["q"],"fallthrough":{"variation":0}})";

constexpr const char* kSegment = R"({
 "key":"s","version":3,"salt":"ss","included":["y"],"excluded":["x"],
 "includedContexts":[{"contextKind":"org","values":["o2"]}],
 "excludedContexts":[{"contextKind":"org","values":["o3"]}],
 "rules":[{"id":"sr","clauses":[{"op":"segmentMatch","values":["s2"]}],"weight":50000,
           "bucketBy":"team","rolloutContextKind":"user"},
          {"id":"sr2","clauses":[{"attribute":"name","op":"in","values":["Ann"]}]}],
 "unbounded":false,"generation":1})";

constexpr const char* kNestedSegment = R"({
 "key":"s2","version":1,"included":["z"],
 "rules":[{"clauses":[{"contextKind":"user","attribute":"/groups","op":"contains","values":["adm"]}]}]})";

constexpr const char* kBigSegment =
    R"({"key":"big","version":1,"unbounded":true,"generation":4,"unboundedContextKind":"user"})";

const std::vector<std::string>& Contexts() {
  static const std::vector<std::string> contexts = {
      R"({"kind":"user","key":"u"})",
      R"({"kind":"user","key":"x","email":"a@b.com","address":{"city":"Paris"},"age":30,)"
      R"("name":"Xavier","version":"1.5.0","joined":"2024-01-01T00:00:00Z"})",
      R"({"kind":"multi","user":{"key":"y","groups":["admins"],"score":50,"ts":5,"v":"1.2.0",)"
      R"("name":"Al","weird":true,"team":"t1"},"org":{"key":"o2"}})",
      R"({"key":"z","secondary":"sec","name":"Ann","anonymous":true,)"
      R"("custom":{"groups":["adm"],"score":5,"ts":10,"v":"1.2.0","weird":1,"team":7}})",
      R"({"kind":"org","key":"o"})",
  };
  return contexts;
}

const std::vector<json::value>& Junk() {
  static const std::vector<json::value> junk = [] {
    std::vector<json::value> values;
    for (const char* text : {"null",
                             "true",
                             "false",
                             "0",
                             "-1",
                             "1",
                             "2",
                             "4294967296",
                             "-9223372036854775808",
                             "18446744073709551615",
                             "1e300",
                             "-1e300",
                             "0.5",
                             R"("")",
                             R"("x")",
                             R"("/")",
                             R"("user")",
                             R"("multi")",
                             "[]",
                             "[null]",
                             R"([1,"a",{}])",
                             "{}",
                             R"({"a":1})"}) {
      values.push_back(J(text));
    }
    return values;
  }();
  return junk;
}

// ---------------------------------------------------------------------------------------------
// JSON paths

using Step = std::variant<std::string, std::size_t>;
using Path = std::vector<Step>;

void CollectPaths(const json::value& value, Path& current, std::vector<Path>& out) {
  if (!current.empty()) out.push_back(current);
  if (const auto* object = value.if_object()) {
    for (const auto& [key, member] : *object) {
      current.emplace_back(std::string(key));
      CollectPaths(member, current, out);
      current.pop_back();
    }
  } else if (const auto* array = value.if_array()) {
    for (std::size_t i = 0; i < array->size(); ++i) {
      current.emplace_back(i);
      CollectPaths((*array)[i], current, out);
      current.pop_back();
    }
  }
}

json::value* At(json::value& root, const Path& path, std::size_t length) {
  json::value* node = &root;
  for (std::size_t i = 0; i < length; ++i) {
    if (const auto* key = std::get_if<std::string>(&path[i])) {
      node = node->as_object().if_contains(*key);
    } else {
      node = &node->as_array().at(std::get<std::size_t>(path[i]));
    }
    if (node == nullptr) return nullptr;
  }
  return node;
}

std::string Describe(const Path& path) {
  std::string out;
  for (const auto& step : path) {
    if (const auto* key = std::get_if<std::string>(&step)) {
      out += "." + *key;
    } else {
      out += "[" + std::to_string(std::get<std::size_t>(step)) + "]";
    }
  }
  return out;
}

// Every mutation of `base`: each node replaced by each junk value, each member/element removed.
template <class Fn>
void ForEachMutation(const json::value& base, Fn&& fn) {
  std::vector<Path> paths;
  Path current;
  CollectPaths(base, current, paths);
  for (const auto& path : paths) {
    for (const auto& junk : Junk()) {
      json::value copy = base;
      *At(copy, path, path.size()) = junk;
      fn(copy, Describe(path) + " = " + json::serialize(junk));
    }
    json::value copy = base;
    json::value* parent = At(copy, path, path.size() - 1);
    if (const auto* key = std::get_if<std::string>(&path.back())) {
      parent->as_object().erase(*key);
    } else {
      auto& array = parent->as_array();
      array.erase(array.begin() + static_cast<std::ptrdiff_t>(std::get<std::size_t>(path.back())));
    }
    fn(copy, Describe(path) + " removed");
  }
}

// ---------------------------------------------------------------------------------------------
// Result checks

class Problems {
 public:
  void Add(std::string problem) {
    ++count_;
    if (samples_.size() < 15) samples_.push_back(std::move(problem));
  }
  void Expect(std::size_t cases) const {
    std::string text;
    for (const auto& sample : samples_) text += "\n  " + sample;
    EXPECT_EQ(count_, 0u) << count_ << " problems in " << cases << " cases; first ones:" << text;
    EXPECT_GT(cases, 100u);
  }

 private:
  std::size_t count_ = 0;
  std::vector<std::string> samples_;
};

bool IsKnownReason(const json::value& reason) {
  const auto* object = reason.if_object();
  if (object == nullptr) return false;
  const auto* kind = object->if_contains("kind");
  if (kind == nullptr || !kind->is_string()) return false;
  const std::string_view k = kind->get_string();
  if (k == "RULE_MATCH") {
    const auto* index = object->if_contains("ruleIndex");
    return index != nullptr &&
           (index->is_uint64() || (index->is_int64() && index->get_int64() >= 0));
  }
  if (k == "PREREQUISITE_FAILED") {
    const auto* key = object->if_contains("prerequisiteKey");
    return key != nullptr && key->is_string();
  }
  if (k == "ERROR") {
    const auto* error = object->if_contains("errorKind");
    return error != nullptr && error->is_string();
  }
  return k == "OFF" || k == "FALLTHROUGH" || k == "TARGET_MATCH";
}

std::string CheckResult(const json::value& result) {
  const auto* object = result.if_object();
  if (object == nullptr) return "not an object";
  if (!object->contains("value")) return "no value";
  const auto* variation = object->if_contains("variation");
  if (variation == nullptr) return "no variation";
  if (!variation->is_null() && !variation->is_uint64() &&
      !(variation->is_int64() && variation->get_int64() >= 0))
    return "bad variation";
  const auto* version = object->if_contains("version");
  if (version == nullptr || !(version->is_int64() || version->is_uint64())) return "bad version";
  if (const auto* reason = object->if_contains("reason")) {
    if (!IsKnownReason(*reason)) return "bad reason";
    if (reason->as_object().at("kind") == "ERROR" &&
        (!variation->is_null() || !object->at("value").is_null()))
      return "an error with a value";
  }
  for (const char* flag : {"trackEvents", "trackReason"}) {
    if (const auto* tracked = object->if_contains(flag); tracked != nullptr && *tracked != true)
      return std::string(flag) + " present but not true";
  }
  if (const auto* prerequisites = object->if_contains("prerequisites")) {
    if (!prerequisites->is_array() || prerequisites->as_array().empty()) return "bad prerequisites";
    for (const auto& key : prerequisites->as_array())
      if (!key.is_string()) return "bad prerequisite key";
  }
  return "";
}

void CheckEvaluations(const FlagData& data, const Context& context, const std::string& what,
                      Problems& problems) {
  try {
    for (const bool with_reasons : {true, false}) {
      const EvalOptions options{Audience::kServer, with_reasons};
      const auto all = EvaluateAll(data, context, options);
      const auto text = all.ToJson();
      std::string appended;
      AppendAllJson(appended, data, context, options);
      if (appended != text) problems.Add(what + ": AppendAllJson differs from ToJson");
      boost::system::error_code ec;
      const json::value parsed = json::parse(text, ec);
      if (ec || !parsed.is_object()) {
        problems.Add(what + ": ToJson is not a JSON object: " + text.substr(0, 200));
        continue;
      }
      for (const auto& entry : all.entries()) {
        const json::value result = json::parse(entry.json, ec);
        if (ec) {
          problems.Add(what + ": result for " + std::string(entry.key) +
                       " is not JSON: " + entry.json);
          continue;
        }
        if (const auto problem = CheckResult(result); !problem.empty())
          problems.Add(what + ": " + std::string(entry.key) + ": " + problem + ": " + entry.json);
        const auto single = EvaluateFlag(data, entry.key, context, with_reasons);
        if (!single || json::parse(*single, ec) != result)
          problems.Add(what + ": EvaluateFlag differs for " + std::string(entry.key));
        const auto patch = Evaluations::PatchJson(entry);
        const json::value patch_value = json::parse(patch, ec);
        if (ec || !patch_value.is_object()) problems.Add(what + ": bad PatchJson " + patch);
      }
      (void)EvaluateAll(data, context, {Audience::kMobile, with_reasons});
      (void)EvaluateAll(data, context, {Audience::kEnvironmentId, with_reasons});
    }
  } catch (const std::exception& e) {
    problems.Add(what + ": threw " + e.what());
  } catch (...) {
    problems.Add(what + ": threw a non-exception");
  }
}

// The base data set: flags and segments by role.
struct DataSet {
  std::vector<std::string> flags = {kRichFlag, kPrereqFlag, kLeafFlag};
  std::vector<std::string> segments = {kSegment, kNestedSegment, kBigSegment};
};

std::vector<Context> ParsedContexts() {
  std::vector<Context> contexts;
  for (const auto& text : Contexts()) contexts.push_back(testing::Ctx(text));
  return contexts;
}

std::optional<protocol::ItemPtr> ItemOrSkip(std::string_view key, const std::string& text) {
  auto item = protocol::ParseItem(key, text);
  if (!item) return std::nullopt;  // rejected by the protocol layer (bad version, deleted)
  return *item;
}

// Mutates the item at `index` of flags (is_flag) or segments and checks every result.
void MutateItem(bool is_flag, std::size_t index) {
  const DataSet base;
  const auto base_data = testing::Data(base.flags, base.segments);
  const auto contexts = ParsedContexts();
  const auto& texts = is_flag ? base.flags : base.segments;
  const json::value original = J(texts[index]);
  const std::string key(original.as_object().at("key").as_string());
  Problems problems;
  std::size_t cases = 0;
  ForEachMutation(original, [&](const json::value& mutated, const std::string& what) {
    const auto item = ItemOrSkip(key, json::serialize(mutated));
    if (!item) return;
    std::vector<protocol::ItemPtr> flags;
    std::vector<protocol::ItemPtr> segments;
    for (std::size_t i = 0; i < base.flags.size(); ++i)
      flags.push_back(is_flag && i == index ? *item : testing::Item(base.flags[i]));
    for (std::size_t i = 0; i < base.segments.size(); ++i)
      segments.push_back(!is_flag && i == index ? *item : testing::Item(base.segments[i]));
    std::shared_ptr<const FlagData> data;
    try {
      // Alternate fresh builds and rebuilds on the base data.
      data = FlagData::Build(protocol::ItemSet::FromUnsorted(flags),
                             protocol::ItemSet::FromUnsorted(segments),
                             cases % 2 == 0 ? nullptr : base_data.get());
    } catch (const std::exception& e) {
      problems.Add(key + what + ": Build threw " + e.what());
      return;
    }
    ++cases;
    if (data->flag_count() > base.flags.size())
      problems.Add(key + what + ": more flags than items");
    for (const auto& context : contexts) CheckEvaluations(*data, context, key + what, problems);
  });
  problems.Expect(cases);
}

TEST(Robustness, BaseDataIsValid) {
  const DataSet base;
  const auto data = testing::Data(base.flags, base.segments);
  EXPECT_EQ(data->flag_count(), 3u);
  EXPECT_EQ(data->unparsable_count(), 0u);
  Problems problems;
  std::size_t cases = 0;
  for (const auto& text : Contexts()) {
    const auto result = testing::Eval(*data, "rich", text);
    EXPECT_EQ(CheckResult(result), "") << json::serialize(result);
    const auto reason = testing::ReasonOf(result);
    EXPECT_NE(reason.as_object().at("kind"), "ERROR") << text << ": " << json::serialize(result);
    for (int i = 0; i < 30; ++i, ++cases)
      CheckEvaluations(*data, testing::Ctx(text), text, problems);
  }
  problems.Expect(cases);
}

TEST(Robustness, EveryMutationOfTheRichFlag) { MutateItem(true, 0); }
TEST(Robustness, EveryMutationOfThePrerequisiteFlag) { MutateItem(true, 1); }
TEST(Robustness, EveryMutationOfTheSegment) { MutateItem(false, 0); }
TEST(Robustness, EveryMutationOfTheNestedSegment) { MutateItem(false, 1); }
TEST(Robustness, EveryMutationOfTheBigSegment) { MutateItem(false, 2); }

TEST(Robustness, EveryMutationOfContexts) {
  const DataSet base;
  const auto data = testing::Data(base.flags, base.segments);
  Problems problems;
  std::size_t cases = 0;
  for (const auto& text : Contexts()) {
    ForEachMutation(J(text), [&](const json::value& mutated, const std::string& what) {
      const auto serialized = json::serialize(mutated);
      try {
        auto parsed = Context::Parse(serialized);
        ++cases;
        if (!parsed) {
          if (parsed.error().message.empty()) problems.Add(what + ": empty error message");
          return;
        }
        (void)parsed->FullyQualifiedKey();
        CheckEvaluations(*data, *parsed, serialized + " (" + what + ")", problems);
      } catch (const std::exception& e) {
        problems.Add(serialized + ": Parse threw " + e.what());
      }
    });
  }
  problems.Expect(cases);
}

TEST(Robustness, RandomBytesInContexts) {
  std::mt19937 rng(20240229);
  const DataSet base;
  const auto data = testing::Data(base.flags, base.segments);
  Problems problems;
  std::size_t cases = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string text = Contexts()[static_cast<std::size_t>(round) % Contexts().size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const std::size_t at = rng() % text.size();
      switch (rng() % 4) {
        case 0:
          text.erase(at, 1 + rng() % 8);
          break;
        case 1:
          text.insert(at, 1, static_cast<char>(rng() % 256));
          break;
        case 2:
          text[at] = "{}[]\",:0-.eE\\u"[rng() % 15];
          break;
        default:
          text.insert(at, text.substr(at, rng() % 16));
          break;
      }
    }
    try {
      auto parsed = Context::Parse(text);
      ++cases;
      if (parsed) CheckEvaluations(*data, *parsed, text, problems);
    } catch (const std::exception& e) {
      problems.Add(text + ": threw " + e.what());
    }
  }
  problems.Expect(cases);
}

TEST(Robustness, DeepValuesInFlagsAndContexts) {
  // Nesting within what the protocol layer accepts (64) must be served intact.
  std::string deep = "\"leaf\"";
  for (int i = 0; i < 50; ++i) deep = R"({"a":)" + deep + "}";
  const auto flag = R"({"key":"deep","version":1,"on":true,"variations":[)" + deep +
                    R"(],"fallthrough":{"variation":0}})";
  const auto data = testing::Data({flag});
  EXPECT_EQ(data->unparsable_count(), 0u);
  const auto result = testing::Eval(*data, "deep", R"({"kind":"user","key":"u"})", false);
  EXPECT_TRUE(testing::JsonEqual(testing::ValueOf(result), J(deep))) << json::serialize(result);

  // A clause path 30 levels deep into a context attribute.
  std::string path;
  std::string value = "\"found\"";
  for (int i = 0; i < 30; ++i) {
    path += "/a";
    value = R"({"a":)" + value + "}";
  }
  const auto context = R"({"kind":"user","key":"u","a":)" + value.substr(5, value.size() - 6) + "}";
  EXPECT_EQ(testing::ClauseOutcome(R"({"contextKind":"user","attribute":")" + path +
                                       R"(","op":"in","values":["found"]})",
                                   context),
            testing::Outcome::kMatch);
}

TEST(Robustness, ManyFlagsAndLongLists) {
  std::vector<std::string> flags;
  std::string values = "[";
  for (int i = 0; i < 5000; ++i) values += (i ? ",\"k" : "\"k") + std::to_string(i) + "\"";
  values += "]";
  for (int i = 0; i < 300; ++i) {
    flags.push_back(
        R"({"key":"f)" + std::to_string(i) +
        R"(","version":1,"on":true,"variations":[false,true],"fallthrough":{"variation":0},)"
        R"("targets":[{"variation":1,"values":)" +
        values +
        R"(}],)"
        R"("rules":[{"variation":1,"clauses":[{"attribute":"key","op":"in","values":)" +
        values + "}]}]}");
  }
  const auto data = testing::Data(flags);
  EXPECT_EQ(data->flag_count(), 300u);
  const auto all = EvaluateAll(*data, testing::Ctx(R"({"kind":"user","key":"k4999"})"), {});
  ASSERT_EQ(all.entries().size(), 300u);
  for (const auto& entry : all.entries())
    EXPECT_TRUE(testing::SameJson(J(entry.json), R"({"value":true,"variation":1,"version":1})"))
        << entry.key;
}

}  // namespace
}  // namespace flagrelay::eval
