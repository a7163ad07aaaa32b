#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace flagrelay::eval {

// SHA-1 (FIPS 180-4). Used only for LaunchDarkly's bucketing hash, never for security.
std::array<std::uint8_t, 20> Sha1(std::string_view data);

// SHA-1 a piece at a time. A copy of a hasher that has taken a common prefix hashes each input
// that starts with it without taking the prefix again: bucketing keeps one per rollout for its
// "<key>.<salt>." (whose first block it has then hashed once for all contexts).
class Sha1Hasher {
 public:
  Sha1Hasher& Update(std::string_view data);
  /// The digest of everything taken so far (the hasher can go on).
  [[nodiscard]] std::array<std::uint8_t, 20> Digest() const;

 private:
  static constexpr std::size_t kBlockSize = 64;
  std::array<std::uint32_t, 5> state_{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::array<std::uint8_t, kBlockSize> block_{};
  std::size_t filled_ = 0;    // bytes waiting in block_
  std::uint64_t length_ = 0;  // bytes taken in all
};

// SHA-1 of the concatenation of `parts`, without building it.
std::array<std::uint8_t, 20> Sha1(std::initializer_list<std::string_view> parts);

// The SHA-1 digest as 40 lowercase hex characters.
std::string Sha1Hex(std::string_view data);

}  // namespace flagrelay::eval
