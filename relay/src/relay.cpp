#include "flagrelay/relay/relay.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "cache_cli.hpp"
#include "environment.hpp"
#include "events.hpp"
#include "flagrelay/cache/store.hpp"
#include "flagrelay/metrics/metrics.hpp"
#include "flagrelay/protocol/snapshot.hpp"
#include "http_server.hpp"
#include "log.hpp"
#include "router.hpp"
#include "sources.hpp"

namespace flagrelay::relay {

namespace net = boost::asio;

std::string_view Version() { return FLAGRELAY_VERSION; }

namespace {

// Reading a whole cache file takes milliseconds; much longer means the probe is stuck.
constexpr std::chrono::milliseconds kCacheProbeTimeout{10000};
// How soon a cache that failed to commit (disk full) is written again without a new change.
constexpr std::chrono::seconds kCacheRetryInterval{5};

// Runs `task` every `interval` until the timer is cancelled.
void ScheduleEvery(net::steady_timer& timer, config::Duration interval,
                   std::function<void()> task) {
  timer.expires_after(interval);
  timer.async_wait([&timer, interval, task = std::move(task)](boost::system::error_code ec) {
    if (ec) return;
    task();
    ScheduleEvery(timer, interval, task);
  });
}

// `problem` says what went wrong: a data file set aside, or a cache that cannot be opened at all
// (every environment reports it as its cache load outcome).
std::unique_ptr<cache::Store> OpenCache(const config::CacheConfig& config, std::string* problem) {
  if (config.dir.empty()) {
    LogWarn("cache", "cache.dir is not set: flag data will not survive a restart");
    return nullptr;
  }
  std::string error, warning;
  // A file this relay closed cleanly and that is unchanged since needs no probe (it costs a
  // child process that reads the whole file: most of a cold start).
  std::string unsafe;
  if (cache::TakeCleanCloseMark(config.dir)) {
    LogDebug("cache", "data file unchanged since a clean close: start-up probe skipped");
  } else {
    unsafe = ProbeCacheDir(config.dir, kCacheProbeTimeout);
  }
  if (!unsafe.empty()) {
    const std::string aside = cache::SetAsideDataFile(config.dir, &error);
    *problem = "cache data file is unsafe to open: " + unsafe + "; " +
               (aside.empty() ? error : "moved to '" + aside + "', starting with an empty cache");
    LogError("cache", *problem);
    if (aside.empty()) return nullptr;
  }
  auto store = cache::Store::Open({config.dir, config.map_size_bytes}, &error, &warning);
  if (!warning.empty()) {
    LogWarn("cache", warning);
    *problem = warning;
  }
  if (!store) {
    *problem = "cannot open the cache, running without it: " + error;
    LogError("cache", *problem);
    return nullptr;
  }
  LogInfo("cache", "using LMDB cache in " + config.dir);
  return store;
}

std::string DescribeEvents(const config::EnvironmentEventsConfig& events) {
  if (!events.enabled) return "off";
  char text[96];
  if (events.rate_limit > 0) {
    std::snprintf(text, sizeof text, "on, rateLimit %g/s (burst %g), sampleRatio %g",
                  events.rate_limit, events.rate_burst, events.sample_ratio);
  } else {
    std::snprintf(text, sizeof text, "on, no rate limit, sampleRatio %g", events.sample_ratio);
  }
  return text;
}

// What a reload cannot change without a restart: everything outside `environments`, except
// logLevel (applied) and reload/shutdown (read when used).
std::vector<std::string> NeedsRestart(const config::RelayConfig& running,
                                      const config::RelayConfig& next) {
  std::vector<std::string> sections;
  const auto differs = [&sections](const char* name, bool changed) {
    if (changed) sections.emplace_back(name);
  };
  differs("listen", running.listen != next.listen);
  differs("upstream", running.upstream != next.upstream);
  differs("streams", running.streams != next.streams);
  differs("cache", running.cache != next.cache);
  differs("metrics", running.metrics != next.metrics);
  differs("proxy", running.proxy != next.proxy);
  differs("readiness", running.readiness != next.readiness);
  differs("events", running.events != next.events);
  differs("threads", running.threads != next.threads);
  differs("reload", running.reload != next.reload);
  return sections;
}

// The configured environments while the relay runs, each with its data source and events slot,
// and the router built from them. A reload adds, removes and changes environments here and then
// swaps the router whole, so a request sees one consistent set and the environments a reload
// leaves alone never notice it. Main thread only, except router() (any thread).
class Fleet {
 public:
  struct Shared {
    cache::Store* store;
    CommitQueue& commits;
    metrics::RelayMetrics& metrics;
    EventsRelay& events;
    const config::RelayConfig& started;  // upstream settings, readiness: fixed until restart
    std::shared_ptr<Outbound> outbound;
    std::string user_agent;
    std::string cache_problem;  // why the cache could not be opened, for every load
  };
  explicit Fleet(Shared shared) : shared_(std::move(shared)) {}

