#pragma once
// The compiled forms behind Context and FlagData: flags and segments parsed once into typed
// structs, with what operators need precomputed per clause value (regexes, timestamps, versions).
// Internal to flagrelay_eval; Boost.JSON stays out of the public headers.

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
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
#include "flagrelay/eval/sha1.hpp"

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

inline constexpr std::uint32_t kNoSymbol = UINT32_MAX;
inline constexpr std::uint32_t kUserKindId = 0;

// Lookups by string_view in maps keyed by std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};
template <class T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

// The context kinds, attributes (a kind and a reference), segment keys and distinct clauses that
// compiled items refer to, each given a number. Items store numbers, so one evaluation resolves
// each attribute in the context once rather than once per clause, computes each distinct clause
// once, and finds segments without hashing their keys.
// A rebuild copies its predecessor's Symbols and only appends, so the items it reuses keep their
// numbers (FlagData::Build starts afresh when too many numbers are no longer used).
class Symbols {
 public:
  struct Attribute {
    std::uint32_t kind;
    Ref ref;
  };
  /// Clause id 0 is a clause that always matches: RuleClauses pads short rules with it.
  static constexpr std::uint32_t kAlwaysMatches = 0;
  Symbols() {
    Kind(kUserKind);
    ClauseId({});  // kAlwaysMatches: no real clause encodes to nothing
  }

  /// The number of a kind ("" means "user").
  std::uint32_t Kind(std::string_view kind);
  /// The number of an attribute of a kind; kNoSymbol for an undefined or invalid reference.
  std::uint32_t AttributeOf(std::uint32_t kind, const Ref& ref);
  /// The number of a segment key named in a segmentMatch clause.
  std::uint32_t SegmentKey(std::string_view key);
  /// The number of a clause, given as an encoding of everything that decides its result (kind,
  /// attribute, operator, negation, values): flags repeat clauses a lot (the same country, plan
  /// or email domain tests), and an evaluation runs each distinct clause once.
  std::uint32_t ClauseId(std::string encoded);

  [[nodiscard]] std::optional<std::uint32_t> FindKind(std::string_view kind) const;
  [[nodiscard]] std::optional<std::uint32_t> FindSegmentKey(std::string_view key) const;
  [[nodiscard]] std::size_t kind_count() const { return kinds_.size(); }
  [[nodiscard]] const std::vector<Attribute>& attributes() const { return attributes_; }
  [[nodiscard]] const std::vector<std::string>& segment_keys() const { return segment_keys_; }
  [[nodiscard]] std::size_t clause_count() const { return clause_ids_.size(); }
  [[nodiscard]] std::size_t size() const {
    return kinds_.size() + attributes_.size() + segment_keys_.size() + clause_ids_.size();
  }

 private:
  std::vector<std::string> kinds_;
  StringMap<std::uint32_t> kind_ids_;
  std::vector<Attribute> attributes_;
  StringMap<std::uint32_t> attribute_ids_;  // by an encoding of (kind, path)
  std::vector<std::string> segment_keys_;
  StringMap<std::uint32_t> segment_key_ids_;
  StringMap<std::uint32_t> clause_ids_;
};

// Target, segment and `in` clause key lists. An evaluation hashes each context key once (KeyHash),
// so most misses cost one AND against `filter` and the rest a binary search over integers.
struct KeyList {
  std::vector<std::uint64_t> hashes;  // sorted
  std::vector<std::string> keys;      // keys[i] has hashes[i]
  std::uint64_t filter = 0;           // bit (hash >> 58) set for each key

  static KeyList Of(std::vector<std::string> keys);
  [[nodiscard]] bool empty() const { return keys.empty(); }
  [[nodiscard]] bool Contains(std::string_view key, std::uint64_t hash) const {
    return (filter & (std::uint64_t{1} << (hash >> 58))) != 0 && Search(key, hash);
  }

