#include "event_queue.hpp"

#include <algorithm>
#include <array>

namespace flagrelay::relay::events {
namespace {

constexpr int kMaxDepth = 64;

bool IsWhitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Bytes that stand for themselves inside a JSON string: all but '"', '\\' and control characters.
// Every byte of every events body passes here, most of them inside strings.
constexpr std::array<bool, 256> kPlainStringByte = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 256; ++c) plain[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
  return plain;
}();

// A strict single-pass JSON checker that only needs to know where values start and end.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}

  void SkipWhitespace() {
    while (pos_ < text_.size() && IsWhitespace(text_[pos_])) ++pos_;
  }
  [[nodiscard]] bool AtEnd() const { return pos_ == text_.size(); }
  [[nodiscard]] char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  [[nodiscard]] std::size_t pos() const { return pos_; }
  bool Take(char c) {
    if (Peek() != c || AtEnd()) return false;
    ++pos_;
    return true;
  }

  // One value; false (with error()) when it is not valid JSON.
  bool Value(int depth) {
    if (depth > kMaxDepth) return Fail("nested too deeply");
    SkipWhitespace();
    switch (Peek()) {
      case '{':
        return Object(depth);
      case '[':
        return Array(depth);
      case '"':
        return String();
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number();
    }
  }

  bool Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message) + " at byte " + std::to_string(pos_);
    return false;
  }
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  bool Object(int depth) {
    ++pos_;  // '{'
    SkipWhitespace();
    if (Take('}')) return true;
    while (true) {
      SkipWhitespace();
      if (Peek() != '"') return Fail("expected a member name");
      if (!String()) return false;
      SkipWhitespace();
      if (!Take(':')) return Fail("expected ':'");
      if (!Value(depth + 1)) return false;
      SkipWhitespace();
      if (Take('}')) return true;
      if (!Take(',')) return Fail("expected ',' or '}'");
    }
  }

  bool Array(int depth) {
    ++pos_;  // '['
    SkipWhitespace();
    if (Take(']')) return true;
    while (true) {
      if (!Value(depth + 1)) return false;
      SkipWhitespace();
      if (Take(']')) return true;
      if (!Take(',')) return Fail("expected ',' or ']'");
    }
  }

  bool String() {
    ++pos_;  // '"'
    while (pos_ < text_.size()) {
      while (pos_ < text_.size() && kPlainStringByte[static_cast<unsigned char>(text_[pos_])])
        ++pos_;
      if (pos_ == text_.size()) break;
      const char c = text_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in a string");
      if (c != '\\') continue;
      if (pos_ >= text_.size()) break;
      const char escaped = text_[pos_++];
      if (escaped == 'u') {
        for (int i = 0; i < 4; ++i, ++pos_) {
          if (pos_ >= text_.size() || !IsHex(text_[pos_])) return Fail("bad \\u escape");
        }
      } else if (std::string_view("\"\\/bfnrt").find(escaped) == std::string_view::npos) {
        return Fail("bad escape");
      }
    }
    return Fail("unterminated string");
  }

  bool Literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return Fail("unexpected character");
    pos_ += word.size();
    return true;
  }

  bool Digits() {
    const std::size_t start = pos_;
    while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
    return pos_ > start;
  }

  bool Number() {
    Take('-');
    if (Peek() == '0') {
      ++pos_;
    } else if (!Digits()) {
      return Fail(AtEnd() ? "unexpected end" : "unexpected character");
    }
    if (Take('.') && !Digits()) return Fail("bad number");
    if (Peek() == 'e' || Peek() == 'E') {
      ++pos_;
      if (!Take('+')) Take('-');
      if (!Digits()) return Fail("bad number");
    }
    return true;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string error_;
};

}  // namespace

SplitResult SplitEvents(std::string_view body) {
  SplitResult result;
  Scanner scanner(body);
  scanner.SkipWhitespace();
  if (!scanner.Take('[')) {
    result.error = "expected a JSON array of events";
    return result;
  }
  scanner.SkipWhitespace();
  if (!scanner.Take(']')) {
    while (true) {
      scanner.SkipWhitespace();
      const std::size_t start = scanner.pos();
      if (scanner.Peek() != '{') {
        scanner.Fail("event " + std::to_string(result.events.size()) + " is not a JSON object");
        break;
      }
      if (!scanner.Value(1)) break;
      result.events.push_back(body.substr(start, scanner.pos() - start));
      scanner.SkipWhitespace();
      if (scanner.Take(']')) break;
      if (!scanner.Take(',')) {
        scanner.Fail("expected ',' or ']'");
        break;
      }
    }
  }
  scanner.SkipWhitespace();
  if (scanner.error().empty() && !scanner.AtEnd()) scanner.Fail("unexpected data after the array");
  if (!scanner.error().empty()) {
    result.events.clear();
    result.error = "invalid JSON: " + scanner.error();
  }
  return result;
}

