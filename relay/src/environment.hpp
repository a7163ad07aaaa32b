#pragma once
// One relay environment: the data it serves (an immutable snapshot, swapped atomically), the way
// changes reach it (upstream messages, data-file reloads, the cache at start-up), and the SDK
// streams subscribed to it.
//
// Update flow (DESIGN.md §1): a change is version-checked and turned into a new snapshot under
// apply_mutex_, handed to the CommitQueue, committed to LMDB there, and only then published:
// the snapshot swapped and the encoded frames handed to every subscriber. So no SDK ever sees data
// that a crash would make the relay forget, and subscribers see changes in commit order.
//
// Thread safety: all public functions may be called from any thread. apply_mutex_ serializes
// changes; mutex_ guards subscribers and status; readers load the snapshot without a lock.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "commit_queue.hpp"
#include "flagrelay/cache/store.hpp"
#include "flagrelay/config/config.hpp"
#include "flagrelay/eval/evaluator.hpp"
#include "flagrelay/metrics/metrics.hpp"
#include "flagrelay/protocol/data.hpp"
#include "flagrelay/protocol/snapshot.hpp"
#include "flagrelay/protocol/sse.hpp"

namespace flagrelay::relay {

/// Server streams get the data (`/all`, `/flags`); client streams either evaluated results for one
/// context (`/eval`, `/meval`) or bare `ping`s (`/ping`, `/mping`).
enum class StreamKind { kAll, kFlags, kEvaluated, kPing };

/// The SSE frames of one change, in order, shared by every stream of a kind: a change costs one
/// pointer per stream, not a copy.
using FrameBatch = std::shared_ptr<const std::vector<protocol::SharedBytes>>;

/// An SDK stream as the environment sees it.
class Subscriber {
 public:
  virtual ~Subscriber() = default;
  /// Queues `frames`. Called with the environment's lock held: must not block and must not call
  /// back into the environment.
  virtual void Send(const FrameBatch& frames) = 0;
  /// kEvaluated streams: the data changed (or, on subscribe, exists); re-evaluate later, off this
  /// call. Same constraints as Send.
  virtual void DataChanged() {}
  /// Ends the stream (shutdown). Same constraints as Send.
  virtual void Close() = 0;
};

enum class ConnectionState { kInitializing, kValid, kInterrupted, kOff };
[[nodiscard]] std::string_view ToString(ConnectionState state);

/// How the environment's data source is getting data right now.
enum class SourceMode { kStreaming, kPolling, kFile, kOff };
[[nodiscard]] std::string_view ToString(SourceMode mode);

struct ErrorInfo {
  std::string kind;  // NETWORK_ERROR | ERROR_RESPONSE | INVALID_DATA | STORE_ERROR | UNKNOWN
  int status_code = 0;
  std::string message;
  std::int64_t time_unix_ms = 0;
};

struct EnvironmentStatus {
  ConnectionState state = ConnectionState::kInitializing;
  std::int64_t state_since_unix_ms = 0;
  std::optional<ErrorInfo> last_error;
  bool connected = false;  // live data, and not interrupted for longer than the grace period
  SourceMode mode = SourceMode::kStreaming;
  std::int64_t last_activity_unix_ms = 0;  // last bytes from the upstream; 0 = never
  bool credential_rejected = false;
  protocol::SnapshotPtr snapshot;
  std::string cache_state;  // "ok" | "disabled" | "failing"
  std::string cache_load;   // start-up outcome: loaded | missing | corrupt | ... | disabled
  std::string cache_error;  // last cache problem, if any
};

[[nodiscard]] std::int64_t NowUnixMs();

/// Owned by shared_ptr: SDK streams, data sources and pending cache commits keep an environment
/// that a reload removed alive until they are done with it.
class Environment : public std::enable_shared_from_this<Environment> {
 public:
  /// `store` may be null (no cache). `metrics` must outlive the environment.
  /// `disconnected_status_time`: how long a non-VALID state may last before /status says
  /// "disconnected".
  Environment(config::EnvironmentConfig config, cache::Store* store, CommitQueue& commits,
              const metrics::EnvironmentMetrics& metrics,
              config::Duration disconnected_status_time = std::chrono::minutes(1));
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  /// The name never changes; everything else in the config may (UpdateConfig).
  [[nodiscard]] const std::string& name() const { return name_; }
  /// The config now. Keep the pointer for as long as its fields are used.
  [[nodiscard]] std::shared_ptr<const config::EnvironmentConfig> config() const {
    return config_.load();
  }
  /// A reload changed this environment's keys, client-side settings or event switches (same name
  /// and data source): requests see the new config from now on. Data and streams stay.
  void UpdateConfig(config::EnvironmentConfig config);
  [[nodiscard]] const metrics::EnvironmentMetrics& metrics() const { return metrics_; }

  /// The data served now; null until the environment has any. Lock-free.
  [[nodiscard]] protocol::SnapshotPtr snapshot() const { return current_.load(); }

  /// The current data compiled for evaluation (built on first use per data version, reusing
  /// unchanged items); null until the environment has data.
  [[nodiscard]] std::shared_ptr<const eval::FlagData> EvalData() const;

