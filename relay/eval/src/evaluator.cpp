// Evaluating flags for a context, and serving the results in ld-relay's evalx shape.
//
// The order of checks, what counts as an error and what only as a non-match follow LaunchDarkly's
// Go evaluation engine (go-server-sdk-evaluation v3, evaluator*.go), which ld-relay runs.

#include <algorithm>
#include <charconv>

#include "flagrelay/eval/bucketing.hpp"
#include "flagrelay/eval/timestamp.hpp"
#include "model.hpp"

namespace flagrelay::eval {
namespace json = boost::json;

namespace {

struct Reason {
  enum Kind { kOff, kFallthrough, kTargetMatch, kRuleMatch, kPrerequisiteFailed, kError };
  explicit Reason(Kind k = kOff) : kind(k) {}
  Kind kind;
  std::size_t rule_index = 0;
  std::string_view rule_id;
  std::string_view prerequisite_key;
  bool in_experiment = false;
};

struct Detail {
  std::int64_t variation = -1;  // -1: no variation (value null)
  Reason reason;
};

Detail ErrorDetail() { return Detail{-1, Reason{Reason::kError}}; }

// What one top-level evaluation accumulates: the stacks for cycle detection, the prerequisites to
// report, and whether a big segment was consulted.
struct Scope {
  const FlagData::Impl& data;
  const Context::Impl& context;
  std::vector<std::string_view> prerequisite_chain;
  std::vector<std::string_view> segment_chain;
  std::vector<std::string_view> prerequisites;  // direct prerequisites of the top-level flag
  bool big_segments_not_configured = false;
};

// Errors that abort a whole evaluation (and any flag that has it as a prerequisite), as opposed
// to errors in a flag's own result (bad variation index), which only make that result an error.
struct Abort {};

const json::value kTrue(true);
const json::value kFalse(false);

// The value of `ref` in one individual context; null when absent.
const json::value* Lookup(const Context::Impl::Single& single, const Ref& ref) {
  switch (ref.special) {
    case Ref::Special::kKind:
      return &single.kind_value;
    case Ref::Special::kAnonymous: {
      // Always a boolean: a context is not anonymous unless it says so.
      const json::value* value = single.attributes->if_contains("anonymous");
      return value != nullptr && value->is_bool() && value->get_bool() ? &kTrue : &kFalse;
    }
    case Ref::Special::kMeta:
      return nullptr;
    case Ref::Special::kNone:
      break;
  }
  const std::vector<std::string>& path = ref.path;
  const json::object* object = single.attributes;
  const json::value* value = nullptr;
  for (const std::string& component : path) {
    if (object == nullptr) return nullptr;
    value = object->if_contains(component);
    if (value == nullptr) return nullptr;
    object = value->if_object();
  }
  return value != nullptr && value->is_null() ? nullptr : value;
}

bool IsString(const json::value& v) { return v.is_string(); }

std::string_view Str(const json::value& v) { return v.get_string(); }

bool MatchOne(Op op, const json::value& actual, const ClauseValue& expected) {
  switch (op) {
    case Op::kIn:
      return ScalarEqual(actual, expected.json);
    case Op::kEndsWith:
      return IsString(actual) && IsString(expected.json) &&
             Str(actual).ends_with(Str(expected.json));
    case Op::kStartsWith:
      return IsString(actual) && IsString(expected.json) &&
             Str(actual).starts_with(Str(expected.json));
    case Op::kContains:
      return IsString(actual) && IsString(expected.json) &&
             Str(actual).find(Str(expected.json)) != std::string_view::npos;
    case Op::kMatches: {
      if (!IsString(actual) || !expected.regex) return false;
      const std::wstring text = Utf8ToWide(Str(actual));
      try {
        // JavaScript and RE2 defaults: `^`/`$` only at the ends of the text, `.` not newline.
        return boost::regex_search(text.begin(), text.end(), *expected.regex,
                                   boost::match_single_line | boost::match_not_dot_newline);
      } catch (const std::exception&) {
        return false;  // too complex for the matcher's bounds: no match rather than a hang
      }
    }
    case Op::kLessThan:
    case Op::kLessThanOrEqual:
    case Op::kGreaterThan:
    case Op::kGreaterThanOrEqual: {
      if (!actual.is_number() || !expected.json.is_number()) return false;
      const double a = actual.to_number<double>();
      const double b = expected.json.to_number<double>();
      if (op == Op::kLessThan) return a < b;
      if (op == Op::kLessThanOrEqual) return a <= b;
      if (op == Op::kGreaterThan) return a > b;
      return a >= b;
    }
    case Op::kBefore:
    case Op::kAfter:
    case Op::kSemVerEqual:
    case Op::kSemVerLessThan:
    case Op::kSemVerGreaterThan:  // MatchAny handles these, parsing the context's value once
    case Op::kSegmentMatch:
    case Op::kUnknown:
      return false;
  }
  return false;
}

bool MatchAny(const Clause& clause, const json::value& actual) {
  const auto& values = clause.values;
  switch (clause.op) {
    case Op::kBefore:
    case Op::kAfter: {
      // Parse the context's value once, not once per clause value.
      std::optional<double> time;
      if (actual.is_string()) time = ParseTimestamp(Str(actual));
      if (actual.is_number()) time = ParseTimestamp(actual.to_number<double>());
      if (!time) return false;
      return std::any_of(values.begin(), values.end(), [&](const ClauseValue& value) {
        if (!value.time_ms) return false;
        return clause.op == Op::kBefore ? *time < *value.time_ms : *time > *value.time_ms;
      });
    }
    case Op::kSemVerEqual:
    case Op::kSemVerLessThan:
    case Op::kSemVerGreaterThan: {
      if (!actual.is_string()) return false;
      const std::optional<SemVer> version = ParseSemVer(Str(actual));
      if (!version) return false;
      return std::any_of(values.begin(), values.end(), [&](const ClauseValue& value) {
        if (!value.version) return false;
        const int order = CompareSemVer(*version, *value.version);
        if (clause.op == Op::kSemVerEqual) return order == 0;
        return clause.op == Op::kSemVerLessThan ? order < 0 : order > 0;
      });
    }
    default:
      return std::any_of(values.begin(), values.end(), [&](const ClauseValue& value) {
        return MatchOne(clause.op, actual, value);
      });
  }
}

bool SegmentContains(Scope& scope, const Segment& segment);

bool ClauseMatches(Scope& scope, const Clause& clause) {
  if (clause.op == Op::kSegmentMatch) {
    for (const ClauseValue& value : clause.values) {
      if (!value.json.is_string()) continue;
      const Segment* segment = scope.data.FindSegment(Str(value.json));
      if (segment != nullptr && SegmentContains(scope, *segment)) return !clause.negate;
    }
    return clause.negate;
  }
  if (!clause.attribute.defined || !clause.attribute.valid) throw Abort{};
  if (clause.attribute.is_kind) {
    bool match = false;
    for (const auto& single : scope.context.contexts) {
      if (MatchAny(clause, single.kind_value)) {
        match = true;
        break;
      }
    }
    return match != clause.negate;
  }
  const Context::Impl::Single* single = scope.context.Find(clause.context_kind);
  if (single == nullptr) return false;
  const json::value* actual = Lookup(*single, clause.attribute);
  if (actual == nullptr) return false;  // a missing attribute is a non-match, even negated
  bool match = false;
  if (const json::array* elements = actual->if_array()) {
    match = std::any_of(elements->begin(), elements->end(),
                        [&](const json::value& element) { return MatchAny(clause, element); });
  } else {
    match = MatchAny(clause, *actual);
  }
  return match != clause.negate;
}

bool ClausesMatch(Scope& scope, const std::vector<Clause>& clauses) {
  return std::all_of(clauses.begin(), clauses.end(),
                     [&](const Clause& clause) { return ClauseMatches(scope, clause); });
}

enum class BucketProblem { kNone, kContextLacksKind, kNotBucketable };

struct Bucket {
  double value = 0;
  BucketProblem problem = BucketProblem::kNone;
};

Bucket ComputeBucket(const Scope& scope, bool experiment, std::optional<std::int64_t> seed,
                     std::string_view context_kind, std::string_view key, const Ref& bucket_by,
                     std::string_view salt) {
  static const Ref kKeyRef{{"key"}, true, true, false, Ref::Special::kNone};
  const Ref* ref = &bucket_by;
  if (experiment || !bucket_by.defined) {
    ref = &kKeyRef;  // experiments always bucket by key
  } else if (!bucket_by.valid) {
    throw Abort{};
  }
  const Context::Impl::Single* single = scope.context.Find(context_kind);
  if (single == nullptr) return {0, BucketProblem::kContextLacksKind};
  const json::value* value = Lookup(*single, *ref);
  if (value == nullptr) return {0, BucketProblem::kNotBucketable};
  std::optional<std::string> text;
  if (value->is_string()) {
    text = BucketableValue(Str(*value));
  } else if (value->is_number()) {
    text = BucketableValue(value->to_number<double>());  // numbers are doubles, as in Go and JS
  }
  if (!text) return {0, BucketProblem::kNotBucketable};
  if (!experiment && scope.context.secondary) {
    // ld-relay enables the old "secondary key" for old user JSON; experiments never used it.
    text->append(".").append(*scope.context.secondary);
  }
  return {BucketValue(key, salt, *text, seed), BucketProblem::kNone};
}

bool SegmentRuleMatches(Scope& scope, const Segment& segment, const SegmentRule& rule) {
  if (!ClausesMatch(scope, rule.clauses)) return false;
  if (!rule.weight) return true;
  const Bucket bucket = ComputeBucket(scope, false, std::nullopt, rule.rollout_context_kind,
                                      segment.key, rule.bucket_by, segment.salt);
  if (bucket.problem == BucketProblem::kContextLacksKind) return false;
  return bucket.value < *rule.weight / 100000.0;
}

bool TargetHas(const Scope& scope, std::string_view kind, const KeyList& keys) {
  const Context::Impl::Single* single = scope.context.Find(kind);
  return single != nullptr && keys.Contains(single->key);
}

bool SegmentContains(Scope& scope, const Segment& segment) {
  if (segment.malformed) throw Abort{};
  if (std::find(scope.segment_chain.begin(), scope.segment_chain.end(), segment.key) !=
      scope.segment_chain.end())
    throw Abort{};  // circular segment references
  scope.segment_chain.push_back(segment.key);
  struct Pop {
    std::vector<std::string_view>& chain;
    ~Pop() { chain.pop_back(); }
  } pop{scope.segment_chain};

  if (segment.unbounded) {
    // Big segments need a big-segment store, which flagrelay does not have.
    if (!segment.generation) {
      scope.big_segments_not_configured = true;
      return false;
    }
    if (scope.context.Find(segment.unbounded_context_kind) == nullptr) return false;
    scope.big_segments_not_configured = true;
  } else {
    const Context::Impl::Single* user = scope.context.Find(kUserKind);
    const bool only_user = !scope.context.multi && user != nullptr;
    if (user != nullptr && segment.included.Contains(user->key)) return true;
    if (!only_user) {
      for (const SegmentTarget& target : segment.included_contexts)
        if (TargetHas(scope, target.context_kind, target.values)) return true;
    }
    if (user != nullptr && segment.excluded.Contains(user->key)) return false;
    if (!only_user) {
      for (const SegmentTarget& target : segment.excluded_contexts)
        if (TargetHas(scope, target.context_kind, target.values)) return false;
    }
  }
  return std::any_of(segment.rules.begin(), segment.rules.end(), [&](const SegmentRule& rule) {
    return SegmentRuleMatches(scope, segment, rule);
  });
}

Detail VariationDetail(const Flag& flag, std::int64_t index, Reason reason) {
  if (index < 0 || static_cast<std::size_t>(index) >= flag.variations.size()) return ErrorDetail();
  return Detail{index, reason};
}

Detail OffDetail(const Flag& flag, Reason reason) {
  if (!flag.off_variation) return Detail{-1, reason};
  return VariationDetail(flag, *flag.off_variation, reason);
}

Detail ResultDetail(const Scope& scope, const Flag& flag, const VariationOrRollout& result,
                    Reason reason) {
  if (result.variation) return VariationDetail(flag, *result.variation, reason);
  if (!result.rollout || result.rollout->variations.empty()) return ErrorDetail();
  const Rollout& rollout = *result.rollout;
  Bucket bucket;
  try {
    bucket = ComputeBucket(scope, rollout.experiment, rollout.seed, rollout.context_kind, flag.key,
                           rollout.bucket_by, flag.salt);
  } catch (const Abort&) {
    return ErrorDetail();  // a bad bucketBy spoils this result only
  }
  double sum = 0;
  for (const WeightedVariation& weighted : rollout.variations) {
    sum += weighted.weight / 100000.0;
    if (bucket.value < sum) {
      reason.in_experiment = rollout.experiment && !weighted.untracked &&
                             bucket.problem != BucketProblem::kContextLacksKind;
      return VariationDetail(flag, weighted.variation, reason);
    }
  }
  // Past the last bucket (rounding, or weights short of 100000): the last variation.
  const WeightedVariation& last = rollout.variations.back();
  reason.in_experiment = rollout.experiment && !last.untracked;
  return VariationDetail(flag, last.variation, reason);
}

std::optional<std::int64_t> TargetVariation(const Scope& scope, const Flag& flag) {
  if (flag.context_targets.empty()) {
    for (const Target& target : flag.targets)
      if (TargetHas(scope, kUserKind, target.values)) return target.variation;
    return std::nullopt;
  }
  for (const Target& target : flag.context_targets) {
    if (target.context_kind == kUserKind && target.values.keys.empty()) {
      // User targets live in `targets`; this entry only fixes their place in the order.
      for (const Target& user_target : flag.targets) {
        if (user_target.variation == target.variation) {
          if (TargetHas(scope, user_target.context_kind, user_target.values))
            return user_target.variation;
          break;
        }
      }
    } else if (TargetHas(scope, target.context_kind, target.values)) {
      return target.variation;
    }
  }
  return std::nullopt;
}

Detail Evaluate(Scope& scope, const Flag& flag, bool top_level);

// Nullopt when every prerequisite is met; else the flag's (off) result.
std::optional<Detail> CheckPrerequisites(Scope& scope, const Flag& flag, bool top_level) {
  if (flag.prerequisites.empty()) return std::nullopt;
  scope.prerequisite_chain.push_back(flag.key);
  struct Pop {
    std::vector<std::string_view>& chain;
    ~Pop() { chain.pop_back(); }
  } pop{scope.prerequisite_chain};

  for (const Prerequisite& prerequisite : flag.prerequisites) {
    const Flag* required = scope.data.FindFlag(prerequisite.key);
    Reason failed{Reason::kPrerequisiteFailed};
    failed.prerequisite_key = prerequisite.key;
    if (required == nullptr) return OffDetail(flag, failed);
    if (std::find(scope.prerequisite_chain.begin(), scope.prerequisite_chain.end(),
                  required->key) != scope.prerequisite_chain.end())
      throw Abort{};  // circular prerequisites
    const Detail result = Evaluate(scope, *required, false);
    if (top_level) scope.prerequisites.push_back(required->key);
    if (!required->on || result.variation < 0 || result.variation != prerequisite.variation)
      return OffDetail(flag, failed);
  }
  return std::nullopt;
}

// Throws Abort for errors that spoil every flag depending on this one.
Detail Evaluate(Scope& scope, const Flag& flag, bool top_level) {
  if (flag.malformed) return ErrorDetail();
  if (!flag.on) return OffDetail(flag, Reason{Reason::kOff});
  if (auto failed = CheckPrerequisites(scope, flag, top_level)) return *failed;
  if (auto variation = TargetVariation(scope, flag))
    return VariationDetail(flag, *variation, Reason{Reason::kTargetMatch});
  for (std::size_t i = 0; i < flag.rules.size(); ++i) {
    const Rule& rule = flag.rules[i];
    if (ClausesMatch(scope, rule.clauses)) {
      Reason reason{Reason::kRuleMatch};
      reason.rule_index = i;
      reason.rule_id = rule.id;
      return ResultDetail(scope, flag, rule.result, reason);
    }
  }
  return ResultDetail(scope, flag, flag.fallthrough, Reason{Reason::kFallthrough});
}

bool IsExperiment(const Flag& flag, const Reason& reason) {
  if (reason.in_experiment) return true;
  if (reason.kind == Reason::kFallthrough) return flag.track_events_fallthrough;
  if (reason.kind == Reason::kRuleMatch && reason.rule_index < flag.rules.size())
    return flag.rules[reason.rule_index].track_events;
  return false;
}

void AppendInt(std::string& out, std::uint64_t value) {
  char buffer[24];
  out.append(buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr);
}

void AppendReason(std::string& out, const Reason& reason, bool big_segments_not_configured) {
  static constexpr std::string_view kKinds[] = {"OFF",        "FALLTHROUGH",         "TARGET_MATCH",
                                                "RULE_MATCH", "PREREQUISITE_FAILED", "ERROR"};
  out += "{\"kind\":\"";
  out += kKinds[reason.kind];
  out += '"';
  switch (reason.kind) {
    case Reason::kRuleMatch:
      out += ",\"ruleIndex\":";
      AppendInt(out, reason.rule_index);
      if (!reason.rule_id.empty()) {
        out += ",\"ruleId\":";
        protocol::AppendJsonString(out, reason.rule_id);
      }
      break;
    case Reason::kPrerequisiteFailed:
      out += ",\"prerequisiteKey\":";
      protocol::AppendJsonString(out, reason.prerequisite_key);
      break;
    case Reason::kError:
      out += ",\"errorKind\":\"MALFORMED_FLAG\"";
      break;
    default:
      break;
  }
  if (reason.in_experiment) out += ",\"inExperiment\":true";
  if (big_segments_not_configured) out += ",\"bigSegmentsStatus\":\"NOT_CONFIGURED\"";
  out += '}';
}

// Evaluates `flag` and appends its served result object.
void AppendResult(std::string& out, const FlagData::Impl& data, const Context::Impl& context,
                  const Flag& flag, bool with_reasons) {
  Scope scope{data, context, {}, {}, {}, false};
  Detail detail;
  try {
    detail = Evaluate(scope, flag, true);
  } catch (const Abort&) {
    detail = ErrorDetail();
  }
  const bool experiment = IsExperiment(flag, detail.reason);
  out += "{\"value\":";
  if (detail.variation >= 0) {
    out += flag.variations[static_cast<std::size_t>(detail.variation)];
    out += ",\"variation\":";
    AppendInt(out, static_cast<std::uint64_t>(detail.variation));
  } else {
    out += "null,\"variation\":null";
  }
  out += ",\"version\":";
  AppendInt(out, flag.version);
  if (flag.track_events || experiment) out += ",\"trackEvents\":true";
  if (experiment) out += ",\"trackReason\":true";
  if (with_reasons || experiment) {
    out += ",\"reason\":";
    AppendReason(out, detail.reason, scope.big_segments_not_configured);
  }
  if (flag.debug_events_until_date != 0) {
    out += ",\"debugEventsUntilDate\":";
    AppendInt(out, flag.debug_events_until_date);
  }
  if (!scope.prerequisites.empty()) {
    out += ",\"prerequisites\":[";
    for (std::size_t i = 0; i < scope.prerequisites.size(); ++i) {
      if (i != 0) out += ',';
      protocol::AppendJsonString(out, scope.prerequisites[i]);
    }
    out += ']';
  }
  out += '}';
}

bool Visible(const Flag& flag, Audience audience) {
  switch (audience) {
    case Audience::kServer:
      return true;
    case Audience::kMobile:
      return flag.mobile_visible;
    case Audience::kEnvironmentId:
      return flag.environment_id_visible;
  }
  return false;
}

}  // namespace

const Evaluations::Entry* Evaluations::Find(std::string_view key) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), key,
                             [](const Entry& entry, std::string_view k) { return entry.key < k; });
  return it != entries_.end() && it->key == key ? &*it : nullptr;
}

