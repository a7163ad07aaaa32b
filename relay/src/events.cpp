#include "events.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>

#include "flagrelay/protocol/snapshot.hpp"
#include "log.hpp"
#include "outbound.hpp"

namespace flagrelay::relay {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

namespace {

constexpr auto kAwait = net::as_tuple(net::use_awaitable);
using Clock = std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;
using events::Batch;
using events::Channel;
using events::Verdict;
using metrics::EventDropReason;

// POSTs one environment has open at once: enough to keep up with a busy environment, few enough
// not to look like a flood to the events service.
constexpr std::size_t kMaxPostsPerEnvironment = 4;
constexpr std::chrono::seconds kRetryDelay{1};
// Kept-alive connections to the events service: as many as the POSTs a couple of busy
// environments have open; closed after a while unused (servers drop them anyway).
constexpr std::size_t kMaxIdleConnections = 8;
constexpr std::chrono::seconds kIdleTimeout{30};
constexpr std::size_t kMaxResponseBytes = 64 * 1024;
// One thread compresses every batch: level 1 delivers ~15 % more events/s than zlib's default
// and still shrinks event JSON ~40× (docs/benchmarks.md, "Events relay").
constexpr int kGzipLevel = 1;
// A diagnostic event is a few kilobytes; this bounds what maxDiagnosticQueue of them can hold.
constexpr std::size_t kMaxDiagnosticBytes = 256 * 1024;

// Where each SDK kind's events go upstream (the browser paths end in the environment ID).
struct UpstreamPaths {
  std::string_view analytics;
  std::string_view diagnostic;
};
constexpr UpstreamPaths kServerPaths{"/bulk", "/diagnostic"};
constexpr UpstreamPaths kMobilePaths{"/mobile", "/mobile/events/diagnostic"};
constexpr UpstreamPaths kBrowserPaths{"/events/bulk/", "/events/diagnostic/"};

const UpstreamPaths& PathsOf(Channel channel) {
  switch (channel) {
    case Channel::kMobile:
      return kMobilePaths;
    case Channel::kBrowser:
      return kBrowserPaths;
    case Channel::kServer:
      break;
  }
  return kServerPaths;
}

bool IsGzip(std::string_view content_encoding) {
  return content_encoding.find("gzip") != std::string_view::npos;
}

}  // namespace

// Handlers and coroutines capture `this`: the io_context is a member, destroyed first (with
// whatever is still pending) when the relay is, after its thread has been joined.
struct EventsRelay::Impl {
  struct EnvState {
    EnvState(const Environment& environment, const config::EventsConfig& limits)
        : config(environment.config),
          env_metrics(environment.metrics),
          queue(limits, environment.config->events, Clock::now()) {}

    // Swapped by a reload while any thread may read it.
    std::atomic<std::shared_ptr<const config::EnvironmentConfig>> config;
    const metrics::EnvironmentMetrics* env_metrics;
    std::mutex mutex;  // guards queue and rejected
    events::EnvironmentQueue queue;
    bool rejected = false;
    std::atomic<std::size_t> diagnostics_pending{0};
    std::atomic<std::int64_t> last_shed_warning{0};  // Clock ticks
    // The forwarder's thread only:
    std::deque<Batch> ready;
    std::size_t posting = 0;

    [[nodiscard]] const metrics::EnvironmentMetrics& metrics() const { return *env_metrics; }
    [[nodiscard]] std::string name() const { return config.load()->name; }
    void Drop(EventDropReason reason, std::size_t events) const {
      if (events != 0) metrics().EventsDropped(reason).Increment(static_cast<double>(events));
    }
    // Call with the mutex held.
    void UpdateGauges() const {
      metrics().events_queued->Set(static_cast<double>(queue.events()));
      metrics().events_queued_bytes->Set(static_cast<double>(queue.bytes()));
      metrics().events_forwarding->Set(!rejected && queue.settings().enabled ? 1 : 0);
    }
  };

  Impl(const config::EventsConfig& events_config, const config::UpstreamConfig& upstream_config,
       std::shared_ptr<Outbound> outbound_ptr, std::string agent)
      : config(events_config),
        upstream(upstream_config),
        outbound(std::move(outbound_ptr)),
        user_agent(std::move(agent)),
        target(ParseTarget(upstream_config.events_uri)),
        random(std::random_device{}()) {}

  // ---- accepting (any thread) ------------------------------------------------------------------

