// Client-side evaluation benchmark (issue 4): all-flags evaluation for one context, JSON
// serialization included, as the polling and stream paths run it (eval::AppendAllJson with the
// environment-ID audience and reasons).
//
//   flagrelay_eval_bench --data DATA.json --contexts CONTEXTS.jsonl
//                        [--rounds 100] [--warmup 10] [--build-reps 10] [--dump RESULTS.jsonl]
//                        [--components]
//
// DATA.json is a `{"flags":..,"segments":..}` document and CONTEXTS.jsonl one context per line
// (bench/eval/make-data.mjs writes both). Each round evaluates every context once; every call is
// one sample. Prints median / p90 / p99 per all-flags evaluation, ns per flag, output bytes, the
// same with the context parse included, and the FlagData build time. `--dump` writes each
// context's result (one JSON object per line, in context order) for the cross-check against the
// Node SDK. `--components` also times a few building blocks the evaluation calls per flag
// (bucketing, SHA-1, JSON string escaping) on representative inputs, for profiling. The last line
// is machine-readable (`RESULT key=value ...`).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "flagrelay/eval/bucketing.hpp"
#include "flagrelay/eval/evaluator.hpp"
#include "flagrelay/eval/sha1.hpp"
#include "flagrelay/protocol/data.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace eval = flagrelay::eval;
namespace protocol = flagrelay::protocol;

struct Options {
  std::string data_path;
  std::string contexts_path;
  std::string dump_path;
  int rounds = 100;
  int warmup = 10;
  int build_reps = 10;
  bool components = false;
};

[[noreturn]] void Usage(const char* message) {
  std::cerr << "flagrelay_eval_bench: " << message << "\n"
            << "usage: flagrelay_eval_bench --data DATA.json --contexts CONTEXTS.jsonl [--rounds N]"
               " [--warmup N] [--build-reps N] [--dump RESULTS.jsonl] [--components]\n";
  std::exit(2);
}

int PositiveInt(std::string_view text, int minimum) {
  int value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9' || value > 10'000'000) Usage("bad number");
    value = value * 10 + (c - '0');
  }
  if (text.empty() || value < minimum) Usage("bad number");
  return value;
}

Options ParseArgs(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view name = argv[i];
    if (name == "--components") {
      options.components = true;
      continue;
    }
    if (i + 1 >= argc) Usage("missing value");
    const std::string_view value = argv[++i];
    if (name == "--data") {
      options.data_path = value;
    } else if (name == "--contexts") {
      options.contexts_path = value;
    } else if (name == "--dump") {
      options.dump_path = value;
    } else if (name == "--rounds") {
      options.rounds = PositiveInt(value, 1);
    } else if (name == "--warmup") {
      options.warmup = PositiveInt(value, 0);
    } else if (name == "--build-reps") {
      options.build_reps = PositiveInt(value, 1);
    } else {
      Usage("unknown option");
    }
  }
  if (options.data_path.empty() || options.contexts_path.empty()) Usage("--data and --contexts");
  return options;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "flagrelay_eval_bench: cannot read " << path << "\n";
    std::exit(1);
  }
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

double Nanoseconds(Clock::duration d) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// Nearest-rank percentile of sorted samples (p in (0, 100]).
double Percentile(const std::vector<double>& sorted, double p) {
  const auto n = static_cast<double>(sorted.size());
  auto rank = static_cast<std::size_t>(p / 100.0 * n + 0.999999);
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

struct Stats {
  double median = 0;
  double p90 = 0;
  double p99 = 0;
  double mean = 0;
};

Stats Summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  Stats stats;
  stats.median = Percentile(samples, 50);
  stats.p90 = Percentile(samples, 90);
  stats.p99 = Percentile(samples, 99);
  double sum = 0;
  for (const double s : samples) sum += s;
  stats.mean = sum / static_cast<double>(samples.size());
  return stats;
}

std::string Fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

volatile double g_sink = 0;  // keeps the component loops' results observable

// Median ns per call of `fn` over `reps` batches of `batch` calls.
template <class Fn>
double TimePerCall(Fn&& fn, int reps, int batch) {
  std::vector<double> per_call;
  for (int rep = 0; rep < reps; ++rep) {
    const auto t0 = Clock::now();
    for (int i = 0; i < batch; ++i) fn(i);
    per_call.push_back(Nanoseconds(Clock::now() - t0) / batch);
  }
  return Summarize(per_call).median;
}

