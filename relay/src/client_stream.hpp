#pragma once
// What one client-side stream (`/eval/{envId}`, `/meval`) owes its SDK: evaluated results for its
// context. The first update is a `put` of every visible flag; later ones are `patch` and `delete`
// events for the flags whose result changed, or a fresh `put` when a patch would not be accepted
// (the SDK ignores a patch whose version is not above the one it holds, and a segment change alters
// results without changing the flag's version).
//
// Thread safety: none; the owning stream calls Update from its own strand.

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "flagrelay/eval/evaluator.hpp"
#include "flagrelay/protocol/snapshot.hpp"

namespace flagrelay::relay {

class ClientStream {
 public:
  ClientStream(eval::Context context, eval::EvalOptions options)
      : context_(std::move(context)), options_(options) {}

  /// The SSE frames that bring the SDK from what it last got to the results for `data`; empty
  /// when nothing it sees changed.
  [[nodiscard]] std::vector<protocol::SharedBytes> Update(
      std::shared_ptr<const eval::FlagData> data);

 private:
  // What the SDK holds, per flag: a hash of the result instead of the result itself keeps a
  // stream's memory at a few bytes per flag. Keys point into sent_data_.
  struct Sent {
    std::string_view key;
    std::uint64_t version;
    std::uint64_t result_hash;
  };
  eval::Context context_;
  eval::EvalOptions options_;
  std::shared_ptr<const eval::FlagData> sent_data_;  // null until the first put
  std::vector<Sent> sent_;
};

}  // namespace flagrelay::relay
