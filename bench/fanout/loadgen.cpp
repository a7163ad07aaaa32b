// flagrelay_loadgen: the fan-out load generator (issue 7). One process plays the upstream and the
// SDKs, so every latency is read off one clock:
//
//   - `--upstream PORT`: a LaunchDarkly-style stream server the relay connects to (`GET .../all`
//     gets a `put`, then the patches), or with `--grip` the origin behind Pushpin (each subscribe
//     request gets Grip headers and the same `put`);
//   - `--subscribers N`: SSE subscriptions to `--target HOST:PORT` + `--path`, bound round-robin
//     to the `--sources` loopback addresses (one address has about 28,000 ports towards a target);
//   - `--patches K`: once every subscriber has its `put`, K patches of one flag, `--interval-ms`
//     apart, each carrying its send time (in its `salt`), written to the upstream connections or
//     POSTed to Pushpin's publish endpoint (`--publish HOST:PORT`).
//
// It reports connect time (connect start to the whole `put` read), errors, and per delivery
// (patch, subscriber) the latency from send to the end of the event at the subscriber:
// p50/p99/max, pooled over all patches, and losses. `--json` prints one JSON line for scripts.
//
// Reading is cheap on purpose: each socket waits for readability and is then drained into a
// per-thread buffer; chunked framing and SSE lines are parsed by small state machines, and only
// `patch` events are scanned for their timestamp (a 1 MB `put` is skipped with memchr).
//
// Traffic goes to the given target and sources only; run it on loopback.

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Options {
  std::string target_host = "127.0.0.1";
  std::uint16_t target_port = 0;
  std::string path = "/all";
  std::string auth;
  std::vector<std::string> sources{"127.0.0.1"};
  int subscribers = 0;
  double connect_rate = 0;  // connections per second; 0 = all at once
  int threads = 1;
  std::uint16_t upstream_port = 0;
  bool grip = false;
  std::string publish_host;
  std::uint16_t publish_port = 0;
  std::string channel = "bench";
  int flags = 10;
  std::size_t put_bytes = 0;
  int patches = 0;
  int interval_ms = 200;
  double hold_seconds = 0;
  double connect_timeout = 60;
  double delivery_timeout = 10;
  int wait_upstream = 0;  // wait for this many upstream connections before subscribing
  bool json = false;
};

[[noreturn]] void Usage(const std::string& problem) {
  std::cerr << "flagrelay_loadgen: " << problem
            << "\nsee the comment at the top of bench/fanout/loadgen.cpp\n";
  std::exit(2);
}

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, sep);)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

std::pair<std::string, std::uint16_t> HostPort(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) Usage("expected HOST:PORT, got " + text);
  return {text.substr(0, colon), static_cast<std::uint16_t>(std::stoi(text.substr(colon + 1)))};
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--target") {
      std::tie(o.target_host, o.target_port) = HostPort(value());
    } else if (arg == "--path") {
      o.path = value();
    } else if (arg == "--auth") {
      o.auth = value();
    } else if (arg == "--sources") {
      o.sources = Split(value(), ',');
    } else if (arg == "--subscribers") {
      o.subscribers = std::stoi(value());
    } else if (arg == "--connect-rate") {
      o.connect_rate = std::stod(value());
    } else if (arg == "--threads") {
      o.threads = std::max(1, std::stoi(value()));
    } else if (arg == "--upstream") {
      o.upstream_port = static_cast<std::uint16_t>(std::stoi(value()));
    } else if (arg == "--grip") {
      o.grip = true;
    } else if (arg == "--publish") {
      std::tie(o.publish_host, o.publish_port) = HostPort(value());
    } else if (arg == "--channel") {
      o.channel = value();
    } else if (arg == "--flags") {
      o.flags = std::max(1, std::stoi(value()));
    } else if (arg == "--put-bytes") {
      o.put_bytes = std::stoull(value());
    } else if (arg == "--patches") {
      o.patches = std::stoi(value());
    } else if (arg == "--interval-ms") {
      o.interval_ms = std::stoi(value());
    } else if (arg == "--hold-seconds") {
      o.hold_seconds = std::stod(value());
    } else if (arg == "--connect-timeout") {
      o.connect_timeout = std::stod(value());
    } else if (arg == "--delivery-timeout") {
      o.delivery_timeout = std::stod(value());
    } else if (arg == "--wait-upstream") {
      o.wait_upstream = std::stoi(value());
    } else if (arg == "--json") {
      o.json = true;
    } else {
      Usage("unknown argument " + arg);
    }
  }
  if (o.subscribers > 0 && o.target_port == 0) Usage("--subscribers needs --target");
  if (o.patches > 0 && o.upstream_port == 0) Usage("--patches needs --upstream");
  if (o.grip && o.publish_port == 0) Usage("--grip needs --publish");
  return o;
}

