#include "flagrelay/cache/store.hpp"

#include <gtest/gtest.h>
#include <lmdb.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace flagrelay::cache {
namespace {

namespace fs = std::filesystem;

// --- An independent writer of the documented record format (see cache/src/record.cpp), so the
// --- tests pin the on-disk layout and can craft records the store itself never writes.

std::uint64_t Crc64Xz(std::string_view bytes, std::uint64_t crc = 0) {
  crc = ~crc;
  for (unsigned char c : bytes) {
    crc ^= c;
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 1) ? (crc >> 1) ^ 0xC96C5795D7870F42ull : crc >> 1;
  }
  return ~crc;
}

void PutLe(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void PutStr(std::string& out, std::string_view s) {
  PutLe(out, s.size(), 4);
  out.append(s);
}

std::string Record(std::uint32_t version, std::string_view body) {
  std::string out;
  PutLe(out, 0x59524C46, 4);
  PutLe(out, version, 4);
  std::string covered = out.substr(0, 8);
  covered.append(body);
  PutLe(out, Crc64Xz(covered), 8);
  out.append(body);
  return out;
}

std::string MetaBody(std::uint64_t data_version, std::int64_t saved_at, std::string_view fp,
                     std::string_view source, std::uint64_t item_count) {
  std::string body(1, '\x01');
  PutLe(body, data_version, 8);
  PutLe(body, static_cast<std::uint64_t>(saved_at), 8);
  PutStr(body, fp);
  PutStr(body, source);
  PutLe(body, item_count, 8);
  return body;
}

std::string ItemBody(std::string_view kind, std::string_view key, std::string_view json) {
  std::string body(1, '\x02');
  PutStr(body, kind);
  PutStr(body, key);
  PutStr(body, json);
  return body;
}

std::string MetaKey(std::string_view env) { return std::string("m\0", 2) + std::string(env); }

std::string ItemKey(std::string_view env, std::string_view kind, std::string_view key) {
  return std::string("i\0", 2) + std::string(env) + '\0' + std::string(kind) + '\0' +
         std::string(key);
}

// Raw access to the store's LMDB file. Only while no Store has the directory open (LMDB forbids
// two opens of one environment in a process).
class RawLmdb {
 public:
  explicit RawLmdb(const std::string& dir) {
    EXPECT_EQ(mdb_env_create(&env_), MDB_SUCCESS);
    EXPECT_EQ(mdb_env_set_maxdbs(env_, 2), MDB_SUCCESS);
    EXPECT_EQ(mdb_env_open(env_, dir.c_str(), MDB_NOTLS, 0600), MDB_SUCCESS);
  }
  ~RawLmdb() { mdb_env_close(env_); }

  void Put(const char* db, std::string_view key, std::string_view value) {
    Write(db, [&](MDB_txn* txn, MDB_dbi dbi) {
      MDB_val k{key.size(), const_cast<char*>(key.data())};
      MDB_val v{value.size(), const_cast<char*>(value.data())};
      ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), MDB_SUCCESS);
    });
  }

  void Del(const char* db, std::string_view key) {
    Write(db, [&](MDB_txn* txn, MDB_dbi dbi) {
      MDB_val k{key.size(), const_cast<char*>(key.data())};
      ASSERT_EQ(mdb_del(txn, dbi, &k, nullptr), MDB_SUCCESS);
    });
  }

  std::optional<std::string> Get(const char* db, std::string_view key) {
    std::optional<std::string> out;
    Read(db, [&](MDB_txn* txn, MDB_dbi dbi) {
      MDB_val k{key.size(), const_cast<char*>(key.data())};
      MDB_val v;
      if (mdb_get(txn, dbi, &k, &v) == MDB_SUCCESS)
        out.emplace(static_cast<char*>(v.mv_data), v.mv_size);
    });
    return out;
  }

  std::map<std::string, std::string> All(const char* db) {
    std::map<std::string, std::string> out;
    Read(db, [&](MDB_txn* txn, MDB_dbi dbi) {
      MDB_cursor* cursor = nullptr;
      ASSERT_EQ(mdb_cursor_open(txn, dbi, &cursor), MDB_SUCCESS);
      MDB_val k;
      MDB_val v;
      while (mdb_cursor_get(cursor, &k, &v, MDB_NEXT) == MDB_SUCCESS) {
        out.emplace(std::string(static_cast<char*>(k.mv_data), k.mv_size),
                    std::string(static_cast<char*>(v.mv_data), v.mv_size));
      }
      mdb_cursor_close(cursor);
    });
    return out;
  }

 private:
  template <typename F>
  void Write(const char* db, F f) {
    MDB_txn* txn = nullptr;
    ASSERT_EQ(mdb_txn_begin(env_, nullptr, 0, &txn), MDB_SUCCESS);
    MDB_dbi dbi;
    ASSERT_EQ(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), MDB_SUCCESS);
    f(txn, dbi);
    ASSERT_EQ(mdb_txn_commit(txn), MDB_SUCCESS);
  }

  template <typename F>
  void Read(const char* db, F f) {
    MDB_txn* txn = nullptr;
    ASSERT_EQ(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn), MDB_SUCCESS);
    MDB_dbi dbi;
    if (mdb_dbi_open(txn, db, 0, &dbi) == MDB_SUCCESS) f(txn, dbi);
    mdb_txn_abort(txn);
  }

  MDB_env* env_ = nullptr;
};

