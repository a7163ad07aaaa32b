// Evaluating flags for a context, and serving the results in ld-relay's evalx shape.
//
// The order of checks, what counts as an error and what only as a non-match follow LaunchDarkly's
// Go evaluation engine (go-server-sdk-evaluation v3, evaluator*.go), which ld-relay runs.

#include <algorithm>
#include <charconv>
#include <deque>
#include <limits>

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
  std::string_view prerequisite_key;
  bool in_experiment = false;
};

struct Detail {
  std::int64_t variation = -1;  // -1: no variation (value null)
  Reason reason;
};

Detail ErrorDetail() { return Detail{-1, Reason{Reason::kError}}; }

// Errors that abort a whole evaluation (and any flag that has it as a prerequisite), as opposed
// to errors in a flag's own result (bad variation index), which only make that result an error.
struct Abort {};

const json::value kJsonTrue(true);
const json::value kJsonFalse(false);

using Single = Context::Impl::Single;

// The value of `ref` in one individual context; null when absent.
const json::value* Lookup(const Single& single, const Ref& ref) {
  switch (ref.special) {
    case Ref::Special::kKind:
      return &single.kind_value;
    case Ref::Special::kAnonymous: {
      // Always a boolean: a context is not anonymous unless it says so.
      const json::value* value = single.attributes->if_contains("anonymous");
      return value != nullptr && value->is_bool() && value->get_bool() ? &kJsonTrue : &kJsonFalse;
    }
    case Ref::Special::kMeta:
      return nullptr;
    case Ref::Special::kNone:
      break;
  }
  const json::object* object = single.attributes;
  const json::value* value = nullptr;
  for (const std::string& component : ref.path) {
    if (object == nullptr) return nullptr;
    value = object->if_contains(component);
    if (value == nullptr) return nullptr;
    object = value->if_object();
  }
  return value != nullptr && value->is_null() ? nullptr : value;
}

std::string_view Str(const json::value& v) { return v.get_string(); }

// One evaluation: a context against one FlagData, for any number of flags. It resolves what the
// flags ask of the context (the individual context of a kind, an attribute's value, a date or
// version parsed from it, a distinct clause's result, a segment's verdict) at most once, by the
// numbers in Symbols; flags mostly ask the same few things, so per clause this is an array lookup.
class Session {
 public:
  // `eager`: the clauses to compute up front (for one flag, none is worth it).
  Session(const FlagData::Impl& flag_data, const Context::Impl& evaluated,
          const EagerClauses* eager)
      : data(flag_data),
        context(evaluated),
        kinds_(flag_data.symbols->kind_count()),
        attributes_(flag_data.symbols->attributes().size()),
        segment_results_(flag_data.segments.size(), 0),
        clause_results_(flag_data.symbols->clause_count(), 0),
        targeted_(flag_data.flags.size(), kNoSymbol) {
    for (const Single& single : evaluated.contexts) {
      if (auto kind = flag_data.symbols->FindKind(single.kind)) {
        kinds_[*kind] = KindState{&single, KeyHash(single.key)};
        FindTargets(*kind, single.key, kinds_[*kind].key_hash);
      }
    }
    clause_results_[Symbols::kAlwaysMatches] = kTrue;
    if (eager != nullptr) ComputeEager(*eager);
  }

  const FlagData::Impl& data;
  const Context::Impl& context;

  // What one top-level flag evaluation accumulates: the stacks for cycle detection, the
  // prerequisites to report, and whether a big segment was consulted.
  std::vector<std::string_view> prerequisite_chain;
  std::vector<std::string_view> segment_chain;
  std::vector<std::string_view> prerequisites;  // direct prerequisites of the top-level flag
  bool big_segments_not_configured = false;

  void StartFlag() {
    prerequisite_chain.clear();
    segment_chain.clear();
    prerequisites.clear();
    big_segments_not_configured = false;
  }

  // The individual context of a kind; null when the context has none.
  [[nodiscard]] const Single* Of(std::uint32_t kind) const { return kinds_[kind].single; }

  // The variation of the first of the flag's individual target lists that has the context's key.
  [[nodiscard]] std::optional<std::int64_t> TargetVariation(std::uint32_t flag) const {
    if (targeted_[flag] == kNoSymbol) return std::nullopt;
    return data.targets.entries[targeted_[flag]].variation;
  }

  // Whether the key of the individual context of `kind` is in `keys`.
  [[nodiscard]] bool KeyIn(std::uint32_t kind, const KeyList& keys) const {
    const KindState& state = kinds_[kind];
    return state.single != nullptr && keys.Contains(state.single->key, state.key_hash);
  }