  /// Creates an environment and loads its cached data, held back until ReleaseCache; its source
  /// starts with StartSources (start-up) or at once when `io` is given (reload). False when no
  /// events slot is left.
  bool Add(const config::EnvironmentConfig& env_config, net::io_context* io = nullptr) {
    const metrics::EnvironmentMetrics& env_metrics =
        shared_.metrics.AddEnvironment(env_config.name);
    auto env =
        std::make_shared<Environment>(env_config, shared_.store, shared_.commits, env_metrics,
                                      shared_.started.upstream.disconnected_status_time);
    const auto slot = shared_.events.AddEnvironment({env->config(), &env_metrics});
    if (!slot) {
      shared_.metrics.RetireEnvironment(env_config.name);
      LogError("config", "environment " + env_config.name + " not added: more than " +
                             std::to_string(EventsRelay::kMaxEnvironments) +
                             " environments since start; restart to add it");
      return false;
    }
    // Cached data is served as soon as the first upstream attempt fails or initTimeout passes,
    // whichever comes first (DESIGN.md §5).
    env->LoadFromCache(shared_.cache_problem);
    members_.push_back({env, nullptr, *slot});
    if (io != nullptr) {
      StartSource(members_.back(), *io);
      auto timer = std::make_shared<net::steady_timer>(*io, shared_.started.upstream.init_timeout);
      timer->async_wait(
          [timer, weak = std::weak_ptr<Environment>(env)](boost::system::error_code ec) {
            if (auto held = weak.lock(); held && !ec) held->ReleaseCache();
          });
    }
    return true;
  }

  void StartSources(net::io_context& io) {
    for (Member& member : members_) StartSource(member, io);
  }
  void StopSources() {
    for (Member& member : members_) member.source.reset();  // SourceHandle stops it
  }

  /// Builds the router from the environments now and makes it the one requests see.
  void PublishRouter() {
    std::vector<std::shared_ptr<Environment>> envs;
    std::vector<std::size_t> slots;
    for (const Member& member : members_) {
      envs.push_back(member.env);
      slots.push_back(member.events_slot);
    }
    router_.store(std::make_shared<Router>(std::move(envs), shared_.metrics, std::string(Version()),
                                           shared_.started.readiness, &shared_.events,
                                           std::move(slots)));
  }
  [[nodiscard]] std::shared_ptr<Router> router() const { return router_.load(); }

  template <class F>
  void ForEach(F f) const {
    for (const Member& member : members_) f(*member.env);
  }

