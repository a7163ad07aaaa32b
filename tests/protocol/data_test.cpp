#include "flagrelay/protocol/data.hpp"

#include <gtest/gtest.h>

namespace flagrelay::protocol {
namespace {

ItemPtr Flag(std::string key, std::uint64_t version) {
  auto item = ParseItem(key, R"({"key":")" + key + R"(","version":)" + std::to_string(version) +
                                 R"(,"on":true,"unknownField":{"kept":[1,2]}})");
  EXPECT_TRUE(item.has_value());
  return *item;
}

TEST(ParseStreamEvent, PutKeepsItemsAsReceivedAndSorted) {
  auto message = ParseStreamEvent(
      "put",
      R"({"path":"/","data":{"flags":{"b":{"key":"b","version":2,"x":{"y":null}},"a":{"key":"a","version":1}},"segments":{"s":{"key":"s","version":5}},"other":{}}})");
  ASSERT_TRUE(message.has_value()) << message.error().message;
  const auto& put = std::get<PutMessage>(*message);
  ASSERT_EQ(put.flags.items().size(), 2u);
  EXPECT_EQ(put.flags.items()[0]->key, "a");
  EXPECT_EQ(put.flags.items()[1]->json, R"({"key":"b","version":2,"x":{"y":null}})");
  ASSERT_NE(put.segments.Find("s"), nullptr);
  EXPECT_EQ(put.segments.Find("s")->version, 5u);
}

TEST(ParseStreamEvent, PutWithoutSegmentsAndNullItems) {
  auto message = ParseStreamEvent("put", R"({"data":{"flags":{"a":null,"b":{"version":1}}}})");
  ASSERT_TRUE(message.has_value());
  const auto& put = std::get<PutMessage>(*message);
  EXPECT_EQ(put.flags.items().size(), 1u) << "null items are dropped, never served";
  EXPECT_TRUE(put.segments.items().empty());
}

TEST(ParseStreamEvent, PatchAndDelete) {
  auto patch = ParseStreamEvent("patch", R"({"data":{"key":"f","version":3},"path":"/flags/f"})");
  ASSERT_TRUE(patch.has_value());
  const auto& p = std::get<PatchMessage>(*patch);
  EXPECT_EQ(p.kind, Kind::kFlags);
  EXPECT_EQ(p.item->key, "f");
  EXPECT_EQ(p.item->version, 3u);

  auto del = ParseStreamEvent("delete", R"({"path":"/segments/s","version":4})");
  ASSERT_TRUE(del.has_value());
  const auto& d = std::get<DeleteMessage>(*del);
  EXPECT_EQ(d.kind, Kind::kSegments);
  EXPECT_EQ(d.key, "s");
  EXPECT_EQ(d.version, 4u);
}

TEST(ParseStreamEvent, IgnoresUnknownEventsAndPaths) {
  auto unknown = ParseStreamEvent("reconnect", "whatever");
  ASSERT_TRUE(unknown.has_value());
  EXPECT_TRUE(std::holds_alternative<IgnoredMessage>(*unknown));
  auto path = ParseStreamEvent("patch", R"({"path":"/big-segments/x","data":{}})");
  ASSERT_TRUE(path.has_value());
  EXPECT_TRUE(std::holds_alternative<IgnoredMessage>(*path));
}

TEST(ParseStreamEvent, MalformedInputIsAnErrorNotACrash) {
  for (auto [name, data] : std::vector<std::pair<std::string, std::string>>{
           {"put", "{"},
           {"put", "[]"},
           {"put", R"({"path":"/"})"},
           {"put", R"({"data":{"flags":[]}})"},
           {"put", R"({"data":{"flags":{"a":5}}})"},
           {"put", R"({"data":{"flags":{"a":{"version":-1}}}})"},
           {"put", R"({"data":{"flags":{"a":{"version":"1"}}}})"},
           {"patch", R"({"path":"/flags/a"})"},
           {"patch", R"({"data":{}})"},
           {"patch", R"({"path":"/flags/a","data":{"deleted":"no"}})"},
           {"delete", R"({"path":"/flags/a"})"},
           {"delete", R"({"path":"/flags/a","version":1.5})"},
           {"delete", ""},
       }) {
    auto result = ParseStreamEvent(name, data);
    EXPECT_FALSE(result.has_value()) << name << " " << data;
    if (!result.has_value()) {
      EXPECT_FALSE(result.error().message.empty());
    }
  }
}

// Found by fuzz_sse: Boost.JSON reads 1e400 as infinity and writes it back as `Infinity`, so the
// item was kept and every body serving it was not JSON.
TEST(ParseStreamEvent, NumbersBeyondADoubleAreRefused) {
  for (const std::string number : {"1e400", "-1e400", "1e99999"}) {
    auto patch = ParseStreamEvent("patch", R"({"path":"/flags/x","data":{"key":"x","version":1,)"
                                           R"("variations":[)" +
                                               number + "]}}");
    ASSERT_FALSE(patch.has_value()) << number;
    EXPECT_EQ(patch.error().message, "invalid JSON: a number is out of range");
    EXPECT_FALSE(ParseItem("x", R"({"rules":[{"clauses":[{"values":[)" + number + "]}]}]}"))
        << number;
    EXPECT_FALSE(ParseAllData(R"({"segments":{"s":{"weight":)" + number + "}}}")) << number;
  }
  // The largest doubles and the smallest (rounding to zero) are fine.
  auto item = ParseItem("x", R"({"a":1.7976931348623157e308,"b":-1e308,"c":1e-400})");
  ASSERT_TRUE(item.has_value()) << item.error().message;
  EXPECT_TRUE(ParseItem("x", (*item)->json).has_value()) << (*item)->json;
}

TEST(ItemSet, VersionRules) {
  ItemSet set = ItemSet::FromUnsorted({Flag("a", 5)});
  EXPECT_FALSE(set.WithNewer(Flag("a", 5)).has_value()) << "equal version is not newer";
  EXPECT_FALSE(set.WithNewer(Flag("a", 4)).has_value());
  auto newer = set.WithNewer(Flag("a", 6));
  ASSERT_TRUE(newer.has_value());
  EXPECT_EQ(newer->Find("a")->version, 6u);
  EXPECT_EQ(set.Find("a")->version, 5u) << "the original set is unchanged (copy-on-write)";

  auto inserted = set.WithNewer(Flag("0", 1));
  ASSERT_TRUE(inserted.has_value());
  ASSERT_EQ(inserted->items().size(), 2u);
  EXPECT_EQ(inserted->items()[0]->key, "0");
}

TEST(ItemSet, TombstonesBlockOlderPatches) {
  ItemSet set = ItemSet::FromUnsorted({Flag("a", 5)});
  auto deleted = set.WithNewer(MakeTombstone("a", 7));
  ASSERT_TRUE(deleted.has_value());
  EXPECT_TRUE(deleted->Find("a")->deleted);
  EXPECT_EQ(deleted->live_count(), 0u);
  EXPECT_FALSE(deleted->WithNewer(Flag("a", 6)).has_value()) << "an older patch cannot resurrect";
  EXPECT_TRUE(deleted->WithNewer(Flag("a", 8)).has_value());
  EXPECT_FALSE(set.WithNewer(MakeTombstone("a", 5)).has_value()) << "delete is version-checked";
}

TEST(ItemSet, DuplicateKeysLastWins) {
  ItemSet set = ItemSet::FromUnsorted({Flag("a", 1), Flag("b", 1), Flag("a", 3)});
  ASSERT_EQ(set.items().size(), 2u);
  EXPECT_EQ(set.Find("a")->version, 3u);
}

TEST(Item, TombstoneAndWithVersion) {
  EXPECT_EQ(MakeTombstone("k\"q", 3)->json, R"({"key":"k\"q","version":3,"deleted":true})");
  ItemPtr bumped = WithVersion(*Flag("a", 2), 9);
  EXPECT_EQ(bumped->version, 9u);
  auto reparsed = ParseItem("a", bumped->json);
  ASSERT_TRUE(reparsed.has_value());
  EXPECT_EQ((*reparsed)->version, 9u);
  EXPECT_NE(bumped->json.find("unknownField"), std::string::npos);
}

TEST(ParseAllData, FileShape) {
  auto put = ParseAllData("{\n  \"flags\": {\"x\": {\"key\": \"x\", \"version\": 1}}\n}\n");
  ASSERT_TRUE(put.has_value());
  EXPECT_EQ(put->flags.Find("x")->json, R"({"key":"x","version":1})") << "compacted to one line";
  EXPECT_FALSE(ParseAllData("not json").has_value());
}

}  // namespace
}  // namespace flagrelay::protocol

