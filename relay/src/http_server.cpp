#include "http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>
#include <random>
#include <vector>

#include <openssl/ssl.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/container/devector.hpp>

#include "log.hpp"

namespace flagrelay::relay {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

namespace {

// What a stream's I/O thread runs for it: the frames the publishing thread handed over.
class InboxSink {
 public:
  virtual ~InboxSink() = default;
  virtual void Deliver(const FrameBatch& frames) = 0;
};

// Hands frames from the thread that publishes changes to the streams of one I/O thread: a
// change to 10,000 streams costs one post per I/O thread, not one per stream. Streams get their
// batches in the order they were pushed. Memory is bounded by the streams' own bounds: a stream
// with maxQueueEvents batches still waiting here is cut (see SseSession::Send).
class StreamInbox : public std::enable_shared_from_this<StreamInbox> {
 public:
  explicit StreamInbox(net::io_context& io) : io_(io) {}

  void Push(std::shared_ptr<InboxSink> sink, FrameBatch frames) {
    std::lock_guard lock(mutex_);
    pending_.emplace_back(std::move(sink), std::move(frames));
    if (scheduled_) return;
    scheduled_ = true;
    net::post(io_, [self = shared_from_this()] { self->Drain(); });
  }

 private:
  // Delivers in slices so that accepts and requests on this thread are not held up by a large
  // fan-out; what was pushed meanwhile waits for the next drain.
  void Drain() {
    constexpr std::size_t kSlice = 2048;
    if (next_ == draining_.size()) {
      draining_.clear();
      next_ = 0;
      std::lock_guard lock(mutex_);
      draining_.swap(pending_);
    }
    const std::size_t end = std::min(draining_.size(), next_ + kSlice);
    for (; next_ < end; ++next_) {
      auto [sink, frames] = std::move(draining_[next_]);
      sink->Deliver(frames);
    }
    if (next_ < draining_.size()) {
      net::post(io_, [self = shared_from_this()] { self->Drain(); });
      return;
    }
    std::lock_guard lock(mutex_);
    if (pending_.empty()) {
      scheduled_ = false;
    } else {
      net::post(io_, [self = shared_from_this()] { self->Drain(); });
    }
  }

  net::io_context& io_;
  std::mutex mutex_;
  std::vector<std::pair<std::shared_ptr<InboxSink>, FrameBatch>> pending_;   // guarded
  bool scheduled_ = false;                                                   // guarded
  std::vector<std::pair<std::shared_ptr<InboxSink>, FrameBatch>> draining_;  // I/O thread only
  std::size_t next_ = 0;
};

// What every session of one server shares.
struct ServerShared {
  ServerShared(std::string server_name, HttpServer::Handler request_handler,
               const config::ListenConfig& listen, const config::StreamsConfig& stream_limits,
               std::size_t post_body_limit, metrics::RelayMetrics& relay_metrics)
      : name(std::move(server_name)),
        handler(std::move(request_handler)),
        limits(listen),
        streams(stream_limits),
        max_post_body_bytes(post_body_limit),
        metrics(relay_metrics) {}

  std::string name;
  HttpServer::Handler handler;
  config::ListenConfig limits;
  config::StreamsConfig streams;
  std::size_t max_post_body_bytes;
  metrics::RelayMetrics& metrics;
  std::atomic<std::size_t> connections{0};
  std::unique_ptr<ssl::context> tls;                  // set when the listener serves HTTPS
  std::vector<std::shared_ptr<StreamInbox>> inboxes;  // one per worker io_context, same order
};

// Counts one open connection for the cap and the gauge; moves with the socket from the HTTP
// session to the SSE session.
class ConnectionSlot {
 public:
  ConnectionSlot(std::shared_ptr<ServerShared> shared, std::size_t worker)
      : shared_(std::move(shared)), worker_(worker) {
    shared_->connections.fetch_add(1, std::memory_order_relaxed);
    shared_->metrics.http_connections().Increment();
  }
  ConnectionSlot(ConnectionSlot&&) = default;
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  ~ConnectionSlot() {
    if (!shared_) return;
    shared_->connections.fetch_sub(1, std::memory_order_relaxed);
    shared_->metrics.http_connections().Decrement();
  }
  ServerShared& shared() const { return *shared_; }
  /// The inbox of the I/O thread that runs this connection.
  StreamInbox& inbox() const { return *shared_->inboxes[worker_]; }

