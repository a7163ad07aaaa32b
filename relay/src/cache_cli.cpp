#include "cache_cli.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>
#include <thread>

#include "environment.hpp"  // NowUnixMs, Fingerprint
#include "flagrelay/cache/store.hpp"
#include "flagrelay/config/config.hpp"
#include "flagrelay/protocol/data.hpp"
#include "log.hpp"

extern char** environ;

namespace flagrelay::relay {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kUsage =
    "usage: flagrelay cache inspect --dir DIR [--json]   environments, versions, sizes, ages,\n"
    "                                                   checksum state, quarantined records\n"
    "       flagrelay cache verify --dir DIR            verify every record; exit 1 on problems\n"
    "       flagrelay cache export --dir DIR --env NAME [--out FILE]\n"
    "                                                   the environment's flags and segments as\n"
    "                                                   JSON that `dataFile` loads\n"
    "       flagrelay cache import --config FILE --env NAME --in FILE [--dir DIR]\n"
    "                                                   an export (or data file) becomes NAME's\n"
    "                                                   cached data, for the SDK key FILE gives\n"
    "                                                   it; run it with the relay stopped\n";

// Exit codes of `cache verify --probe`: the file is sound (records written by a newer binary or
// that do not parse included), or it is damaged: records fail their checksums, or the write path
// fails. Bytes damaged in records mean the page structure around them cannot be trusted either
// (LMDB has no page checksums), so the relay sets the whole file aside rather than write into it.
// Anything else (a signal, a sanitizer's exit code) means that opening it is not safe.
constexpr int kProbeCompleted = 42;
constexpr int kProbeDamaged = 43;

struct Args {
  std::string command, dir, env, out, in, config;
  bool json = false, probe = false;
};

bool ParseArgs(const std::vector<std::string>& args, Args* parsed, std::ostream& err) {
  if (args.empty()) return false;
  parsed->command = args[0];
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&](std::string* slot) {
      if (i + 1 >= args.size()) return false;
      *slot = args[++i];
      return true;
    };
    bool ok = true;
    if (arg == "--dir") {
      ok = value(&parsed->dir);
    } else if (arg == "--env") {
      ok = value(&parsed->env);
    } else if (arg == "--out") {
      ok = value(&parsed->out);
    } else if (arg == "--in") {
      ok = value(&parsed->in);
    } else if (arg == "--config") {
      ok = value(&parsed->config);
    } else if (arg == "--json") {
      parsed->json = true;
    } else if (arg == "--probe") {
      parsed->probe = true;
    } else {
      err << "flagrelay cache: unknown argument '" << arg << "'\n";
      return false;
    }
    if (!ok) {
      err << "flagrelay cache: " << arg << " needs a value\n";
      return false;
    }
  }
  if (parsed->dir.empty() && parsed->config.empty()) {
    err << "flagrelay cache: --dir is required\n";
    return false;
  }
  return true;
}

std::string Age(std::int64_t unix_ms) {
  std::int64_t s = std::max<std::int64_t>(0, (NowUnixMs() - unix_ms) / 1000);
  char text[32];
  if (s < 120) {
    std::snprintf(text, sizeof text, "%llds", static_cast<long long>(s));
  } else if (s < 7200) {
    std::snprintf(text, sizeof text, "%lldm", static_cast<long long>(s / 60));
  } else if (s < 172800) {
    std::snprintf(text, sizeof text, "%lldh", static_cast<long long>(s / 3600));
  } else {
    std::snprintf(text, sizeof text, "%lldd", static_cast<long long>(s / 86400));
  }
  return text;
}

// One environment as the relay would load it: the store's checks, then every item parsed.
struct Checked {
  cache::EnvSummary summary;
  cache::LoadResult load;
  std::string state;  // ok | corrupt | newer_format | error
  std::string problem;
  std::size_t flags = 0, segments = 0, deleted = 0;
  std::vector<std::pair<protocol::Kind, protocol::ItemPtr>> items;
};