 private:
  [[nodiscard]] bool Search(std::string_view key, std::uint64_t hash) const;
};
std::uint64_t KeyHash(std::string_view key);

enum class Op : std::uint8_t {
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

// One of a clause's values, with what its operator needs prepared. Kept small: evaluation walks
// thousands of these per context, so they should share cache lines.
struct ClauseValue {
  boost::json::value json;
  // lessThan..greaterThanOrEqual: the number; before/after: the time in epoch milliseconds.
  // NaN when the value is neither (then it never matches).
  double number = std::numeric_limits<double>::quiet_NaN();
  std::unique_ptr<const SemVer> version;  // semVer*; null: not a version
  // matches: over code points, not bytes (as Go's RE2 and, for the BMP, JavaScript); null when
  // not a valid pattern.
  std::unique_ptr<const boost::wregex> regex;
  std::uint32_t segment = kNoSymbol;  // segmentMatch: the segment key's number
};

// The values of an `in` clause by type, so that a test is a lookup rather than one comparison
// per value (numbers compare as doubles; objects, arrays and null never match).
struct InSet {
  KeyList strings;
  std::vector<double> numbers;
  bool has_true = false;
  bool has_false = false;
};

struct Clause {
  std::uint32_t attribute = kNoSymbol;  // number in Symbols (of a context kind and a reference)
  bool bad_attribute = false;           // undefined or invalid: the evaluation fails
  bool is_kind = false;                 // the attribute is "kind": matched against every kind
  Op op = Op::kUnknown;
  bool negate = false;
  std::vector<ClauseValue> values;  // empty for `in`, which has `in_set`
  std::unique_ptr<const InSet> in_set;
  std::uint32_t id = kNoSymbol;  // Symbols::ClauseId; none for segmentMatch and long clauses
};

// The clauses of all of an item's rules in one list, rule after rule. Their ids sit in arrays
// of their own: an evaluation mostly finds a clause's result already known by id (Session), and
// then touches neither the clause nor its values.
struct RuleClauses {
  // What decides most rules without looking further: the ids of its first clauses up to the
  // first that could fail the evaluation (segmentMatch, or no id), at most four, padded with
  // Symbols::kAlwaysMatches. Any of them known not to match means the rule does not, since none
  // of them has effects; all matching means the rule does if they are `whole` of it.
  struct Head {
    std::array<std::uint32_t, 4> ids{};
    bool whole = false;
  };
  std::vector<std::uint32_t> ends;  // rule i has clauses [ends[i - 1], ends[i])
  std::vector<std::uint32_t> ids;   // ids[c] == clauses[c].id
  std::vector<Clause> clauses;
  std::vector<Head> heads;  // per rule
};

struct WeightedVariation {
  std::int64_t variation = 0;
  double weight = 0;
  bool untracked = false;
};

// What a percentage rollout (or a weighted segment rule) buckets by.
struct BucketBy {
  std::uint32_t kind = kUserKindId;
  std::uint32_t attribute = kNoSymbol;  // kNoSymbol: invalid bucketBy, the evaluation fails
};

struct Rollout {
  bool experiment = false;
  BucketBy bucket_by;        // the key for experiments and when bucketBy is absent
  Sha1Hasher bucket_prefix;  // BucketHashPrefix of the flag's key and salt, or of the seed
  std::vector<WeightedVariation> variations;
};

struct VariationOrRollout {
  std::optional<std::int64_t> variation;
  std::optional<Rollout> rollout;
};

struct Rule {  // its clauses are in Flag::rule_clauses
  std::string id;
  VariationOrRollout result;
  bool track_events = false;
  std::string reason;  // `,"reason":{"kind":"RULE_MATCH","ruleIndex":..,"ruleId":..` (open)
};

struct Target {
  std::uint32_t kind = kUserKindId;
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
  RuleClauses rule_clauses;
  VariationOrRollout fallthrough;
  std::optional<std::int64_t> off_variation;
  bool track_events = false;
  bool track_events_fallthrough = false;
  std::uint64_t debug_events_until_date = 0;
  bool mobile_visible = true;
  bool environment_id_visible = false;

