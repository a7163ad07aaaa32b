#include "outbound.hpp"

#include <openssl/ssl.h>

#include <stdexcept>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>

#include "base64.hpp"

namespace flagrelay::relay {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

constexpr auto kAwait = net::as_tuple(net::use_awaitable);

bool IsIpLiteral(const std::string& host) {
  boost::system::error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

// NO_PROXY semantics as curl and Go implement them: `*` matches everything; an entry matches the
// host itself and its subdomains (a leading dot is optional); `host:port` entries also compare
// the port.
bool NoProxyMatches(std::string_view list, const Target& target) {
  while (!list.empty()) {
    const std::size_t sep = list.find_first_of(", ");
    std::string_view entry = list.substr(0, sep);
    list = sep == std::string_view::npos ? std::string_view() : list.substr(sep + 1);
    if (entry.empty()) continue;
    if (entry == "*") return true;
    std::string_view port;
    if (const std::size_t colon = entry.rfind(':');
        colon != std::string_view::npos && entry.find(':') == colon) {  // not an IPv6 literal
      port = entry.substr(colon + 1);
      entry = entry.substr(0, colon);
    }
    if (!port.empty() && port != target.port) continue;
    if (entry.starts_with('.')) entry.remove_prefix(1);
    const std::string_view host = target.host;
    if (host == entry || (host.size() > entry.size() && host.ends_with(entry) &&
                          host[host.size() - entry.size() - 1] == '.')) {
      return true;
    }
  }
  return false;
}

struct ProxyTarget {
  std::string host, port, authorization;  // authorization: "Basic ..." or empty
};

std::optional<ProxyTarget> ParseProxy(const std::string& url) {
  const auto parsed = boost::urls::parse_uri(url);
  if (!parsed || parsed->scheme() != "http" || parsed->host().empty()) return std::nullopt;
  ProxyTarget proxy;
  proxy.host = parsed->host_address();
  proxy.port = parsed->has_port() ? std::string(parsed->port()) : "80";
  if (parsed->has_userinfo()) {
    proxy.authorization = "Basic " + EncodeBase64(std::string(parsed->user()) + ":" +
                                                  std::string(parsed->password()));
  }
  return proxy;
}

}  // namespace

std::string Target::HostHeader() const {
  const std::string name = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return default_port ? name : name + ":" + port;
}

std::optional<Target> ParseTarget(std::string_view url) {
  const auto parsed = boost::urls::parse_uri(url);
  if (!parsed || (parsed->scheme() != "http" && parsed->scheme() != "https") ||
      parsed->host().empty()) {
    return std::nullopt;
  }
  Target target;
  target.tls = parsed->scheme() == "https";
  target.host = parsed->host_address();
  target.default_port = !parsed->has_port();
  target.port = parsed->has_port() ? std::string(parsed->port()) : (target.tls ? "443" : "80");
  target.base_path = parsed->path();
  while (!target.base_path.empty() && target.base_path.back() == '/') target.base_path.pop_back();
  return target;
}

beast::tcp_stream& Connection::lowest() {
  return std::visit([](auto& s) -> beast::tcp_stream& { return beast::get_lowest_layer(s); },
                    stream_);
}

void Connection::Close() {
  beast::error_code ignored;
  lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
  lowest().close();
}

Connection::Tls& Connection::UpgradeToTls(ssl::context& context) {
  Plain plain = std::move(std::get<Plain>(stream_));
  return stream_.emplace<Tls>(std::move(plain), context);
}

Outbound::Outbound(const config::UpstreamConfig& upstream, const config::ProxyConfig& proxy)
    : proxy_(proxy) {
  const auto is_https = [](const std::string& uri) { return uri.starts_with("https:"); };
  if (!is_https(upstream.stream_uri) && !is_https(upstream.base_uri) &&
      !is_https(upstream.events_uri)) {
    return;
  }
  const config::TlsConfig& tls = upstream.tls;
  auto& context = tls_.emplace(ssl::context::tls_client);
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  SSL_CTX_set_min_proto_version(context.native_handle(),
                                tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  context.set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  context.set_default_verify_paths(ec);  // the system CA store
  auto check = [&ec](std::string_view what, const std::string& path) {
    if (ec) throw std::runtime_error(std::string(what) + " " + path + ": " + ec.message());
  };
  if (!tls.ca_file.empty()) {
    context.load_verify_file(tls.ca_file, ec);
    check("upstream.tls.caFile", tls.ca_file);
  }
  if (!tls.cert_file.empty()) {
    context.use_certificate_chain_file(tls.cert_file, ec);
    check("upstream.tls.certFile", tls.cert_file);
    context.use_private_key_file(tls.key_file, ssl::context::pem, ec);
    check("upstream.tls.keyFile", tls.key_file);
  }
}

std::optional<std::string> Outbound::ProxyFor(const Target& target) const {
  const std::string& url = !proxy_.url.empty()
                               ? proxy_.url
                               : (target.tls ? proxy_.https_proxy_env : proxy_.http_proxy_env);
  if (url.empty() || NoProxyMatches(proxy_.no_proxy, target)) return std::nullopt;
  return url;
}

net::awaitable<std::string> Outbound::Connect(const Target& target, Connection& connection,
                                              config::Duration timeout) {
  const auto proxy_url = ProxyFor(target);
  std::optional<ProxyTarget> proxy;
  if (proxy_url) {
    proxy = ParseProxy(*proxy_url);
    if (!proxy) co_return "the proxy URL is not http://[user:pass@]host[:port]";
  }
  const std::string& host = proxy ? proxy->host : target.host;
  const std::string& port = proxy ? proxy->port : target.port;
  const std::string via = proxy ? " via proxy " + proxy->host + ":" + proxy->port : "";

  // Name resolution counts against the timeout too (getaddrinfo can hang on a dead DNS server).
  // The timer's handler may outlive this frame, so it holds the resolver weakly.
  const auto executor = connection.lowest().get_executor();
  auto resolver = std::make_shared<tcp::resolver>(executor);
  net::steady_timer resolve_deadline(executor);
  resolve_deadline.expires_after(timeout);
  resolve_deadline.async_wait(
      [weak = std::weak_ptr<tcp::resolver>(resolver)](boost::system::error_code ec) {
        if (auto r = weak.lock(); r && !ec) r->cancel();
      });
  auto [resolve_ec, endpoints] = co_await resolver->async_resolve(host, port, kAwait);
  resolve_deadline.cancel();
  if (resolve_ec == net::error::operation_aborted) co_return "resolve " + host + ": timed out";
  if (resolve_ec) co_return "resolve " + host + ": " + resolve_ec.message();

  connection.lowest().expires_after(timeout);
  auto [connect_ec, endpoint] = co_await connection.lowest().async_connect(endpoints, kAwait);
  if (connect_ec) co_return "connect " + host + ":" + port + ": " + connect_ec.message();
  beast::error_code ignored;
  connection.lowest().socket().set_option(tcp::no_delay(true), ignored);

  if (proxy) {
    // An HTTP CONNECT tunnel: the proxy sees only host:port, never the request or the SDK key.
    const std::string authority =
        (target.host.find(':') != std::string::npos ? "[" + target.host + "]" : target.host) + ":" +
        target.port;
    http::request<http::empty_body> connect{http::verb::connect, authority, 11};
    connect.set(http::field::host, authority);
    if (!proxy->authorization.empty())
      connect.set(http::field::proxy_authorization, proxy->authorization);
    connection.lowest().expires_after(timeout);
    auto [write_ec, written] = co_await http::async_write(connection.lowest(), connect, kAwait);
    const std::string proxy_name = "proxy " + proxy->host + ":" + proxy->port;
    if (write_ec) co_return proxy_name + ": CONNECT: " + write_ec.message();
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    parser.skip(true);  // a CONNECT response has no body: the tunnel follows the header
    auto [read_ec, read] =
        co_await http::async_read_header(connection.lowest(), buffer, parser, kAwait);
    if (read_ec) co_return proxy_name + ": CONNECT: " + read_ec.message();
    if (parser.get().result_int() != 200) {
      co_return proxy_name + " refused CONNECT to " + authority + " with HTTP " +
          std::to_string(parser.get().result_int());
    }
    // Nothing may follow the CONNECT response before we speak: such bytes would be lost.
    if (buffer.size() != 0) co_return proxy_name + " sent data after its CONNECT response";
  }

  if (target.tls) {
    if (!tls_) co_return "no TLS context for " + target.host + " (no https URI was configured)";
    Connection::Tls& tls = connection.UpgradeToTls(*tls_);
    if (!IsIpLiteral(target.host))
      SSL_set_tlsext_host_name(tls.native_handle(), target.host.c_str());
    tls.set_verify_callback(ssl::host_name_verification(target.host));
    connection.lowest().expires_after(timeout);
    auto [handshake_ec] = co_await tls.async_handshake(ssl::stream_base::client, kAwait);
    if (handshake_ec) {
      co_return "TLS handshake with " + target.host + via + ": " + handshake_ec.message();
    }
  }
  co_return std::string();
}

}  // namespace flagrelay::relay