  // An attribute's value; null when absent (or the context lacks the kind).
  const json::value* Value(std::uint32_t attribute) {
    AttributeState& state = attributes_[attribute];
    if (!state.resolved) {
      const Symbols::Attribute& symbol = data.symbols->attributes()[attribute];
      const Single* single = Of(symbol.kind);
      state.value = single != nullptr ? Lookup(*single, symbol.ref) : nullptr;
      state.resolved = true;
    }
    return state.value;
  }

  // KeyHash of an attribute's value, which is a string.
  std::uint64_t Hash(std::uint32_t attribute) {
    AttributeState& state = attributes_[attribute];
    if (!state.hashed) {
      state.hash = KeyHash(Str(*Value(attribute)));
      state.hashed = true;
    }
    return state.hash;
  }

  // An attribute's value parsed as a date, a semantic version, or code points (it is Value()'s
  // and not an array).
  const std::optional<double>& Time(std::uint32_t attribute) {
    Parsed& parsed = ParsedOf(attribute);
    if (!parsed.has_time) {
      const json::value& value = *Value(attribute);
      if (value.is_string()) parsed.time = ParseTimestamp(Str(value));
      if (value.is_number()) parsed.time = ParseTimestamp(value.to_number<double>());
      parsed.has_time = true;
    }
    return parsed.time;
  }
  const std::optional<SemVer>& Version(std::uint32_t attribute) {
    Parsed& parsed = ParsedOf(attribute);
    if (!parsed.has_version) {
      const json::value& value = *Value(attribute);
      if (value.is_string()) parsed.version = ParseSemVer(Str(value));
      parsed.has_version = true;
    }
    return parsed.version;
  }
  const std::wstring& Wide(std::uint32_t attribute) {
    Parsed& parsed = ParsedOf(attribute);
    if (!parsed.has_wide) {
      parsed.wide = Utf8ToWide(Str(*Value(attribute)));
      parsed.has_wide = true;
    }
    return parsed.wide;
  }

  // Clause results by id: kUnknown, or kFalse or kTrue (bits that AND and OR usefully).
  enum : std::uint8_t { kUnknown = 0, kFalse = 1, kTrue = 2 };
  [[nodiscard]] std::uint8_t Known(std::uint32_t id) const { return clause_results_[id]; }

  // The result of a clause with an id if it is known.
  [[nodiscard]] std::optional<bool> KnownClause(std::uint32_t id) const {
    if (id == kNoSymbol || clause_results_[id] == kUnknown) return std::nullopt;
    return clause_results_[id] == kTrue;
  }

  // The result of a clause with an id (Symbols::ClauseId), computed once.
  template <class Compute>
  bool ClauseResult(std::uint32_t id, Compute&& compute) {
    std::uint8_t& result = clause_results_[id];
    if (result == kUnknown) result = compute() ? kTrue : kFalse;
    return result == kTrue;
  }

  // A segment's verdict for evaluations not nested in another segment (those depend on the
  // chain they are reached through, for cycle detection): computed once, then replayed,
  // including whether it aborts and whether it consulted a big segment.
  template <class Compute>
  bool SegmentVerdict(std::uint32_t index, Compute&& compute) {
    enum : std::uint8_t { kKnown = 1, kMatch = 2, kAborts = 4, kBigSegment = 8 };
    if (segment_results_[index] == 0) {
      const bool big_before = big_segments_not_configured;
      big_segments_not_configured = false;
      std::uint8_t verdict = kKnown;
      try {
        if (compute()) verdict |= kMatch;
      } catch (const Abort&) {
        verdict |= kAborts;
      }
      if (big_segments_not_configured) verdict |= kBigSegment;
      big_segments_not_configured = big_before;
      segment_results_[index] = verdict;
    }
    const std::uint8_t verdict = segment_results_[index];
    if ((verdict & kBigSegment) != 0) big_segments_not_configured = true;
    if ((verdict & kAborts) != 0) throw Abort{};
    return (verdict & kMatch) != 0;
  }

 private:
  struct KindState {
    const Single* single = nullptr;
    std::uint64_t key_hash = 0;
  };
  struct Parsed {
    bool has_time = false;
    bool has_version = false;
    bool has_wide = false;
    std::optional<double> time;
    std::optional<SemVer> version;
    std::wstring wide;
  };
  struct AttributeState {
    const json::value* value = nullptr;
    std::uint64_t hash = 0;
    std::uint32_t parsed = kNoSymbol;  // index in parsed_
    bool resolved = false;
    bool hashed = false;
  };

