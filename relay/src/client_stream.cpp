#include "client_stream.hpp"

#include "flagrelay/protocol/sse.hpp"

namespace flagrelay::relay {

namespace {

protocol::SharedBytes Frame(std::string_view event, std::string_view data) {
  return std::make_shared<const std::string>(protocol::EncodeSseEvent(event, data));
}

std::string DeleteJson(std::string_view key, std::uint64_t held_version) {
  std::string out = "{\"key\":";
  protocol::AppendJsonString(out, key);
  // Above the version the SDK holds, so that it accepts the delete.
  out += ",\"version\":" + std::to_string(held_version + 1) + "}";
  return out;
}

}  // namespace

std::vector<protocol::SharedBytes> ClientStream::Update(
    std::shared_ptr<const eval::FlagData> data) {
  const eval::Evaluations now = eval::EvaluateAll(*data, context_, options_);
  std::vector<Sent> sent;
  sent.reserve(now.entries().size());
  for (const auto& entry : now.entries())
    sent.push_back({entry.key, entry.version, protocol::StableHash64(entry.json)});

  std::vector<protocol::SharedBytes> frames;
  bool needs_put = sent_data_ == nullptr;
  // Both lists are sorted by key: walk them together.
  std::size_t i = 0, j = 0;
  while (!needs_put && (i < sent_.size() || j < sent.size())) {
    if (j == sent.size() || (i < sent_.size() && sent_[i].key < sent[j].key)) {
      frames.push_back(Frame("delete", DeleteJson(sent_[i].key, sent_[i].version)));
      ++i;
    } else if (i == sent_.size() || sent[j].key < sent_[i].key) {
      frames.push_back(Frame("patch", eval::Evaluations::PatchJson(now.entries()[j])));
      ++j;
    } else {
      if (sent[j].result_hash != sent_[i].result_hash) {
        if (sent[j].version <= sent_[i].version) needs_put = true;
        frames.push_back(Frame("patch", eval::Evaluations::PatchJson(now.entries()[j])));
      }
      ++i;
      ++j;
    }
  }
  // Many changes at once (a new `put` upstream) are cheaper as one put than as many patches.
  if (needs_put || frames.size() > sent.size() / 2 + 1) {
    frames.clear();
    frames.push_back(Frame("put", now.ToJson()));
  }
  sent_ = std::move(sent);
  sent_data_ = std::move(data);  // keeps the keys in sent_ alive
  return frames;
}

}  // namespace flagrelay::relay