  /// A reload: environments not in `next` are removed (their streams closed), new ones added,
  /// changed ones updated in place (a new SDK key reconnects the upstream with it; streams stay),
  /// and one whose data source changed (dataFile) is replaced.
  void Apply(const std::vector<config::EnvironmentConfig>& next, net::io_context& io) {
    std::vector<Member> kept;
    for (Member& member : members_) {
      const auto it = std::find_if(next.begin(), next.end(), [&member](const auto& e) {
        return e.name == member.env->name();
      });
      if (it == next.end() || it->data_file != member.env->config()->data_file) {
        Retire(member, it == next.end() ? "removed" : "replaced (its data source changed)");
      } else {
        Update(member, *it, io);
        kept.push_back(std::move(member));
      }
    }
    members_ = std::move(kept);
    std::vector<Member> ordered;  // in the new file's order, as /status lists them
    for (const config::EnvironmentConfig& env_config : next) {
      auto it = std::find_if(members_.begin(), members_.end(), [&env_config](const Member& m) {
        return m.env->name() == env_config.name;
      });
      if (it == members_.end()) {
        if (!Add(env_config, &io)) continue;
        LogInfo("config", "environment " + env_config.name + " added");
        it = members_.end() - 1;
      }
      ordered.push_back(std::move(*it));
      members_.erase(it);
    }
    members_ = std::move(ordered);
    PublishRouter();
  }

  void CloseSubscribers() {
    for (const Member& member : members_) member.env->CloseSubscribers();
  }

 private:
  struct Member {
    std::shared_ptr<Environment> env;
    std::unique_ptr<DataSource> source;
    std::size_t events_slot = 0;
  };

  void StartSource(Member& member, net::io_context& io) {
    member.source = member.env->config()->data_file.empty()
                        ? MakeUpstreamSource(io, member.env, shared_.started.upstream,
                                             shared_.outbound, shared_.user_agent)
                        : MakeFileSource(io, member.env);
    member.source->Start();
  }

  void Update(Member& member, const config::EnvironmentConfig& next, net::io_context& io) {
    const auto before = member.env->config();
    if (*before != next) member.env->UpdateConfig(next);
    // Even unchanged: a reload also retries a credential the events service refused.
    shared_.events.Configure(member.events_slot, member.env->config());
    const std::string& name = next.name;
    if (before->events != next.events) {
      LogInfo("config", "environment " + name + ": events now " + DescribeEvents(next.events));
    }
    if (before->sdk_key != next.sdk_key) {
      member.env->ClearCredentialRejected();
      if (next.data_file.empty()) {
        LogInfo("config", "environment " + name + ": new SDK key " + next.sdk_key.Masked() +
                              ", reconnecting upstream with it; SDK streams stay");
        member.source.reset();
        StartSource(member, io);
      }
      EndStreamsOfOldKey(member, before->sdk_key, next.expiring_sdk_key, true, io);
    }
    if (before->mobile_key && before->mobile_key != next.mobile_key) {
      EndStreamsOfOldKey(member, *before->mobile_key, next.expiring_mobile_key, false, io);
    }
    LogExpiring(name, "SDK key", before->expiring_sdk_key, next.expiring_sdk_key);
    LogExpiring(name, "mobile key", before->expiring_mobile_key, next.expiring_mobile_key);
  }

  static void LogExpiring(const std::string& env, const char* what,
                          const std::optional<config::ExpiringKey>& before,
                          const std::optional<config::ExpiringKey>& next) {
    if (!next || before == next) return;
    LogInfo("config", "environment " + env + ": " + what + " " + next->key.Masked() +
                          " accepted until " + FormatUtc(next->expiry_unix_ms));
  }

  // The streams open before a key rotation were opened with the old key (or one that expired
  // before it): they end when the old key stops being accepted, at once or at its expiry.
  static void EndStreamsOfOldKey(const Member& member, const config::Secret& old_key,
                                 const std::optional<config::ExpiringKey>& expiring,
                                 bool server_streams, net::io_context& io) {
    const std::uint64_t generation = member.env->RotateCredentials();
    const std::int64_t until =
        expiring && expiring->key == old_key ? expiring->expiry_unix_ms - NowUnixMs() : 0;
    auto timer = std::make_shared<net::steady_timer>(
        io, std::chrono::milliseconds(std::max<std::int64_t>(until, 0)));
    timer->async_wait(
        [timer, generation, server_streams,
         weak = std::weak_ptr<Environment>(member.env)](boost::system::error_code ec) {
          if (auto env = weak.lock(); env && !ec)
            env->CloseSubscribersBefore(generation, server_streams);
        });
  }