  void Set(EagerClauses::Member clause, bool match) {
    clause_results_[clause.id] = match != clause.negate ? kTrue : kFalse;
  }

  // Notes, per flag, the first of its target lists that has `key` (TargetIndex).
  void FindTargets(std::uint32_t kind, std::string_view key, std::uint64_t hash) {
    const auto& entries = data.targets.entries;
    auto it = std::lower_bound(
        entries.begin(), entries.end(), hash,
        [](const TargetIndex::Entry& entry, std::uint64_t h) { return entry.hash < h; });
    for (; it != entries.end() && it->hash == hash; ++it) {
      if (it->kind != kind || it->key != key) continue;
      std::uint32_t& first = targeted_[it->flag];
      if (first == kNoSymbol || it->position < entries[first].position)
        first = static_cast<std::uint32_t>(it - entries.begin());
    }
  }

  void ComputeEager(const EagerClauses& eager) {
    for (const EagerClauses::InGroup& group : eager.in) ComputeIn(group);
    for (const EagerClauses::OrderedGroup& group : eager.ordered) ComputeOrdered(group);
    for (const EagerClauses::TextGroup& group : eager.text) ComputeText(group);
  }

  void ComputeIn(const EagerClauses::InGroup& group) {
    const json::value* value = Value(group.attribute);
    if (value == nullptr) {
      for (const auto& clause : group.clauses) clause_results_[clause.id] = kFalse;
      return;  // a missing attribute is a non-match, even negated
    }
    const auto mark = [&](std::string_view text, std::uint64_t hash) {
      const auto by_hash = [](const EagerClauses::InGroup::Entry& entry, std::uint64_t h) {
        return entry.hash < h;
      };
      for (auto it = std::lower_bound(group.entries.begin(), group.entries.end(), hash, by_hash);
           it != group.entries.end() && it->hash == hash; ++it) {
        if (it->key == text) Set(it->clause, true);
      }
    };
    const auto none = [&] {
      for (const EagerClauses::Member clause : group.clauses) Set(clause, false);
    };
    if (value->is_string()) {
      none();
      mark(Str(*value), Hash(group.attribute));
    } else if (const json::array* elements = value->if_array()) {
      // Any element that is not a string could match a number or boolean: leave it to
      // ClauseMatches.
      if (!std::all_of(elements->begin(), elements->end(),
                       [](const json::value& element) { return element.is_string(); }))
        return;
      none();
      for (const json::value& element : *elements) mark(Str(element), KeyHash(Str(element)));
    }
  }

  void ComputeOrdered(const EagerClauses::OrderedGroup& group) {
    const json::value* value = Value(group.attribute);
    if (value == nullptr) {
      for (const auto& clause : group.clauses) clause_results_[clause.clause.id] = kFalse;
      return;
    }
    if (value->is_array()) return;  // element by element: left to ClauseMatches
    double position = std::numeric_limits<double>::quiet_NaN();  // NaN: matches nothing
    switch (group.scale) {
      case EagerClauses::Scale::kNumber:
        if (value->is_number()) position = value->to_number<double>();
        break;
      case EagerClauses::Scale::kTime:
        if (const std::optional<double>& time = Time(group.attribute)) position = *time;
        break;
      case EagerClauses::Scale::kSemVer:
        if (!value->is_string()) break;
        if (const std::optional<SemVer>& version = Version(group.attribute)) {
          const auto& versions = group.versions;
          const auto at = std::lower_bound(
              versions.begin(), versions.end(), &*version,
              [](const SemVer* a, const SemVer* b) { return CompareSemVer(*a, *b) < 0; });
          const auto rank = static_cast<double>(at - versions.begin());
          position =
              at != versions.end() && CompareSemVer(**at, *version) == 0 ? 2 * rank : 2 * rank - 1;
        }
        break;
    }
    for (const EagerClauses::Ordered& clause : group.clauses) {
      bool match = false;
      for (std::uint32_t i = clause.begin; i < clause.end; ++i) {
        const double bound = group.values[i];
        const unsigned order = (position < bound ? 1U : 0U) | (position == bound ? 2U : 0U) |
                               (position > bound ? 4U : 0U);  // none for NaN
        match |= (order & static_cast<unsigned>(clause.compare)) != 0;
      }
      Set(clause.clause, match);
    }
  }