 private:
  std::shared_ptr<ServerShared> shared_;
  std::size_t worker_;
};

// How long a refused client's remaining body is read and discarded before the connection closes.
constexpr std::chrono::seconds kLingerTime{2};

bool IsQuietError(const beast::error_code& ec) {
  return ec == net::error::operation_aborted || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == beast::error::timeout || ec == http::error::end_of_stream;
}

// ---- reading one request: shared by HttpSession and AnswerRawRequest -------------------------

using RequestParser = http::request_parser<http::string_body>;

// The read buffer's bound: a header may fill it up to maxHeaderBytes, plus room for what follows.
std::size_t ReadBufferLimit(const config::ListenConfig& limits) {
  return limits.max_header_bytes + 64 * 1024;
}

// Beast compares a Content-Length with the body limit as soon as the header is complete, before
// the method is looked at: so the larger limit first, and the method's own in CheckHeader.
void PrepareParser(RequestParser& parser, const config::ListenConfig& limits,
                   std::size_t max_post_body_bytes) {
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.body_limit(std::max(limits.max_body_bytes, max_post_body_bytes));
}

// A request answered without the handler; the connection closes after the answer.
struct Rejection {
  unsigned status;
  std::string message;
};

HttpResponse RejectionResponse(Rejection rejection) {
  HttpResponse response;
  response.status = rejection.status;
  response.content_type = "text/plain; charset=utf-8";
  response.body = std::make_shared<const std::string>(std::move(rejection.message) + "\n");
  return response;
}

// Once the header is read, before the body: refuses a body the method does not take or one
// over the method's limit, and sets that limit for a chunked body.
std::optional<Rejection> CheckHeader(RequestParser& parser, const config::ListenConfig& limits,
                                     std::size_t max_post_body_bytes) {
  // Only methods that carry a body may send one: otherwise any client could make the relay
  // hold maxBodyBytes per connection before a credential is even looked at.
  const http::verb method = parser.get().method();
  // RFC 9112 §6.3: a Transfer-Encoding whose last coding is not chunked leaves the length
  // unknown; reading it as "no body" would take the body for the next request (smuggling).
  if (parser.get().find(http::field::transfer_encoding) != parser.get().end() &&
      !parser.chunked()) {
    return Rejection{400, "unsupported Transfer-Encoding"};
  }
  const bool takes_body =
      method == http::verb::post || method == http::verb::report || method == http::verb::put;
  if (!takes_body && (parser.chunked() || parser.content_length().value_or(0) > 0)) {
    return Rejection{413,
                     "a " + std::string(parser.get().method_string()) + " request takes no body"};
  }
  // POSTs carry analytics events, which come in larger batches than REPORT contexts.
  const std::size_t limit =
      method == http::verb::post ? max_post_body_bytes : limits.max_body_bytes;
  if (parser.content_length().value_or(0) > limit) return Rejection{413, "request body too large"};
  parser.body_limit(limit);
  return std::nullopt;
}

// What a failed read of a request becomes; nullopt when the connection just closes (the client
// went away or went quiet).
std::optional<Rejection> ReadFailure(const beast::error_code& ec) {
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return Rejection{431, "request header too large"};
  }
  if (ec == http::error::body_limit) return Rejection{413, "request body too large"};
  if (IsQuietError(ec)) return std::nullopt;
  return Rejection{400, "malformed request: " + ec.message()};
}

// The handler's view of a parsed request; it points into `req`.
HttpRequest ToHttpRequest(const http::request<http::string_body>& req) {
  HttpRequest request;
  request.method = std::string_view(req.method_string().data(), req.method_string().size());
  request.target = std::string_view(req.target().data(), req.target().size());
  auto header = [&req](http::field field) {
    auto it = req.find(field);
    return it == req.end() ? std::string_view()
                           : std::string_view(it->value().data(), it->value().size());
  };
  request.authorization = header(http::field::authorization);
  request.if_none_match = header(http::field::if_none_match);
  request.accept_encoding = header(http::field::accept_encoding);
  request.content_type = header(http::field::content_type);
  request.origin = header(http::field::origin);
  request.content_encoding = header(http::field::content_encoding);
  request.user_agent = header(http::field::user_agent);
  // Only events POSTs use them; SDK polls send them too and should not pay for the copy.
  if (req.method() == http::verb::post) {
    for (const auto& field : req) {
      const std::string_view name(field.name_string().data(), field.name_string().size());
      if (name.size() > 15 && beast::iequals(name.substr(0, 15), "x-launchdarkly-")) {
        request.launchdarkly_headers.emplace_back(
            name, std::string_view(field.value().data(), field.value().size()));
      }
    }
  }
  request.body = req.body();
  return request;
}

// Bytes already received, read the way a session reads its socket; the end reads as the client
// closing its side. For AnswerRawRequest.
class BytesStream {
 public:
  explicit BytesStream(std::string_view bytes) : bytes_(bytes) {}

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, beast::error_code& ec) {
    if (bytes_.empty()) {
      ec = net::error::eof;
      return 0;
    }
    ec = {};
    const std::size_t n = net::buffer_copy(buffers, net::buffer(bytes_.data(), bytes_.size()));
    bytes_.remove_prefix(n);
    return n;
  }
  // Beast's SyncReadStream concept wants the throwing overload too; only the one above is used.
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    beast::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

