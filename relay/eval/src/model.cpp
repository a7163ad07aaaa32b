// Compiling flag and segment JSON into the typed model (model.hpp), and building FlagData.
//
// The compiler is strict about types the way LaunchDarkly's Go model is: a known field with the
// wrong JSON type makes the whole item malformed (it then evaluates to ERROR MALFORMED_FLAG)
// rather than being guessed at. null counts as absent.

#include <algorithm>
#include <charconv>
#include <cmath>

#include <boost/json/parse.hpp>

#include "flagrelay/eval/attribute_ref.hpp"
#include "flagrelay/eval/timestamp.hpp"
#include "model.hpp"

namespace flagrelay::eval {
namespace json = boost::json;

bool KeyList::Contains(std::string_view key) const {
  return std::binary_search(keys.begin(), keys.end(), key,
                            [](std::string_view a, std::string_view b) { return a < b; });
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
    KeyList list;
    if (const json::array* array = Array(name)) {
      list.keys.reserve(array->size());
      for (const json::value& element : *array) {
        if (element.is_string()) {
          list.keys.emplace_back(element.get_string());
        } else {
          bad_ = true;
        }
      }
      std::sort(list.keys.begin(), list.keys.end());
    }
    return list;
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

ClauseValue CompileClauseValue(const json::value& json, Op op) {
  ClauseValue value{json, std::nullopt, std::nullopt, nullptr};
  switch (op) {
    case Op::kBefore:
    case Op::kAfter:
      if (json.is_string()) value.time_ms = ParseTimestamp(std::string_view(json.get_string()));
      if (json.is_number()) value.time_ms = ParseTimestamp(json.to_number<double>());
      break;
    case Op::kSemVerEqual:
    case Op::kSemVerLessThan:
    case Op::kSemVerGreaterThan:
      if (json.is_string()) value.version = ParseSemVer(std::string_view(json.get_string()));
      break;
    case Op::kMatches:
      if (json.is_string()) {
        try {
          value.regex = std::make_shared<const boost::wregex>(Utf8ToWide(json.get_string()),
                                                              boost::regex_constants::ECMAScript);
        } catch (const std::exception&) {
          value.regex = nullptr;  // not a valid pattern: never matches
        }
      }
      break;
    default:
      break;
  }
  return value;
}

Clause CompileClause(const json::object* object, bool& bad) {
  const Reader in(object, bad);
  Clause clause;
  const std::string kind = in.String("contextKind");
  clause.context_kind = kind.empty() ? std::string(kUserKind) : kind;
  clause.attribute = CompileRef(in.String("attribute"), kind.empty());
  clause.op = ParseOp(in.String("op"));
  clause.negate = in.Bool("negate");
  if (const json::array* values = in.Array("values")) {
    clause.values.reserve(values->size());
    for (const json::value& value : *values)
      clause.values.push_back(CompileClauseValue(value, clause.op));
  }
  return clause;
}

std::vector<Clause> CompileClauses(const Reader& in, bool& bad) {
  std::vector<Clause> clauses;
  in.Objects("clauses",
             [&](const json::object* clause) { clauses.push_back(CompileClause(clause, bad)); });
  return clauses;
}

VariationOrRollout CompileVariationOrRollout(const json::object* object, bool& bad) {
  VariationOrRollout result;
  const Reader in(object, bad);
  result.variation = in.Int("variation");
  if (const json::object* rollout_json = in.Object("rollout")) {
    const Reader r(rollout_json, bad);
    Rollout rollout;
    rollout.experiment = r.String("kind") == "experiment";
    const std::string kind = r.String("contextKind");
    rollout.context_kind = kind.empty() ? std::string(kUserKind) : kind;
    rollout.bucket_by = CompileRef(r.String("bucketBy"), kind.empty());
    rollout.seed = r.Int("seed");
    r.Objects("variations", [&](const json::object* weighted) {
      const Reader w(weighted, bad);
      rollout.variations.push_back(WeightedVariation{
          w.Int("variation").value_or(0), w.Number("weight").value_or(0), w.Bool("untracked")});
    });
    result.rollout = std::move(rollout);
  }
  return result;
}

std::vector<Target> CompileTargets(const Reader& in, std::string_view name, bool& bad) {
  std::vector<Target> targets;
  in.Objects(name, [&](const json::object* object) {
    const Reader t(object, bad);
    const std::string kind = t.String("contextKind");
    targets.push_back(Target{kind.empty() ? std::string(kUserKind) : kind,
                             t.Int("variation").value_or(-1), t.Strings("values")});
  });
  return targets;
}

std::vector<SegmentTarget> CompileSegmentTargets(const Reader& in, std::string_view name,
                                                 bool& bad) {
  std::vector<SegmentTarget> targets;
  in.Objects(name, [&](const json::object* object) {
    const Reader t(object, bad);
    const std::string kind = t.String("contextKind");
    targets.push_back(
        SegmentTarget{kind.empty() ? std::string(kUserKind) : kind, t.Strings("values")});
  });
  return targets;
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

bool ScalarEqual(const json::value& a, const json::value& b) {
  // Numbers are doubles, as in Go's ldvalue and in JavaScript: 2^53 + 1 equals 2^53.
  if (a.is_number() && b.is_number()) return a.to_number<double>() == b.to_number<double>();
  if (a.is_string() && b.is_string()) return a.get_string() == b.get_string();
  if (a.is_bool() && b.is_bool()) return a.get_bool() == b.get_bool();
  return false;  // objects, arrays and null never compare equal (Go's ClauseFindValue)
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

json::value ParseJson(std::string_view text, boost::system::error_code& ec) {
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  return json::parse(json::string_view(text.data(), text.size()), ec, {}, options);
}

std::shared_ptr<const Flag> CompileFlag(const protocol::ItemPtr& item) {
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
  flag->targets = CompileTargets(in, "targets", bad);
  flag->context_targets = CompileTargets(in, "contextTargets", bad);
  in.Objects("rules", [&](const json::object* object) {
    const Reader r(object, bad);
    Rule rule;
    rule.id = r.String("id");
    rule.clauses = CompileClauses(r, bad);
    rule.result = CompileVariationOrRollout(object, bad);
    rule.track_events = r.Bool("trackEvents");
    flag->rules.push_back(std::move(rule));
  });
  flag->fallthrough = CompileVariationOrRollout(in.Object("fallthrough"), bad);
  flag->off_variation = in.Int("offVariation");
  if (const json::array* variations = in.Array("variations")) {
    flag->variations.reserve(variations->size());
    for (const json::value& variation : *variations) {
      std::string text;
      AppendJsonValue(text, variation);
      flag->variations.push_back(std::move(text));
    }
  }
  flag->salt = in.String("salt");
  flag->track_events = in.Bool("trackEvents");
  flag->track_events_fallthrough = in.Bool("trackEventsFallthrough");
  if (auto until = in.Number("debugEventsUntilDate"); until && *until > 0)
    flag->debug_events_until_date = static_cast<std::uint64_t>(*until);
  flag->malformed = bad;
  return flag;
}

std::shared_ptr<const Segment> CompileSegment(const protocol::ItemPtr& item) {
  auto segment = std::make_shared<Segment>();
  segment->source = item;
  segment->key = item->key;
  bool bad = false;
  const std::optional<json::value> parsed = ParseObject(*item, bad);
  const Reader in(parsed ? &parsed->get_object() : nullptr, bad);
  segment->included = in.Strings("included");
  segment->excluded = in.Strings("excluded");
  segment->included_contexts = CompileSegmentTargets(in, "includedContexts", bad);
  segment->excluded_contexts = CompileSegmentTargets(in, "excludedContexts", bad);
  segment->salt = in.String("salt");
  in.Objects("rules", [&](const json::object* object) {
    const Reader r(object, bad);
    SegmentRule rule;
    rule.clauses = CompileClauses(r, bad);
    rule.weight = r.Number("weight");
    const std::string kind = r.String("rolloutContextKind");
    rule.rollout_context_kind = kind.empty() ? std::string(kUserKind) : kind;
    rule.bucket_by = CompileRef(r.String("bucketBy"), kind.empty());
    segment->rules.push_back(std::move(rule));
  });
  segment->unbounded = in.Bool("unbounded");
  segment->generation = in.Int("generation");
  const std::string kind = in.String("unboundedContextKind");
  segment->unbounded_context_kind = kind.empty() ? std::string(kUserKind) : kind;
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
    Compile compile) {
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
    out.push_back(compile(item));
  }
  return out;
}

}  // namespace

std::shared_ptr<const FlagData> FlagData::Build(const protocol::ItemSet& flags,
                                                const protocol::ItemSet& segments,
                                                const FlagData* previous) {
  std::shared_ptr<FlagData> data(new FlagData());
  Impl& impl = *data->impl_;
  impl.flags = CompileAll<Flag>(flags, previous ? &previous->impl_->flags : nullptr, CompileFlag);
  impl.segments = CompileAll<Segment>(segments, previous ? &previous->impl_->segments : nullptr,
                                      CompileSegment);
  impl.flag_by_key.reserve(impl.flags.size());
  for (const auto& flag : impl.flags) {
    impl.flag_by_key.emplace(flag->key, flag.get());
    if (flag->malformed) ++impl.unparsable;
  }
  impl.segment_by_key.reserve(impl.segments.size());
  for (const auto& segment : impl.segments) {
    impl.segment_by_key.emplace(segment->key, segment.get());
    if (segment->malformed) ++impl.unparsable;
  }
  return data;
}

}  // namespace flagrelay::eval