  void ComputeText(const EagerClauses::TextGroup& group) {
    const json::value* value = Value(group.attribute);
    if (value == nullptr) {
      for (const auto& clause : group.clauses) clause_results_[clause.clause.id] = kFalse;
      return;
    }
    if (value->is_array()) return;  // element by element: left to ClauseMatches
    if (!value->is_string()) {
      for (const EagerClauses::Text& clause : group.clauses) Set(clause.clause, false);
      return;
    }
    const std::string_view text = Str(*value);
    for (const EagerClauses::Text& clause : group.clauses) {
      bool match = false;
      for (std::uint32_t i = clause.begin; i < clause.end && !match; ++i) {
        const std::string_view part = group.values[i];
        match = clause.op == Op::kStartsWith ? text.starts_with(part)
                : clause.op == Op::kEndsWith ? text.ends_with(part)
                                             : text.find(part) != std::string_view::npos;
      }
      Set(clause.clause, match);
    }
  }

  Parsed& ParsedOf(std::uint32_t attribute) {
    AttributeState& state = attributes_[attribute];
    if (state.parsed == kNoSymbol) {
      state.parsed = static_cast<std::uint32_t>(parsed_.size());
      parsed_.emplace_back();
    }
    return parsed_[state.parsed];
  }

  std::vector<KindState> kinds_;               // by kind number
  std::vector<AttributeState> attributes_;     // by attribute number
  std::deque<Parsed> parsed_;                  // stable addresses as it grows
  std::vector<std::uint8_t> segment_results_;  // by index in data.segments
  std::vector<std::uint8_t> clause_results_;   // by clause id: kUnknown, kFalse or kTrue
  // By flag index: the entry in data.targets of its first target list with the context's key;
  // kNoSymbol when none has it.
  std::vector<std::uint32_t> targeted_;
};

bool InSetContains(Session& session, const InSet& set, const json::value& actual,
                   std::uint32_t attribute) {
  switch (actual.kind()) {
    case json::kind::string: {
      const std::uint64_t hash =
          attribute == kNoSymbol ? KeyHash(Str(actual)) : session.Hash(attribute);
      return set.strings.Contains(Str(actual), hash);
    }
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      // Numbers are doubles, as in Go's ldvalue and in JavaScript: 2^53 + 1 equals 2^53.
      return std::find(set.numbers.begin(), set.numbers.end(), actual.to_number<double>()) !=
             set.numbers.end();
    case json::kind::bool_:
      return actual.get_bool() ? set.has_true : set.has_false;
    default:
      return false;
  }
}

bool RegexMatches(const std::wstring& text, const boost::wregex& regex) {
  try {
    // JavaScript and RE2 defaults: `^`/`$` only at the ends of the text, `.` not newline.
    return boost::regex_search(text.begin(), text.end(), regex,
                               boost::match_single_line | boost::match_not_dot_newline);
  } catch (const std::exception&) {
    return false;  // too complex for the matcher's bounds: no match rather than a hang
  }
}