  [[nodiscard]] std::size_t unread() const { return bytes_.size(); }

 private:
  std::string_view bytes_;
};

// An SDK stream: a chunked text/event-stream response that lives until the client goes away, the
// relay shuts down, or the client falls behind its queue bound.
template <class Stream>
class SseSession final : public Subscriber,
                         public InboxSink,
                         public std::enable_shared_from_this<SseSession<Stream>> {
 public:
  using std::enable_shared_from_this<SseSession<Stream>>::shared_from_this;

  SseSession(Stream stream, ConnectionSlot slot, std::shared_ptr<Environment> env, StreamKind kind,
             metrics::SdkKind sdk, std::shared_ptr<ClientStream> client,
             std::int64_t credential_expires_unix_ms)
      : stream_(std::move(stream)),
        slot_(std::move(slot)),
        env_(std::move(env)),
        kind_(kind),
        client_(std::move(client)),
        credential_expires_unix_ms_(credential_expires_unix_ms),
        sdk_index_(static_cast<std::size_t>(sdk)),
        limits_(slot_.shared().streams),
        lifetime_timer_(beast::get_lowest_layer(stream_).get_executor()) {
    env_->metrics().streams[sdk_index_]->Increment();
    env_->metrics().stream_connections[sdk_index_]->Increment();
  }

  ~SseSession() override { env_->metrics().streams[sdk_index_]->Decrement(); }

  // `headers`: extra response headers (CORS for browser streams); without an
  // Access-Control-Allow-Origin among them, streams allow any origin, as ld-relay's do.
  void Start(unsigned http_version,
             const std::vector<std::pair<std::string, std::string>>& headers) {
    header_ = std::string(http_version == 10 ? "HTTP/1.0" : "HTTP/1.1") +
              " 200 OK\r\n"
              "Content-Type: text/event-stream; charset=utf-8\r\n"
              "Cache-Control: no-cache, no-store, must-revalidate\r\n"
              "Connection: keep-alive\r\n"
              "X-Accel-Buffering: no\r\n";
    bool has_origin = false;
    for (const auto& [name, value] : headers) {
      header_ += name + ": " + value + "\r\n";
      has_origin = has_origin || name == "Access-Control-Allow-Origin";
    }
    if (!has_origin) header_ += "Access-Control-Allow-Origin: *\r\n";
    header_ += std::string(http_version == 10 ? "" : "Transfer-Encoding: chunked\r\n") + "\r\n";
    chunked_ = http_version != 10;
    beast::error_code ignored;
    Lowest().socket().set_option(tcp::no_delay(true), ignored);
    // Writes are tried straight away (DoWrite); asynchronous operations are unaffected.
    Lowest().socket().non_blocking(true, ignored);
    std::optional<std::chrono::milliseconds> lifetime;
    if (limits_.max_connection_time.count() > 0) {
      // Up to 20% jitter, so streams opened together (after a deploy) do not all reconnect
      // together: the point of the limit is to rebalance connections, not to stampede.
      std::uniform_real_distribution<double> jitter(0.8, 1.0);
      std::mt19937 rng(std::random_device{}());
      lifetime = std::chrono::duration_cast<std::chrono::milliseconds>(limits_.max_connection_time *
                                                                       jitter(rng));
    }
    if (credential_expires_unix_ms_ != 0) {
      // Opened with a rotated-out key: it must not outlive the key.
      const std::chrono::milliseconds left(
          std::max<std::int64_t>(0, credential_expires_unix_ms_ - NowUnixMs()));
      lifetime = lifetime ? std::min(*lifetime, left) : left;
    }
    if (lifetime) {
      lifetime_timer_.expires_after(*lifetime);
      lifetime_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (!ec) self->CloseNow();
      });
    }
    DoReadSome();
    writing_ = true;
    Lowest().expires_after(limits_.write_timeout);
    net::async_write(stream_, net::buffer(header_),
                     beast::bind_front_handler(&SseSession<Stream>::OnWrite, shared_from_this()));
    env_->Subscribe(shared_from_this(), kind_);
  }

  // On the publishing thread. A stream that has not taken in maxQueueEvents batches yet is
  // already too far behind (its I/O thread is starved): it is cut when the next one arrives,
  // without growing the inbox further.
  void Send(const FrameBatch& frames) override {
    if (in_inbox_.fetch_add(1, std::memory_order_relaxed) >= limits_.max_queue_events) {
      in_inbox_.fetch_sub(1, std::memory_order_relaxed);
      overflowed_.store(true, std::memory_order_relaxed);
      return;
    }
    slot_.inbox().Push(shared_from_this(), frames);
  }

  // On this stream's I/O thread.
  void Deliver(const FrameBatch& frames) override {
    in_inbox_.fetch_sub(1, std::memory_order_relaxed);
    if (overflowed_.load(std::memory_order_relaxed)) return FellBehind();
    for (const auto& frame : *frames) {
      if (closed_) return;
      Enqueue(frame);
    }
  }

  void Close() override {
    net::post(Lowest().get_executor(), [self = shared_from_this()] { self->CloseNow(); });
  }

  void DataChanged() override {
    // Changes that arrive while an evaluation is pending are covered by it: it reads the newest
    // data, so a burst of changes costs one evaluation per stream.
    if (evaluation_pending_.exchange(true)) return;
    net::post(Lowest().get_executor(), [self = shared_from_this()] { self->Evaluate(); });
  }

 private:
  void Evaluate() {
    evaluation_pending_ = false;
    if (closed_ || !client_) return;
    std::shared_ptr<const eval::FlagData> data = env_->EvalData();
    if (!data) return;
    for (auto& frame : client_->Update(data)) Enqueue(frame);
  }

  void Enqueue(const protocol::SharedBytes& frame) {
    if (closed_) return;
    // The bound applies to what waits, not to what is being written; a frame larger than the byte
    // bound (a big `put`) is still accepted into an empty queue.
    if (!queue_.empty() && (queue_.size() + 1 > limits_.max_queue_events ||
                            queued_bytes_ + frame->size() > limits_.max_queue_bytes)) {
      return FellBehind();
    }
    queue_.push_back(frame);
    queued_bytes_ += frame->size();
    if (!writing_) DoWrite();
  }

  void FellBehind() {
    if (closed_) return;
    env_->metrics().slow_disconnects->Increment();
    LogDebug("stream " + env_->name(), "subscriber fell behind its queue bound; disconnecting");
    CloseNow();
  }

  // Writes at most kSlice bytes per write, each write with its own deadline: a slow client that
  // keeps reading gets a large `put` in full, one that stops reading is cut after writeTimeout.
  // Small frames are gathered into one write (fewer syscalls under bursts); a large frame is
  // sent in slices, each its own HTTP chunk. On plain TCP the write is first tried at once: the
  // socket buffer usually takes it all, and then there is no timer, no completion handler and no
  // allocation. Only what the socket does not take is written asynchronously.
  void DoWrite() {
    for (;;) {
      GatherWrite();
      if constexpr (std::is_same_v<Stream, PlainStream>) {
        beast::error_code ec;
        const std::size_t written = Lowest().socket().write_some(buffers_, ec);
        if (ec == net::error::would_block || ec == net::error::try_again) {
          ec = {};
        } else if (ec) {
          return WriteDone(ec);
        } else if (written == net::buffer_size(buffers_)) {
          WriteDone({});
          if (closed_ || (!large_ && queue_.empty())) return;
          continue;
        }
        DropWritten(written);
      }
      writing_ = true;
      Lowest().expires_after(limits_.write_timeout);
      net::async_write(stream_, buffers_,
                       beast::bind_front_handler(&SseSession<Stream>::OnWrite, shared_from_this()));
      return;
    }
  }

  // Fills buffers_ with the next write (moving its frames to in_flight_ or large_).
  void GatherWrite() {
    constexpr std::size_t kSlice = 256 * 1024;
    constexpr std::size_t kMaxFramesPerWrite = 64;
    buffers_.clear();
    if (!large_ && queue_.front()->size() > kSlice) {
      large_ = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= large_->size();
      large_offset_ = 0;
    }
    // Scratch sized to this write (most writes carry one frame): it stays allocated per session.
    chunk_headers_.resize(large_ ? 1 : std::min(queue_.size(), kMaxFramesPerWrite));
    buffers_.reserve(chunk_headers_.size() * 3);
    auto add = [this](std::size_t index, const char* data, std::size_t size) {
      if (chunked_) {
        const int n = std::snprintf(chunk_headers_[index].data(), chunk_headers_[index].size(),
                                    "%zx\r\n", size);
        buffers_.emplace_back(chunk_headers_[index].data(), static_cast<std::size_t>(n));
      }
      buffers_.emplace_back(data, size);
      if (chunked_) buffers_.emplace_back("\r\n", 2);
    };
    if (large_) {
      slice_ = std::min(kSlice, large_->size() - large_offset_);
      add(0, large_->data() + large_offset_, slice_);
      return;
    }
    std::size_t bytes = 0;
    while (!queue_.empty() && in_flight_.size() < kMaxFramesPerWrite &&
           (in_flight_.empty() || bytes + queue_.front()->size() <= kSlice)) {
      bytes += queue_.front()->size();
      queued_bytes_ -= queue_.front()->size();
      in_flight_.push_back(std::move(queue_.front()));
      queue_.pop_front();
      add(in_flight_.size() - 1, in_flight_.back()->data(), in_flight_.back()->size());
    }
  }

  // Removes the first `written` bytes from buffers_.
  void DropWritten(std::size_t written) {
    auto first = buffers_.begin();
    while (written > 0 && written >= first->size()) {
      written -= first->size();
      ++first;
    }
    if (written > 0) *first += written;
    buffers_.erase(buffers_.begin(), first);
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    writing_ = false;
    std::string().swap(header_);  // written (if it was this write): not needed any more
    WriteDone(ec);
    if (!closed_ && (large_ || !queue_.empty())) DoWrite();
  }

  void WriteDone(beast::error_code ec) {
    // Only now may the written frames go: until the write completes the kernel may read them.
    in_flight_.clear();
    if (ec) {
      large_.reset();
      if (!IsQuietError(ec)) LogDebug("stream " + env_->name(), "write failed: " + ec.message());
      CloseNow();
      return;
    }
    if (large_) {
      large_offset_ += slice_;
      if (large_offset_ >= large_->size()) large_.reset();
    }
  }

  // Keeps a read pending so that a client that goes away is noticed at once, not at the next
  // heartbeat. Whatever the client sends is discarded.
  void DoReadSome() {
    Lowest().expires_never();
    stream_.async_read_some(net::buffer(read_buffer_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) {
                                self->CloseNow();
                              } else {
                                self->DoReadSome();
                              }
                            });
  }

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    queue_.clear();  // waiting frames only: frames in a pending write live until OnWrite
    queued_bytes_ = 0;
    lifetime_timer_.cancel();
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Lowest().close();
  }

  Stream stream_;
  ConnectionSlot slot_;
  std::shared_ptr<Environment> env_;  // kept alive while streaming, even if a reload removed it
  StreamKind kind_;
  std::shared_ptr<ClientStream> client_;     // kEvaluated streams only
  std::int64_t credential_expires_unix_ms_;  // 0 = the credential does not expire
  std::atomic<bool> evaluation_pending_{false};
  std::size_t sdk_index_;
  const config::StreamsConfig& limits_;
  net::steady_timer lifetime_timer_;
  std::string header_;
  bool chunked_ = true;
  // Waiting to be written (bounded). A devector allocates nothing while empty, which a stream's
  // queue mostly is: frames are written as they arrive.
  boost::container::devector<protocol::SharedBytes> queue_;
  std::size_t queued_bytes_ = 0;
  std::vector<protocol::SharedBytes> in_flight_;  // small frames in the pending write
  protocol::SharedBytes large_;                   // a frame being written in slices
  std::size_t large_offset_ = 0, slice_ = 0;
  bool writing_ = false;
  bool closed_ = false;
  std::vector<net::const_buffer> buffers_;
  std::vector<std::array<char, 24>> chunk_headers_;
  std::array<char, 64> read_buffer_{};    // what clients send on a stream is discarded
  std::atomic<std::size_t> in_inbox_{0};  // batches handed over, not yet delivered
  std::atomic<bool> overflowed_{false};
};

