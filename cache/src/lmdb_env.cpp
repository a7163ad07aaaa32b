#include "lmdb_env.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

namespace flagrelay::cache::lmdb {
namespace {

namespace fs = std::filesystem;

constexpr unsigned kMaxDbs = 2;         // "records" and "quarantine"
constexpr mdb_mode_t kFileMode = 0600;  // the cache holds flag rules: owner only
constexpr char kRecordsDb[] = "records";
constexpr char kQuarantineDb[] = "quarantine";

using EnvId = std::pair<dev_t, ino_t>;

// LMDB forbids opening one environment twice in a process (closing either copy drops the other's
// POSIX locks), so Envs are shared per directory, keyed by device and inode.
struct Registry {
  std::mutex mutex;
  std::condition_variable closed;  // signalled when an Env has finished closing
  std::map<EnvId, std::weak_ptr<Env>> envs;
};

Registry& GetRegistry() {
  static Registry* const registry = new Registry;  // never destroyed: Envs may outlive statics
  return *registry;
}

// Codes meaning "this data file (or its lock file) is not something LMDB can use".
bool IsUnusableFile(int rc) {
  switch (rc) {
    case MDB_INVALID:
    case MDB_CORRUPTED:
    case MDB_VERSION_MISMATCH:
    case MDB_PANIC:
    case MDB_PAGE_NOTFOUND:
    case MDB_INCOMPATIBLE:
      return true;
    default:
      return false;
  }
}

std::int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Reads every key and value of `dbi`, so that structural damage LMDB can detect (bad page numbers,
// wrong page types) surfaces at open time rather than on every later Load.
//
// Residual risk: LMDB checks page numbers against the meta page and page types, but trusts node
// offsets and sizes inside a page. A page of garbage with plausible headers can still make LMDB
// read outside the page (SIGSEGV/SIGBUS) here or later. Values themselves are covered by the
// record checksums; the page structure is not, and can only be caught by LMDB's own checks.
int WalkDb(MDB_txn* txn, MDB_dbi dbi) {
  Cursor cursor(txn, dbi);
  if (cursor.status() != MDB_SUCCESS) return cursor.status();
  MDB_val key;
  MDB_val value;
  int rc = cursor.Get(&key, &value, MDB_FIRST);
  while (rc == MDB_SUCCESS) rc = cursor.Get(&key, &value, MDB_NEXT);
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

}  // namespace

std::string ErrorText(int rc) { return mdb_strerror(rc); }

ReadTxn::ReadTxn(ReadTxn&& other) noexcept : txn_(std::exchange(other.txn_, nullptr)) {}

ReadTxn& ReadTxn::operator=(ReadTxn&& other) noexcept {
  if (this != &other) {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
    txn_ = std::exchange(other.txn_, nullptr);
  }
  return *this;
}

ReadTxn::~ReadTxn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}

WriteTxn::WriteTxn(WriteTxn&& other) noexcept
    : lock_(std::move(other.lock_)), txn_(std::exchange(other.txn_, nullptr)) {}

WriteTxn& WriteTxn::operator=(WriteTxn&& other) noexcept {
  if (this != &other) {
    Abort();
    lock_ = std::move(other.lock_);
    txn_ = std::exchange(other.txn_, nullptr);
  }
  return *this;
}

WriteTxn::~WriteTxn() { Abort(); }

void WriteTxn::Abort() noexcept {
  if (txn_ != nullptr) mdb_txn_abort(std::exchange(txn_, nullptr));
  if (lock_.owns_lock()) lock_.unlock();
}

int WriteTxn::Commit() {
  if (txn_ == nullptr) return EINVAL;
  const int rc = mdb_txn_commit(std::exchange(txn_, nullptr));
  lock_.unlock();
  return rc;
}

std::shared_ptr<Env> Env::Open(const std::string& dir, std::size_t map_size_bytes,
                               std::string* error, std::string* warning) {
  if (dir.empty()) {
    *error = "cache directory is empty";
    return nullptr;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    *error = "cannot create cache directory '" + dir + "': " + ec.message();
    return nullptr;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    *error = "cannot stat cache directory '" + dir + "': " + std::strerror(errno);
    return nullptr;
  }
  if (!S_ISDIR(st.st_mode)) {
    *error = "cache directory '" + dir + "' is not a directory";
    return nullptr;
  }
  const EnvId id{st.st_dev, st.st_ino};

  Registry& registry = GetRegistry();
  std::unique_lock<std::mutex> lock(registry.mutex);
  for (;;) {
    auto it = registry.envs.find(id);
    if (it == registry.envs.end()) break;
    if (std::shared_ptr<Env> existing = it->second.lock()) return existing;
    registry.closed.wait(lock);  // its last holder is closing it right now
  }

  std::unique_ptr<Env> env(new Env);
  const fs::path lock_path = fs::path(dir) / "lock.mdb";
  const fs::path data_path = fs::path(dir) / "data.mdb";
  std::string detail;
  int rc = env->TryOpen(dir, map_size_bytes, &detail);
  if (IsUnusableFile(rc)) {
    const fs::path aside = fs::path(dir) / ("data.mdb.corrupt-" + std::to_string(NowUnixMs()));
    fs::rename(data_path, aside, ec);
    if (ec) {
      *error = "cache data file '" + data_path.string() + "' is unusable (" + detail +
               ") and cannot be moved aside: " + ec.message();
      return nullptr;
    }
    fs::remove(lock_path, ec);  // describes the old file's readers; LMDB recreates it
    if (warning != nullptr) {
      *warning = "cache data file '" + data_path.string() + "' was unusable (" + detail +
                 "); moved to '" + aside.string() + "', starting with an empty cache";
    }
    rc = env->TryOpen(dir, map_size_bytes, &detail);
  }
  if (rc != MDB_SUCCESS) {
    *error = "cannot open cache in '" + dir + "': " + detail;
    return nullptr;
  }

  std::shared_ptr<Env> shared(env.release(), [id](Env* closing) {
    Registry& r = GetRegistry();
    std::lock_guard<std::mutex> guard(r.mutex);
    delete closing;
    r.envs.erase(id);
    r.closed.notify_all();
  });
  registry.envs[id] = shared;
  return shared;
}

int Env::TryOpen(const std::string& dir, std::size_t map_size_bytes, std::string* detail) {
  Close();
  int rc = mdb_env_create(&env_);
  if (rc == MDB_SUCCESS) rc = mdb_env_set_mapsize(env_, map_size_bytes);
  if (rc == MDB_SUCCESS) rc = mdb_env_set_maxdbs(env_, kMaxDbs);
  // MDB_NOTLS: read transactions are not tied to a thread (Asio handlers move between threads).
  // Default sync: a commit returns only after fsync, which commit-before-publish relies on.
  if (rc == MDB_SUCCESS) rc = mdb_env_open(env_, dir.c_str(), MDB_NOTLS, kFileMode);
  if (rc != MDB_SUCCESS) {
    *detail = ErrorText(rc);
    Close();
    return rc;
  }
  int dead_readers = 0;
  mdb_reader_check(env_, &dead_readers);  // slots left by crashed processes pin old pages

  rc = CheckDataFile(dir, detail);
  if (rc == MDB_SUCCESS) {
    std::optional<WriteTxn> txn;
    rc = BeginWrite(&txn);
    if (rc == MDB_SUCCESS) rc = mdb_dbi_open(txn->get(), kRecordsDb, MDB_CREATE, &records_);
    if (rc == MDB_SUCCESS) rc = mdb_dbi_open(txn->get(), kQuarantineDb, MDB_CREATE, &quarantine_);
    if (rc == MDB_SUCCESS) rc = txn->Commit();
    if (rc != MDB_SUCCESS) *detail = ErrorText(rc);
  }
  if (rc == MDB_SUCCESS) {
    std::optional<ReadTxn> txn;
    rc = BeginRead(&txn);
    if (rc == MDB_SUCCESS) rc = WalkDb(txn->get(), records_);
    if (rc == MDB_SUCCESS) rc = WalkDb(txn->get(), quarantine_);
    if (rc != MDB_SUCCESS) *detail = ErrorText(rc);
  }
  if (rc != MDB_SUCCESS) {
    Close();
    return rc;
  }
  max_key_size_ = static_cast<std::size_t>(mdb_env_get_maxkeysize(env_));
  return MDB_SUCCESS;
}

// LMDB trusts the page count in the meta page; a data file shorter than that (truncated copy,
// full disk) would fault with SIGBUS on the first read past its end, so refuse it up front.
int Env::CheckDataFile(const std::string& dir, std::string* detail) {
  MDB_envinfo info{};
  MDB_stat stat{};
  int rc = mdb_env_info(env_, &info);
  if (rc == MDB_SUCCESS) rc = mdb_env_stat(env_, &stat);
  if (rc != MDB_SUCCESS) {
    *detail = ErrorText(rc);
    return rc;
  }
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(fs::path(dir) / "data.mdb", ec);
  if (ec) {
    *detail = "cannot stat data.mdb: " + ec.message();
    return ec.value();
  }
  const std::uintmax_t needed =
      (static_cast<std::uintmax_t>(info.me_last_pgno) + 1) * std::uintmax_t{stat.ms_psize};
  if (size < needed) {
    *detail = "data file is truncated: " + std::to_string(size) + " bytes, its meta page needs " +
              std::to_string(needed);
    return MDB_CORRUPTED;
  }
  return MDB_SUCCESS;
}

void Env::Close() noexcept {
  if (env_ != nullptr) mdb_env_close(std::exchange(env_, nullptr));
}

Env::~Env() { Close(); }

int Env::BeginRead(std::optional<ReadTxn>* txn) {
  MDB_txn* raw = nullptr;
  const int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &raw);
  if (rc == MDB_SUCCESS) txn->emplace(ReadTxn(raw));
  return rc;
}

int Env::BeginWrite(std::optional<WriteTxn>* txn) {
  std::unique_lock<std::mutex> lock(write_mutex_);
  MDB_txn* raw = nullptr;
  const int rc = mdb_txn_begin(env_, nullptr, 0, &raw);
  if (rc == MDB_SUCCESS) txn->emplace(WriteTxn(std::move(lock), raw));
  return rc;
}

}  // namespace flagrelay::cache::lmdb
