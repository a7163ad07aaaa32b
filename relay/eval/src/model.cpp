// Compiling flag and segment JSON into the typed model (model.hpp), and building FlagData.
//
// The compiler is strict about types the way LaunchDarkly's Go model is: a known field with the
// wrong JSON type makes the whole item malformed (it then evaluates to ERROR MALFORMED_FLAG)
// rather than being guessed at. null counts as absent.

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <limits>

#include <boost/json/parse.hpp>

#include "flagrelay/eval/attribute_ref.hpp"
#include "flagrelay/eval/bucketing.hpp"
#include "flagrelay/eval/timestamp.hpp"
#include "model.hpp"

namespace flagrelay::eval {
namespace json = boost::json;

std::uint64_t KeyHash(std::string_view key) { return std::hash<std::string_view>{}(key); }

KeyList KeyList::Of(std::vector<std::string> keys) {
  std::vector<std::pair<std::uint64_t, std::string>> entries;
  entries.reserve(keys.size());
  for (std::string& key : keys) entries.emplace_back(KeyHash(key), std::move(key));
  std::sort(entries.begin(), entries.end());
  KeyList list;
  list.hashes.reserve(entries.size());
  list.keys.reserve(entries.size());
  for (auto& [hash, key] : entries) {
    list.hashes.push_back(hash);
    list.keys.push_back(std::move(key));
    list.filter |= std::uint64_t{1} << (hash >> 58);
  }
  return list;
}

bool KeyList::Search(std::string_view key, std::uint64_t hash) const {
  if (hashes.size() <= 16) {  // short lists (most targets): a scan without unpredictable branches
    std::size_t found = hashes.size();
    for (std::size_t i = 0; i < hashes.size(); ++i) found = hashes[i] == hash ? i : found;
    if (found == hashes.size()) return false;
    // Equal hashes are adjacent; `found` is the last of them.
    for (std::size_t i = found + 1; i-- > 0 && hashes[i] == hash;)
      if (keys[i] == key) return true;
    return false;
  }
  auto it = std::lower_bound(hashes.begin(), hashes.end(), hash);
  for (; it != hashes.end() && *it == hash; ++it)
    if (keys[static_cast<std::size_t>(it - hashes.begin())] == key) return true;
  return false;
}

std::uint32_t Symbols::Kind(std::string_view kind) {
  if (kind.empty()) kind = kUserKind;
  auto [it, added] =
      kind_ids_.try_emplace(std::string(kind), static_cast<std::uint32_t>(kinds_.size()));
  if (added) kinds_.emplace_back(kind);
  return it->second;
}

std::optional<std::uint32_t> Symbols::FindKind(std::string_view kind) const {
  auto it = kind_ids_.find(kind);
  if (it == kind_ids_.end()) return std::nullopt;
  return it->second;
}

std::uint32_t Symbols::AttributeOf(std::uint32_t kind, const Ref& ref) {
  if (!ref.defined || !ref.valid) return kNoSymbol;
  // (kind, path) as bytes: each part length-prefixed, so no two paths encode alike.
  std::string encoded;
  const auto append_number = [&](std::uint32_t n) {
    encoded.append(reinterpret_cast<const char*>(&n), sizeof n);
  };
  append_number(kind);
  for (const std::string& component : ref.path) {
    append_number(static_cast<std::uint32_t>(component.size()));
    encoded += component;
  }
  auto [it, added] = attribute_ids_.try_emplace(std::move(encoded),
                                                static_cast<std::uint32_t>(attributes_.size()));
  if (added) attributes_.push_back(Attribute{kind, ref});
  return it->second;
}

std::optional<std::uint32_t> Symbols::FindSegmentKey(std::string_view key) const {
  auto it = segment_key_ids_.find(key);
  if (it == segment_key_ids_.end()) return std::nullopt;
  return it->second;
}

std::uint32_t Symbols::ClauseId(std::string encoded) {
  return clause_ids_.try_emplace(std::move(encoded), static_cast<std::uint32_t>(clause_ids_.size()))
      .first->second;
}

std::uint32_t Symbols::SegmentKey(std::string_view key) {
  auto [it, added] = segment_key_ids_.try_emplace(std::string(key),
                                                  static_cast<std::uint32_t>(segment_keys_.size()));
  if (added) segment_keys_.emplace_back(key);
  return it->second;
}

namespace {

// Reads typed fields from one JSON object, remembering whether any had the wrong type.
class Reader {
 public:
  explicit Reader(const json::object* object, bool& bad) : object_(object), bad_(bad) {}

