#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace flagrelay::relay {

// SHA-256 (FIPS 180-4) of a short input. The router digests credentials with it on every request;
// keeping it out of OpenSSL means a relay without TLS or secure mode never initialises libcrypto
// (whose first digest alone costs about 2 MiB of resident memory).
std::array<std::uint8_t, 32> Sha256(std::string_view data);

}  // namespace flagrelay::relay