// Whether `actual` matches any of the clause's values. `attribute` is the attribute number when
// `actual` is that attribute's value (so the session can keep what it derives from it), and
// kNoSymbol for an element of an array value or a kind.
bool MatchAny(Session& session, const Clause& clause, const json::value& actual,
              std::uint32_t attribute) {
  const auto& values = clause.values;
  const auto strings = [&](auto&& test) {
    if (!actual.is_string()) return false;
    const std::string_view text = Str(actual);
    return std::any_of(values.begin(), values.end(), [&](const ClauseValue& value) {
      return value.json.is_string() && test(text, Str(value.json));
    });
  };
  const auto numbers = [&](auto&& test) {
    if (!actual.is_number()) return false;
    const double number = actual.to_number<double>();
    return std::any_of(values.begin(), values.end(), [&](const ClauseValue& value) {
      return test(number, value.number);  // false for NaN, a value that is not a number
    });
  };
  switch (clause.op) {
    case Op::kIn:
      return InSetContains(session, *clause.in_set, actual, attribute);
    case Op::kEndsWith:
      return strings([](std::string_view a, std::string_view b) { return a.ends_with(b); });
    case Op::kStartsWith:
      return strings([](std::string_view a, std::string_view b) { return a.starts_with(b); });
    case Op::kContains:
      return strings([](std::string_view a, std::string_view b) {
        return a.find(b) != std::string_view::npos;
      });
    case Op::kLessThan:
      return numbers([](double a, double b) { return a < b; });
    case Op::kLessThanOrEqual:
      return numbers([](double a, double b) { return a <= b; });
    case Op::kGreaterThan:
      return numbers([](double a, double b) { return a > b; });
    case Op::kGreaterThanOrEqual:
      return numbers([](double a, double b) { return a >= b; });
    case Op::kBefore:
    case Op::kAfter: {
      std::optional<double> parsed;
      if (attribute == kNoSymbol) {
        if (actual.is_string()) parsed = ParseTimestamp(Str(actual));
        if (actual.is_number()) parsed = ParseTimestamp(actual.to_number<double>());
      }
      const std::optional<double>& time = attribute == kNoSymbol ? parsed : session.Time(attribute);
      if (!time) return false;
      return std::any_of(values.begin(), values.end(), [&](const ClauseValue& value) {
        // A NaN (not a time) compares false either way.
        return clause.op == Op::kBefore ? *time < value.number : *time > value.number;
      });
    }
    case Op::kSemVerEqual:
    case Op::kSemVerLessThan:
    case Op::kSemVerGreaterThan: {
      if (!actual.is_string()) return false;
      std::optional<SemVer> parsed;
      if (attribute == kNoSymbol) parsed = ParseSemVer(Str(actual));
      const std::optional<SemVer>& version =
          attribute == kNoSymbol ? parsed : session.Version(attribute);
      if (!version) return false;
      return std::any_of(values.begin(), values.end(), [&](const ClauseValue& value) {
        if (!value.version) return false;
        const int order = CompareSemVer(*version, *value.version);
        if (clause.op == Op::kSemVerEqual) return order == 0;
        return clause.op == Op::kSemVerLessThan ? order < 0 : order > 0;
      });
    }
    case Op::kMatches: {
      if (!actual.is_string()) return false;
      std::wstring converted;
      if (attribute == kNoSymbol) converted = Utf8ToWide(Str(actual));
      const std::wstring& text = attribute == kNoSymbol ? converted : session.Wide(attribute);
      return std::any_of(values.begin(), values.end(), [&](const ClauseValue& value) {
        return value.regex != nullptr && RegexMatches(text, *value.regex);
      });
    }
    case Op::kSegmentMatch:  // ClauseMatches handles these
    case Op::kUnknown:
      return false;
  }
  return false;
}

bool SegmentContains(Session& session, const Segment& segment);
bool ClauseComputes(Session& session, const Clause& clause);

bool SegmentMatches(Session& session, std::uint32_t segment_key) {
  const std::uint32_t index = session.data.segment_index[segment_key];
  if (index == kNoSymbol) return false;
  const Segment& segment = *session.data.segments[index];
  if (!session.segment_chain.empty()) return SegmentContains(session, segment);
  return session.SegmentVerdict(index, [&] { return SegmentContains(session, segment); });
}

bool ClauseMatches(Session& session, const Clause& clause) {
  if (clause.op == Op::kSegmentMatch) {
    for (const ClauseValue& value : clause.values) {
      if (value.segment != kNoSymbol && SegmentMatches(session, value.segment))
        return !clause.negate;
    }
    return clause.negate;
  }
  if (clause.bad_attribute) throw Abort{};
  if (clause.id != kNoSymbol)
    return session.ClauseResult(clause.id, [&] { return ClauseComputes(session, clause); });
  return ClauseComputes(session, clause);
}

// A clause other than segmentMatch, with a usable attribute.
bool ClauseComputes(Session& session, const Clause& clause) {
  if (clause.is_kind) {
    bool match = false;
    for (const Single& single : session.context.contexts) {
      if (MatchAny(session, clause, single.kind_value, kNoSymbol)) {
        match = true;
        break;
      }
    }
    return match != clause.negate;
  }
  const json::value* actual = session.Value(clause.attribute);
  if (actual == nullptr) return false;  // a missing attribute is a non-match, even negated
  bool match = false;
  if (const json::array* elements = actual->if_array()) {
    match = std::any_of(elements->begin(), elements->end(), [&](const json::value& element) {
      return MatchAny(session, clause, element, kNoSymbol);
    });
  } else {
    match = MatchAny(session, clause, *actual, clause.attribute);
  }
  return match != clause.negate;
}

// Whether every clause of rule `rule` matches; `head` is rules.heads[rule] or a copy.
bool RuleMatches(Session& session, const RuleClauses& rules, std::size_t rule,
                 const RuleClauses::Head& head) {
  // Most rules are decided here, without branching on each clause (see RuleClauses::Head).
  const std::uint8_t k0 = session.Known(head.ids[0]), k1 = session.Known(head.ids[1]),
                     k2 = session.Known(head.ids[2]), k3 = session.Known(head.ids[3]);
  if (((k0 | k1 | k2 | k3) & Session::kFalse) != 0) return false;
  if (head.whole && (k0 & k1 & k2 & k3) == Session::kTrue) return true;
  const std::uint32_t end = rules.ends[rule];
  for (std::uint32_t c = rule == 0 ? 0 : rules.ends[rule - 1]; c < end; ++c) {
    const std::optional<bool> known = session.KnownClause(rules.ids[c]);
    if (!(known ? *known : ClauseMatches(session, rules.clauses[c]))) return false;
  }
  return true;
}

