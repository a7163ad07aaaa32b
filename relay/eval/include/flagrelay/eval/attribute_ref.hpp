#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace flagrelay::eval {

// A reference to a context attribute: either a JSON-pointer-like path ("/address/city", with
// "~1" for '/' and "~0" for '~') or a plain attribute name. Invalid references keep an error.
class AttributeRef {
 public:
  // Parses a reference as written in a context-aware clause: "/a/b" is a path, "name" is a
  // single-component literal; "", "/", empty components and bad escapes are invalid.
  static AttributeRef FromPath(std::string_view ref);

  // A literal attribute name as used by old-style (user) clauses: never interpreted as a path.
  // Only the empty name is invalid.
  static AttributeRef FromLiteral(std::string_view name);

  // Whether the reference parsed; if not, Error() says why and Components() is empty.
  bool Valid() const { return error_.empty(); }

  // A short description of why the reference is invalid; empty when valid.
  const std::string& Error() const { return error_; }

  // The unescaped path components, outermost first (one for a literal name).
  const std::vector<std::string>& Components() const { return components_; }

  // The text the reference was built from.
  const std::string& Raw() const { return raw_; }

 private:
  std::string raw_;
  std::vector<std::string> components_;
  std::string error_;
};

}  // namespace flagrelay::eval