  // The start of the served result, prepared once per variation:
  // `"<key>":{"value":<variation>,"variation":<index>,"version":<version>`; the first
  // `key_prefix_size` characters are the key and colon, which only the all-flags object has.
  std::vector<std::string> result_heads;
  std::string null_result_head;  // value and variation null
  std::size_t key_prefix_size = 0;
  [[nodiscard]] std::size_t variation_count() const { return result_heads.size(); }
  [[nodiscard]] bool VisibleTo(Audience audience) const {
    switch (audience) {
      case Audience::kServer:
        return true;
      case Audience::kMobile:
        return mobile_visible;
      case Audience::kEnvironmentId:
        return environment_id_visible;
    }
    return false;
  }
};

struct SegmentTarget {
  std::uint32_t kind = kUserKindId;
  KeyList values;
};

struct SegmentRule {  // its clauses are in Segment::rule_clauses
  std::optional<double> weight;
  BucketBy bucket_by;
  Sha1Hasher bucket_prefix;  // with a weight: BucketHashPrefix of the segment's key and salt
};

struct Segment {
  protocol::ItemPtr source;
  std::string key;
  bool malformed = false;
  KeyList included;
  KeyList excluded;
  std::vector<SegmentTarget> included_contexts;
  std::vector<SegmentTarget> excluded_contexts;
  std::vector<SegmentRule> rules;
  RuleClauses rule_clauses;
  bool unbounded = false;
  std::optional<std::int64_t> generation;
  std::uint32_t unbounded_kind = kUserKindId;
};

// The clauses that an evaluation computes before it looks at any flag, grouped by attribute in
// forms that make each a few nanoseconds: most clauses compare one attribute with constants, and
// computing them one by one when a rule first asks was the largest cost of an evaluation.
// Clauses on kinds, `matches` and unknown operators are left to be computed when asked, and so
// is any group whose attribute has a value of a type its form does not cover (an array of
// numbers for `in`, any array for the others). Built per FlagData and audience; it points into
// the FlagData's items.
struct EagerClauses {
  struct Member {
    std::uint32_t id = 0;  // Symbols::ClauseId
    bool negate = false;
  };

  // `in` clauses on one attribute, by the strings they contain.
  struct InGroup {
    struct Entry {
      std::uint64_t hash;  // KeyHash(key)
      std::string_view key;
      Member clause;
    };
    std::uint32_t attribute = 0;
    std::vector<Member> clauses;
    std::vector<Entry> entries;  // sorted by hash
  };

  // Clauses that order the attribute's value against constants: numbers, times (epoch
  // milliseconds) or semantic versions (as ranks among the group's versions).
  enum class Scale : std::uint8_t { kNumber, kTime, kSemVer };
  // Which orders match, as bits (less 1, equal 2, greater 4), so that a test has no branches.
  enum class Compare : std::uint8_t {
    kLess = 1,
    kEqual = 2,
    kLessOrEqual = 3,
    kGreater = 4,
    kGreaterOrEqual = 6
  };
  struct Ordered {
    Member clause;
    Compare compare = Compare::kEqual;
    std::uint32_t begin = 0, end = 0;  // its values in OrderedGroup::values
  };
  struct OrderedGroup {
    std::uint32_t attribute = 0;
    Scale scale = Scale::kNumber;
    std::vector<Ordered> clauses;
    std::vector<double> values;  // NaN for a value that is not of the scale (never matches)
    // kSemVer: the distinct versions, ascending; a value is 2 × its rank, and a context's
    // version 2 × the rank it equals or 2 × the next rank - 1.
    std::vector<const SemVer*> versions;
  };

