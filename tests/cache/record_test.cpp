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

// Long inputs take the carry-less multiply path where the CPU has one (x86 PCLMULQDQ): every
// length up to 600 from every alignment in a 16-byte stride, chained at every split of a long
// input's first 40 bytes, and a 1 MB input.
TEST(Crc64, LongInputsAtEveryAlignmentMatchTheBitwiseDefinition) {
  std::string buffer;
  std::uint64_t seed = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 1 << 20; ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    buffer += static_cast<char>(seed >> 56);
  }
  const std::string_view all(buffer);
  for (std::size_t offset = 0; offset < 16; ++offset) {
    for (std::size_t n = 0; n <= 600; ++n) {
      const std::string_view input = all.substr(offset, n);
      ASSERT_EQ(Crc64(input), BitwiseCrc64(input)) << "offset " << offset << ", length " << n;
    }
  }
  const std::string_view long_input = all.substr(3, 5000);
  const std::uint64_t expected = BitwiseCrc64(long_input);
  for (std::size_t split = 0; split <= 40; ++split) {
    const std::string_view tail = long_input.substr(split);
    EXPECT_EQ(Crc64(std::as_bytes(std::span(tail)), Crc64(long_input.substr(0, split))), expected)
        << "split at " << split;
  }
  EXPECT_EQ(Crc64(all), BitwiseCrc64(all));
}

}  // namespace
}  // namespace flagrelay::cache::record
