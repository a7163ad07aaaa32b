#pragma once
// `${VAR}` expansion for scalar values in the config file (internal to the config library).

#include <string>
#include <string_view>
#include <vector>

#include "flagrelay/config/config.hpp"

namespace flagrelay::config::detail {

struct Expansion {
  std::string value;
  std::vector<std::string> errors;  // messages without location; the caller adds key and line
};

/// Replaces `${VAR}` and `${VAR:-default}` (default used when VAR is unset or empty, as in sh).
/// `$${` yields a literal `${`; any other `$` is kept as is. No recursion into expanded text.
[[nodiscard]] Expansion Expand(std::string_view text, const EnvVars& env);

}  // namespace flagrelay::config::detail