// ---- the data ---------------------------------------------------------------------------------

std::string Flag(const std::string& key, std::uint64_t version, const std::string& salt,
                 const std::string& padding) {
  return R"({"key":")" + key + R"(","version":)" + std::to_string(version) +
         R"(,"on":true,"variations":[")" + padding +
         R"(",false],"fallthrough":{"variation":0},"offVariation":1,"targets":[],"rules":[],)"
         R"("prerequisites":[],"salt":")" +
         salt + R"(","trackEvents":false,"deleted":false})";
}

// The `put` event: `--flags` flags (padded to about `--put-bytes` in all) plus the flag "bench"
// that the patches change.
std::string PutEvent(const Options& o) {
  const std::size_t pad = o.put_bytes / static_cast<std::size_t>(o.flags);
  const std::size_t overhead = Flag("f0", 1, "s", "").size();
  const std::string padding(pad > overhead ? pad - overhead : 1, 'x');
  std::string flags = R"("bench":)" + Flag("bench", 1, "ts-0", "a");
  for (int i = 0; i < o.flags; ++i)
    flags += ",\"f" + std::to_string(i) + "\":" + Flag("f" + std::to_string(i), 1, "s", padding);
  return "event: put\ndata: {\"path\":\"/\",\"data\":{\"flags\":{" + flags +
         "},\"segments\":{}}}\n\n";
}

std::string PatchEvent(std::uint64_t version, std::int64_t sent_ns) {
  return "event: patch\ndata: {\"path\":\"/flags/bench\",\"data\":" +
         Flag("bench", version, "ts-" + std::to_string(sent_ns), "b") + "}\n\n";
}

std::string JsonEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// ---- the SDK side -----------------------------------------------------------------------------

struct Delivery {
  std::int64_t sent_ns;
  std::int64_t arrived_ns;
};

enum class Failure { kNone, kConnect, kStatus, kClosedBeforePut, kClosedAfterPut, kProtocol };

const char* Describe(Failure f) {
  switch (f) {
    case Failure::kNone:
      return "none";
    case Failure::kConnect:
      return "connect failed";
    case Failure::kStatus:
      return "non-200 answer";
    case Failure::kClosedBeforePut:
      return "closed before the put";
    case Failure::kClosedAfterPut:
      return "closed after the put";
    case Failure::kProtocol:
      return "malformed response";
  }
  return "?";
}

struct Totals {
  std::atomic<int> puts{0};
  std::atomic<int> failed{0};
  std::atomic<long> deliveries{0};
};

class Subscriber {
 public:
  Subscriber(net::io_context& io, const Options& o, const std::string& request, Totals& totals,
             std::size_t expected_patches)
      : socket_(io), options_(o), request_(request), totals_(totals) {
    deliveries_.reserve(expected_patches);
  }

