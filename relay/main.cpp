// flagrelay: the composition root. Parses arguments, loads the config, runs the relay.
//
// Exit codes: 0 success, 1 invalid config or start-up failure, 2 usage error.

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "flagrelay/config/config.hpp"
#include "flagrelay/relay/relay.hpp"

namespace {

constexpr std::string_view kUsage =
    "usage: flagrelay --config FILE       run the relay\n"
    "       flagrelay --check-config FILE validate FILE (and the environment variables), exit 0/1\n"
    "       flagrelay cache inspect|verify|export|import ...   the LMDB cache (see flagrelay "
    "cache)\n"
    "       flagrelay --version\n";

int PrintErrors(const flagrelay::config::LoadResult& result) {
  for (const std::string& error : result.errors) std::cerr << "flagrelay: " << error << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using flagrelay::config::LoadFile;
  if (argc == 2 && (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "-v") == 0)) {
    std::cout << "flagrelay " << flagrelay::relay::Version() << "\n";
    return 0;
  }
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::cout << kUsage;
    return 0;
  }
  if (argc >= 2 && std::strcmp(argv[1], "cache") == 0) {
    return flagrelay::relay::RunCacheCommand(std::vector<std::string>(argv + 2, argv + argc),
                                             std::cout, std::cerr);
  }
  if (argc != 3) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string_view command = argv[1];
  if (command != "--config" && command != "--check-config") {
    std::cerr << kUsage;
    return 2;
  }
  try {
    const auto result = LoadFile(argv[2], flagrelay::config::EnvVarsFromProcess());
    if (!result.ok()) return PrintErrors(result);
    if (command == "--check-config") {
      std::cout << argv[2] << ": valid (" << result.config->environments.size()
                << " environments)\n";
      return 0;
    }
    const std::string path = argv[2];
    return flagrelay::relay::Run(
        *result.config, [path] { return LoadFile(path, flagrelay::config::EnvVarsFromProcess()); },
        path);
  } catch (const std::exception& e) {
    // Only start-up code throws (DESIGN.md §4); turn it into a message and an exit code.
    std::cerr << "flagrelay: cannot start: " << e.what() << "\n";
    return 1;
  }
}
