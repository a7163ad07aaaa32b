#pragma once
// On-disk record codec of the cache (private). The layout is documented in record.cpp.
// Every function here is pure and total: garbage in gives an error value, never a crash or throw.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "flagrelay/cache/store.hpp"

namespace flagrelay::cache::record {

inline constexpr std::uint32_t kMagic = 0x59524C46;  // bytes "FLRY"
inline constexpr std::size_t kHeaderSize = 16;

enum class Type : std::uint8_t { kMeta = 1, kItem = 2 };

/// CRC-64/XZ (ECMA-182 polynomial, reflected, init and xorout all ones).
[[nodiscard]] std::uint64_t Crc64(std::span<const std::byte> bytes, std::uint64_t crc = 0);
[[nodiscard]] std::uint64_t Crc64(std::string_view bytes);

struct StoredMeta {
  EnvMeta meta;
  std::uint64_t item_count = 0;
};

[[nodiscard]] std::string EncodeMeta(const EnvMeta& meta, std::uint64_t item_count);
[[nodiscard]] std::string EncodeItem(const ItemRecord& item);

enum class Verdict {
  kOk,
  kCorrupt,      // bad magic, bad checksum, truncated, trailing bytes, wrong type, ...
  kNewerFormat,  // a newer binary wrote it; the body was not interpreted
};

template <typename T>
struct Decoded {
  Verdict verdict = Verdict::kCorrupt;
  T value{};
  std::string problem;  // what failed, for kCorrupt and kNewerFormat
};

[[nodiscard]] Decoded<StoredMeta> DecodeMeta(std::string_view bytes);
[[nodiscard]] Decoded<ItemRecord> DecodeItem(std::string_view bytes);

}  // namespace flagrelay::cache::record
