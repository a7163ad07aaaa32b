#include "flagrelay/eval/sha1.hpp"

#include <gtest/gtest.h>

#include <string>

namespace flagrelay::eval {
namespace {

// Known-answer vectors from FIPS 180 (NIST CSRC "SHA-1" examples).
TEST(Sha1, Abc) { EXPECT_EQ(Sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d"); }

TEST(Sha1, Empty) { EXPECT_EQ(Sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709"); }

TEST(Sha1, FourHundredFortyEightBits) {
  // 56 bytes: the padding no longer fits in the same block.
  EXPECT_EQ(Sha1Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

TEST(Sha1, OneMillionA) {
  EXPECT_EQ(Sha1Hex(std::string(1'000'000, 'a')), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST(Sha1, BlockBoundaries) {
  // The 896-bit FIPS vector, then 55, 63 and 64 bytes (each padding path; values from
  // Python's hashlib).
  EXPECT_EQ(Sha1Hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                    "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "a49b2446a02c645bf419f995b67091253a04a259");
  EXPECT_EQ(Sha1Hex(std::string(55, 'a')), "c1c8bbdc22796e28c0e15163d20899b65621d65a");
  EXPECT_EQ(Sha1Hex(std::string(63, 'a')), "03f09f5b158a7a8cdad920bddc29b81c18a551f5");
  EXPECT_EQ(Sha1Hex(std::string(64, 'a')), "0098ba824b5c16427bd7a1122a5a442a25ec644d");
}

// A hasher copied after a shared prefix (bucketing's "<key>.<salt>.") must give the digest of the
// whole input, wherever the prefix and the rest fall relative to the 64-byte blocks.
TEST(Sha1, HasherCopiedAfterAPrefixEqualsOneShot) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += static_cast<char>('a' + (i * 7) % 26);
  for (std::size_t prefix = 0; prefix <= 140; ++prefix) {
    Sha1Hasher start;
    start.Update(std::string_view(text).substr(0, prefix));
    const Sha1Hasher kept = start;
    for (std::size_t rest = 0; prefix + rest <= text.size(); rest += 3) {
      Sha1Hasher hasher = start;
      hasher.Update(std::string_view(text).substr(prefix, rest));
      ASSERT_EQ(hasher.Digest(), Sha1(std::string_view(text).substr(0, prefix + rest)))
          << prefix << " + " << rest;
    }
    // Taking more through copies leaves the original as it was.
    EXPECT_EQ(start.Digest(), kept.Digest());
    EXPECT_EQ(start.Digest(), Sha1(std::string_view(text).substr(0, prefix)));
  }
}

TEST(Sha1, RawDigestMatchesHex) {
  const auto digest = Sha1("abc");
  EXPECT_EQ(digest[0], 0xa9);
  EXPECT_EQ(digest[19], 0x9d);
}

}  // namespace
}  // namespace flagrelay::eval
