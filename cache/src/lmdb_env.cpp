#include "lmdb_env.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <system_error>

namespace flagrelay::cache::lmdb {
namespace {

namespace fs = std::filesystem;

constexpr unsigned kMaxDbs = 2;         // "records" and "quarantine"
constexpr mdb_mode_t kFileMode = 0600;  // the cache holds flag rules: owner only
constexpr mode_t kDirMode = 0700;
constexpr MDB_dbi kFreeDbi = 0, kMainDbi = 1;  // LMDB's own databases: free pages, named ones
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

// Visits every key and value of `dbi`, so that structural damage LMDB can detect (bad page
// numbers, wrong page types) surfaces at open time rather than on every later Load, and checks
// that each lies inside the data file: LMDB trusts node offsets and sizes inside a page, so a
// damaged page can hand out a value that points anywhere, and reading it would crash.
//
// Residual risk: LMDB itself reads node headers at those offsets. Where that faults, it does so
// the same way every time the file is read, which is what the start-up probe (a child process
// reading the file first) relies on.
int WalkDb(MDB_txn* txn, MDB_dbi dbi, std::string_view file) {
  auto inside = [file](const MDB_val& v) {
    const auto* p = static_cast<const char*>(v.mv_data);
    return v.mv_size == 0 || (p >= file.data() && v.mv_size <= file.size() &&
                              static_cast<std::size_t>(p - file.data()) <= file.size() - v.mv_size);
  };
  Cursor cursor(txn, dbi);
  if (cursor.status() != MDB_SUCCESS) return cursor.status();
  MDB_val key;
  MDB_val value;
  int rc = cursor.Get(&key, &value, MDB_FIRST);
  while (rc == MDB_SUCCESS) {
    if (!inside(key) || !inside(value)) return MDB_CORRUPTED;
    rc = cursor.Get(&key, &value, MDB_NEXT);
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

// Where this process mapped `dir`/data.mdb (LMDB does not say: mdb_env_info's address is the one
// a MDB_FIXEDMAP file asks for). Null when /proc is not there to tell.
const char* MapAddress(const std::string& dir) {
  struct stat st {};
  if (::stat((fs::path(dir) / "data.mdb").c_str(), &st) != 0) return nullptr;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    // "start-end perms offset major:minor inode path"
    unsigned long long start = 0, end = 0, offset = 0, inode = 0;
    unsigned major = 0, minor = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu", &start, &end, perms, &offset,
                    &major, &minor, &inode) != 7) {
      continue;
    }
    if (inode == st.st_ino && offset == 0 && makedev(major, minor) == st.st_dev) {
      return reinterpret_cast<const char*>(static_cast<std::uintptr_t>(start));
    }
  }
  return nullptr;
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

std::shared_ptr<Env> Env::Open(const std::string& dir, std::size_t map_size_bytes, Access access,
                               std::string* error, std::string* warning) {
  const bool writable = access == Access::kReadWrite;
  if (dir.empty()) {
    *error = "cache directory is empty";
    return nullptr;
  }
  if (writable) {
    // The cache holds flag rules: the directory we create is the owner's only.
    fs::path path = fs::path(dir).lexically_normal();
    if (!path.has_filename()) path = path.parent_path();  // "dir/"
    std::error_code ec;
    if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
    if (ec || (::mkdir(path.c_str(), kDirMode) != 0 && errno != EEXIST)) {
      *error = "cannot create cache directory '" + dir +
               "': " + (ec ? ec.message() : std::string(std::strerror(errno)));
      return nullptr;
    }
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
  std::string detail;
  int rc = env->TryOpen(dir, map_size_bytes, access, &detail);
  if (IsUnusableFile(rc) && writable) {
    const std::string aside = SetAside(dir, error);
    if (aside.empty()) {
      *error = "cache data file in '" + dir + "' is unusable (" + detail + ") and " + *error;
      return nullptr;
    }
    if (warning != nullptr) {
      *warning = "cache data file was unusable (" + detail + "); moved to '" + aside +
                 "', starting with an empty cache";
    }
    rc = env->TryOpen(dir, map_size_bytes, access, &detail);
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

std::string Env::SetAside(const std::string& dir, std::string* error) {
  const fs::path data_path = fs::path(dir) / "data.mdb";
  const fs::path aside = fs::path(dir) / ("data.mdb.corrupt-" + std::to_string(NowUnixMs()));
  std::error_code ec;
  fs::rename(data_path, aside, ec);
  if (ec) {
    *error = "cannot move '" + data_path.string() + "' aside: " + ec.message();
    return {};
  }
  fs::remove(fs::path(dir) / "lock.mdb", ec);  // describes the old file's readers
  return aside.string();
}

int Env::TryOpen(const std::string& dir, std::size_t map_size_bytes, Access access,
                 std::string* detail) {
  Close();
  detail->clear();
  const bool writable = access == Access::kReadWrite;
  if (!writable && !fs::exists(fs::path(dir) / "data.mdb")) {
    *detail = "no data.mdb (not a flagrelay cache directory)";
    return ENOENT;
  }
  int rc = mdb_env_create(&env_);
  if (rc == MDB_SUCCESS) rc = mdb_env_set_mapsize(env_, map_size_bytes);
  if (rc == MDB_SUCCESS) rc = mdb_env_set_maxdbs(env_, kMaxDbs);
  // MDB_NOTLS: read transactions are not tied to a thread (Asio handlers move between threads).
  // Default sync: a commit returns only after fsync, which commit-before-publish relies on.
  const unsigned flags = MDB_NOTLS | (access == Access::kReadOnly ? MDB_RDONLY : 0u);
  if (rc == MDB_SUCCESS) rc = mdb_env_open(env_, dir.c_str(), flags, kFileMode);
  if (rc != MDB_SUCCESS) {
    *detail = ErrorText(rc);
    Close();
    return rc;
  }
  int dead_readers = 0;
  mdb_reader_check(env_, &dead_readers);  // slots left by crashed processes pin old pages

  rc = CheckDataFile(dir, detail);
  if (rc == MDB_SUCCESS) {
    // LMDB's own trees first: opening or creating the named databases reads them.
    std::optional<ReadTxn> read;
    rc = BeginRead(&read);
    for (MDB_dbi dbi : {kFreeDbi, kMainDbi}) {
      if (rc == MDB_SUCCESS) rc = WalkDb(read->get(), dbi, file_);
    }
    if (rc != MDB_SUCCESS) *detail = "reading the database index: " + ErrorText(rc);
  }
  if (rc == MDB_SUCCESS) {
    // Database handles outlive their transaction only if it commits (a read one too). The probe
    // creates missing databases as the relay is about to: that commit is part of what it tests.
    MDB_txn* txn = nullptr;
    const bool read_only = access == Access::kReadOnly;
    rc = mdb_txn_begin(env_, nullptr, read_only ? MDB_RDONLY : 0, &txn);
    const unsigned create = read_only ? 0 : MDB_CREATE;
    if (rc == MDB_SUCCESS) rc = mdb_dbi_open(txn, kRecordsDb, create, &records_);
    if (rc == MDB_SUCCESS) rc = mdb_dbi_open(txn, kQuarantineDb, create, &quarantine_);
    if (rc == MDB_SUCCESS) {
      rc = mdb_txn_commit(txn);
    } else if (txn != nullptr) {
      mdb_txn_abort(txn);
    }
    if (rc == MDB_SUCCESS)
      rc = CheckDataFile(dir, detail);  // again: creating the databases grew it
    if (rc == MDB_SUCCESS) {
      std::optional<ReadTxn> read;
      rc = BeginRead(&read);
      if (rc == MDB_SUCCESS) rc = WalkAll(read->get());
      if (rc != MDB_SUCCESS) *detail = "reading every record: " + ErrorText(rc);
    }
    if (rc != MDB_SUCCESS && detail->empty()) {
      *detail = rc == MDB_NOTFOUND ? "not a flagrelay cache (no records database)" : ErrorText(rc);
    }
  }
  if (rc != MDB_SUCCESS) {
    Close();
    return rc;
  }
  max_key_size_ = static_cast<std::size_t>(mdb_env_get_maxkeysize(env_));
  return MDB_SUCCESS;
}

// Every B-tree of the file: LMDB's free list and main database too, since a later write reads
// the free list and a damaged one would fail there instead of here.
int Env::WalkAll(MDB_txn* txn) const {
  int rc = MDB_SUCCESS;
  for (MDB_dbi dbi : {kFreeDbi, kMainDbi, records_, quarantine_}) {
    if (rc == MDB_SUCCESS) rc = WalkDb(txn, dbi, file_);
  }
  return rc;
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
  // Committed pages live in [map, map + needed): anything read from the file lies there.
  if (const char* map = MapAddress(dir); map != nullptr) file_ = std::string_view(map, needed);
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