  EventsReply Accept(EnvState& env, const EventsPost& post) {
    if (post.body.empty()) return {400, "body may not be empty"};
    const std::size_t limit = post.diagnostic ? std::min(config.max_body_bytes, kMaxDiagnosticBytes)
                                              : config.max_body_bytes;
    const auto too_large = [limit] {
      return EventsReply{413, "the events body is larger than " + std::to_string(limit) + " bytes"};
    };
    if (post.body.size() > limit) return too_large();
    std::optional<std::string> inflated;
    std::string_view body = post.body;
    if (IsGzip(post.content_encoding)) {
      bool inflates_too_large = false;
      inflated = protocol::GzipDecompress(body, limit, &inflates_too_large);
      if (inflates_too_large) return too_large();
      if (!inflated) return {400, "the body is not valid gzip"};
      body = *inflated;
    }
    if (post.diagnostic) return AcceptDiagnostic(env, post, body);

    events::SplitResult split = events::SplitEvents(body);
    if (!split.error.empty()) return {400, std::move(split.error)};
    env.metrics().events_received->Increment(static_cast<double>(split.events.size()));
    const events::BatchKey key{post.channel, std::string(post.schema), std::string(post.tags),
                               post.unsummarized};
    std::vector<Batch> ready;
    events::Admission admission;
    bool rejected = false;
    {
      std::lock_guard lock(env.mutex);
      rejected = env.rejected;
      if (!rejected) admission = env.queue.Add(key, split.events, Clock::now(), ready);
      env.UpdateGauges();
    }
    if (rejected) env.Drop(EventDropReason::kUpstreamRejected, split.events.size());
    env.Drop(EventDropReason::kDisabled, admission.disabled);
    env.Drop(EventDropReason::kRateLimited, admission.rate_limited);
    env.Drop(EventDropReason::kSampled, admission.sampled);
    env.Drop(EventDropReason::kQueueFull, admission.queue_full);
    if (admission.queue_full != 0) WarnShedding(env);
    if (!ready.empty()) {
      net::post(io, [this, &env, batches = std::move(ready)]() mutable {
        for (Batch& batch : batches) env.ready.push_back(std::move(batch));
        StartPosts(env);
      });
    }
    return {202, {}};
  }

  EventsReply AcceptDiagnostic(EnvState& env, const EventsPost& post, std::string_view body) {
    if (std::string error = events::CheckObject(body); !error.empty()) return {400, error};
    bool enabled = true, rejected = false;
    {
      std::lock_guard lock(env.mutex);
      enabled = env.queue.settings().enabled;
      rejected = env.rejected;
    }
    if (!enabled) {
      env.Drop(EventDropReason::kDisabled, 1);
    } else if (rejected) {
      env.Drop(EventDropReason::kUpstreamRejected, 1);
    } else if (env.diagnostics_pending.fetch_add(1) >= config.max_diagnostic_queue) {
      env.diagnostics_pending.fetch_sub(1);
      env.Drop(EventDropReason::kDiagnosticQueueFull, 1);
    } else {
      Headers headers;
      for (const auto& [name, value] : post.headers) headers.emplace_back(name, value);
      net::co_spawn(io, DeliverDiagnostic(env, post.channel, std::string(body), std::move(headers)),
                    net::detached);
    }
    return {202, {}};
  }

  // One log line per environment per minute while it sheds for lack of room.
  static void WarnShedding(EnvState& env) {
    const std::int64_t now = Clock::now().time_since_epoch().count();
    std::int64_t previous = env.last_shed_warning.load();
    const auto minute = std::chrono::duration_cast<Clock::duration>(std::chrono::minutes(1));
    if (previous != 0 && now - previous < minute.count()) return;
    if (!env.last_shed_warning.compare_exchange_strong(previous, now)) return;
    LogWarn("events " + env.name(),
            "event queue full (events.maxQueueEvents/maxQueueBytes): shedding new events; see "
            "flagrelay_events_dropped_total");
  }

  // ---- forwarding (the forwarder's thread) ---------------------------------------------------

  void StartPosts(EnvState& env) {
    while (env.posting < kMaxPostsPerEnvironment && !env.ready.empty()) {
      auto batch = std::make_shared<Batch>(std::move(env.ready.front()));
      env.ready.pop_front();
      ++env.posting;
      net::co_spawn(io, Deliver(env, std::move(batch)), net::detached);
    }
    if (stopping) StopWhenIdle();
  }

