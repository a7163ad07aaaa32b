#include "commit_queue.hpp"

namespace flagrelay::relay {

CommitQueue::CommitQueue(std::size_t capacity) : capacity_(capacity), thread_([this] { Run(); }) {}

CommitQueue::~CommitQueue() { Stop(); }

void CommitQueue::Submit(std::function<void()> job) {
  {
    std::unique_lock lock(mutex_);
    has_room_.wait(lock, [this] { return jobs_.size() < capacity_ || exited_; });
    if (!exited_) {
      jobs_.push_back(std::move(job));
      has_work_.notify_one();
      return;
    }
  }
  job();
}

void CommitQueue::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  has_work_.notify_all();
  has_room_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CommitQueue::Run() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      has_work_.wait(lock, [this] { return !jobs_.empty() || stopping_; });
      if (jobs_.empty()) {  // stopping and drained: later jobs run inline, in their caller
        exited_ = true;
        has_room_.notify_all();
        return;
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
      has_room_.notify_one();
    }
    job();
  }
}

}  // namespace flagrelay::relay
