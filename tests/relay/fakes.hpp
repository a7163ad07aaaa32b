#pragma once
// Test doubles for the relay library: a subscriber that records frames, and a cache store whose
// commits can be held back or made to fail.

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "environment.hpp"
#include "flagrelay/cache/store.hpp"
#include "flagrelay/protocol/data.hpp"

namespace flagrelay::relay::testing {

class RecordingSubscriber : public Subscriber {
 public:
  void Send(const FrameBatch& frames) override {
    std::lock_guard lock(mutex_);
    for (const auto& frame : *frames) frames_.push_back(*frame);
  }
  void Close() override { closed_ = true; }
  std::vector<std::string> frames() const {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  bool closed() const { return closed_; }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> frames_;
  bool closed_ = false;
};

/// An in-memory Store. `Hold()` makes commits wait until `Release()`; `FailCommits(true)` makes
/// them fail.
class FakeStore : public cache::Store {
 public:
  cache::LoadResult Load(std::string_view env) override {
    std::lock_guard lock(mutex_);
    auto it = envs_.find(std::string(env));
    if (it == envs_.end()) return {};
    cache::LoadResult result;
    result.outcome = cache::LoadOutcome::kLoaded;
    result.snapshot = cache::EnvSnapshot{it->second.meta, {}};
    for (const auto& [key, record] : it->second.items) result.snapshot->items.push_back(record);
    return result;
  }
  cache::CommitResult ReplaceAll(std::string_view env, const cache::EnvMeta& meta,
                                 std::span<const cache::ItemRecord> items) override {
    std::unique_lock lock(mutex_);
    WaitWhileHeld(lock);
    if (fail_) return {false, "disk full (fake)"};
    auto& stored = envs_[std::string(env)];
    stored.items.clear();
    for (const auto& item : items) stored.items[item.kind + "/" + item.key] = item;
    stored.meta = meta;
    ++commits_;
    return {true, {}};
  }
  cache::CommitResult Upsert(std::string_view env, const cache::EnvMeta& meta,
                             std::span<const cache::ItemRecord> items) override {
    std::unique_lock lock(mutex_);
    WaitWhileHeld(lock);
    if (fail_) return {false, "disk full (fake)"};
    auto& stored = envs_[std::string(env)];
    for (const auto& item : items) stored.items[item.kind + "/" + item.key] = item;
    stored.meta = meta;
    ++commits_;
    return {true, {}};
  }
  std::string Quarantine(std::string_view env) override {
    std::lock_guard lock(mutex_);
    quarantined_ += envs_.erase(std::string(env));
    return {};
  }
  std::vector<cache::EnvSummary> List() override { return {}; }
  std::vector<cache::QuarantineEntry> ListQuarantine() override { return {}; }
  std::string ExerciseWrites() override { return {}; }
  const std::string& dir() const override { return dir_; }

  void Hold() {
    std::lock_guard lock(mutex_);
    held_ = true;
  }
  void Release() {
    {
      std::lock_guard lock(mutex_);
      held_ = false;
    }
    released_.notify_all();
  }
  /// Blocks until a commit is waiting inside Hold().
  void WaitForBlockedCommit() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return blocked_ > 0; });
  }
  void FailCommits(bool fail) {
    std::lock_guard lock(mutex_);
    fail_ = fail;
  }
  int commits() {
    std::lock_guard lock(mutex_);
    return commits_;
  }
  int quarantined() {
    std::lock_guard lock(mutex_);
    return quarantined_;
  }
  /// Stores an item record as is (e.g. JSON that does not parse).
  void PutRaw(std::string_view env, cache::ItemRecord record) {
    std::lock_guard lock(mutex_);
    envs_[std::string(env)].items[record.kind + "/" + record.key] = std::move(record);
  }
  void SetFingerprint(std::string_view env, std::string fingerprint) {
    std::lock_guard lock(mutex_);
    envs_[std::string(env)].meta.fingerprint = std::move(fingerprint);
  }

 private:
  void WaitWhileHeld(std::unique_lock<std::mutex>& lock) {
    ++blocked_;
    changed_.notify_all();
    released_.wait(lock, [this] { return !held_; });
    --blocked_;
  }

  struct Stored {
    cache::EnvMeta meta;
    std::map<std::string, cache::ItemRecord> items;
  };
  std::mutex mutex_;
  std::condition_variable released_, changed_;
  int blocked_ = 0;
  std::map<std::string, Stored> envs_;
  bool held_ = false;
  bool fail_ = false;
  int commits_ = 0;
  int quarantined_ = 0;
  std::string dir_ = "fake";
};

inline protocol::ItemPtr Flag(const std::string& key, std::uint64_t version, bool value = true) {
  auto item = protocol::ParseItem(
      key, R"({"key":")" + key + R"(","version":)" + std::to_string(version) +
               R"(,"on":true,"variations":[)" + (value ? "true,false" : "false,true") + "]}");
  return *item;
}

inline protocol::PutMessage Put(std::vector<protocol::ItemPtr> flags) {
  return protocol::PutMessage{protocol::ItemSet::FromUnsorted(std::move(flags)), {}};
}

}  // namespace flagrelay::relay::testing