  void FlushAll() {
    for (const auto& env : envs) {
      std::vector<Batch> ready;
      {
        std::lock_guard lock(env->mutex);
        env->queue.SealAll(ready);
      }
      for (Batch& batch : ready) env->ready.push_back(std::move(batch));
      StartPosts(*env);
    }
  }

  void ScheduleFlush() {
    flush_timer.expires_after(config.flush_interval);
    flush_timer.async_wait([this](boost::system::error_code ec) {
      if (ec || stopping) return;
      CloseStaleConnections();
      FlushAll();
      ScheduleFlush();
    });
  }

  std::string PayloadId() {
    // A version 4 UUID: the events service uses it to drop a retried batch it already has.
    std::uniform_int_distribution<std::uint64_t> bits;
    const std::uint64_t high = (bits(random) & ~0xF000ULL) | 0x4000ULL;
    const std::uint64_t low = (bits(random) & ~(3ULL << 62)) | (2ULL << 62);
    char text[37];
    std::snprintf(text, sizeof text, "%08x-%04x-%04x-%04x-%012llx",
                  static_cast<unsigned>(high >> 32), static_cast<unsigned>((high >> 16) & 0xFFFF),
                  static_cast<unsigned>(high & 0xFFFF), static_cast<unsigned>(low >> 48),
                  static_cast<unsigned long long>(low & 0xFFFFFFFFFFFFULL));
    return text;
  }

  std::string PathFor(std::string_view base, const EnvState& env) const {
    std::string path(base);
    if (path.back() == '/') path += env.config.load()->env_id;
    return path;
  }

  // The analytics credential: the SDK key or mobile key; browsers' events go by env ID only.
  std::string AuthorizationFor(Channel channel, const EnvState& env) const {
    const auto config_ptr = env.config.load();
    const config::EnvironmentConfig& c = *config_ptr;
    if (channel == Channel::kServer) return c.sdk_key.Reveal();
    if (channel == Channel::kMobile && c.mobile_key) return c.mobile_key->Reveal();
    return {};
  }

  net::awaitable<void> Deliver(EnvState& env, std::shared_ptr<Batch> batch) {
    Headers headers = {{"Content-Type", "application/json"},
                       {"X-LaunchDarkly-Payload-ID", PayloadId()}};
    if (std::string auth = AuthorizationFor(batch->key.channel, env); !auth.empty())
      headers.emplace_back("Authorization", std::move(auth));
    if (!batch->key.schema.empty())
      headers.emplace_back("X-LaunchDarkly-Event-Schema", batch->key.schema);
    if (!batch->key.tags.empty()) headers.emplace_back("X-LaunchDarkly-Tags", batch->key.tags);
    if (batch->key.unsummarized) headers.emplace_back("X-LaunchDarkly-Unsummarized", "true");
    const std::string path = PathFor(PathsOf(batch->key.channel).analytics, env);
    const std::string body = protocol::GzipCompress(batch->body, kGzipLevel);
    const Verdict verdict = co_await PostWithRetry(path, headers, body);
    const auto events = static_cast<double>(batch->events);
    switch (verdict) {
      case Verdict::kDelivered:
        env.metrics().events_forwarded->Increment(events);
        break;
      case Verdict::kRejected:
        env.Drop(EventDropReason::kUpstreamRejected, batch->events);
        break;
      case Verdict::kDrop:
        env.Drop(EventDropReason::kRefusedBatch, batch->events);
        break;
      case Verdict::kRetry:
        env.Drop(EventDropReason::kUndeliverable, batch->events);
        break;
    }
    {
      std::lock_guard lock(env.mutex);
      if (verdict == Verdict::kRejected && !env.rejected) {
        env.rejected = true;
        LogError("events " + env.name(),
                 "the events service refused the credential: stopped forwarding events for this "
                 "environment until restart or SIGHUP");
      }
      env.queue.Release(*batch);
      env.UpdateGauges();
    }
    --env.posting;
    StartPosts(env);
  }

  net::awaitable<void> DeliverDiagnostic(EnvState& env, Channel channel, std::string body,
                                         Headers headers) {
    const Verdict verdict =
        co_await PostWithRetry(PathFor(PathsOf(channel).diagnostic, env), headers,
                               protocol::GzipCompress(body, kGzipLevel));
    if (verdict == Verdict::kDelivered) {
      env.metrics().diagnostics_forwarded->Increment();
    } else {
      env.Drop(EventDropReason::kUndeliverable, 1);
    }
    env.diagnostics_pending.fetch_sub(1);
    if (stopping) StopWhenIdle();
  }

