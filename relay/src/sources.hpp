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

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual void Start() = 0;
  virtual void Stop() = 0;
};

/// One streaming connection to the upstream per environment, reconnecting with capped exponential
/// backoff and jitter; 401/403/404 stop it for good (a wrong or revoked key will not start working
/// by retrying).
[[nodiscard]] std::unique_ptr<DataSource> MakeUpstreamSource(boost::asio::io_context& io,
                                                             Environment& env,
                                                             const config::UpstreamConfig& upstream,
                                                             std::string user_agent);

/// Polls the environment's `dataFile` (mtime, size, inode) and applies its content on change. A
/// file that cannot be read or parsed is reported and the last good data stays served.
[[nodiscard]] std::unique_ptr<DataSource> MakeFileSource(boost::asio::io_context& io,
                                                         Environment& env);

}  // namespace flagrelay::relay