std::string CheckObject(std::string_view body) {
  Scanner scanner(body);
  scanner.SkipWhitespace();
  if (scanner.Peek() != '{') return "expected a JSON object";
  if (scanner.Value(0)) {
    scanner.SkipWhitespace();
    if (!scanner.AtEnd()) scanner.Fail("unexpected data after the object");
  }
  return scanner.error().empty() ? std::string() : "invalid JSON: " + scanner.error();
}

EnvironmentQueue::EnvironmentQueue(const config::EventsConfig& limits,
                                   const config::EnvironmentEventsConfig& settings,
                                   Clock::time_point now)
    : limits_(limits) {
  Configure(settings, now);
}

void EnvironmentQueue::Configure(const config::EnvironmentEventsConfig& settings,
                                 Clock::time_point now) {
  settings_ = settings;
  tokens_ = settings.rate_burst > 0 ? settings.rate_burst : std::max(1.0, settings.rate_limit);
  refilled_ = now;
  sample_credit_ = 0;
}

bool EnvironmentQueue::TakeToken(Clock::time_point now) {
  if (settings_.rate_limit <= 0) return true;
  const double capacity =
      settings_.rate_burst > 0 ? settings_.rate_burst : std::max(1.0, settings_.rate_limit);
  const std::chrono::duration<double> elapsed = now - refilled_;
  refilled_ = now;
  tokens_ = std::min(capacity, tokens_ + elapsed.count() * settings_.rate_limit);
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

// Keeps sampleRatio of the events it is asked about, evenly spread (1 of 4 for 0.25).
bool EnvironmentQueue::Sample() {
  sample_credit_ += settings_.sample_ratio;
  if (sample_credit_ < 1) return false;
  sample_credit_ -= 1;
  return true;
}

bool EnvironmentQueue::UnderPressure() const {
  return events_ * 2 > limits_.max_queue_events || bytes_ * 2 > limits_.max_queue_bytes;
}

Admission EnvironmentQueue::Add(const BatchKey& key, const std::vector<std::string_view>& events,
                                Clock::time_point now, std::vector<Batch>& ready) {
  Admission admission;
  if (!settings_.enabled) {
    admission.disabled = events.size();
    return admission;
  }
  auto it = filling_.end();
  for (const std::string_view event : events) {
    if (!TakeToken(now)) {
      ++admission.rate_limited;
      continue;
    }
    if (UnderPressure() && !Sample()) {
      ++admission.sampled;
      continue;
    }
    const std::size_t bytes = event.size() + 1;  // and its comma or bracket
    if (events_ + 1 > limits_.max_queue_events || bytes_ + bytes > limits_.max_queue_bytes) {
      ++admission.queue_full;
      continue;
    }
    if (it == filling_.end()) it = filling_.try_emplace(key).first;
    Filling& filling = it->second;
    filling.body += filling.events == 0 ? '[' : ',';
    filling.body += event;
    ++filling.events;
    ++events_;
    bytes_ += bytes;
    ++admission.accepted;
    if (filling.events >= limits_.max_batch) {
      Seal(it, ready);
      it = filling_.end();
    }
  }
  return admission;
}

void EnvironmentQueue::Seal(std::map<BatchKey, Filling>::iterator it, std::vector<Batch>& ready) {
  Filling& filling = it->second;
  filling.body += ']';
  ready.push_back(Batch{it->first, std::move(filling.body), filling.events});
  filling_.erase(it);
}

void EnvironmentQueue::SealAll(std::vector<Batch>& ready) {
  while (!filling_.empty()) Seal(filling_.begin(), ready);
}

void EnvironmentQueue::Release(const Batch& batch) {
  events_ -= std::min(events_, batch.events);
  // Each event was counted with one separator byte; the body has one more (two brackets).
  bytes_ -= std::min(bytes_, batch.body.size() - 1);
}

Verdict Classify(unsigned status) {
  if (status >= 200 && status < 300) return Verdict::kDelivered;
  if (status == 401 || status == 403) return Verdict::kRejected;
  if (status == 0 || status >= 500 || status == 400 || status == 408 || status == 429) {
    return Verdict::kRetry;
  }
  return Verdict::kDrop;
}

}  // namespace flagrelay::relay::events