  const json::value* Get(std::string_view name) const {
    if (object_ == nullptr) return nullptr;
    const json::value* value = object_->if_contains(name);
    return value == nullptr || value->is_null() ? nullptr : value;
  }
  bool Bool(std::string_view name) const {
    const json::value* value = Get(name);
    if (value == nullptr) return false;
    if (!value->is_bool()) return Fail(false);
    return value->get_bool();
  }
  std::string String(std::string_view name) const {
    const json::value* value = Get(name);
    if (value == nullptr) return {};
    if (!value->is_string()) return Fail(std::string());
    return std::string(value->get_string());
  }
  std::optional<std::int64_t> Int(std::string_view name) const {
    const json::value* value = Get(name);
    if (value == nullptr) return std::nullopt;
    auto number = ToInt(*value);
    if (!number) bad_ = true;
    return number;
  }
  std::optional<double> Number(std::string_view name) const {
    const json::value* value = Get(name);
    if (value == nullptr) return std::nullopt;
    if (!value->is_number()) return Fail(std::optional<double>());
    return value->to_number<double>();
  }
  const json::array* Array(std::string_view name) const {
    const json::value* value = Get(name);
    if (value == nullptr) return nullptr;
    if (!value->is_array()) return Fail<const json::array*>(nullptr);
    return &value->get_array();
  }
  const json::object* Object(std::string_view name) const {
    const json::value* value = Get(name);
    if (value == nullptr) return nullptr;
    if (!value->is_object()) return Fail<const json::object*>(nullptr);
    return &value->get_object();
  }
  // Each element of an array field that must hold objects.
  template <class F>
  void Objects(std::string_view name, F&& each) const {
    if (const json::array* array = Array(name)) {
      for (const json::value& element : *array) {
        if (!element.is_object()) {
          bad_ = true;
          continue;
        }
        each(&element.get_object());
      }
    }
  }
  KeyList Strings(std::string_view name) const {
    std::vector<std::string> keys;
    if (const json::array* array = Array(name)) {
      keys.reserve(array->size());
      for (const json::value& element : *array) {
        if (element.is_string()) {
          keys.emplace_back(element.get_string());
        } else {
          bad_ = true;
        }
      }
    }
    return KeyList::Of(std::move(keys));
  }

  static std::optional<std::int64_t> ToInt(const json::value& value) {
    if (value.is_int64()) return value.get_int64();
    if (value.is_uint64()) {
      if (value.get_uint64() > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
      return static_cast<std::int64_t>(value.get_uint64());
    }
    if (value.is_double()) {
      const double d = value.get_double();
      if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9.2e18)
        return static_cast<std::int64_t>(d);
    }
    return std::nullopt;
  }

