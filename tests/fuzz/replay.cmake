# Runs a fuzz target once over every file of its seed corpus and its regressions directory (which
# may be missing). Given files rather than directories, libFuzzer runs each once and does not fuzz.
#   cmake -DFUZZER=<binary> -DCORPUS=<dir> -DREGRESSIONS=<dir> -P replay.cmake
file(GLOB inputs LIST_DIRECTORIES false "${CORPUS}/*" "${REGRESSIONS}/*")
list(LENGTH inputs count)
if(count EQUAL 0)
  message(FATAL_ERROR "no inputs in ${CORPUS}")
endif()
message(STATUS "replaying ${count} inputs")
execute_process(COMMAND "${FUZZER}" -timeout=10 -rss_limit_mb=2048 ${inputs} RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${result}) on one of the inputs above")
endif()
