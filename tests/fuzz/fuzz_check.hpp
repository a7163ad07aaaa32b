#pragma once
// What the fuzz targets share: a check that stops the run on a broken property (libFuzzer then
// saves the input as a crash), since the code under test never throws or crashes on its own.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                            \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)
