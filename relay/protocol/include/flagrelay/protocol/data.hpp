#pragma once
// The LaunchDarkly flag-data model as flagrelay keeps it: items (flags, segments) held as compact
// JSON exactly as received (so fields flagrelay does not know survive), indexed by key with their
// version, plus the stream messages that change them. Pure code, no I/O.
//
// Thread safety: every type here is immutable once built and may be shared across threads.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/system/result.hpp>

namespace flagrelay::protocol {

enum class Kind { kFlags, kSegments };
[[nodiscard]] std::string_view ToString(Kind kind);  // "flags" | "segments"
[[nodiscard]] std::optional<Kind> KindFromString(std::string_view text);

struct Item {
  std::string key;
  std::uint64_t version = 0;
  bool deleted = false;  // a tombstone: keeps the version so an older patch cannot resurrect it
  std::string json;      // compact, single-line JSON
};
using ItemPtr = std::shared_ptr<const Item>;

/// `{"key":..,"version":N,"deleted":true}`, as persistent stores write tombstones.
[[nodiscard]] ItemPtr MakeTombstone(std::string_view key, std::uint64_t version);

/// The same item with its `version` field (and member) set to `version`.
[[nodiscard]] ItemPtr WithVersion(const Item& item, std::uint64_t version);

/// Items of one kind sorted by key. Copies share the items, so copy-on-write costs one pointer per
/// item.
class ItemSet {
 public:
  ItemSet() = default;
  /// Sorts by key; for duplicate keys the last one wins.
  static ItemSet FromUnsorted(std::vector<ItemPtr> items);

  [[nodiscard]] const Item* Find(std::string_view key) const;
  /// A copy with `item` inserted or replacing the stored one, or nullopt when the stored item
  /// (tombstones included) has a version >= item's: the LaunchDarkly version rule.
  [[nodiscard]] std::optional<ItemSet> WithNewer(ItemPtr item) const;

  [[nodiscard]] const std::vector<ItemPtr>& items() const { return items_; }
  [[nodiscard]] std::size_t live_count() const;  // items that are not tombstones
  /// Size of this set served as a JSON map (`{"key":item,...}`, tombstones left out); exact
  /// unless keys need escaping.
  [[nodiscard]] std::size_t served_json_bytes() const;

 private:
  explicit ItemSet(std::vector<ItemPtr> sorted) : items_(std::move(sorted)) {}
  std::vector<ItemPtr> items_;
};

/// Full data set (`put`). Tombstones in the input are kept; they are never served.
struct PutMessage {
  ItemSet flags;
  ItemSet segments;
};
struct PatchMessage {
  Kind kind;
  ItemPtr item;
};
struct DeleteMessage {
  Kind kind;
  std::string key;
  std::uint64_t version = 0;
};
/// A well-formed event that flagrelay does not act on (unknown event name or path).
struct IgnoredMessage {
  std::string reason;
};
using Message = std::variant<PutMessage, PatchMessage, DeleteMessage, IgnoredMessage>;

struct ParseError {
  std::string message;
};

template <class T>
using Result = boost::system::result<T, ParseError>;

/// Parses one upstream stream event (`put`, `patch`, `delete`; others are IgnoredMessage).
/// Total: malformed input gives a ParseError, never an exception or a crash.
[[nodiscard]] Result<Message> ParseStreamEvent(std::string_view event_name, std::string_view data);

/// Parses a `{"flags":{...},"segments":{...}}` document (the data of a put, a `dataFile`, the body
/// of `/sdk/latest-all`). A missing map means empty.
[[nodiscard]] Result<PutMessage> ParseAllData(std::string_view json);

/// Parses one stored item (as written by `Item::json`).
[[nodiscard]] Result<ItemPtr> ParseItem(std::string_view key, std::string_view json);

/// The same checks and result as ParseItem, for JSON this relay wrote (the cache's records): it
/// is validated without being built or rewritten, so loading 10,000 cached flags costs a scan,
/// not a parse and a serialization each. Text with a line break takes ParseItem's path.
[[nodiscard]] Result<ItemPtr> ParseStoredItem(std::string key, std::string json);

/// Writes `text` as a JSON string literal (quotes and escapes included).
void AppendJsonString(std::string& out, std::string_view text);

// Throwing accessor support for Result<T>::value(); flagrelay code tests results instead.
[[noreturn]] void throw_exception_from_error(const ParseError& error,
                                             const boost::source_location& location);

}  // namespace flagrelay::protocol