std::string Evaluations::ToJson() const {
  std::size_t size = 2;
  for (const Entry& entry : entries_) size += entry.key.size() + entry.json.size() + 4;
  std::string out;
  out.reserve(size);
  out += '{';
  for (const Entry& entry : entries_) {
    if (out.size() > 1) out += ',';
    protocol::AppendJsonString(out, entry.key);
    out += ':';
    out += entry.json;
  }
  out += '}';
  return out;
}

std::string Evaluations::PatchJson(const Entry& entry) {
  std::string out = "{\"key\":";
  protocol::AppendJsonString(out, entry.key);
  out += ',';
  out.append(entry.json, 1);  // the result's fields, after its '{'
  return out;
}

Evaluations EvaluateAll(const FlagData& data, const Context& context, const EvalOptions& options) {
  Evaluations evaluations;
  const FlagData::Impl& impl = data.impl();
  for (const auto& flag : impl.flags) {
    if (!Visible(*flag, options.audience)) continue;
    Evaluations::Entry entry{flag->key, flag->version, {}};
    AppendResult(entry.json, impl, context.impl(), *flag, options.with_reasons);
    evaluations.entries_.push_back(std::move(entry));
  }
  return evaluations;
}

void AppendAllJson(std::string& out, const FlagData& data, const Context& context,
                   const EvalOptions& options) {
  const FlagData::Impl& impl = data.impl();
  out.reserve(out.size() + impl.flags.size() * 96);
  out += '{';
  bool first = true;
  for (const auto& flag : impl.flags) {
    if (!Visible(*flag, options.audience)) continue;
    if (!first) out += ',';
    first = false;
    protocol::AppendJsonString(out, flag->key);
    out += ':';
    AppendResult(out, impl, context.impl(), *flag, options.with_reasons);
  }
  out += '}';
}

std::optional<std::string> EvaluateFlag(const FlagData& data, std::string_view key,
                                        const Context& context, bool with_reasons) {
  const Flag* flag = data.impl().FindFlag(key);
  if (flag == nullptr) return std::nullopt;
  std::string out;
  AppendResult(out, data.impl(), context.impl(), *flag, with_reasons);
  return out;
}

}  // namespace flagrelay::eval