namespace flagrelay::protocol {
namespace {

// The cache's fast path must accept and refuse exactly what ParseItem does, with the same key,
// version and tombstone, keeping the stored text as it is.
TEST(ParseStoredItem, AgreesWithParseItem) {
  const std::string deep = std::string(64, '[') + std::string(64, ']');
  const std::vector<std::string> inputs = {
      R"({"key":"a","version":3,"on":true,"rules":[{"clauses":[{"values":["x y",1.5]}]}]})",
      R"({"key":"a","version":3.0})",
      R"({"key":"a","version":7,"deleted":true})",
      R"({"key":"a","deleted":false})",
      R"({"key":"a","x":{"version":"nested: not the item's"},"version":2})",
      R"({"key":"a","version":-1})",
      R"({"key":"a","version":"3"})",
      R"({"key":"a","version":{"n":3}})",
      R"({"key":"a","version":[3]})",
      R"({"key":"a","version":1.5})",
      R"({"key":"a","deleted":"yes"})",
      R"({"key":"a","deleted":null})",
      R"({"key":"a","v":1e400})",
      R"({"key":"a","v":-1e99999})",
      R"({"key":"a"} trailing)",
      R"({"key":"a")",
      R"([{"key":"a"}])",
      R"("a")",
      "",
      R"({"d":)" + deep + "}",
      R"({"d":[)" + deep + "]}",
  };
  for (const std::string& input : inputs) {
    const auto full = ParseItem("a", input);
    const auto fast = ParseStoredItem("a", input);
    ASSERT_EQ(full.has_value(), fast.has_value()) << input;
    if (!full) {
      EXPECT_EQ(full.error().message, fast.error().message) << input;
      continue;
    }
    EXPECT_EQ((*fast)->key, "a");
    EXPECT_EQ((*fast)->version, (*full)->version) << input;
    EXPECT_EQ((*fast)->deleted, (*full)->deleted) << input;
    EXPECT_EQ((*fast)->json, input);
  }
}

TEST(ParseStoredItem, TextWithALineBreakIsRewrittenCompactly) {
  auto item = ParseStoredItem("a", "{\"key\":\"a\",\n\"version\":4}");
  ASSERT_TRUE(item.has_value());
  EXPECT_EQ((*item)->json, R"({"key":"a","version":4})");
  EXPECT_EQ((*item)->version, 4u);
}

}  // namespace
}  // namespace flagrelay::protocol
