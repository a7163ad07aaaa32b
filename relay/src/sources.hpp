#pragma once
// The data sources that feed an Environment: the upstream SSE stream (`GET {streamUri}/all`) and
// a local JSON data file. Asio stays in sources.cpp; this header only names io_context.
//
// Thread safety: Start/Stop from the owning thread; the work runs on a strand of the io_context.

#include <memory>
#include <string>

#include "environment.hpp"
#include "flagrelay/config/config.hpp"

namespace boost::asio {
class io_context;
}

namespace flagrelay::relay {

/// Sources are shared_ptr-owned because their pending operations keep them alive; owners hold
/// a SourceHandle that stops the source when destroyed.
class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual void Start() = 0;
  virtual void Stop() = 0;
};

/// Owns a shared_ptr-held source and stops it when destroyed.
class SourceHandle final : public DataSource {
 public:
  explicit SourceHandle(std::shared_ptr<DataSource> source) : source_(std::move(source)) {}
  ~SourceHandle() override { source_->Stop(); }
  void Start() override { source_->Start(); }
  void Stop() override { source_->Stop(); }

 private:
  std::shared_ptr<DataSource> source_;
};

/// TLS context and proxy settings for outbound connections, shared by all environments
/// (defined in outbound.hpp).
class Outbound;
/// Throws std::runtime_error when a configured TLS file cannot be used (a start-up error).
[[nodiscard]] std::shared_ptr<Outbound> MakeOutbound(const config::UpstreamConfig& upstream,
                                                     const config::ProxyConfig& proxy);

/// One streaming connection to the upstream per environment, reconnecting with capped exponential
/// backoff and jitter; 401/403/404 stop it for good (a wrong or revoked key will not start working
/// by retrying). With upstream.pollingFallback, polls `{baseUri}/sdk/latest-all` while the stream
/// is down.
[[nodiscard]] std::unique_ptr<DataSource> MakeUpstreamSource(boost::asio::io_context& io,
                                                             std::shared_ptr<Environment> env,
                                                             const config::UpstreamConfig& upstream,
                                                             std::shared_ptr<Outbound> outbound,
                                                             std::string user_agent);

/// Polls the environment's `dataFile` (mtime, size, inode) and applies its content on change. A
/// file that cannot be read or parsed is reported and the last good data stays served.
[[nodiscard]] std::unique_ptr<DataSource> MakeFileSource(boost::asio::io_context& io,
                                                         std::shared_ptr<Environment> env);

}  // namespace flagrelay::relay
