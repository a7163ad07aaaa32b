#include "environment.hpp"

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <span>
#include <system_error>
#include <thread>

#include "log.hpp"

namespace flagrelay::relay {

namespace {

// A full put leaves megabytes freed behind it (its parsed document, the records just committed)
// that glibc keeps in its heaps, below live data, until asked: for 10 environments × 5,000 flags,
// 25 MiB of idle RSS.
void ReturnFreedMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

FrameBatch Batch(protocol::SharedBytes frame) {
  return std::make_shared<const std::vector<protocol::SharedBytes>>(1, std::move(frame));
}

// ld-relay's client ping: the data is one space, so that the `data:` line is not empty.
const FrameBatch& PingBatch() {
  static const FrameBatch batch =
      Batch(std::make_shared<const std::string>(protocol::EncodeSseEvent("ping", " ")));
  return batch;
}

using protocol::DataSource;
using protocol::ItemPtr;
using protocol::ItemSet;
using protocol::Kind;

metrics::DataSourceLabel Label(DataSource source) {
  switch (source) {
    case DataSource::kCache:
      return metrics::DataSourceLabel::kCache;
    case DataSource::kFile:
      return metrics::DataSourceLabel::kFile;
    case DataSource::kUpstream:
      return metrics::DataSourceLabel::kUpstream;
    case DataSource::kNone:
      break;
  }
  return metrics::DataSourceLabel::kNone;
}

// Cached records parsed back into items; `problem` names the first that does not parse.
struct ParsedRecords {
  std::vector<ItemPtr> flags, segments;
  std::string problem;
};

ParsedRecords ParseRecords(std::span<cache::ItemRecord> records) {
  ParsedRecords parsed;
  for (cache::ItemRecord& record : records) {
    const auto kind = protocol::KindFromString(record.kind);
    auto item = protocol::ParseStoredItem(record.key, std::move(record.json));
    if (!kind || !item) {
      parsed.problem = "record " + record.kind + "/" + record.key + " does not parse" +
                       (item ? std::string() : ": " + item.error().message);
      break;
    }
    (*kind == Kind::kFlags ? parsed.flags : parsed.segments).push_back(std::move(*item));
  }
  return parsed;
}

// Parsing is most of a cold start's CPU (10,000 flags: ~10 ms), so a large cache is parsed in two
// halves on two threads; the relay serves nothing until it is done.
constexpr std::size_t kParallelParseRecords = 2000;

ParsedRecords ParseRecordsInParallel(std::vector<cache::ItemRecord>& records) {
  if (records.size() < kParallelParseRecords) return ParseRecords(records);
  const std::span<cache::ItemRecord> all(records);
  const std::size_t half = records.size() / 2;
  ParsedRecords first;
  std::jthread helper;  // joins on the way out, an exception included
  try {
    helper = std::jthread([&first, part = all.first(half)] { first = ParseRecords(part); });
  } catch (const std::system_error&) {  // no thread to be had (a process or thread limit)
    return ParseRecords(records);
  }
  ParsedRecords second = ParseRecords(all.subspan(half));
  helper.join();
  if (first.problem.empty()) first.problem = std::move(second.problem);
  const auto append = [](std::vector<ItemPtr>& into, std::vector<ItemPtr>& from) {
    into.insert(into.end(), std::make_move_iterator(from.begin()),
                std::make_move_iterator(from.end()));
  };
  append(first.flags, second.flags);
  append(first.segments, second.segments);
  return first;
}

void AppendRecords(std::vector<cache::ItemRecord>& out, Kind kind, const ItemSet& set) {
  for (const ItemPtr& item : set.items()) {
    out.push_back({std::string(protocol::ToString(kind)), item->key, item->json});
  }
}

}  // namespace

std::string_view ToString(ConnectionState state) {
  switch (state) {
    case ConnectionState::kValid:
      return "VALID";
    case ConnectionState::kInterrupted:
      return "INTERRUPTED";
    case ConnectionState::kOff:
      return "OFF";
    case ConnectionState::kInitializing:
      break;
  }
  return "INITIALIZING";
}

static_assert(static_cast<int>(ConnectionState::kOff) ==
                  static_cast<int>(metrics::UpstreamState::kOff) &&
              static_cast<int>(ConnectionState::kValid) ==
                  static_cast<int>(metrics::UpstreamState::kValid));

std::string_view ToString(SourceMode mode) {
  switch (mode) {
    case SourceMode::kPolling:
      return "polling";
    case SourceMode::kFile:
      return "file";
    case SourceMode::kOff:
      return "off";
    case SourceMode::kStreaming:
      break;
  }
  return "streaming";
}

std::int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Environment::Environment(config::EnvironmentConfig config, cache::Store* store,
                         CommitQueue& commits, const metrics::EnvironmentMetrics& metrics,
                         config::Duration disconnected_status_time)
    : name_(config.name),
      config_(std::make_shared<const config::EnvironmentConfig>(std::move(config))),
      store_(store),
      commits_(commits),
      metrics_(metrics),
      disconnected_status_time_(disconnected_status_time),
      mode_(config_.load()->data_file.empty() ? SourceMode::kStreaming : SourceMode::kFile),
      state_since_unix_ms_(NowUnixMs()),
      cache_state_(store ? "ok" : "disabled") {}

std::string Environment::Fingerprint(const config::Secret& sdk_key) {
  char hex[24];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(protocol::StableHash64(sdk_key.Reveal())));
  return std::string("sdk:") + hex;
}

