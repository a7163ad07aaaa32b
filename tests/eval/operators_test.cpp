// Clause operators and attribute lookup, as go-server-sdk-evaluation v3 defines them. Each case
// is one clause in rule 0 of a boolean flag: a match serves `true` with RULE_MATCH, a non-match
// falls through to `false`.

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "eval_test_util.hpp"
#include "flagrelay/eval/evaluator.hpp"

namespace flagrelay::eval {
namespace {

using testing::ClauseOutcome;
using testing::Outcome;

// ---------------------------------------------------------------------------------------------
// Operators: context attribute "attr" = `value`, clause {"attribute":"attr","op":op,"values":..}.

struct OpCase {
  const char* name;
  const char* value;  // JSON of the context attribute
  const char* op;
  const char* values;  // JSON array of clause values
  bool match;
};
void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

std::string OpContext(const OpCase& c) {
  return std::string(R"({"kind":"user","key":"u","attr":)") + c.value + "}";
}

std::string OpClause(const OpCase& c, bool negate) {
  return std::string(R"({"attribute":"attr","op":")") + c.op + R"(","values":)" + c.values +
         R"(,"negate":)" + (negate ? "true" : "false") + "}";
}

class Operator : public ::testing::TestWithParam<OpCase> {};

TEST_P(Operator, Matches) {
  const OpCase& c = GetParam();
  EXPECT_EQ(ClauseOutcome(OpClause(c, false), OpContext(c)),
            c.match ? Outcome::kMatch : Outcome::kNoMatch)
      << "attr=" << c.value << " " << c.op << " " << c.values;
}

TEST_P(Operator, NegateInvertsWhenTheAttributeExists) {
  const OpCase& c = GetParam();
  EXPECT_EQ(ClauseOutcome(OpClause(c, true), OpContext(c)),
            c.match ? Outcome::kNoMatch : Outcome::kMatch)
      << "attr=" << c.value << " NOT " << c.op << " " << c.values;
}

std::string OpName(const ::testing::TestParamInfo<OpCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(
    In, Operator,
    ::testing::Values(
        OpCase{"StringEqual", R"("a")", "in", R"(["a"])", true},
        OpCase{"StringAnyOfMany", R"("c")", "in", R"(["a","b","c"])", true},
        OpCase{"StringDifferent", R"("a")", "in", R"(["b"])", false},
        OpCase{"StringCaseSensitive", R"("A")", "in", R"(["a"])", false},
        OpCase{"EmptyValues", R"("a")", "in", "[]", false},
        OpCase{"IntEqualsFloat", "1", "in", "[1.0]", true},
        OpCase{"FloatEqualsInt", "2.0", "in", "[2]", true},
        OpCase{"NumberDifferent", "1", "in", "[1.5]", false},
        OpCase{"NegativeZero", "-0", "in", "[0]", true},
        // Numbers are doubles (Go's float64, JavaScript): 2^53 + 1 rounds to 2^53.
        OpCase{"BigIntegersCompareAsDoubles", "9007199254740993", "in", "[9007199254740992]", true},
        OpCase{"NumberIsNotString", "1", "in", R"(["1"])", false},
        OpCase{"StringIsNotNumber", R"("1")", "in", "[1]", false},
        OpCase{"BoolEqual", "true", "in", "[true]", true},
        OpCase{"BoolDifferent", "false", "in", "[true]", false},
        OpCase{"BoolIsNotString", "true", "in", R"(["true"])", false},
        OpCase{"ZeroIsNotFalse", "0", "in", "[false]", false},
        OpCase{"EmptyStringIsNotNull", R"("")", "in", "[null]", false},
        OpCase{"ObjectNeverEqual", R"({"a":1})", "in", R"([{"a":1}])", false},
        OpCase{"ArrayElementMatches", R"(["x","y"])", "in", R"(["y"])", true},
        OpCase{"ArrayNoElementMatches", R"(["x","y"])", "in", R"(["z"])", false},
        OpCase{"ArrayIsNotComparedWhole", R"(["x","y"])", "in", R"([["x","y"]])", false},
        OpCase{"EmptyArrayNeverMatches", "[]", "in", R"(["x"])", false},
        OpCase{"NestedArrayElementNotFlattened", R"([["x"]])", "in", R"(["x"])", false},
        OpCase{"ArrayOfNumbers", "[1,2,3]", "in", "[3.0]", true}),
    OpName);

INSTANTIATE_TEST_SUITE_P(
    Strings, Operator,
    ::testing::Values(
        OpCase{"EndsWith", R"("hello")", "endsWith", R"(["lo"])", true},
        OpCase{"EndsWithNot", R"("hello")", "endsWith", R"(["he"])", false},
        OpCase{"EndsWithAnyValue", R"("hello")", "endsWith", R"(["x","llo"])", true},
        OpCase{"EndsWithWhole", R"("hello")", "endsWith", R"(["hello"])", true},
        OpCase{"EndsWithLonger", R"("lo")", "endsWith", R"(["hello"])", false},
        OpCase{"EndsWithEmpty", R"("hello")", "endsWith", R"([""])", true},
        OpCase{"EndsWithNumberAttr", "10", "endsWith", R"(["0"])", false},
        OpCase{"EndsWithNumberValue", R"("10")", "endsWith", "[0]", false},
        OpCase{"StartsWith", R"("hello")", "startsWith", R"(["he"])", true},
        OpCase{"StartsWithNot", R"("hello")", "startsWith", R"(["lo"])", false},
        OpCase{"StartsWithCaseSensitive", R"("Hello")", "startsWith", R"(["he"])", false},
        OpCase{"StartsWithBoolAttr", "true", "startsWith", R"(["t"])", false},
        OpCase{"Contains", R"("hello")", "contains", R"(["ell"])", true},
        OpCase{"ContainsNot", R"("hello")", "contains", R"(["xyz"])", false},
        OpCase{"ContainsEmpty", R"("")", "contains", R"([""])", true},
        OpCase{"ContainsNumberAttr", "12345", "contains", R"(["3"])", false},
        OpCase{"ContainsUtf8", R"("naïve café")", "contains", R"(["é"])", true},
        OpCase{"ContainsArrayElement", R"(["abc","xyz"])", "contains", R"(["y"])", true}),
    OpName);

INSTANTIATE_TEST_SUITE_P(
    Matches, Operator,
    ::testing::Values(OpCase{"Unanchored", R"("hello world")", "matches", R"(["wor"])", true},
                      // Code points, not bytes; ^ and $ at the ends of the text; . not newline.
                      OpCase{"DotIsACodePoint", R"("Köln")", "matches", R"(["^.{4}$"])", true},
                      OpCase{"CaretOnlyAtStart", R"("a\nb")", "matches", R"(["^b"])", false},
                      OpCase{"DollarOnlyAtEnd", R"("a\n")", "matches", R"(["^$"])", false},
                      OpCase{"DotSkipsNewline", R"("a\nb")", "matches", R"(["a.b"])", false},
                      OpCase{"Anchored", R"("hello")", "matches", R"(["^h.*o$"])", true},
                      OpCase{"AnchorFails", R"("hello")", "matches", R"(["^e"])", false},
                      OpCase{"EscapedDot", R"("a.b")", "matches", R"(["a\\.b"])", true},
                      OpCase{"EscapedDotNoMatch", R"("axb")", "matches", R"(["a\\.b"])", false},
                      OpCase{"CharacterClass", R"("user-42")", "matches", R"(["[0-9]+$"])", true},
                      OpCase{"Alternation", R"("beta")", "matches", R"(["^(alpha|beta)$"])", true},
                      OpCase{"CaseSensitive", R"("ABC")", "matches", R"(["abc"])", false},
                      OpCase{"AnyValue", R"("abc")", "matches", R"(["^x","b"])", true},
                      OpCase{"InvalidRegexNeverMatches", R"("abc")", "matches", R"(["["])", false},
                      OpCase{"InvalidThenValid", R"("abc")", "matches", R"(["(","^a"])", true},
                      OpCase{"NumberAttr", "5", "matches", R"(["5"])", false},
                      OpCase{"NumberValue", R"("5")", "matches", "[5]", false},
                      OpCase{"EmptyPatternMatchesAll", R"("abc")", "matches", R"([""])", true}),
    OpName);

INSTANTIATE_TEST_SUITE_P(
    Numbers, Operator,
    ::testing::Values(OpCase{"LessThan", "5", "lessThan", "[6]", true},
                      OpCase{"LessThanEqual", "6", "lessThan", "[6]", false},
                      OpCase{"LessThanFloat", "5.5", "lessThan", "[5.6]", true},
                      OpCase{"LessThanNegative", "-1", "lessThan", "[0]", true},
                      OpCase{"LessThanAnyValue", "5", "lessThan", "[1,10]", true},
                      OpCase{"LessThanStringAttr", R"("5")", "lessThan", "[6]", false},
                      OpCase{"LessThanStringValue", "5", "lessThan", R"(["6"])", false},
                      OpCase{"LessThanBool", "false", "lessThan", "[1]", false},
                      OpCase{"LessThanOrEqualEqual", "6", "lessThanOrEqual", "[6.0]", true},
                      OpCase{"LessThanOrEqualGreater", "7", "lessThanOrEqual", "[6]", false},
                      OpCase{"GreaterThan", "7", "greaterThan", "[6]", true},
                      OpCase{"GreaterThanEqual", "6", "greaterThan", "[6]", false},
                      OpCase{"GreaterThanFloat", "5.5", "greaterThan", "[5]", true},
                      OpCase{"GreaterThanOrEqualEqual", "6", "greaterThanOrEqual", "[6]", true},
                      OpCase{"GreaterThanOrEqualLess", "5.999", "greaterThanOrEqual", "[6]", false},
                      OpCase{"GreaterThanHuge", "1e300", "greaterThan", "[1e299]", true},
                      OpCase{"GreaterThanStringAttr", R"("7")", "greaterThan", "[6]", false}),
    OpName);

// 2024-01-01T00:00:00Z is 1704067200000 ms.
INSTANTIATE_TEST_SUITE_P(
    Dates, Operator,
    ::testing::Values(
        OpCase{"BeforeStrings", R"("2024-01-01T00:00:00Z")", "before",
               R"(["2024-01-02T00:00:00Z"])", true},
        OpCase{"AfterStringsFalse", R"("2024-01-01T00:00:00Z")", "after",
               R"(["2024-01-02T00:00:00Z"])", false},
        OpCase{"AfterStrings", R"("2024-01-03T00:00:00Z")", "after", R"(["2024-01-02T00:00:00Z"])",
               true},
        OpCase{"BeforeEqualIsFalse", R"("2024-01-01T00:00:00Z")", "before",
               R"(["2024-01-01T00:00:00Z"])", false},
        OpCase{"AfterEqualIsFalse", "1704067200000", "after", R"(["2024-01-01T00:00:00Z"])", false},
        OpCase{"NumberAttrStringValue", "1704067200000", "before", R"(["2024-01-01T00:00:01Z"])",
               true},
        OpCase{"StringAttrNumberValue", R"("2024-01-01T00:00:00Z")", "after", "[1704067199000]",
               true},
        OpCase{"NumbersBothSides", "1000", "before", "[2000]", true},
        OpCase{"NumbersBothSidesAfter", "3000", "after", "[2000]", true},
        OpCase{"OffsetIsApplied", R"("2024-01-01T01:00:00+01:00")", "before", "[1704067200001]",
               true},
        OpCase{"OffsetIsAppliedAfter", R"("2024-01-01T01:00:00+01:00")", "after", "[1704067199999]",
               true},
        OpCase{"NegativeOffset", R"("2023-12-31T23:00:00-01:00")", "after", "[1704067199999]",
               true},
        OpCase{"FractionalSeconds", R"("2024-01-01T00:00:00.5Z")", "after", "[1704067200000]",
               true},
        OpCase{"LowercaseTAndZ", R"("2024-01-01t00:00:00z")", "before", "[1704067200001]", true},
        OpCase{"BadAttrString", R"("not a date")", "before", "[1704067200000]", false},
        OpCase{"BadValueString", "1000", "before", R"(["tomorrow"])", false},
        OpCase{"NoTimeZoneIsInvalid", R"("2024-01-01T00:00:00")", "before", "[1804067200000]",
               false},
        OpCase{"DateOnlyIsInvalid", R"("2024-01-01")", "before", "[1804067200000]", false},
        OpCase{"BoolAttr", "true", "before", "[1804067200000]", false},
        OpCase{"NullValue", "1000", "before", "[null]", false},
        OpCase{"BadValueThenGood", "1000", "before", R"(["x",2000])", true}),
    OpName);

INSTANTIATE_TEST_SUITE_P(
    SemVer, Operator,
    ::testing::Values(
        OpCase{"Equal", R"("2.0.0")", "semVerEqual", R"(["2.0.0"])", true},
        OpCase{"EqualMissingMinorPatch", R"("2")", "semVerEqual", R"(["2.0.0"])", true},
        OpCase{"EqualMissingPatch", R"("2.0")", "semVerEqual", R"(["2.0.0"])", true},
        OpCase{"EqualClauseShort", R"("2.0.0")", "semVerEqual", R"(["2"])", true},
        OpCase{"NotEqual", R"("2.0.1")", "semVerEqual", R"(["2.0.0"])", false},
        OpCase{"BuildIgnored", R"("2.0.0+build.5")", "semVerEqual", R"(["2.0.0"])", true},
        OpCase{"PrereleaseNotEqual", R"("2.0.0-rc.1")", "semVerEqual", R"(["2.0.0"])", false},
        OpCase{"LessThan", R"("1.2.3")", "semVerLessThan", R"(["1.10.0"])", true},
        OpCase{"LessThanEqualIsFalse", R"("1.2.3")", "semVerLessThan", R"(["1.2.3"])", false},
        OpCase{"PrereleaseBeforeRelease", R"("2.0.0-rc.1")", "semVerLessThan", R"(["2.0.0"])",
               true},
        OpCase{"PrereleaseNumericOrder", R"("2.0.0-rc.10")", "semVerGreaterThan",
               R"(["2.0.0-rc.2"])", true},
        OpCase{"PrereleaseShorterFirst", R"("2.0.0-alpha")", "semVerLessThan",
               R"(["2.0.0-alpha.1"])", true},
        OpCase{"PrereleaseAlphaAfterNumeric", R"("2.0.0-alpha.beta")", "semVerGreaterThan",
               R"(["2.0.0-alpha.1"])", true},
        OpCase{"GreaterThan", R"("3")", "semVerGreaterThan", R"(["2.9.9"])", true},
        OpCase{"GreaterThanNot", R"("2.9.9")", "semVerGreaterThan", R"(["3"])", false},
        OpCase{"NumberAttr", "2", "semVerEqual", R"(["2.0.0"])", false},
        OpCase{"NumberValue", R"("2.0.0")", "semVerEqual", "[2]", false},
        OpCase{"VPrefixInvalid", R"("v2.0.0")", "semVerEqual", R"(["2.0.0"])", false},
        OpCase{"LeadingZeroInvalid", R"("02.0.0")", "semVerEqual", R"(["2.0.0"])", false},
        OpCase{"GarbageInvalid", R"("two")", "semVerLessThan", R"(["3.0.0"])", false},
        OpCase{"BadClauseValueThenGood", R"("2.0.0")", "semVerEqual", R"(["x","2"])", true}),
    OpName);

// ---------------------------------------------------------------------------------------------
// Attribute lookup and clause-level rules

struct ClauseCase {
  const char* name;
  const char* context;
  const char* clause;
  Outcome expected;
};
void PrintTo(const ClauseCase& c, std::ostream* os) { *os << c.name; }

class Clause : public ::testing::TestWithParam<ClauseCase> {};

TEST_P(Clause, Outcome) {
  const ClauseCase& c = GetParam();
  EXPECT_EQ(ClauseOutcome(c.clause, c.context), c.expected)
      << "context " << c.context << "\nclause " << c.clause;
}

std::string ClauseName(const ::testing::TestParamInfo<ClauseCase>& info) { return info.param.name; }

constexpr const char* kUser = R"({"kind":"user","key":"u","name":"Ann","plan":"gold"})";
constexpr const char* kOrg = R"({"kind":"org","key":"o","name":"Acme"})";
constexpr const char* kMulti =
    R"({"kind":"multi","user":{"key":"u","name":"Ann"},"org":{"key":"o","name":"Acme"}})";

INSTANTIATE_TEST_SUITE_P(
    MissingAndUnknown, Clause,
    ::testing::Values(
        ClauseCase{"MissingAttributeNoMatch", kUser,
                   R"({"attribute":"nope","op":"in","values":["x"]})", Outcome::kNoMatch},
        ClauseCase{"MissingAttributeNegatedStillNoMatch", kUser,
                   R"({"attribute":"nope","op":"in","values":["x"],"negate":true})",
                   Outcome::kNoMatch},
        ClauseCase{"NullAttributeIsMissing", R"({"kind":"user","key":"u","x":null})",
                   R"({"attribute":"x","op":"in","values":[null],"negate":true})",
                   Outcome::kNoMatch},
        ClauseCase{"UnknownOperatorNoMatch", kUser,
                   R"({"attribute":"plan","op":"isGolden","values":["gold"]})", Outcome::kNoMatch},
        ClauseCase{"UnknownOperatorNegatedMatches", kUser,
                   R"({"attribute":"plan","op":"isGolden","values":["gold"],"negate":true})",
                   Outcome::kMatch},
        ClauseCase{"MissingOperatorNoMatch", kUser, R"({"attribute":"plan","values":["gold"]})",
                   Outcome::kNoMatch},
        ClauseCase{"NegatedNonMatchMatches", kUser,
                   R"({"attribute":"plan","op":"in","values":["silver"],"negate":true})",
                   Outcome::kMatch},
        ClauseCase{"MissingValuesNoMatch", kUser, R"({"attribute":"plan","op":"in"})",
                   Outcome::kNoMatch},
        ClauseCase{"EmptyAttributeIsMalformed", kUser,
                   R"({"attribute":"","op":"in","values":["x"]})", Outcome::kError},
        ClauseCase{"NoAttributeIsMalformed", kUser, R"({"op":"in","values":["x"]})",
                   Outcome::kError},
        ClauseCase{"EmptyAttributeWithContextKindIsMalformed", kUser,
                   R"({"contextKind":"user","attribute":"","op":"in","values":["x"]})",
                   Outcome::kError},
        ClauseCase{"InvalidPathIsMalformed", kUser,
                   R"({"contextKind":"user","attribute":"/","op":"in","values":["x"]})",
                   Outcome::kError},
        ClauseCase{"InvalidPathEmptyComponentIsMalformed", kUser,
                   R"({"contextKind":"user","attribute":"/a//b","op":"in","values":["x"]})",
                   Outcome::kError},
        ClauseCase{"InvalidEscapeIsMalformed", kUser,
                   R"({"contextKind":"user","attribute":"/a~2","op":"in","values":["x"]})",
                   Outcome::kError}),
    ClauseName);

INSTANTIATE_TEST_SUITE_P(
    BuiltIns, Clause,
    ::testing::Values(
        ClauseCase{"Key", kUser, R"({"attribute":"key","op":"in","values":["u"]})",
                   Outcome::kMatch},
        ClauseCase{"KeyStartsWith", kUser,
                   R"({"attribute":"key","op":"startsWith","values":["u"]})", Outcome::kMatch},
        ClauseCase{"Name", kUser, R"({"attribute":"name","op":"in","values":["Ann"]})",
                   Outcome::kMatch},
        ClauseCase{"AnonymousDefaultsToFalse", kUser,
                   R"({"attribute":"anonymous","op":"in","values":[false]})", Outcome::kMatch},
        ClauseCase{"AnonymousDefaultFalseNegated", kUser,
                   R"({"attribute":"anonymous","op":"in","values":[true],"negate":true})",
                   Outcome::kMatch},
        ClauseCase{"AnonymousTrue", R"({"kind":"user","key":"u","anonymous":true})",
                   R"({"attribute":"anonymous","op":"in","values":[true]})", Outcome::kMatch},
        ClauseCase{"AnonymousOfOrgInMulti", kMulti,
                   R"({"contextKind":"org","attribute":"anonymous","op":"in","values":[false]})",
                   Outcome::kMatch},
        ClauseCase{"KindSingleUser", kUser, R"({"attribute":"kind","op":"in","values":["user"]})",
                   Outcome::kMatch},
        ClauseCase{"KindSingleOrg", kOrg, R"({"attribute":"kind","op":"in","values":["org"]})",
                   Outcome::kMatch},
        ClauseCase{"KindSingleOrgIsNotUser", kOrg,
                   R"({"attribute":"kind","op":"in","values":["user"]})", Outcome::kNoMatch},
        ClauseCase{"KindMultiAnyKind", kMulti, R"({"attribute":"kind","op":"in","values":["org"]})",
                   Outcome::kMatch},
        ClauseCase{"KindMultiOtherOperators", kMulti,
                   R"({"attribute":"kind","op":"startsWith","values":["us"]})", Outcome::kMatch},
        ClauseCase{"KindMultiNotMulti", kMulti,
                   R"({"attribute":"kind","op":"in","values":["multi"]})", Outcome::kNoMatch},
        ClauseCase{"KindMultiNegated", kMulti,
                   R"({"attribute":"kind","op":"in","values":["device"],"negate":true})",
                   Outcome::kMatch},
        ClauseCase{"KindOldUser", R"({"key":"u"})",
                   R"({"attribute":"kind","op":"in","values":["user"]})", Outcome::kMatch},
        ClauseCase{"KindNewStyleClause", kOrg,
                   R"({"contextKind":"org","attribute":"kind","op":"in","values":["org"]})",
                   Outcome::kMatch}),
    ClauseName);

INSTANTIATE_TEST_SUITE_P(
    ContextKinds, Clause,
    ::testing::Values(
        ClauseCase{"NoContextKindMeansUser", kMulti,
                   R"({"attribute":"name","op":"in","values":["Ann"]})", Outcome::kMatch},
        ClauseCase{"NoContextKindIgnoresOrg", kMulti,
                   R"({"attribute":"name","op":"in","values":["Acme"]})", Outcome::kNoMatch},
        ClauseCase{"OrgKindInMulti", kMulti,
                   R"({"contextKind":"org","attribute":"name","op":"in","values":["Acme"]})",
                   Outcome::kMatch},
        ClauseCase{"OrgKindKeyInMulti", kMulti,
                   R"({"contextKind":"org","attribute":"key","op":"in","values":["o"]})",
                   Outcome::kMatch},
        ClauseCase{"OrgKindSingleOrg", kOrg,
                   R"({"contextKind":"org","attribute":"name","op":"in","values":["Acme"]})",
                   Outcome::kMatch},
        ClauseCase{"MissingKindNoMatch", kUser,
                   R"({"contextKind":"org","attribute":"name","op":"in","values":["Acme"]})",
                   Outcome::kNoMatch},
        ClauseCase{"MissingKindNegatedStillNoMatch", kUser,
                   R"({"contextKind":"org","attribute":"name","op":"in","values":["x"],)"
                   R"("negate":true})",
                   Outcome::kNoMatch},
        ClauseCase{"UserClauseOnOrgContext", kOrg,
                   R"({"attribute":"name","op":"in","values":["Acme"]})", Outcome::kNoMatch},
        ClauseCase{"ExplicitUserKind", kMulti,
                   R"({"contextKind":"user","attribute":"name","op":"in","values":["Ann"]})",
                   Outcome::kMatch}),
    ClauseName);

constexpr const char* kNested =
    R"({"kind":"user","key":"u","/a":"slash","a/b":"ab","c~d":"tilde",)"
    R"("address":{"city":"Paris","geo":{"lat":1}},"arr":["x","y"],"s":"str"})";

INSTANTIATE_TEST_SUITE_P(
    AttributeReferences, Clause,
    ::testing::Values(
        ClauseCase{"OldStyleSlashIsLiteral", kNested,
                   R"({"attribute":"/a","op":"in","values":["slash"]})", Outcome::kMatch},
        ClauseCase{"OldStylePathIsNotAPath", kNested,
                   R"({"attribute":"/address/city","op":"in","values":["Paris"]})",
                   Outcome::kNoMatch},
        ClauseCase{"OldStyleSlashInsideName", kNested,
                   R"({"attribute":"a/b","op":"in","values":["ab"]})", Outcome::kMatch},
        ClauseCase{"NewStylePath", kNested,
                   R"({"contextKind":"user","attribute":"/address/city","op":"in",)"
                   R"("values":["Paris"]})",
                   Outcome::kMatch},
        ClauseCase{"NewStyleDeepPath", kNested,
                   R"({"contextKind":"user","attribute":"/address/geo/lat","op":"in",)"
                   R"("values":[1]})",
                   Outcome::kMatch},
        ClauseCase{"NewStylePlainName", kNested,
                   R"({"contextKind":"user","attribute":"s","op":"in","values":["str"]})",
                   Outcome::kMatch},
        ClauseCase{"NewStyleSlashEscape", kNested,
                   R"({"contextKind":"user","attribute":"/a~1b","op":"in","values":["ab"]})",
                   Outcome::kMatch},
        ClauseCase{"NewStyleTildeEscape", kNested,
                   R"({"contextKind":"user","attribute":"/c~0d","op":"in","values":["tilde"]})",
                   Outcome::kMatch},
        ClauseCase{"NewStyleSlashAttrNeedsEscape", kNested,
                   R"({"contextKind":"user","attribute":"/~1a","op":"in","values":["slash"]})",
                   Outcome::kMatch},
        ClauseCase{"NewStyleLeadingSlashIsPath", kNested,
                   R"({"contextKind":"user","attribute":"/a","op":"in","values":["slash"]})",
                   Outcome::kNoMatch},
        ClauseCase{"PathThroughString", kNested,
                   R"({"contextKind":"user","attribute":"/s/x","op":"in","values":["str"]})",
                   Outcome::kNoMatch},
        ClauseCase{"PathMissingLeaf", kNested,
                   R"({"contextKind":"user","attribute":"/address/zip","op":"in",)"
                   R"("values":["x"],"negate":true})",
                   Outcome::kNoMatch},
        ClauseCase{"NoArrayIndexing", kNested,
                   R"({"contextKind":"user","attribute":"/arr/0","op":"in","values":["x"]})",
                   Outcome::kNoMatch},
        ClauseCase{"PathToObjectNeverEquals", kNested,
                   R"({"contextKind":"user","attribute":"/address","op":"in",)"
                   R"("values":[{"city":"Paris","geo":{"lat":1}}]})",
                   Outcome::kNoMatch},
        ClauseCase{"PathKey", kNested,
                   R"({"contextKind":"user","attribute":"/key","op":"in","values":["u"]})",
                   Outcome::kMatch}),
    ClauseName);

constexpr const char* kOldUser =
    R"({"key":"u","secondary":"sec","ip":"1.2.3.4","country":"NZ","email":"a@b.c",)"
    R"("firstName":"Ann","lastName":"Lee","avatar":"http://a","name":"Ann Lee","foo":"top",)"
    R"("anonymous":true,"custom":{"groups":["a","b"],"n":3,"nested":{"x":"y"}}})";

INSTANTIATE_TEST_SUITE_P(
    OldUser, Clause,
    ::testing::Values(
        ClauseCase{"Key", kOldUser, R"({"attribute":"key","op":"in","values":["u"]})",
                   Outcome::kMatch},
        ClauseCase{"Ip", kOldUser, R"({"attribute":"ip","op":"in","values":["1.2.3.4"]})",
                   Outcome::kMatch},
        ClauseCase{"Country", kOldUser, R"({"attribute":"country","op":"in","values":["NZ"]})",
                   Outcome::kMatch},
        ClauseCase{"Email", kOldUser, R"({"attribute":"email","op":"endsWith","values":["b.c"]})",
                   Outcome::kMatch},
        ClauseCase{"FirstName", kOldUser, R"({"attribute":"firstName","op":"in","values":["Ann"]})",
                   Outcome::kMatch},
        ClauseCase{"LastName", kOldUser, R"({"attribute":"lastName","op":"in","values":["Lee"]})",
                   Outcome::kMatch},
        ClauseCase{"Avatar", kOldUser, R"({"attribute":"avatar","op":"in","values":["http://a"]})",
                   Outcome::kMatch},
        ClauseCase{"Name", kOldUser, R"({"attribute":"name","op":"in","values":["Ann Lee"]})",
                   Outcome::kMatch},
        ClauseCase{"Anonymous", kOldUser, R"({"attribute":"anonymous","op":"in","values":[true]})",
                   Outcome::kMatch},
        ClauseCase{"AnonymousNullIsFalse", R"({"key":"u","anonymous":null})",
                   R"({"attribute":"anonymous","op":"in","values":[false]})", Outcome::kMatch},
        ClauseCase{"CustomArray", kOldUser, R"({"attribute":"groups","op":"in","values":["b"]})",
                   Outcome::kMatch},
        ClauseCase{"CustomNumber", kOldUser, R"({"attribute":"n","op":"greaterThan","values":[2]})",
                   Outcome::kMatch},
        ClauseCase{"CustomNestedByPath", kOldUser,
                   R"({"contextKind":"user","attribute":"/nested/x","op":"in","values":["y"]})",
                   Outcome::kMatch},
        ClauseCase{"CustomIsNotAnAttribute", kOldUser,
                   R"({"attribute":"custom","op":"in","values":["x"],"negate":true})",
                   Outcome::kNoMatch},
        ClauseCase{"UnknownTopLevelIgnored", kOldUser,
                   R"({"attribute":"foo","op":"in","values":["top"]})", Outcome::kNoMatch},
        ClauseCase{"SecondaryIsNotAnAttribute", kOldUser,
                   R"({"attribute":"secondary","op":"in","values":["sec"]})", Outcome::kNoMatch},
        ClauseCase{"MultiKindsClauseOnOldUser", kOldUser,
                   R"({"contextKind":"org","attribute":"key","op":"in","values":["u"]})",
                   Outcome::kNoMatch}),
    ClauseName);

// ---------------------------------------------------------------------------------------------
// Rules: several clauses, several rules

TEST(Rules, AllClausesMustMatch) {
  const char* both = R"([{"attribute":"name","op":"in","values":["Ann"]},)"
                     R"({"attribute":"plan","op":"in","values":["gold"]}])";
  const char* one = R"([{"attribute":"name","op":"in","values":["Ann"]},)"
                    R"({"attribute":"plan","op":"in","values":["silver"]}])";
  auto data = testing::Data({testing::RuleFlag(both)});
  EXPECT_EQ(testing::OutcomeOf(testing::Eval(*data, "f", kUser)), Outcome::kMatch);
  data = testing::Data({testing::RuleFlag(one)});
  EXPECT_EQ(testing::OutcomeOf(testing::Eval(*data, "f", kUser)), Outcome::kNoMatch);
}

TEST(Rules, NoClausesMatchesEveryone) {
  auto data = testing::Data({testing::RuleFlag("[]")});
  EXPECT_EQ(testing::OutcomeOf(testing::Eval(*data, "f", kUser)), Outcome::kMatch);
  EXPECT_EQ(testing::OutcomeOf(testing::Eval(*data, "f", kOrg)), Outcome::kMatch);
}

TEST(Rules, MalformedClauseAfterANonMatchingClauseIsNotReached) {
  auto data = testing::Data({testing::RuleFlag(
      R"([{"attribute":"name","op":"in","values":["Zed"]},{"attribute":"","op":"in"}])")});
  EXPECT_EQ(testing::OutcomeOf(testing::Eval(*data, "f", kUser)), Outcome::kNoMatch);
}

TEST(Rules, MalformedClauseAfterAMatchingClauseIsAnError) {
  auto data = testing::Data({testing::RuleFlag(
      R"([{"attribute":"name","op":"in","values":["Ann"]},{"attribute":"","op":"in"}])")});
  EXPECT_EQ(testing::OutcomeOf(testing::Eval(*data, "f", kUser)), Outcome::kError);
}

// Clauses are decided in order: a non-match already known (every `in` clause is computed before
// the flags) does not hide a failing clause in front of it, whether it fails by itself or in the
// segment it refers to; a lazily computed clause in front of a non-match needs no computing.
TEST(Rules, KnownNonMatchAfterAFailingClauseIsNotReached) {
  const std::vector<std::string> segments = {
      R"({"key":"cycle","version":1,"rules":[{"clauses":[{"op":"segmentMatch","values":["cycle"]}]}]})"};
  for (const char* failing :
       {R"({"attribute":"","op":"in"})", R"({"op":"segmentMatch","values":["cycle"]})"}) {
    auto data =
        testing::Data({testing::RuleFlag(std::string("[") + failing +
                                         R"(,{"attribute":"name","op":"in","values":["Zed"]}])")},
                      segments);
    EXPECT_EQ(testing::OutcomeOf(testing::Eval(*data, "f", kUser)), Outcome::kError) << failing;
    data = testing::Data(
        {testing::RuleFlag(std::string(R"([{"attribute":"name","op":"in","values":["Zed"]},)") +
                           failing + "]")},
        segments);
    EXPECT_EQ(testing::OutcomeOf(testing::Eval(*data, "f", kUser)), Outcome::kNoMatch) << failing;
  }
  auto data = testing::Data({testing::RuleFlag(
      R"([{"attribute":"name","op":"matches","values":["^A"]},{"attribute":"name","op":"in","values":["Zed"]}])")});
  EXPECT_EQ(testing::OutcomeOf(testing::Eval(*data, "f", kUser)), Outcome::kNoMatch);
  data = testing::Data({testing::RuleFlag(
      R"([{"attribute":"name","op":"matches","values":["^A"]},{"attribute":"name","op":"in","values":["Ann"]}])")});
  EXPECT_EQ(testing::OutcomeOf(testing::Eval(*data, "f", kUser)), Outcome::kMatch);
}

TEST(Rules, SegmentMatchClauseNeedsNoAttribute) {
  // segmentMatch is decided before the attribute is looked at (Go evaluates it first).
  EXPECT_EQ(ClauseOutcome(R"({"attribute":"","op":"segmentMatch","values":["s"]})", kUser,
                          {R"({"key":"s","version":1,"included":["u"]})"}),
            Outcome::kMatch);
  EXPECT_EQ(ClauseOutcome(R"({"op":"segmentMatch","values":["s"]})", kUser,
                          {R"({"key":"s","version":1,"included":["u"]})"}),
            Outcome::kMatch);
}

TEST(Operators, CatastrophicRegexDoesNotThrowOrCrash) {
  // A backtracking bomb: std::regex / boost::regex may give up (and throw); the engine must turn
  // that into a non-match or an error result, never an exception.
  const std::string context =
      R"({"kind":"user","key":"u","attr":")" + std::string(40, 'a') + R"(!"})";
  const auto outcome =
      ClauseOutcome(R"({"attribute":"attr","op":"matches","values":["^(a+)+$"]})", context);
  EXPECT_NE(outcome, Outcome::kMatch);
  EXPECT_NE(outcome, Outcome::kOther);
}

TEST(Operators, LongStringsWork) {
  const std::string big(200000, 'x');
  const std::string context = R"({"kind":"user","key":"u","attr":")" + big + R"(y"})";
  EXPECT_EQ(ClauseOutcome(R"({"attribute":"attr","op":"endsWith","values":["xy"]})", context),
            Outcome::kMatch);
  EXPECT_EQ(ClauseOutcome(R"({"attribute":"attr","op":"matches","values":["xy$"]})", context),
            Outcome::kMatch);
}

}  // namespace
}  // namespace flagrelay::eval
