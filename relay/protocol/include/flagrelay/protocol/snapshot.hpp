#pragma once
// An immutable, versioned view of one environment's flag data, with every encoding that SDKs ask
// for built at most once per version (plain and gzip bodies, ETags, SSE `put` frames) and shared
// by all readers. Also the encoders for the change frames that follow a `put` on a stream.
//
// Thread safety: a Snapshot is immutable; its lazily built encodings are guarded by once_flags, so
// any number of threads may read one concurrently.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "flagrelay/protocol/data.hpp"

namespace flagrelay::protocol {

using SharedBytes = std::shared_ptr<const std::string>;

enum class DataSource { kNone, kCache, kFile, kUpstream };
[[nodiscard]] std::string_view ToString(
    DataSource source);  // "none" | "cache" | "file" | "upstream"

/// A JSON body in the encodings a poller may ask for; each built on first use.
class EncodedBody {
 public:
  enum class Content { kAll, kFlags, kSegments };
  EncodedBody(const class Snapshot& owner, Content content) : owner_(owner), content_(content) {}

  [[nodiscard]] const SharedBytes& Plain() const;
  [[nodiscard]] const SharedBytes& Gzip() const;
  /// Strong ETag (quoted) derived from the body bytes: equal data gives equal ETags on every
  /// replica and across restarts, and any change to the served bytes changes it.
  [[nodiscard]] const std::string& ETag() const;

 private:
  const Snapshot& owner_;
  Content content_;
  mutable std::once_flag plain_once_, gzip_once_;
  mutable SharedBytes plain_, gzip_;
  mutable std::string etag_;
};

class Snapshot {
 public:
  Snapshot(ItemSet flags, ItemSet segments, std::uint64_t data_version, DataSource source,
           std::int64_t updated_at_unix_ms);
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  [[nodiscard]] const ItemSet& flags() const { return flags_; }
  [[nodiscard]] const ItemSet& segments() const { return segments_; }
  [[nodiscard]] const ItemSet& items(Kind kind) const {
    return kind == Kind::kFlags ? flags_ : segments_;
  }
  /// Relay-local, monotonic per environment, persisted with the cache.
  [[nodiscard]] std::uint64_t data_version() const { return data_version_; }
  /// Size of the `{"flags":..,"segments":..}` body.
  [[nodiscard]] std::size_t served_json_bytes() const {
    return flags_.served_json_bytes() + segments_.served_json_bytes() + 22;
  }
  [[nodiscard]] DataSource source() const { return source_; }
  [[nodiscard]] std::int64_t updated_at_unix_ms() const { return updated_at_unix_ms_; }

  /// `{"flags":{...},"segments":{...}}` without tombstones.
  [[nodiscard]] const EncodedBody& AllData() const { return all_; }
  /// `{"<key>":<flag>,...}` without tombstones.
  [[nodiscard]] const EncodedBody& FlagsData() const { return flags_body_; }
  [[nodiscard]] const EncodedBody& SegmentsData() const { return segments_body_; }

  /// SSE `put` for `/all`: `{"path":"/","data":<AllData>}`.
  [[nodiscard]] const SharedBytes& PutFrameAll() const;
  /// SSE `put` for the legacy `/flags` stream: the bare flags map.
  [[nodiscard]] const SharedBytes& PutFrameFlags() const;

 private:
  friend class EncodedBody;
  [[nodiscard]] std::string BuildBody(EncodedBody::Content content) const;

  ItemSet flags_;
  ItemSet segments_;
  std::uint64_t data_version_;
  DataSource source_;
  std::int64_t updated_at_unix_ms_;
  EncodedBody all_{*this, EncodedBody::Content::kAll};
  EncodedBody flags_body_{*this, EncodedBody::Content::kFlags};
  EncodedBody segments_body_{*this, EncodedBody::Content::kSegments};
  mutable std::once_flag put_all_once_, put_flags_once_;
  mutable SharedBytes put_all_, put_flags_;
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

/// The frames announcing one item change, encoded once per change and shared by all subscribers.
struct ChangeFrames {
  SharedBytes all;    // for `/all`
  SharedBytes flags;  // for `/flags`; null for segment changes (that stream has no segments)
};
/// A patch (a live item) or a delete (a tombstone).
[[nodiscard]] ChangeFrames EncodeChange(Kind kind, const Item& item);

/// A fast 64-bit hash that is stable across builds and machines (unlike std::hash); not
/// cryptographic.
[[nodiscard]] std::uint64_t StableHash64(std::string_view bytes);

/// gzip (RFC 1952) of `data`, at zlib `level` (1 fastest … 9 smallest; 6 is zlib's default).
[[nodiscard]] std::string GzipCompress(std::string_view data, int level = 6);
/// Inflates a gzip or zlib body; nullopt on malformed input or when the output would exceed
/// `max_output` bytes (a decompression bomb), which `too_large` (if given) tells apart.
[[nodiscard]] std::optional<std::string> GzipDecompress(std::string_view data,
                                                        std::size_t max_output,
                                                        bool* too_large = nullptr);

}  // namespace flagrelay::protocol
