#include "sources.hpp"

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "log.hpp"

namespace flagrelay::relay {

namespace net = boost::asio;

namespace {

class FileSource final : public DataSource, public std::enable_shared_from_this<FileSource> {
 public:
  FileSource(net::io_context& io, std::shared_ptr<Environment> env)
      : strand_(net::make_strand(io)),
        env_(std::move(env)),
        timer_(strand_),
        component_("file " + env_->name()) {}

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
    timer_.expires_after(env_->config()->data_file_poll_interval);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Poll();
    });
  }

  void Check() {
    const std::string path = env_->config()->data_file;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
      return Report("cannot stat " + path + ": " + std::strerror(errno));
    const Stamp stamp{
        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
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
    // VALID once the file's content is served (after the cache commit), not before.
    env_->ApplyFile(std::move(*data), [self = shared_from_this(), stamp] {
      net::post(self->strand_, [self, stamp] {
        if (!self->stopped_ && self->last_ == stamp)
          self->env_->SetConnectionState(ConnectionState::kValid);
      });
    });
  }

  void Report(std::string problem) {
    env_->ReleaseCache();  // the file cannot be used now: serve what the cache holds meanwhile
    if (problem == last_problem_) return;  // once per distinct problem, not once per poll
    last_problem_ = problem;
    LogError(component_, problem + (env_->snapshot() ? "; keeping the last good data" : ""));
    env_->SetConnectionState(
        env_->snapshot() ? ConnectionState::kInterrupted : ConnectionState::kInitializing,
        ErrorInfo{"INVALID_DATA", 0, std::move(problem), NowUnixMs()});
  }

  net::strand<net::io_context::executor_type> strand_;
  std::shared_ptr<Environment> env_;
  net::steady_timer timer_;
  std::string component_;
  Stamp last_;
  std::string last_problem_;
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<DataSource> MakeFileSource(net::io_context& io, std::shared_ptr<Environment> env) {
  return std::make_unique<SourceHandle>(std::make_shared<FileSource>(io, std::move(env)));
}

}  // namespace flagrelay::relay
