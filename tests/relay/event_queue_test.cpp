// The events relay's Beast-free core: splitting bodies verbatim, batching within bounds, the
// switches (enabled, rate limit, sampling under pressure) and the delivery verdicts.

#include "event_queue.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace flagrelay::relay::events {
namespace {

using Clock = EnvironmentQueue::Clock;

TEST(SplitEvents, KeepsEachEventsTextAsGiven) {
  const std::string body =
      R"( [ {"kind":"custom","n":1.0E0,"s":"a\"b\u00e9"} ,{"kind":"identify"}] )";
  const SplitResult result = SplitEvents(body);
  ASSERT_TRUE(result.error.empty()) << result.error;
  ASSERT_EQ(result.events.size(), 2u);
  EXPECT_EQ(result.events[0], R"({"kind":"custom","n":1.0E0,"s":"a\"b\u00e9"})");
  EXPECT_EQ(result.events[1], R"({"kind":"identify"})");
  EXPECT_TRUE(SplitEvents("[]").events.empty());
  EXPECT_TRUE(SplitEvents("[]").error.empty());
  // Raw UTF-8 and DEL are plain string bytes; only control characters below 0x20 are not.
  EXPECT_TRUE(SplitEvents("[{\"s\":\"caf\xc3\xa9 \x7f \xf0\x9f\x9a\x80\"}]").error.empty());
}

TEST(SplitEvents, RejectsWhatIsNotAnArrayOfObjects) {
  for (const char* bad :
       {"", "{}", "[1]", R"(["x"])", "[{}", "[{},]", R"([{"a":01}])", R"([{"a":tru}])",
        R"([{"a":"x\q"}])", "[{\"a\":\"\x01\"}]", R"([{"a" 1}])", "[{}] x", R"([{"a":-}])",
        R"([{"a":1.}])", R"([{"a":"\u12"}])", R"([{"a":"open}])"}) {
    const SplitResult result = SplitEvents(bad);
    EXPECT_FALSE(result.error.empty()) << bad;
    EXPECT_TRUE(result.events.empty()) << bad;
  }
  EXPECT_EQ(SplitEvents("[1]").error, "invalid JSON: event 0 is not a JSON object at byte 1");
}

TEST(SplitEvents, NestingIsBounded) {
  std::string deep = "[{\"a\":";
  for (int i = 0; i < 100; ++i) deep += "[";
  for (int i = 0; i < 100; ++i) deep += "]";
  deep += "}]";
  EXPECT_NE(SplitEvents(deep).error.find("nested too deeply"), std::string::npos);
}

TEST(CheckObject, DiagnosticEventsAreObjects) {
  EXPECT_EQ(CheckObject(R"({"kind":"diagnostic","id":{"a":[1,2]}})"), "");
  EXPECT_NE(CheckObject("[]"), "");
  EXPECT_NE(CheckObject(R"({"a":1} {})"), "");
  EXPECT_NE(CheckObject(R"({"a":)"), "");
}

config::EventsConfig Limits(std::size_t max_batch, std::size_t max_events,
                            std::size_t max_bytes = 1 << 20) {
  config::EventsConfig limits;
  limits.max_batch = max_batch;
  limits.max_queue_events = max_events;
  limits.max_queue_bytes = max_bytes;
  return limits;
}

std::vector<std::string_view> Events(std::size_t n, std::string_view event = R"({"kind":"x"})") {
  return std::vector<std::string_view>(n, event);
}

TEST(EnvironmentQueue, BatchesPerKeyAndSealsAtMaxBatch) {
  const auto now = Clock::now();
  EnvironmentQueue queue(Limits(3, 100), {}, now);
  std::vector<Batch> ready;
  const BatchKey a{Channel::kServer, "4", ""};
  const BatchKey b{Channel::kServer, "4", "application-id/x"};
  EXPECT_EQ(queue.Add(a, Events(4, R"({"i":1})"), now, ready).accepted, 4u);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].body, R"([{"i":1},{"i":1},{"i":1}])");
  EXPECT_EQ(ready[0].events, 3u);
  queue.Add(b, Events(1, R"({"j":2})"), now, ready);
  queue.SealAll(ready);
  ASSERT_EQ(ready.size(), 3u);
  EXPECT_EQ(ready[1].key, a);
  EXPECT_EQ(ready[1].body, R"([{"i":1}])");
  EXPECT_EQ(ready[2].key, b);
  EXPECT_EQ(ready[2].body, R"([{"j":2}])");
  EXPECT_EQ(queue.events(), 5u);
  for (const Batch& batch : ready) queue.Release(batch);
  EXPECT_EQ(queue.events(), 0u);
  EXPECT_EQ(queue.bytes(), 0u);
}