void Environment::UpdateConfig(config::EnvironmentConfig config) {
  config_.store(std::make_shared<const config::EnvironmentConfig>(std::move(config)));
}

protocol::SnapshotPtr Environment::MakeSnapshot(ItemSet flags, ItemSet segments,
                                                DataSource source) const {
  const std::uint64_t version = latest_ ? latest_->data_version() + 1 : 1;
  return std::make_shared<const protocol::Snapshot>(std::move(flags), std::move(segments), version,
                                                    source, NowUnixMs());
}

void Environment::LoadFromCache(const std::string& open_problem) {
  if (store_ == nullptr) {
    // A configured cache that cannot be opened (read-only or unusable dir) is failing, not off.
    metrics_.cache_loads(open_problem.empty() ? "disabled" : "error").Increment();
    if (!open_problem.empty()) {
      metrics_.cache_healthy->Set(0);
      std::lock_guard lock(mutex_);
      cache_state_ = "failing";
      cache_load_ = "error";
      cache_error_ = open_problem;
    }
    return;
  }
  const std::string component = "cache " + name_;
  cache::LoadResult loaded = store_->Load(name_);
  std::string outcome(cache::ToString(loaded.outcome));
  std::string problem = loaded.detail;
  if (loaded.outcome == cache::LoadOutcome::kMissing && !open_problem.empty()) {
    outcome = "corrupt";
    problem = open_problem;
  }
  // Data cached under a key being rotated out (still valid) is this environment's too.
  const auto config = config_.load();
  const auto belongs = [&config](const std::string& fingerprint) {
    return fingerprint == Fingerprint(config->sdk_key) ||
           (config->expiring_sdk_key && config->expiring_sdk_key->expiry_unix_ms > NowUnixMs() &&
            fingerprint == Fingerprint(config->expiring_sdk_key->key));
  };
  if (loaded.outcome == cache::LoadOutcome::kLoaded &&
      !belongs(loaded.snapshot->meta.fingerprint)) {
    outcome = "mismatch";
    problem = "cached data belongs to a different SDK key; ignored";
  }
  ParsedRecords parsed;
  if (outcome == "loaded") {
    parsed = ParseRecordsInParallel(loaded.snapshot->items);
    if (!parsed.problem.empty()) {
      // Checksums match, so it was written like this: keep it for inspection, never serve it.
      outcome = "corrupt";
      const std::string error = store_->Quarantine(name_);
      problem = parsed.problem +
                (error.empty() ? "; records quarantined" : "; quarantine failed: " + error);
    }
  }
  metrics_.cache_loads(outcome).Increment();
  {
    std::lock_guard lock(mutex_);
    cache_load_ = outcome;
    cache_error_ = problem;
  }
  if (outcome != "loaded") {
    if (outcome == "missing") {
      LogInfo(component, "no cached data; waiting for the data source");
    } else {
      LogWarn(component, "cached data not used (" + outcome + "): " + problem);
    }
    return;
  }
  const cache::EnvMeta& meta = loaded.snapshot->meta;
  auto snapshot = std::make_shared<const protocol::Snapshot>(
      ItemSet::FromUnsorted(std::move(parsed.flags)),
      ItemSet::FromUnsorted(std::move(parsed.segments)), meta.data_version, DataSource::kCache,
      meta.saved_at_unix_ms);
  // SDKs reconnect right after a restart, and every poll and `/all` stream starts from this body:
  // build it (and its ETag) while the listener opens and the first upstream attempt runs.
  try {
    prebuild_ = std::jthread([snapshot] { (void)snapshot->AllData().ETag(); });
  } catch (const std::system_error&) {
    // No thread to be had: the first request builds it, as for any other snapshot.
  }
  LogInfo(component, "loaded cached data: " + std::to_string(snapshot->flags().live_count()) +
                         " flags, " + std::to_string(snapshot->segments().live_count()) +
                         " segments, data version " + std::to_string(meta.data_version) +
                         ", saved " + std::to_string((NowUnixMs() - meta.saved_at_unix_ms) / 1000) +
                         " s ago");
  std::lock_guard apply_lock(apply_mutex_);
  latest_ = snapshot;
  held_cache_ = std::move(snapshot);
}