  // Up to two attempts, a second apart, for answers worth retrying (Classify).
  net::awaitable<Verdict> PostWithRetry(const std::string& path, const Headers& headers,
                                        const std::string& gzip_body) {
    Verdict verdict = Verdict::kRetry;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (attempt > 0) {
        net::steady_timer delay(io, kRetryDelay);
        co_await delay.async_wait(kAwait);
      }
      const unsigned status = co_await Post(path, headers, gzip_body);
      verdict = events::Classify(status);
      if (verdict != Verdict::kRetry) break;
    }
    co_return verdict;
  }

  struct Answer {
    unsigned status = 0;  // 0: no answer (network error, timeout)
    bool keep_alive = false;
  };

  // One POST; the HTTP status, or 0 when there was none. It goes on a kept-alive connection when
  // there is one: over TLS, a handshake per batch would cost more than the batch. The service
  // may have closed that connection while it sat idle, so a failure on it is followed at once
  // by the same POST on a fresh connection (the payload ID makes a duplicate harmless).
  net::awaitable<unsigned> Post(const std::string& path, const Headers& headers,
                                const std::string& gzip_body) {
    if (!target) co_return 0;
    http::request<http::string_body> request{http::verb::post, target->base_path + path, 11};
    request.set(http::field::host, target->HostHeader());
    request.set(http::field::user_agent, user_agent);
    for (const auto& [name, value] : headers) request.set(name, value);
    request.set(http::field::content_encoding, "gzip");
    request.keep_alive(true);
    request.body() = gzip_body;
    request.prepare_payload();
    if (std::unique_ptr<Connection> kept = TakeIdleConnection()) {
      const Answer answer = co_await Exchange(*kept, request, /*log_failure=*/false);
      if (answer.status != 0) co_return KeepOrClose(std::move(kept), answer);
    }
    auto fresh = std::make_unique<Connection>(io.get_executor());
    if (std::string error = co_await outbound->Connect(*target, *fresh, upstream.connect_timeout);
        !error.empty()) {
      LogWarn("events", "cannot reach the events service: " + error);
      co_return 0;
    }
    const Answer answer = co_await Exchange(*fresh, request, /*log_failure=*/true);
    co_return KeepOrClose(std::move(fresh), answer);
  }

  net::awaitable<Answer> Exchange(Connection& connection, http::request<http::string_body>& request,
                                  bool log_failure) {
    return connection.Visit([this, &request, log_failure](auto& stream) {
      return ExchangeOn(stream, request, log_failure);
    });
  }

  template <class Stream>
  net::awaitable<Answer> ExchangeOn(Stream& stream, http::request<http::string_body>& request,
                                    bool log_failure) {
    beast::get_lowest_layer(stream).expires_after(config.send_timeout);
    if (auto [ec, n] = co_await http::async_write(stream, request, kAwait); ec) {
      if (log_failure) LogWarn("events", "sending events failed: " + ec.message());
      co_return Answer{};
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBytes);
    if (auto [ec, n] = co_await http::async_read(stream, buffer, parser, kAwait); ec) {
      if (log_failure) LogWarn("events", "no answer from the events service: " + ec.message());
      co_return Answer{};
    }
    const unsigned status = parser.get().result_int();
    if (status / 100 != 2) {
      LogWarn("events", "the events service answered HTTP " + std::to_string(status));
    }
    co_return Answer{status, parser.get().keep_alive()};
  }

  unsigned KeepOrClose(std::unique_ptr<Connection> connection, Answer answer) {
    if (answer.status != 0 && answer.keep_alive && idle.size() < kMaxIdleConnections) {
      idle.push_back({std::move(connection), Clock::now()});
    } else {
      connection->Close();
    }
    return answer.status;
  }

  // The most recently used first: it is the likeliest to be still open.
  std::unique_ptr<Connection> TakeIdleConnection() {
    CloseStaleConnections();
    if (idle.empty()) return nullptr;
    std::unique_ptr<Connection> connection = std::move(idle.back().connection);
    idle.pop_back();
    return connection;
  }

  void CloseStaleConnections() {
    const auto stale = Clock::now() - kIdleTimeout;
    std::erase_if(idle, [stale](IdleConnection& entry) {
      if (entry.since > stale) return false;
      entry.connection->Close();
      return true;
    });
  }

  // ---- shutdown --------------------------------------------------------------------------------

  void StopWhenIdle() {
    for (const auto& env : envs) {
      if (env->posting != 0 || !env->ready.empty() || env->diagnostics_pending.load() != 0) return;
    }
    io.stop();
  }

