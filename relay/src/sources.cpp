#include "sources.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>

#include "flagrelay/protocol/sse.hpp"
#include "log.hpp"

namespace flagrelay::relay {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

using Clock = std::chrono::steady_clock;

// A stream that delivered data for this long is healthy: the next failure starts the backoff
// from the beginning again (ld-relay's rule).
constexpr auto kHealthyStreamReset = std::chrono::seconds(60);
// Upper bound of one SSE event (a `put` of a very large environment still fits).
constexpr std::size_t kMaxEventBytes = 256u << 20;

ErrorInfo MakeError(std::string kind, std::string message, int status_code = 0) {
  return ErrorInfo{std::move(kind), status_code, std::move(message), NowUnixMs()};
}

class UpstreamSource final : public DataSource, public std::enable_shared_from_this<UpstreamSource> {
 public:
  UpstreamSource(net::io_context& io, Environment& env, const config::UpstreamConfig& upstream,
                 std::string user_agent)
      : strand_(net::make_strand(io)),
        env_(env),
        config_(upstream),
        user_agent_(std::move(user_agent)),
        component_("upstream " + env.config().name),
        resolver_(strand_),
        timer_(strand_),
        parser_sse_([this](protocol::SseEvent&& event) { OnEvent(std::move(event)); },
                    kMaxEventBytes),
        rng_(std::random_device{}()) {}

  void Start() override {
    net::dispatch(strand_, [self = shared_from_this()] { self->Begin(); });
  }

  void Stop() override {
    net::dispatch(strand_, [self = shared_from_this()] {
      self->stopped_ = true;
      self->timer_.cancel();
      self->resolver_.cancel();
      if (self->stream_) self->stream_->close();
    });
  }

 private:
  void Begin() {
    const auto url = boost::urls::parse_uri(config_.stream_uri);
    if (!url || (url->scheme() != "http" && url->scheme() != "https")) {
      return GiveUp(MakeError("UNKNOWN", "upstream.streamUri is not an http(s) URL"));
    }
    if (url->scheme() == "https") {
      // TLS to the upstream arrives with the upstream-resilience work (issue 3); until then an
      // https upstream is reported clearly instead of failing in a loop.
      return GiveUp(MakeError("UNKNOWN",
                              "https upstream URLs are not supported by this build yet; use an http "
                              "upstream (e.g. another flagrelay) or a dataFile"));
    }
    host_ = url->host();
    port_ = url->has_port() ? std::string(url->port()) : "80";
    std::string base_path(url->path());
    while (!base_path.empty() && base_path.back() == '/') base_path.pop_back();
    target_ = base_path + "/all";
    host_header_ = url->has_port() ? host_ + ":" + port_ : host_;
    Connect();
  }

  void Connect() {
    if (stopped_) return;
    LogDebug(component_, "connecting to " + host_header_ + target_);
    resolver_.async_resolve(host_, port_, beast::bind_front_handler(&UpstreamSource::OnResolve,
                                                                    shared_from_this()));
  }

  void OnResolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (stopped_) return;
    if (ec) return Fail(MakeError("NETWORK_ERROR", "resolve " + host_ + ": " + ec.message()));
    stream_.emplace(strand_);
    stream_->expires_after(config_.connect_timeout);
    stream_->async_connect(results, beast::bind_front_handler(&UpstreamSource::OnConnect,
                                                              shared_from_this()));
  }

