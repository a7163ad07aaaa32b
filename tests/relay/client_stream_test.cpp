#include "client_stream.hpp"

#include <gtest/gtest.h>

namespace flagrelay::relay {
namespace {

protocol::ItemPtr Item(std::string_view key, std::string_view body) {
  auto item = protocol::ParseItem(key, std::string(body));
  EXPECT_TRUE(item.has_value()) << body;
  return *item;
}

// A flag serving `value` to everyone, or (with a segment) `in_segment` to the segment's members.
std::string FlagJson(std::string_view key, std::uint64_t version, std::string_view value,
                     bool with_segment = false) {
  std::string rules =
      with_segment
          ? R"([{"id":"r","variation":1,"clauses":[{"attribute":"","op":"segmentMatch","values":["s"]}]}])"
          : "[]";
  return R"({"key":")" + std::string(key) + R"(","version":)" + std::to_string(version) +
         R"(,"on":true,"fallthrough":{"variation":0},"rules":)" + rules + R"(,"variations":[)" +
         std::string(value) +
         R"(,"in"],"clientSideAvailability":{"usingEnvironmentId":true,"usingMobileKey":true}})";
}

std::shared_ptr<const eval::FlagData> Data(std::vector<protocol::ItemPtr> flags,
                                           std::vector<protocol::ItemPtr> segments = {}) {
  return eval::FlagData::Build(protocol::ItemSet::FromUnsorted(std::move(flags)),
                               protocol::ItemSet::FromUnsorted(std::move(segments)));
}

ClientStream MakeStream() {
  auto context = eval::Context::Parse(R"({"kind":"user","key":"u1"})");
  EXPECT_TRUE(context.has_value());
  return ClientStream(*context, {eval::Audience::kEnvironmentId, false});
}

std::vector<std::string> Texts(const std::vector<protocol::SharedBytes>& frames) {
  std::vector<std::string> out;
  for (const auto& frame : frames) out.push_back(*frame);
  return out;
}

TEST(ClientStreamTest, FirstUpdateIsAnEvaluatedPut) {
  ClientStream stream = MakeStream();
  auto frames = Texts(stream.Update(Data({Item("a", FlagJson("a", 1, "\"x\""))})));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0],
            "event: put\ndata: {\"a\":{\"value\":\"x\",\"variation\":0,\"version\":1}}\n\n");
}

TEST(ClientStreamTest, ChangedResultsBecomePatchesAndUnchangedOnesAreQuiet) {
  ClientStream stream = MakeStream();
  auto b = Item("b", FlagJson("b", 1, "1"));
  auto c = Item("c", FlagJson("c", 1, "true"));
  auto d = Item("d", FlagJson("d", 1, "false"));
  (void)stream.Update(Data({Item("a", FlagJson("a", 1, "\"x\"")), b, c, d}));
  // A new value, and a new version with the same value (the SDK reports versions in its events).
  auto frames = Texts(stream.Update(
      Data({Item("a", FlagJson("a", 2, "\"y\"")), Item("b", FlagJson("b", 2, "1")), c, d})));
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(
      frames[0],
      "event: patch\ndata: {\"key\":\"a\",\"value\":\"y\",\"variation\":0,\"version\":2}\n\n");
  EXPECT_EQ(frames[1],
            "event: patch\ndata: {\"key\":\"b\",\"value\":1,\"variation\":0,\"version\":2}\n\n");
  // The same data again: nothing.
  EXPECT_TRUE(stream
                  .Update(Data({Item("a", FlagJson("a", 2, "\"y\"")),
                                Item("b", FlagJson("b", 2, "1")), c, d}))
                  .empty());
}

TEST(ClientStreamTest, RemovedFlagBecomesADeleteAboveTheHeldVersion) {
  ClientStream stream = MakeStream();
  auto a = Item("a", FlagJson("a", 4, "1"));
  auto b = Item("b", FlagJson("b", 1, "2"));
  auto c = Item("c", FlagJson("c", 1, "3"));
  (void)stream.Update(Data({a, b, c}));
  auto frames = Texts(stream.Update(Data({b, c})));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0], "event: delete\ndata: {\"key\":\"a\",\"version\":5}\n\n");
}

