// Parsing evaluation contexts: single-kind, multi-kind and old-style user JSON.

#include <algorithm>

#include "model.hpp"

namespace flagrelay::eval {
namespace json = boost::json;

namespace {

using Result = protocol::Result<Context>;

protocol::ParseError Error(std::string message) { return {std::move(message)}; }

bool ValidKind(std::string_view kind) {
  if (kind.empty() || kind == "kind") return false;
  return std::all_of(kind.begin(), kind.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// The built-in attributes of old user JSON; each must be a string (or null) when present.
constexpr std::string_view kUserStringAttributes[] = {"name",   "email", "firstName", "lastName",
                                                      "avatar", "ip",    "country"};

// Turns old user JSON into the single-kind `user` object that evaluation reads: custom attributes
// first, then the built-ins, which win over custom ones of the same name.
protocol::Result<json::object> ConvertOldUser(const json::object& user,
                                              std::optional<std::string>& secondary) {
  const json::value* key = user.if_contains("key");
  if (key == nullptr || key->is_null()) return Error("User must have a 'key' attribute");
  if (!key->is_string()) return Error("context key must be a string");

  json::object out;
  if (const json::value* custom = user.if_contains("custom"); custom && !custom->is_null()) {
    if (!custom->is_object()) return Error("'custom' must be an object");
    for (const auto& member : custom->get_object()) {
      if (member.key() == "kind" || member.key() == "key" || member.key() == "anonymous" ||
          member.key() == "_meta")
        continue;  // cannot shadow what the context itself defines
      out[member.key()] = member.value();
    }
  }
  out["kind"] = "user";
  out["key"] = *key;
  for (std::string_view name : kUserStringAttributes) {
    const json::value* value = user.if_contains(name);
    if (value == nullptr || value->is_null()) continue;
    if (!value->is_string()) return Error("'" + std::string(name) + "' must be a string");
    out[name] = *value;
  }
  if (const json::value* anonymous = user.if_contains("anonymous");
      anonymous && !anonymous->is_null()) {
    if (!anonymous->is_bool()) return Error("'anonymous' must be a boolean");
    out["anonymous"] = *anonymous;
  }
  if (const json::value* value = user.if_contains("secondary"); value && !value->is_null()) {
    if (!value->is_string()) return Error("'secondary' must be a string");
    secondary = std::string(value->get_string());
  }
  return out;
}

// Checks one individual context's key and records it.
std::optional<protocol::ParseError> AddSingle(Context::Impl& impl, std::string kind,
                                              const json::object& attributes, bool allow_empty) {
  const json::value* key = attributes.if_contains("key");
  if (key == nullptr || key->is_null()) return Error("User must have a 'key' attribute");
  if (!key->is_string()) return Error("context key must be a string");
  if (key->get_string().empty() && !allow_empty) return Error("User must have a 'key' attribute");
  if (const json::value* anonymous = attributes.if_contains("anonymous");
      anonymous && !anonymous->is_null() && !anonymous->is_bool())
    return Error("'anonymous' must be a boolean");
  if (const json::value* name = attributes.if_contains("name");
      name && !name->is_null() && !name->is_string())
    return Error("'name' must be a string");
  Context::Impl::Single single;
  single.kind_value = json::string(kind);
  single.kind = std::move(kind);
  single.attributes = &attributes;
  single.key = std::string(key->get_string());
  impl.contexts.push_back(std::move(single));
  return std::nullopt;
}

// Escapes ':' and '%' in a key for the fully-qualified key, as LaunchDarkly does.
void AppendEscapedKey(std::string& out, std::string_view key) {
  for (char c : key) {
    if (c == '%') {
      out += "%25";
    } else if (c == ':') {
      out += "%3A";
    } else {
      out += c;
    }
  }
}

}  // namespace

protocol::Result<Context> Context::Parse(std::string_view text) {
  boost::system::error_code ec;
  json::value root = ParseJson(text, ec);
  if (ec) return Error("context is not valid JSON");
  if (!root.is_object()) return Error("context must be a JSON object");

  auto impl = std::make_shared<Impl>();
  const json::value* kind = root.get_object().if_contains("kind");
  if (kind == nullptr) {
    // Old user JSON: converted into a single-kind user context.
    auto converted = ConvertOldUser(root.get_object(), impl->secondary);
    if (!converted) return converted.error();
    impl->root = std::move(*converted);
    // Old user keys may be empty at parse time; the HTTP layer then refuses them as ld-relay does.
    if (auto error = AddSingle(*impl, "user", impl->root.get_object(), true)) return *error;
    if (impl->contexts.front().key.empty()) return Error("User must have a 'key' attribute");
    return Context(std::move(impl));
  }
  if (!kind->is_string()) return Error("context kind must be a string");

  impl->root = std::move(root);
  const json::object& object = impl->root.get_object();
  const std::string_view kind_text = object.at("kind").get_string();
  if (kind_text != "multi") {
    if (!ValidKind(kind_text)) return Error("context kind is not valid");
    if (auto error = AddSingle(*impl, std::string(kind_text), object, false)) return *error;
    return Context(std::move(impl));
  }

  impl->multi = true;
  for (const auto& member : object) {
    if (member.key() == "kind") continue;
    if (!ValidKind(member.key()) || member.key() == "multi")
      return Error("context kind is not valid");
    if (!member.value().is_object()) return Error("a multi-kind context must contain objects");
    if (auto error =
            AddSingle(*impl, std::string(member.key()), member.value().get_object(), false))
      return *error;
  }
  if (impl->contexts.empty()) return Error("a multi-kind context must contain at least one kind");
  // A multi-kind context with one kind is that single context.
  if (impl->contexts.size() == 1) impl->multi = false;
  return Context(std::move(impl));
}

std::string Context::FullyQualifiedKey() const {
  const Impl& impl = *impl_;
  if (!impl.multi) {
    const Impl::Single& single = impl.contexts.front();
    if (single.kind == kUserKind) return single.key;
    std::string out = single.kind + ":";
    AppendEscapedKey(out, single.key);
    return out;
  }
  std::vector<const Impl::Single*> sorted;
  for (const auto& single : impl.contexts) sorted.push_back(&single);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->kind < b->kind; });
  std::string out;
  for (const auto* single : sorted) {
    if (!out.empty()) out += ':';
    out += single->kind;
    out += ':';
    AppendEscapedKey(out, single->key);
  }
  return out;
}

}  // namespace flagrelay::eval
