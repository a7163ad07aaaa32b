#include "flagrelay/eval/timestamp.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace flagrelay::eval {
namespace {

// Expected epoch values were computed independently with Python's datetime.
TEST(ParseTimestamp, UtcDates) {
  EXPECT_EQ(ParseTimestamp("1970-01-01T00:00:00Z"), 0.0);
  EXPECT_EQ(ParseTimestamp("2000-01-01T00:00:00Z"), 946684800000.0);
  EXPECT_EQ(ParseTimestamp("1969-12-31T23:59:59Z"), -1000.0);
  EXPECT_EQ(ParseTimestamp("0001-01-01T00:00:00Z"), -62135596800000.0);
  EXPECT_EQ(ParseTimestamp("9999-12-31T23:59:59Z"), 253402300799000.0);
}

TEST(ParseTimestamp, LeapDays) {
  EXPECT_EQ(ParseTimestamp("2024-02-29T12:00:00Z"), 1709208000000.0);
  EXPECT_EQ(ParseTimestamp("2000-02-29T23:59:59Z"), 951868799000.0);  // divisible by 400
  EXPECT_EQ(ParseTimestamp("2023-02-29T00:00:00Z"), std::nullopt);
  EXPECT_EQ(ParseTimestamp("1900-02-29T00:00:00Z"), std::nullopt);  // divisible by 100
  EXPECT_EQ(ParseTimestamp("2024-02-30T00:00:00Z"), std::nullopt);
  EXPECT_EQ(ParseTimestamp("2024-04-31T00:00:00Z"), std::nullopt);
}

TEST(ParseTimestamp, Offsets) {
  EXPECT_EQ(ParseTimestamp("2024-02-29T12:00:00+01:00"), 1709204400000.0);
  EXPECT_EQ(ParseTimestamp("2024-03-01T00:00:00-05:30"), 1709271000000.0);
  EXPECT_EQ(ParseTimestamp("2024-02-29T12:00:00+00:00"), ParseTimestamp("2024-02-29T12:00:00Z"));
  EXPECT_EQ(ParseTimestamp("2024-02-29T12:00:00-00:00"), ParseTimestamp("2024-02-29T12:00:00Z"));
  EXPECT_EQ(ParseTimestamp("2024-02-29t12:00:00z"), ParseTimestamp("2024-02-29T12:00:00Z"));
}

TEST(ParseTimestamp, FractionalSeconds) {
  EXPECT_EQ(ParseTimestamp("1970-01-01T00:00:00.5Z"), 500.0);
  EXPECT_EQ(ParseTimestamp("1970-01-01T00:00:01.123Z"), 1123.0);
  EXPECT_NEAR(*ParseTimestamp("1970-01-01T00:00:00.123456789+00:00"), 123.456789, 1e-9);
  EXPECT_EQ(ParseTimestamp("2000-01-01T01:00:00.250+01:00"), 946684800250.0);
  EXPECT_EQ(ParseTimestamp("2024-02-29T12:00:00.999Z"), 1709208000999.0);
  // Digits past nanoseconds are dropped.
  EXPECT_EQ(ParseTimestamp("1970-01-01T00:00:00.0010000009Z"), 1.0);
}

TEST(ParseTimestamp, RejectsGarbage) {
  for (const char* bad : {"",
                          "garbage",
                          "2024-02-29",
                          "2024-02-29T12:00:00",
                          "2024-02-29 12:00:00Z",
                          "2024-2-29T12:00:00Z",
                          "24-02-29T12:00:00Z",
                          "2024-13-01T00:00:00Z",
                          "2024-00-01T00:00:00Z",
                          "2024-01-00T00:00:00Z",
                          "2024-01-01T24:00:00Z",
                          "2024-01-01T00:60:00Z",
                          "2024-01-01T00:00:60Z",
                          "2024-01-01T00:00:00.Z",
                          "2024-01-01T00:00:00+0100",
                          "2024-01-01T00:00:00+24:00",
                          "2024-01-01T00:00:00+01:60",
                          "2024-01-01T00:00:00Z ",
                          " 2024-01-01T00:00:00Z",
                          "2024-01-01T00:00:00ZZ",
                          "+2024-01-01T00:00:00Z",
                          "2024-01-01T00:00:00+01",
                          "1700000000000"}) {
    EXPECT_EQ(ParseTimestamp(bad), std::nullopt) << '"' << bad << '"';
  }
}

TEST(ParseTimestamp, NumbersAreEpochMillis) {
  EXPECT_EQ(ParseTimestamp(1709208000000.0), 1709208000000.0);
  EXPECT_EQ(ParseTimestamp(-1.5), -1.5);
  EXPECT_EQ(ParseTimestamp(std::numeric_limits<double>::infinity()), std::nullopt);
  EXPECT_EQ(ParseTimestamp(std::numeric_limits<double>::quiet_NaN()), std::nullopt);
}

}  // namespace
}  // namespace flagrelay::eval