void Environment::ReleaseCache() {
  std::lock_guard lock(apply_mutex_);
  if (!held_cache_) return;  // nothing held back: live data came first, or it is out already
  LogInfo("cache " + name_, "serving cached data until live data arrives");
  Publish(Change{held_cache_, true, {}, {}});
  held_cache_.reset();
}

void Environment::ApplyUpstream(protocol::Message message, Published published) {
  std::lock_guard lock(apply_mutex_);
  const ItemSet empty;
  const ItemSet& flags = latest_ ? latest_->flags() : empty;
  const ItemSet& segments = latest_ ? latest_->segments() : empty;

  if (auto* put = std::get_if<protocol::PutMessage>(&message)) {
    metrics_.Updates(metrics::UpdateKind::kPut, metrics::UpdateResult::kApplied).Increment();
    Submit(
        Change{MakeSnapshot(std::move(put->flags), std::move(put->segments), DataSource::kUpstream),
               true,
               {},
               std::move(published)});
    return;
  }
  Kind kind;
  ItemPtr item;
  metrics::UpdateKind update_kind;
  if (auto* patch = std::get_if<protocol::PatchMessage>(&message)) {
    kind = patch->kind;
    item = std::move(patch->item);
    update_kind = metrics::UpdateKind::kPatch;
  } else if (auto* del = std::get_if<protocol::DeleteMessage>(&message)) {
    kind = del->kind;
    item = protocol::MakeTombstone(del->key, del->version);
    update_kind = metrics::UpdateKind::kDelete;
  } else {
    return;  // IgnoredMessage
  }
  if (!latest_) {
    // Changes before the first put have nothing to apply to; the put that follows is complete.
    metrics_.Updates(update_kind, metrics::UpdateResult::kStale).Increment();
    return;
  }
  auto updated = (kind == Kind::kFlags ? flags : segments).WithNewer(item);
  if (!updated) {
    // SDKs would discard it too; not forwarding keeps every stream equal to our snapshot.
    metrics_.Updates(update_kind, metrics::UpdateResult::kStale).Increment();
    return;
  }
  metrics_.Updates(update_kind, metrics::UpdateResult::kApplied).Increment();
  auto snapshot = kind == Kind::kFlags
                      ? MakeSnapshot(std::move(*updated), segments, DataSource::kUpstream)
                      : MakeSnapshot(flags, std::move(*updated), DataSource::kUpstream);
  Submit(Change{std::move(snapshot), false, {{kind, std::move(item)}}, std::move(published)});
}