TEST(EnvironmentQueue, BoundsCountEverythingNotYetReleased) {
  const auto now = Clock::now();
  config::EnvironmentEventsConfig settings;
  EnvironmentQueue queue(Limits(2, 5), settings, now);
  std::vector<Batch> ready;
  const BatchKey key{Channel::kMobile, "4", ""};
  const Admission first = queue.Add(key, Events(7), now, ready);
  EXPECT_EQ(first.accepted, 5u);
  EXPECT_EQ(first.queue_full, 2u);
  // Sealed batches still count until released.
  EXPECT_EQ(queue.Add(key, Events(1), now, ready).queue_full, 1u);
  queue.Release(ready.front());
  EXPECT_EQ(queue.Add(key, Events(3), now, ready).accepted, 2u);

  // Bytes: each event with its separator.
  EnvironmentQueue small(Limits(100, 100, 30), settings, now);
  const Admission bytes = small.Add(key, Events(5, R"({"kind":"x"})"), now, ready);  // 12+1 each
  EXPECT_EQ(bytes.accepted, 2u);
  EXPECT_EQ(bytes.queue_full, 3u);
}

TEST(EnvironmentQueue, SwitchedOffAcceptsNothing) {
  const auto now = Clock::now();
  config::EnvironmentEventsConfig off;
  off.enabled = false;
  EnvironmentQueue queue(Limits(10, 100), off, now);
  std::vector<Batch> ready;
  const Admission admission = queue.Add({}, Events(4), now, ready);
  EXPECT_EQ(admission.disabled, 4u);
  EXPECT_EQ(admission.accepted, 0u);
  queue.Configure({}, now);  // back on
  EXPECT_EQ(queue.Add({}, Events(4), now, ready).accepted, 4u);
}

TEST(EnvironmentQueue, RateLimitWithBurst) {
  auto now = Clock::now();
  config::EnvironmentEventsConfig limited;
  limited.rate_limit = 10;  // per second
  limited.rate_burst = 5;
  EnvironmentQueue queue(Limits(1000, 10000), limited, now);
  std::vector<Batch> ready;
  Admission admission = queue.Add({}, Events(8), now, ready);
  EXPECT_EQ(admission.accepted, 5u);
  EXPECT_EQ(admission.rate_limited, 3u);
  now += std::chrono::milliseconds(200);  // two more tokens
  admission = queue.Add({}, Events(8), now, ready);
  EXPECT_EQ(admission.accepted, 2u);
  now += std::chrono::seconds(10);  // refills up to the burst only
  EXPECT_EQ(queue.Add({}, Events(8), now, ready).accepted, 5u);
  // Without a burst, a second's worth.
  limited.rate_burst = 0;
  queue.Configure(limited, now);
  EXPECT_EQ(queue.Add({}, Events(30), now, ready).accepted, 10u);
}

TEST(EnvironmentQueue, SamplesOnlyUnderPressure) {
  const auto now = Clock::now();
  config::EnvironmentEventsConfig sampled;
  sampled.sample_ratio = 0.25;
  EnvironmentQueue queue(Limits(1000, 100), sampled, now);
  std::vector<Batch> ready;
  // Up to half full everything is kept; past it, one in four.
  Admission admission = queue.Add({}, Events(50), now, ready);
  EXPECT_EQ(admission.accepted, 50u);
  admission = queue.Add({}, Events(40), now, ready);
  EXPECT_EQ(admission.accepted, 10u);
  EXPECT_EQ(admission.sampled, 30u);
}

TEST(Classify, WhatAnAnswerMeans) {
  EXPECT_EQ(Classify(202), Verdict::kDelivered);
  EXPECT_EQ(Classify(200), Verdict::kDelivered);
  for (unsigned status : {0u, 400u, 408u, 429u, 500u, 503u}) {
    EXPECT_EQ(Classify(status), Verdict::kRetry) << status;
  }
  EXPECT_EQ(Classify(401), Verdict::kRejected);
  EXPECT_EQ(Classify(403), Verdict::kRejected);
  EXPECT_EQ(Classify(413), Verdict::kDrop);
  EXPECT_EQ(Classify(404), Verdict::kDrop);
}

}  // namespace
}  // namespace flagrelay::relay::events
