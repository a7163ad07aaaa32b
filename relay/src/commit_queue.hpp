#pragma once
// A single background thread that runs cache commits (blocking LMDB write transactions with
// fsync) in submission order, so I/O threads never block on the disk and the order of commits,
// and of the publications that follow them, is the order of the changes.
//
// Thread safety: Submit and Stop may be called from any thread.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace flagrelay::relay {

class CommitQueue {
 public:
  /// `capacity` bounds the jobs waiting; Submit blocks when it is reached (the disk is then
  /// thousands of commits behind, and slowing the upstream reader is the only honest option).
  explicit CommitQueue(std::size_t capacity = 4096);
  ~CommitQueue();
  CommitQueue(const CommitQueue&) = delete;
  CommitQueue& operator=(const CommitQueue&) = delete;

  /// Runs `job` on the commit thread after every job submitted before it. After Stop, runs `job`
  /// inline so that no change is lost during shutdown.
  void Submit(std::function<void()> job);
  /// Runs the jobs already queued, then joins the thread.
  void Stop();

 private:
  void Run();

  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable has_work_, has_room_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;  // Run exits once the queue is empty
  bool exited_ = false;    // Run has returned
  std::thread thread_;
};

}  // namespace flagrelay::relay
