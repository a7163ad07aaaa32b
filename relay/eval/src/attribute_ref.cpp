#include "flagrelay/eval/attribute_ref.hpp"

namespace flagrelay::eval {

AttributeRef AttributeRef::FromPath(std::string_view ref) {
  AttributeRef out;
  out.raw_ = std::string(ref);
  if (ref.empty() || ref == "/") {
    out.error_ = "empty attribute reference";
    return out;
  }
  if (ref[0] != '/') {
    // Without a leading slash the whole text is one name; '~' and '/' have no meaning here.
    out.components_.emplace_back(ref);
    return out;
  }
  std::vector<std::string> components;
  std::string current;
  for (std::size_t i = 1; i <= ref.size(); ++i) {
    if (i == ref.size() || ref[i] == '/') {
      if (current.empty()) {
        out.error_ = "attribute reference has an empty path component";
        return out;
      }
      components.push_back(std::move(current));
      current.clear();
    } else if (ref[i] == '~') {
      // Only "~0" ('~') and "~1" ('/') are escapes, as in JSON Pointer (RFC 6901).
      const char next = i + 1 < ref.size() ? ref[i + 1] : '\0';
      if (next != '0' && next != '1') {
        out.error_ = "attribute reference has an invalid escape sequence";
        return out;
      }
      current.push_back(next == '0' ? '~' : '/');
      ++i;
    } else {
      current.push_back(ref[i]);
    }
  }
  out.components_ = std::move(components);
  return out;
}

AttributeRef AttributeRef::FromLiteral(std::string_view name) {
  AttributeRef out;
  out.raw_ = std::string(name);
  if (name.empty()) {
    out.error_ = "empty attribute name";
  } else {
    out.components_.emplace_back(name);
  }
  return out;
}

}  // namespace flagrelay::eval