 private:
  template <class T>
  T Fail(T fallback) const {
    bad_ = true;
    return fallback;
  }
  const json::object* object_;
  bool& bad_;
};

// Old-style references (no context kind given) are literal attribute names; context-aware ones
// are paths.
Ref CompileRef(std::string_view text, bool literal) {
  Ref ref;
  if (text.empty()) return ref;
  ref.defined = true;
  const AttributeRef parsed =
      literal ? AttributeRef::FromLiteral(text) : AttributeRef::FromPath(text);
  ref.valid = parsed.Valid();
  ref.path = parsed.Components();
  ref.is_kind = text == "kind";
  if (ref.path.size() == 1) {
    const std::string& name = ref.path[0];
    ref.special = name == "kind"        ? Ref::Special::kKind
                  : name == "anonymous" ? Ref::Special::kAnonymous
                  : name == "_meta"     ? Ref::Special::kMeta
                                        : Ref::Special::kNone;
  }
  return ref;
}

Op ParseOp(std::string_view op) {
  static const std::unordered_map<std::string_view, Op> kOps = {
      {"in", Op::kIn},
      {"endsWith", Op::kEndsWith},
      {"startsWith", Op::kStartsWith},
      {"matches", Op::kMatches},
      {"contains", Op::kContains},
      {"lessThan", Op::kLessThan},
      {"lessThanOrEqual", Op::kLessThanOrEqual},
      {"greaterThan", Op::kGreaterThan},
      {"greaterThanOrEqual", Op::kGreaterThanOrEqual},
      {"before", Op::kBefore},
      {"after", Op::kAfter},
      {"semVerEqual", Op::kSemVerEqual},
      {"semVerLessThan", Op::kSemVerLessThan},
      {"semVerGreaterThan", Op::kSemVerGreaterThan},
      {"segmentMatch", Op::kSegmentMatch},
  };
  auto it = kOps.find(op);
  return it == kOps.end() ? Op::kUnknown : it->second;
}

ClauseValue CompileClauseValue(const json::value& json, Op op, Symbols& symbols) {
  ClauseValue value;
  value.json = json;
  switch (op) {
    case Op::kBefore:
    case Op::kAfter:
      if (std::optional<double> time = json.is_string()   ? ParseTimestamp(json.get_string())
                                       : json.is_number() ? ParseTimestamp(json.to_number<double>())
                                                          : std::nullopt)
        value.number = *time;
      break;
    case Op::kLessThan:
    case Op::kLessThanOrEqual:
    case Op::kGreaterThan:
    case Op::kGreaterThanOrEqual:
      if (json.is_number()) value.number = json.to_number<double>();
      break;
    case Op::kSemVerEqual:
    case Op::kSemVerLessThan:
    case Op::kSemVerGreaterThan:
      if (json.is_string()) {
        if (std::optional<SemVer> version = ParseSemVer(json.get_string()))
          value.version = std::make_unique<const SemVer>(std::move(*version));
      }
      break;
    case Op::kMatches:
      if (json.is_string()) {
        try {
          value.regex = std::make_unique<const boost::wregex>(Utf8ToWide(json.get_string()),
                                                              boost::regex_constants::ECMAScript);
        } catch (const std::exception&) {
          value.regex = nullptr;  // not a valid pattern: never matches
        }
      }
      break;
    case Op::kSegmentMatch:
      if (json.is_string()) value.segment = symbols.SegmentKey(json.get_string());
      break;
    default:
      break;
  }
  return value;
}

std::unique_ptr<const InSet> CompileInSet(const json::array* values) {
  auto set = std::make_unique<InSet>();
  std::vector<std::string> strings;
  if (values != nullptr) {
    for (const json::value& value : *values) {
      if (value.is_string()) strings.emplace_back(value.get_string());
      if (value.is_number()) set->numbers.push_back(value.to_number<double>());
      if (value.is_bool()) (value.get_bool() ? set->has_true : set->has_false) = true;
    }
  }
  set->strings = KeyList::Of(std::move(strings));
  return set;
}

Clause CompileClause(const json::object* object, Symbols& symbols, bool& bad) {
  const Reader in(object, bad);
  Clause clause;
  const std::string kind = in.String("contextKind");
  const Ref attribute = CompileRef(in.String("attribute"), kind.empty());
  clause.bad_attribute = !attribute.defined || !attribute.valid;
  clause.is_kind = attribute.is_kind;
  clause.attribute = symbols.AttributeOf(symbols.Kind(kind), attribute);
  clause.op = ParseOp(in.String("op"));
  clause.negate = in.Bool("negate");
  if (clause.op == Op::kIn) {
    clause.in_set = CompileInSet(in.Array("values"));
  } else if (const json::array* values = in.Array("values")) {
    clause.values.reserve(values->size());
    for (const json::value& value : *values)
      clause.values.push_back(CompileClauseValue(value, clause.op, symbols));
  }
  if (clause.op != Op::kSegmentMatch && !clause.bad_attribute) {
    // Everything that decides the result; values as JSON, each ended by '\0' (never part of
    // serialized JSON). Long clauses (big lists) rarely repeat: they go without an id.
    constexpr std::size_t kMaxEncoded = 1024;
    std::string encoded;
    const auto append = [&](const auto& field) {
      encoded.append(reinterpret_cast<const char*>(&field), sizeof field);
    };
    append(clause.attribute);  // of a context kind
    append(clause.is_kind);
    append(clause.op);
    append(clause.negate);
    if (const json::array* values = in.Array("values")) {
      for (const json::value& value : *values) {
        AppendJsonValue(encoded, value);
        encoded += '\0';
        if (encoded.size() > kMaxEncoded) break;
      }
    }
    if (encoded.size() <= kMaxEncoded) clause.id = symbols.ClauseId(std::move(encoded));
  }
  return clause;
}

// Appends one rule's clauses.
void CompileClauses(const Reader& rule, RuleClauses& out, Symbols& symbols, bool& bad) {
  const std::size_t begin = out.clauses.size();
  rule.Objects("clauses", [&](const json::object* object) {
    Clause clause = CompileClause(object, symbols, bad);
    out.ids.push_back(clause.id);
    out.clauses.push_back(std::move(clause));
  });
  out.ends.push_back(static_cast<std::uint32_t>(out.clauses.size()));
  RuleClauses::Head head;
  head.ids.fill(Symbols::kAlwaysMatches);
  std::size_t c = begin;
  for (; c < out.ids.size() && c - begin < head.ids.size() && out.ids[c] != kNoSymbol; ++c)
    head.ids[c - begin] = out.ids[c];
  head.whole = c == out.ids.size();
  out.heads.push_back(head);
}

// `bucketBy` of the given context kind; the key when absent or for an experiment.
BucketBy CompileBucketBy(const Reader& in, std::string_view kind_field, bool key_only,
                         Symbols& symbols) {
  const std::string kind = in.String(kind_field);
  BucketBy bucket_by;
  bucket_by.kind = symbols.Kind(kind);
  Ref ref = CompileRef(in.String("bucketBy"), kind.empty());
  if (key_only || !ref.defined) ref = CompileRef("key", true);
  bucket_by.attribute = symbols.AttributeOf(bucket_by.kind, ref);
  return bucket_by;
}

// `key` and `salt` are the flag's, for the bucketing hash.
VariationOrRollout CompileVariationOrRollout(const json::object* object, std::string_view key,
                                             std::string_view salt, Symbols& symbols, bool& bad) {
  VariationOrRollout result;
  const Reader in(object, bad);
  result.variation = in.Int("variation");
  if (const json::object* rollout_json = in.Object("rollout")) {
    const Reader r(rollout_json, bad);
    Rollout rollout;
    rollout.experiment = r.String("kind") == "experiment";
    rollout.bucket_by = CompileBucketBy(r, "contextKind", rollout.experiment, symbols);
    rollout.bucket_prefix = BucketHashPrefix(key, salt, r.Int("seed"));
    r.Objects("variations", [&](const json::object* weighted) {
      const Reader w(weighted, bad);
      rollout.variations.push_back(WeightedVariation{
          w.Int("variation").value_or(0), w.Number("weight").value_or(0), w.Bool("untracked")});
    });
    result.rollout = std::move(rollout);
  }
  return result;
}

std::vector<Target> CompileTargets(const Reader& in, std::string_view name, Symbols& symbols,
                                   bool& bad) {
  std::vector<Target> targets;
  in.Objects(name, [&](const json::object* object) {
    const Reader t(object, bad);
    targets.push_back(Target{symbols.Kind(t.String("contextKind")), t.Int("variation").value_or(-1),
                             t.Strings("values")});
  });
  return targets;
}

std::vector<SegmentTarget> CompileSegmentTargets(const Reader& in, std::string_view name,
                                                 Symbols& symbols, bool& bad) {
  std::vector<SegmentTarget> targets;
  in.Objects(name, [&](const json::object* object) {
    const Reader t(object, bad);
    targets.push_back(SegmentTarget{symbols.Kind(t.String("contextKind")), t.Strings("values")});
  });
  return targets;
}

// The parts of the served results that do not depend on the context (see Flag and Rule).
void PrepareResults(Flag& flag, const json::array* variations) {
  std::string key_prefix;
  protocol::AppendJsonString(key_prefix, flag.key);
  key_prefix += ':';
  flag.key_prefix_size = key_prefix.size();
  const auto head = [&](std::string_view value, std::string_view variation) {
    std::string out = key_prefix;
    out += R"({"value":)";
    out += value;
    out += R"(,"variation":)";
    out += variation;
    out += R"(,"version":)";
    AppendDecimal(out, flag.version);
    return out;
  };
  if (variations != nullptr) {
    flag.result_heads.reserve(variations->size());
    for (const json::value& variation : *variations) {
      std::string value;
      AppendJsonValue(value, variation);
      std::string index;
      AppendDecimal(index, flag.result_heads.size());
      flag.result_heads.push_back(head(value, index));
    }
  }
  flag.null_result_head = head("null", "null");
  for (std::size_t i = 0; i < flag.rules.size(); ++i) {
    Rule& rule = flag.rules[i];
    rule.reason = R"(,"reason":{"kind":"RULE_MATCH","ruleIndex":)";
    AppendDecimal(rule.reason, i);
    if (!rule.id.empty()) {
      rule.reason += R"(,"ruleId":)";
      protocol::AppendJsonString(rule.reason, rule.id);
    }
  }
}

// Parses an item's JSON; null (with `bad` set) unless it is an object.
std::optional<json::value> ParseObject(const protocol::Item& item, bool& bad) {
  boost::system::error_code ec;
  json::value value = ParseJson(item.json, ec);
  if (ec || !value.is_object()) {
    bad = true;
    return std::nullopt;
  }
  return value;
}

}  // namespace

void AppendJsonValue(std::string& out, const json::value& value) {
  switch (value.kind()) {
    case json::kind::null:
      out += "null";
      break;
    case json::kind::bool_:
      out += value.get_bool() ? "true" : "false";
      break;
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: {
      char buffer[32];
      std::to_chars_result written{};
      if (value.is_int64()) {
        written = std::to_chars(buffer, buffer + sizeof buffer, value.get_int64());
      } else if (value.is_uint64()) {
        written = std::to_chars(buffer, buffer + sizeof buffer, value.get_uint64());
      } else if (std::isfinite(value.get_double())) {
        // Shortest round-trip form, as JavaScript prints numbers ("1", "0.5", "1e+21").
        written = std::to_chars(buffer, buffer + sizeof buffer, value.get_double());
      } else {
        out += "null";
        break;
      }
      out.append(buffer, written.ptr);
      break;
    }
    case json::kind::string:
      protocol::AppendJsonString(out, value.get_string());
      break;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const json::value& element : value.get_array()) {
        if (!first) out += ',';
        first = false;
        AppendJsonValue(out, element);
      }
      out += ']';
      break;
    }
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& member : value.get_object()) {
        if (!first) out += ',';
        first = false;
        protocol::AppendJsonString(out, member.key());
        out += ':';
        AppendJsonValue(out, member.value());
      }
      out += '}';
      break;
    }
  }
}