// One HTTP/1.1 connection: reads requests one at a time (pipelined requests wait in the bounded
// buffer), answers each, and hands the socket to an SseSession when a request opens a stream.
template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  using std::enable_shared_from_this<HttpSession<Stream>>::shared_from_this;

  template <class... Args>
  HttpSession(ConnectionSlot slot, Args&&... stream_args)
      : stream_(std::forward<Args>(stream_args)...),
        slot_(std::move(slot)),
        limits_(slot_.shared().limits),
        buffer_(ReadBufferLimit(limits_)) {}

  void Run() {
    net::dispatch(Lowest().get_executor(), [self = shared_from_this()] {
      if constexpr (std::is_same_v<Stream, TlsStream>) {
        // The handshake counts against the header timeout: a client that opens TLS and stalls
        // is a slowloris too.
        self->Lowest().expires_after(self->limits_.header_timeout);
        self->stream_.async_handshake(ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) return self->Close();
          self->DoRead();
        });
      } else {
        self->DoRead();
      }
    });
  }

 private:
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  void DoRead() {
    if (buffer_.size() > 0) {
      DoReadRequest();
      return;
    }
    // Between requests, wait for the first byte with the (longer) idle timeout; the header
    // timeout starts when a request begins, which is what stops slowloris clients. A new
    // connection gets the header timeout from the start: a client that connects and says
    // nothing would otherwise hold one of maxConnections slots for the idle timeout.
    Lowest().expires_after(served_any_ ? limits_.idle_timeout : limits_.header_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->Close();
                              self->buffer_.commit(n);
                              self->DoReadRequest();
                            });
  }

  void DoReadRequest() {
    parser_.emplace();
    PrepareParser(*parser_, limits_, slot_.shared().max_post_body_bytes);
    Lowest().expires_after(limits_.header_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&HttpSession<Stream>::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, std::size_t) {
    if (ec) return OnRead(ec, 0);
    if (auto rejection = CheckHeader(*parser_, limits_, slot_.shared().max_post_body_bytes)) {
      return Reject(std::move(*rejection));
    }
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession<Stream>::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec) {
      if (auto rejection = ReadFailure(ec)) return Reject(std::move(*rejection));
      return Close();
    }
    const auto& req = parser_->get();
    HttpResponse response = slot_.shared().handler(ToHttpRequest(req));
    if (response.stream_env != nullptr) {
      auto sse = std::make_shared<SseSession<Stream>>(
          std::move(stream_), std::move(slot_), std::move(response.stream_env),
          response.stream_kind, response.stream_sdk, std::move(response.client_stream),
          response.credential_expires_unix_ms);
      sse->Start(req.version(), response.headers);
      return;
    }
    Write(std::move(response), req.keep_alive(), req.version());
  }

  void Reject(Rejection rejection) {
    linger_ = true;
    Write(RejectionResponse(std::move(rejection)), false, 11);
  }

  // RFC 9112 §9.6: after refusing a request whose body may still be arriving, stop sending but
  // read (and discard) for a bounded time, so that the client is not reset before it has read
  // the answer.
  void Linger() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Lowest().expires_after(kLingerTime);
    DiscardSome();
  }

  void DiscardSome() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) return self->Close();
                              self->DiscardSome();
                            });
  }

  void Write(HttpResponse response, bool keep_alive, unsigned version) {
    body_ = std::move(response.body);
    res_ = {};
    res_.version(version);
    res_.result(response.status);
    res_.set(http::field::server, "flagrelay");
    if (!response.content_type.empty()) res_.set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) res_.set(name, value);
    if (body_) res_.body() = http::span_body<const char>::value_type(body_->data(), body_->size());
    res_.keep_alive(keep_alive);
    // A 304 has no body, and a Content-Length on it would claim the 200 body's length (RFC 9110).
    if (response.status != 304) res_.prepare_payload();
    // A large body to a slow client may take a while; the stream write deadline is the bound.
    Lowest().expires_after(slot_.shared().streams.write_timeout);
    http::async_write(stream_, res_,
                      [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
                        // TLS has no half-close: a refused TLS client just gets the close.
                        if constexpr (std::is_same_v<Stream, PlainStream>) {
                          if (!ec && self->linger_) return self->Linger();
                        }
                        if (ec || !keep_alive) return self->Close();
                        self->served_any_ = true;
                        self->body_.reset();
                        self->DoRead();
                      });
  }

  void Close() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Lowest().close();
  }

  Stream stream_;
  ConnectionSlot slot_;
  const config::ListenConfig& limits_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::span_body<const char>> res_;
  protocol::SharedBytes body_;  // keeps the (possibly shared, cached) body alive while writing
  bool served_any_ = false;     // a request was answered: the connection may idle between requests
  bool linger_ = false;         // a refusal: drain the client's body before closing
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(net::io_context& io_context, std::vector<net::io_context*> worker_contexts,
       std::shared_ptr<ServerShared> server_shared)
      : io(io_context),
        workers(std::move(worker_contexts)),
        acceptor(io_context),
        retry_timer(io_context),
        shared(std::move(server_shared)) {
    if (workers.empty()) workers.push_back(&io);
    for (net::io_context* worker : workers)
      shared->inboxes.push_back(std::make_shared<StreamInbox>(*worker));
  }

  // Connections are spread round-robin over the workers and stay on theirs.
  void DoAccept() {
    next_worker = (next_worker + 1) % workers.size();
    acceptor.async_accept(*workers[next_worker],
                          beast::bind_front_handler(&Impl::OnAccept, shared_from_this()));
  }

  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // Typically EMFILE: back off briefly instead of spinning on a failing accept.
      LogWarn(shared->name, "accept failed: " + ec.message());
      retry_timer.expires_after(std::chrono::milliseconds(100));
      retry_timer.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
        if (!wait_ec) self->DoAccept();
      });
      return;
    }
    if (shared->connections.load(std::memory_order_relaxed) >= shared->limits.max_connections) {
      shared->metrics.http_connections_rejected().Increment();
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      if (shared->tls) {
        std::make_shared<HttpSession<TlsStream>>(ConnectionSlot(shared, next_worker),
                                                 std::move(socket), *shared->tls)
            ->Run();
      } else {
        std::make_shared<HttpSession<PlainStream>>(ConnectionSlot(shared, next_worker),
                                                   std::move(socket))
            ->Run();
      }
    }
    DoAccept();
  }

  net::io_context& io;
  std::vector<net::io_context*> workers;
  std::size_t next_worker = 0;
  tcp::acceptor acceptor;
  net::steady_timer retry_timer;
  std::shared_ptr<ServerShared> shared;
};

