#include <cstring>
#include <string>

#include "flagrelay/config/config.hpp"

extern char** environ;  // POSIX; not declared by any standard header

namespace flagrelay::config {

EnvVars EnvVarsFromProcess() {
  EnvVars vars;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const char* eq = std::strchr(*entry, '=');
    if (eq == nullptr) continue;
    // emplace keeps the first of duplicate names, as getenv() does.
    vars.emplace(std::string(*entry, static_cast<std::size_t>(eq - *entry)), std::string(eq + 1));
  }
  return vars;
}

}  // namespace flagrelay::config
