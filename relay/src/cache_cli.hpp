#pragma once
// `flagrelay cache inspect|verify|export`: the cache as an operator sees it, read-only, from the
// relay's own code (safe on the directory of a running relay: LMDB readers never block it). Also
// the start-up probe that checks a data file in a child process before the relay opens it.

#include <chrono>
#include <string>

#include "flagrelay/relay/relay.hpp"  // RunCacheCommand

namespace flagrelay::relay {

/// LMDB trusts the page structure of its data file: some damage (random bytes flipped) makes it
/// read outside a page and crash. Before the relay opens `dir`'s data file, a child process (this
/// binary, `cache verify --probe`) opens it and reads every page the relay will read. Returns an
/// empty string when the file is safe to open (or absent, or the probe cannot run), else what
/// happened to the probe.
std::string ProbeCacheDir(const std::string& dir, std::chrono::milliseconds timeout);

}  // namespace flagrelay::relay