EnvMeta Meta(std::uint64_t version, std::string source = "upstream") {
  return EnvMeta{version, 1700000000000 + static_cast<std::int64_t>(version),
                 "fp-" + std::to_string(version), std::move(source)};
}

ItemRecord Flag(std::string key, std::string json = "") {
  if (json.empty()) json = R"({"key":")" + key + R"(","version":1})";
  return ItemRecord{"flags", std::move(key), std::move(json)};
}

void ExpectMetaEq(const EnvMeta& a, const EnvMeta& b) {
  EXPECT_EQ(a.data_version, b.data_version);
  EXPECT_EQ(a.saved_at_unix_ms, b.saved_at_unix_ms);
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  EXPECT_EQ(a.source, b.source);
}

std::vector<std::string> Keys(const EnvSnapshot& snapshot) {
  std::vector<std::string> out;
  for (const ItemRecord& item : snapshot.items) out.push_back(item.kind + "/" + item.key);
  return out;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "cache_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    dir_ = root_ + "/data";
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  Store& OpenStore(std::size_t map_size = 64ull << 20) {
    store_.reset();
    std::string error;
    warning_.clear();
    store_ = Store::Open(Options{dir_, map_size}, &error, &warning_);
    EXPECT_NE(store_, nullptr) << error;
    return *store_;
  }

  void CloseStore() { store_.reset(); }

  std::string root_;
  std::string dir_;
  std::string warning_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, ToStringNamesEveryOutcome) {
  EXPECT_EQ(ToString(LoadOutcome::kLoaded), "loaded");
  EXPECT_EQ(ToString(LoadOutcome::kMissing), "missing");
  EXPECT_EQ(ToString(LoadOutcome::kCorrupt), "corrupt");
  EXPECT_EQ(ToString(LoadOutcome::kUnsupportedFormat), "unsupported_format");
  EXPECT_EQ(ToString(LoadOutcome::kError), "error");
}

TEST_F(StoreTest, RoundTripSortsByKindThenKey) {
  Store& store = OpenStore();
  EXPECT_TRUE(warning_.empty()) << warning_;
  const std::vector<ItemRecord> items = {
      {"segments", "beta", R"({"key":"beta"})"},
      Flag("zeta"),
      Flag("alpha", R"({"key":"alpha","deleted":true})"),
      Flag("alpha-2"),
  };
  const CommitResult commit = store.ReplaceAll("production", Meta(7), items);
  ASSERT_TRUE(commit.ok) << commit.error;

  const LoadResult loaded = store.Load("production");
  ASSERT_EQ(loaded.outcome, LoadOutcome::kLoaded) << loaded.detail;
  ASSERT_TRUE(loaded.snapshot.has_value());
  ExpectMetaEq(loaded.snapshot->meta, Meta(7));
  EXPECT_EQ(Keys(*loaded.snapshot), (std::vector<std::string>{"flags/alpha", "flags/alpha-2",
                                                              "flags/zeta", "segments/beta"}));
  EXPECT_EQ(loaded.snapshot->items[0].json, R"({"key":"alpha","deleted":true})");
  EXPECT_EQ(loaded.snapshot->items[3].json, R"({"key":"beta"})");
}

TEST_F(StoreTest, StoresArbitraryBytesAndEmptyItems) {
  Store& store = OpenStore();
  const std::string binary("a\0b\xff\x01", 5);
  const std::vector<ItemRecord> items = {{"flags", binary, binary}, {"flags", "empty", ""}};
  ASSERT_TRUE(store.ReplaceAll("e", EnvMeta{}, items).ok);
  const LoadResult loaded = store.Load("e");
  ASSERT_EQ(loaded.outcome, LoadOutcome::kLoaded) << loaded.detail;
  ASSERT_EQ(loaded.snapshot->items.size(), 2u);
  EXPECT_EQ(loaded.snapshot->items[0].key, binary);
  EXPECT_EQ(loaded.snapshot->items[0].json, binary);
  EXPECT_EQ(loaded.snapshot->items[1].json, "");
}

