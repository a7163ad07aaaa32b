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
  // Only the flags whose result may have changed since the last update are evaluated again: with
  // thousands of streams, a change to one flag costs one evaluation each, not one per flag.
  eval::Evaluations now = eval::EvaluateChanged(*data, sent_data_.get(), context_, options_);
  std::vector<Sent> sent;
  sent.reserve(now.entries().size());
  std::vector<protocol::SharedBytes> frames;
  bool needs_put = sent_data_ == nullptr;
  // Both lists are sorted by key: walk them together.
  std::size_t i = 0;
  for (const auto& entry : now.entries()) {
    if (needs_put) break;
    for (; i < sent_.size() && sent_[i].key < entry.key; ++i) {
      frames.push_back(Frame("delete", DeleteJson(sent_[i].key, sent_[i].version)));
    }
    const bool held = i < sent_.size() && sent_[i].key == entry.key;
    if (!entry.evaluated) {
      if (!held) {  // cannot happen (a flag the SDK lacks has changed), but never guess
        needs_put = true;
        break;
      }
      sent.push_back({entry.key, sent_[i].version, sent_[i].result_hash});
      ++i;
      continue;
    }
    const std::uint64_t hash = protocol::StableHash64(entry.json);
    if (!held || hash != sent_[i].result_hash) {
      if (held && entry.version <= sent_[i].version) needs_put = true;
      frames.push_back(Frame("patch", eval::Evaluations::PatchJson(entry)));
    }
    sent.push_back({entry.key, entry.version, hash});
    if (held) ++i;
  }
  for (; !needs_put && i < sent_.size(); ++i) {
    frames.push_back(Frame("delete", DeleteJson(sent_[i].key, sent_[i].version)));
  }
  // Many changes at once (a new `put` upstream) are cheaper as one put than as many patches.
  if (needs_put || frames.size() > now.entries().size() / 2 + 1) {
    now = eval::EvaluateAll(*data, context_, options_);
    sent.clear();
    for (const auto& entry : now.entries()) {
      sent.push_back({entry.key, entry.version, protocol::StableHash64(entry.json)});
    }
    frames.clear();
    frames.push_back(Frame("put", now.ToJson()));
  }
  sent_ = std::move(sent);
  sent_data_ = std::move(data);  // keeps the keys in sent_ alive
  return frames;
}

}  // namespace flagrelay::relay
