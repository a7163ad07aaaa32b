#include "environment.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "fakes.hpp"

namespace flagrelay::relay {
namespace {

using testing::FakeStore;
using testing::Flag;
using testing::Put;
using testing::RecordingSubscriber;

config::EnvironmentConfig EnvConfig(std::string name = "prod") {
  config::EnvironmentConfig env;
  env.name = std::move(name);
  env.sdk_key = config::Secret("sdk-11111111-2222-3333-4444-555555555555");
  return env;
}

// Waits for the commit thread to have published (bounded; returns false on timeout).
template <class Pred>
bool Eventually(Pred pred) {
  for (int i = 0; i < 2000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

class EnvironmentTest : public ::testing::Test {
 protected:
  // Waits until every commit job submitted so far has run (they reference their environment).
  void Drain() {
    std::promise<void> done;
    commits_.Submit([&done] { done.set_value(); });
    done.get_future().wait();
  }

  metrics::RelayMetrics metrics_{"test"};
  FakeStore store_;
  CommitQueue commits_;
  const metrics::EnvironmentMetrics& env_metrics_ = metrics_.AddEnvironment("prod");
};

TEST_F(EnvironmentTest, StreamGetsPutThenOnlyAppliedChangesInOrder) {
  const auto env_owner =
      std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  Environment& env = *env_owner;
  auto sub = std::make_shared<RecordingSubscriber>();
  env.Subscribe(sub, StreamKind::kAll);
  EXPECT_TRUE(sub->frames().empty()) << "no data yet: the stream stays silent";

  env.ApplyUpstream(Put({Flag("a", 1)}));
  env.ApplyUpstream(protocol::PatchMessage{protocol::Kind::kFlags, Flag("a", 2, false)});
  env.ApplyUpstream(protocol::PatchMessage{protocol::Kind::kFlags, Flag("a", 2, true)});  // stale
  env.ApplyUpstream(protocol::DeleteMessage{protocol::Kind::kFlags, "a", 3});
  ASSERT_TRUE(Eventually([&] { return sub->frames().size() >= 3; }));
  const auto frames = sub->frames();
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_TRUE(frames[0].starts_with("event: put\n"));
  EXPECT_NE(frames[1].find("\"version\":2"), std::string::npos);
  EXPECT_NE(frames[1].find("[false,true]"), std::string::npos)
      << "the applied patch, not the stale one";
  EXPECT_EQ(frames[2], "event: delete\ndata: {\"path\":\"/flags/a\",\"version\":3}\n\n");
  ASSERT_TRUE(Eventually([&] { return env.snapshot()->data_version() == 3; }));
  EXPECT_EQ(env.snapshot()->flags().live_count(), 0u);

  const auto late = std::make_shared<RecordingSubscriber>();
  env.Subscribe(late, StreamKind::kFlags);
  ASSERT_EQ(late->frames().size(), 1u);
  EXPECT_EQ(late->frames()[0], "event: put\ndata: {}\n\n") << "tombstones are never served";
  Drain();
}

TEST_F(EnvironmentTest, PublishesOnlyAfterTheCommit) {
  const auto env_owner =
      std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  Environment& env = *env_owner;
  env.ApplyUpstream(Put({Flag("a", 1)}));
  ASSERT_TRUE(Eventually([&] { return env.snapshot() != nullptr; }));
  auto sub = std::make_shared<RecordingSubscriber>();
  env.Subscribe(sub, StreamKind::kAll);

  store_.Hold();
  env.ApplyUpstream(protocol::PatchMessage{protocol::Kind::kFlags, Flag("a", 2)});
  store_.WaitForBlockedCommit();  // the commit has started and cannot finish
  EXPECT_EQ(sub->frames().size(), 1u) << "the patch must not reach SDKs before it is committed";
  EXPECT_EQ(env.snapshot()->flags().Find("a")->version, 1u) << "nor be served by polling";

  store_.Release();
  ASSERT_TRUE(Eventually([&] { return sub->frames().size() == 2; }));
  EXPECT_EQ(env.snapshot()->flags().Find("a")->version, 2u);
  EXPECT_EQ(store_.commits(), 2);
  Drain();
}

TEST_F(EnvironmentTest, FailedCommitStillServesFromMemoryAndReports) {
  const auto env_owner =
      std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  Environment& env = *env_owner;
  store_.FailCommits(true);
  env.ApplyUpstream(Put({Flag("a", 1)}));
  ASSERT_TRUE(Eventually([&] { return env.snapshot() != nullptr; }));
  EXPECT_EQ(env.Status().cache_state, "failing");
  EXPECT_EQ(env.Status().cache_error, "disk full (fake)");
  EXPECT_EQ(env_metrics_.cache_healthy->Value(), 0);
  store_.FailCommits(false);
  env.ApplyUpstream(protocol::PatchMessage{protocol::Kind::kFlags, Flag("a", 2)});
  ASSERT_TRUE(Eventually([&] { return env.Status().cache_state == "ok"; }));
  Drain();
}

TEST_F(EnvironmentTest, AFailingCacheIsRewrittenWithoutWaitingForAChange) {
  const auto env_owner =
      std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  Environment& env = *env_owner;
  env.RetryFailedCommit();  // nothing failed: nothing to do
  Drain();
  EXPECT_EQ(store_.commits(), 0);
  store_.FailCommits(true);
  env.ApplyUpstream(Put({Flag("a", 1)}));
  Drain();
  ASSERT_EQ(env.Status().cache_state, "failing");
  env.RetryFailedCommit();  // still failing: stays so
  Drain();
  EXPECT_EQ(env.Status().cache_state, "failing");
  store_.FailCommits(false);  // space returns
  env.RetryFailedCommit();
  Drain();
  EXPECT_EQ(env.Status().cache_state, "ok");
  EXPECT_EQ(env_metrics_.cache_healthy->Value(), 1);
  const cache::LoadResult stored = store_.Load("prod");
  ASSERT_EQ(stored.outcome, cache::LoadOutcome::kLoaded);
  EXPECT_EQ(stored.snapshot->meta.data_version, env.snapshot()->data_version());
  EXPECT_EQ(stored.snapshot->items.size(), 1u);
  const int commits = store_.commits();
  env.RetryFailedCommit();  // healthy again: no more rewrites
  Drain();
  EXPECT_EQ(store_.commits(), commits);
}

TEST_F(EnvironmentTest, CachedRecordThatDoesNotParseIsQuarantinedNotServed) {
  {
    const auto env_owner =
        std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
    Environment& env = *env_owner;
    env.ApplyUpstream(Put({Flag("a", 1)}));
    Drain();
  }
  store_.PutRaw("prod", {"flags", "b", "[not a flag"});
  const auto restarted_owner =
      std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  Environment& restarted = *restarted_owner;
  restarted.LoadFromCache();
  restarted.ReleaseCache();
  EXPECT_EQ(restarted.snapshot(), nullptr);
  EXPECT_EQ(restarted.Status().cache_load, "corrupt");
  EXPECT_NE(restarted.Status().cache_error.find("flags/b does not parse"), std::string::npos)
      << restarted.Status().cache_error;
  EXPECT_EQ(store_.quarantined(), 1);
}

// 3,000 records are parsed in two halves on two threads: every item comes back, and a record
// that does not parse in either half makes the load corrupt, naming the first in store order.
TEST_F(EnvironmentTest, ALargeCacheIsParsedInTwoHalvesWithTheSameResult) {
  std::vector<protocol::ItemPtr> flags;
  for (int i = 0; i < 3000; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "f%04d", i);
    flags.push_back(Flag(key, 1 + i % 7, i % 2 == 0));
  }
  {
    const auto env = std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
    env->ApplyUpstream(Put(flags));
    Drain();
  }
  store_.PutRaw("prod", {"segments", "s1", R"({"key":"s1","version":3,"included":["u"]})"});
  const auto restarted =
      std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  restarted->LoadFromCache();
  restarted->ReleaseCache();
  const auto snap = restarted->snapshot();
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->flags().live_count(), 3000u);
  for (const auto& flag : flags) {
    const auto* loaded = snap->flags().Find(flag->key);
    ASSERT_NE(loaded, nullptr) << flag->key;
    EXPECT_EQ(loaded->version, flag->version);
    EXPECT_EQ(loaded->json, flag->json);
  }
  ASSERT_NE(snap->segments().Find("s1"), nullptr);
  EXPECT_EQ(snap->segments().Find("s1")->version, 3u);
  EXPECT_EQ(snap->AllData().Plain()->size(), snap->served_json_bytes());  // built at load

  store_.PutRaw("prod", {"flags", "f2500x", "[not a flag"});  // second half
  store_.PutRaw("prod", {"flags", "f0100x", "{\"key\":"});    // first half
  const auto corrupt = std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  corrupt->LoadFromCache();
  corrupt->ReleaseCache();
  EXPECT_EQ(corrupt->snapshot(), nullptr);
  EXPECT_EQ(corrupt->Status().cache_load, "corrupt");
  EXPECT_NE(corrupt->Status().cache_error.find("flags/f0100x does not parse"), std::string::npos)
      << corrupt->Status().cache_error;
  EXPECT_EQ(store_.quarantined(), 1);
}

TEST_F(EnvironmentTest, ACacheThatCannotBeOpenedIsReportedFailing) {
  const auto env_owner =
      std::make_shared<Environment>(EnvConfig(), nullptr, commits_, env_metrics_);
  Environment& env = *env_owner;
  env.LoadFromCache("cannot open the cache: Read-only file system");
  EXPECT_EQ(env.Status().cache_state, "failing");
  EXPECT_EQ(env.Status().cache_load, "error");
  EXPECT_EQ(env_metrics_.cache_healthy->Value(), 0);
  env.ApplyUpstream(Put({Flag("a", 1)}));
  ASSERT_NE(env.snapshot(), nullptr);  // served from memory
}

TEST_F(EnvironmentTest, AFailedCommitLeavesNoHoleInTheCache) {
  {
    const auto env_owner =
        std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
    Environment& env = *env_owner;
    env.ApplyUpstream(Put({Flag("a", 1), Flag("b", 1)}));
    Drain();
    store_.FailCommits(true);
    env.ApplyUpstream(protocol::DeleteMessage{protocol::Kind::kFlags, "b", 2});  // not persisted
    Drain();
    store_.FailCommits(false);
    env.ApplyUpstream(protocol::PatchMessage{protocol::Kind::kFlags, Flag("a", 2)});
    Drain();
  }
  // Had the last commit been a delta, the cache would say "data version 3" yet still hold the
  // deleted flag b: a restart during an outage would resurrect it.
  const auto restarted_owner =
      std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  Environment& restarted = *restarted_owner;
  restarted.LoadFromCache();
  restarted.ReleaseCache();
  ASSERT_NE(restarted.snapshot(), nullptr);
  EXPECT_EQ(restarted.snapshot()->data_version(), 3u);
  EXPECT_EQ(restarted.snapshot()->flags().Find("a")->version, 2u);
  const protocol::Item* b = restarted.snapshot()->flags().Find("b");
  EXPECT_TRUE(b == nullptr || b->deleted);
}

TEST_F(EnvironmentTest, DataCachedUnderAKeyBeingRotatedOutIsUsedUntilTheKeyExpires) {
  {
    const auto env_owner =
        std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
    env_owner->ApplyUpstream(Put({Flag("a", 1)}));
    ASSERT_TRUE(Eventually([&] { return env_owner->snapshot() != nullptr; }));
    Drain();
  }
  const auto rotated = [](std::int64_t expiry_unix_ms) {
    config::EnvironmentConfig config = EnvConfig();
    config.expiring_sdk_key = config::ExpiringKey{config.sdk_key, expiry_unix_ms};
    config.sdk_key = config::Secret("sdk-99999999-8888-7777-6666-555555555555");
    return config;
  };
  // Still accepted: the cached data is this environment's.
  const auto valid =
      std::make_shared<Environment>(rotated(NowUnixMs() + 60'000), &store_, commits_, env_metrics_);
  valid->LoadFromCache();
  EXPECT_EQ(valid->Status().cache_load, "loaded");
  // Expired: it is another key's data now.
  const auto expired =
      std::make_shared<Environment>(rotated(NowUnixMs() - 1), &store_, commits_, env_metrics_);
  expired->LoadFromCache();
  EXPECT_EQ(expired->Status().cache_load, "mismatch");
}

TEST_F(EnvironmentTest, RestartServesCachedDataOfTheSameKeyOnly) {
  {
    const auto env_owner =
        std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
    Environment& env = *env_owner;
    env.ApplyUpstream(Put({Flag("a", 4), Flag("b", 1)}));
    env.ApplyUpstream(protocol::DeleteMessage{protocol::Kind::kFlags, "b", 2});
    // Committed and published (the commit job touches the environment until it has published).
    ASSERT_TRUE(Eventually([&] { return env.snapshot() && env.snapshot()->data_version() == 2; }));
    Drain();
  }
  const auto restarted_owner =
      std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  Environment& restarted = *restarted_owner;
  restarted.LoadFromCache();
  EXPECT_EQ(restarted.snapshot(), nullptr) << "held back until the upstream fails or initTimeout";
  restarted.ReleaseCache();
  auto snap = restarted.snapshot();
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->source(), protocol::DataSource::kCache);
  EXPECT_EQ(snap->data_version(), 2u);
  EXPECT_EQ(snap->flags().Find("a")->version, 4u);
  ASSERT_NE(snap->flags().Find("b"), nullptr);
  EXPECT_TRUE(snap->flags().Find("b")->deleted) << "the tombstone survives the restart";
  EXPECT_EQ(restarted.Status().cache_load, "loaded");

  // The first upstream put replaces the cached data, and versions keep growing.
  restarted.ApplyUpstream(Put({Flag("a", 5)}));
  ASSERT_TRUE(Eventually(
      [&] { return restarted.snapshot()->source() == protocol::DataSource::kUpstream; }));
  EXPECT_EQ(restarted.snapshot()->data_version(), 3u);

  // When the upstream answers first, its data wins and the cached data is never served.
  const auto fresh_owner =
      std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  Environment& fresh = *fresh_owner;
  fresh.LoadFromCache();
  fresh.ApplyUpstream(Put({Flag("z", 1)}));
  ASSERT_TRUE(Eventually([&] { return fresh.snapshot() != nullptr; }));
  fresh.ReleaseCache();
  EXPECT_EQ(fresh.snapshot()->source(), protocol::DataSource::kUpstream);
  EXPECT_EQ(fresh.snapshot()->flags().Find("a"), nullptr);
  EXPECT_GT(fresh.snapshot()->data_version(), 3u) << "versions continue from the cached ones";

  store_.SetFingerprint("prod", "sdk:someone-else");
  const auto other_key_owner =
      std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  Environment& other_key = *other_key_owner;
  other_key.LoadFromCache();
  other_key.ReleaseCache();
  EXPECT_EQ(other_key.snapshot(), nullptr);
  EXPECT_EQ(other_key.Status().cache_load, "mismatch");
  Drain();
}

TEST_F(EnvironmentTest, FileReloadAnnouncesDifferencesWithVersionsSdksAccept) {
  const auto env_owner =
      std::make_shared<Environment>(EnvConfig(), nullptr, commits_, env_metrics_);
  Environment& env = *env_owner;
  env.ApplyFile(Put({Flag("same", 1), Flag("edited", 3), Flag("gone", 2)}));
  auto sub = std::make_shared<RecordingSubscriber>();
  env.Subscribe(sub, StreamKind::kAll);
  ASSERT_EQ(sub->frames().size(), 1u);

  // "edited" changes content without a version bump; "new" appears; "gone" disappears.
  env.ApplyFile(Put({Flag("same", 1), Flag("edited", 3, false), Flag("new", 1)}));
  auto frames = sub->frames();
  ASSERT_EQ(frames.size(), 4u);
  auto edited = env.snapshot()->flags().Find("edited");
  EXPECT_EQ(edited->version, 4u) << "bumped above what SDKs hold";
  EXPECT_NE(edited->json.find("\"version\":4"), std::string::npos);
  EXPECT_NE(frames[1].find("/flags/edited"), std::string::npos);
  EXPECT_NE(frames[2].find("/flags/new"), std::string::npos);
  EXPECT_EQ(frames[3], "event: delete\ndata: {\"path\":\"/flags/gone\",\"version\":3}\n\n");

  env.ApplyFile(Put({Flag("same", 1), Flag("edited", 3, false), Flag("new", 1)}));
  EXPECT_EQ(sub->frames().size(), 4u) << "an unchanged file announces nothing";
  env.ApplyFile(Put({Flag("same", 1), Flag("edited", 3, false), Flag("new", 1), Flag("gone", 1)}));
  EXPECT_EQ(env.snapshot()->flags().Find("gone")->version, 4u) << "re-added above its tombstone";
}

TEST_F(EnvironmentTest, TheFirstThingServedIsAPutEvenForAFileDiffOverHeldCache) {
  {
    const auto env_owner =
        std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
    Environment& env = *env_owner;
    env.ApplyFile(Put({Flag("a", 1), Flag("b", 1)}));
    Drain();
  }
  const auto restarted_owner =
      std::make_shared<Environment>(EnvConfig(), &store_, commits_, env_metrics_);
  Environment& restarted = *restarted_owner;
  restarted.LoadFromCache();  // held back: nothing served yet
  auto early = std::make_shared<RecordingSubscriber>();
  restarted.Subscribe(early, StreamKind::kAll);
  std::atomic<int> published{0};
  // The file changed while the relay was down: a diff against the cached data...
  restarted.ApplyFile(Put({Flag("a", 1, false)}), [&published] { ++published; });
  Drain();
  // ...yet the early stream must start with a put, not with patches it cannot apply.
  const auto frames = early->frames();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_TRUE(frames[0].starts_with("event: put\n")) << frames[0];
  EXPECT_EQ(published.load(), 1) << "the source learns when its data is served";
  EXPECT_EQ(restarted.snapshot()->source(), protocol::DataSource::kFile);
  EXPECT_EQ(restarted.snapshot()->flags().Find("a")->version, 2u) << "versions continue";
  Drain();
}

TEST_F(EnvironmentTest, SubscribersGoneOrClosedAreDropped) {
  const auto env_owner =
      std::make_shared<Environment>(EnvConfig(), nullptr, commits_, env_metrics_);
  Environment& env = *env_owner;
  auto kept = std::make_shared<RecordingSubscriber>();
  env.Subscribe(kept, StreamKind::kAll);
  {
    auto gone = std::make_shared<RecordingSubscriber>();
    env.Subscribe(gone, StreamKind::kAll);
  }
  env.Heartbeat();
  ASSERT_EQ(kept->frames().size(), 1u);
  EXPECT_EQ(kept->frames()[0], ":\n");
  env.CloseSubscribers();
  EXPECT_TRUE(kept->closed());
}

}  // namespace
}  // namespace flagrelay::relay
