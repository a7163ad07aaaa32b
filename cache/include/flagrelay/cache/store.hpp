#pragma once
// flagrelay's persistent memory across restarts: the last committed flag state of each relay
// environment, in one LMDB environment (one data dir). The store keeps opaque item JSON; it knows
// nothing of flags beyond (kind, key) and does not depend on the protocol library.
//
// Every record carries a format version and a checksum; what fails verification on load is
// quarantined (moved aside, kept for inspection) and reported, never served and never fatal.
//
// Thread safety: a Store may be used from any thread. Commits are serialized internally (LMDB has
// one writer); callers keep them off I/O threads because they block on fsync.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flagrelay::cache {

/// Highest record format this binary writes and understands. Records with a higher version are
/// left alone on load (kUnsupportedFormat) so that a rolled-back binary never crashes on them.
inline constexpr std::uint32_t kFormatVersion = 1;

/// What a Store may change on disk.
enum class Access {
  kReadWrite,  // the relay
  kReadOnly,   // the cache CLI: LMDB opened read-only
  /// The start-up probe: opened for writing so that ExerciseWrites can run, but nothing is ever
  /// committed.
  kProbe,
};

struct Options {
  std::string dir;                             // created (with parents) if missing
  std::size_t map_size_bytes = 1024ull << 20;  // LMDB map size
  /// Anything but kReadWrite changes nothing on disk: no directory is created, an unusable data
  /// file is an error instead of being moved aside, Load never quarantines, writes fail.
  Access access = Access::kReadWrite;
};

/// Per-environment metadata, committed in the same transaction as the items it describes.
struct EnvMeta {
  std::uint64_t data_version = 0;  // the relay's monotonic data version for this environment
  std::int64_t saved_at_unix_ms = 0;
  std::string fingerprint;  // identifies the credential the data belongs to (not the key)
  std::string source;       // "upstream" | "file"
};

/// One flag or segment as stored. Tombstones are ordinary items whose JSON says `"deleted":true`.
struct ItemRecord {
  std::string kind;  // "flags" | "segments"
  std::string key;
  std::string json;
};

struct EnvSnapshot {
  EnvMeta meta;
  std::vector<ItemRecord> items;  // sorted by (kind, key)
};

enum class LoadOutcome {
  kLoaded,             // snapshot is set and verified
  kMissing,            // nothing stored for this environment
  kCorrupt,            // a record failed verification; the environment's records were quarantined
  kUnsupportedFormat,  // written by a newer binary; ignored and left in place
  kError,              // LMDB failed (detail says how)
};

[[nodiscard]] std::string_view ToString(LoadOutcome outcome);

struct LoadResult {
  LoadOutcome outcome = LoadOutcome::kMissing;
  std::optional<EnvSnapshot> snapshot;
  std::string detail;  // human-readable reason for anything but kLoaded/kMissing
};

struct CommitResult {
  bool ok = false;
  std::string error;  // e.g. "MDB_MAP_FULL: Environment mapsize limit reached"
};

/// Records of one environment that failed verification, moved aside by Load or Quarantine.
struct QuarantineEntry {
  std::string env_name;
  std::int64_t quarantined_at_unix_ms = 0;
  std::size_t records = 0;
  std::size_t bytes = 0;
};

/// Summary of one stored environment, for /status and the cache CLI.
struct EnvSummary {
  std::string env_name;
  EnvMeta meta;
  std::size_t item_count = 0;
  std::size_t payload_bytes = 0;
};

class Store {
 public:
  /// Opens (creating if needed) the store in `options.dir`. A data file that LMDB cannot open
  /// (corrupt, truncated, foreign) is renamed aside (`data.mdb.corrupt-<unix ms>`) and a fresh
  /// store is created; `warning` then says so. Returns nullptr with `error` set when even that
  /// fails (unwritable dir, ...).
  static std::unique_ptr<Store> Open(const Options& options, std::string* error,
                                     std::string* warning = nullptr);

  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  /// Loads and verifies everything stored for `env_name`; a corrupt environment's records are
  /// quarantined (unless the store is read-only).
  [[nodiscard]] virtual LoadResult Load(std::string_view env_name) = 0;

  /// Moves every record of `env_name` to the quarantine, for data that passed the store's checks
  /// but that the caller cannot use (e.g. item JSON that does not parse). Returns an error text,
  /// empty on success.
  [[nodiscard]] virtual std::string Quarantine(std::string_view env_name) = 0;

  /// Atomically replaces everything stored for `env_name` with `items` and `meta`.
  [[nodiscard]] virtual CommitResult ReplaceAll(std::string_view env_name, const EnvMeta& meta,
                                                std::span<const ItemRecord> items) = 0;

  /// Atomically writes `items` (insert or overwrite by kind+key) and `meta` for `env_name`.
  [[nodiscard]] virtual CommitResult Upsert(std::string_view env_name, const EnvMeta& meta,
                                            std::span<const ItemRecord> items) = 0;

  /// Every environment with stored metadata.
  [[nodiscard]] virtual std::vector<EnvSummary> List() = 0;

  /// What was quarantined, oldest first per environment.
  [[nodiscard]] virtual std::vector<QuarantineEntry> ListQuarantine() = 0;

  /// Rewrites every record in place and adds some, in a write transaction that is then aborted:
  /// LMDB reads its free list and copies every page as a commit would, and nothing reaches the
  /// disk. For the start-up probe (a damaged page structure can crash LMDB on the write path
  /// only). Returns what is damaged: empty when the write path works or fails only for lack of
  /// room (a full map is not damage); "opened for reading only" on a kReadOnly store.
  [[nodiscard]] virtual std::string ExerciseWrites() = 0;

  [[nodiscard]] virtual const std::string& dir() const = 0;

 protected:
  Store() = default;
};

/// Renames `dir`/data.mdb aside (data.mdb.corrupt-<unix ms>), for a data file found unsafe to
/// open (a probe crashed on it). Returns the new path, or an empty string with `error` set.
std::string SetAsideDataFile(const std::string& dir, std::string* error);

/// After the last Store on `dir` is closed: leaves a mark (`dir`/clean-close) recording a hash of
/// the data file as closed. Without a mark, or when it fails, the next start simply probes.
void MarkCleanClose(const std::string& dir);

/// Before opening `dir`: true when a clean-close mark is there and `dir`/data.mdb is byte for byte
/// the file it recorded, so the start-up probe can be skipped. Removes the mark in every case, so
/// a start that crashes after all is followed by one that probes.
bool TakeCleanCloseMark(const std::string& dir);

}  // namespace flagrelay::cache