HttpServer::HttpServer(net::io_context& io, std::vector<net::io_context*> workers, std::string name,
                       Handler handler, const config::ListenConfig& limits,
                       const config::StreamsConfig& streams, std::size_t max_post_body_bytes,
                       metrics::RelayMetrics& metrics)
    : impl_(std::make_shared<Impl>(
          io, std::move(workers),
          std::make_shared<ServerShared>(std::move(name), std::move(handler), limits, streams,
                                         max_post_body_bytes, metrics))) {}

HttpServer::~HttpServer() = default;

void HttpServer::EnableTls(const config::TlsConfig& tls) {
  auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(context->native_handle(),
                                tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  beast::error_code ec;
  context->use_certificate_chain_file(tls.cert_file, ec);
  if (ec) throw std::runtime_error("listen.tls.certFile " + tls.cert_file + ": " + ec.message());
  context->use_private_key_file(tls.key_file, ssl::context::pem, ec);
  if (ec) throw std::runtime_error("listen.tls.keyFile " + tls.key_file + ": " + ec.message());
  impl_->shared->tls = std::move(context);
}

std::string HttpServer::Listen(const std::string& host, std::uint16_t port) {
  beast::error_code ec;
  tcp::endpoint endpoint;
  if (const auto address = net::ip::make_address(host, ec); !ec) {
    endpoint = tcp::endpoint(address, port);
  } else {  // a name such as "localhost": the first address it resolves to
    tcp::resolver resolver(impl_->io);
    const auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) return "cannot resolve listen host '" + host + "': " + ec.message();
    endpoint = results.begin()->endpoint();
  }
  auto& acceptor = impl_->acceptor;
  if (acceptor.open(endpoint.protocol(), ec); ec) return "open: " + ec.message();
  acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (acceptor.bind(endpoint, ec); ec) {
    return "cannot bind " + host + ":" + std::to_string(port) + ": " + ec.message();
  }
  if (acceptor.listen(net::socket_base::max_listen_connections, ec); ec)
    return "listen: " + ec.message();
  impl_->DoAccept();
  return {};
}

