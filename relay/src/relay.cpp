#include "flagrelay/relay/relay.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <memory>
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

// SIGHUP: what can change live does; everything else waits for a restart, and says so.
void ApplyReload(const config::RelayConfig& running, const config::RelayConfig& next,
                 EventsRelay& events) {
  SetLogLevel(next.log_level);
  for (std::size_t i = 0; i < running.environments.size(); ++i) {
    const std::string& name = running.environments[i].name;
    const auto it = std::find_if(next.environments.begin(), next.environments.end(),
                                 [&name](const auto& env) { return env.name == name; });
    if (it == next.environments.end()) {
      LogWarn("config",
              "environment " + name + " is no longer in the config: served until restart");
      continue;
    }
    const config::EnvironmentEventsConfig before = events.StatusOf(i).settings;
    events.Configure(i, it->events);  // also retries a credential the events service refused
    if (!(before == it->events)) {
      LogInfo("config", "environment " + name + ": events now " + DescribeEvents(it->events));
    }
  }
  for (const config::EnvironmentConfig& env : next.environments) {
    const bool known = std::any_of(running.environments.begin(), running.environments.end(),
                                   [&env](const auto& r) { return r.name == env.name; });
    if (!known)
      LogWarn("config", "environment " + env.name + " is new: it is served after restart");
  }
  LogInfo("config", "reloaded: log level and event switches applied; the rest waits for a restart");
}

}  // namespace