void Environment::ApplyFile(protocol::PutMessage data, Published published) {
  std::lock_guard lock(apply_mutex_);
  if (!latest_) {
    metrics_.Updates(metrics::UpdateKind::kPut, metrics::UpdateResult::kApplied).Increment();
    Submit(Change{MakeSnapshot(std::move(data.flags), std::move(data.segments), DataSource::kFile),
                  true,
                  {},
                  std::move(published)});
    return;
  }
  Change change;
  ItemSet result[2] = {latest_->flags(), latest_->segments()};
  for (Kind kind : {Kind::kFlags, Kind::kSegments}) {
    ItemSet& current = result[static_cast<int>(kind)];
    const ItemSet& before = latest_->items(kind);
    const ItemSet& wanted = kind == Kind::kFlags ? data.flags : data.segments;
    auto apply = [&](ItemPtr item) {
      auto updated = current.WithNewer(item);
      if (updated) {
        current = std::move(*updated);
        change.items.emplace_back(kind, std::move(item));
      }
    };
    for (const ItemPtr& item : wanted.items()) {
      const protocol::Item* old = before.Find(item->key);
      if (old == nullptr || item->version > old->version) {
        if (old == nullptr || old->json != item->json) apply(item);
        continue;
      }
      // The file's version is not above what SDKs have: compare content at the old version.
      ItemPtr same_version = protocol::WithVersion(*item, old->version);
      if (same_version->json != old->json) apply(protocol::WithVersion(*item, old->version + 1));
    }
    for (const ItemPtr& old : before.items()) {
      if (!old->deleted && wanted.Find(old->key) == nullptr) {
        apply(protocol::MakeTombstone(old->key, old->version + 1));
      }
    }
  }
  const bool source_changed = latest_->source() != DataSource::kFile;
  if (change.items.empty() && !source_changed) {
    if (published) published();  // nothing to change: what is served is the file's content
    return;
  }
  change.published = std::move(published);
  for (const auto& [kind, item] : change.items) {
    metrics_
        .Updates(item->deleted ? metrics::UpdateKind::kDelete : metrics::UpdateKind::kPatch,
                 metrics::UpdateResult::kApplied)
        .Increment();
  }
  change.snapshot = MakeSnapshot(std::move(result[0]), std::move(result[1]), DataSource::kFile);
  Submit(std::move(change));
}

void Environment::Submit(Change change) {
  // A stream's first event must be a `put`: whatever is served first is a full data set (a file
  // diff against held-back cached data included). Nothing was served while there was no data or
  // the cache's was held back.
  if (latest_ == nullptr || held_cache_ != nullptr) change.replace_all = true;
  latest_ = change.snapshot;
  held_cache_.reset();  // live data supersedes what the cache held
  if (store_ == nullptr) {
    Publish(change);
    return;
  }
  commits_.Submit([self = shared_from_this(), change = std::move(change)] {
    self->Commit(change);
    self->Publish(change);
  });
}

void Environment::Commit(const Change& change) {
  const protocol::Snapshot& snap = *change.snapshot;
  cache::EnvMeta meta{snap.data_version(), snap.updated_at_unix_ms(),
                      Fingerprint(config_.load()->sdk_key),
                      std::string(protocol::ToString(snap.source()))};
  std::vector<cache::ItemRecord> records;
  // After a failed commit the cache lacks that change: only a full rewrite makes it whole again
  // (a later delta would commit a newer data version over a hole).
  const bool replace_all = change.replace_all || cache_needs_rewrite_;
  if (replace_all) {
    records.reserve(snap.flags().items().size() + snap.segments().items().size());
    AppendRecords(records, Kind::kFlags, snap.flags());
    AppendRecords(records, Kind::kSegments, snap.segments());
  } else {
    for (const auto& [kind, item] : change.items) {
      records.push_back({std::string(protocol::ToString(kind)), item->key, item->json});
    }
  }
  const auto started = std::chrono::steady_clock::now();
  const cache::CommitResult result =
      replace_all ? store_->ReplaceAll(name_, meta, records) : store_->Upsert(name_, meta, records);
  cache_needs_rewrite_ = !result.ok;
  metrics_.cache_commit_duration->Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  (result.ok ? metrics_.cache_commits_ok : metrics_.cache_commits_failed)->Increment();
  metrics_.cache_healthy->Set(result.ok ? 1 : 0);

  std::lock_guard lock(mutex_);
  const bool was_ok = cache_state_ == "ok";
  cache_state_ = result.ok ? "ok" : "failing";
  if (!result.ok) {
    cache_error_ = result.error;
    // Serving goes on from memory; log transitions only, so a full disk doesn't flood the log.
    if (was_ok) LogError("cache " + name_, "commit failed, serving from memory: " + result.error);
  } else if (!was_ok) {
    LogInfo("cache " + name_, "commits succeed again");
  }
}

void Environment::RetryFailedCommit() {
  if (store_ == nullptr) return;
  {
    std::lock_guard lock(mutex_);
    if (cache_state_ != "failing") return;
  }
  std::lock_guard apply_lock(apply_mutex_);
  // Queued behind every change submitted so far, so `latest_` is already committed or failed
  // by the time this runs; published already too (nothing to publish).
  commits_.Submit([self = shared_from_this(), snapshot = latest_] {
    if (self->cache_needs_rewrite_ && snapshot) self->Commit(Change{snapshot, true, {}, {}});
  });
}