  void Start(const std::string& source) {
    start_ns_ = NowNs();
    boost::system::error_code ec;
    socket_.open(tcp::v4(), ec);
    if (!ec) {
      // Defer the port choice to connect(): ports are then unique per (source, target), not per
      // source, and one source address serves more than one target.
      const int one = 1;
      ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      socket_.bind(tcp::endpoint(net::ip::make_address(source), 0), ec);
    }
    if (ec) return Fail(Failure::kConnect, ec.message());
    const tcp::endpoint target(net::ip::make_address(options_.target_host), options_.target_port);
    socket_.async_connect(target, [this](boost::system::error_code error) {
      if (error) return Fail(Failure::kConnect, error.message());
      net::async_write(socket_, net::buffer(request_),
                       [this](boost::system::error_code werror, std::size_t) {
                         if (werror) return Fail(Failure::kConnect, werror.message());
                         socket_.non_blocking(true);
                         WaitReadable();
                       });
    });
  }

  [[nodiscard]] Failure failure() const { return failure_; }
  [[nodiscard]] const std::string& failure_detail() const { return failure_detail_; }
  [[nodiscard]] std::int64_t connect_ns() const { return put_ns_ ? put_ns_ - start_ns_ : -1; }
  [[nodiscard]] const std::vector<Delivery>& deliveries() const { return deliveries_; }

  void Close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  void WaitReadable() {
    socket_.async_wait(tcp::socket::wait_read, [this](boost::system::error_code ec) {
      if (ec)
        return Fail(put_ns_ ? Failure::kClosedAfterPut : Failure::kClosedBeforePut, ec.message());
      Drain();
    });
  }

  void Drain() {
    thread_local std::vector<char> buffer(256 * 1024);
    for (;;) {
      boost::system::error_code ec;
      const std::size_t n = socket_.read_some(net::buffer(buffer), ec);
      if (ec == net::error::would_block) return WaitReadable();
      if (ec) {
        return Fail(put_ns_ ? Failure::kClosedAfterPut : Failure::kClosedBeforePut, ec.message());
      }
      now_ns_ = NowNs();
      if (!Consume(buffer.data(), n)) return;
      if (n < buffer.size()) return WaitReadable();
    }
  }