std::wstring Utf8ToWide(std::string_view text) {
  static_assert(sizeof(wchar_t) == 4, "code points must fit in wchar_t");
  std::wstring out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    char32_t code = 0;
    if (lead < 0x80) {
      length = 1;
      code = lead;
    } else if ((lead >> 5) == 0x6) {
      length = 2;
      code = lead & 0x1F;
    } else if ((lead >> 4) == 0xE) {
      length = 3;
      code = lead & 0x0F;
    } else if ((lead >> 3) == 0x1E) {
      length = 4;
      code = lead & 0x07;
    }
    bool valid = length != 0 && i + length <= text.size();
    for (std::size_t k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next & 0xC0) == 0x80;
      code = (code << 6) | (next & 0x3F);
    }
    if (!valid) {
      out.push_back(L'\uFFFD');
      ++i;
      continue;
    }
    out.push_back(static_cast<wchar_t>(code));
    i += length;
  }
  return out;
}

void AppendDecimal(std::string& out, std::uint64_t value) {
  char buffer[24];
  out.append(buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr);
}

json::value ParseJson(std::string_view text, boost::system::error_code& ec) {
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  return json::parse(json::string_view(text.data(), text.size()), ec, {}, options);
}

std::shared_ptr<const Flag> CompileFlag(const protocol::ItemPtr& item, Symbols& symbols) {
  auto flag = std::make_shared<Flag>();
  flag->source = item;
  flag->key = item->key;
  flag->version = item->version;
  bool bad = false;
  const std::optional<json::value> parsed = ParseObject(*item, bad);
  const Reader in(parsed ? &parsed->get_object() : nullptr, bad);

  // Visibility first and on its own, so that even a malformed flag reaches only its audience.
  bool ignored = false;
  if (const json::value* availability = in.Get("clientSideAvailability");
      availability != nullptr && availability->is_object()) {
    const Reader a(&availability->get_object(), ignored);
    flag->mobile_visible = a.Bool("usingMobileKey");
    flag->environment_id_visible = a.Bool("usingEnvironmentId");
  } else {
    flag->mobile_visible = true;
    flag->environment_id_visible =
        Reader(parsed ? &parsed->get_object() : nullptr, ignored).Bool("clientSide");
  }

  flag->on = in.Bool("on");
  in.Objects("prerequisites", [&](const json::object* object) {
    const Reader p(object, bad);
    flag->prerequisites.push_back(Prerequisite{p.String("key"), p.Int("variation").value_or(-1)});
  });
  const std::string salt = in.String("salt");
  flag->targets = CompileTargets(in, "targets", symbols, bad);
  flag->context_targets = CompileTargets(in, "contextTargets", symbols, bad);
  in.Objects("rules", [&](const json::object* object) {
    const Reader r(object, bad);
    Rule rule;
    rule.id = r.String("id");
    CompileClauses(r, flag->rule_clauses, symbols, bad);
    rule.result = CompileVariationOrRollout(object, flag->key, salt, symbols, bad);
    rule.track_events = r.Bool("trackEvents");
    flag->rules.push_back(std::move(rule));
  });
  flag->fallthrough =
      CompileVariationOrRollout(in.Object("fallthrough"), flag->key, salt, symbols, bad);
  flag->off_variation = in.Int("offVariation");
  PrepareResults(*flag, in.Array("variations"));
  flag->track_events = in.Bool("trackEvents");
  flag->track_events_fallthrough = in.Bool("trackEventsFallthrough");
  // Epoch milliseconds as an unsigned 64-bit number (Go's ldtime.UnixMillisecondTime): a later
  // date means "for ever", and converting it unchecked would be undefined behaviour.
  if (auto until = in.Number("debugEventsUntilDate"); until && *until > 0) {
    constexpr double kPastLast = 18446744073709551616.0;  // 2^64
    flag->debug_events_until_date = *until < kPastLast ? static_cast<std::uint64_t>(*until)
                                                       : std::numeric_limits<std::uint64_t>::max();
  }
  flag->malformed = bad;
  return flag;
}

