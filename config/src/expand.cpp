#include "expand.hpp"

namespace flagrelay::config::detail {
namespace {

bool IsNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

bool IsValidName(std::string_view name) {
  if (name.empty() || !IsNameStart(name[0])) return false;
  for (char c : name) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

}  // namespace

Expansion Expand(std::string_view text, const EnvVars& env) {
  Expansion out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t dollar = text.find('$', pos);
    if (dollar == std::string_view::npos) {
      out.value.append(text.substr(pos));
      break;
    }
    out.value.append(text.substr(pos, dollar - pos));
    if (text.substr(dollar, 3) == "$${") {
      out.value.append("${");
      pos = dollar + 3;
      continue;
    }
    if (text.substr(dollar, 2) != "${") {
      out.value.push_back('$');
      pos = dollar + 1;
      continue;
    }
    const std::size_t close = text.find('}', dollar + 2);
    if (close == std::string_view::npos) {
      out.errors.push_back("unterminated '${' (write '$${' for a literal '${')");
      break;
    }
    const std::string_view body = text.substr(dollar + 2, close - dollar - 2);
    const std::size_t sep = body.find(":-");
    const std::string_view name = body.substr(0, sep);
    pos = close + 1;
    if (!IsValidName(name)) {
      // Only the name is quoted: a default may hold a secret.
      out.errors.push_back("invalid variable name '" + std::string(name) + "' in '${...}'");
      continue;
    }
    const auto it = env.find(std::string(name));
    if (sep != std::string_view::npos) {
      if (it != env.end() && !it->second.empty()) {
        out.value.append(it->second);
      } else {
        out.value.append(body.substr(sep + 2));
      }
    } else if (it != env.end()) {
      out.value.append(it->second);
    } else {
      out.errors.push_back("environment variable '" + std::string(name) + "' is not set");
    }
  }
  return out;
}

}  // namespace flagrelay::config::detail
