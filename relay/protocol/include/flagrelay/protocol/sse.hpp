#pragma once
// Server-sent events: an incremental parser for the upstream stream and the encoder for the frames
// flagrelay sends to SDKs. Pure code, no I/O.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace flagrelay::protocol {

struct SseEvent {
  std::string name = "message";  // `event:` field; "message" when absent
  std::string data;              // `data:` lines joined with '\n'
  std::string id;
};

/// Incremental SSE parser (WHATWG event-stream rules): accepts chunks split at any byte, LF, CRLF
/// or CR line endings, comments, multi-line data, an optional leading BOM.
///
/// Bounded: a line or an event larger than `max_event_bytes` makes `Feed` return false; the parser
/// is then in a failed state until `Reset`. Thread safety: none; one parser per stream.
class SseParser {
 public:
  using EventHandler = std::function<void(SseEvent&&)>;

  explicit SseParser(EventHandler on_event, std::size_t max_event_bytes = 64u << 20);

  /// Feeds bytes; dispatches every complete event. Returns false if a bound was exceeded.
  [[nodiscard]] bool Feed(std::string_view chunk);
  void Reset();
  [[nodiscard]] bool failed() const { return failed_; }

 private:
  bool FeedLines(std::string_view chunk);  // Feed, once past a leading BOM
  void ProcessLine(std::string_view line);
  void Dispatch();

  EventHandler on_event_;
  std::size_t max_event_bytes_;
  std::string line_;  // the incomplete current line
  SseEvent event_;    // the event being assembled
  bool has_data_ = false;
  bool skip_lf_ = false;  // the previous chunk ended in CR; a leading LF belongs to it
  bool at_stream_start_ = true;
  bool failed_ = false;
};

/// `event: <name>\ndata: <line>\n...\n\n`. `data` may contain newlines; each becomes a data line.
[[nodiscard]] std::string EncodeSseEvent(std::string_view name, std::string_view data);

/// A heartbeat comment, as ld-relay sends it.
inline constexpr std::string_view kSseHeartbeat = ":\n";

}  // namespace flagrelay::protocol
