#include "flagrelay/protocol/data.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

namespace flagrelay::protocol {
namespace json = boost::json;

namespace {

ParseError Error(std::string message) { return ParseError{std::move(message)}; }

// Boost.JSON reads a number beyond a double's range (1e400) as infinity, and would write it back
// as `Infinity`, which is not JSON: one such value would make every body the item is served in
// unparsable for SDKs. Go's decoder (ld-relay's) refuses these numbers too.
bool NumbersAreFinite(const json::value& value) {
  switch (value.kind()) {
    case json::kind::double_:
      return std::isfinite(value.get_double());
    case json::kind::array:
      return std::all_of(value.get_array().begin(), value.get_array().end(), NumbersAreFinite);
    case json::kind::object:
      return std::all_of(
          value.get_object().begin(), value.get_object().end(),
          [](const json::key_value_pair& member) { return NumbersAreFinite(member.value()); });
    default:
      return true;
  }
}

Result<json::value> ParseJson(std::string_view text) {
  json::parse_options options;
  options.max_depth = 64;
  boost::system::error_code ec;
  json::value value = json::parse(json::string_view(text.data(), text.size()), ec, {}, options);
  if (ec) return Error("invalid JSON: " + ec.message());
  if (!NumbersAreFinite(value)) return Error("invalid JSON: a number is out of range");
  return value;
}

// Versions are non-negative integers; JSON writers sometimes produce 3.0 for 3.
std::optional<std::uint64_t> AsVersion(const json::value& value) {
  if (value.is_uint64()) return value.get_uint64();
  if (value.is_int64() && value.get_int64() >= 0)
    return static_cast<std::uint64_t>(value.get_int64());
  if (value.is_double()) {
    const double d = value.get_double();
    if (d >= 0 && d < 9.0e15 && std::floor(d) == d) return static_cast<std::uint64_t>(d);
  }
  return std::nullopt;
}

Result<ItemPtr> ItemFromValue(std::string_view key, const json::value& value) {
  const json::object* object = value.if_object();
  if (object == nullptr) return Error("item '" + std::string(key) + "' is not a JSON object");
  auto item = std::make_shared<Item>();
  item->key.assign(key);
  if (const json::value* version = object->if_contains("version")) {
    const auto parsed = AsVersion(*version);
    if (!parsed) return Error("item '" + std::string(key) + "' has an invalid version");
    item->version = *parsed;
  }
  if (const json::value* deleted = object->if_contains("deleted")) {
    if (!deleted->is_bool())
      return Error("item '" + std::string(key) + "' has a non-boolean 'deleted'");
    item->deleted = deleted->get_bool();
  }
  item->json = json::serialize(value);
  return ItemPtr(std::move(item));
}

Result<ItemSet> ItemMap(const json::object& parent, std::string_view name) {
  const json::value* map = parent.if_contains(json::string_view(name.data(), name.size()));
  if (map == nullptr || map->is_null()) return ItemSet{};
  const json::object* object = map->if_object();
  if (object == nullptr) return Error("'" + std::string(name) + "' is not a JSON object");
  std::vector<ItemPtr> items;
  items.reserve(object->size());
  for (const auto& [key, value] : *object) {
    // ld-relay 6.0.2 learned that null items break SDK streams: skip them rather than serve them.
    if (value.is_null()) continue;
    auto item = ItemFromValue(std::string_view(key.data(), key.size()), value);
    if (!item) return item.error();
    items.push_back(std::move(*item));
  }
  return ItemSet::FromUnsorted(std::move(items));
}

Result<PutMessage> PutFromObject(const json::object& object) {
  auto flags = ItemMap(object, "flags");
  if (!flags) return flags.error();
  auto segments = ItemMap(object, "segments");
  if (!segments) return segments.error();
  return PutMessage{std::move(*flags), std::move(*segments)};
}

// "/flags/<key>" → (kFlags, key); anything else → nullopt.
std::optional<std::pair<Kind, std::string_view>> SplitPath(std::string_view path) {
  for (Kind kind : {Kind::kFlags, Kind::kSegments}) {
    const std::string_view name = ToString(kind);
    if (path.size() > name.size() + 2 && path[0] == '/' && path.substr(1, name.size()) == name &&
        path[name.size() + 1] == '/') {
      return std::make_pair(kind, path.substr(name.size() + 2));
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> StringMember(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(json::string_view(name.data(), name.size()));
  if (value == nullptr || !value->is_string()) return std::nullopt;
  return std::string_view(value->get_string().data(), value->get_string().size());
}

}  // namespace

std::string_view ToString(Kind kind) { return kind == Kind::kFlags ? "flags" : "segments"; }

std::optional<Kind> KindFromString(std::string_view text) {
  if (text == "flags") return Kind::kFlags;
  if (text == "segments") return Kind::kSegments;
  return std::nullopt;
}

ItemPtr MakeTombstone(std::string_view key, std::uint64_t version) {
  auto item = std::make_shared<Item>();
  item->key.assign(key);
  item->version = version;
  item->deleted = true;
  item->json = "{\"key\":";
  AppendJsonString(item->json, key);
  item->json += ",\"version\":" + std::to_string(version) + ",\"deleted\":true}";
  return item;
}

ItemPtr WithVersion(const Item& item, std::uint64_t version) {
  auto copy = std::make_shared<Item>(item);
  copy->version = version;
  boost::system::error_code ec;
  json::value value = json::parse(copy->json, ec);
  if (!ec && value.is_object()) {
    value.as_object()["version"] = version;
    copy->json = json::serialize(value);
  }
  return copy;
}

ItemSet ItemSet::FromUnsorted(std::vector<ItemPtr> items) {
  std::stable_sort(items.begin(), items.end(),
                   [](const ItemPtr& a, const ItemPtr& b) { return a->key < b->key; });
  // Keep the last of equal keys: walk backwards so unique keeps the later element.
  std::reverse(items.begin(), items.end());
  auto last = std::unique(items.begin(), items.end(),
                          [](const ItemPtr& a, const ItemPtr& b) { return a->key == b->key; });
  items.erase(last, items.end());
  std::reverse(items.begin(), items.end());
  return ItemSet(std::move(items));
}

const Item* ItemSet::Find(std::string_view key) const {
  auto it = std::lower_bound(items_.begin(), items_.end(), key,
                             [](const ItemPtr& item, std::string_view k) { return item->key < k; });
  return it != items_.end() && (*it)->key == key ? it->get() : nullptr;
}

std::optional<ItemSet> ItemSet::WithNewer(ItemPtr item) const {
  auto it = std::lower_bound(
      items_.begin(), items_.end(), item->key,
      [](const ItemPtr& existing, const std::string& k) { return existing->key < k; });
  const bool exists = it != items_.end() && (*it)->key == item->key;
  if (exists && (*it)->version >= item->version) return std::nullopt;
  std::vector<ItemPtr> copy;
  copy.reserve(items_.size() + (exists ? 0 : 1));
  const auto index = static_cast<std::size_t>(it - items_.begin());
  copy.insert(copy.end(), items_.begin(), it);
  copy.push_back(std::move(item));
  copy.insert(copy.end(), items_.begin() + static_cast<std::ptrdiff_t>(index + (exists ? 1 : 0)),
              items_.end());
  return ItemSet(std::move(copy));
}

std::size_t ItemSet::served_json_bytes() const {
  std::size_t bytes = 2;  // {}
  std::size_t live = 0;
  for (const ItemPtr& item : items_) {
    if (item->deleted) continue;
    bytes += item->key.size() + 3 + item->json.size();  // "key":json
    ++live;
  }
  return live > 0 ? bytes + live - 1 : bytes;  // commas
}

std::size_t ItemSet::live_count() const {
  return static_cast<std::size_t>(
      std::count_if(items_.begin(), items_.end(), [](const ItemPtr& i) { return !i->deleted; }));
}

Result<Message> ParseStreamEvent(std::string_view event_name, std::string_view data) {
  if (event_name != "put" && event_name != "patch" && event_name != "delete") {
    return Message{IgnoredMessage{"unknown event '" + std::string(event_name.substr(0, 64)) + "'"}};
  }
  auto parsed = ParseJson(data);
  if (!parsed) return parsed.error();
  const json::object* object = parsed->if_object();
  if (object == nullptr) return Error(std::string(event_name) + " data is not a JSON object");

  if (event_name == "put") {
    const json::value* payload = object->if_contains("data");
    if (payload == nullptr || !payload->is_object()) return Error("put has no 'data' object");
    auto put = PutFromObject(payload->get_object());
    if (!put) return put.error();
    return Message{std::move(*put)};
  }

  const auto path = StringMember(*object, "path");
  if (!path) return Error(std::string(event_name) + " has no 'path' string");
  const auto target = SplitPath(*path);
  if (!target)
    return Message{IgnoredMessage{"unknown path '" + std::string(path->substr(0, 128)) + "'"}};
  const auto [kind, key] = *target;

  if (event_name == "patch") {
    const json::value* payload = object->if_contains("data");
    if (payload == nullptr) return Error("patch has no 'data'");
    auto item = ItemFromValue(key, *payload);
    if (!item) return item.error();
    return Message{PatchMessage{kind, std::move(*item)}};
  }
  const json::value* version = object->if_contains("version");
  const auto parsed_version = version ? AsVersion(*version) : std::nullopt;
  if (!parsed_version) return Error("delete has no valid 'version'");
  return Message{DeleteMessage{kind, std::string(key), *parsed_version}};
}

Result<PutMessage> ParseAllData(std::string_view text) {
  auto parsed = ParseJson(text);
  if (!parsed) return parsed.error();
  const json::object* object = parsed->if_object();
  if (object == nullptr) return Error("document is not a JSON object");
  return PutFromObject(*object);
}

Result<ItemPtr> ParseItem(std::string_view key, std::string_view text) {
  auto parsed = ParseJson(text);
  if (!parsed) return parsed.error();
  return ItemFromValue(key, *parsed);
}

namespace {

// Validates an item's JSON as ParseJson does (syntax, depth, finite numbers, an object at the top)
// without building it, and picks up the top-level `version` and `deleted` on the way.
class StoredItemHandler {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  std::optional<json::value> version;  // the value as written, checked by AsVersion
  std::optional<json::value> deleted;
  bool top_is_object = false;
  bool finite = true;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    if (depth_ == 0) top_is_object = true;
    return Open(json::object_kind);
  }
  bool on_object_end(std::size_t, boost::system::error_code&) { return Close(); }
  bool on_array_begin(boost::system::error_code&) { return Open(json::array_kind); }
  bool on_array_end(std::size_t, boost::system::error_code&) { return Close(); }
  bool on_key_part(json::string_view part, std::size_t, boost::system::error_code&) {
    key_.append(part.data(), part.size());
    return true;
  }
  bool on_key(json::string_view part, std::size_t, boost::system::error_code&) {
    std::string_view key(part.data(), part.size());
    if (!key_.empty()) key = key_.append(key);
    slot_ = depth_ != 1        ? nullptr
            : key == "version" ? &version
            : key == "deleted" ? &deleted
                               : nullptr;
    key_.clear();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, boost::system::error_code&) {
    return Value(json::string_kind);
  }
  bool on_number_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t v, json::string_view, boost::system::error_code&) { return Value(v); }
  bool on_uint64(std::uint64_t v, json::string_view, boost::system::error_code&) {
    return Value(v);
  }
  bool on_double(double v, json::string_view, boost::system::error_code&) {
    finite = finite && std::isfinite(v);
    return Value(v);
  }
  bool on_bool(bool v, boost::system::error_code&) { return Value(v); }
  bool on_null(boost::system::error_code&) { return Value(nullptr); }
  bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(json::string_view, boost::system::error_code&) { return true; }

 private:
  template <typename Kind>
  bool Open(Kind kind) {
    Value(kind);  // an object or array where a version belongs is still wrong
    ++depth_;
    return true;
  }
  bool Close() {
    --depth_;
    return true;
  }
  // Takes the value for the top-level member it belongs to, if that is `version` or `deleted`
  // (building a json::value only then: this runs for every value of every item).
  template <typename Arg>
  bool Value(Arg&& arg) {
    if (slot_ != nullptr) *std::exchange(slot_, nullptr) = json::value(std::forward<Arg>(arg));
    return true;
  }

  int depth_ = 0;
  std::string key_;  // a key that arrives in parts
  std::optional<json::value>* slot_ = nullptr;
};

}  // namespace

Result<ItemPtr> ParseStoredItem(std::string key, std::string text) {
  // A line break would split an SSE data line: only the full path rewrites the text compactly.
  if (std::memchr(text.data(), '\n', text.size()) != nullptr ||
      std::memchr(text.data(), '\r', text.size()) != nullptr) {
    return ParseItem(key, text);
  }
  json::parse_options options;
  options.max_depth = 64;
  json::basic_parser<StoredItemHandler> parser(options);
  boost::system::error_code ec;
  const std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (ec) return Error("invalid JSON: " + ec.message());
  if (used != text.size() || !parser.done()) {
    return Error("invalid JSON: " + make_error_code(json::error::extra_data).message());
  }
  const StoredItemHandler& found = parser.handler();
  if (!found.finite) return Error("invalid JSON: a number is out of range");
  if (!found.top_is_object) return Error("item '" + key + "' is not a JSON object");
  auto item = std::make_shared<Item>();
  if (found.version) {
    const auto parsed = AsVersion(*found.version);
    if (!parsed) return Error("item '" + key + "' has an invalid version");
    item->version = *parsed;
  }
  if (found.deleted) {
    if (!found.deleted->is_bool()) return Error("item '" + key + "' has a non-boolean 'deleted'");
    item->deleted = found.deleted->get_bool();
  }
  item->key = std::move(key);
  item->json = std::move(text);
  return ItemPtr(std::move(item));
}

void AppendJsonString(std::string& out, std::string_view text) {
  // Most keys need no escaping: copy those in one go (this runs for every key in every body).
  const bool plain = std::all_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && c != '"' && c != '\\' &&
           static_cast<unsigned char>(c) < 0x80;
  });
  if (plain) {
    out += '"';
    out += text;
    out += '"';
    return;
  }
  out += json::serialize(json::string(json::string_view(text.data(), text.size())));
}

void throw_exception_from_error(const ParseError& error, const boost::source_location&) {
  throw std::runtime_error(error.message);
}

}  // namespace flagrelay::protocol