TEST_F(StoreTest, UpsertAddsOverwritesAndKeepsCount) {
  Store& store = OpenStore();
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(1), std::vector{Flag("a"), Flag("b")}).ok);

  // Overwrite "b", add "c", and "c" twice in one batch: the count goes up by one only.
  const CommitResult upsert =
      store.Upsert("prod", Meta(2, "file"),
                   std::vector{Flag("b", R"({"v":2})"), Flag("c"), Flag("c", R"({"v":3})")});
  ASSERT_TRUE(upsert.ok) << upsert.error;

  const LoadResult loaded = store.Load("prod");
  ASSERT_EQ(loaded.outcome, LoadOutcome::kLoaded) << loaded.detail;
  ExpectMetaEq(loaded.snapshot->meta, Meta(2, "file"));
  EXPECT_EQ(Keys(*loaded.snapshot), (std::vector<std::string>{"flags/a", "flags/b", "flags/c"}));
  EXPECT_EQ(loaded.snapshot->items[1].json, R"({"v":2})");
  EXPECT_EQ(loaded.snapshot->items[2].json, R"({"v":3})");

  // An upsert of only existing keys leaves the count alone (Load checks count == records).
  ASSERT_TRUE(store.Upsert("prod", Meta(3), std::vector{Flag("a", "{}")}).ok);
  const LoadResult again = store.Load("prod");
  ASSERT_EQ(again.outcome, LoadOutcome::kLoaded) << again.detail;
  EXPECT_EQ(again.snapshot->items.size(), 3u);
  EXPECT_EQ(again.snapshot->meta.data_version, 3u);

  const std::vector<EnvSummary> list = store.List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].item_count, 3u);
}

TEST_F(StoreTest, UpsertCreatesAMissingEnvironment) {
  Store& store = OpenStore();
  ASSERT_TRUE(store.Upsert("new", Meta(1), std::vector{Flag("x")}).ok);
  const LoadResult loaded = store.Load("new");
  ASSERT_EQ(loaded.outcome, LoadOutcome::kLoaded) << loaded.detail;
  EXPECT_EQ(Keys(*loaded.snapshot), std::vector<std::string>{"flags/x"});
}

TEST_F(StoreTest, ReplaceAllRemovesOldItems) {
  Store& store = OpenStore();
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(1), std::vector{Flag("a"), Flag("b"), Flag("c")}).ok);
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(2), std::vector{Flag("b", "{}"), Flag("d")}).ok);
  const LoadResult loaded = store.Load("prod");
  ASSERT_EQ(loaded.outcome, LoadOutcome::kLoaded) << loaded.detail;
  EXPECT_EQ(Keys(*loaded.snapshot), (std::vector<std::string>{"flags/b", "flags/d"}));
  EXPECT_EQ(loaded.snapshot->items[0].json, "{}");

  ASSERT_TRUE(store.ReplaceAll("prod", Meta(3), {}).ok);
  const LoadResult empty = store.Load("prod");
  ASSERT_EQ(empty.outcome, LoadOutcome::kLoaded) << empty.detail;
  EXPECT_TRUE(empty.snapshot->items.empty());
  EXPECT_EQ(empty.snapshot->meta.data_version, 3u);
}

TEST_F(StoreTest, EnvironmentsAreIsolated) {
  Store& store = OpenStore();
  // "prod" is a prefix of the other names: key prefixes must not bleed into each other.
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(1), std::vector{Flag("a")}).ok);
  ASSERT_TRUE(store.ReplaceAll("prod-2", Meta(2), std::vector{Flag("b"), Flag("c")}).ok);
  ASSERT_TRUE(store.ReplaceAll("prod.x", Meta(3), std::vector{Flag("d")}).ok);
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(4), std::vector{Flag("e")}).ok);

  const LoadResult prod = store.Load("prod");
  const LoadResult prod2 = store.Load("prod-2");
  const LoadResult prodx = store.Load("prod.x");
  ASSERT_EQ(prod.outcome, LoadOutcome::kLoaded) << prod.detail;
  ASSERT_EQ(prod2.outcome, LoadOutcome::kLoaded) << prod2.detail;
  ASSERT_EQ(prodx.outcome, LoadOutcome::kLoaded) << prodx.detail;
  EXPECT_EQ(Keys(*prod.snapshot), std::vector<std::string>{"flags/e"});
  EXPECT_EQ(Keys(*prod2.snapshot), (std::vector<std::string>{"flags/b", "flags/c"}));
  EXPECT_EQ(Keys(*prodx.snapshot), std::vector<std::string>{"flags/d"});
  EXPECT_EQ(prod2.snapshot->meta.data_version, 2u);
}

TEST_F(StoreTest, ListSummarizesEveryEnvironment) {
  Store& store = OpenStore();
  EXPECT_TRUE(store.List().empty());
  ASSERT_TRUE(
      store.ReplaceAll("b-env", Meta(2), std::vector{Flag("x", "12345"), Flag("y", "678")}).ok);
  ASSERT_TRUE(store.ReplaceAll("a-env", Meta(1), {}).ok);
  const std::vector<EnvSummary> list = store.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].env_name, "a-env");
  EXPECT_EQ(list[0].item_count, 0u);
  EXPECT_EQ(list[0].payload_bytes, 0u);
  EXPECT_EQ(list[1].env_name, "b-env");
  ExpectMetaEq(list[1].meta, Meta(2));
  EXPECT_EQ(list[1].item_count, 2u);
  EXPECT_EQ(list[1].payload_bytes, 8u);
  EXPECT_EQ(store.dir(), dir_);
}

