#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace flagrelay::eval {

// SHA-1 (FIPS 180-4). Used only for LaunchDarkly's bucketing hash, never for security.
std::array<std::uint8_t, 20> Sha1(std::string_view data);

// The SHA-1 digest as 40 lowercase hex characters.
std::string Sha1Hex(std::string_view data);

}  // namespace flagrelay::eval
