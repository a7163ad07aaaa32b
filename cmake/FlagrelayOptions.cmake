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