  // startsWith, endsWith and contains.
  struct Text {
    Member clause;
    Op op = Op::kContains;
    std::uint32_t begin = 0, end = 0;  // its string values in TextGroup::values
  };
  struct TextGroup {
    std::uint32_t attribute = 0;
    std::vector<Text> clauses;
    std::vector<std::string_view> values;
  };

  std::vector<InGroup> in;
  std::vector<OrderedGroup> ordered;
  std::vector<TextGroup> text;

  static EagerClauses Of(const std::vector<const RuleClauses*>& items, std::size_t clause_count);
};

// Every flag's individual targets by context key, so that an evaluation looks up its context's
// keys once instead of searching each flag's lists. A flag's lists are numbered in the order its
// evaluation checks them (contextTargets, whose user entries stand for the `targets` list of the
// same variation; `targets` alone when there are no contextTargets): the first that has the key
// decides.
struct TargetIndex {
  struct Entry {
    std::uint64_t hash;  // KeyHash(key)
    std::string_view key;
    std::uint32_t kind;
    std::uint32_t flag;      // index in FlagData::Impl::flags
    std::uint32_t position;  // of the list among the flag's, in checking order
    std::int64_t variation;
  };
  std::vector<Entry> entries;  // sorted by hash

  static TargetIndex Of(const std::vector<std::shared_ptr<const Flag>>& flags);
};

struct FlagData::Impl {
  std::vector<std::shared_ptr<const Flag>> flags;  // live flags, sorted by key
  std::vector<std::shared_ptr<const Segment>> segments;
  std::unordered_map<std::string_view, std::uint32_t> flag_by_key;  // index in `flags`
  TargetIndex targets;
  // Every flag's RuleClauses::heads, flag after flag (flag i's from rule_heads_begin[i]): an
  // evaluation reads them for one flag after the other, so they had better be adjacent.
  std::vector<RuleClauses::Head> rule_heads;
  std::vector<std::uint32_t> rule_heads_begin;
  std::shared_ptr<const Symbols> symbols;
  // By segment key number: the index in `segments`, kNoSymbol when there is no such segment.
  std::vector<std::uint32_t> segment_index;
  // By Audience: the clauses that the flags it sees may need (theirs, their prerequisites' and
  // every segment's), so that an SDK seeing a few of many flags does not pay for the rest.
  std::array<EagerClauses, 3> eager;
  std::size_t symbols_when_fresh = 0;  // Symbols::size() after the last build from scratch
  std::size_t unparsable = 0;
  // Builds from one another form a lineage (a new one starts with a build from scratch), each one
  // generation on. A flag's stamp is the generation in which its result last may have changed:
  // its own item, a prerequisite or a segment it uses (or one those use) changed, came or went.
  std::uint64_t lineage = 0;
  std::uint64_t generation = 0;
  std::vector<std::uint64_t> flag_stamps;  // by index in `flags`

  /// The index in `flags` of the flag with a key; kNoSymbol when there is none.
  [[nodiscard]] std::uint32_t FindFlag(std::string_view key) const {
    auto it = flag_by_key.find(key);
    return it == flag_by_key.end() ? kNoSymbol : it->second;
  }
};

std::shared_ptr<const Flag> CompileFlag(const protocol::ItemPtr& item, Symbols& symbols);
std::shared_ptr<const Segment> CompileSegment(const protocol::ItemPtr& item, Symbols& symbols);

// JSON helpers shared by the compiler, the context parser and the evaluator.
void AppendJsonValue(std::string& out, const boost::json::value& value);
void AppendDecimal(std::string& out, std::uint64_t value);
/// Nesting allowed in flags and contexts: what the protocol layer accepts for items.
inline constexpr std::size_t kMaxJsonDepth = 64;
boost::json::value ParseJson(std::string_view text, boost::system::error_code& ec);
/// UTF-8 as code points (wchar_t is 32 bits here); invalid sequences become U+FFFD.
std::wstring Utf8ToWide(std::string_view text);

}  // namespace flagrelay::eval