enum class BucketProblem { kNone, kContextLacksKind, kNotBucketable };

struct Bucket {
  double value = 0;
  BucketProblem problem = BucketProblem::kNone;
};

Bucket ComputeBucket(Session& session, bool experiment, const BucketBy& bucket_by,
                     const Sha1Hasher& prefix) {
  if (bucket_by.attribute == kNoSymbol) throw Abort{};  // an invalid bucketBy
  if (session.Of(bucket_by.kind) == nullptr) return {0, BucketProblem::kContextLacksKind};
  const json::value* value = session.Value(bucket_by.attribute);
  if (value == nullptr) return {0, BucketProblem::kNotBucketable};
  std::optional<std::string> number;
  std::string_view text;
  if (value->is_string()) {
    text = Str(*value);
  } else if (value->is_number()) {
    number = BucketableValue(value->to_number<double>());  // numbers are doubles, as in Go and JS
    if (!number) return {0, BucketProblem::kNotBucketable};
    text = *number;
  } else {
    return {0, BucketProblem::kNotBucketable};
  }
  if (!experiment && session.context.secondary) {
    // ld-relay enables the old "secondary key" for old user JSON; experiments never used it.
    return {BucketValue(prefix, {text, ".", *session.context.secondary}), BucketProblem::kNone};
  }
  return {BucketValue(prefix, {text}), BucketProblem::kNone};
}

bool SegmentRuleMatches(Session& session, const Segment& segment, std::size_t index) {
  const SegmentRule& rule = segment.rules[index];
  if (!RuleMatches(session, segment.rule_clauses, index, segment.rule_clauses.heads[index]))
    return false;
  if (!rule.weight) return true;
  const Bucket bucket = ComputeBucket(session, false, rule.bucket_by, rule.bucket_prefix);
  if (bucket.problem == BucketProblem::kContextLacksKind) return false;
  return bucket.value < *rule.weight / 100000.0;
}

bool SegmentContains(Session& session, const Segment& segment) {
  if (segment.malformed) throw Abort{};
  if (std::find(session.segment_chain.begin(), session.segment_chain.end(), segment.key) !=
      session.segment_chain.end())
    throw Abort{};  // circular segment references
  session.segment_chain.push_back(segment.key);
  struct Pop {
    std::vector<std::string_view>& chain;
    ~Pop() { chain.pop_back(); }
  } pop{session.segment_chain};

  if (segment.unbounded) {
    // Big segments need a big-segment store, which flagrelay does not have.
    if (!segment.generation) {
      session.big_segments_not_configured = true;
      return false;
    }
    if (session.Of(segment.unbounded_kind) == nullptr) return false;
    session.big_segments_not_configured = true;
  } else {
    const bool only_user = !session.context.multi && session.Of(kUserKindId) != nullptr;
    if (session.KeyIn(kUserKindId, segment.included)) return true;
    if (!only_user) {
      for (const SegmentTarget& target : segment.included_contexts)
        if (session.KeyIn(target.kind, target.values)) return true;
    }
    if (session.KeyIn(kUserKindId, segment.excluded)) return false;
    if (!only_user) {
      for (const SegmentTarget& target : segment.excluded_contexts)
        if (session.KeyIn(target.kind, target.values)) return false;
    }
  }
  for (std::size_t i = 0; i < segment.rules.size(); ++i)
    if (SegmentRuleMatches(session, segment, i)) return true;
  return false;
}

Detail VariationDetail(const Flag& flag, std::int64_t index, Reason reason) {
  if (index < 0 || static_cast<std::size_t>(index) >= flag.variation_count()) return ErrorDetail();
  return Detail{index, reason};
}

Detail OffDetail(const Flag& flag, Reason reason) {
  if (!flag.off_variation) return Detail{-1, reason};
  return VariationDetail(flag, *flag.off_variation, reason);
}

