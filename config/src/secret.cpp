#include <cctype>
#include <string>

#include "flagrelay/config/config.hpp"

namespace flagrelay::config {
namespace {

// Secrets this short would be mostly revealed by the last-five rule.
constexpr std::size_t kShortSecret = 5;
constexpr std::size_t kVisibleTail = 5;

bool IsLower(char c) { return c >= 'a' && c <= 'z'; }

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

std::string Secret::Masked() const {
  if (value_.size() <= kShortSecret) return std::string(value_.size(), '*');
  std::string out = value_;
  // `sdk-`, `mob-`: the prefix says what kind of key it is and is not secret.
  const std::size_t start =
      (out.size() >= 4 && IsLower(out[0]) && IsLower(out[1]) && IsLower(out[2]) && out[3] == '-')
          ? 4
          : 0;
  const std::size_t tail = out.size() - kVisibleTail;
  for (std::size_t i = start; i < tail; ++i) {
    if (IsHex(out[i])) out[i] = '*';
  }
  // A value without hex digits would come back whole; hide everything past the prefix instead.
  if (out == value_) {
    for (std::size_t i = start; i < out.size(); ++i) out[i] = '*';
  }
  return out;
}

}  // namespace flagrelay::config
