// LMDB-backed Store. Layout inside the data dir's one LMDB environment (see lmdb_env.hpp):
//
//   records     "m\0<env>"                 -> meta record of <env>
//               "i\0<env>\0<kind>\0<key>"  -> item record (record.cpp documents both encodings)
//   quarantine  "<env>\0<unix ms, 20 digits>\0<seq, 10 digits>"
//                                          -> u32 LE key length, original key, original value
//
// Environment names are [A-Za-z0-9_.-]+ and kinds contain no NUL, so prefixes never collide and
// LMDB's byte order on item keys is exactly the (kind, key) order the snapshot promises.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include "flagrelay/cache/store.hpp"
#include "lmdb_env.hpp"
#include "record.hpp"

namespace flagrelay::cache {
namespace {

using lmdb::Cursor;
using lmdb::ErrorText;
using lmdb::ReadTxn;
using lmdb::ToVal;
using lmdb::ToView;
using lmdb::WriteTxn;

constexpr std::size_t kMaxEnvNameBytes = 128;
constexpr char kNotWritable[] = "the cache was opened for reading only";
constexpr std::size_t kMaxFieldBytes = 0xFFFFFFFFu;  // a record's str length is a u32

bool IsValidEnvName(std::string_view name) {
  if (name.empty() || name.size() > kMaxEnvNameBytes) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

std::string MetaKey(std::string_view env) {
  std::string key("m\0", 2);
  key.append(env);
  return key;
}

std::string ItemPrefix(std::string_view env) {
  std::string key("i\0", 2);
  key.append(env);
  key.push_back('\0');
  return key;
}

std::string ItemKey(std::string_view env, std::string_view kind, std::string_view key) {
  std::string out = ItemPrefix(env);
  out.append(kind);
  out.push_back('\0');
  out.append(key);
  return out;
}

std::int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ZeroPadded(std::uint64_t value, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llu", width, static_cast<unsigned long long>(value));
  return buf;
}

// Calls `visit(key, value)` for every record of `dbi` whose key starts with `prefix`, in key
// order, while it returns true. The views die with the cursor step: visitors copy what they keep.
template <typename Visit>
int ScanPrefix(MDB_txn* txn, MDB_dbi dbi, std::string_view prefix, Visit visit) {
  Cursor cursor(txn, dbi);
  if (cursor.status() != MDB_SUCCESS) return cursor.status();
  MDB_val key = ToVal(prefix);
  MDB_val value;
  // LMDB refuses an empty key for MDB_SET_RANGE.
  int rc = cursor.Get(&key, &value, prefix.empty() ? MDB_FIRST : MDB_SET_RANGE);
  while (rc == MDB_SUCCESS) {
    const std::string_view k = ToView(key);
    if (!k.starts_with(prefix)) break;
    if (!visit(k, ToView(value))) break;
    rc = cursor.Get(&key, &value, MDB_NEXT);
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

// Copies of every key of `dbi` under `prefix`, for deleting or moving them after the cursor is
// closed (no cursor games around deletes).
int CollectKeys(MDB_txn* txn, MDB_dbi dbi, std::string_view prefix,
                std::vector<std::string>* keys) {
  return ScanPrefix(txn, dbi, prefix, [keys](std::string_view k, std::string_view) {
    keys->emplace_back(k);
    return true;
  });
}

// What is stored for one environment, verified. Works in a read or a write transaction.
struct Inspection {
  LoadOutcome outcome = LoadOutcome::kMissing;
  EnvSnapshot snapshot;
  std::string detail;
};

Inspection Inspect(MDB_txn* txn, MDB_dbi dbi, std::string_view env) {
  Inspection result;
  std::string corrupt;  // first verification failure
  std::string newer;    // first record written by a newer binary
  auto note = [](std::string* slot, std::string what) {
    if (slot->empty()) *slot = std::move(what);
  };

  const std::string prefix = ItemPrefix(env);
  std::vector<ItemRecord>& items = result.snapshot.items;
  std::size_t item_records = 0;
  int rc = ScanPrefix(txn, dbi, prefix, [&](std::string_view k, std::string_view v) {
    ++item_records;
    const std::string_view rest = k.substr(prefix.size());  // "<kind>\0<key>"
    const std::size_t sep = rest.find('\0');
    if (sep == std::string_view::npos || sep == 0) {
      note(&corrupt, "item key without a kind");
      return true;
    }
    const std::string_view kind = rest.substr(0, sep);
    const std::string_view item_key = rest.substr(sep + 1);
    const std::string name = std::string(kind) + "/" + std::string(item_key);
    auto decoded = record::DecodeItem(v);
    if (decoded.verdict == record::Verdict::kNewerFormat) {
      note(&newer, "item " + name + ": " + decoded.problem);
    } else if (decoded.verdict != record::Verdict::kOk) {
      note(&corrupt, "item " + name + ": " + decoded.problem);
    } else if (decoded.value.kind != kind || decoded.value.key != item_key) {
      note(&corrupt, "item " + name + ": record does not match its key");
    } else if (corrupt.empty() && newer.empty()) {
      items.push_back(std::move(decoded.value));
    }
    return true;  // keep scanning: a newer record anywhere must win over corruption
  });
  if (rc != MDB_SUCCESS) {
    result.outcome = LoadOutcome::kError;
    result.detail = ErrorText(rc);
    return result;
  }

  const std::string meta_key = MetaKey(env);
  MDB_val key = ToVal(meta_key);
  MDB_val value;
  rc = mdb_get(txn, dbi, &key, &value);
  std::optional<record::StoredMeta> meta;
  if (rc == MDB_NOTFOUND) {
    if (item_records == 0) return result;  // kMissing
    note(&corrupt, std::to_string(item_records) + " item records without metadata");
  } else if (rc != MDB_SUCCESS) {
    result.outcome = LoadOutcome::kError;
    result.detail = ErrorText(rc);
    return result;
  } else {
    auto decoded = record::DecodeMeta(ToView(value));
    if (decoded.verdict == record::Verdict::kNewerFormat) {
      note(&newer, "meta: " + decoded.problem);
    } else if (decoded.verdict != record::Verdict::kOk) {
      note(&corrupt, "meta: " + decoded.problem);
    } else {
      meta = std::move(decoded.value);
    }
  }

  if (!newer.empty()) {
    result.outcome = LoadOutcome::kUnsupportedFormat;
    result.detail = std::move(newer);
  } else if (!corrupt.empty()) {
    result.outcome = LoadOutcome::kCorrupt;
    result.detail = std::move(corrupt);
  } else if (meta->item_count != item_records) {
    result.outcome = LoadOutcome::kCorrupt;
    result.detail = "meta says " + std::to_string(meta->item_count) + " items, found " +
                    std::to_string(item_records);
  } else {
    result.outcome = LoadOutcome::kLoaded;
    result.snapshot.meta = std::move(meta->meta);
  }
  if (result.outcome != LoadOutcome::kLoaded) result.snapshot = {};
  return result;
}

// Puts every value of `dbi` back under its key, which copies every page on its path as a commit
// would (the write transaction is the caller's, to abort).
int RewriteInPlace(MDB_txn* txn, MDB_dbi dbi) {
  Cursor cursor(txn, dbi);
  if (cursor.status() != MDB_SUCCESS) return cursor.status();
  MDB_val key;
  MDB_val value;
  int rc = cursor.Get(&key, &value, MDB_FIRST);
  while (rc == MDB_SUCCESS) {
    std::string copy(ToView(value));  // the value's page is the one being replaced
    MDB_val same = ToVal(copy);
    rc = cursor.Put(&key, &same, MDB_CURRENT);
    if (rc == MDB_SUCCESS) rc = cursor.Get(&key, &value, MDB_NEXT);
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

int DeleteAll(MDB_txn* txn, MDB_dbi dbi) {
  Cursor cursor(txn, dbi);
  if (cursor.status() != MDB_SUCCESS) return cursor.status();
  MDB_val key;
  MDB_val value;
  int rc = cursor.Get(&key, &value, MDB_FIRST);
  while (rc == MDB_SUCCESS) {
    rc = cursor.Del();
    if (rc == MDB_SUCCESS) rc = cursor.Get(&key, &value, MDB_FIRST);
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

LoadResult ToLoadResult(Inspection inspection) {
  LoadResult result;
  result.outcome = inspection.outcome;
  result.detail = std::move(inspection.detail);
  if (result.outcome == LoadOutcome::kLoaded) result.snapshot = std::move(inspection.snapshot);
  return result;
}

CommitResult Failed(std::string error) { return CommitResult{false, std::move(error)}; }

class LmdbStore final : public Store {
 public:
  LmdbStore(std::string dir, std::shared_ptr<lmdb::Env> env, Access access)
      : dir_(std::move(dir)), env_(std::move(env)), access_(access) {}

  LoadResult Load(std::string_view env_name) override {
    if (!IsValidEnvName(env_name)) {
      return LoadResult{LoadOutcome::kError, std::nullopt, "invalid environment name"};
    }
    Inspection inspection;
    {
      std::optional<ReadTxn> txn;
      const int rc = env_->BeginRead(&txn);
      if (rc != MDB_SUCCESS) return LoadResult{LoadOutcome::kError, std::nullopt, ErrorText(rc)};
      inspection = Inspect(txn->get(), env_->records(), env_name);
    }
    if (inspection.outcome != LoadOutcome::kCorrupt || access_ != Access::kReadWrite) {
      return ToLoadResult(std::move(inspection));
    }
    return QuarantineIfStillCorrupt(env_name);
  }

  std::string Quarantine(std::string_view env_name) override {
    if (!IsValidEnvName(env_name)) return "invalid environment name";
    if (access_ != Access::kReadWrite) return kNotWritable;
    std::optional<WriteTxn> txn;
    int rc = env_->BeginWrite(&txn);
    std::size_t moved = 0;
    if (rc == MDB_SUCCESS) rc = MoveToQuarantine(txn->get(), env_name, &moved);
    if (rc == MDB_SUCCESS) rc = txn->Commit();
    return rc == MDB_SUCCESS ? std::string() : ErrorText(rc);
  }

  CommitResult ReplaceAll(std::string_view env_name, const EnvMeta& meta,
                          std::span<const ItemRecord> items) override {
    if (std::string problem = Validate(env_name, meta, items); !problem.empty()) {
      return Failed(std::move(problem));
    }
    std::optional<WriteTxn> txn;
    int rc = env_->BeginWrite(&txn);
    if (rc != MDB_SUCCESS) return Failed(ErrorText(rc));

    std::vector<std::string> old_keys;
    rc = CollectKeys(txn->get(), env_->records(), ItemPrefix(env_name), &old_keys);
    for (const std::string& k : old_keys) {
      if (rc != MDB_SUCCESS) break;
      MDB_val key = ToVal(k);
      rc = mdb_del(txn->get(), env_->records(), &key, nullptr);
    }
    if (rc != MDB_SUCCESS) return Failed(ErrorText(rc));
    return PutAndCommit(std::move(*txn), env_name, meta, items, 0);
  }

  CommitResult Upsert(std::string_view env_name, const EnvMeta& meta,
                      std::span<const ItemRecord> items) override {
    if (std::string problem = Validate(env_name, meta, items); !problem.empty()) {
      return Failed(std::move(problem));
    }
    std::optional<WriteTxn> txn;
    int rc = env_->BeginWrite(&txn);
    if (rc != MDB_SUCCESS) return Failed(ErrorText(rc));

    // Start from the committed count; without trustworthy meta, count what is actually there so
    // the new meta agrees with the records it describes.
    std::uint64_t existing = 0;
    const std::string meta_key = MetaKey(env_name);
    MDB_val key = ToVal(meta_key);
    MDB_val value;
    rc = mdb_get(txn->get(), env_->records(), &key, &value);
    auto decoded = rc == MDB_SUCCESS ? record::DecodeMeta(ToView(value))
                                     : record::Decoded<record::StoredMeta>{};
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return Failed(ErrorText(rc));
    if (decoded.verdict == record::Verdict::kOk) {
      existing = decoded.value.item_count;
    } else {
      rc = ScanPrefix(txn->get(), env_->records(), ItemPrefix(env_name),
                      [&existing](std::string_view, std::string_view) {
                        ++existing;
                        return true;
                      });
      if (rc != MDB_SUCCESS) return Failed(ErrorText(rc));
    }
    return PutAndCommit(std::move(*txn), env_name, meta, items, existing);
  }

  std::vector<EnvSummary> List() override {
    std::vector<EnvSummary> out;
    std::optional<ReadTxn> txn;
    if (env_->BeginRead(&txn) != MDB_SUCCESS) return out;
    const std::string meta_prefix("m\0", 2);
    int rc = ScanPrefix(txn->get(), env_->records(), meta_prefix,
                        [&](std::string_view k, std::string_view v) {
                          EnvSummary summary;
                          summary.env_name = std::string(k.substr(meta_prefix.size()));
                          auto decoded = record::DecodeMeta(v);
                          if (decoded.verdict == record::Verdict::kOk) {
                            summary.meta = std::move(decoded.value.meta);
                          }
                          out.push_back(std::move(summary));
                          return true;
                        });
    for (EnvSummary& summary : out) {
      if (rc != MDB_SUCCESS) break;
      // Payload is the items' JSON bytes; a record that does not decode counts with its raw size.
      rc = ScanPrefix(txn->get(), env_->records(), ItemPrefix(summary.env_name),
                      [&summary](std::string_view, std::string_view v) {
                        ++summary.item_count;
                        auto item = record::DecodeItem(v);
                        summary.payload_bytes += item.verdict == record::Verdict::kOk
                                                     ? item.value.json.size()
                                                     : v.size();
                        return true;
                      });
    }
    return out;
  }

  std::vector<QuarantineEntry> ListQuarantine() override {
    std::vector<QuarantineEntry> out;
    std::optional<ReadTxn> txn;
    if (env_->BeginRead(&txn) != MDB_SUCCESS) return out;
    // Keys are "<env>\0<unix ms, 20 digits>\0<seq>": one entry per (env, time).
    (void)ScanPrefix(txn->get(), env_->quarantine(), {},
                     [&out](std::string_view k, std::string_view v) {
                       const std::size_t sep = k.find('\0');
                       if (sep == std::string_view::npos) return true;
                       const std::string_view env = k.substr(0, sep);
                       std::int64_t at = 0;
                       for (char c : k.substr(sep + 1, 20))
                         at = c >= '0' && c <= '9' ? at * 10 + (c - '0') : at;
                       if (out.empty() || out.back().env_name != env ||
                           out.back().quarantined_at_unix_ms != at) {
                         out.push_back({std::string(env), at, 0, 0});
                       }
                       ++out.back().records;
                       out.back().bytes += v.size();
                       return true;
                     });
    return out;
  }

  std::string ExerciseWrites() override {
    if (access_ == Access::kReadOnly) return kNotWritable;
    std::optional<WriteTxn> txn;
    int rc = env_->BeginWrite(&txn);
    // What commits do: overwrite (copies every page on the path), delete everything (rebalances
    // and frees pages, as ReplaceAll does), add (allocates pages, from the free list first).
    for (MDB_dbi dbi : {env_->records(), env_->quarantine()}) {
      if (rc == MDB_SUCCESS) rc = RewriteInPlace(txn->get(), dbi);
    }
    if (rc == MDB_SUCCESS) rc = DeleteAll(txn->get(), env_->records());
    for (int i = 0; rc == MDB_SUCCESS && i < 256; ++i) {
      const std::string k = "~probe\0" + std::to_string(i);
      const std::string v(i % 2 ? 6000 : 300, 'p');  // some need overflow pages
      MDB_val key = ToVal(k);
      MDB_val value = ToVal(v);
      rc = mdb_put(txn->get(), env_->records(), &key, &value, 0);
    }
    // The transaction aborts here.
    return rc == MDB_SUCCESS || rc == MDB_MAP_FULL || rc == MDB_TXN_FULL ? std::string()
                                                                         : ErrorText(rc);
  }

  const std::string& dir() const override { return dir_; }

 private:
  std::string Validate(std::string_view env_name, const EnvMeta& meta,
                       std::span<const ItemRecord> items) const {
    if (access_ != Access::kReadWrite) return kNotWritable;
    if (!IsValidEnvName(env_name)) return "invalid environment name";
    if (meta.fingerprint.size() > kMaxFieldBytes || meta.source.size() > kMaxFieldBytes) {
      return "meta field too large";
    }
    for (const ItemRecord& item : items) {
      if (item.kind.empty() || item.kind.find('\0') != std::string::npos) {
        return "invalid item kind '" + item.kind + "'";
      }
      if (item.json.size() > kMaxFieldBytes)
        return "item " + item.kind + "/" + item.key + " too large";
      const std::size_t key_size = ItemKey(env_name, item.kind, item.key).size();
      if (key_size > env_->max_key_size()) {
        return "item key " + item.kind + "/" + item.key + " too long for LMDB (" +
               std::to_string(key_size) + " > " + std::to_string(env_->max_key_size()) + " bytes)";
      }
    }
    return {};
  }

  // Writes `items` and the meta (item count = `existing` + keys not present before), then commits.
  // Any failure drops the transaction, so nothing partial is ever visible.
  CommitResult PutAndCommit(WriteTxn txn, std::string_view env_name, const EnvMeta& meta,
                            std::span<const ItemRecord> items, std::uint64_t existing) {
    std::uint64_t count = existing;
    for (const ItemRecord& item : items) {
      const std::string item_key = ItemKey(env_name, item.kind, item.key);
      MDB_val key = ToVal(item_key);
      MDB_val old;
      int rc = mdb_get(txn.get(), env_->records(), &key, &old);
      if (rc == MDB_NOTFOUND) {
        ++count;
      } else if (rc != MDB_SUCCESS) {
        return Failed(ErrorText(rc));
      }
      const std::string encoded = record::EncodeItem(item);
      MDB_val value = ToVal(encoded);
      rc = mdb_put(txn.get(), env_->records(), &key, &value, 0);
      if (rc != MDB_SUCCESS) return Failed(ErrorText(rc));
    }
    const std::string meta_key = MetaKey(env_name);
    const std::string encoded = record::EncodeMeta(meta, count);
    MDB_val key = ToVal(meta_key);
    MDB_val value = ToVal(encoded);
    int rc = mdb_put(txn.get(), env_->records(), &key, &value, 0);
    if (rc == MDB_SUCCESS) rc = txn.Commit();
    if (rc != MDB_SUCCESS) return Failed(ErrorText(rc));
    return CommitResult{true, {}};
  }

  // Moves the meta and every item record of `env_name` to the quarantine database, each kept
  // with its original key, under "<env>\0<now>\0<seq>".
  int MoveToQuarantine(MDB_txn* txn, std::string_view env_name, std::size_t* moved) {
    std::vector<std::string> keys{MetaKey(env_name)};
    int rc = CollectKeys(txn, env_->records(), ItemPrefix(env_name), &keys);
    const std::string quarantine_prefix = std::string(env_name) + '\0' +
                                          ZeroPadded(static_cast<std::uint64_t>(NowUnixMs()), 20) +
                                          '\0';
    for (const std::string& k : keys) {
      if (rc != MDB_SUCCESS) break;
      MDB_val key = ToVal(k);
      MDB_val value;
      rc = mdb_get(txn, env_->records(), &key, &value);
      if (rc == MDB_NOTFOUND) {  // no meta: stray items only
        rc = MDB_SUCCESS;
        continue;
      }
      if (rc != MDB_SUCCESS) break;
      std::string kept;  // copy now: the value's page may move once we write
      const auto key_size = static_cast<std::uint32_t>(k.size());
      for (int i = 0; i < 4; ++i) kept.push_back(static_cast<char>((key_size >> (8 * i)) & 0xFF));
      kept.append(k);
      kept.append(ToView(value));
      const std::string q_key = quarantine_prefix + ZeroPadded((*moved)++, 10);
      MDB_val q_key_val = ToVal(q_key);
      MDB_val q_value = ToVal(kept);
      rc = mdb_put(txn, env_->quarantine(), &q_key_val, &q_value, 0);
      if (rc == MDB_SUCCESS) rc = mdb_del(txn, env_->records(), &key, nullptr);
    }
    return rc;
  }

  // Re-checks under the writer lock (a commit may have replaced the records since the read) and
  // moves every record of the environment to the quarantine database if they are still bad.
  LoadResult QuarantineIfStillCorrupt(std::string_view env_name) {
    std::optional<WriteTxn> txn;
    int rc = env_->BeginWrite(&txn);
    if (rc != MDB_SUCCESS) {
      return LoadResult{LoadOutcome::kCorrupt, std::nullopt,
                        "corrupt, and quarantine failed: " + ErrorText(rc)};
    }
    Inspection inspection = Inspect(txn->get(), env_->records(), env_name);
    if (inspection.outcome != LoadOutcome::kCorrupt) return ToLoadResult(std::move(inspection));

    std::size_t moved = 0;
    rc = MoveToQuarantine(txn->get(), env_name, &moved);
    if (rc == MDB_SUCCESS) rc = txn->Commit();
    std::string detail = std::move(inspection.detail);
    detail += rc == MDB_SUCCESS ? "; " + std::to_string(moved) + " records quarantined"
                                : "; quarantine failed: " + ErrorText(rc);
    return LoadResult{LoadOutcome::kCorrupt, std::nullopt, std::move(detail)};
  }

  const std::string dir_;
  const std::shared_ptr<lmdb::Env> env_;
  const Access access_;
};

}  // namespace

std::string_view ToString(LoadOutcome outcome) {
  switch (outcome) {
    case LoadOutcome::kLoaded:
      return "loaded";
    case LoadOutcome::kMissing:
      return "missing";
    case LoadOutcome::kCorrupt:
      return "corrupt";
    case LoadOutcome::kUnsupportedFormat:
      return "unsupported_format";
    case LoadOutcome::kError:
      return "error";
  }
  return "error";
}

std::unique_ptr<Store> Store::Open(const Options& options, std::string* error,
                                   std::string* warning) {
  std::string ignored;
  if (warning != nullptr) warning->clear();
  std::shared_ptr<lmdb::Env> env =
      lmdb::Env::Open(options.dir, options.map_size_bytes, options.access,
                      error != nullptr ? error : &ignored, warning);
  if (env == nullptr) return nullptr;
  return std::make_unique<LmdbStore>(options.dir, std::move(env), options.access);
}

std::string SetAsideDataFile(const std::string& dir, std::string* error) {
  return lmdb::Env::SetAside(dir, error);
}

}  // namespace flagrelay::cache
