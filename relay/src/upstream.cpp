// The upstream data source: one `GET {streamUri}/all` per environment, with the fault model of
// ld-relay (protocol reference §2.1–2.2) and an optional polling fallback. Written as Asio
// coroutines on one strand per environment: connect, stream, classify the failure, back off,
// repeat.

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>

#include "flagrelay/protocol/sse.hpp"
#include "log.hpp"
#include "outbound.hpp"
#include "sources.hpp"

namespace flagrelay::relay {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kAwait = net::as_tuple(net::use_awaitable);
// Bound on what Beast may buffer from the upstream besides body bytes (headers, chunk lines and
// extensions): an upstream sending an endless chunk header fails instead of growing memory.
constexpr std::size_t kMaxBufferedBytes = 1u << 20;

// Why one connection ended.
struct Failure {
  metrics::ErrorKind kind = metrics::ErrorKind::kUnknown;
  std::string message;
  int status_code = 0;
  bool permanent = false;  // do not retry (rejected key, or a URL that cannot work)
};

Failure Network(std::string message) {
  return {metrics::ErrorKind::kNetworkError, std::move(message)};
}
Failure InvalidData(std::string message) {
  return {metrics::ErrorKind::kInvalidData, std::move(message)};
}

std::string_view KindName(metrics::ErrorKind kind) {
  switch (kind) {
    case metrics::ErrorKind::kNetworkError:
      return "NETWORK_ERROR";
    case metrics::ErrorKind::kErrorResponse:
      return "ERROR_RESPONSE";
    case metrics::ErrorKind::kInvalidData:
      return "INVALID_DATA";
    case metrics::ErrorKind::kUnknown:
      break;
  }
  return "UNKNOWN";
}

// ld-relay's classification: 400, 408, 429 and 5xx may heal; any other 4xx will not.
bool IsRecoverable(unsigned status) {
  return status == 400 || status == 408 || status == 429 || status >= 500 || status < 400;
}

class UpstreamSource final : public DataSource,
                             public std::enable_shared_from_this<UpstreamSource> {
 public:
  UpstreamSource(net::io_context& io, std::shared_ptr<Environment> env,
                 const config::UpstreamConfig& config, std::shared_ptr<Outbound> outbound,
                 std::string user_agent)
      : strand_(net::make_strand(io)),
        env_(std::move(env)),
        config_(config),
        outbound_(std::move(outbound)),
        user_agent_(std::move(user_agent)),
        component_("upstream " + env_->name()),
        retry_timer_(strand_),
        poll_timer_(strand_),
        sse_([this](protocol::SseEvent&& event) { OnEvent(std::move(event)); },
             config.max_event_bytes),
        rng_(std::random_device{}()) {}

  void Start() override {
    net::co_spawn(
        strand_, [self = shared_from_this()] { return self->Run(); }, net::detached);
  }

  void Stop() override {
    net::dispatch(strand_, [self = shared_from_this()] {
      self->stopped_ = true;
      self->polling_ = false;
      self->retry_timer_.cancel();
      self->poll_timer_.cancel();
      if (self->stream_connection_) self->stream_connection_->Close();
      if (self->poll_connection_) self->poll_connection_->Close();
    });
  }

 private:
  net::awaitable<void> Run() {
    const auto stream_target = ParseTarget(config_.stream_uri);
    const auto poll_target = ParseTarget(config_.base_uri);
    if (!stream_target || !poll_target) {
      GiveUp({metrics::ErrorKind::kUnknown, "upstream.streamUri/baseUri is not an http(s) URL", 0,
              true});
      co_return;
    }
    stream_target_ = *stream_target;
    poll_target_ = *poll_target;
    if (auto proxy = outbound_->ProxyFor(stream_target_)) {
      LogInfo(component_, "connecting through an HTTP proxy");
    }
    while (!stopped_) {
      stream_connection_ = std::make_shared<Connection>(strand_);
      Failure failure = co_await StreamOnce(*stream_connection_);
      stream_connection_->Close();
      stream_connection_.reset();
      if (stopped_) co_return;
      if (failure.permanent) {
        GiveUp(std::move(failure));
        co_return;
      }
      const auto delay = OnFailure(std::move(failure));
      MaybeStartPolling();
      retry_timer_.expires_after(delay);
      co_await retry_timer_.async_wait(kAwait);
    }
  }

  net::awaitable<Failure> StreamOnce(Connection& connection) {
    LogDebug(component_,
             "connecting to " + stream_target_.HostHeader() + stream_target_.base_path + "/all");
    if (std::string error =
            co_await outbound_->Connect(stream_target_, connection, config_.connect_timeout);
        !error.empty()) {
      co_return Network(std::move(error));
    }
    if (stopped_) co_return Failure{};
    co_return co_await connection.Visit([this](auto& stream) { return ReadStream(stream); });
  }

  template <class Stream>
  net::awaitable<Failure> ReadStream(Stream& stream) {
    http::request<http::empty_body> request{http::verb::get, stream_target_.base_path + "/all", 11};
    SetCommonHeaders(request, stream_target_);
    request.set(http::field::accept, "text/event-stream");
    request.set(http::field::cache_control, "no-cache");
    beast::get_lowest_layer(stream).expires_after(config_.connect_timeout);
    if (auto [ec, n] = co_await http::async_write(stream, request, kAwait); ec) {
      co_return Network("send request: " + ec.message());
    }

    beast::flat_buffer buffer(kMaxBufferedBytes);
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);  // a stream has no end; each event is bounded instead
    parser.header_limit(64 * 1024);
    beast::get_lowest_layer(stream).expires_after(config_.read_timeout);
    if (auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kAwait); ec) {
      co_return Network(ec == beast::error::timeout ? "no response within upstream.readTimeout"
                                                    : "read response: " + ec.message());
    }
    env_->NoteActivity();
    if (const unsigned status = parser.get().result_int(); status != 200) {
      Failure failure{metrics::ErrorKind::kErrorResponse,
                      "upstream answered HTTP " + std::to_string(status), static_cast<int>(status),
                      !IsRecoverable(status)};
      if (status == 401 || status == 403) failure.message += " (the SDK key was rejected)";
      co_return failure;
    }
    LogInfo(component_, "stream connected");
    connected_at_ = Clock::now();
    ++connection_id_;
    sse_.Reset();
    invalid_.reset();

