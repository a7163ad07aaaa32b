#pragma once

#include <optional>
#include <string_view>

namespace flagrelay::eval {

// Parses an RFC 3339 date-time ("2024-02-29T12:00:00.5+01:00", "...Z") into Unix epoch
// milliseconds, for the before/after operators. Returns nullopt if the text is not valid.
std::optional<double> ParseTimestamp(std::string_view text);

// A JSON number operand is already epoch milliseconds; non-finite numbers are rejected.
std::optional<double> ParseTimestamp(double epoch_millis);

}  // namespace flagrelay::eval