std::shared_ptr<const Segment> CompileSegment(const protocol::ItemPtr& item, Symbols& symbols) {
  auto segment = std::make_shared<Segment>();
  segment->source = item;
  segment->key = item->key;
  bool bad = false;
  const std::optional<json::value> parsed = ParseObject(*item, bad);
  const Reader in(parsed ? &parsed->get_object() : nullptr, bad);
  segment->included = in.Strings("included");
  segment->excluded = in.Strings("excluded");
  segment->included_contexts = CompileSegmentTargets(in, "includedContexts", symbols, bad);
  segment->excluded_contexts = CompileSegmentTargets(in, "excludedContexts", symbols, bad);
  const std::string salt = in.String("salt");
  in.Objects("rules", [&](const json::object* object) {
    const Reader r(object, bad);
    SegmentRule rule;
    CompileClauses(r, segment->rule_clauses, symbols, bad);
    rule.weight = r.Number("weight");
    rule.bucket_by = CompileBucketBy(r, "rolloutContextKind", false, symbols);
    if (rule.weight) rule.bucket_prefix = BucketHashPrefix(segment->key, salt, std::nullopt);
    segment->rules.push_back(std::move(rule));
  });
  segment->unbounded = in.Bool("unbounded");
  segment->generation = in.Int("generation");
  segment->unbounded_kind = symbols.Kind(in.String("unboundedContextKind"));
  segment->malformed = bad;
  return segment;
}

