#include "sha256.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <string>

namespace flagrelay::relay {
namespace {

std::string Hex(const std::array<std::uint8_t, 32>& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::uint8_t b : digest) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

TEST(Sha256, FipsVectors) {
  EXPECT_EQ(Hex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(Sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Every length around the one- and two-block padding edges (55/56, 63/64, 119/120), against
// OpenSSL.
TEST(Sha256, MatchesOpenSslAtEveryLengthUpTo200) {
  std::string input;
  for (int n = 0; n <= 200; ++n) {
    std::array<std::uint8_t, 32> expected{};
    unsigned int size = 0;
    EVP_Digest(input.data(), input.size(), expected.data(), &size, EVP_sha256(), nullptr);
    EXPECT_EQ(Hex(Sha256(input)), Hex(expected)) << "length " << n;
    input += static_cast<char>('!' + n % 90);
  }
}

}  // namespace
}  // namespace flagrelay::relay