// `parse_items`: also parse every item as the relay will (the probe skips it: a record that does
// not parse is handled safely by the relay itself, and parsing is most of the probe's time).
Checked Check(cache::Store& store, cache::EnvSummary summary, bool parse_items = true) {
  Checked c;
  c.load = store.Load(summary.env_name);
  c.summary = std::move(summary);
  if (c.load.snapshot) c.summary.meta = c.load.snapshot->meta;
  switch (c.load.outcome) {
    case cache::LoadOutcome::kLoaded:
      c.state = "ok";
      break;
    case cache::LoadOutcome::kUnsupportedFormat:
      c.state = "newer_format";
      break;
    case cache::LoadOutcome::kCorrupt:
    case cache::LoadOutcome::kMissing:  // a meta without items cannot be listed and be missing
      c.state = "corrupt";
      break;
    case cache::LoadOutcome::kError:
      c.state = "error";
      break;
  }
  c.problem = c.load.detail;
  if (c.state != "ok" || !parse_items) return c;
  for (const cache::ItemRecord& record : c.load.snapshot->items) {
    const auto kind = protocol::KindFromString(record.kind);
    auto item = protocol::ParseStoredItem(record.key, record.json);  // as the relay will
    if (!kind || !item) {
      c.state = "corrupt";
      c.problem = "record " + record.kind + "/" + record.key + " does not parse" +
                  (item ? std::string() : ": " + item.error().message);
      c.items.clear();
      return c;
    }
    if ((*item)->deleted) {
      ++c.deleted;
    } else {
      ++(*kind == protocol::Kind::kFlags ? c.flags : c.segments);
    }
    c.items.emplace_back(*kind, std::move(*item));
  }
  return c;
}

std::unique_ptr<cache::Store> OpenReadOnly(const std::string& dir, std::ostream& err,
                                           cache::Access access = cache::Access::kReadOnly) {
  std::string error;
  auto store = cache::Store::Open({dir, 1024ull << 20, access}, &error);
  if (!store) err << "flagrelay cache: " << error << "\n";
  return store;
}

std::vector<Checked> CheckAll(cache::Store& store, bool parse_items = true) {
  std::vector<Checked> out;
  for (cache::EnvSummary& summary : store.List()) {
    out.push_back(Check(store, std::move(summary), parse_items));
  }
  return out;
}

int Inspect(const Args& args, std::ostream& out, std::ostream& err) {
  auto store = OpenReadOnly(args.dir, err);
  if (!store) return 1;
  const std::vector<Checked> envs = CheckAll(*store);
  const std::vector<cache::QuarantineEntry> quarantine = store->ListQuarantine();
  std::error_code ec;
  const auto file_bytes = fs::file_size(fs::path(args.dir) / "data.mdb", ec);
  if (args.json) {
    std::string json = "{\"dir\":";
    protocol::AppendJsonString(json, args.dir);
    json += ",\"fileBytes\":" + std::to_string(ec ? 0 : file_bytes) +
            ",\"formatVersion\":" + std::to_string(cache::kFormatVersion) + ",\"environments\":[";
    for (const Checked& c : envs) {
      const cache::EnvMeta& meta = c.summary.meta;
      json += json.back() == '[' ? "{" : ",{";
      json += "\"name\":";
      protocol::AppendJsonString(json, c.summary.env_name);
      json += ",\"state\":\"" + c.state +
              "\",\"dataVersion\":" + std::to_string(meta.data_version) +
              ",\"savedAt\":" + std::to_string(meta.saved_at_unix_ms) + ",\"source\":";
      protocol::AppendJsonString(json, meta.source);
      json += ",\"records\":" + std::to_string(c.summary.item_count) +
              ",\"bytes\":" + std::to_string(c.summary.payload_bytes) +
              ",\"flags\":" + std::to_string(c.flags) +
              ",\"segments\":" + std::to_string(c.segments) +
              ",\"deleted\":" + std::to_string(c.deleted);
      if (!c.problem.empty()) {
        json += ",\"problem\":";
        protocol::AppendJsonString(json, c.problem);
      }
      json += "}";
    }
    json += "],\"quarantine\":[";
    for (const cache::QuarantineEntry& q : quarantine) {
      json += json.back() == '[' ? "{" : ",{";
      json += "\"name\":";
      protocol::AppendJsonString(json, q.env_name);
      json += ",\"at\":" + std::to_string(q.quarantined_at_unix_ms) +
              ",\"records\":" + std::to_string(q.records) +
              ",\"bytes\":" + std::to_string(q.bytes) + "}";
    }
    out << json << "]}\n";
    return 0;
  }
  out << "cache " << args.dir << " (data.mdb " << (ec ? 0 : file_bytes)
      << " bytes; this binary reads format " << cache::kFormatVersion << ")\n";
  if (envs.empty()) out << "no environments stored\n";
  char line[512];
  if (!envs.empty()) {
    std::snprintf(line, sizeof line, "%-20s %-12s %8s %8s %10s %-20s %6s %-8s %s\n", "ENVIRONMENT",
                  "DATA-VERSION", "FLAGS", "SEGMENTS", "BYTES", "SAVED", "AGE", "SOURCE",
                  "CHECKSUMS");
    out << line;
  }
  for (const Checked& c : envs) {
    const cache::EnvMeta& meta = c.summary.meta;
    std::snprintf(line, sizeof line, "%-20s %-12llu %8zu %8zu %10zu %-20s %6s %-8s %s\n",
                  c.summary.env_name.c_str(), static_cast<unsigned long long>(meta.data_version),
                  c.flags, c.segments, c.summary.payload_bytes,
                  FormatUtc(meta.saved_at_unix_ms).c_str(), Age(meta.saved_at_unix_ms).c_str(),
                  meta.source.c_str(), c.state.c_str());
    out << line;
    if (!c.problem.empty()) out << "  " << c.problem << "\n";
  }
  for (const cache::QuarantineEntry& q : quarantine) {
    out << "quarantined: " << q.env_name << " at " << FormatUtc(q.quarantined_at_unix_ms) << ", "
        << q.records << " records, " << q.bytes << " bytes\n";
  }
  return 0;
}