TEST_F(StoreTest, PersistsAcrossReopen) {
  ASSERT_TRUE(OpenStore().ReplaceAll("prod", Meta(9), std::vector{Flag("a"), Flag("b")}).ok);
  CloseStore();
  const LoadResult loaded = OpenStore().Load("prod");
  ASSERT_EQ(loaded.outcome, LoadOutcome::kLoaded) << loaded.detail;
  ExpectMetaEq(loaded.snapshot->meta, Meta(9));
  EXPECT_EQ(Keys(*loaded.snapshot), (std::vector<std::string>{"flags/a", "flags/b"}));
  EXPECT_TRUE(warning_.empty()) << warning_;
}

TEST_F(StoreTest, DataFilesAreOwnerOnly) {
  ASSERT_TRUE(OpenStore().ReplaceAll("prod", Meta(1), {}).ok);
  const fs::perms perms = fs::status(dir_ + "/data.mdb").permissions();
  EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
}

TEST_F(StoreTest, CreatedDirectoryIsOwnerOnly) {
  dir_ = root_ + "/nested/cache/";  // a trailing slash names the same directory
  OpenStore();
  const fs::perms perms = fs::status(root_ + "/nested/cache").permissions();
  EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
}

TEST_F(StoreTest, ReadOnlyStoreChangesNothing) {
  std::string error;
  EXPECT_EQ(Store::Open(Options{dir_, 64ull << 20, Access::kReadOnly}, &error), nullptr);
  EXPECT_FALSE(fs::exists(dir_)) << "a read-only open must not create the directory";
  EXPECT_NE(error.find(dir_), std::string::npos) << error;

  ASSERT_TRUE(OpenStore().ReplaceAll("prod", Meta(1), std::vector{Flag("a"), Flag("b")}).ok);
  CloseStore();
  {
    RawLmdb raw(dir_);
    std::string flipped = raw.Get("records", ItemKey("prod", "flags", "b")).value();
    flipped.back() ^= 0x01;
    raw.Put("records", ItemKey("prod", "flags", "b"), flipped);
  }
  {
    std::unique_ptr<Store> read_only =
        Store::Open(Options{dir_, 64ull << 20, Access::kReadOnly}, &error);
    ASSERT_NE(read_only, nullptr) << error;
    EXPECT_EQ(read_only->Load("prod").outcome, LoadOutcome::kCorrupt);
    EXPECT_EQ(read_only->Load("prod").outcome, LoadOutcome::kCorrupt) << "not quarantined";
    EXPECT_FALSE(read_only->Quarantine("prod").empty());
    EXPECT_FALSE(read_only->ReplaceAll("prod", Meta(2), {}).ok);
    EXPECT_FALSE(read_only->ExerciseWrites().empty());
  }
  {
    std::unique_ptr<Store> probe = Store::Open(Options{dir_, 64ull << 20, Access::kProbe}, &error);
    ASSERT_NE(probe, nullptr) << error;
    EXPECT_EQ(probe->Load("prod").outcome, LoadOutcome::kCorrupt);
    EXPECT_EQ(probe->ExerciseWrites(), "");
    EXPECT_FALSE(probe->ReplaceAll("prod", Meta(2), {}).ok);
    EXPECT_FALSE(probe->Quarantine("prod").empty());
    EXPECT_EQ(probe->Load("prod").outcome, LoadOutcome::kCorrupt) << "nothing was committed";
  }
  // A data file that cannot be used is an error for a read-only open, and stays where it is.
  std::ofstream(dir_ + "/data.mdb", std::ios::trunc | std::ios::binary) << std::string(9000, 'x');
  EXPECT_EQ(Store::Open(Options{dir_, 64ull << 20, Access::kReadOnly}, &error), nullptr);
  EXPECT_EQ(fs::file_size(dir_ + "/data.mdb"), 9000u);
}

TEST_F(StoreTest, QuarantineMovesAnEnvironmentAsideAndListsIt) {
  Store& store = OpenStore();
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(1), std::vector{Flag("a"), Flag("b")}).ok);
  ASSERT_TRUE(store.ReplaceAll("other", Meta(1), std::vector{Flag("a")}).ok);
  EXPECT_TRUE(store.ListQuarantine().empty());

  EXPECT_EQ(store.Quarantine("prod"), "");
  EXPECT_EQ(store.Load("prod").outcome, LoadOutcome::kMissing);
  EXPECT_EQ(store.Load("other").outcome, LoadOutcome::kLoaded);
  const std::vector<QuarantineEntry> entries = store.ListQuarantine();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].env_name, "prod");
  EXPECT_EQ(entries[0].records, 3u);  // meta and two items
  EXPECT_GT(entries[0].bytes, 0u);
  EXPECT_GT(entries[0].quarantined_at_unix_ms, 1700000000000);
  // The environment can be written again afterwards.
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(2), std::vector{Flag("c")}).ok);
  EXPECT_EQ(store.Load("prod").outcome, LoadOutcome::kLoaded);
}