std::optional<HttpResponse> AnswerRawRequest(std::string_view bytes,
                                             const config::ListenConfig& limits,
                                             std::size_t max_post_body_bytes,
                                             const HttpServer::Handler& handler,
                                             std::size_t* consumed) {
  if (consumed != nullptr) *consumed = 0;
  BytesStream stream(bytes);
  beast::flat_buffer buffer(ReadBufferLimit(limits));
  RequestParser parser;
  PrepareParser(parser, limits, max_post_body_bytes);
  beast::error_code ec;
  http::read_header(stream, buffer, parser, ec);
  if (!ec) {
    if (auto rejection = CheckHeader(parser, limits, max_post_body_bytes)) {
      return RejectionResponse(std::move(*rejection));
    }
    http::read(stream, buffer, parser, ec);
  }
  if (ec) {
    if (auto rejection = ReadFailure(ec)) return RejectionResponse(std::move(*rejection));
    return std::nullopt;
  }
  const auto& req = parser.get();
  HttpResponse response = handler(ToHttpRequest(req));
  if (consumed != nullptr && req.keep_alive() && response.stream_env == nullptr) {
    *consumed = bytes.size() - stream.unread() - buffer.size();
  }
  return response;
}

void HttpServer::Stop() {
  net::post(impl_->acceptor.get_executor(), [impl = impl_] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    impl->retry_timer.cancel();
  });
}

}  // namespace flagrelay::relay
