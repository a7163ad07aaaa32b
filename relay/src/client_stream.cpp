#include "client_stream.hpp"

#include "flagrelay/protocol/sse.hpp"

namespace flagrelay::relay {

namespace {

protocol::SharedBytes Frame(std::string_view event, std::string_view data) {
  return std::make_shared<const std::string>(protocol::EncodeSseEvent(event, data));
}

std::string DeleteJson(const eval::Evaluations::Entry& entry) {
  std::string out = "{\"key\":";
  protocol::AppendJsonString(out, entry.key);
  // Above the version the SDK holds, so that it accepts the delete.
  out += ",\"version\":" + std::to_string(entry.version + 1) + "}";
  return out;
}

}  // namespace

std::vector<protocol::SharedBytes> ClientStream::Update(const eval::FlagData& data) {
  eval::Evaluations now = eval::EvaluateAll(data, context_, options_);
  std::vector<protocol::SharedBytes> frames;
  if (!sent_) {
    frames.push_back(Frame("put", now.ToJson()));
    sent_ = std::move(now);
    return frames;
  }
  // Both lists are sorted by key: walk them together.
  const auto& before = sent_->entries();
  const auto& after = now.entries();
  bool needs_put = false;
  std::size_t i = 0, j = 0;
  while (!needs_put && (i < before.size() || j < after.size())) {
    if (j == after.size() || (i < before.size() && before[i].key < after[j].key)) {
      frames.push_back(Frame("delete", DeleteJson(before[i++])));
    } else if (i == before.size() || after[j].key < before[i].key) {
      frames.push_back(Frame("patch", eval::Evaluations::PatchJson(after[j++])));
    } else {
      if (before[i].json != after[j].json) {
        if (after[j].version <= before[i].version) needs_put = true;
        frames.push_back(Frame("patch", eval::Evaluations::PatchJson(after[j])));
      }
      ++i;
      ++j;
    }
  }
  // Many changes at once (a new `put` upstream) are cheaper as one put than as many patches.
  if (needs_put || frames.size() > after.size() / 2 + 1) {
    frames.clear();
    frames.push_back(Frame("put", now.ToJson()));
  }
  sent_ = std::move(now);
  return frames;
}

}  // namespace flagrelay::relay