TEST_F(StoreTest, ExerciseWritesChangesNothing) {
  Store& store = OpenStore();
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(3), std::vector{Flag("a"), Flag("b")}).ok);
  const auto size_before = fs::file_size(dir_ + "/data.mdb");
  EXPECT_EQ(store.ExerciseWrites(), "");
  const LoadResult loaded = store.Load("prod");
  ASSERT_EQ(loaded.outcome, LoadOutcome::kLoaded) << loaded.detail;
  EXPECT_EQ(Keys(*loaded.snapshot), (std::vector<std::string>{"flags/a", "flags/b"}));
  EXPECT_EQ(store.List().size(), 1u);
  EXPECT_EQ(fs::file_size(dir_ + "/data.mdb"), size_before);
  ASSERT_TRUE(store.Upsert("prod", Meta(4), std::vector{Flag("c")}).ok);  // still writable
}

TEST_F(StoreTest, SetAsideDataFileRenamesIt) {
  ASSERT_TRUE(OpenStore().ReplaceAll("prod", Meta(1), std::vector{Flag("a")}).ok);
  CloseStore();
  std::string error;
  const std::string aside = SetAsideDataFile(dir_, &error);
  ASSERT_FALSE(aside.empty()) << error;
  EXPECT_TRUE(fs::exists(aside));
  EXPECT_FALSE(fs::exists(dir_ + "/data.mdb"));
  EXPECT_EQ(OpenStore().Load("prod").outcome, LoadOutcome::kMissing);
  EXPECT_TRUE(SetAsideDataFile(root_ + "/none", &error).empty());
  EXPECT_FALSE(error.empty());
}

TEST_F(StoreTest, TwoOpensOfOneDirectoryShareTheEnvironment) {
  Store& first = OpenStore();
  std::string error;
  std::unique_ptr<Store> second = Store::Open(Options{dir_}, &error);
  ASSERT_NE(second, nullptr) << error;
  ASSERT_TRUE(first.ReplaceAll("prod", Meta(1), std::vector{Flag("a")}).ok);
  EXPECT_EQ(second->Load("prod").outcome, LoadOutcome::kLoaded);
  CloseStore();  // the other Store keeps the environment open
  EXPECT_EQ(second->Load("prod").outcome, LoadOutcome::kLoaded);
}

TEST_F(StoreTest, MissingEnvironmentIsMissing) {
  Store& store = OpenStore();
  const LoadResult result = store.Load("nope");
  EXPECT_EQ(result.outcome, LoadOutcome::kMissing);
  EXPECT_FALSE(result.snapshot.has_value());
}

TEST_F(StoreTest, InvalidNamesAndKeysAreRejectedWithoutWriting) {
  Store& store = OpenStore();
  EXPECT_EQ(store.Load("bad/name").outcome, LoadOutcome::kError);
  EXPECT_EQ(store.Load("").outcome, LoadOutcome::kError);
  EXPECT_FALSE(store.ReplaceAll("bad name", Meta(1), {}).ok);
  EXPECT_FALSE(store.Upsert("prod", Meta(1), std::vector{ItemRecord{"", "k", "{}"}}).ok);
  EXPECT_FALSE(
      store.Upsert("prod", Meta(1), std::vector{ItemRecord{std::string("f\0g", 3), "k", "{}"}}).ok);
  const CommitResult long_key =
      store.ReplaceAll("prod", Meta(1), std::vector{Flag("ok"), Flag(std::string(600, 'k'))});
  EXPECT_FALSE(long_key.ok);
  EXPECT_NE(long_key.error.find("too long"), std::string::npos) << long_key.error;
  EXPECT_EQ(store.Load("prod").outcome, LoadOutcome::kMissing);
}

TEST_F(StoreTest, CreatesMissingNestedDirectory) {
  dir_ = root_ + "/a/b/c";
  Store& store = OpenStore();
  EXPECT_TRUE(fs::is_directory(dir_));
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(1), {}).ok);
  EXPECT_TRUE(fs::exists(dir_ + "/data.mdb"));
}

TEST_F(StoreTest, UnusableDirectoryFailsWithClearError) {
  const std::string file = root_ + "/regular-file";
  std::ofstream(file) << "x";
  std::string error;
  const std::string dir = file + "/cache";
  EXPECT_EQ(Store::Open(Options{dir}, &error), nullptr);
  EXPECT_NE(error.find(dir), std::string::npos) << error;
  EXPECT_NE(error.find("Not a directory"), std::string::npos) << error;

  error.clear();
  EXPECT_EQ(Store::Open(Options{file}, &error), nullptr);
  EXPECT_NE(error.find(file), std::string::npos) << error;
}