// ---------------------------------------------------------------------------------------------
// FlagData

FlagData::FlagData() : impl_(std::make_unique<Impl>()) {}
FlagData::~FlagData() = default;

std::size_t FlagData::flag_count() const { return impl_->flags.size(); }
std::size_t FlagData::unparsable_count() const { return impl_->unparsable; }

namespace {

// Compiles the live items of `items`, reusing `previous` entries built from the very same item.
template <class T, class Compile>
std::vector<std::shared_ptr<const T>> CompileAll(
    const protocol::ItemSet& items, const std::vector<std::shared_ptr<const T>>* previous,
    Symbols& symbols, Compile compile) {
  std::vector<std::shared_ptr<const T>> out;
  out.reserve(items.live_count());
  std::size_t p = 0;  // both lists are sorted by key: walk them together
  for (const protocol::ItemPtr& item : items.items()) {
    if (item->deleted) continue;
    if (previous != nullptr) {
      while (p < previous->size() && (*previous)[p]->key < item->key) ++p;
      if (p < previous->size() && (*previous)[p]->source == item) {
        out.push_back((*previous)[p]);
        continue;
      }
    }
    out.push_back(compile(item, symbols));
  }
  return out;
}

// The rules an evaluation for `audience` may run: those of the flags it sees and of their
// prerequisites, and every segment's.
std::vector<const RuleClauses*> RuleClausesFor(const FlagData::Impl& impl, Audience audience) {
  std::vector<const RuleClauses*> out;
  std::vector<bool> added(impl.flags.size(), false);
  std::vector<std::uint32_t> pending;
  for (std::uint32_t i = 0; i < impl.flags.size(); ++i)
    if (impl.flags[i]->VisibleTo(audience)) pending.push_back(i);
  while (!pending.empty()) {
    const std::uint32_t index = pending.back();
    pending.pop_back();
    if (added[index]) continue;
    added[index] = true;
    out.push_back(&impl.flags[index]->rule_clauses);
    for (const Prerequisite& prerequisite : impl.flags[index]->prerequisites) {
      const std::uint32_t required = impl.FindFlag(prerequisite.key);
      if (required != kNoSymbol && !added[required]) pending.push_back(required);
    }
  }
  for (const auto& segment : impl.segments) out.push_back(&segment->rule_clauses);
  return out;
}

}  // namespace

