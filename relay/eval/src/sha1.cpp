#include "flagrelay/eval/sha1.hpp"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace flagrelay::eval {
namespace {

// Processes one 64-byte block into the running state (FIPS 180-4 §6.1.2).
void Compress(std::array<std::uint32_t, 5>& state, const std::uint8_t* block) {
  std::array<std::uint32_t, 80> w{};
  for (std::size_t t = 0; t < 16; ++t) {
    w[t] = (std::uint32_t{block[4 * t]} << 24) | (std::uint32_t{block[4 * t + 1]} << 16) |
           (std::uint32_t{block[4 * t + 2]} << 8) | std::uint32_t{block[4 * t + 3]};
  }
  for (std::size_t t = 16; t < 80; ++t) {
    w[t] = std::rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
  }
  std::uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];
  for (std::size_t t = 0; t < 80; ++t) {
    std::uint32_t f = 0;
    std::uint32_t k = 0;
    if (t < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999;
    } else if (t < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6;
    }
    const std::uint32_t temp = std::rotl(a, 5) + f + e + k + w[t];
    e = d;
    d = c;
    c = std::rotl(b, 30);
    b = a;
    a = temp;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
}

#if defined(__x86_64__)
// The same compression with the x86 SHA extensions (about 8x faster): bucketing hashes once per
// rollout per flag, so this is the evaluation engine's hottest loop. Each step does four rounds;
// the message schedule W[t] = rotl1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]) is computed four words
// at a time by sha1msg1 (the t-16/t-14 part), a xor (t-8) and sha1msg2 (t-3, then the rotate).
template <int kFunction>
__attribute__((target("sha,sse4.1"))) __m128i Rounds(__m128i abcd, __m128i e) {
  return _mm_sha1rnds4_epu32(abcd, e, kFunction);
}

__attribute__((target("sha,sse4.1"))) void CompressShaNi(std::array<std::uint32_t, 5>& state,
                                                         const std::uint8_t* block) {
  const __m128i byte_swap = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
  const __m128i abcd_start =
      _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state.data())), 0x1B);
  const __m128i e_start = _mm_set_epi32(static_cast<int>(state[4]), 0, 0, 0);

  __m128i message[20];
  for (int i = 0; i < 4; ++i) {
    message[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 16 * i)),
                                  byte_swap);
  }
  for (int g = 4; g < 20; ++g) {
    message[g] = _mm_sha1msg2_epu32(
        _mm_xor_si128(_mm_sha1msg1_epu32(message[g - 4], message[g - 3]), message[g - 2]),
        message[g - 1]);
  }
  __m128i abcd = abcd_start;
  __m128i previous = abcd_start;
  for (int g = 0; g < 20; ++g) {
    const __m128i e =
        g == 0 ? _mm_add_epi32(e_start, message[0]) : _mm_sha1nexte_epu32(previous, message[g]);
    previous = abcd;
    switch (g / 5) {
      case 0:
        abcd = Rounds<0>(abcd, e);
        break;
      case 1:
        abcd = Rounds<1>(abcd, e);
        break;
      case 2:
        abcd = Rounds<2>(abcd, e);
        break;
      default:
        abcd = Rounds<3>(abcd, e);
        break;
    }
  }
  const __m128i e_end = _mm_sha1nexte_epu32(previous, e_start);
  abcd = _mm_shuffle_epi32(_mm_add_epi32(abcd, abcd_start), 0x1B);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state.data()), abcd);
  state[4] = static_cast<std::uint32_t>(_mm_extract_epi32(e_end, 3));
}

bool HasShaExtensions() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool sse41 = (c & (1u << 19)) != 0, ssse3 = (c & (1u << 9)) != 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return sse41 && ssse3 && (b & (1u << 29)) != 0;
}
#endif

void CompressBlock(std::array<std::uint32_t, 5>& state, const std::uint8_t* block) {
#if defined(__x86_64__)
  static const bool kShaNi = HasShaExtensions();
  if (kShaNi) {
    CompressShaNi(state, block);
    return;
  }
#endif
  Compress(state, block);
}

}  // namespace

Sha1Hasher& Sha1Hasher::Update(std::string_view data) {
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(data.data());
  std::size_t rest = data.size();
  length_ += rest;
  while (rest > 0) {
    if (filled_ == 0 && rest >= kBlockSize) {  // whole blocks straight from the input
      CompressBlock(state_, bytes);
      bytes += kBlockSize;
      rest -= kBlockSize;
      continue;
    }
    const std::size_t n = std::min(rest, kBlockSize - filled_);
    std::memcpy(block_.data() + filled_, bytes, n);
    filled_ += n;
    bytes += n;
    rest -= n;
    if (filled_ == kBlockSize) {
      CompressBlock(state_, block_.data());
      filled_ = 0;
    }
  }
  return *this;
}

std::array<std::uint8_t, 20> Sha1Hasher::Digest() const {
  std::array<std::uint32_t, 5> state = state_;
  std::array<std::uint8_t, kBlockSize> block = block_;
  std::size_t filled = filled_;
  // Padding: 0x80, zeros, then the message length in bits as a big-endian 64-bit integer.
  block[filled++] = 0x80;
  if (filled > kBlockSize - 8) {
    std::memset(block.data() + filled, 0, kBlockSize - filled);
    CompressBlock(state, block.data());
    filled = 0;
  }
  std::memset(block.data() + filled, 0, kBlockSize - 8 - filled);
  const std::uint64_t bit_length = length_ * 8;
  for (std::size_t i = 0; i < 8; ++i)
    block[kBlockSize - 1 - i] = static_cast<std::uint8_t>(bit_length >> (8 * i));
  CompressBlock(state, block.data());

  std::array<std::uint8_t, 20> digest{};
  for (std::size_t i = 0; i < 5; ++i) {
    digest[4 * i] = static_cast<std::uint8_t>(state[i] >> 24);
    digest[4 * i + 1] = static_cast<std::uint8_t>(state[i] >> 16);
    digest[4 * i + 2] = static_cast<std::uint8_t>(state[i] >> 8);
    digest[4 * i + 3] = static_cast<std::uint8_t>(state[i]);
  }
  return digest;
}

std::array<std::uint8_t, 20> Sha1(std::initializer_list<std::string_view> parts) {
  Sha1Hasher hasher;
  for (const std::string_view part : parts) hasher.Update(part);
  return hasher.Digest();
}

std::array<std::uint8_t, 20> Sha1(std::string_view data) { return Sha1({data}); }

std::string Sha1Hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(40);
  for (const std::uint8_t byte : Sha1(data)) {
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0x0F]);
  }
  return out;
}

}  // namespace flagrelay::eval