int Verify(const Args& args, std::ostream& out, std::ostream& err) {
  // The probe reads what the relay will read and writes as it will write, committing nothing.
  auto store =
      OpenReadOnly(args.dir, err, args.probe ? cache::Access::kProbe : cache::Access::kReadOnly);
  if (!store) return args.probe ? kProbeCompleted : 1;  // the relay handles an unusable file
  const std::vector<Checked> envs = CheckAll(*store, !args.probe);
  if (args.probe) {
    (void)store->ListQuarantine();
    const bool damaged = std::any_of(envs.begin(), envs.end(), [](const Checked& c) {
      return c.load.outcome == cache::LoadOutcome::kCorrupt;
    });
    return damaged || !store->ExerciseWrites().empty() ? kProbeDamaged : kProbeCompleted;
  }
  bool all_ok = true;
  for (const Checked& c : envs) {
    out << c.summary.env_name << ": " << c.state;
    if (c.state == "ok") {
      out << " (data version " << c.summary.meta.data_version << ", " << c.items.size()
          << " records)";
    } else {
      out << ": " << c.problem;
      all_ok = false;
    }
    out << "\n";
  }
  out << (all_ok ? "verified: " : "problems found: ") << envs.size() << " environment(s)\n";
  return all_ok ? 0 : 1;
}

int Export(const Args& args, std::ostream& out, std::ostream& err) {
  if (args.env.empty()) {
    err << "flagrelay cache export: --env is required\n" << kUsage;
    return 2;
  }
  auto store = OpenReadOnly(args.dir, err);
  if (!store) return 1;
  cache::EnvSummary summary;
  summary.env_name = args.env;
  const Checked c = Check(*store, summary);
  if (c.load.outcome == cache::LoadOutcome::kMissing) {
    err << "flagrelay cache export: no environment '" << args.env << "' in " << args.dir << "\n";
    return 1;
  }
  if (c.state != "ok") {
    err << "flagrelay cache export: environment '" << args.env << "' is " << c.state << ": "
        << c.problem << "\n";
    return 1;
  }
  // The shape of a data file ({"flags":{...},"segments":{...}}); deletions are not data.
  std::string json = "{\"flags\":{";
  for (protocol::Kind kind : {protocol::Kind::kFlags, protocol::Kind::kSegments}) {
    if (kind == protocol::Kind::kSegments) json += "},\"segments\":{";
    bool first = true;
    for (const auto& [item_kind, item] : c.items) {
      if (item_kind != kind || item->deleted) continue;
      if (!first) json.push_back(',');
      first = false;
      protocol::AppendJsonString(json, item->key);
      json.push_back(':');
      json += item->json;
    }
  }
  json += "}}\n";
  if (args.out.empty()) {
    out << json;
    return 0;
  }
  // Written beside the target and renamed over it: a reader never sees half a file.
  const std::string partial = args.out + ".partial";
  {
    std::ofstream file(partial, std::ios::binary | std::ios::trunc);
    file << json;
    if (!file.flush()) {
      err << "flagrelay cache export: cannot write " << partial << ": " << std::strerror(errno)
          << "\n";
      return 1;
    }
  }
  ::chmod(partial.c_str(), 0600);  // flag rules are as private as the cache they came from
  std::error_code ec;
  fs::rename(partial, args.out, ec);
  if (ec) {
    err << "flagrelay cache export: cannot rename to " << args.out << ": " << ec.message() << "\n";
    return 1;
  }
  err << "exported " << args.env << " (data version " << c.summary.meta.data_version << ", "
      << c.flags << " flags, " << c.segments << " segments) to " << args.out << "\n";
  return 0;
}

