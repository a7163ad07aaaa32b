#pragma once
// Shared helpers for the evaluation-engine tests: build FlagData from JSON text, parse contexts,
// evaluate one flag and compare results as JSON (numbers compared by value, members unordered).

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "flagrelay/eval/evaluator.hpp"
#include "flagrelay/protocol/data.hpp"

namespace flagrelay::eval::testing {

namespace json = boost::json;

// Parses test-authored JSON; a typo in a test fails loudly rather than silently.
inline json::value J(std::string_view text) {
  json::parse_options options;
  options.max_depth = 4096;
  boost::system::error_code ec;
  json::value value = json::parse(json::string_view(text.data(), text.size()), ec, {}, options);
  if (ec) {
    ADD_FAILURE() << "test JSON does not parse (" << ec.message() << "): " << text;
    return nullptr;
  }
  return value;
}

// Deep equality where every JSON number compares by numeric value (1 == 1.0, int64 == uint64)
// and object members compare regardless of order.
inline bool JsonEqual(const json::value& a, const json::value& b) {
  const bool a_number = a.is_int64() || a.is_uint64() || a.is_double();
  const bool b_number = b.is_int64() || b.is_uint64() || b.is_double();
  if (a_number || b_number) {
    if (!(a_number && b_number)) return false;
    if (a.is_double() || b.is_double()) return a.to_number<double>() == b.to_number<double>();
    if (a.is_int64() && b.is_int64()) return a.get_int64() == b.get_int64();
    if (a.is_uint64() && b.is_uint64()) return a.get_uint64() == b.get_uint64();
    const std::int64_t s = a.is_int64() ? a.get_int64() : b.get_int64();
    const std::uint64_t u = a.is_uint64() ? a.get_uint64() : b.get_uint64();
    return s >= 0 && static_cast<std::uint64_t>(s) == u;
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto& x = a.get_array();
    const auto& y = b.get_array();
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!JsonEqual(x[i], y[i])) return false;
    return true;
  }
  if (a.is_object()) {
    const auto& x = a.get_object();
    const auto& y = b.get_object();
    if (x.size() != y.size()) return false;
    for (const auto& [k, v] : x) {
      const json::value* other = y.if_contains(k);
      if (other == nullptr || !JsonEqual(v, *other)) return false;
    }
    return true;
  }
  return a == b;
}

inline ::testing::AssertionResult SameJson(const json::value& actual, std::string_view expected) {
  const json::value want = J(expected);
  if (JsonEqual(actual, want)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\n  actual:   " << json::serialize(actual)
                                       << "\n  expected: " << json::serialize(want);
}

// ---------------------------------------------------------------------------------------------
// Items and data

// An item keyed by its own "key" member.
inline protocol::ItemPtr Item(std::string_view text) {
  const json::value value = J(text);
  std::string key;
  if (const auto* object = value.if_object()) {
    if (const auto* k = object->if_contains("key"); k != nullptr && k->is_string())
      key = std::string(k->get_string());
  }
  auto item = protocol::ParseItem(key, text);
  if (!item) {
    ADD_FAILURE() << "ParseItem failed: " << item.error().message << ": " << text;
    return protocol::MakeTombstone(key, 0);
  }
  return *item;
}

inline protocol::ItemSet Items(const std::vector<std::string>& texts) {
  std::vector<protocol::ItemPtr> items;
  items.reserve(texts.size());
  for (const auto& text : texts) items.push_back(Item(text));
  return protocol::ItemSet::FromUnsorted(std::move(items));
}

inline std::shared_ptr<const FlagData> Data(const std::vector<std::string>& flags,
                                            const std::vector<std::string>& segments = {},
                                            const FlagData* previous = nullptr) {
  return FlagData::Build(Items(flags), Items(segments), previous);
}

// ---------------------------------------------------------------------------------------------
// Contexts and evaluation

inline Context Ctx(std::string_view text) {
  auto parsed = Context::Parse(text);
  if (!parsed) {
    ADD_FAILURE() << "Context::Parse failed: " << parsed.error().message << ": " << text;
    auto fallback = Context::Parse(R"({"kind":"user","key":"context-that-did-not-parse"})");
    return *fallback;
  }
  return *parsed;
}

// One flag's served result, parsed; null (and a test failure) when the flag is not there.
inline json::value Eval(const FlagData& data, std::string_view key, const Context& context,
                        bool with_reasons = true) {
  const auto result = EvaluateFlag(data, key, context, with_reasons);
  if (!result) {
    ADD_FAILURE() << "EvaluateFlag found no flag '" << key << "'";
    return nullptr;
  }
  return J(*result);
}

inline json::value Eval(const FlagData& data, std::string_view key, std::string_view context,
                        bool with_reasons = true) {
  return Eval(data, key, Ctx(context), with_reasons);
}

// The reason object of a result, or null when it has none.
inline json::value ReasonOf(const json::value& result) {
  if (const auto* object = result.if_object())
    if (const auto* reason = object->if_contains("reason")) return *reason;
  return nullptr;
}

inline json::value ValueOf(const json::value& result) {
  if (const auto* object = result.if_object())
    if (const auto* value = object->if_contains("value")) return *value;
  return json::string("<no value member>");
}

inline json::value VariationOf(const json::value& result) {
  if (const auto* object = result.if_object())
    if (const auto* value = object->if_contains("variation")) return *value;
  return json::string("<no variation member>");
}

// ---------------------------------------------------------------------------------------------
// Clause outcomes: a flag with one rule holding the given clauses.

enum class Outcome { kMatch, kNoMatch, kError, kOther };

inline std::ostream& operator<<(std::ostream& out, Outcome outcome) {
  switch (outcome) {
    case Outcome::kMatch:
      return out << "match";
    case Outcome::kNoMatch:
      return out << "no match";
    case Outcome::kError:
      return out << "ERROR";
    case Outcome::kOther:
      return out << "other";
  }
  return out;
}

// Flag "f": variations [false, true], off → false, fallthrough → false, rule 0 (id "r") → true.
inline std::string RuleFlag(std::string_view clauses_array) {
  return R"({"key":"f","version":1,"on":true,"salt":"salt","variations":[false,true],)"
         R"("offVariation":0,"fallthrough":{"variation":0},"rules":[{"id":"r","variation":1,)"
         R"("clauses":)" +
         std::string(clauses_array) + "}]}";
}

inline Outcome OutcomeOf(const json::value& result) {
  const json::value reason = ReasonOf(result);
  const auto* object = reason.if_object();
  if (object == nullptr) return Outcome::kOther;
  const auto* kind = object->if_contains("kind");
  if (kind == nullptr || !kind->is_string()) return Outcome::kOther;
  const auto value = ValueOf(result);
  if (kind->get_string() == "RULE_MATCH" && value == json::value(true)) return Outcome::kMatch;
  if (kind->get_string() == "FALLTHROUGH" && value == json::value(false)) return Outcome::kNoMatch;
  if (kind->get_string() == "ERROR") return Outcome::kError;
  return Outcome::kOther;
}

// The outcome of rule "r" (one clause) for a context, with optional extra segments/flags.
inline Outcome ClauseOutcome(std::string_view clause, std::string_view context,
                             const std::vector<std::string>& segments = {}) {
  const auto data = Data({RuleFlag("[" + std::string(clause) + "]")}, segments);
  return OutcomeOf(Eval(*data, "f", context));
}

// An integral number or string as JSON text.
inline std::string Quote(std::string_view text) {
  std::string out;
  protocol::AppendJsonString(out, text);
  return out;
}

}  // namespace flagrelay::eval::testing
