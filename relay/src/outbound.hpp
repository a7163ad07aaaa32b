#pragma once
// Outbound connections to the upstream (LaunchDarkly or another flagrelay): TCP, optionally
// through an HTTP CONNECT proxy, optionally TLS with certificate and host-name verification, SNI
// and a client certificate. Shared by the upstream stream, the polling fallback and (later) the
// events forwarder.
//
// Internal to flagrelay_relay and heavy (Beast, Asio SSL): include it only from the .cpp files
// that open outbound connections.
//
// Thread safety: an Outbound is immutable after construction and shared by all environments; a
// Connection belongs to one coroutine and its strand.

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "flagrelay/config/config.hpp"
#include "sources.hpp"

namespace flagrelay::relay {

/// An http(s) URL split into what a connection needs.
struct Target {
  bool tls = false;
  std::string host;       // without brackets for IPv6
  std::string port;       // explicit or the scheme's default
  std::string base_path;  // without a trailing '/'
  bool default_port = true;

  [[nodiscard]] std::string HostHeader() const;  // host[:port] as the Host header wants it
};
[[nodiscard]] std::optional<Target> ParseTarget(std::string_view url);

/// A connection whose layers are added as it is established (plain TCP, then maybe TLS). Its
/// address is stable, so a Stop on the owner's strand can Close it while a coroutine awaits it.
class Connection {
 public:
  using Plain = boost::beast::tcp_stream;
  using Tls = boost::beast::ssl_stream<boost::beast::tcp_stream>;

  explicit Connection(const boost::asio::any_io_executor& executor)
      : stream_(std::in_place_type<Plain>, executor) {}

  [[nodiscard]] boost::beast::tcp_stream& lowest();
  /// Cancels whatever is pending and closes the socket. Idempotent.
  void Close();
  /// Calls `f(stream)` with the outermost layer (Plain or Tls).
  template <class F>
  decltype(auto) Visit(F&& f) {
    return std::visit(std::forward<F>(f), stream_);
  }
  Tls& UpgradeToTls(boost::asio::ssl::context& context);

 private:
  std::variant<Plain, Tls> stream_;
};

/// What connecting needs that does not change per connection: the TLS context and the proxy
/// settings.
class Outbound {
 public:
  /// Throws std::runtime_error when a TLS file (CA, certificate, key) cannot be used. The TLS
  /// context (OpenSSL, the system CA store: several MiB) is only built when an upstream URI is
  /// https: a chained sidecar speaking http to its regional relay does not pay for it.
  Outbound(const config::UpstreamConfig& upstream, const config::ProxyConfig& proxy);

  /// Connects `connection` to `target`: through the proxy that applies to it (CONNECT tunnel,
  /// Basic auth), then TLS for https targets. Each step is bounded by `timeout`. Returns an
  /// empty string on success, else what failed (never containing proxy credentials).
  [[nodiscard]] boost::asio::awaitable<std::string> Connect(const Target& target,
                                                            Connection& connection,
                                                            config::Duration timeout);

  /// The proxy URL that applies to `target`, or nullopt for a direct connection.
  [[nodiscard]] std::optional<std::string> ProxyFor(const Target& target) const;

 private:
  std::optional<boost::asio::ssl::context> tls_;
  config::ProxyConfig proxy_;
};

}  // namespace flagrelay::relay