int Run(const config::RelayConfig& config, const ConfigReloader& reload) {
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

  std::vector<std::unique_ptr<Environment>> environments;
  std::vector<Environment*> environment_ptrs;
  for (const config::EnvironmentConfig& env_config : config.environments) {
    environments.push_back(std::make_unique<Environment>(env_config, store.get(), commits,
                                                         metrics.AddEnvironment(env_config.name),
                                                         config.upstream.disconnected_status_time));
    environment_ptrs.push_back(environments.back().get());
  }
  // Cached data is loaded now and served as soon as the first upstream attempt fails or
  // initTimeout passes, whichever comes first (DESIGN.md §5).
  for (const auto& env : environments) env->LoadFromCache(cache_problem);

  metrics.OnScrape([&environments] {
    const std::int64_t now = NowUnixMs();
    for (const auto& env : environments) {
      if (auto snap = env->snapshot()) {
        env->metrics().data_age->Set(static_cast<double>(now - snap->updated_at_unix_ms()) /
                                     1000.0);
      }
      if (const std::int64_t activity = env->Status().last_activity_unix_ms; activity != 0) {
        env->metrics().upstream_last_activity_age->Set(static_cast<double>(now - activity) /
                                                       1000.0);
      }
    }
  });

  std::shared_ptr<Outbound> outbound;
  try {
    outbound = MakeOutbound(config.upstream, config.proxy);
  } catch (const std::exception& e) {
    LogError("upstream", e.what());
    return 1;
  }
  const std::string user_agent = "flagrelay/" + std::string(Version());
  std::vector<EventsRelay::Environment> events_environments;
  for (const auto& env : environments) {
    events_environments.push_back({&env->config(), &env->metrics()});
  }
  EventsRelay events(config.events, config.upstream, outbound, user_agent,
                     std::move(events_environments));
  const Router router(environment_ptrs, metrics, std::string(Version()), config.readiness, &events);

  // One io_context per I/O thread (DESIGN.md §3): SDK connections are spread over them and stay
  // on theirs, so a connection's handlers and the changes fanned out to its stream need no
  // strand or lock. The first also runs everything else (sources, timers, signals), on the main
  // thread. Declared after everything that pending handlers reference (environments, metrics,
  // router): destroying the io_contexts destroys those handlers (and the sessions they keep
  // alive) first.
  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::io_context*> workers;
  for (unsigned i = 0; i < threads; ++i) {
    contexts.push_back(std::make_unique<net::io_context>(1));
    workers.push_back(contexts.back().get());
  }
  net::io_context& io = *contexts.front();
  HttpServer server(
      io, workers, "http", [&router](const HttpRequest& r) { return router.Handle(r); },
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
        [&router](const HttpRequest& r) { return router.HandleMetrics(r); }, config.listen,
        config.streams, config.listen.max_body_bytes, metrics);
    if (std::string error = metrics_server->Listen(host, config.metrics.port); !error.empty()) {
      LogError("metrics", error);
      return 1;
    }
    LogInfo("metrics", "serving /metrics on " + host + ":" + std::to_string(config.metrics.port));
  }

  events.Start();
  std::vector<std::unique_ptr<DataSource>> sources;
  for (const auto& env : environments) {
    sources.push_back(env->config().data_file.empty()
                          ? MakeUpstreamSource(io, *env, config.upstream, outbound, user_agent)
                          : MakeFileSource(io, *env));
    sources.back()->Start();
  }

  // SDKs drop a stream after 5 minutes of silence, and load balancers often much sooner.
  net::steady_timer heartbeat(io);
  ScheduleEvery(heartbeat, config.streams.heartbeat_interval, [&environments] {
    for (const auto& env : environments) env->Heartbeat();
  });
  net::steady_timer cache_retry(io);
  ScheduleEvery(cache_retry, kCacheRetryInterval, [&environments] {
    for (const auto& env : environments) env->RetryFailedCommit();
  });

  int exit_code = 0;  // read after the io threads are joined
  std::atomic<bool> shutting_down{false};
  net::steady_timer grace(io);
  net::steady_timer init_timer(io);
  net::signal_set signals(io, SIGINT, SIGTERM);
  net::signal_set hangup(io, SIGHUP);
  // Runs once, whichever of a signal and exitOnError comes first (they may race on two threads).
  auto shutdown = [&](int code) {
    if (shutting_down.exchange(true)) return;
    exit_code = code;
    signals.cancel();
    hangup.cancel();
    init_timer.cancel();
    server.Stop();
    if (metrics_server) metrics_server->Stop();
    for (const auto& source : sources) source->Stop();
    heartbeat.cancel();
    cache_retry.cancel();
    for (const auto& env : environments) env->CloseSubscribers();
    // Let closes and in-flight responses finish, then stop whatever is still waiting (idle
    // keep-alive connections would otherwise hold the process for their idle timeout).
    grace.expires_after(std::chrono::milliseconds(200));
    grace.async_wait([&contexts](boost::system::error_code) {
      for (const auto& context : contexts) context->stop();
    });
  };
  signals.async_wait([&](boost::system::error_code ec, int signal) {
    if (ec) return;
    LogInfo("relay", std::string("received ") + (signal == SIGINT ? "SIGINT" : "SIGTERM") +
                         ", shutting down");
    shutdown(0);
  });

  // initTimeout: after it, serve what each environment has; with exitOnError, an environment
  // without live data is fatal (and really exits non-zero: ld-relay's issue #549).
  init_timer.expires_after(config.upstream.init_timeout);
  init_timer.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    std::string not_live;
    for (const auto& env : environments) {
      env->ReleaseCache();
      if (!env->has_live_data() || env->credential_rejected()) {
        not_live += (not_live.empty() ? "" : ", ") + env->config().name;
      }
    }
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

  // SIGHUP re-reads the config; nothing in flight is dropped.
  std::function<void()> await_hangup = [&] {
    hangup.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      if (!reload) {
        LogWarn("config", "SIGHUP ignored: no config file to reload");
      } else if (const config::LoadResult result = reload(); !result.ok()) {
        for (const std::string& error : result.errors) LogError("config", error);
        LogError("config", "SIGHUP: the new config is invalid; keeping the running one");
      } else {
        ApplyReload(config, *result.config, events);
      }
      await_hangup();
    });
  };
  await_hangup();

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
