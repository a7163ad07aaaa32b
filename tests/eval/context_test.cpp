// Context::Parse and FullyQualifiedKey, following go-sdk-common v3's ldcontext JSON rules.
// How a parsed context's attributes are seen by clauses is tested in operators_test.cpp.

#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "eval_test_util.hpp"
#include "flagrelay/eval/evaluator.hpp"

namespace flagrelay::eval {
namespace {

using testing::Ctx;

struct ParseCase {
  const char* name;
  const char* json;
};
void PrintTo(const ParseCase& c, std::ostream* os) { *os << c.name; }

std::string CaseName(const ::testing::TestParamInfo<ParseCase>& info) { return info.param.name; }

// ---------------------------------------------------------------------------------------------
// Accepted contexts

class ContextParseAccepts : public ::testing::TestWithParam<ParseCase> {};

TEST_P(ContextParseAccepts, Parses) {
  auto parsed = Context::Parse(GetParam().json);
  EXPECT_TRUE(parsed.has_value()) << GetParam().json << ": "
                                  << (parsed ? "" : parsed.error().message);
}

INSTANTIATE_TEST_SUITE_P(
    Contexts, ContextParseAccepts,
    ::testing::Values(
        ParseCase{"SingleUser", R"({"kind":"user","key":"u"})"},
        ParseCase{"SingleOrg", R"({"kind":"org","key":"o","name":"Acme","plan":{"tier":3}})"},
        ParseCase{"KindWithAllAllowedCharacters", R"({"kind":"a.B_c-9","key":"k"})"},
        ParseCase{"KeyFirstThenKind", R"({"key":"k","kind":"org"})"},
        ParseCase{"NameNull", R"({"kind":"user","key":"u","name":null})"},
        ParseCase{"MetaObject", R"({"kind":"user","key":"u","_meta":{"privateAttributes":["a"]}})"},
        ParseCase{"MetaNull", R"({"kind":"user","key":"u","_meta":null})"},
        ParseCase{"AnonymousBool", R"({"kind":"user","key":"u","anonymous":false})"},
        ParseCase{"Multi", R"({"kind":"multi","user":{"key":"u"},"org":{"key":"o","x":1}})"},
        ParseCase{"MultiWithOneKind", R"({"kind":"multi","org":{"key":"o"}})"},
        ParseCase{"MultiKindLast", R"({"org":{"key":"o"},"user":{"key":"u"},"kind":"multi"})"},
        ParseCase{"OldUserKeyOnly", R"({"key":"u"})"},
        ParseCase{"OldUserAllBuiltIns",
                  R"({"key":"u","secondary":"s","ip":"1.2.3.4","country":"NZ","email":"a@b.c",)"
                  R"("firstName":"A","lastName":"B","avatar":"http://x","name":"N",)"
                  R"("anonymous":true,"custom":{"groups":["a","b"],"n":3},)"
                  R"("privateAttributeNames":["email"]})"},
        ParseCase{"OldUserNullBuiltIns",
                  R"({"key":"u","name":null,"email":null,"anonymous":null,"secondary":null})"},
        ParseCase{"OldUserUnknownTopLevelIgnored", R"({"key":"u","foo":{"bar":[1,2]}})"},
        ParseCase{"Whitespace", " \n\t{ \"kind\" : \"user\" , \"key\" : \"u\" }\n "}),
    CaseName);

// ---------------------------------------------------------------------------------------------
// Rejected contexts

class ContextParseRejects : public ::testing::TestWithParam<ParseCase> {};

TEST_P(ContextParseRejects, ReturnsAnError) {
  auto parsed = Context::Parse(GetParam().json);
  ASSERT_FALSE(parsed.has_value())
      << GetParam().json << " parsed; FQK " << parsed->FullyQualifiedKey();
  EXPECT_FALSE(parsed.error().message.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Contexts, ContextParseRejects,
    ::testing::Values(
        ParseCase{"Empty", ""}, ParseCase{"NotJson", "{kind:user}"},
        ParseCase{"Truncated", R"({"kind":"user","key":"u")"},
        ParseCase{"TrailingGarbage", R"({"kind":"user","key":"u"} x)"}, ParseCase{"Null", "null"},
        ParseCase{"Array", R"([{"key":"u"}])"}, ParseCase{"String", R"("u")"},
        ParseCase{"Number", "5"},
        // new single-kind format
        ParseCase{"SingleMissingKey", R"({"kind":"org"})"},
        ParseCase{"SingleEmptyKey", R"({"kind":"org","key":""})"},
        ParseCase{"UserEmptyKey", R"({"kind":"user","key":""})"},
        ParseCase{"SingleNumberKey", R"({"kind":"org","key":5})"},
        ParseCase{"SingleNullKey", R"({"kind":"org","key":null})"},
        ParseCase{"SingleObjectKey", R"({"kind":"org","key":{"a":1}})"},
        ParseCase{"KindIsKind", R"({"kind":"kind","key":"k"})"},
        ParseCase{"KindWithBang", R"({"kind":"org!","key":"k"})"},
        ParseCase{"KindWithSpace", R"({"kind":"my org","key":"k"})"},
        ParseCase{"KindWithColon", R"({"kind":"a:b","key":"k"})"},
        ParseCase{"KindNonAscii", R"({"kind":"orgé","key":"k"})"},
        ParseCase{"KindNumber", R"({"kind":5,"key":"k"})"},
        ParseCase{"KindNull", R"({"kind":null,"key":"k"})"},
        ParseCase{"KindEmpty", R"({"kind":"","key":"k"})"},
        ParseCase{"AnonymousNotBool", R"({"kind":"user","key":"u","anonymous":"yes"})"},
        ParseCase{"NameNumber", R"({"kind":"user","key":"u","name":5})"},
        // multi-kind
        ParseCase{"MultiNoKinds", R"({"kind":"multi"})"},
        ParseCase{"MultiNestedNumber", R"({"kind":"multi","user":5})"},
        ParseCase{"MultiNestedString", R"({"kind":"multi","user":"u"})"},
        ParseCase{"MultiNestedNull", R"({"kind":"multi","user":null})"},
        ParseCase{"MultiNestedMissingKey", R"({"kind":"multi","user":{"key":"u"},"org":{}})"},
        ParseCase{"MultiNestedEmptyKey", R"({"kind":"multi","user":{"key":"u"},"org":{"key":""}})"},
        ParseCase{"MultiNestedKindInvalid", R"({"kind":"multi","or g":{"key":"o"}})"},
        ParseCase{"MultiNestedNumberKey", R"({"kind":"multi","user":{"key":"u"},"org":{"key":5}})"},
        ParseCase{"MultiInsideMulti", R"({"kind":"multi","multi":{"key":"m"}})"},
        // old user format
        ParseCase{"OldUserNoKey", R"({"name":"x"})"}, ParseCase{"OldUserEmptyObject", "{}"},
        ParseCase{"OldUserNumberKey", R"({"key":5})"},
        ParseCase{"OldUserNullKey", R"({"key":null})"},
        ParseCase{"OldUserBuiltInNumber", R"({"key":"u","email":5})"},
        ParseCase{"OldUserCustomNotObject", R"({"key":"u","custom":5})"},
        ParseCase{"OldUserAnonymousNotBool", R"({"key":"u","anonymous":"yes"})"}),
    CaseName);

// ---------------------------------------------------------------------------------------------
// Fully qualified keys

struct KeyCase {
  const char* name;
  const char* json;
  const char* expected;
};
void PrintTo(const KeyCase& c, std::ostream* os) { *os << c.name; }

std::string KeyCaseName(const ::testing::TestParamInfo<KeyCase>& param_info) {
  return param_info.param.name;
}

class FullyQualifiedKey : public ::testing::TestWithParam<KeyCase> {};

TEST_P(FullyQualifiedKey, Is) {
  EXPECT_EQ(Ctx(GetParam().json).FullyQualifiedKey(), GetParam().expected) << GetParam().json;
}

INSTANTIATE_TEST_SUITE_P(
    Contexts, FullyQualifiedKey,
    ::testing::Values(
        KeyCase{"UserIsTheKey", R"({"kind":"user","key":"u"})", "u"},
        KeyCase{"UserKeyIsNotEscaped", R"({"kind":"user","key":"a:b%c"})", "a:b%c"},
        KeyCase{"OldUserIsTheKey", R"({"key":"a:b"})", "a:b"},
        KeyCase{"OtherKindIsPrefixed", R"({"kind":"org","key":"o"})", "org:o"},
        KeyCase{"OtherKindEscapesColonAndPercent", R"({"kind":"org","key":"a:b%c"})",
                "org:a%3Ab%25c"},
        KeyCase{"OtherKindKeepsOtherCharacters", R"({"kind":"org","key":"a/b c?d"})",
                "org:a/b c?d"},
        KeyCase{"MultiSortedByKind", R"({"kind":"multi","user":{"key":"u"},"org":{"key":"o"}})",
                "org:o:user:u"},
        KeyCase{"MultiSortedByKindThree",
                R"({"kind":"multi","zeta":{"key":"z"},"user":{"key":"u"},"alpha":{"key":"a"}})",
                "alpha:a:user:u:zeta:z"},
        KeyCase{"MultiEscapesEveryKey",
                R"({"kind":"multi","user":{"key":"u:1"},"org":{"key":"%o"}})",
                "org:%25o:user:u%3A1"},
        // A multi-kind JSON with one kind is that single context (Go's MultiBuilder).
        KeyCase{"MultiOfOneOtherKindIsSingle", R"({"kind":"multi","org":{"key":"o:1"}})",
                "org:o%3A1"},
        KeyCase{"MultiOfOneUserIsSingle", R"({"kind":"multi","user":{"key":"u:1"}})", "u:1"}),
    KeyCaseName);

TEST(ContextParse, OldUserWithEmptyKey) {
  // Go parses an old-style user with key "" (only new-format contexts need a key); ld-relay's
  // evalx handler then answers 400 "User must have a 'key' attribute". Either layer may refuse it,
  // but only with that message.
  auto parsed = Context::Parse(R"({"key":""})");
  if (parsed) {
    EXPECT_EQ(parsed->FullyQualifiedKey(), "");
  } else {
    EXPECT_EQ(parsed.error().message, "User must have a 'key' attribute");
  }
}

TEST(ContextParse, CopiesShareTheParsedContext) {
  auto parsed = Context::Parse(R"({"kind":"org","key":"o"})");
  ASSERT_TRUE(parsed.has_value());
  const Context copy = *parsed;  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_EQ(&copy.impl(), &parsed->impl());
  EXPECT_EQ(copy.FullyQualifiedKey(), "org:o");
}

TEST(ContextParse, ErrorsAreShortSentences) {
  for (const char* bad :
       {"", "{", R"({"kind":"org"})", R"({"kind":"kind","key":"k"})", R"({"kind":"multi"})"}) {
    auto parsed = Context::Parse(bad);
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_LT(parsed.error().message.size(), 200u) << bad;
    EXPECT_EQ(parsed.error().message.find('\n'), std::string::npos) << bad;
  }
}

TEST(ContextParse, DeepNestingDoesNotCrash) {
  // Nesting far beyond any sane context: a clean error (or a parse) and no stack overflow.
  for (const int depth : {10, 100, 10000, 200000}) {
    std::string text = R"({"kind":"user","key":"u","a":)";
    text.append(static_cast<std::size_t>(depth), '[');
    text.append(static_cast<std::size_t>(depth), ']');
    text += "}";
    auto parsed = Context::Parse(text);
    if (parsed) {
      EXPECT_EQ(parsed->FullyQualifiedKey(), "u");
    }
    std::string objects = R"({"kind":"user","key":"u")";
    for (int i = 0; i < depth; ++i) objects += R"(,"a":{"b":1)";
    objects.append(static_cast<std::size_t>(depth), '}');
    objects += "}";
    auto parsed_objects = Context::Parse(objects);
    if (parsed_objects) {
      EXPECT_EQ(parsed_objects->FullyQualifiedKey(), "u");
    }
  }
}

TEST(ContextParse, InvalidUtf8AndControlBytesDoNotCrash) {
  static constexpr char kNul[] = "{\"kind\":\"user\",\"key\":\"a\0b\"}";
  const std::string cases[] = {
      std::string("{\"kind\":\"user\",\"key\":\"\xff\xfe\"}"),
      std::string(kNul, sizeof(kNul) - 1),
      std::string("{\"key\":\"\\u0000\"}"),
      std::string("{\"key\":\"\\ud800\"}"),
  };
  for (const auto& text : cases) {
    auto parsed = Context::Parse(text);
    if (parsed) (void)parsed->FullyQualifiedKey();
  }
}

}  // namespace
}  // namespace flagrelay::eval
