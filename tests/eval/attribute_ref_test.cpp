#include "flagrelay/eval/attribute_ref.hpp"

#include <gtest/gtest.h>

namespace flagrelay::eval {
namespace {

using Components = std::vector<std::string>;

TEST(AttributeRef, PathComponents) {
  const auto ref = AttributeRef::FromPath("/address/city");
  EXPECT_TRUE(ref.Valid());
  EXPECT_EQ(ref.Error(), "");
  EXPECT_EQ(ref.Components(), (Components{"address", "city"}));
  EXPECT_EQ(ref.Raw(), "/address/city");
  EXPECT_EQ(AttributeRef::FromPath("/key").Components(), (Components{"key"}));
}

TEST(AttributeRef, Escapes) {
  EXPECT_EQ(AttributeRef::FromPath("/a~1b/c~0d").Components(), (Components{"a/b", "c~d"}));
  // "~01" is '~' then '1', not '/': escapes are decoded left to right once.
  EXPECT_EQ(AttributeRef::FromPath("/~01").Components(), (Components{"~1"}));
  EXPECT_EQ(AttributeRef::FromPath("/~1~1").Components(), (Components{"//"}));
}

TEST(AttributeRef, NoLeadingSlashIsOneLiteralName) {
  const auto ref = AttributeRef::FromPath("a/b~2");
  EXPECT_TRUE(ref.Valid());
  EXPECT_EQ(ref.Components(), (Components{"a/b~2"}));
}

TEST(AttributeRef, InvalidPaths) {
  for (const char* bad : {"", "/", "//", "/a/", "/a//b", "/~", "/a~", "/~2", "/a~b", "/~/"}) {
    const auto ref = AttributeRef::FromPath(bad);
    EXPECT_FALSE(ref.Valid()) << '"' << bad << '"';
    EXPECT_FALSE(ref.Error().empty()) << '"' << bad << '"';
    EXPECT_TRUE(ref.Components().empty()) << '"' << bad << '"';
  }
}

TEST(AttributeRef, LiteralNamesAreNeverPaths) {
  const auto ref = AttributeRef::FromLiteral("/a/b~1");
  EXPECT_TRUE(ref.Valid());
  EXPECT_EQ(ref.Components(), (Components{"/a/b~1"}));
  EXPECT_EQ(AttributeRef::FromLiteral("name").Components(), (Components{"name"}));
  EXPECT_FALSE(AttributeRef::FromLiteral("").Valid());
}

}  // namespace
}  // namespace flagrelay::eval
