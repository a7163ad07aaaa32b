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
# GCC 12 at -O3 (Release) reports -Wrestrict on ordinary std::string concatenation, a known false
# positive (GCC bug 105329, fixed in GCC 13); everything else stays an error.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(flagrelay_options INTERFACE -Wno-restrict)
endif()