// The air-gapped path's other half: an export made on a connected host becomes this host's
// cached data, so the relay starts serving it with the upstream unreachable and still connects
// when it can. The key comes from the relay's config (never the command line, where `ps` shows
// it), because cached data is only used for the credential it was stored for.
int Import(const Args& args, std::ostream& out, std::ostream& err) {
  if (args.env.empty() || args.in.empty() || args.config.empty()) {
    err << "flagrelay cache import: --config, --env and --in are required\n" << kUsage;
    return 2;
  }
  const config::LoadResult loaded = config::LoadFile(args.config, config::EnvVarsFromProcess());
  if (!loaded.ok()) {
    for (const std::string& error : loaded.errors)
      err << "flagrelay cache import: " << error << "\n";
    return 1;
  }
  const auto& envs = loaded.config->environments;
  const auto env =
      std::find_if(envs.begin(), envs.end(), [&args](const auto& e) { return e.name == args.env; });
  if (env == envs.end()) {
    err << "flagrelay cache import: no environment '" << args.env << "' in " << args.config << "\n";
    return 1;
  }
  const std::string dir = args.dir.empty() ? loaded.config->cache.dir : args.dir;
  if (dir.empty()) {
    err << "flagrelay cache import: " << args.config << " sets no cache.dir (give --dir)\n";
    return 1;
  }
  std::ifstream in(args.in, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) {
    err << "flagrelay cache import: cannot read " << args.in << "\n";
    return 1;
  }
  auto data = protocol::ParseAllData(text.str());
  if (!data) {
    err << "flagrelay cache import: " << args.in << ": " << data.error().message
        << "; the cache is unchanged\n";
    return 1;
  }
  std::vector<cache::ItemRecord> records;
  for (protocol::Kind kind : {protocol::Kind::kFlags, protocol::Kind::kSegments}) {
    const protocol::ItemSet& items = kind == protocol::Kind::kFlags ? data->flags : data->segments;
    for (const protocol::ItemPtr& item : items.items()) {
      records.push_back({std::string(protocol::ToString(kind)), item->key, item->json});
    }
  }
  std::string error;
  auto store = cache::Store::Open({dir, loaded.config->cache.map_size_bytes}, &error);
  if (!store) {
    err << "flagrelay cache import: " << error << "\n";
    return 1;
  }
  // Above whatever the environment had, so nothing reads the import as older data.
  const cache::LoadResult before = store->Load(args.env);
  const std::uint64_t version = before.snapshot ? before.snapshot->meta.data_version + 1 : 1;
  const cache::EnvMeta meta{version, NowUnixMs(), Environment::Fingerprint(env->sdk_key), "file"};
  if (const cache::CommitResult result = store->ReplaceAll(args.env, meta, records); !result.ok) {
    err << "flagrelay cache import: cannot write the cache: " << result.error << "\n";
    return 1;
  }
  out << "imported " << data->flags.live_count() << " flags and " << data->segments.live_count()
      << " segments into " << dir << " as environment " << args.env << " (for SDK key "
      << env->sdk_key.Masked() << ")\n";
  return 0;
}

}  // namespace

int RunCacheCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Args parsed;
  if (!ParseArgs(args, &parsed, err)) {
    err << kUsage;
    return 2;
  }
  if (parsed.command == "inspect") return Inspect(parsed, out, err);
  if (parsed.command == "verify") return Verify(parsed, out, err);
  if (parsed.command == "export") return Export(parsed, out, err);
  if (parsed.command == "import") return Import(parsed, out, err);
  err << "flagrelay cache: unknown command '" << parsed.command << "'\n" << kUsage;
  return 2;
}

std::string ProbeCacheDir(const std::string& dir, std::chrono::milliseconds timeout) {
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / "data.mdb", ec)) return {};
  const std::string self = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) return {};  // no /proc: nothing to run the probe with
  const char* argv[] = {self.c_str(), "cache", "verify", "--probe", "--dir", dir.c_str(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc =
      posix_spawn(&pid, self.c_str(), &actions, nullptr, const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return {};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return {};
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return "the probe did not finish within " + std::to_string(timeout.count()) +
             " ms (a loop in the page structure?)";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == kProbeCompleted) return {};
  if (WIFEXITED(status) && WEXITSTATUS(status) == kProbeDamaged) {
    return "it is damaged (records fail their checksums, or writing to it fails)";
  }
  if (WIFSIGNALED(status)) {
    return std::string("the probe reading it crashed (") + strsignal(WTERMSIG(status)) + ")";
  }
  return "the probe reading it failed (exit code " + std::to_string(WEXITSTATUS(status)) + ")";
}

}  // namespace flagrelay::relay
