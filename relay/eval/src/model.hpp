#pragma once
// The compiled forms behind Context and FlagData: flags and segments parsed once into typed
// structs, with what operators need precomputed per clause value (regexes, timestamps, versions).
// Internal to flagrelay_eval; Boost.JSON stays out of the public headers.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/json/value.hpp>
#include <boost/regex.hpp>

#include "flagrelay/eval/evaluator.hpp"
#include "flagrelay/eval/semver.hpp"

namespace flagrelay::eval {

inline constexpr std::string_view kUserKind = "user";

// ---------------------------------------------------------------------------------------------
// Contexts

struct Context::Impl {
  struct Single {
    std::string kind;
    boost::json::value kind_value;          // the kind as a JSON string, for the `kind` attribute
    const boost::json::object* attributes;  // points into `root`
    std::string key;
  };
  boost::json::value root;  // the parsed JSON; for an old user, the converted single-kind object
  std::vector<Single> contexts;  // one per kind, in the order given
  bool multi = false;
  std::optional<std::string> secondary;  // old user JSON only (Go's enableSecondaryKey)

  [[nodiscard]] const Single* Find(std::string_view kind) const {
    for (const auto& single : contexts)
      if (single.kind == kind) return &single;
    return nullptr;
  }
};

// ---------------------------------------------------------------------------------------------
// Flags and segments

// An attribute reference as compiled from a clause or bucketBy. `defined` is false when the
// JSON had none (or an empty one); `valid` false when it could not be parsed.
struct Ref {
  std::vector<std::string> path;
  bool defined = false;
  bool valid = false;
  bool is_kind = false;  // exactly "kind": matched against the context's kinds
  // One-component references that lookups treat specially, decided once at compile time.
  enum class Special { kNone, kKind, kAnonymous, kMeta } special = Special::kNone;
};

enum class Op {
  kIn,
  kEndsWith,
  kStartsWith,
  kMatches,
  kContains,
  kLessThan,
  kLessThanOrEqual,
  kGreaterThan,
  kGreaterThanOrEqual,
  kBefore,
  kAfter,
  kSemVerEqual,
  kSemVerLessThan,
  kSemVerGreaterThan,
  kSegmentMatch,
  kUnknown,
};

struct ClauseValue {
  boost::json::value json;
  std::optional<double> time_ms;  // before/after
  std::optional<SemVer> version;  // semVer*
  // matches: over code points, not bytes (as Go's RE2 and, for the BMP, JavaScript); null when
  // not a valid pattern.
  std::shared_ptr<const boost::wregex> regex;
};

struct Clause {
  std::string context_kind;  // "user" when absent
  Ref attribute;
  Op op = Op::kUnknown;
  bool negate = false;
  std::vector<ClauseValue> values;
};

struct WeightedVariation {
  std::int64_t variation = 0;
  double weight = 0;
  bool untracked = false;
};

struct Rollout {
  bool experiment = false;
  std::string context_kind;  // "user" when absent
  Ref bucket_by;
  std::optional<std::int64_t> seed;
  std::vector<WeightedVariation> variations;
};

struct VariationOrRollout {
  std::optional<std::int64_t> variation;
  std::optional<Rollout> rollout;
};

struct Rule {
  std::string id;
  std::vector<Clause> clauses;
  VariationOrRollout result;
  bool track_events = false;
};

// Sorted keys, searched by binary search.
struct KeyList {
  std::vector<std::string> keys;
  [[nodiscard]] bool Contains(std::string_view key) const;
};

struct Target {
  std::string context_kind;  // "user" when absent
  std::int64_t variation = 0;
  KeyList values;
};

struct Prerequisite {
  std::string key;
  std::int64_t variation = 0;
};

struct Flag {
  protocol::ItemPtr source;  // the item compiled (kept so a rebuild can recognise it)
  std::string key;
  std::uint64_t version = 0;
  bool malformed = false;  // the JSON did not have the flag schema: evaluates to ERROR
  bool on = false;
  std::vector<Prerequisite> prerequisites;
  std::vector<Target> targets;
  std::vector<Target> context_targets;
  std::vector<Rule> rules;
  VariationOrRollout fallthrough;
  std::optional<std::int64_t> off_variation;
  std::vector<std::string> variations;  // each serialized as JSON
  std::string salt;
  bool track_events = false;
  bool track_events_fallthrough = false;
  std::uint64_t debug_events_until_date = 0;
  bool mobile_visible = true;
  bool environment_id_visible = false;
};

struct SegmentTarget {
  std::string context_kind;
  KeyList values;
};

struct SegmentRule {
  std::vector<Clause> clauses;
  std::optional<double> weight;
  Ref bucket_by;
  std::string rollout_context_kind;  // "user" when absent
};

struct Segment {
  protocol::ItemPtr source;
  std::string key;
  bool malformed = false;
  KeyList included;
  KeyList excluded;
  std::vector<SegmentTarget> included_contexts;
  std::vector<SegmentTarget> excluded_contexts;
  std::string salt;
  std::vector<SegmentRule> rules;
  bool unbounded = false;
  std::optional<std::int64_t> generation;
  std::string unbounded_context_kind;  // "user" when absent
};

struct FlagData::Impl {
  std::vector<std::shared_ptr<const Flag>> flags;  // live flags, sorted by key
  std::vector<std::shared_ptr<const Segment>> segments;
  std::unordered_map<std::string_view, const Flag*> flag_by_key;
  std::unordered_map<std::string_view, const Segment*> segment_by_key;
  std::size_t unparsable = 0;

  [[nodiscard]] const Flag* FindFlag(std::string_view key) const {
    auto it = flag_by_key.find(key);
    return it == flag_by_key.end() ? nullptr : it->second;
  }
  [[nodiscard]] const Segment* FindSegment(std::string_view key) const {
    auto it = segment_by_key.find(key);
    return it == segment_by_key.end() ? nullptr : it->second;
  }
};

std::shared_ptr<const Flag> CompileFlag(const protocol::ItemPtr& item);
std::shared_ptr<const Segment> CompileSegment(const protocol::ItemPtr& item);

// JSON helpers shared by the compiler, the context parser and the evaluator.
void AppendJsonValue(std::string& out, const boost::json::value& value);
/// Equality for the `in` operator: numbers by value, strings, booleans; nothing else is equal.
bool ScalarEqual(const boost::json::value& a, const boost::json::value& b);
/// Nesting allowed in flags and contexts: what the protocol layer accepts for items.
inline constexpr std::size_t kMaxJsonDepth = 64;
boost::json::value ParseJson(std::string_view text, boost::system::error_code& ec);
/// UTF-8 as code points (wchar_t is 32 bits here); invalid sequences become U+FFFD.
std::wstring Utf8ToWide(std::string_view text);

}  // namespace flagrelay::eval