TargetIndex TargetIndex::Of(const std::vector<std::shared_ptr<const Flag>>& flags) {
  TargetIndex index;
  for (std::size_t f = 0; f < flags.size(); ++f) {
    const Flag& flag = *flags[f];
    std::uint32_t position = 0;
    const auto add = [&](const Target& target, std::uint32_t kind) {
      for (std::size_t i = 0; i < target.values.keys.size(); ++i) {
        index.entries.push_back(Entry{target.values.hashes[i], target.values.keys[i], kind,
                                      static_cast<std::uint32_t>(f), position, target.variation});
      }
      ++position;
    };
    // `targets` lists are of user keys, as in the Go evaluator.
    if (flag.context_targets.empty()) {
      for (const Target& target : flag.targets) add(target, kUserKindId);
      continue;
    }
    for (const Target& target : flag.context_targets) {
      if (target.kind != kUserKindId || !target.values.empty()) {
        add(target, target.kind);
        continue;
      }
      // A user entry without values only fixes where the `targets` list of its variation goes.
      auto user_target = std::find_if(
          flag.targets.begin(), flag.targets.end(),
          [&](const Target& candidate) { return candidate.variation == target.variation; });
      if (user_target != flag.targets.end()) add(*user_target, kUserKindId);
    }
  }
  std::sort(index.entries.begin(), index.entries.end(),
            [](const Entry& a, const Entry& b) { return a.hash < b.hash; });
  return index;
}

namespace {

// Each flag's stamp (FlagData::Impl::flag_stamps): `before`'s for a flag whose result cannot
// differ from what `before` gave, else `impl.generation`. Both share symbol numbers (impl's
// were copied from before's and only grew).
void StampFlags(FlagData::Impl& impl, const FlagData::Impl* before) {
  impl.flag_stamps.assign(impl.flags.size(), impl.generation);
  if (before == nullptr) return;
  enum State : std::uint8_t { kUnknown, kVisiting, kSame, kChanged };
  const auto index_of = [](const std::vector<std::uint32_t>& index, std::uint32_t id) {
    return id < index.size() ? index[id] : kNoSymbol;
  };
  std::vector<State> segment_state(impl.symbols->segment_keys().size(), kUnknown);
  std::vector<State> flag_state(impl.flags.size(), kUnknown);
  // A cycle (which evaluation reports as an error) counts as changed: never wrong, only slower.
  const auto segment_changed = [&](auto& self, std::uint32_t id) -> bool {
    State& state = segment_state[id];
    if (state != kUnknown) return state != kSame;
    state = kVisiting;
    const std::uint32_t now = index_of(impl.segment_index, id);
    const std::uint32_t then = index_of(before->segment_index, id);
    bool changed = now == kNoSymbol || then == kNoSymbol
                       ? now != then
                       : impl.segments[now] != before->segments[then];
    if (!changed && now != kNoSymbol) {
      for (const Clause& clause : impl.segments[now]->rule_clauses.clauses) {
        if (clause.op != Op::kSegmentMatch) continue;
        for (const ClauseValue& value : clause.values) {
          if (value.segment != kNoSymbol && self(self, value.segment)) changed = true;
        }
      }
    }
    state = changed ? kChanged : kSame;
    return changed;
  };
  const auto flag_changed = [&](auto& self, std::uint32_t i) -> bool {
    State& state = flag_state[i];
    if (state != kUnknown) return state != kSame;
    state = kVisiting;
    const Flag& flag = *impl.flags[i];
    const std::uint32_t then = before->FindFlag(flag.key);
    bool changed = then == kNoSymbol || before->flags[then] != impl.flags[i];
    for (const Prerequisite& prerequisite : flag.prerequisites) {
      if (changed) break;
      const std::uint32_t now_p = impl.FindFlag(prerequisite.key);
      const std::uint32_t then_p = before->FindFlag(prerequisite.key);
      changed = now_p == kNoSymbol || then_p == kNoSymbol ? now_p != then_p : self(self, now_p);
    }
    for (const Clause& clause : flag.rule_clauses.clauses) {
      if (changed) break;
      if (clause.op != Op::kSegmentMatch) continue;
      for (const ClauseValue& value : clause.values) {
        if (value.segment != kNoSymbol && segment_changed(segment_changed, value.segment)) {
          changed = true;
        }
      }
    }
    flag_state[i] = changed ? kChanged : kSame;
    return changed;
  };
  for (std::uint32_t i = 0; i < impl.flags.size(); ++i) {
    if (!flag_changed(flag_changed, i)) {
      impl.flag_stamps[i] = before->flag_stamps[before->FindFlag(impl.flags[i]->key)];
    }
  }
}

}  // namespace

