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

struct Options {
  std::string dir;                             // created (with parents) if missing
  std::size_t map_size_bytes = 1024ull << 20;  // LMDB map size
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

  /// Loads and verifies everything stored for `env_name`.
  [[nodiscard]] virtual LoadResult Load(std::string_view env_name) = 0;

  /// Atomically replaces everything stored for `env_name` with `items` and `meta`.
  [[nodiscard]] virtual CommitResult ReplaceAll(std::string_view env_name, const EnvMeta& meta,
                                                std::span<const ItemRecord> items) = 0;

  /// Atomically writes `items` (insert or overwrite by kind+key) and `meta` for `env_name`.
  [[nodiscard]] virtual CommitResult Upsert(std::string_view env_name, const EnvMeta& meta,
                                            std::span<const ItemRecord> items) = 0;

  /// Every environment with stored metadata.
  [[nodiscard]] virtual std::vector<EnvSummary> List() = 0;

  [[nodiscard]] virtual const std::string& dir() const = 0;

 protected:
  Store() = default;
};

}  // namespace flagrelay::cache
