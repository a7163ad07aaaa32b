#include "flagrelay/protocol/snapshot.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "flagrelay/protocol/sse.hpp"

namespace flagrelay::protocol {
namespace {

PutMessage SamplePut() {
  auto put = ParseAllData(
      R"({"flags":{"b":{"key":"b","version":2},"a":{"key":"a","version":1},"gone":{"key":"gone","version":4,"deleted":true}},"segments":{"s":{"key":"s","version":1}}})");
  EXPECT_TRUE(put.has_value());
  return *put;
}

TEST(Snapshot, BodiesOmitTombstonesAndAreSorted) {
  auto put = SamplePut();
  Snapshot snap(put.flags, put.segments, 1, DataSource::kUpstream, 0);
  EXPECT_EQ(
      *snap.AllData().Plain(),
      R"({"flags":{"a":{"key":"a","version":1},"b":{"key":"b","version":2}},"segments":{"s":{"key":"s","version":1}}})");
  EXPECT_EQ(*snap.FlagsData().Plain(),
            R"({"a":{"key":"a","version":1},"b":{"key":"b","version":2}})");
  EXPECT_EQ(*snap.SegmentsData().Plain(), R"({"s":{"key":"s","version":1}})");
  EXPECT_EQ(*snap.PutFrameAll(),
            "event: put\ndata: {\"path\":\"/\",\"data\":" + *snap.AllData().Plain() + "}\n\n");
  EXPECT_EQ(*snap.PutFrameFlags(), "event: put\ndata: " + *snap.FlagsData().Plain() + "\n\n");
}

TEST(Snapshot, ServedJsonBytesMatchTheBodies) {
  auto put = SamplePut();  // includes a tombstone, which is not served
  Snapshot snap(put.flags, put.segments, 1, DataSource::kUpstream, 0);
  EXPECT_EQ(put.flags.served_json_bytes(), snap.FlagsData().Plain()->size());
  EXPECT_EQ(put.segments.served_json_bytes(), snap.SegmentsData().Plain()->size());
  EXPECT_EQ(put.flags.served_json_bytes() + put.segments.served_json_bytes() + 22,
            snap.AllData().Plain()->size());
  EXPECT_EQ(ItemSet().served_json_bytes(), 2u);
}

TEST(Snapshot, ETagFollowsContentNotVersion) {
  auto put = SamplePut();
  Snapshot one(put.flags, put.segments, 1, DataSource::kUpstream, 0);
  Snapshot same(put.flags, put.segments, 9, DataSource::kCache, 5);
  EXPECT_EQ(one.AllData().ETag(), same.AllData().ETag());
  EXPECT_EQ(one.AllData().ETag().front(), '"');
  auto changed = put.flags.WithNewer(*ParseItem("a", R"({"key":"a","version":2})"));
  ASSERT_TRUE(changed.has_value());
  Snapshot other(*changed, put.segments, 2, DataSource::kUpstream, 0);
  EXPECT_NE(one.AllData().ETag(), other.AllData().ETag());
  EXPECT_NE(one.AllData().ETag(), one.FlagsData().ETag());
}

TEST(Snapshot, GzipRoundTrip) {
  auto put = SamplePut();
  Snapshot snap(put.flags, put.segments, 1, DataSource::kUpstream, 0);
  const std::string& gz = *snap.AllData().Gzip();
  ASSERT_GE(gz.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
  auto back = GzipDecompress(gz, 1 << 20);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, *snap.AllData().Plain());
  EXPECT_FALSE(GzipDecompress(gz.substr(0, gz.size() / 2), 1 << 20).has_value()) << "truncated";
  EXPECT_FALSE(GzipDecompress("garbage", 1 << 20).has_value());
  EXPECT_FALSE(GzipDecompress(GzipCompress(std::string(100000, 'a')), 1000).has_value())
      << "output bound enforced";
}

TEST(Snapshot, ConcurrentReadersShareOneEncoding) {
  auto put = SamplePut();
  Snapshot snap(put.flags, put.segments, 1, DataSource::kUpstream, 0);
  std::vector<const std::string*> seen(8);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] { seen[i] = snap.PutFrameAll().get(); });
  }
  for (auto& t : threads) t.join();
  for (const auto* p : seen) EXPECT_EQ(p, seen[0]);
}

TEST(EncodeChange, PatchAndDeleteFramesParseBack) {
  auto item = ParseItem("f", R"({"key":"f","version":3})");
  ASSERT_TRUE(item.has_value());
  ChangeFrames patch = EncodeChange(Kind::kFlags, **item);
  EXPECT_EQ(
      *patch.all,
      "event: patch\ndata: {\"path\":\"/flags/f\",\"data\":{\"key\":\"f\",\"version\":3}}\n\n");
  EXPECT_EQ(*patch.flags,
            "event: patch\ndata: {\"path\":\"/f\",\"data\":{\"key\":\"f\",\"version\":3}}\n\n");

  ChangeFrames del = EncodeChange(Kind::kSegments, *MakeTombstone("s", 4));
  EXPECT_EQ(*del.all, "event: delete\ndata: {\"path\":\"/segments/s\",\"version\":4}\n\n");
  EXPECT_EQ(del.flags, nullptr) << "the /flags stream carries no segments";

  // What we emit is what we can consume.
  std::vector<SseEvent> events;
  SseParser parser([&](SseEvent&& e) { events.push_back(std::move(e)); });
  ASSERT_TRUE(parser.Feed(*patch.all + *del.all));
  ASSERT_EQ(events.size(), 2u);
  auto m1 = ParseStreamEvent(events[0].name, events[0].data);
  ASSERT_TRUE(m1.has_value());
  EXPECT_EQ(std::get<PatchMessage>(*m1).item->version, 3u);
  auto m2 = ParseStreamEvent(events[1].name, events[1].data);
  ASSERT_TRUE(m2.has_value());
  EXPECT_EQ(std::get<DeleteMessage>(*m2).key, "s");
}

}  // namespace
}  // namespace flagrelay::protocol