Detail ResultDetail(Session& session, const Flag& flag, const VariationOrRollout& result,
                    Reason reason) {
  if (result.variation) return VariationDetail(flag, *result.variation, reason);
  if (!result.rollout || result.rollout->variations.empty()) return ErrorDetail();
  const Rollout& rollout = *result.rollout;
  Bucket bucket;
  try {
    bucket = ComputeBucket(session, rollout.experiment, rollout.bucket_by, rollout.bucket_prefix);
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

Detail Evaluate(Session& session, std::uint32_t index, bool top_level);

// Nullopt when every prerequisite is met; else the flag's (off) result.
std::optional<Detail> CheckPrerequisites(Session& session, const Flag& flag, bool top_level) {
  if (flag.prerequisites.empty()) return std::nullopt;
  session.prerequisite_chain.push_back(flag.key);
  struct Pop {
    std::vector<std::string_view>& chain;
    ~Pop() { chain.pop_back(); }
  } pop{session.prerequisite_chain};

  for (const Prerequisite& prerequisite : flag.prerequisites) {
    const std::uint32_t index = session.data.FindFlag(prerequisite.key);
    Reason failed{Reason::kPrerequisiteFailed};
    failed.prerequisite_key = prerequisite.key;
    if (index == kNoSymbol) return OffDetail(flag, failed);
    const Flag* required = session.data.flags[index].get();
    if (std::find(session.prerequisite_chain.begin(), session.prerequisite_chain.end(),
                  required->key) != session.prerequisite_chain.end())
      throw Abort{};  // circular prerequisites
    const Detail result = Evaluate(session, index, false);
    if (top_level) session.prerequisites.push_back(required->key);
    if (!required->on || result.variation < 0 || result.variation != prerequisite.variation)
      return OffDetail(flag, failed);
  }
  return std::nullopt;
}

// Evaluates flag `index` of session.data. Throws Abort for errors that spoil every flag depending
// on this one.
Detail Evaluate(Session& session, std::uint32_t index, bool top_level) {
  const Flag& flag = *session.data.flags[index];
  if (flag.malformed) return ErrorDetail();
  if (!flag.on) return OffDetail(flag, Reason{Reason::kOff});
  if (auto failed = CheckPrerequisites(session, flag, top_level)) return *failed;
  if (auto variation = session.TargetVariation(index))
    return VariationDetail(flag, *variation, Reason{Reason::kTargetMatch});
  // Pointer arithmetic, not operator[]: a flag without rules may start at the end.
  const RuleClauses::Head* heads =
      session.data.rule_heads.data() + session.data.rule_heads_begin[index];
  for (std::size_t i = 0; i < flag.rules.size(); ++i) {
    const Rule& rule = flag.rules[i];
    if (RuleMatches(session, flag.rule_clauses, i, heads[i])) {
      Reason reason{Reason::kRuleMatch};
      reason.rule_index = i;
      return ResultDetail(session, flag, rule.result, reason);
    }
  }
  return ResultDetail(session, flag, flag.fallthrough, Reason{Reason::kFallthrough});
}

bool IsExperiment(const Flag& flag, const Reason& reason) {
  if (reason.in_experiment) return true;
  if (reason.kind == Reason::kFallthrough) return flag.track_events_fallthrough;
  if (reason.kind == Reason::kRuleMatch && reason.rule_index < flag.rules.size())
    return flag.rules[reason.rule_index].track_events;
  return false;
}

// Appends `,"reason":{...}`.
void AppendReason(std::string& out, const Flag& flag, const Reason& reason,
                  bool big_segments_not_configured) {
  switch (reason.kind) {
    case Reason::kOff:
      out += R"(,"reason":{"kind":"OFF")";
      break;
    case Reason::kFallthrough:
      out += R"(,"reason":{"kind":"FALLTHROUGH")";
      break;
    case Reason::kTargetMatch:
      out += R"(,"reason":{"kind":"TARGET_MATCH")";
      break;
    case Reason::kRuleMatch:
      out += flag.rules[reason.rule_index].reason;
      break;
    case Reason::kPrerequisiteFailed:
      out += R"(,"reason":{"kind":"PREREQUISITE_FAILED","prerequisiteKey":)";
      protocol::AppendJsonString(out, reason.prerequisite_key);
      break;
    case Reason::kError:
      out += R"(,"reason":{"kind":"ERROR","errorKind":"MALFORMED_FLAG")";
      break;
  }
  if (reason.in_experiment) out += R"(,"inExperiment":true)";
  if (big_segments_not_configured) out += R"(,"bigSegmentsStatus":"NOT_CONFIGURED")";
  out += '}';
}

// Evaluates flag `index` and appends its served result object, preceded by `"<key>":` if
// `with_key`.
void AppendResult(std::string& out, Session& session, std::uint32_t index, bool with_reasons,
                  bool with_key) {
  const Flag& flag = *session.data.flags[index];
  session.StartFlag();
  Detail detail;
  try {
    detail = Evaluate(session, index, true);
  } catch (const Abort&) {
    detail = ErrorDetail();
  }
  const bool experiment = IsExperiment(flag, detail.reason);
  const std::string_view head = detail.variation >= 0
                                    ? flag.result_heads[static_cast<std::size_t>(detail.variation)]
                                    : flag.null_result_head;
  out += with_key ? head : head.substr(flag.key_prefix_size);
  if (flag.track_events || experiment) out += R"(,"trackEvents":true)";
  if (experiment) out += R"(,"trackReason":true)";
  if (with_reasons || experiment)
    AppendReason(out, flag, detail.reason, session.big_segments_not_configured);
  if (flag.debug_events_until_date != 0) {
    out += R"(,"debugEventsUntilDate":)";
    AppendDecimal(out, flag.debug_events_until_date);
  }
  if (!session.prerequisites.empty()) {
    out += R"(,"prerequisites":[)";
    for (std::size_t i = 0; i < session.prerequisites.size(); ++i) {
      if (i != 0) out += ',';
      protocol::AppendJsonString(out, session.prerequisites[i]);
    }
    out += ']';
  }
  out += '}';
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
  Session session(impl, context.impl(), &impl.eager[static_cast<std::size_t>(options.audience)]);
  for (std::uint32_t i = 0; i < impl.flags.size(); ++i) {
    const Flag& flag = *impl.flags[i];
    if (!flag.VisibleTo(options.audience)) continue;
    Evaluations::Entry entry{flag.key, flag.version, {}};
    AppendResult(entry.json, session, i, options.with_reasons, false);
    evaluations.entries_.push_back(std::move(entry));
  }
  return evaluations;
}

Evaluations EvaluateChanged(const FlagData& data, const FlagData* since, const Context& context,
                            const EvalOptions& options) {
  const FlagData::Impl& impl = data.impl();
  if (since == nullptr || since->impl().lineage != impl.lineage ||
      since->impl().generation > impl.generation) {
    return EvaluateAll(data, context, options);
  }
  const std::uint64_t since_generation = since->impl().generation;
  Evaluations evaluations;
  std::vector<std::pair<std::size_t, std::uint32_t>> changed;  // (entry, flag index)
  for (std::uint32_t i = 0; i < impl.flags.size(); ++i) {
    const Flag& flag = *impl.flags[i];
    if (!flag.VisibleTo(options.audience)) continue;
    const bool evaluate = impl.flag_stamps[i] > since_generation;
    if (evaluate) changed.emplace_back(evaluations.entries_.size(), i);
    evaluations.entries_.push_back({flag.key, flag.version, {}, evaluate});
  }
  if (changed.empty()) return evaluations;
  // The eager clauses pay off when most flags are evaluated; for a few, each clause is computed
  // when a rule asks for it.
  const bool eager = changed.size() * 4 > evaluations.entries_.size();
  Session session(impl, context.impl(),
                  eager ? &impl.eager[static_cast<std::size_t>(options.audience)] : nullptr);
  for (const auto& [entry, index] : changed) {
    AppendResult(evaluations.entries_[entry].json, session, index, options.with_reasons, false);
  }
  return evaluations;
}

void AppendAllJson(std::string& out, const FlagData& data, const Context& context,
                   const EvalOptions& options) {
  const FlagData::Impl& impl = data.impl();
  Session session(impl, context.impl(), &impl.eager[static_cast<std::size_t>(options.audience)]);
  // About what a result with a reason takes, so that the buffer grows once or not at all.
  out.reserve(out.size() + impl.flags.size() * 160);
  out += '{';
  bool first = true;
  for (std::uint32_t i = 0; i < impl.flags.size(); ++i) {
    if (!impl.flags[i]->VisibleTo(options.audience)) continue;
    if (!first) out += ',';
    first = false;
    AppendResult(out, session, i, options.with_reasons, true);
  }
  out += '}';
}

std::optional<std::string> EvaluateFlag(const FlagData& data, std::string_view key,
                                        const Context& context, bool with_reasons) {
  const std::uint32_t index = data.impl().FindFlag(key);
  if (index == kNoSymbol) return std::nullopt;
  Session session(data.impl(), context.impl(), nullptr);
  std::string out;
  AppendResult(out, session, index, with_reasons, false);
  return out;
}

}  // namespace flagrelay::eval