  config::EventsConfig config;
  config::UpstreamConfig upstream;
  std::shared_ptr<Outbound> outbound;
  std::string user_agent;
  std::optional<Target> target;
  std::mt19937_64 random;  // the forwarder's thread only
  // Slots are only ever added, so HTTP threads and the forwarder read them without a lock.
  struct Slots {
    using Array = std::array<std::unique_ptr<EnvState>, kMaxEnvironments>;
    Array slots;
    std::atomic<std::size_t> count{0};
    [[nodiscard]] Array::const_iterator begin() const { return slots.begin(); }
    [[nodiscard]] Array::const_iterator end() const {
      return slots.begin() + static_cast<std::ptrdiff_t>(count.load());
    }
    [[nodiscard]] EnvState& at(std::size_t i) const {
      if (i >= count.load()) throw std::out_of_range("no events slot " + std::to_string(i));
      return *slots[i];
    }
  } envs;
  std::thread thread;
  bool stopping = false;  // the forwarder's thread only
  // Last, so that they go first: pending handlers and coroutine frames refer to the above.
  net::io_context io{1};
  net::steady_timer flush_timer{io};
  net::steady_timer shutdown_timer{io};
  struct IdleConnection {
    std::unique_ptr<Connection> connection;
    Clock::time_point since;
  };
  std::vector<IdleConnection> idle;  // the forwarder's thread only; sockets go before io
};

EventsRelay::EventsRelay(const config::EventsConfig& config, const config::UpstreamConfig& upstream,
                         std::shared_ptr<Outbound> outbound, std::string user_agent,
                         std::vector<Environment> environments)
    : impl_(std::make_unique<Impl>(config, upstream, std::move(outbound), std::move(user_agent))) {
  for (Environment& environment : environments) {
    if (!AddEnvironment(std::move(environment))) throw std::length_error("too many environments");
  }
}

std::optional<std::size_t> EventsRelay::AddEnvironment(Environment environment) {
  Impl::Slots& envs = impl_->envs;
  const std::size_t count = envs.count.load();
  for (std::size_t i = 0; i < count; ++i) {
    if (envs.slots[i]->name() == environment.config->name) {
      Configure(i, std::move(environment.config));
      return i;
    }
  }
  if (count == kMaxEnvironments) return std::nullopt;
  envs.slots[count] = std::make_unique<Impl::EnvState>(environment, impl_->config);
  {
    std::lock_guard lock(envs.slots[count]->mutex);
    envs.slots[count]->UpdateGauges();
  }
  envs.count.store(count + 1);  // publishes the slot
  return count;
}

EventsRelay::~EventsRelay() {
  if (impl_->thread.joinable()) {
    impl_->io.stop();
    impl_->thread.join();
  }
}

void EventsRelay::Start() {
  impl_->ScheduleFlush();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

void EventsRelay::Shutdown() {
  if (!impl_->thread.joinable()) return;
  net::post(impl_->io, [impl = impl_.get()] {
    impl->stopping = true;
    impl->flush_timer.cancel();
    impl->FlushAll();
    impl->shutdown_timer.expires_after(impl->config.shutdown_timeout);
    impl->shutdown_timer.async_wait([impl](boost::system::error_code ec) {
      if (ec) return;
      LogWarn("events", "events.shutdownTimeout passed with events undelivered: dropping them");
      for (const auto& env : impl->envs) {
        std::lock_guard lock(env->mutex);  // everything not yet released, in flight included
        env->Drop(EventDropReason::kShutdown, env->queue.events());
      }
      impl->io.stop();
    });
    impl->StopWhenIdle();
  });
  impl_->thread.join();
}

EventsReply EventsRelay::Accept(std::size_t env, const EventsPost& post) {
  return impl_->Accept(impl_->envs.at(env), post);
}

void EventsRelay::Configure(std::size_t env,
                            std::shared_ptr<const config::EnvironmentConfig> config) {
  Impl::EnvState& state = impl_->envs.at(env);
  std::lock_guard lock(state.mutex);
  state.queue.Configure(config->events, Clock::now());
  state.config.store(std::move(config));
  state.rejected = false;
  state.UpdateGauges();
}

EventsStatus EventsRelay::StatusOf(std::size_t env) const {
  Impl::EnvState& state = impl_->envs.at(env);
  std::lock_guard lock(state.mutex);
  return {state.queue.settings(), state.rejected, state.queue.events(), state.queue.bytes()};
}

}  // namespace flagrelay::relay
