#pragma once
// Small response builders and header/URL helpers shared by the router's route handlers.

#include <optional>
#include <string>
#include <string_view>

#include "router.hpp"

namespace flagrelay::relay {

[[nodiscard]] protocol::SharedBytes Bytes(std::string text);
/// A text/plain response (ld-relay's style for credential errors).
[[nodiscard]] HttpResponse Text(unsigned status, std::string message);
/// `{"message":"..."}` as application/json.
[[nodiscard]] HttpResponse JsonMessage(unsigned status, std::string_view message);
/// 401 for a missing or unknown SDK or mobile key, with ld-relay's text.
[[nodiscard]] HttpResponse Unauthorized();

[[nodiscard]] std::string_view Trim(std::string_view s);

/// Calls `each` for every comma-separated element of a header value.
template <class F>
void ForEachListElement(std::string_view value, F each) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    each(Trim(value.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

/// %XX escapes decoded; malformed escapes are kept as they are.
[[nodiscard]] std::string PercentDecode(std::string_view in);

/// The decoded value of query parameter `name` in `target` (path?query), if present.
[[nodiscard]] std::optional<std::string> QueryParam(std::string_view target, std::string_view name);

}  // namespace flagrelay::relay