  // ---- HTTP: status line and headers, then the body (chunked or not)
  bool Consume(const char* p, std::size_t n) {
    if (!in_body_) {
      const std::size_t take = std::min(n, std::size_t{16384});
      head_.append(p, take);
      const auto end = head_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (head_.size() >= 16384) return Fail(Failure::kProtocol, "headers too long"), false;
        return true;
      }
      if (head_.compare(0, 9, "HTTP/1.1 ") != 0 && head_.compare(0, 9, "HTTP/1.0 ") != 0)
        return Fail(Failure::kProtocol, head_.substr(0, 40)), false;
      if (head_.compare(9, 3, "200") != 0)
        return Fail(Failure::kStatus, head_.substr(0, head_.find('\r'))), false;
      std::string lower(head_, 0, end);
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      chunked_ = lower.find("transfer-encoding: chunked") != std::string::npos;
      const std::size_t body_start = end + 4;
      const std::size_t in_head = head_.size() - body_start;  // body bytes already in head_
      const std::size_t consumed_here = take - in_head;
      std::string{}.swap(head_);
      in_body_ = true;
      return Body(p + consumed_here, n - consumed_here);
    }
    return Body(p, n);
  }

  bool Body(const char* p, std::size_t n) {
    if (!chunked_) return Sse(p, n), true;
    while (n > 0) {
      switch (chunk_state_) {
        case ChunkState::kSize: {
          const char c = *p++;
          --n;
          if (c == '\r') break;
          if (c == '\n') {
            chunk_state_ = chunk_left_ == 0 ? ChunkState::kTrailer : ChunkState::kData;
            break;
          }
          if (c == ';') {
            chunk_state_ = ChunkState::kExtension;
            break;
          }
          int digit = -1;
          if (c >= '0' && c <= '9') digit = c - '0';
          if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
          if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
          if (digit < 0) return Fail(Failure::kProtocol, "bad chunk size"), false;
          chunk_left_ = chunk_left_ * 16 + static_cast<std::size_t>(digit);
          break;
        }
        case ChunkState::kExtension:
          if (*p == '\n')
            chunk_state_ = chunk_left_ == 0 ? ChunkState::kTrailer : ChunkState::kData;
          ++p;
          --n;
          break;
        case ChunkState::kData: {
          const std::size_t take = std::min(n, chunk_left_);
          Sse(p, take);
          p += take;
          n -= take;
          chunk_left_ -= take;
          if (chunk_left_ == 0) chunk_state_ = ChunkState::kDataEnd;
          break;
        }
        case ChunkState::kDataEnd:  // the CRLF after the chunk's data
          if (*p == '\n') chunk_state_ = ChunkState::kSize;
          ++p;
          --n;
          break;
        case ChunkState::kTrailer:  // the last chunk: the stream is over
          return Fail(put_ns_ ? Failure::kClosedAfterPut : Failure::kClosedBeforePut,
                      "end of stream"),
                 false;
      }
    }
    return true;
  }

  // ---- SSE: lines; `event:` names the event, a blank line dispatches it
  void Sse(const char* p, std::size_t n) {
    const char* end = p + n;
    while (p < end) {
      if (line_ == Line::kSkip || (line_ == Line::kData && !patch_)) {
        const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
        if (!nl) return;
        p = static_cast<const char*>(nl);
      }
      const char c = *p++;
      if (c == '\n') {
        EndLine();
        continue;
      }
      if (c == '\r') continue;
      ++line_length_;
      switch (line_) {
        case Line::kStart:
          prefix_[prefix_length_++] = c;
          if (prefix_length_ == 6 && std::memcmp(prefix_, "event:", 6) == 0) {
            line_ = Line::kEventName;
            name_length_ = 0;
          } else if (prefix_length_ == 5 && std::memcmp(prefix_, "data:", 5) == 0) {
            line_ = Line::kData;
            match_ = 0;
          } else if (prefix_length_ >= 6 || c == ':') {
            line_ = Line::kSkip;
          }
          break;
        case Line::kEventName:
          if (c == ' ' && name_length_ == 0) break;
          if (name_length_ < sizeof name_) name_[name_length_++] = c;
          patch_ = name_length_ == 5 && std::memcmp(name_, "patch", 5) == 0;
          break;
        case Line::kData:  // a patch's data: find `"ts-<digits>`
          if (match_ < 4) {
            static constexpr char kMarker[] = "\"ts-";
            match_ = c == kMarker[match_] ? match_ + 1 : (c == '"' ? 1 : 0);
            if (match_ == 4) stamp_ = 0;
          } else if (match_ == 4) {
            if (c >= '0' && c <= '9') {
              stamp_ = stamp_ * 10 + (c - '0');
            } else {
              match_ = 5;  // done with this line
            }
          }
          break;
        case Line::kSkip:
          break;
      }
    }
  }

  void EndLine() {
    if (line_length_ == 0) Dispatch();
    line_ = Line::kStart;
    line_length_ = 0;
    prefix_length_ = 0;
  }

  void Dispatch() {
    if (name_length_ == 3 && std::memcmp(name_, "put", 3) == 0) {
      if (put_ns_ == 0) {
        put_ns_ = now_ns_;
        totals_.puts.fetch_add(1);
      }
    } else if (patch_ && stamp_ > 0) {
      deliveries_.push_back({stamp_, now_ns_});
      totals_.deliveries.fetch_add(1, std::memory_order_relaxed);
    }
    name_length_ = 0;
    patch_ = false;
    stamp_ = 0;
  }

  void Fail(Failure failure, const std::string& detail) {
    if (failure_ == Failure::kNone) {
      failure_ = failure;
      failure_detail_ = detail;
      totals_.failed.fetch_add(1);
    }
    Close();
  }

  enum class ChunkState : std::uint8_t { kSize, kExtension, kData, kDataEnd, kTrailer };
  enum class Line : std::uint8_t { kStart, kEventName, kData, kSkip };

  tcp::socket socket_;
  const Options& options_;
  const std::string& request_;
  Totals& totals_;
  std::int64_t start_ns_ = 0, put_ns_ = 0, now_ns_ = 0;
  Failure failure_ = Failure::kNone;
  std::string failure_detail_;
  std::string head_;
  bool in_body_ = false, chunked_ = false;
  ChunkState chunk_state_ = ChunkState::kSize;
  std::size_t chunk_left_ = 0;
  Line line_ = Line::kStart;
  std::size_t line_length_ = 0;
  char prefix_[8]{};
  std::size_t prefix_length_ = 0;
  char name_[8]{};
  std::size_t name_length_ = 0;
  bool patch_ = false;
  int match_ = 0;
  std::int64_t stamp_ = 0;
  std::vector<Delivery> deliveries_;
};