  /// Loads the cached snapshot, if the cache holds a valid one for this credential, and holds it
  /// back until ReleaseCache (so that a reachable upstream's fresh data wins). Start-up only,
  /// before any change is applied. `open_problem`: the cache's data file had to be set aside at
  /// start-up (why), so that nothing stored is reported as "corrupt", not "missing"; or, without
  /// a store, why the configured cache cannot be opened (reported as failing).
  void LoadFromCache(const std::string& open_problem = {});
  /// Serves the held-back cached snapshot unless live data was published already. Called when the
  /// first upstream attempt fails, or when initTimeout expires.
  void ReleaseCache();

  /// Called (on the commit thread, or inline without a cache) once a change is served.
  using Published = std::function<void()>;

  /// Applies an upstream `put`, `patch` or `delete` with the version rules. `published` runs
  /// once the change is committed and served (not for a stale change).
  void ApplyUpstream(protocol::Message message, Published published = {});
  /// Makes the data equal to a data file's content. Changed items get a version above the one
  /// SDKs have (even when the file did not bump it) so that SDKs accept them; the differences are
  /// announced as patches and deletes.
  void ApplyFile(protocol::PutMessage data, Published published = {});

  /// While commits fail (disk full, read-only), tries the full rewrite again without waiting for
  /// the next change, so that the cache recovers once space returns. Called periodically.
  void RetryFailedCommit();

  void SetConnectionState(ConnectionState state, std::optional<ErrorInfo> error = std::nullopt);
  void SetMode(SourceMode mode);
  /// Bytes arrived from the upstream (events or heartbeats). Lock-free; called per read.
  void NoteActivity();
  /// The upstream rejected the SDK key (401/403): downstream requests get 401 from now on.
  void MarkCredentialRejected();
  [[nodiscard]] bool credential_rejected() const { return credential_rejected_.load(); }
  /// A reload gave a new SDK key: the old key's rejection no longer applies.
  void ClearCredentialRejected() { credential_rejected_.store(false); }
  /// Whether data from the upstream or the file (not only the cache) has been published.
  [[nodiscard]] bool has_live_data() const;

  /// Adds a stream. It first gets a `put` of the current data (nothing until there is data), then
  /// every published change, in order, with nothing missed or repeated in between.
  void Subscribe(const std::shared_ptr<Subscriber>& subscriber, StreamKind kind);
  void Heartbeat();
  void CloseSubscribers();
  /// A key changed: streams subscribed from now on belong to a new generation, which this
  /// returns. CloseSubscribersBefore(generation, ...) later ends the older ones, opened with a
  /// key that is no longer accepted.
  std::uint64_t RotateCredentials();
  /// Closes the streams subscribed before `generation`: server streams (`/all`, `/flags`), or
  /// the client-side ones.
  void CloseSubscribersBefore(std::uint64_t generation, bool server_streams);

  [[nodiscard]] EnvironmentStatus Status() const;

  /// Identifies the credential cached data belongs to, without storing the key itself.
  [[nodiscard]] static std::string Fingerprint(const config::Secret& sdk_key);

 private:
  struct Change {
    protocol::SnapshotPtr snapshot;
    bool replace_all = false;  // a new `put` for subscribers, ReplaceAll in LMDB
    std::vector<std::pair<protocol::Kind, protocol::ItemPtr>> items;  // changed items otherwise
    Published published;
  };

  // Requires apply_mutex_. Commits (on the commit thread) and then publishes.
  void Submit(Change change);
  void Commit(const Change& change);
  void Publish(const Change& change);
  [[nodiscard]] protocol::SnapshotPtr MakeSnapshot(protocol::ItemSet flags,
                                                   protocol::ItemSet segments,
                                                   protocol::DataSource source) const;

  const std::string name_;
  std::atomic<std::shared_ptr<const config::EnvironmentConfig>> config_;
  cache::Store* const store_;
  CommitQueue& commits_;
  const metrics::EnvironmentMetrics& metrics_;

  const config::Duration disconnected_status_time_;
  std::atomic<protocol::SnapshotPtr> current_;
  std::atomic<std::int64_t> last_activity_unix_ms_{0};
  std::atomic<bool> credential_rejected_{false};

  std::mutex apply_mutex_;
  protocol::SnapshotPtr
      latest_;  // newest applied snapshot, committed or not (guarded by apply_mutex_)
  protocol::SnapshotPtr held_cache_;  // loaded from the cache, not yet served (apply_mutex_)

  mutable std::mutex mutex_;
  struct Subscription {
    std::weak_ptr<Subscriber> subscriber;
    StreamKind kind;
    std::uint64_t generation;  // credential_generation_ when subscribed
  };
  std::vector<Subscription> subscribers_;
  std::size_t subscribers_after_prune_ = 0;
  std::uint64_t credential_generation_ = 0;
  ConnectionState state_ = ConnectionState::kInitializing;
  SourceMode mode_ = SourceMode::kStreaming;
  std::int64_t state_since_unix_ms_;
  std::optional<ErrorInfo> last_error_;
  bool had_live_data_ = false;
  std::string cache_state_;
  std::string cache_load_ = "disabled";
  std::string cache_error_;
  bool cache_needs_rewrite_ = false;  // commit thread only: the last commit failed

  mutable std::mutex eval_mutex_;
  mutable std::uint64_t eval_data_version_ = 0;  // of the snapshot eval_data_ was built from
  mutable std::shared_ptr<const eval::FlagData> eval_data_;

  std::jthread prebuild_;  // builds the cached snapshot's body at start-up; holds its snapshot
};

}  // namespace flagrelay::relay
