#include "record.hpp"

#include <gtest/gtest.h>

#include <string>

namespace flagrelay::cache::record {
namespace {

// CRC-64/XZ one bit at a time, straight from its definition: the reference for the fast one.
std::uint64_t BitwiseCrc64(std::string_view bytes, std::uint64_t crc = 0) {
  crc = ~crc;
  for (char c : bytes) {
    crc ^= static_cast<std::uint8_t>(c);
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 1) ? (crc >> 1) ^ 0xC96C5795D7870F42ull : crc >> 1;
  }
  return ~crc;
}

TEST(Crc64, CheckValue) { EXPECT_EQ(Crc64("123456789"), 0x995DC9BBDF1939FAull); }

// Every length across several 8-byte strides and odd tails, and chaining through `crc`.
TEST(Crc64, MatchesTheBitwiseDefinitionAtEveryLengthAndWhenChained) {
  std::string input;
  for (int n = 0; n <= 100; ++n) {
    EXPECT_EQ(Crc64(input), BitwiseCrc64(input)) << "length " << n;
    const std::string_view head = std::string_view(input).substr(0, n / 3);
    const std::string_view tail = std::string_view(input).substr(n / 3);
    EXPECT_EQ(Crc64(std::as_bytes(std::span(tail)), Crc64(head)), BitwiseCrc64(input))
        << "length " << n;
    input += static_cast<char>(n * 37 + 11);
  }
}

}  // namespace
}  // namespace flagrelay::cache::record