TEST(ClientStreamTest, ResultChangeWithoutVersionChangeSendsAPut) {
  // A segment change alters the flag's result while the flag keeps its version: an SDK would
  // ignore a patch with that version, so the stream sends a fresh put.
  ClientStream stream = MakeStream();
  auto a = Item("a", FlagJson("a", 3, "\"out\"", true));
  auto b = Item("b", FlagJson("b", 1, "1"));
  auto c = Item("c", FlagJson("c", 1, "2"));
  (void)stream.Update(Data({a, b, c}, {Item("s", R"({"key":"s","version":1})")}));
  auto frames = Texts(
      stream.Update(Data({a, b, c}, {Item("s", R"({"key":"s","version":2,"included":["u1"]})")})));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_TRUE(frames[0].starts_with("event: put\n")) << frames[0];
  EXPECT_NE(frames[0].find("\"a\":{\"value\":\"in\",\"variation\":1,\"version\":3}"),
            std::string::npos)
      << frames[0];
}

TEST(ClientStreamTest, InvisibleFlagsNeverReachTheStream) {
  ClientStream stream = MakeStream();
  auto frames = Texts(stream.Update(Data({Item(
      "server-only",
      R"({"key":"server-only","version":1,"on":true,"fallthrough":{"variation":0},"variations":[1],"clientSideAvailability":{"usingEnvironmentId":false}})")})));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0], "event: put\ndata: {}\n\n");
}

// The environment builds each FlagData from the previous one, and then a stream evaluates only
// the flags that may have changed: the frames are the same as with everything evaluated.
TEST(ClientStreamTest, ChainedBuildsGiveTheSameFramesEvaluatingOnlyWhatChanged) {
  ClientStream stream = MakeStream();
  auto a = Item("a", FlagJson("a", 1, "\"x\""));
  auto b = Item("b", FlagJson("b", 1, "\"out\"", true));
  auto c = Item("c", FlagJson("c", 1, "\"z\""));
  auto s = Item("s", R"({"key":"s","version":1,"included":[]})");
  const auto build = [](std::vector<protocol::ItemPtr> flags,
                        std::vector<protocol::ItemPtr> segments, const eval::FlagData* previous) {
    return eval::FlagData::Build(protocol::ItemSet::FromUnsorted(std::move(flags)),
                                 protocol::ItemSet::FromUnsorted(std::move(segments)), previous);
  };
  auto data = build({a, b, c}, {s}, nullptr);
  ASSERT_EQ(stream.Update(data).size(), 1u);  // the put

  auto same = build({a, b, c}, {s}, data.get());
  EXPECT_TRUE(stream.Update(same).empty()) << "nothing changed";

  a = Item("a", FlagJson("a", 2, "\"y\""));
  auto next = build({a, b, c}, {s}, same.get());
  EXPECT_EQ(
      Texts(stream.Update(next)),
      std::vector<std::string>{
          "event: patch\ndata: {\"key\":\"a\",\"value\":\"y\",\"variation\":0,\"version\":2}\n\n"});

  // The context joins the segment: b's result changes at the same flag version, so a put.
  s = Item("s", R"({"key":"s","version":2,"included":["u1"]})");
  auto joined = build({a, b, c}, {s}, next.get());
  auto frames = Texts(stream.Update(joined));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0],
            "event: put\ndata: {\"a\":{\"value\":\"y\",\"variation\":0,\"version\":2},"
            "\"b\":{\"value\":\"in\",\"variation\":1,\"version\":1},"
            "\"c\":{\"value\":\"z\",\"variation\":0,\"version\":1}}\n\n");

  auto without_c = build({a, b}, {s}, joined.get());
  EXPECT_EQ(Texts(stream.Update(without_c)),
            std::vector<std::string>{"event: delete\ndata: {\"key\":\"c\",\"version\":2}\n\n"});
}

}  // namespace
}  // namespace flagrelay::relay
