// Building EagerClauses (model.hpp): the distinct clauses of a FlagData, grouped by attribute in
// the forms Session::ComputeEager runs.

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "model.hpp"

namespace flagrelay::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct OrderedOp {
  EagerClauses::Scale scale;
  EagerClauses::Compare compare;
};

std::optional<OrderedOp> OrderedOpOf(Op op) {
  using S = EagerClauses::Scale;
  using C = EagerClauses::Compare;
  switch (op) {
    case Op::kLessThan:
      return OrderedOp{S::kNumber, C::kLess};
    case Op::kLessThanOrEqual:
      return OrderedOp{S::kNumber, C::kLessOrEqual};
    case Op::kGreaterThan:
      return OrderedOp{S::kNumber, C::kGreater};
    case Op::kGreaterThanOrEqual:
      return OrderedOp{S::kNumber, C::kGreaterOrEqual};
    case Op::kBefore:
      return OrderedOp{S::kTime, C::kLess};
    case Op::kAfter:
      return OrderedOp{S::kTime, C::kGreater};
    case Op::kSemVerEqual:
      return OrderedOp{S::kSemVer, C::kEqual};
    case Op::kSemVerLessThan:
      return OrderedOp{S::kSemVer, C::kLess};
    case Op::kSemVerGreaterThan:
      return OrderedOp{S::kSemVer, C::kGreater};
    default:
      return std::nullopt;
  }
}

// The group of `groups` for a key, created on first use.
template <class Group>
Group& GroupFor(std::vector<Group>& groups, std::unordered_map<std::uint64_t, std::size_t>& index,
                std::uint64_t key) {
  auto [it, added] = index.try_emplace(key, groups.size());
  if (added) groups.emplace_back();
  return groups[it->second];
}

// Replaces each semantic version by twice its rank among the group's distinct versions.
void RankVersions(EagerClauses::OrderedGroup& group,
                  const std::vector<const SemVer*>& value_versions) {
  std::vector<const SemVer*>& versions = group.versions;
  for (const SemVer* version : value_versions)
    if (version != nullptr) versions.push_back(version);
  const auto less = [](const SemVer* a, const SemVer* b) { return CompareSemVer(*a, *b) < 0; };
  std::sort(versions.begin(), versions.end(), less);
  versions.erase(
      std::unique(versions.begin(), versions.end(),
                  [](const SemVer* a, const SemVer* b) { return CompareSemVer(*a, *b) == 0; }),
      versions.end());
  for (std::size_t i = 0; i < value_versions.size(); ++i) {
    if (value_versions[i] == nullptr) continue;  // stays NaN
    const auto rank = std::lower_bound(versions.begin(), versions.end(), value_versions[i], less) -
                      versions.begin();
    group.values[i] = 2.0 * static_cast<double>(rank);
  }
}

}  // namespace

EagerClauses EagerClauses::Of(const std::vector<const RuleClauses*>& items,
                              std::size_t clause_count) {
  EagerClauses eager;
  std::vector<bool> seen(clause_count, false);
  std::unordered_map<std::uint64_t, std::size_t> in_index;
  std::unordered_map<std::uint64_t, std::size_t> ordered_index;
  std::unordered_map<std::uint64_t, std::size_t> text_index;
  std::vector<std::vector<const SemVer*>> value_versions;  // per ordered group, by value

  for (const RuleClauses* rules : items) {
    for (const Clause& clause : rules->clauses) {
      if (clause.id == kNoSymbol || clause.is_kind || seen[clause.id]) continue;
      seen[clause.id] = true;
      const Member member{clause.id, clause.negate};
      if (clause.op == Op::kIn) {
        InGroup& group = GroupFor(eager.in, in_index, clause.attribute);
        group.attribute = clause.attribute;
        group.clauses.push_back(member);
        const KeyList& strings = clause.in_set->strings;
        for (std::size_t i = 0; i < strings.keys.size(); ++i)
          group.entries.push_back(InGroup::Entry{strings.hashes[i], strings.keys[i], member});
      } else if (const std::optional<OrderedOp> ordered = OrderedOpOf(clause.op)) {
        const std::uint64_t key =
            std::uint64_t{clause.attribute} << 8 | static_cast<std::uint64_t>(ordered->scale);
        OrderedGroup& group = GroupFor(eager.ordered, ordered_index, key);
        const auto index = static_cast<std::size_t>(&group - eager.ordered.data());
        if (index == value_versions.size()) value_versions.emplace_back();
        std::vector<const SemVer*>& versions = value_versions[index];
        group.attribute = clause.attribute;
        group.scale = ordered->scale;
        const auto begin = static_cast<std::uint32_t>(group.values.size());
        for (const ClauseValue& value : clause.values) {
          group.values.push_back(ordered->scale == Scale::kSemVer ? kNaN : value.number);
          versions.push_back(value.version.get());
        }
        group.clauses.push_back(Ordered{member, ordered->compare, begin,
                                        static_cast<std::uint32_t>(group.values.size())});
      } else if (clause.op == Op::kStartsWith || clause.op == Op::kEndsWith ||
                 clause.op == Op::kContains) {
        TextGroup& group = GroupFor(eager.text, text_index, clause.attribute);
        group.attribute = clause.attribute;
        const auto begin = static_cast<std::uint32_t>(group.values.size());
        for (const ClauseValue& value : clause.values)
          if (value.json.is_string()) group.values.push_back(value.json.get_string());
        group.clauses.push_back(
            Text{member, clause.op, begin, static_cast<std::uint32_t>(group.values.size())});
      }
    }
  }
  for (InGroup& group : eager.in) {
    std::sort(group.entries.begin(), group.entries.end(),
              [](const InGroup::Entry& a, const InGroup::Entry& b) { return a.hash < b.hash; });
  }
  for (std::size_t g = 0; g < eager.ordered.size(); ++g) {
    if (eager.ordered[g].scale == Scale::kSemVer) RankVersions(eager.ordered[g], value_versions[g]);
  }
  return eager;
}

}  // namespace flagrelay::eval