// Building blocks with inputs shaped like the benchmark data's (flag key, 32-hex salt, user key).
void PrintComponents() {
  const std::string key = "checkout-experiment-123";
  const std::string salt = "758fd344c39464e1b48a272950e116d4";
  std::vector<std::string> users;
  for (int i = 0; i < 64; ++i) users.push_back("user-0" + std::to_string(100 + i));
  double sink = 0;
  const double bucket = TimePerCall(
      [&](int i) {
        sink += eval::BucketValue(key, salt, users[static_cast<std::size_t>(i) % 64], std::nullopt);
      },
      20, 2000);
  const std::string input = key + "." + salt + "." + users[0];
  const double sha1 = TimePerCall(
      [&](int i) { sink += eval::Sha1(input)[static_cast<std::size_t>(i) % 20]; }, 20, 2000);
  std::string out;
  const double escape = TimePerCall(
      [&](int) {
        out.clear();
        protocol::AppendJsonString(out, key);
        sink += static_cast<double>(out.size());
      },
      20, 2000);
  std::cout << "  components: BucketValue " << Fixed(bucket, 0) << " ns/call (SHA-1 of "
            << input.size() << " bytes: " << Fixed(sha1, 0)
            << " ns), protocol::AppendJsonString of a flag key " << Fixed(escape, 0)
            << " ns/call\n";
  g_sink = sink;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = ParseArgs(argc, argv);
  const std::string data_json = ReadFile(options.data_path);

  std::vector<std::string> context_json;
  {
    std::istringstream lines(ReadFile(options.contexts_path));
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) context_json.push_back(line);
  }
  if (context_json.empty()) Usage("no contexts");

  // FlagData build: parse the document, then compile every flag and segment.
  std::vector<double> parse_ns;
  std::vector<double> build_ns;
  std::shared_ptr<const eval::FlagData> data;
  std::optional<protocol::PutMessage> data_items;  // the items `data` was built from
  for (int rep = 0; rep < options.build_reps; ++rep) {
    const auto t0 = Clock::now();
    auto put = protocol::ParseAllData(data_json);
    const auto t1 = Clock::now();
    if (!put) {
      std::cerr << "flagrelay_eval_bench: bad data: " << put.error().message << "\n";
      return 1;
    }
    auto built = eval::FlagData::Build(put->flags, put->segments);
    const auto t2 = Clock::now();
    parse_ns.push_back(Nanoseconds(t1 - t0));
    build_ns.push_back(Nanoseconds(t2 - t1));
    data = std::move(built);
    data_items = std::move(*put);
  }
  if (data->unparsable_count() != 0) {
    std::cerr << "flagrelay_eval_bench: " << data->unparsable_count() << " unparsable flags\n";
    return 1;
  }

  std::vector<eval::Context> contexts;
  contexts.reserve(context_json.size());
  for (const std::string& text : context_json) {
    auto context = eval::Context::Parse(text);
    if (!context) {
      std::cerr << "flagrelay_eval_bench: bad context: " << context.error().message << "\n";
      return 1;
    }
    contexts.push_back(std::move(*context));
  }

  const eval::EvalOptions eval_options{eval::Audience::kEnvironmentId, true};
  std::string out;
  out.reserve(1 << 20);

  // Results for the cross-check, and the output size per context.
  std::vector<double> output_bytes;
  {
    std::ofstream dump;
    if (!options.dump_path.empty()) dump.open(options.dump_path, std::ios::binary);
    for (const eval::Context& context : contexts) {
      out.clear();
      eval::AppendAllJson(out, *data, context, eval_options);
      output_bytes.push_back(static_cast<double>(out.size()));
      if (dump.is_open()) dump << out << '\n';
    }
    if (!options.dump_path.empty() && !dump) {
      std::cerr << "flagrelay_eval_bench: cannot write " << options.dump_path << "\n";
      return 1;
    }
  }

  // 1. Evaluation + serialization (contexts parsed beforehand).
  std::uint64_t checksum = 0;  // keeps the work observable
  const std::size_t samples_per_round = contexts.size();
  std::vector<double> eval_ns;
  eval_ns.reserve(samples_per_round * static_cast<std::size_t>(options.rounds));
  const auto eval_start = Clock::now();
  for (int round = -options.warmup; round < options.rounds; ++round) {
    for (const eval::Context& context : contexts) {
      out.clear();
      const auto t0 = Clock::now();
      eval::AppendAllJson(out, *data, context, eval_options);
      const auto t1 = Clock::now();
      checksum += out.size();
      if (round >= 0) eval_ns.push_back(Nanoseconds(t1 - t0));
    }
  }
  const double eval_seconds = Nanoseconds(Clock::now() - eval_start) / 1e9;

  // 2. The same with the context JSON parsed each time (what a request pays: the relay parses
  //    the context from the URL or body, then evaluates).
  const int parse_rounds = std::max(1, options.rounds / 3);
  std::vector<double> with_parse_ns;
  with_parse_ns.reserve(samples_per_round * static_cast<std::size_t>(parse_rounds));
  for (int round = -std::min(options.warmup, 5); round < parse_rounds; ++round) {
    for (const std::string& text : context_json) {
      out.clear();
      const auto t0 = Clock::now();
      auto context = eval::Context::Parse(text);
      eval::AppendAllJson(out, *data, *context, eval_options);
      const auto t1 = Clock::now();
      checksum += out.size();
      if (round >= 0) with_parse_ns.push_back(Nanoseconds(t1 - t0));
    }
  }

  // 3. A client-side stream after one flag changed: the relay builds the new FlagData from the
  //    previous one, and each stream evaluates only what may have changed (EvaluateChanged), where
  //    it used to evaluate every flag (EvaluateAll). The flag patched is the first one, replaced
  //    by a copy of itself; flags with it as a prerequisite are evaluated again too.
  std::vector<double> full_ns, changed_ns;
  {
    const protocol::PutMessage& put = *data_items;
    std::vector<protocol::ItemPtr> items(put.flags.items().begin(), put.flags.items().end());
    auto copy = protocol::ParseItem(items.front()->key, items.front()->json);
    items.front() = std::move(*copy);
    const auto patched = eval::FlagData::Build(protocol::ItemSet::FromUnsorted(std::move(items)),
                                               put.segments, data.get());
    for (int round = -std::min(options.warmup, 5); round < parse_rounds; ++round) {
      for (const eval::Context& context : contexts) {
        const auto t0 = Clock::now();
        const auto all = eval::EvaluateAll(*patched, context, eval_options);
        const auto t1 = Clock::now();
        const auto changed = eval::EvaluateChanged(*patched, data.get(), context, eval_options);
        const auto t2 = Clock::now();
        checksum += all.entries().size() + changed.entries().size();
        if (round >= 0) {
          full_ns.push_back(Nanoseconds(t1 - t0));
          changed_ns.push_back(Nanoseconds(t2 - t1));
        }
      }
    }
  }

  const Stats eval_stats = Summarize(eval_ns);
  const Stats parse_stats = Summarize(with_parse_ns);
  const Stats bytes = Summarize(output_bytes);
  const Stats parse_ms = Summarize(parse_ns);
  const Stats build_ms = Summarize(build_ns);
  const double flags = static_cast<double>(data->flag_count());

  std::cout << "flagrelay C++ engine: " << data->flag_count() << " flags, " << contexts.size()
            << " contexts, " << options.rounds << " rounds (+" << options.warmup << " warm-up), "
            << eval_ns.size() << " samples, " << Fixed(eval_seconds, 2) << " s\n"
            << "  all-flags eval + JSON   median " << Fixed(eval_stats.median / 1e3, 2)
            << " us  p90 " << Fixed(eval_stats.p90 / 1e3, 2) << " us  p99 "
            << Fixed(eval_stats.p99 / 1e3, 2) << " us  mean " << Fixed(eval_stats.mean / 1e3, 2)
            << " us  (" << Fixed(eval_stats.median / flags, 1) << " ns/flag)\n"
            << "  + context parse         median " << Fixed(parse_stats.median / 1e3, 2)
            << " us  p90 " << Fixed(parse_stats.p90 / 1e3, 2) << " us  p99 "
            << Fixed(parse_stats.p99 / 1e3, 2) << " us\n"
            << "  output                  median " << Fixed(bytes.median, 0) << " bytes (min "
            << Fixed(*std::min_element(output_bytes.begin(), output_bytes.end()), 0) << ", p99 "
            << Fixed(bytes.p99, 0) << ")\n"
            << "  data: " << data_json.size() << " bytes; ParseAllData median "
            << Fixed(parse_ms.median / 1e6, 2) << " ms, FlagData::Build median "
            << Fixed(build_ms.median / 1e6, 2) << " ms (" << options.build_reps << " reps)\n";
  std::cout << "  client stream, one flag patched: EvaluateAll median "
            << Fixed(Summarize(full_ns).median / 1e3, 2) << " us, EvaluateChanged median "
            << Fixed(Summarize(changed_ns).median / 1e3, 2) << " us\n";
  if (options.components) PrintComponents();
  std::cout << "RESULT impl=cpp median_us=" << Fixed(eval_stats.median / 1e3, 3)
            << " p90_us=" << Fixed(eval_stats.p90 / 1e3, 3)
            << " p99_us=" << Fixed(eval_stats.p99 / 1e3, 3)
            << " ns_per_flag=" << Fixed(eval_stats.median / flags, 1)
            << " with_parse_median_us=" << Fixed(parse_stats.median / 1e3, 3)
            << " bytes_median=" << Fixed(bytes.median, 0)
            << " build_ms=" << Fixed(build_ms.median / 1e6, 3) << " checksum=" << checksum << "\n";
  return 0;
}