  void OnConnect(beast::error_code ec, const tcp::endpoint&) {
    if (stopped_) return;
    if (ec) return Fail(MakeError("NETWORK_ERROR", "connect " + host_header_ + ": " + ec.message()));
    beast::error_code ignored;
    stream_->socket().set_option(tcp::no_delay(true), ignored);
    request_ = {http::verb::get, target_, 11};
    request_.set(http::field::host, host_header_);
    request_.set(http::field::authorization, env_.config().sdk_key.Reveal());
    request_.set(http::field::user_agent, user_agent_);
    request_.set(http::field::accept, "text/event-stream");
    request_.set(http::field::cache_control, "no-cache");
    stream_->expires_after(config_.connect_timeout);
    http::async_write(*stream_, request_,
                      beast::bind_front_handler(&UpstreamSource::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    if (stopped_) return;
    if (ec) return Fail(MakeError("NETWORK_ERROR", "send request: " + ec.message()));
    buffer_.clear();
    parser_.emplace();
    parser_->body_limit(boost::none);  // a stream has no end; each event is bounded instead
    parser_->header_limit(64 * 1024);
    stream_->expires_after(config_.read_timeout);
    http::async_read_header(*stream_, buffer_, *parser_,
                            beast::bind_front_handler(&UpstreamSource::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, std::size_t) {
    if (stopped_) return;
    if (ec) return Fail(MakeError("NETWORK_ERROR", "read response: " + ec.message()));
    const unsigned status = parser_->get().result_int();
    if (status != 200) {
      const std::string message = "upstream answered HTTP " + std::to_string(status);
      // ld-relay's classification: these will not get better by retrying.
      const bool permanent = status >= 400 && status < 500 && status != 400 && status != 408 &&
                             status != 429;
      if (permanent) return GiveUp(MakeError("ERROR_RESPONSE", message + " (check the SDK key)",
                                             static_cast<int>(status)));
      return Fail(MakeError("ERROR_RESPONSE", message, static_cast<int>(status)));
    }
    LogInfo(component_, "stream connected");
    connected_at_ = Clock::now();
    parser_sse_.Reset();
    ReadBody();
  }

  void ReadBody() {
    parser_->get().body().data = read_buffer_.data();
    parser_->get().body().size = read_buffer_.size();
    stream_->expires_after(config_.read_timeout);  // heartbeats keep a healthy stream inside it
    http::async_read_some(*stream_, buffer_, *parser_,
                          beast::bind_front_handler(&UpstreamSource::OnBody, shared_from_this()));
  }

  void OnBody(beast::error_code ec, std::size_t) {
    if (stopped_) return;
    if (ec == http::error::need_buffer) ec = {};
    const std::size_t received = read_buffer_.size() - parser_->get().body().size;
    if (received > 0 &&
        !parser_sse_.Feed(std::string_view(read_buffer_.data(), received))) {
      return Fail(MakeError("INVALID_DATA", "an upstream event exceeded the size bound"));
    }
    if (restart_) {
      restart_ = false;
      return Fail(pending_error_);
    }
    if (ec == beast::error::timeout) {
      return Fail(MakeError("NETWORK_ERROR", "no data (not even a heartbeat) within upstream.readTimeout"));
    }
    if (ec) return Fail(MakeError("NETWORK_ERROR", "stream read: " + ec.message()));
    if (parser_->is_done()) return Fail(MakeError("NETWORK_ERROR", "upstream ended the stream"));
    ReadBody();
  }

  void OnEvent(protocol::SseEvent&& event) {
    if (restart_) return;
    auto message = protocol::ParseStreamEvent(event.name, event.data);
    if (!message) {
      // The last good data stays served; a fresh connection starts over with a full put.
      restart_ = true;
      pending_error_ = MakeError("INVALID_DATA", "malformed '" + event.name.substr(0, 32) +
                                                     "' event: " + message.error().message);
      return;
    }
    if (const auto* ignored = std::get_if<protocol::IgnoredMessage>(&*message)) {
      LogDebug(component_, "ignored event: " + ignored->reason);
      return;
    }
    const bool is_put = std::holds_alternative<protocol::PutMessage>(*message);
    env_.ApplyUpstream(std::move(*message));
    if (is_put) {
      if (!got_put_) LogInfo(component_, "received full data set");
      got_put_ = true;
      env_.SetConnectionState(ConnectionState::kValid);
    }
  }

  void Fail(ErrorInfo error) {
    if (stream_) stream_->close();
    if (stopped_) return;
    const bool was_healthy = got_put_ && Clock::now() - connected_at_ >= kHealthyStreamReset;
    if (was_healthy) attempt_ = 0;
    got_put_ = false;
    const auto state = env_.snapshot() && env_.Status().state != ConnectionState::kInitializing
                           ? ConnectionState::kInterrupted
                           : ConnectionState::kInitializing;
    const auto delay = NextDelay();
    LogWarn(component_, error.message + "; reconnecting in " + std::to_string(delay.count()) + " ms");
    env_.SetConnectionState(state, std::move(error));
    env_.metrics().upstream_reconnects->Increment();
    timer_.expires_after(delay);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->Connect();
    });
  }

  void GiveUp(ErrorInfo error) {
    if (stream_) stream_->close();
    LogError(component_, error.message + "; not retrying");
    env_.SetConnectionState(ConnectionState::kOff, std::move(error));
  }

  // min(initial * 2^attempt, max), minus a random 0-50 %, so a fleet does not reconnect in step.
  std::chrono::milliseconds NextDelay() {
    const double base = static_cast<double>(config_.initial_reconnect_delay.count());
    const double cap = static_cast<double>(config_.max_reconnect_delay.count());
    const double delay = std::min(cap, base * static_cast<double>(1ull << std::min(attempt_, 30u)));
    ++attempt_;
    std::uniform_real_distribution<double> jitter(0.0, 0.5);
    return std::chrono::milliseconds(static_cast<std::int64_t>(delay * (1.0 - jitter(rng_))));
  }

  net::strand<net::io_context::executor_type> strand_;
  Environment& env_;
  const config::UpstreamConfig& config_;
  std::string user_agent_;
  std::string component_;
  tcp::resolver resolver_;
  net::steady_timer timer_;
  std::optional<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  http::request<http::empty_body> request_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  std::array<char, 64 * 1024> read_buffer_{};
  protocol::SseParser parser_sse_;
  std::mt19937 rng_;
  std::string host_, port_, host_header_, target_;
  Clock::time_point connected_at_{};
  unsigned attempt_ = 0;
  bool got_put_ = false;
  bool restart_ = false;
  ErrorInfo pending_error_;
  bool stopped_ = false;
};

class FileSource final : public DataSource, public std::enable_shared_from_this<FileSource> {
 public:
  FileSource(net::io_context& io, Environment& env)
      : strand_(net::make_strand(io)), env_(env), timer_(strand_),
        component_("file " + env.config().name) {}

  void Start() override {
    net::dispatch(strand_, [self = shared_from_this()] { self->Poll(); });
  }

  void Stop() override {
    net::dispatch(strand_, [self = shared_from_this()] {
      self->stopped_ = true;
      self->timer_.cancel();
    });
  }

 private:
  // Bound on what a data file may hold; larger files are refused, not read.
  static constexpr std::int64_t kMaxFileBytes = 256ll << 20;

  struct Stamp {
    std::int64_t mtime_ns = -1, size = -1;
    std::uint64_t inode = 0;
    bool operator==(const Stamp&) const = default;
  };

  void Poll() {
    if (stopped_) return;
    Check();
    timer_.expires_after(env_.config().data_file_poll_interval);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->Poll();
    });
  }

