// Flag and segment JSON from the upstream: parsed as items, compiled for evaluation and evaluated
// for a few fixed contexts, so the evaluator meets hostile flags (bad types, huge numbers, cyclic
// prerequisites and segments, odd rollouts, regexes).
//
// Input: a `{"flags":{..},"segments":{..}}` document; a single item object is used as both a
// flag and a segment.
//
// Properties beyond "no crash": every served result is JSON; the fast paths agree with the plain
// one (all flags at once with precomputed clauses, vs. one flag at a time; one string vs.
// entries); a rebuild that reuses compiled items evaluates like a build from scratch.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>

#include "flagrelay/eval/evaluator.hpp"
#include "flagrelay/protocol/data.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace flagrelay;

constexpr std::array<std::string_view, 4> kContexts = {
    R"({"kind":"user","key":"user-123","name":"Ada","email":"ada@example.com","country":"gb",
        "groups":["beta","staff"],"age":37,"appVersion":"2.3.4","created":"2024-01-15T10:00:00Z",
        "anonymous":false,"nested":{"plan":"pro","seats":[1,2]}})",
    R"({"kind":"multi","user":{"key":"u2","tags":[1,"x",true,null]},
        "org":{"key":"org-9","tier":3,"region":"eu","created":1700000000000},
        "device":{"key":"d1","os":"ios","version":"17.1.0-beta.2"}})",
    R"({"key":"legacy","secondary":"s","custom":{"groups":["beta"],"score":12.5},"ip":"10.0.0.1",
        "email":"old@example.org"})",
    R"({"kind":"org","key":"acme","domains":["acme.com"],"_meta":{"privateAttributes":["x"]}})",
};

const std::vector<eval::Context>& Contexts() {
  static const std::vector<eval::Context> contexts = [] {
    std::vector<eval::Context> out;
    for (std::string_view json : kContexts) {
      auto context = eval::Context::Parse(json);
      FUZZ_CHECK(context.has_value());
      out.push_back(*context);
    }
    return out;
  }();
  return contexts;
}

void CheckJson(std::string_view text) {
  boost::system::error_code ec;
  (void)boost::json::parse(boost::json::string_view(text.data(), text.size()), ec);
  FUZZ_CHECK(!ec);
}

void CheckEvaluations(const eval::FlagData& data, const eval::Context& context) {
  for (const bool with_reasons : {false, true}) {
    for (const auto audience :
         {eval::Audience::kServer, eval::Audience::kMobile, eval::Audience::kEnvironmentId}) {
      const eval::EvalOptions options{audience, with_reasons};
      const eval::Evaluations all = eval::EvaluateAll(data, context, options);
      const std::string json = all.ToJson();
      std::string appended;
      eval::AppendAllJson(appended, data, context, options);
      FUZZ_CHECK(appended == json);
      if (audience != eval::Audience::kServer) continue;
      CheckJson(json);
      FUZZ_CHECK(all.entries().size() == data.flag_count());
      for (const auto& entry : all.entries()) {
        const auto one = eval::EvaluateFlag(data, entry.key, context, with_reasons);
        FUZZ_CHECK(one.has_value() && *one == entry.json);
        FUZZ_CHECK(all.Find(entry.key) == &entry);
        CheckJson(eval::Evaluations::PatchJson(entry));
      }
    }
  }
}

// Every other item of each kind: a previous data version for an incremental rebuild.
protocol::ItemSet Half(const protocol::ItemSet& items) {
  std::vector<protocol::ItemPtr> half;
  for (std::size_t i = 0; i < items.items().size(); i += 2) half.push_back(items.items()[i]);
  return protocol::ItemSet::FromUnsorted(std::move(half));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  protocol::ItemSet flags, segments;
  if (auto all = protocol::ParseAllData(text)) {
    flags = std::move(all->flags);
    segments = std::move(all->segments);
  }
  if (flags.items().empty() && segments.items().empty()) {
    auto item = protocol::ParseItem("fuzz", text);
    if (!item) return 0;
    flags = protocol::ItemSet::FromUnsorted({*item});
    segments = flags;
  }

  const auto fresh = eval::FlagData::Build(flags, segments);
  FUZZ_CHECK(fresh->flag_count() == flags.live_count());
  FUZZ_CHECK(fresh->unparsable_count() <= flags.live_count() + segments.live_count());
  for (const eval::Context& context : Contexts()) CheckEvaluations(*fresh, context);

  const auto before = eval::FlagData::Build(Half(flags), Half(segments));
  const auto rebuilt = eval::FlagData::Build(flags, segments, before.get());
  FUZZ_CHECK(rebuilt->unparsable_count() == fresh->unparsable_count());
  for (const eval::Context& context : Contexts()) {
    const eval::EvalOptions options{eval::Audience::kServer, true};
    FUZZ_CHECK(eval::EvaluateAll(*rebuilt, context, options).ToJson() ==
               eval::EvaluateAll(*fresh, context, options).ToJson());
  }
  return 0;
}
