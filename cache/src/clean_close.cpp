// The clean-close mark: lets a relay skip the start-up probe for a data file it closed cleanly
// and that nothing has changed since. The mark holds a hash of the whole file, not its size and
// times: a write within the file system's timestamp tick (or a restored mtime) would leave those
// unchanged, and hashing 10 MB already in the page cache takes a few milliseconds, against the
// probe's tens.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "flagrelay/cache/store.hpp"

namespace flagrelay::cache {
namespace {

namespace fs = std::filesystem;

constexpr const char* kMarkName = "clean-close";
constexpr const char* kMarkFormat = "flagrelay clean close v1 %llu %016llx\n";

// Four independent multiply-xorshift lanes over 8-byte words. Every step is a bijection of a
// lane's state, so any change confined to one word always changes the result; it is not meant to
// resist someone forging a file (who could write the mark too).
// Word i goes to lane i % 4; the lanes are independent multiply chains, kept in registers.
std::uint64_t HashBytes(const unsigned char* data, std::size_t size) {
  const auto step = [](std::uint64_t lane, const unsigned char* at) {
    std::uint64_t word;
    std::memcpy(&word, at, 8);
    lane = (lane ^ word) * 0x9E3779B97F4A7C15ull;
    return lane ^ (lane >> 29);
  };
  std::array<std::uint64_t, 4> lanes{1, 2, 3, 4};
  std::size_t at = 0;
  for (; at + 32 <= size; at += 32) {
    lanes[0] = step(lanes[0], data + at);
    lanes[1] = step(lanes[1], data + at + 8);
    lanes[2] = step(lanes[2], data + at + 16);
    lanes[3] = step(lanes[3], data + at + 24);
  }
  for (std::size_t lane = 0; at + 8 <= size; at += 8, ++lane) {
    lanes[lane] = step(lanes[lane], data + at);
  }
  std::uint64_t tail = 0;
  for (; at < size; ++at) tail = (tail << 8 | data[at]) * 31;
  std::uint64_t h = std::uint64_t{size} ^ tail;
  for (std::uint64_t lane : lanes) h = (h ^ lane) * 0xBF58476D1CE4E5B9ull, h ^= h >> 31;
  return h;
}

// Size and hash of `path`, or nullopt when it cannot be read whole. Mapped, not read: the pages
// are in the page cache (LMDB maps the same file), so hashing them copies nothing.
std::optional<std::pair<std::uint64_t, std::uint64_t>> HashFile(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat info {};
  if (::fstat(fd, &info) != 0 || info.st_size <= 0) {
    ::close(fd);
    return std::nullopt;
  }
  const auto size = static_cast<std::size_t>(info.st_size);
  void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (mapped == MAP_FAILED) return std::nullopt;
  const std::uint64_t hash = HashBytes(static_cast<const unsigned char*>(mapped), size);
  ::munmap(mapped, size);
  return std::make_pair(std::uint64_t{size}, hash);
}

// The mark's text for `dir`/data.mdb as it is now, or nullopt when it cannot be read whole.
std::optional<std::string> MarkText(const std::string& dir) {
  const auto hashed = HashFile(fs::path(dir) / "data.mdb");
  if (!hashed) return std::nullopt;
  char text[96];
  std::snprintf(text, sizeof text, kMarkFormat, static_cast<unsigned long long>(hashed->first),
                static_cast<unsigned long long>(hashed->second));
  return text;
}

}  // namespace

void MarkCleanClose(const std::string& dir) {
  const auto text = MarkText(dir);
  if (!text) return;  // no mark: the next start probes, which is always safe
  const fs::path mark = fs::path(dir) / kMarkName;
  const fs::path partial = fs::path(dir) / (std::string(kMarkName) + ".partial");
  {
    std::ofstream out(partial, std::ios::trunc);
    out << *text;
    if (!out.flush()) return;
  }
  std::error_code ec;
  fs::rename(partial, mark, ec);
}

bool TakeCleanCloseMark(const std::string& dir) {
  const fs::path mark = fs::path(dir) / kMarkName;
  std::string stored;
  {
    std::ifstream in(mark);
    if (!in) return false;
    std::getline(in, stored);
    stored += '\n';
  }
  // Removed before the file is opened: if opening it crashes after all, the next start probes.
  std::error_code ec;
  if (!fs::remove(mark, ec) || ec) return false;
  return MarkText(dir) == stored;
}

}  // namespace flagrelay::cache