void Environment::Publish(const Change& change) {
  const protocol::Snapshot& snap = *change.snapshot;
  metrics_.last_update_timestamp->Set(static_cast<double>(snap.updated_at_unix_ms()) / 1000.0);
  metrics_.snapshot_bytes->Set(static_cast<double>(snap.served_json_bytes()));
  metrics_.snapshot_flags->Set(static_cast<double>(snap.flags().live_count()));
  metrics_.snapshot_segments->Set(static_cast<double>(snap.segments().live_count()));
  metrics_.SetDataSource(Label(snap.source()));

  // Encoded once, shared by every stream of a kind. A full put (2 × 7 MB for 10,000 flags) is
  // encoded only for the kinds somebody streams: at start-up, nobody yet.
  FrameBatch all, flags;
  const auto put_batch = [&snap](StreamKind kind) {
    return Batch(kind == StreamKind::kAll ? snap.PutFrameAll() : snap.PutFrameFlags());
  };
  if (change.replace_all) {
    bool want_all = false, want_flags = false;
    {
      std::lock_guard lock(mutex_);
      for (const Subscription& entry : subscribers_) {
        want_all = want_all || entry.kind == StreamKind::kAll;
        want_flags = want_flags || entry.kind == StreamKind::kFlags;
      }
    }
    if (want_all) all = put_batch(StreamKind::kAll);
    if (want_flags) flags = put_batch(StreamKind::kFlags);
  } else {
    std::vector<protocol::SharedBytes> all_frames, flag_frames;
    all_frames.reserve(change.items.size());
    for (const auto& [kind, item] : change.items) {
      protocol::ChangeFrames frames = protocol::EncodeChange(kind, *item);
      all_frames.push_back(std::move(frames.all));
      if (frames.flags) flag_frames.push_back(std::move(frames.flags));
    }
    all = std::make_shared<const std::vector<protocol::SharedBytes>>(std::move(all_frames));
    flags = std::make_shared<const std::vector<protocol::SharedBytes>>(std::move(flag_frames));
  }

  std::unique_lock lock(mutex_);
  current_.store(change.snapshot);
  if (snap.source() == DataSource::kUpstream || snap.source() == DataSource::kFile)
    had_live_data_ = true;
  std::erase_if(subscribers_, [&](const Subscription& entry) {
    auto subscriber = entry.subscriber.lock();
    if (!subscriber) return true;
    if (entry.kind == StreamKind::kEvaluated) {
      subscriber->DataChanged();
      return false;
    }
    if (entry.kind == StreamKind::kPing) {
      subscriber->Send(PingBatch());
    } else {
      FrameBatch& batch = entry.kind == StreamKind::kAll ? all : flags;
      if (!batch) batch = put_batch(entry.kind);  // subscribed since the check above
      if (!batch->empty()) subscriber->Send(batch);
    }
    return false;
  });
  lock.unlock();
  if (change.replace_all) ReturnFreedMemory();  // after the commit (and its record copies)
  // The source learns that its data is served (it then reports VALID: never while polling
  // would still answer 503).
  if (change.published) change.published();
}

void Environment::SetConnectionState(ConnectionState state, std::optional<ErrorInfo> error) {
  std::lock_guard lock(mutex_);
  if (error) last_error_ = std::move(error);
  if (state == state_) return;
  state_ = state;
  state_since_unix_ms_ = NowUnixMs();
  metrics_.SetUpstreamState(static_cast<metrics::UpstreamState>(state));
}

void Environment::SetMode(SourceMode mode) {
  std::lock_guard lock(mutex_);
  mode_ = mode;
}

void Environment::NoteActivity() {
  last_activity_unix_ms_.store(NowUnixMs(), std::memory_order_relaxed);
}

void Environment::MarkCredentialRejected() { credential_rejected_.store(true); }

bool Environment::has_live_data() const {
  std::lock_guard lock(mutex_);
  return had_live_data_;
}

