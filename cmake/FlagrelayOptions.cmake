# flagrelay_options: one INTERFACE target that every flagrelay target links PRIVATE, carrying the
# warning set and (optionally) the sanitizers, so nothing is set through global CMAKE_CXX_FLAGS.
add_library(flagrelay_options INTERFACE)
target_compile_options(flagrelay_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Woverloaded-virtual
  -Wimplicit-fallthrough)
if(FLAGRELAY_WERROR)
  target_compile_options(flagrelay_options INTERFACE -Werror)
endif()
if(FLAGRELAY_SANITIZE)
  target_compile_options(flagrelay_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(flagrelay_options INTERFACE -fsanitize=address,undefined)
endif()
if(FLAGRELAY_TSAN)
  if(FLAGRELAY_SANITIZE)
    message(FATAL_ERROR "FLAGRELAY_TSAN=ON cannot be combined with FLAGRELAY_SANITIZE (ASan)")
  endif()
  target_compile_options(flagrelay_options INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(flagrelay_options INTERFACE -fsanitize=thread)
  # GCC warns that TSan does not model atomic_thread_fence (Asio, libstdc++'s
  # atomic<shared_ptr>); tests/tsan.supp lists the false reports that leads to.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(flagrelay_options INTERFACE -Wno-tsan)
  endif()
endif()
# GCC 12 at -O3 (Release) reports -Wrestrict on ordinary std::string concatenation, a known false
# positive (GCC bug 105329, fixed in GCC 13); everything else stays an error.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(flagrelay_options INTERFACE -Wno-restrict)
endif()
# FLAGRELAY_FUZZ: every library gets libFuzzer's coverage instrumentation (fuzzer-no-link) with
# ASan and UBSan; the fuzz targets themselves add -fsanitize=fuzzer (tests/fuzz/CMakeLists.txt).
if(FLAGRELAY_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR
      "FLAGRELAY_FUZZ=ON needs clang (libFuzzer), but the C++ compiler is "
      "${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER}. Configure a fresh build directory with "
      "-DCMAKE_CXX_COMPILER=clang++ (scripts/fuzz does).")
  endif()
  if(FLAGRELAY_SANITIZE)
    message(FATAL_ERROR "FLAGRELAY_FUZZ=ON already builds with ASan and UBSan; "
                        "leave FLAGRELAY_SANITIZE off")
  endif()
  # UBSan's `function` check is off: clang 14 cannot emit its prologue data for the split parts
  # of a coroutine ("Cannot represent a difference across sections"); GCC's UBSan lacks it too.
  # -O1 and line tables only: fuzz speed at a lower compile time; asserts stay on (scripts/fuzz
  # builds Debug), being checks the fuzzer should reach.
  target_compile_options(flagrelay_options INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=function
    -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -gline-tables-only)
  target_link_options(flagrelay_options INTERFACE
    -fsanitize=address,undefined -fno-sanitize=function)
endif()