  void Retire(Member& member, const std::string& why) {
    member.source.reset();
    member.env->CloseSubscribers();
    shared_.metrics.RetireEnvironment(member.env->name());
    LogInfo("config", "environment " + member.env->name() + " " + why + ": its SDK streams closed");
  }

  Shared shared_;
  std::vector<Member> members_;
  std::atomic<std::shared_ptr<Router>> router_;
};

// The config file's content, hashed: reload.watchInterval compares it, so a touch without a
// change (or a Kubernetes ConfigMap refresh with the same data) does nothing. Nullopt when the
// file cannot be read.
std::optional<std::uint64_t> HashFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return protocol::StableHash64(text.str());
}

}  // namespace

int Run(const config::RelayConfig& config, const ConfigReloader& reload,
        const std::string& config_path) {
  SetLogLevel(config.log_level);
  std::signal(SIGPIPE, SIG_IGN);
  // A file size limit (ulimit -f) must fail the cache commit (EFBIG), not kill the relay.
  std::signal(SIGXFSZ, SIG_IGN);
  const unsigned threads =
      config.threads > 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency());

  metrics::RelayMetrics metrics(Version());
  // Declared before the store, so it runs once the store is closed, and only on the way out
  // through the end of Run (a crash leaves no mark).
  struct CleanCloseMark {
    std::string dir;
    ~CleanCloseMark() {
      if (!dir.empty()) cache::MarkCleanClose(dir);
    }
  } clean_close;
  std::string cache_problem;
  std::unique_ptr<cache::Store> store = OpenCache(config.cache, &cache_problem);
  CommitQueue commits;

  std::shared_ptr<Outbound> outbound;
  try {
    outbound = MakeOutbound(config.upstream, config.proxy);
  } catch (const std::exception& e) {
    LogError("upstream", e.what());
    return 1;
  }
  const std::string user_agent = "flagrelay/" + std::string(Version());
  EventsRelay events(config.events, config.upstream, outbound, user_agent, {});
  Fleet fleet({store.get(), commits, metrics, events, config, outbound, user_agent, cache_problem});
  for (const config::EnvironmentConfig& env_config : config.environments) {
    if (!fleet.Add(env_config)) return 1;
  }
  fleet.PublishRouter();

  metrics.OnScrape([&fleet] {
    const std::int64_t now = NowUnixMs();
    fleet.ForEach([now](const Environment& env) {
      if (auto snap = env.snapshot()) {
        env.metrics().data_age->Set(static_cast<double>(now - snap->updated_at_unix_ms()) / 1000.0);
      }
      if (const std::int64_t activity = env.Status().last_activity_unix_ms; activity != 0) {
        env.metrics().upstream_last_activity_age->Set(static_cast<double>(now - activity) / 1000.0);
      }
    });
  });

  // One io_context per I/O thread (DESIGN.md §3): SDK connections are spread over them and stay
  // on theirs, so a connection's handlers and the changes fanned out to its stream need no
  // strand or lock. The first also runs everything else (sources, timers, signals, reloads), on
  // the main thread. Declared after everything that pending handlers reference (environments,
  // metrics, router): destroying the io_contexts destroys those handlers (and the sessions they
  // keep alive) first.
  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::io_context*> workers;
  for (unsigned i = 0; i < threads; ++i) {
    contexts.push_back(std::make_unique<net::io_context>(1));
    workers.push_back(contexts.back().get());
  }
  net::io_context& io = *contexts.front();
  HttpServer server(
      io, workers, "http", [&fleet](const HttpRequest& r) { return fleet.router()->Handle(r); },
      config.listen, config.streams, config.events.max_body_bytes, metrics);
  if (config.listen.tls) {
    try {
      server.EnableTls(*config.listen.tls);
    } catch (const std::exception& e) {
      LogError("http", e.what());
      return 1;
    }
  }
  if (std::string error = server.Listen(config.listen.host, config.listen.port); !error.empty()) {
    LogError("http", error);
    return 1;
  }
  LogInfo("http", std::string("serving SDKs on ") + (config.listen.tls ? "https://" : "http://") +
                      config.listen.host + ":" + std::to_string(config.listen.port));

  std::unique_ptr<HttpServer> metrics_server;
  if (config.metrics.port != 0) {
    const std::string host = config.metrics.host.empty() ? config.listen.host : config.metrics.host;
    metrics_server = std::make_unique<HttpServer>(
        io, std::vector<net::io_context*>{}, "metrics",
        [&fleet](const HttpRequest& r) { return fleet.router()->HandleMetrics(r); }, config.listen,
        config.streams, config.listen.max_body_bytes, metrics);
    if (std::string error = metrics_server->Listen(host, config.metrics.port); !error.empty()) {
      LogError("metrics", error);
      return 1;
    }
    LogInfo("metrics", "serving /metrics on " + host + ":" + std::to_string(config.metrics.port));
  }

  events.Start();
  fleet.StartSources(io);

  // SDKs drop a stream after 5 minutes of silence, and load balancers often much sooner.
  net::steady_timer heartbeat(io);
  ScheduleEvery(heartbeat, config.streams.heartbeat_interval,
                [&fleet] { fleet.ForEach([](Environment& env) { env.Heartbeat(); }); });
  net::steady_timer cache_retry(io);
  ScheduleEvery(cache_retry, kCacheRetryInterval,
                [&fleet] { fleet.ForEach([](Environment& env) { env.RetryFailedCommit(); }); });

  int exit_code = 0;  // read after the io threads are joined
  config::Duration drain_delay = config.shutdown.drain_delay;  // the latest reload's
  std::atomic<bool> shutting_down{false};
  bool closing = false;
  net::steady_timer drain(io);
  net::steady_timer grace(io);
  net::steady_timer init_timer(io);
  net::steady_timer watch(io);
  net::signal_set signals(io, SIGINT, SIGTERM);
  net::signal_set hangup(io, SIGHUP);
  // The second half of a shutdown, once readiness has said 503 for shutdown.drainDelay (DESIGN.md
  // §3's order): stop accepting, stop the sources, close SDK streams so that they reconnect to
  // another replica; events and cache commits are flushed after the io threads end.
  auto close_down = [&] {
    if (closing) return;
    closing = true;
    signals.cancel();
    drain.cancel();
    server.Stop();
    if (metrics_server) metrics_server->Stop();
    fleet.StopSources();
    heartbeat.cancel();
    cache_retry.cancel();
    fleet.CloseSubscribers();
    // Let closes and in-flight responses finish, then stop whatever is still waiting (idle
    // keep-alive connections would otherwise hold the process for their idle timeout).
    grace.expires_after(std::chrono::milliseconds(200));
    grace.async_wait([&contexts](boost::system::error_code) {
      for (const auto& context : contexts) context->stop();
    });
  };
  // Runs once, whichever of a signal and exitOnError comes first (they may race on two threads).
  auto shutdown = [&](int code) {
    if (shutting_down.exchange(true)) return;
    exit_code = code;
    hangup.cancel();
    watch.cancel();
    init_timer.cancel();
    fleet.router()->StartDraining();
    if (code != 0 || drain_delay.count() == 0) return close_down();
    LogInfo("relay", "draining: /readyz answers 503 for " + std::to_string(drain_delay.count()) +
                         " ms before the listener closes (a second signal skips the wait)");
    drain.expires_after(drain_delay);
    drain.async_wait([&](boost::system::error_code ec) {
      if (!ec) close_down();
    });
  };
  std::function<void()> await_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int signal) {
      if (ec) return;
      const char* name = signal == SIGINT ? "SIGINT" : "SIGTERM";
      if (shutting_down.load()) {
        LogInfo("relay", std::string("received ") + name + " again: closing now");
        return close_down();
      }
      LogInfo("relay", std::string("received ") + name + ", shutting down");
      shutdown(0);
      await_signal();
    });
  };
  await_signal();

  // initTimeout: after it, serve what each environment has; with exitOnError, an environment
  // without live data is fatal (and really exits non-zero: ld-relay's issue #549).
  init_timer.expires_after(config.upstream.init_timeout);
  init_timer.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    std::string not_live;
    fleet.ForEach([&not_live](Environment& env) {
      env.ReleaseCache();
      if (!env.has_live_data() || env.credential_rejected()) {
        not_live += (not_live.empty() ? "" : ", ") + env.name();
      }
    });
    if (not_live.empty()) return;
    if (!config.upstream.exit_on_error) {
      LogWarn("relay", "no live data after upstream.initTimeout for: " + not_live +
                           "; serving what is available");
      return;
    }
    LogError("relay", "no live data after upstream.initTimeout for: " + not_live +
                          "; exiting (upstream.exitOnError)");
    shutdown(1);
  });

  // A reload (SIGHUP, or the watched file changed): an invalid config changes nothing; a valid
  // one applies its environments and log level, and names what waits for a restart.
  auto apply_reload = [&](const char* trigger) {
    if (!reload) {
      LogWarn("config", std::string(trigger) + " ignored: no config file to reload");
      return;
    }
    const config::LoadResult result = reload();
    if (!result.ok()) {
      for (const std::string& error : result.errors) LogError("config", error);
      LogError("config",
               std::string(trigger) + ": the new config is invalid; keeping the running one");
      return;
    }
    const config::RelayConfig& next = *result.config;
    SetLogLevel(next.log_level);
    drain_delay = next.shutdown.drain_delay;
    fleet.Apply(next.environments, io);
    const std::vector<std::string> later = NeedsRestart(config, next);
    std::string waiting;
    for (const std::string& section : later) waiting += (waiting.empty() ? "" : ", ") + section;
    LogInfo("config",
            std::string(trigger) + ": reloaded" +
                (waiting.empty() ? "" : "; changes to " + waiting + " wait for a restart"));
  };
  std::function<void()> await_hangup = [&] {
    hangup.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      apply_reload("SIGHUP");
      await_hangup();
    });
  };
  await_hangup();
  if (config.reload.watch_interval.count() > 0 && !config_path.empty()) {
    auto last = std::make_shared<std::optional<std::uint64_t>>(HashFile(config_path));
    ScheduleEvery(watch, config.reload.watch_interval, [&, last] {
      const auto now = HashFile(config_path);
      if (!now || now == *last) return;  // unreadable mid-update, or unchanged
      *last = now;
      apply_reload("config file changed");
    });
  }

  std::vector<std::thread> worker_threads;
  for (unsigned i = 1; i < threads; ++i) {
    worker_threads.emplace_back([context = contexts[i].get()] {
      auto keep_running = net::make_work_guard(*context);  // idle until stopped
      context->run();
    });
  }
  io.run();
  for (auto& thread : worker_threads) thread.join();
  events.Shutdown();  // no SDK can post any more: deliver what is queued, within a bound
  commits.Stop();     // every change already applied is committed before the process exits
  if (store) clean_close.dir = config.cache.dir;
  LogInfo("relay", "stopped");
  return exit_code;
}

}  // namespace flagrelay::relay