std::shared_ptr<const eval::FlagData> Environment::EvalData() const {
  const protocol::SnapshotPtr snap = current_.load();
  if (!snap) return nullptr;
  // Built lazily by the first evaluation after a change (only changed items are compiled), so
  // environments without client-side SDKs never pay for it.
  std::lock_guard lock(eval_mutex_);
  // Data versions only grow: a caller that loaded an older snapshot gets the newer build.
  if (!eval_data_ || eval_data_version_ < snap->data_version()) {
    const std::size_t unparsable_before = eval_data_ ? eval_data_->unparsable_count() : 0;
    eval_data_ = eval::FlagData::Build(snap->flags(), snap->segments(), eval_data_.get());
    eval_data_version_ = snap->data_version();
    if (eval_data_->unparsable_count() > unparsable_before) {
      LogWarn("env " + name_,
              std::to_string(eval_data_->unparsable_count()) +
                  " flag(s) or segment(s) do not fit the LaunchDarkly schema; client-side "
                  "evaluations of the flags concerned return ERROR/MALFORMED_FLAG");
    }
  }
  return eval_data_;
}

void Environment::Subscribe(const std::shared_ptr<Subscriber>& subscriber, StreamKind kind) {
  std::lock_guard lock(mutex_);
  // Under mutex_, no Publish can run between reading the snapshot and registering: the stream
  // gets exactly the changes after the put it starts with.
  if (auto snap = current_.load()) {
    switch (kind) {
      case StreamKind::kAll:
        subscriber->Send(Batch(snap->PutFrameAll()));
        break;
      case StreamKind::kFlags:
        subscriber->Send(Batch(snap->PutFrameFlags()));
        break;
      case StreamKind::kEvaluated:
        subscriber->DataChanged();
        break;
      case StreamKind::kPing:
        subscriber->Send(PingBatch());
        break;
    }
  }
  // Closed streams leave expired entries (holding their session's memory) until pruned; pruning
  // whenever the list has doubled since the last prune keeps that bounded at amortized O(1).
  if (subscribers_.size() >= 2 * subscribers_after_prune_ + 64) {
    std::erase_if(subscribers_,
                  [](const Subscription& entry) { return entry.subscriber.expired(); });
    subscribers_after_prune_ = subscribers_.size();
  }
  subscribers_.push_back({subscriber, kind, credential_generation_});
}

std::uint64_t Environment::RotateCredentials() {
  std::lock_guard lock(mutex_);
  return ++credential_generation_;
}

void Environment::CloseSubscribersBefore(std::uint64_t generation, bool server_streams) {
  std::lock_guard lock(mutex_);
  std::erase_if(subscribers_, [&](const Subscription& entry) {
    const bool server = entry.kind == StreamKind::kAll || entry.kind == StreamKind::kFlags;
    if (entry.generation >= generation || server != server_streams) return false;
    if (auto subscriber = entry.subscriber.lock()) subscriber->Close();
    return true;
  });
}

void Environment::Heartbeat() {
  static const FrameBatch kHeartbeat =
      Batch(std::make_shared<const std::string>(protocol::kSseHeartbeat));
  std::lock_guard lock(mutex_);
  std::erase_if(subscribers_, [](const Subscription& entry) {
    auto subscriber = entry.subscriber.lock();
    if (!subscriber) return true;
    subscriber->Send(kHeartbeat);
    return false;
  });
}

void Environment::CloseSubscribers() {
  std::lock_guard lock(mutex_);
  for (const Subscription& entry : subscribers_) {
    if (auto subscriber = entry.subscriber.lock()) subscriber->Close();
  }
  subscribers_.clear();
}

EnvironmentStatus Environment::Status() const {
  EnvironmentStatus status;
  status.snapshot = current_.load();
  std::lock_guard lock(mutex_);
  status.state = state_;
  status.state_since_unix_ms = state_since_unix_ms_;
  status.last_error = last_error_;
  status.connected = had_live_data_ && state_ != ConnectionState::kOff &&
                     (state_ == ConnectionState::kValid ||
                      NowUnixMs() - state_since_unix_ms_ < disconnected_status_time_.count());
  status.mode = mode_;
  status.last_activity_unix_ms = last_activity_unix_ms_.load(std::memory_order_relaxed);
  status.credential_rejected = credential_rejected_.load();
  status.cache_state = cache_state_;
  status.cache_load = cache_load_;
  status.cache_error = cache_error_;
  return status;
}

}  // namespace flagrelay::relay
