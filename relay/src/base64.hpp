#pragma once
// Base64, both alphabets: the client-side routes decode contexts from a path segment
// (base64url), outbound proxy credentials are encoded (standard). Pure code, no I/O.

#include <optional>
#include <string>
#include <string_view>

namespace flagrelay::relay {

/// Standard base64 (`+/`), padded.
[[nodiscard]] std::string EncodeBase64(std::string_view bytes);

/// base64url or standard base64, padded or not; nullopt on any other character, or on a length
/// no encoding produces.
[[nodiscard]] std::optional<std::string> DecodeBase64(std::string_view text);

}  // namespace flagrelay::relay
