// Contexts from SDKs, decoded as the client-side routes decode them: the path segment of a GET
// (`/sdk/evalx/contexts/{context}`, `/eval/{envId}/{context}`, `/meval/{context}`) percent- and
// base64url-decoded, and the body of a REPORT as it is; then evaluated against a fixed flag set
// that uses every operator, segments, rollouts and prerequisites.
//
// Input: either form; each is tried.
//
// Properties beyond "no crash": base64 decodes what it encodes (both alphabets, padded or not);
// every served result is JSON; evaluating all flags at once agrees with one flag at a time.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/json/parse.hpp>

#include "base64.hpp"
#include "flagrelay/eval/evaluator.hpp"
#include "flagrelay/protocol/data.hpp"
#include "fuzz_check.hpp"
#include "http_util.hpp"

namespace {

using namespace flagrelay;

constexpr std::string_view kFlags = R"({
"flags":{
 "targeted":{"key":"targeted","version":3,"on":true,"salt":"s1",
  "targets":[{"values":["user-123","legacy"],"variation":1}],
  "contextTargets":[{"contextKind":"org","values":["acme"],"variation":2},
                    {"contextKind":"user","values":[],"variation":1}],
  "fallthrough":{"variation":0},"offVariation":0,"variations":["a","b","c"],
  "clientSideAvailability":{"usingMobileKey":true,"usingEnvironmentId":true}},
 "rules":{"key":"rules","version":7,"on":true,"salt":"s2",
  "rules":[
   {"id":"r-in","clauses":[{"attribute":"groups","op":"in","values":["beta"]},
                           {"attribute":"country","op":"in","values":["gb","de"],"negate":false}],
    "variation":1,"trackEvents":true},
   {"id":"r-text","clauses":[{"contextKind":"user","attribute":"/email","op":"endsWith",
                              "values":["@example.com"]},
                             {"attribute":"name","op":"startsWith","values":["A"]},
                             {"attribute":"name","op":"contains","values":["d"]}],"variation":2},
   {"id":"r-num","clauses":[{"attribute":"age","op":"greaterThanOrEqual","values":[18]},
                            {"attribute":"age","op":"lessThan","values":[65.5]}],"variation":0},
   {"id":"r-re","clauses":[{"attribute":"email","op":"matches","values":["^[a-z]+@(example|test)\\.(com|org)$"]}],
    "variation":1},
   {"id":"r-date","clauses":[{"contextKind":"org","attribute":"created","op":"before",
                              "values":["2030-01-01T00:00:00Z"]},
                             {"contextKind":"org","attribute":"created","op":"after","values":[0]}],
    "variation":2},
   {"id":"r-ver","clauses":[{"contextKind":"device","attribute":"version","op":"semVerLessThan",
                             "values":["18.0.0"]},
                            {"contextKind":"device","attribute":"/version","op":"semVerGreaterThan",
                             "values":["1.0"]}],"variation":1},
   {"id":"r-kind","clauses":[{"contextKind":"user","attribute":"kind","op":"in",
                              "values":["org","device"]}],"variation":0},
   {"id":"r-path","clauses":[{"contextKind":"user","attribute":"/nested/plan","op":"in",
                              "values":["pro"]},
                             {"contextKind":"user","attribute":"/a~1b/~0c","op":"in","values":[1],
                              "negate":true}],"variation":2},
   {"id":"r-seg","clauses":[{"attribute":"","op":"segmentMatch","values":["beta-testers","nope"]}],
    "rollout":{"variations":[{"variation":0,"weight":30000},{"variation":1,"weight":70000}],
               "bucketBy":"email"}}],
  "fallthrough":{"rollout":{"kind":"experiment","seed":42,"contextKind":"org",
    "variations":[{"variation":0,"weight":50000},{"variation":2,"weight":50000,"untracked":true}]}},
  "offVariation":1,"variations":[true,false,null],"trackEventsFallthrough":true,
  "clientSideAvailability":{"usingMobileKey":true,"usingEnvironmentId":false}},
 "prereq":{"key":"prereq","version":1,"on":true,
  "prerequisites":[{"key":"rules","variation":1},{"key":"targeted","variation":1}],
  "fallthrough":{"variation":1},"offVariation":0,"variations":[{"v":0},{"v":[1,2]}],
  "clientSide":true,"debugEventsUntilDate":1900000000000},
 "off":{"key":"off","version":2,"on":false,"offVariation":0,"variations":[1.5,2]},
 "numbers":{"key":"numbers","version":4,"on":true,
  "rules":[{"clauses":[{"attribute":"tier","contextKind":"org","op":"in","values":[3,"3",true]}],
            "variation":0}],
  "fallthrough":{"rollout":{"variations":[{"variation":0,"weight":100000}],"bucketBy":"tier",
                            "contextKind":"org"}},
  "variations":["x","y"]}
},
"segments":{
 "beta-testers":{"key":"beta-testers","version":5,"included":["u2"],"excluded":["user-123"],
  "includedContexts":[{"contextKind":"org","values":["org-9"]}],
  "excludedContexts":[{"contextKind":"device","values":["d0"]}],"salt":"seg",
  "rules":[{"clauses":[{"attribute":"email","op":"endsWith","values":[".org"]}],"weight":60000,
            "bucketBy":"key"},
           {"clauses":[{"attribute":"","op":"segmentMatch","values":["nested"]}]}]},
 "nested":{"key":"nested","version":1,"rules":[{"clauses":[{"attribute":"key","op":"startsWith",
  "values":["l"]}]}]},
 "big":{"key":"big","version":1,"unbounded":true,"generation":2}
}})";