// ---- the upstream side ------------------------------------------------------------------------

// Serves the relay's upstream stream (`put`, then patches written by Broadcast), or, with grip,
// answers Pushpin's subscribe requests (keep-alive, one `put` per request, held by Pushpin).
class Upstream {
 public:
  Upstream(net::io_context& io, const Options& o)
      : acceptor_(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), o.upstream_port)),
        grip_(o.grip),
        channel_(o.channel),
        put_(PutEvent(o)) {
    Accept();
  }

  [[nodiscard]] int connections() const { return accepted_.load(); }
  [[nodiscard]] int streams() const { return streams_.load(); }
  [[nodiscard]] std::size_t put_bytes() const { return put_.size(); }

  // Writes `event` to every upstream stream (relay mode), blocking. Called only once the relay
  // has the whole `put` (every subscriber has it), so no other write is pending on the sockets.
  void Broadcast(const std::string& event) {
    std::lock_guard lock(mutex_);
    for (auto& conn : conns_) {
      boost::system::error_code ignored;
      net::write(*conn->socket, net::buffer(event), ignored);
    }
  }

 private:
  struct Conn {
    std::unique_ptr<tcp::socket> socket;
    net::streambuf request;
    std::string response;
  };

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      accepted_.fetch_add(1);
      auto conn = std::make_shared<Conn>();
      conn->socket = std::make_unique<tcp::socket>(std::move(socket));
      ReadRequest(conn);
      Accept();
    });
  }

  void ReadRequest(const std::shared_ptr<Conn>& conn) {
    net::async_read_until(
        *conn->socket, conn->request, "\r\n\r\n",
        [this, conn](boost::system::error_code ec, std::size_t n) {
          if (ec) return;
          conn->request.consume(n);
          if (grip_) {
            conn->response =
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nGrip-Hold: stream\r\n"
                "Grip-Channel: " +
                channel_ +
                "\r\nGrip-Keep-Alive: :\\n\\n; format=cstring; timeout=20\r\nContent-Length: " +
                std::to_string(put_.size()) + "\r\n\r\n" + put_;
            net::async_write(*conn->socket, net::buffer(conn->response),
                             [this, conn](boost::system::error_code werror, std::size_t) {
                               if (!werror) ReadRequest(conn);
                             });
            streams_.fetch_add(1);
            return;
          }
          conn->response = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + put_;
          {
            std::lock_guard lock(mutex_);
            conns_.push_back(conn);
          }
          streams_.fetch_add(1);
          net::async_write(*conn->socket, net::buffer(conn->response),
                           [conn](boost::system::error_code, std::size_t) {});
        });
  }

  tcp::acceptor acceptor_;
  bool grip_;
  std::string channel_;
  std::string put_;
  std::atomic<int> accepted_{0}, streams_{0};
  std::mutex mutex_;
  std::vector<std::shared_ptr<Conn>> conns_;
};

