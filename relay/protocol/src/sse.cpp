#include "flagrelay/protocol/sse.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace flagrelay::protocol {
namespace {

constexpr std::size_t kKeptLineCapacity = 64 * 1024;

// The first CR or LF at or after `pos`. Two memchr scans: string_view::find_first_of calls memchr
// on the two-character set once per byte, which a multi-megabyte put line made its hot spot.
std::size_t FindLineEnd(std::string_view chunk, std::size_t pos) {
  const char* begin = chunk.data() + pos;
  std::size_t length = chunk.size() - pos;
  const void* lf = std::memchr(begin, '\n', length);
  if (lf != nullptr) length = static_cast<std::size_t>(static_cast<const char*>(lf) - begin);
  const void* cr = std::memchr(begin, '\r', length);
  const void* end = cr != nullptr ? cr : lf;
  return end == nullptr ? std::string_view::npos
                        : static_cast<std::size_t>(static_cast<const char*>(end) - chunk.data());
}

}  // namespace

SseParser::SseParser(EventHandler on_event, std::size_t max_event_bytes)
    : on_event_(std::move(on_event)), max_event_bytes_(max_event_bytes) {}

void SseParser::Reset() {
  line_.clear();
  event_ = SseEvent{};
  has_data_ = false;
  skip_lf_ = false;
  at_stream_start_ = true;
  failed_ = false;
}

bool SseParser::Feed(std::string_view chunk) {
  if (failed_) return false;
  if (at_stream_start_) {
    // A UTF-8 BOM may open the stream, and may arrive split across chunks like any other bytes:
    // hold back the first bytes until they are a whole BOM (dropped) or cannot be one.
    constexpr std::string_view kBom = "\xEF\xBB\xBF";
    const std::size_t take = std::min(chunk.size(), kBom.size() - line_.size());
    line_.append(chunk.substr(0, take));
    chunk.remove_prefix(take);
    if (line_.size() < kBom.size() && kBom.starts_with(line_)) return true;  // more to come
    at_stream_start_ = false;
    std::string head = std::exchange(line_, std::string());
    if (head == kBom) head.clear();
    if (!FeedLines(head)) return false;
  }
  return FeedLines(chunk);
}

bool SseParser::FeedLines(std::string_view chunk) {
  std::size_t pos = 0;
  while (pos < chunk.size()) {
    if (skip_lf_) {
      skip_lf_ = false;
      if (chunk[pos] == '\n') {
        ++pos;
        continue;
      }
    }
    const std::size_t eol = FindLineEnd(chunk, pos);
    if (eol == std::string_view::npos) {
      line_.append(chunk.substr(pos));
      break;
    }
    if (line_.empty()) {
      ProcessLine(chunk.substr(pos, eol - pos));
    } else {
      line_.append(chunk.substr(pos, eol - pos));
      ProcessLine(line_);
      line_.clear();
      // A put's data line can be megabytes; its buffer is not kept for the heartbeats after it.
      if (line_.capacity() > kKeptLineCapacity) line_.shrink_to_fit();
    }
    if (chunk[eol] == '\r') skip_lf_ = true;
    pos = eol + 1;
    if (failed_) return false;
  }
  if (line_.size() + event_.data.size() > max_event_bytes_) failed_ = true;
  return !failed_;
}

void SseParser::ProcessLine(std::string_view line) {
  if (line.empty()) {
    Dispatch();
    return;
  }
  if (line.front() == ':') return;  // comment (heartbeat)
  std::string_view field = line;
  std::string_view value;
  if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "event") {
    event_.name.assign(value);
  } else if (field == "data") {
    if (has_data_) event_.data.push_back('\n');
    event_.data.append(value);
    has_data_ = true;
    if (event_.data.size() > max_event_bytes_) failed_ = true;
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) event_.id.assign(value);
  }
  // `retry` and unknown fields are ignored: reconnect timing is ours to choose.
}

void SseParser::Dispatch() {
  if (has_data_) {
    SseEvent done = std::exchange(event_, SseEvent{});
    event_.id = done.id;  // the last event ID persists across events
    has_data_ = false;
    on_event_(std::move(done));
  } else {
    event_.name = "message";
  }
}

std::string EncodeSseEvent(std::string_view name, std::string_view data) {
  std::string out;
  out.reserve(name.size() + data.size() + 16);
  out.append("event: ").append(name).push_back('\n');
  std::size_t pos = 0;
  while (true) {
    const std::size_t eol = data.find('\n', pos);
    out.append("data: ").append(data.substr(pos, eol == std::string_view::npos ? eol : eol - pos));
    out.push_back('\n');
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  out.push_back('\n');
  return out;
}

}  // namespace flagrelay::protocol