TEST_F(StoreTest, ChecksumMismatchQuarantinesTheEnvironment) {
  {
    Store& store = OpenStore();
    ASSERT_TRUE(store.ReplaceAll("prod", Meta(1), std::vector{Flag("a"), Flag("b")}).ok);
    ASSERT_TRUE(store.ReplaceAll("other", Meta(1), std::vector{Flag("a")}).ok);
    CloseStore();
  }
  std::string original;
  {
    RawLmdb raw(dir_);
    original = raw.Get("records", ItemKey("prod", "flags", "b")).value();
    std::string flipped = original;
    flipped.back() ^= 0x01;  // one bit in the JSON
    raw.Put("records", ItemKey("prod", "flags", "b"), flipped);
  }

  Store& store = OpenStore();
  const LoadResult corrupt = store.Load("prod");
  EXPECT_EQ(corrupt.outcome, LoadOutcome::kCorrupt);
  EXPECT_FALSE(corrupt.snapshot.has_value());
  EXPECT_NE(corrupt.detail.find("checksum"), std::string::npos) << corrupt.detail;
  EXPECT_NE(corrupt.detail.find("flags/b"), std::string::npos) << corrupt.detail;
  EXPECT_EQ(store.Load("prod").outcome, LoadOutcome::kMissing);
  EXPECT_EQ(store.Load("other").outcome, LoadOutcome::kLoaded);  // untouched
  CloseStore();

  RawLmdb raw(dir_);
  EXPECT_FALSE(raw.Get("records", MetaKey("prod")).has_value());
  const auto quarantined = raw.All("quarantine");
  ASSERT_EQ(quarantined.size(), 3u);  // meta and both items, kept for inspection
  bool found = false;
  for (const auto& [key, value] : quarantined) {
    EXPECT_EQ(key.rfind(std::string("prod\0", 5), 0), 0u);
    const std::string original_key = ItemKey("prod", "flags", "b");
    if (value.find(original_key) == 4 && value.substr(4 + original_key.size()) != original) {
      found = true;  // the flipped bytes, verbatim
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(StoreTest, ItemCountMismatchIsCorrupt) {
  ASSERT_TRUE(OpenStore().ReplaceAll("prod", Meta(1), std::vector{Flag("a"), Flag("b")}).ok);
  CloseStore();
  RawLmdb(dir_).Del("records", ItemKey("prod", "flags", "a"));
  const LoadResult result = OpenStore().Load("prod");
  EXPECT_EQ(result.outcome, LoadOutcome::kCorrupt);
  EXPECT_NE(result.detail.find("meta says 2 items, found 1"), std::string::npos) << result.detail;
  EXPECT_EQ(store_->Load("prod").outcome, LoadOutcome::kMissing);
}

TEST_F(StoreTest, StrayItemsWithoutMetaAreCorrupt) {
  ASSERT_TRUE(OpenStore().ReplaceAll("prod", Meta(1), std::vector{Flag("a")}).ok);
  CloseStore();
  RawLmdb(dir_).Del("records", MetaKey("prod"));
  const LoadResult result = OpenStore().Load("prod");
  EXPECT_EQ(result.outcome, LoadOutcome::kCorrupt) << result.detail;
  EXPECT_EQ(store_->Load("prod").outcome, LoadOutcome::kMissing);
}

TEST_F(StoreTest, RecordUnderTheWrongKeyIsCorrupt) {
  ASSERT_TRUE(OpenStore().ReplaceAll("prod", Meta(1), std::vector{Flag("a"), Flag("b")}).ok);
  CloseStore();
  {
    RawLmdb raw(dir_);
    raw.Put("records", ItemKey("prod", "flags", "b"),
            raw.Get("records", ItemKey("prod", "flags", "a")).value());
  }
  const LoadResult result = OpenStore().Load("prod");
  EXPECT_EQ(result.outcome, LoadOutcome::kCorrupt);
  EXPECT_NE(result.detail.find("does not match"), std::string::npos) << result.detail;
}

TEST_F(StoreTest, ReadsTheDocumentedFormat) {
  OpenStore();
  CloseStore();
  {
    RawLmdb raw(dir_);
    raw.Put("records", MetaKey("prod"), Record(kFormatVersion, MetaBody(42, -5, "fp", "file", 1)));
    raw.Put("records", ItemKey("prod", "segments", "s"),
            Record(kFormatVersion, ItemBody("segments", "s", R"({"key":"s"})")));
  }
  const LoadResult result = OpenStore().Load("prod");
  ASSERT_EQ(result.outcome, LoadOutcome::kLoaded) << result.detail;
  ExpectMetaEq(result.snapshot->meta, EnvMeta{42, -5, "fp", "file"});
  EXPECT_EQ(Keys(*result.snapshot), std::vector<std::string>{"segments/s"});
}

TEST_F(StoreTest, NewerFormatIsLeftInPlace) {
  ASSERT_TRUE(OpenStore().ReplaceAll("prod", Meta(1), std::vector{Flag("a")}).ok);
  CloseStore();
  // Whatever a newer binary writes after the version field is opaque to us.
  const std::string newer = Record(kFormatVersion + 1, "\x07 a layout we do not know");
  RawLmdb(dir_).Put("records", ItemKey("prod", "flags", "a"), newer);

  Store& store = OpenStore();
  for (int i = 0; i < 2; ++i) {
    const LoadResult result = store.Load("prod");
    EXPECT_EQ(result.outcome, LoadOutcome::kUnsupportedFormat);
    EXPECT_FALSE(result.snapshot.has_value());
    EXPECT_NE(result.detail.find("format version 2"), std::string::npos) << result.detail;
  }
  CloseStore();
  RawLmdb raw(dir_);
  EXPECT_EQ(raw.Get("records", ItemKey("prod", "flags", "a")), newer);
  EXPECT_TRUE(raw.Get("records", MetaKey("prod")).has_value());
  EXPECT_TRUE(raw.All("quarantine").empty());
}

TEST_F(StoreTest, NewerMetaWinsOverCorruptItems) {
  OpenStore();
  CloseStore();
  {
    RawLmdb raw(dir_);
    raw.Put("records", MetaKey("prod"), Record(kFormatVersion + 1, "?"));
    raw.Put("records", ItemKey("prod", "flags", "a"), "garbage");
  }
  EXPECT_EQ(OpenStore().Load("prod").outcome, LoadOutcome::kUnsupportedFormat);
  // A fresh upstream put replaces it.
  ASSERT_TRUE(store_->ReplaceAll("prod", Meta(5), std::vector{Flag("b")}).ok);
  EXPECT_EQ(store_->Load("prod").outcome, LoadOutcome::kLoaded);
}

TEST_F(StoreTest, MalformedRecordsWithValidChecksumsAreCorrupt) {
  // Records whose checksum is right but whose body lies: the decoder must stay in bounds.
  const std::vector<std::string> bad_metas = {
      Record(kFormatVersion, ""),                                    // no type
      Record(kFormatVersion, "\x02"),                                // item type under a meta key
      Record(kFormatVersion, MetaBody(1, 1, "fp", "src", 0) + "x"),  // trailing byte
      Record(kFormatVersion, MetaBody(1, 1, "fp", "src", 0).substr(0, 20)),  // truncated
      Record(kFormatVersion, std::string("\x01", 1) + std::string(16, '\0') + "\xff\xff\xff\xff"),
      Record(0, MetaBody(1, 1, "fp", "src", 0)),  // version 0
      std::string("FLRY\x01\0\0\0", 8),           // header cut short
      std::string(),                              // empty value
  };
  OpenStore();
  for (std::size_t i = 0; i < bad_metas.size(); ++i) {
    CloseStore();
    RawLmdb(dir_).Put("records", MetaKey("prod"), bad_metas[i]);
    const LoadResult result = OpenStore().Load("prod");
    EXPECT_EQ(result.outcome, LoadOutcome::kCorrupt) << "case " << i << ": " << result.detail;
    EXPECT_EQ(store_->Load("prod").outcome, LoadOutcome::kMissing) << "case " << i;
  }
}

TEST_F(StoreTest, RandomBytesNeverLoad) {
  std::mt19937 rng(12345);
  OpenStore();
  for (int i = 0; i < 40; ++i) {
    std::string meta(rng() % 64, '\0');
    for (char& c : meta) c = static_cast<char>(rng());
    if (i % 2 == 0 && meta.size() >= 8) meta.replace(0, 8, std::string("FLRY\x01\0\0\0", 8));
    std::string item = Record(kFormatVersion, ItemBody("flags", "a", "{}"));
    item[16 + rng() % (item.size() - 16)] ^= static_cast<char>(1 + rng() % 255);
    CloseStore();
    {
      RawLmdb raw(dir_);
      raw.Put("records", MetaKey("prod"), meta);
      raw.Put("records", ItemKey("prod", "flags", "a"), item);
    }
    const LoadResult result = OpenStore().Load("prod");
    EXPECT_EQ(result.outcome, LoadOutcome::kCorrupt) << "iteration " << i << ": " << result.detail;
  }
}

TEST_F(StoreTest, GarbageDataFileIsMovedAside) {
  fs::create_directories(dir_);
  std::string garbage(100000, '\0');
  std::mt19937 rng(7);
  for (char& c : garbage) c = static_cast<char>(rng());
  std::ofstream(dir_ + "/data.mdb", std::ios::binary) << garbage;

  Store& store = OpenStore();
  EXPECT_NE(warning_.find("moved to"), std::string::npos) << warning_;
  EXPECT_EQ(store.Load("prod").outcome, LoadOutcome::kMissing);
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(1), std::vector{Flag("a")}).ok);
  EXPECT_EQ(store.Load("prod").outcome, LoadOutcome::kLoaded);

  int aside = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    if (entry.path().filename().string().starts_with("data.mdb.corrupt-")) {
      ++aside;
      EXPECT_EQ(entry.file_size(), garbage.size());
    }
  }
  EXPECT_EQ(aside, 1);
}