std::shared_ptr<const FlagData> FlagData::Build(const protocol::ItemSet& flags,
                                                const protocol::ItemSet& segments,
                                                const FlagData* previous) {
  // Reused items keep their symbol numbers, so the numbering only grows; once it is well past
  // what a build from scratch needed (items churned), start afresh to keep it bounded.
  if (previous != nullptr &&
      previous->impl_->symbols->size() > 2 * previous->impl_->symbols_when_fresh + 256)
    previous = nullptr;
  const Impl* before = previous != nullptr ? previous->impl_.get() : nullptr;
  auto symbols =
      before != nullptr ? std::make_shared<Symbols>(*before->symbols) : std::make_shared<Symbols>();

  std::shared_ptr<FlagData> data(new FlagData());
  Impl& impl = *data->impl_;
  impl.flags = CompileAll<Flag>(flags, before ? &before->flags : nullptr, *symbols, CompileFlag);
  impl.segments =
      CompileAll<Segment>(segments, before ? &before->segments : nullptr, *symbols, CompileSegment);
  impl.flag_by_key.reserve(impl.flags.size());
  for (std::size_t i = 0; i < impl.flags.size(); ++i) {
    impl.flag_by_key.emplace(impl.flags[i]->key, static_cast<std::uint32_t>(i));
    if (impl.flags[i]->malformed) ++impl.unparsable;
  }
  impl.targets = TargetIndex::Of(impl.flags);
  for (const auto& flag : impl.flags) {
    impl.rule_heads_begin.push_back(static_cast<std::uint32_t>(impl.rule_heads.size()));
    impl.rule_heads.insert(impl.rule_heads.end(), flag->rule_clauses.heads.begin(),
                           flag->rule_clauses.heads.end());
  }
  impl.segment_index.assign(symbols->segment_keys().size(), kNoSymbol);
  for (std::size_t i = 0; i < impl.segments.size(); ++i) {
    const Segment& segment = *impl.segments[i];
    if (auto id = symbols->FindSegmentKey(segment.key))
      impl.segment_index[*id] = static_cast<std::uint32_t>(i);
    if (segment.malformed) ++impl.unparsable;
  }
  for (const Audience audience : {Audience::kServer, Audience::kMobile, Audience::kEnvironmentId}) {
    impl.eager[static_cast<std::size_t>(audience)] =
        EagerClauses::Of(RuleClausesFor(impl, audience), symbols->clause_count());
  }
  impl.symbols_when_fresh = before != nullptr ? before->symbols_when_fresh : symbols->size();
  impl.symbols = std::move(symbols);
  static std::atomic<std::uint64_t> lineages{0};
  impl.lineage = before != nullptr ? before->lineage : ++lineages;
  impl.generation = before != nullptr ? before->generation + 1 : 1;
  StampFlags(impl, before);
  return data;
}

}  // namespace flagrelay::eval
