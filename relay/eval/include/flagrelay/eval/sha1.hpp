#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace flagrelay::eval {

// SHA-1 (FIPS 180-4). Used only for LaunchDarkly's bucketing hash, never for security.
std::array<std::uint8_t, 20> Sha1(std::string_view data);

// SHA-1 of the concatenation of `parts`, without building it.
std::array<std::uint8_t, 20> Sha1(std::initializer_list<std::string_view> parts);

// The SHA-1 digest as 40 lowercase hex characters.
std::string Sha1Hex(std::string_view data);

}  // namespace flagrelay::eval
