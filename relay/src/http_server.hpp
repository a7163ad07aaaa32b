#pragma once
// The downstream HTTP/1.1 server (Boost.Beast): accepts connections up to a cap, reads requests
// within header/body/time bounds, answers through a Router handler, and turns requests that open
// an SDK stream into SSE sessions with bounded per-subscriber queues.
//
// Beast and Asio stay inside http_server.cpp; this header only names io_context.
//
// Threading: the acceptor runs on `io`; each connection lives on one of the worker io_contexts
// (round-robin), and each worker must be run by exactly one thread: a connection's handlers,
// and the frames handed to its stream, then run on that thread without strands or locks.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flagrelay/config/config.hpp"
#include "flagrelay/metrics/metrics.hpp"
#include "router.hpp"

namespace boost::asio {
class io_context;
}

namespace flagrelay::relay {

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  /// Request bodies are bounded by limits.max_body_bytes, POST bodies (events) by
  /// `max_post_body_bytes`. `workers` empty: connections live on `io`.
  HttpServer(boost::asio::io_context& io, std::vector<boost::asio::io_context*> workers,
             std::string name, Handler handler, const config::ListenConfig& limits,
             const config::StreamsConfig& streams, std::size_t max_post_body_bytes,
             metrics::RelayMetrics& metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Serves HTTPS instead of HTTP. Throws std::runtime_error when the certificate or key cannot
  /// be used. Call before Listen.
  void EnableTls(const config::TlsConfig& tls);

  /// Binds and starts accepting. Returns an empty string on success, else what went wrong.
  [[nodiscard]] std::string Listen(const std::string& host, std::uint16_t port);
  /// Stops accepting; open connections finish on their own deadlines.
  void Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

/// Answers one request read from `bytes` as a connection of a server with these limits would:
/// the same parser bounds, the same checks before the body, the same 400/413/431 refusals, then
/// `handler`. No sockets: for fuzzing and tests. Nullopt when the server would close without an
/// answer (no request at all). `consumed`, if given, is set to the bytes the request took when the
/// connection would go on to read another (keep-alive, not a stream), else 0.
[[nodiscard]] std::optional<HttpResponse> AnswerRawRequest(std::string_view bytes,
                                                           const config::ListenConfig& limits,
                                                           std::size_t max_post_body_bytes,
                                                           const HttpServer::Handler& handler,
                                                           std::size_t* consumed = nullptr);

}  // namespace flagrelay::relay