    std::array<char, 64 * 1024> chunk;
    while (!stopped_) {
      parser.get().body().data = chunk.data();
      parser.get().body().size = chunk.size();
      beast::get_lowest_layer(stream).expires_after(config_.read_timeout);
      auto [ec, n] = co_await http::async_read_some(stream, buffer, parser, kAwait);
      if (ec == http::error::need_buffer) ec = {};
      const std::size_t received = chunk.size() - parser.get().body().size;
      if (received > 0) {
        env_->NoteActivity();
        if (!sse_.Feed(std::string_view(chunk.data(), received))) {
          co_return InvalidData("an event exceeded upstream.maxEventBytes (" +
                                std::to_string(config_.max_event_bytes) + " bytes)");
        }
        if (invalid_) co_return std::move(*invalid_);
      }
      if (ec == beast::error::timeout) {
        co_return Network("no data (not even a heartbeat) within upstream.readTimeout");
      }
      if (ec) co_return Network("stream read: " + ec.message());
      if (parser.is_done()) co_return Network("upstream ended the stream");
    }
    co_return Failure{};
  }

  void OnEvent(protocol::SseEvent&& event) {
    if (invalid_) return;  // the connection is being abandoned; nothing more from it applies
    auto message = protocol::ParseStreamEvent(event.name, event.data);
    if (!message) {
      invalid_ = InvalidData("malformed '" + event.name.substr(0, 32) +
                             "' event: " + message.error().message);
      return;
    }
    if (const auto* ignored = std::get_if<protocol::IgnoredMessage>(&*message)) {
      LogDebug(component_, "ignored event: " + ignored->reason);
      return;
    }
    const bool is_put = std::holds_alternative<protocol::PutMessage>(*message);
    env_->ApplyUpstream(std::move(*message),
                        is_put ? OnPublished([id = connection_id_](UpstreamSource& self) {
                          // VALID once this connection's put is served, unless the connection
                          // failed meanwhile.
                          return id == self.connection_id_ && self.stream_healthy_;
                        })
                               : Environment::Published{});
    if (is_put) {
      if (!stream_healthy_) LogInfo(component_, "received full data set");
      stream_healthy_ = true;
      failing_since_.reset();
      if (polling_) {
        LogInfo(component_, "stream is back; polling stops");
        StopPolling();
      }
      env_->SetMode(SourceMode::kStreaming);
      // The environment turns VALID when it publishes this put (after the cache commit).
    }
  }

  // Records a failed connection and returns the delay before the next attempt.
  config::Duration OnFailure(Failure failure) {
    const auto now = Clock::now();
    if (stream_healthy_ && now - connected_at_ >= config_.reconnect_reset_after) attempt_ = 0;
    stream_healthy_ = false;
    if (!failing_since_) failing_since_ = now;
    // The first upstream answer decides whether cached data is worth serving: it is now.
    env_->ReleaseCache();
    const auto delay = NextDelay();
    LogWarn(component_,
            failure.message + "; reconnecting in " + std::to_string(delay.count()) + " ms");
    env_->metrics().Reconnects(failure.kind).Increment();
    const bool serving_live = env_->has_live_data();
    if (!polling_healthy_) {
      env_->SetConnectionState(
          serving_live ? ConnectionState::kInterrupted : ConnectionState::kInitializing,
          ErrorFrom(failure));
    } else {
      env_->SetConnectionState(ConnectionState::kValid, ErrorFrom(failure));
    }
    return delay;
  }

  void GiveUp(Failure failure) {
    LogError(component_, failure.message + "; not retrying");
    // As ld-relay: an environment whose upstream refused it for good (401, 403, 404, ...) answers
    // its SDKs 401 too, rather than serving data nobody can refresh under that key.
    if (failure.status_code != 0) env_->MarkCredentialRejected();
    env_->ReleaseCache();
    env_->SetMode(SourceMode::kOff);
    env_->SetConnectionState(ConnectionState::kOff, ErrorFrom(failure));
    StopPolling();
  }

  void StopPolling() {
    polling_ = false;
    polling_healthy_ = false;
    poll_timer_.cancel();
    if (poll_connection_) poll_connection_->Close();  // a poll in flight ends now
  }

  // A callback for Environment::Apply*: once the change is served, back on this strand, reports
  // VALID if `still_current(*this)` holds then.
  template <class Check>
  Environment::Published OnPublished(Check still_current) {
    return [self = shared_from_this(), still_current] {
      net::post(self->strand_, [self, still_current] {
        if (!self->stopped_ && still_current(*self))
          self->env_->SetConnectionState(ConnectionState::kValid);
      });
    };
  }

  static ErrorInfo ErrorFrom(const Failure& failure) {
    return ErrorInfo{std::string(KindName(failure.kind)), failure.status_code, failure.message,
                     NowUnixMs()};
  }

  // min(initial * 2^attempt, max), minus a random 0-50 %, so a fleet does not reconnect in step.
  config::Duration NextDelay() {
    const double base = static_cast<double>(config_.initial_reconnect_delay.count());
    const double cap = static_cast<double>(config_.max_reconnect_delay.count());
    const double delay = std::min(cap, base * static_cast<double>(1ull << std::min(attempt_, 30u)));
    ++attempt_;
    std::uniform_real_distribution<double> jitter(0.0, 0.5);
    return config::Duration(static_cast<std::int64_t>(delay * (1.0 - jitter(rng_))));
  }

  void MaybeStartPolling() {
    const auto& fallback = config_.polling_fallback;
    if (!fallback.enabled || polling_ || stopped_ || !failing_since_ ||
        Clock::now() - *failing_since_ < fallback.after) {
      return;
    }
    polling_ = true;
    if (poll_loop_running_) return;  // a loop still finishing its last poll carries on
    LogWarn(component_, "streaming has failed for " +
                            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                               Clock::now() - *failing_since_)
                                               .count()) +
                            " s; polling " + poll_target_.HostHeader() + poll_target_.base_path +
                            "/sdk/latest-all until it is back");
    net::co_spawn(
        strand_, [self = shared_from_this()] { return self->PollLoop(); }, net::detached);
  }

  // At most one runs (poll_loop_running_); it owns each poll's connection and publishes it in
  // poll_connection_ only so that StopPolling/Stop can close it.
  net::awaitable<void> PollLoop() {
    poll_loop_running_ = true;
    while (polling_ && !stopped_) {
      auto connection = std::make_shared<Connection>(strand_);
      poll_connection_ = connection;
      co_await PollOnce(*connection);
      connection->Close();
      poll_connection_.reset();
      if (!polling_ || stopped_) break;
      poll_timer_.expires_after(config_.polling_fallback.interval);
      co_await poll_timer_.async_wait(kAwait);
    }
    poll_loop_running_ = false;
  }

  net::awaitable<void> PollOnce(Connection& connection) {
    if (std::string error =
            co_await outbound_->Connect(poll_target_, connection, config_.connect_timeout);
        !error.empty()) {
      PollFailed(Network(std::move(error)));
      co_return;
    }
    co_await connection.Visit([this](auto& stream) { return Poll(stream); });
  }

  template <class Stream>
  net::awaitable<void> Poll(Stream& stream) {
    http::request<http::empty_body> request{http::verb::get,
                                            poll_target_.base_path + "/sdk/latest-all", 11};
    SetCommonHeaders(request, poll_target_);
    request.set(http::field::accept_encoding, "gzip");
    if (!poll_etag_.empty()) request.set(http::field::if_none_match, poll_etag_);
    beast::get_lowest_layer(stream).expires_after(config_.connect_timeout);
    if (auto [ec, n] = co_await http::async_write(stream, request, kAwait); ec) {
      co_return PollFailed(Network("poll: send request: " + ec.message()));
    }
    beast::flat_buffer buffer(kMaxBufferedBytes);
    http::response_parser<http::string_body> parser;
    parser.body_limit(config_.max_event_bytes);
    beast::get_lowest_layer(stream).expires_after(config_.read_timeout);
    if (auto [ec, n] = co_await http::async_read(stream, buffer, parser, kAwait); ec) {
      co_return PollFailed(Network("poll: read response: " + ec.message()));
    }
    if (!polling_ || stopped_) co_return;
    env_->NoteActivity();
    auto& response = parser.get();
    const unsigned status = response.result_int();
    if (status == 304) {
      env_->metrics().Polls(metrics::PollResult::kNotModified).Increment();
      PollSucceeded();
      env_->SetConnectionState(ConnectionState::kValid);  // the data served is the upstream's
      co_return;
    }
    if (status != 200) {
      co_return PollFailed({metrics::ErrorKind::kErrorResponse,
                            "poll: upstream answered HTTP " + std::to_string(status),
                            static_cast<int>(status)});
    }
    std::string body = std::move(response.body());
    if (auto it = response.find(http::field::content_encoding);
        it != response.end() && it->value() == "gzip") {
      auto inflated = protocol::GzipDecompress(body, config_.max_event_bytes);
      if (!inflated) co_return PollFailed(InvalidData("poll: malformed or oversized gzip body"));
      body = std::move(*inflated);
    }
    auto data = protocol::ParseAllData(body);
    if (!data) co_return PollFailed(InvalidData("poll: " + data.error().message));
    if (auto it = response.find(http::field::etag); it != response.end()) {
      poll_etag_ = std::string(it->value());
    } else {
      poll_etag_.clear();
    }
    env_->metrics().Polls(metrics::PollResult::kOk).Increment();
    env_->ApplyUpstream(protocol::Message{std::move(*data)}, OnPublished([](UpstreamSource& self) {
                          return self.polling_ && self.polling_healthy_;
                        }));
    PollSucceeded();
  }

  // A 200 poll turns the environment VALID when its data is published (like a streamed put).
  void PollSucceeded() {
    if (!polling_healthy_) LogInfo(component_, "polling delivers data");
    polling_healthy_ = true;
    env_->SetMode(SourceMode::kPolling);
  }

  void PollFailed(Failure failure) {
    if (!polling_ || stopped_) return;  // polling was stopped: the stream owns the state again
    env_->metrics().Polls(metrics::PollResult::kError).Increment();
    LogWarn(component_, failure.message);
    polling_healthy_ = false;
    env_->SetConnectionState(
        env_->has_live_data() ? ConnectionState::kInterrupted : ConnectionState::kInitializing,
        ErrorFrom(failure));
  }

  void SetCommonHeaders(http::request<http::empty_body>& request, const Target& target) const {
    request.set(http::field::host, target.HostHeader());
    request.set(http::field::authorization, env_->config()->sdk_key.Reveal());
    request.set(http::field::user_agent, user_agent_);
  }

  net::strand<net::io_context::executor_type> strand_;
  std::shared_ptr<Environment> env_;
  const config::UpstreamConfig& config_;
  std::shared_ptr<Outbound> outbound_;
  std::string user_agent_;
  std::string component_;
  Target stream_target_, poll_target_;
  net::steady_timer retry_timer_, poll_timer_;
  std::shared_ptr<Connection> stream_connection_, poll_connection_;
  protocol::SseParser sse_;
  std::optional<Failure> invalid_;  // set by OnEvent: the current connection must be abandoned
  std::mt19937 rng_;
  Clock::time_point connected_at_{};
  std::optional<Clock::time_point> failing_since_;
  unsigned attempt_ = 0;
  std::uint64_t connection_id_ = 0;  // counts stream connections that got a 200
  bool stream_healthy_ = false;      // a put arrived on the current connection
  bool polling_ = false;
  bool poll_loop_running_ = false;
  bool polling_healthy_ = false;
  std::string poll_etag_;
  bool stopped_ = false;
};

}  // namespace

std::shared_ptr<Outbound> MakeOutbound(const config::UpstreamConfig& upstream,
                                       const config::ProxyConfig& proxy) {
  return std::make_shared<Outbound>(upstream, proxy);
}

std::unique_ptr<DataSource> MakeUpstreamSource(net::io_context& io,
                                               std::shared_ptr<Environment> env,
                                               const config::UpstreamConfig& upstream,
                                               std::shared_ptr<Outbound> outbound,
                                               std::string user_agent) {
  return std::make_unique<SourceHandle>(std::make_shared<UpstreamSource>(
      io, env, upstream, std::move(outbound), std::move(user_agent)));
}

}  // namespace flagrelay::relay