TEST_F(StoreTest, TruncatedDataFileIsMovedAside) {
  {
    Store& store = OpenStore();
    std::vector<ItemRecord> items;
    for (int i = 0; i < 300; ++i)
      items.push_back(Flag("flag-" + std::to_string(i), std::string(500, 'x')));
    ASSERT_TRUE(store.ReplaceAll("prod", Meta(1), items).ok);
    CloseStore();
  }
  const std::string data = dir_ + "/data.mdb";
  const auto size = fs::file_size(data);
  ASSERT_GT(size, 16u * 4096u);
  fs::resize_file(data, size / 2);

  Store& store = OpenStore();
  EXPECT_NE(warning_.find("truncated"), std::string::npos) << warning_;
  EXPECT_EQ(store.Load("prod").outcome, LoadOutcome::kMissing);
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(2), std::vector{Flag("a")}).ok);
}

TEST_F(StoreTest, GarbageLockFileKeepsData) {
  // The first process to open an environment re-initializes lock.mdb, so its contents don't matter.
  ASSERT_TRUE(OpenStore().ReplaceAll("prod", Meta(1), std::vector{Flag("a")}).ok);
  CloseStore();
  std::ofstream(dir_ + "/lock.mdb", std::ios::binary | std::ios::trunc)
      << std::string(8192, '\x5a');
  const LoadResult result = OpenStore().Load("prod");
  EXPECT_EQ(result.outcome, LoadOutcome::kLoaded) << result.detail;
  EXPECT_TRUE(warning_.empty()) << warning_;
}