const eval::FlagData& Flags() {
  static const std::shared_ptr<const eval::FlagData> data = [] {
    auto all = protocol::ParseAllData(kFlags);
    FUZZ_CHECK(all.has_value());
    auto built = eval::FlagData::Build(all->flags, all->segments);
    FUZZ_CHECK(built->unparsable_count() == 0);
    return built;
  }();
  return *data;
}

void CheckJson(std::string_view text) {
  boost::system::error_code ec;
  (void)boost::json::parse(boost::json::string_view(text.data(), text.size()), ec);
  FUZZ_CHECK(!ec);
}

void Evaluate(std::string_view json) {
  auto context = eval::Context::Parse(json);
  if (!context) {
    FUZZ_CHECK(!context.error().message.empty());
    return;
  }
  (void)context->FullyQualifiedKey();
  const eval::FlagData& data = Flags();
  for (const auto audience :
       {eval::Audience::kServer, eval::Audience::kMobile, eval::Audience::kEnvironmentId}) {
    const eval::EvalOptions options{audience, audience == eval::Audience::kServer};
    std::string served;
    eval::AppendAllJson(served, data, *context, options);
    CheckJson(served);
    if (audience != eval::Audience::kServer) continue;
    const eval::Evaluations all = eval::EvaluateAll(data, *context, options);
    FUZZ_CHECK(all.ToJson() == served);
    for (const auto& entry : all.entries()) {
      const auto one = eval::EvaluateFlag(data, entry.key, *context, true);
      FUZZ_CHECK(one.has_value() && *one == entry.json);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // A REPORT body.
  Evaluate(input);

  // A GET path segment, decoded as client_side.cpp decodes it.
  if (auto decoded = relay::DecodeBase64(relay::PercentDecode(input))) Evaluate(*decoded);

  // The input as bytes to encode: standard, then URL-safe without padding, decode back.
  const std::string standard = relay::EncodeBase64(input);
  FUZZ_CHECK(relay::DecodeBase64(standard) == input);
  std::string url_safe = standard;
  std::replace(url_safe.begin(), url_safe.end(), '+', '-');
  std::replace(url_safe.begin(), url_safe.end(), '/', '_');
  while (!url_safe.empty() && url_safe.back() == '=') url_safe.pop_back();
  FUZZ_CHECK(relay::DecodeBase64(url_safe) == input);
  return 0;
}
