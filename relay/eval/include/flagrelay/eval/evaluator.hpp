#pragma once
// LaunchDarkly flag evaluation for client-side and mobile SDKs: parse a context, compile an
// environment's flags and segments once per data version, evaluate every flag for one context and
// serve the results in ld-relay's `evalx` shape. Pure code, no I/O.
//
// Semantics follow LaunchDarkly's Go evaluation engine (go-server-sdk-evaluation v3, which
// ld-relay uses), including its "secondary key" option for old user JSON. docs/evaluation.md lists
// where other SDKs differ in edge cases.
//
// Thread safety: Context and FlagData are immutable once built; any number of threads may
// evaluate against them concurrently.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flagrelay/protocol/data.hpp"

namespace flagrelay::eval {

/// An evaluation context: single-kind, multi-kind, or an old-style user.
class Context {
 public:
  /// Parses context JSON (`{"kind":"user","key":..}`, `{"kind":"multi",..}`, or old user JSON
  /// `{"key":..,"custom":{..}}`). Errors are short, client-facing sentences.
  static protocol::Result<Context> Parse(std::string_view json);

  /// The key used by secure mode: the key for a user, `kind:key` for another single kind, and
  /// the sorted `kind:key` pairs joined by ':' for a multi-kind context (':' and '%' in keys
  /// percent-escaped).
  [[nodiscard]] std::string FullyQualifiedKey() const;

  struct Impl;
  [[nodiscard]] const Impl& impl() const { return *impl_; }

 private:
  explicit Context(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

/// One environment's flags and segments compiled for evaluation. Building it parses every item
/// once; a rebuild after a change reuses the compiled items that did not change.
class FlagData {
 public:
  /// `previous` (may be null) lends the compiled form of items that are the very same ItemPtr.
  static std::shared_ptr<const FlagData> Build(const protocol::ItemSet& flags,
                                               const protocol::ItemSet& segments,
                                               const FlagData* previous = nullptr);
  ~FlagData();
  FlagData(const FlagData&) = delete;
  FlagData& operator=(const FlagData&) = delete;

  /// Live flags.
  [[nodiscard]] std::size_t flag_count() const;
  /// Live flags and segments whose JSON does not fit the schema; such a flag evaluates to ERROR
  /// MALFORMED_FLAG (as does one that uses such a segment).
  [[nodiscard]] std::size_t unparsable_count() const;

  struct Impl;
  [[nodiscard]] const Impl& impl() const { return *impl_; }

 private:
  FlagData();
  std::unique_ptr<Impl> impl_;
};

/// Which flags a caller may see.
enum class Audience {
  kServer,         // every flag (`/sdk/evalx` with an SDK key)
  kMobile,         // clientSideAvailability.usingMobileKey (true for old-schema flags)
  kEnvironmentId,  // clientSideAvailability.usingEnvironmentId (or legacy `clientSide`)
};

struct EvalOptions {
  Audience audience = Audience::kServer;
  bool with_reasons = false;
};

/// The results of evaluating every visible flag for one context, sorted by flag key. Each result
/// is the JSON object ld-relay serves for that flag: `{"value":..,"variation":..,"version":..}`
/// plus trackEvents, trackReason, reason, debugEventsUntilDate and prerequisites when present.
/// Keys point into the FlagData evaluated, which must outlive the Evaluations.
class Evaluations {
 public:
  struct Entry {
    std::string_view key;
    std::uint64_t version = 0;  // the flag's version
    std::string json;
    bool evaluated = true;  // false: left out by EvaluateChanged, `json` is empty
  };
  [[nodiscard]] const std::vector<Entry>& entries() const { return entries_; }
  [[nodiscard]] const Entry* Find(std::string_view key) const;

  /// `{"<key>":<result>,...}`: the evalx response body and the client stream's `put` data
  /// (from EvaluateAll: every entry evaluated).
  [[nodiscard]] std::string ToJson() const;
  /// `{"key":"<key>",<result fields>}`: a client stream `patch`.
  [[nodiscard]] static std::string PatchJson(const Entry& entry);

 private:
  friend Evaluations EvaluateAll(const FlagData&, const Context&, const EvalOptions&);
  friend Evaluations EvaluateChanged(const FlagData&, const FlagData*, const Context&,
                                     const EvalOptions&);
  std::vector<Entry> entries_;
};

/// Evaluates every flag visible to `options.audience`. Malformed flags give ERROR results, never
/// exceptions.
[[nodiscard]] Evaluations EvaluateAll(const FlagData& data, const Context& context,
                                      const EvalOptions& options);

/// EvaluateAll for a context already evaluated against `since`, an earlier build of the same
/// data (FlagData::Build with a chain of `previous`): only flags whose result may differ are
/// evaluated (their own item, a prerequisite or a segment they use changed, came or went); the
/// others have `evaluated` false. With no `since`, or one from another chain, it evaluates all.
[[nodiscard]] Evaluations EvaluateChanged(const FlagData& data, const FlagData* since,
                                          const Context& context, const EvalOptions& options);

/// Appends `EvaluateAll(...).ToJson()` to `out` without building per-flag entries (the polling
/// fast path).
void AppendAllJson(std::string& out, const FlagData& data, const Context& context,
                   const EvalOptions& options);

/// One flag's result as served (`{"value":..}`), or nullopt when the flag does not exist.
[[nodiscard]] std::optional<std::string> EvaluateFlag(const FlagData& data, std::string_view key,
                                                      const Context& context, bool with_reasons);

}  // namespace flagrelay::eval