// One blocking POST to Pushpin's HTTP publish endpoint.
bool PublishToPushpin(const Options& o, const std::string& event, std::string* problem) {
  const std::string body = R"({"items":[{"channel":")" + o.channel +
                           R"(","formats":{"http-stream":{"content":")" + JsonEscape(event) +
                           "\"}}}]}";
  const std::string request =
      "POST /publish/ HTTP/1.1\r\nHost: " + o.publish_host +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n" + body;
  try {
    net::io_context io;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(net::ip::make_address(o.publish_host), o.publish_port));
    net::write(socket, net::buffer(request));
    net::streambuf answer;
    net::read_until(socket, answer, "\r\n");
    std::istream in(&answer);
    std::string line;
    std::getline(in, line);
    if (line.find(" 200") == std::string::npos) {
      *problem = "publish answered: " + line;
      return false;
    }
    return true;
  } catch (const std::exception& e) {
    *problem = std::string("publish failed: ") + e.what();
    return false;
  }
}

// ---- reporting --------------------------------------------------------------------------------

double Percentile(std::vector<std::int64_t>& values, double q) {
  if (values.empty()) return -1;
  const auto index = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index),
                   values.end());
  return static_cast<double>(values[index]) / 1e6;
}

double CpuMs() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
}

void RaiseFdLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  RaiseFdLimit();
  net::io_context io(o.threads);
  auto work = net::make_work_guard(io);
  std::unique_ptr<Upstream> upstream;
  if (o.upstream_port) upstream = std::make_unique<Upstream>(io, o);
  std::vector<std::thread> threads;
  for (int i = 0; i < o.threads; ++i) threads.emplace_back([&io] { io.run(); });

  auto wait_for = [](double seconds, const auto& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!done() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return done();
  };
  std::string problem;
  if (upstream && o.wait_upstream > 0 &&
      !wait_for(o.connect_timeout, [&] { return upstream->streams() >= o.wait_upstream; }))
    problem = "the upstream was not connected to within --connect-timeout";

  // Subscribe.
  const std::string request =
      "GET " + o.path + " HTTP/1.1\r\nHost: " + o.target_host + ":" +
      std::to_string(o.target_port) + (o.auth.empty() ? "" : "\r\nAuthorization: " + o.auth) +
      "\r\nAccept: text/event-stream\r\nUser-Agent: flagrelay-loadgen\r\n\r\n";
  Totals totals;
  std::vector<std::unique_ptr<Subscriber>> subs;
  subs.reserve(static_cast<std::size_t>(o.subscribers));
  for (int i = 0; i < o.subscribers; ++i)
    subs.push_back(
        std::make_unique<Subscriber>(io, o, request, totals, static_cast<std::size_t>(o.patches)));
  const std::int64_t connect_start = NowNs();
  for (int i = 0; i < o.subscribers && problem.empty(); ++i) {
    if (o.connect_rate > 0) {
      const auto due = connect_start + static_cast<std::int64_t>(i / o.connect_rate * 1e9);
      const std::int64_t wait = due - NowNs();
      if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
    }
    Subscriber* sub = subs[static_cast<std::size_t>(i)].get();
    const std::string& source = o.sources[static_cast<std::size_t>(i) % o.sources.size()];
    net::post(io, [sub, &source] { sub->Start(source); });
  }
  wait_for(o.connect_timeout,
           [&] { return totals.puts.load() + totals.failed.load() >= o.subscribers; });
  const double connect_wall_ms = static_cast<double>(NowNs() - connect_start) / 1e6;
  std::cout << "subscribed " << totals.puts.load() << "/" << o.subscribers << " in "
            << connect_wall_ms << " ms" << std::endl;

  if (o.hold_seconds > 0) {
    std::cout << "holding " << o.hold_seconds << " s" << std::endl;
    std::this_thread::sleep_for(std::chrono::duration<double>(o.hold_seconds));
  }

  // Patch.
  std::cout << "patching" << std::endl;
  const double cpu_before_patches = CpuMs();
  std::vector<std::int64_t> sent;
  for (int k = 0; k < o.patches && problem.empty(); ++k) {
    if (k > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
    const std::int64_t now = NowNs();
    const std::string event = PatchEvent(static_cast<std::uint64_t>(k + 2), now);
    sent.push_back(now);
    if (o.grip) {
      if (!PublishToPushpin(o, event, &problem)) break;
    } else {
      upstream->Broadcast(event);
    }
  }
  if (!sent.empty()) {
    const long expected = static_cast<long>(sent.size()) * totals.puts.load();
    wait_for(o.delivery_timeout, [&] { return totals.deliveries.load() >= expected; });
  }

  const double patch_cpu_ms = CpuMs() - cpu_before_patches;
  work.reset();
  io.stop();
  for (auto& t : threads) t.join();

  // Results.
  std::vector<std::int64_t> connect_ns, latency_ns;
  std::vector<int> failures(6);
  std::string first_failure;
  long lost = 0;
  for (const auto& sub : subs) {
    if (sub->connect_ns() >= 0) connect_ns.push_back(sub->connect_ns());
    failures[static_cast<int>(sub->failure())]++;
    if (sub->failure() != Failure::kNone && first_failure.empty())
      first_failure = std::string(Describe(sub->failure())) + ": " + sub->failure_detail();
    if (sub->connect_ns() < 0) continue;  // never subscribed: counted as an error, not as losses
    std::size_t got = 0;
    for (const Delivery& d : sub->deliveries()) {
      if (std::find(sent.begin(), sent.end(), d.sent_ns) == sent.end()) continue;
      latency_ns.push_back(d.arrived_ns - d.sent_ns);
      ++got;
    }
    lost += static_cast<long>(sent.size() - std::min(got, sent.size()));
  }
  int error_count = 0;
  for (std::size_t i = 1; i < failures.size(); ++i) error_count += failures[i];
  const double c50 = Percentile(connect_ns, 0.5), c99 = Percentile(connect_ns, 0.99),
               cmax = Percentile(connect_ns, 1.0);
  const double p50 = Percentile(latency_ns, 0.5), p99 = Percentile(latency_ns, 0.99),
               pmax = Percentile(latency_ns, 1.0);
  const int upstream_connections = upstream ? upstream->connections() : 0;

  if (o.json) {
    std::cout << "{\"subscribers\":" << o.subscribers << ",\"subscribed\":" << connect_ns.size()
              << ",\"errors\":" << error_count << ",\"first_error\":\"" << JsonEscape(first_failure)
              << "\",\"connect_wall_ms\":" << connect_wall_ms << ",\"connect_p50_ms\":" << c50
              << ",\"connect_p99_ms\":" << c99 << ",\"connect_max_ms\":" << cmax
              << ",\"patches\":" << sent.size() << ",\"deliveries\":" << latency_ns.size()
              << ",\"lost\":" << lost << ",\"p50_ms\":" << p50 << ",\"p99_ms\":" << p99
              << ",\"max_ms\":" << pmax << ",\"upstream_connections\":" << upstream_connections
              << ",\"loadgen_patch_cpu_ms\":" << patch_cpu_ms << ",\"problem\":\""
              << JsonEscape(problem) << "\"}" << std::endl;
  } else {
    std::printf("subscribers %d: subscribed %zu, errors %d%s%s\n", o.subscribers, connect_ns.size(),
                error_count, first_failure.empty() ? "" : " (first: ",
                first_failure.empty() ? "" : (first_failure + ")").c_str());
    std::printf("connect -> put read: p50 %.1f ms, p99 %.1f ms, max %.1f ms (wall %.0f ms)\n", c50,
                c99, cmax, connect_wall_ms);
    std::printf(
        "patches %zu: deliveries %zu, lost %ld; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
        sent.size(), latency_ns.size(), lost, p50, p99, pmax);
    std::printf("upstream connections accepted: %d\n", upstream_connections);
    if (!problem.empty()) std::printf("problem: %s\n", problem.c_str());
  }
  return problem.empty() ? 0 : 1;
}