  void Check() {
    const std::string& path = env_.config().data_file;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Report("cannot stat " + path + ": " + std::strerror(errno));
    const Stamp stamp{static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                      static_cast<std::int64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino)};
    if (stamp == last_) return;
    if (stamp.size > kMaxFileBytes) return Report(path + " is larger than 256 MiB; not loaded");
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) return Report("cannot read " + path);
    auto data = protocol::ParseAllData(text.str());
    if (!data) {
      // Keep the stamp: an editor may still be writing; a later change will be seen again.
      last_ = stamp;
      return Report(path + ": " + data.error().message);
    }
    last_ = stamp;
    last_problem_.clear();
    LogInfo(component_, "loaded " + path + ": " + std::to_string(data->flags.live_count()) +
                            " flags, " + std::to_string(data->segments.live_count()) + " segments");
    env_.ApplyFile(std::move(*data));
    env_.SetConnectionState(ConnectionState::kValid);
  }

  void Report(std::string problem) {
    if (problem == last_problem_) return;  // once per distinct problem, not once per poll
    last_problem_ = problem;
    LogError(component_, problem + (env_.snapshot() ? "; keeping the last good data" : ""));
    env_.SetConnectionState(env_.snapshot() ? ConnectionState::kInterrupted : ConnectionState::kInitializing,
                            MakeError("INVALID_DATA", std::move(problem)));
  }

  net::strand<net::io_context::executor_type> strand_;
  Environment& env_;
  net::steady_timer timer_;
  std::string component_;
  Stamp last_;
  std::string last_problem_;
  bool stopped_ = false;
};

// Sources are shared_ptr-owned because their pending operations keep them alive; the owner gets
// this thin handle, which stops the source when destroyed.
class SourceHandle final : public DataSource {
 public:
  explicit SourceHandle(std::shared_ptr<DataSource> source) : source_(std::move(source)) {}
  ~SourceHandle() override { source_->Stop(); }
  void Start() override { source_->Start(); }
  void Stop() override { source_->Stop(); }

 private:
  std::shared_ptr<DataSource> source_;
};

}  // namespace

std::unique_ptr<DataSource> MakeUpstreamSource(net::io_context& io, Environment& env,
                                               const config::UpstreamConfig& upstream,
                                               std::string user_agent) {
  return std::make_unique<SourceHandle>(
      std::make_shared<UpstreamSource>(io, env, upstream, std::move(user_agent)));
}

std::unique_ptr<DataSource> MakeFileSource(net::io_context& io, Environment& env) {
  return std::make_unique<SourceHandle>(std::make_shared<FileSource>(io, env));
}

}  // namespace flagrelay::relay
