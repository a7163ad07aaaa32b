#include "flagrelay/protocol/snapshot.hpp"

#include <cstring>
#include <memory>

#include <zlib.h>

namespace flagrelay::protocol {

// 8 bytes per step. As an ETag, a collision would cost a client one stale 304 and needs ~2^32
// versions of one body.
std::uint64_t StableHash64(std::string_view bytes) {
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15ull;
  std::uint64_t h = 0xCBF29CE484222325ull ^ (bytes.size() * kMul);
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    h = (h ^ word) * kMul;
    h ^= h >> 29;
  }
  for (; i < bytes.size(); ++i) h = (h ^ static_cast<unsigned char>(bytes[i])) * 0x100000001B3ull;
  h ^= h >> 32;
  h *= kMul;
  h ^= h >> 29;
  return h;
}

namespace {

void AppendMap(std::string& out, const ItemSet& set) {
  out.push_back('{');
  bool first = true;
  for (const ItemPtr& item : set.items()) {
    if (item->deleted) continue;
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(out, item->key);
    out.push_back(':');
    out += item->json;
  }
  out.push_back('}');
}

}  // namespace

std::string_view ToString(DataSource source) {
  switch (source) {
    case DataSource::kCache:
      return "cache";
    case DataSource::kFile:
      return "file";
    case DataSource::kUpstream:
      return "upstream";
    case DataSource::kNone:
      break;
  }
  return "none";
}

const SharedBytes& EncodedBody::Plain() const {
  std::call_once(plain_once_, [this] {
    auto body = std::make_shared<const std::string>(owner_.BuildBody(content_));
    char hex[24];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(StableHash64(*body)));
    etag_ = "\"fr-" + std::string(hex) + "\"";
    plain_ = std::move(body);
  });
  return plain_;
}

const SharedBytes& EncodedBody::Gzip() const {
  std::call_once(gzip_once_,
                 [this] { gzip_ = std::make_shared<const std::string>(GzipCompress(*Plain())); });
  return gzip_;
}

const std::string& EncodedBody::ETag() const {
  (void)Plain();
  return etag_;
}

Snapshot::Snapshot(ItemSet flags, ItemSet segments, std::uint64_t data_version, DataSource source,
                   std::int64_t updated_at_unix_ms)
    : flags_(std::move(flags)),
      segments_(std::move(segments)),
      data_version_(data_version),
      source_(source),
      updated_at_unix_ms_(updated_at_unix_ms) {}

std::string Snapshot::BuildBody(EncodedBody::Content content) const {
  std::string out;
  switch (content) {
    case EncodedBody::Content::kAll:
      out.reserve(served_json_bytes());
      out += "{\"flags\":";
      AppendMap(out, flags_);
      out += ",\"segments\":";
      AppendMap(out, segments_);
      out.push_back('}');
      break;
    case EncodedBody::Content::kFlags:
      out.reserve(flags_.served_json_bytes());
      AppendMap(out, flags_);
      break;
    case EncodedBody::Content::kSegments:
      out.reserve(segments_.served_json_bytes());
      AppendMap(out, segments_);
      break;
  }
  return out;
}

const SharedBytes& Snapshot::PutFrameAll() const {
  std::call_once(put_all_once_, [this] {
    const std::string& body = *all_.Plain();
    std::string frame;
    frame.reserve(body.size() + 48);
    frame.append("event: put\ndata: {\"path\":\"/\",\"data\":").append(body).append("}\n\n");
    put_all_ = std::make_shared<const std::string>(std::move(frame));
  });
  return put_all_;
}

const SharedBytes& Snapshot::PutFrameFlags() const {
  std::call_once(put_flags_once_, [this] {
    const std::string& body = *flags_body_.Plain();
    std::string frame;
    frame.reserve(body.size() + 24);
    frame.append("event: put\ndata: ").append(body).append("\n\n");
    put_flags_ = std::make_shared<const std::string>(std::move(frame));
  });
  return put_flags_;
}

ChangeFrames EncodeChange(Kind kind, const Item& item) {
  // Item JSON is compact (serialized by Boost.JSON), so each frame is a single data line.
  std::string path_all = "/" + std::string(ToString(kind)) + "/" + item.key;
  auto encode = [&item](std::string_view path) {
    std::string frame =
        item.deleted ? "event: delete\ndata: {\"path\":" : "event: patch\ndata: {\"path\":";
    AppendJsonString(frame, path);
    if (item.deleted) {
      frame += ",\"version\":" + std::to_string(item.version) + "}\n\n";
    } else {
      frame.append(",\"data\":").append(item.json).append("}\n\n");
    }
    return std::make_shared<const std::string>(std::move(frame));
  };
  ChangeFrames frames;
  frames.all = encode(path_all);
  if (kind == Kind::kFlags) frames.flags = encode("/" + item.key);
  return frames;
}

std::string GzipCompress(std::string_view data, int level) {
  z_stream zs{};
  // windowBits 15 + 16 selects the gzip wrapper.
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  // Into an uninitialized buffer: zero-filling the worst case costs more than copying out the
  // (typically much smaller) result.
  const std::size_t bound = deflateBound(&zs, static_cast<uLong>(data.size()));
  const auto buffer = std::make_unique_for_overwrite<char[]>(bound);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(buffer.get());
  zs.avail_out = static_cast<uInt>(bound);
  const int rc = deflate(&zs, Z_FINISH);
  std::string out = rc == Z_STREAM_END ? std::string(buffer.get(), zs.total_out) : std::string();
  deflateEnd(&zs);
  return out;
}

std::optional<std::string> GzipDecompress(std::string_view data, std::size_t max_output,
                                          bool* too_large) {
  z_stream zs{};
  // windowBits 15 + 32: accept both gzip and zlib headers.
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return std::nullopt;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buffer[16384];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof buffer;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    out.append(buffer, sizeof buffer - zs.avail_out);
    if (out.size() > max_output) break;
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) break;  // truncated input
  }
  inflateEnd(&zs);
  if (too_large != nullptr) *too_large = out.size() > max_output;
  if (rc != Z_STREAM_END || out.size() > max_output) return std::nullopt;
  return out;
}

}  // namespace flagrelay::protocol
