#pragma once
// A small RAII layer over LMDB that encodes its rules in types (private to the cache library):
// one Env per directory per process, read and write transactions as distinct move-only types
// whose destructors abort, cursors that cannot outlive the scope of their transaction, and LMDB
// status codes as plain values (no exceptions).

#include <lmdb.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "flagrelay/cache/store.hpp"  // Access

namespace flagrelay::cache::lmdb {

/// mdb_strerror text, e.g. "MDB_MAP_FULL: Environment mapsize limit reached".
[[nodiscard]] std::string ErrorText(int rc);

inline MDB_val ToVal(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};  // LMDB never writes through keys
}
inline std::string_view ToView(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

class ReadTxn {
 public:
  ReadTxn(ReadTxn&& other) noexcept;
  ReadTxn& operator=(ReadTxn&& other) noexcept;
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;
  ~ReadTxn();  // aborts: a read transaction has nothing to commit

  [[nodiscard]] MDB_txn* get() const { return txn_; }

 private:
  friend class Env;
  explicit ReadTxn(MDB_txn* txn) : txn_(txn) {}
  MDB_txn* txn_;
};

/// Holds the Env's writer lock for its whole life, so write transactions are serialized across
/// threads (with MDB_NOTLS that is the caller's job, not LMDB's).
class WriteTxn {
 public:
  WriteTxn(WriteTxn&& other) noexcept;
  WriteTxn& operator=(WriteTxn&& other) noexcept;
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;
  ~WriteTxn();  // aborts unless committed: nothing partial is ever written

  /// Commits (fsync included). The handle is released first because LMDB frees the transaction
  /// even when the commit fails.
  [[nodiscard]] int Commit();

  [[nodiscard]] MDB_txn* get() const { return txn_; }

 private:
  friend class Env;
  WriteTxn(std::unique_lock<std::mutex> lock, MDB_txn* txn) : lock_(std::move(lock)), txn_(txn) {}
  void Abort() noexcept;

  std::unique_lock<std::mutex> lock_;  // declared first: released after the abort
  MDB_txn* txn_;
};

/// A cursor lives in one scope inside its transaction: neither copyable nor movable, so it is
/// closed before the transaction commits (closing a write cursor after commit is a double free).
class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi) { status_ = mdb_cursor_open(txn, dbi, &cursor_); }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  ~Cursor() {
    if (cursor_ != nullptr) mdb_cursor_close(cursor_);
  }

  [[nodiscard]] int status() const { return status_; }
  [[nodiscard]] int Get(MDB_val* key, MDB_val* value, MDB_cursor_op op) {
    return mdb_cursor_get(cursor_, key, value, op);
  }
  [[nodiscard]] int Put(MDB_val* key, MDB_val* value, unsigned flags) {
    return mdb_cursor_put(cursor_, key, value, flags);
  }
  [[nodiscard]] int Del() { return mdb_cursor_del(cursor_, 0); }

 private:
  MDB_cursor* cursor_ = nullptr;
  int status_ = MDB_SUCCESS;
};

/// One LMDB environment (one data dir) with the store's two named databases.
class Env {
 public:
  /// Returns the process-wide Env of `dir`, opening it if no one holds it. A data file that LMDB
  /// refuses or that fails the open-time check is renamed aside and a fresh one created
  /// (`warning` says so). nullptr with `error` set when the directory cannot be used at all.
  /// A directory already open keeps its first map size and mode.
  ///
  /// Any `access` but kReadWrite changes nothing on disk (no directory, no database, no
  /// renaming); a missing or unusable data file is an error.
  static std::shared_ptr<Env> Open(const std::string& dir, std::size_t map_size_bytes,
                                   Access access, std::string* error, std::string* warning);

  /// Renames `dir`/data.mdb to data.mdb.corrupt-<unix ms> and removes the lock file that
  /// describes it. Returns the new path, or an empty string with `error` set.
  static std::string SetAside(const std::string& dir, std::string* error);

  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  ~Env();

  [[nodiscard]] int BeginRead(std::optional<ReadTxn>* txn);
  [[nodiscard]] int BeginWrite(std::optional<WriteTxn>* txn);

  [[nodiscard]] MDB_dbi records() const { return records_; }
  [[nodiscard]] MDB_dbi quarantine() const { return quarantine_; }
  [[nodiscard]] std::size_t max_key_size() const { return max_key_size_; }

 private:
  Env() = default;
  // One open attempt; on failure the handle is closed and the LMDB/errno code returned.
  int TryOpen(const std::string& dir, std::size_t map_size_bytes, Access access,
              std::string* detail);
  int CheckDataFile(const std::string& dir, std::string* detail);
  int WalkAll(MDB_txn* txn) const;
  void Close() noexcept;

  MDB_env* env_ = nullptr;
  std::string_view file_;  // the data file's committed pages in the map (set by CheckDataFile)
  MDB_dbi records_ = 0;
  MDB_dbi quarantine_ = 0;
  std::size_t max_key_size_ = 0;
  std::mutex write_mutex_;
};

}  // namespace flagrelay::cache::lmdb