TEST_F(StoreTest, MapFullFailsCleanlyAndKeepsCommittedData) {
  Store& store = OpenStore(64 << 10);
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(1), std::vector{Flag("small")}).ok);

  std::vector<ItemRecord> big;
  for (int i = 0; i < 16; ++i)
    big.push_back(Flag("big-" + std::to_string(i), std::string(16 << 10, 'y')));
  const CommitResult upsert = store.Upsert("prod", Meta(2), big);
  EXPECT_FALSE(upsert.ok);
  EXPECT_NE(upsert.error.find("MDB_MAP_FULL"), std::string::npos) << upsert.error;
  const CommitResult replace = store.ReplaceAll("prod", Meta(3), big);
  EXPECT_FALSE(replace.ok);
  EXPECT_NE(replace.error.find("MDB_MAP_FULL"), std::string::npos) << replace.error;

  const LoadResult loaded = store.Load("prod");
  ASSERT_EQ(loaded.outcome, LoadOutcome::kLoaded) << loaded.detail;
  EXPECT_EQ(loaded.snapshot->meta.data_version, 1u);
  EXPECT_EQ(Keys(*loaded.snapshot), std::vector<std::string>{"flags/small"});
  // Still writable afterwards.
  ASSERT_TRUE(store.Upsert("prod", Meta(4), std::vector{Flag("more")}).ok);
  EXPECT_EQ(store.Load("prod").snapshot->items.size(), 2u);
}

TEST_F(StoreTest, ConcurrentUpsertsAndLoads) {
  Store& store = OpenStore();
  ASSERT_TRUE(store.ReplaceAll("prod", Meta(0), {}).ok);
  constexpr int kWriters = 4;
  constexpr int kPerWriter = 40;
  std::atomic<bool> done{false};
  std::atomic<int> bad_loads{0};
  std::atomic<int> failed_commits{0};

  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        // Each writer also rewrites a shared key, so counts must not double-count it.
        const std::vector<ItemRecord> items = {
            Flag("w" + std::to_string(w) + "-" + std::to_string(i)),
            Flag("shared", std::to_string(w))};
        if (!store.Upsert("prod", Meta(static_cast<std::uint64_t>(i)), items).ok) ++failed_commits;
      }
    });
  }
  std::thread reader([&] {
    while (!done) {
      const LoadResult result = store.Load("prod");
      if (result.outcome != LoadOutcome::kLoaded) ++bad_loads;
      (void)store.List();
    }
  });
  for (std::thread& t : threads) t.join();
  done = true;
  reader.join();

  EXPECT_EQ(failed_commits, 0);
  EXPECT_EQ(bad_loads, 0);
  const LoadResult final_load = store.Load("prod");
  ASSERT_EQ(final_load.outcome, LoadOutcome::kLoaded) << final_load.detail;
  EXPECT_EQ(final_load.snapshot->items.size(), static_cast<std::size_t>(kWriters * kPerWriter + 1));
}

}  // namespace
}  // namespace flagrelay::cache
