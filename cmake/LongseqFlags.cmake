# Compiler flags for project targets only (third-party headers stay out of -Werror via SYSTEM includes).
add_library(longseq_flags INTERFACE)
target_compile_options(longseq_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${LONGSEQ_WERROR}>>:-Werror>
  # clang reports an `omp simd` loop it leaves scalar (e.g. under sanitizers) as a warning; the
  # pragma is a hint, so that is not an error.
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:Clang>>:-Wno-pass-failed>)

# CPU tuning: native by default; the portable build targets x86-64-v3 (AVX2+FMA).
if(LONGSEQ_NATIVE)
  set(LONGSEQ_ARCH_FLAGS -march=native)
else()
  set(LONGSEQ_ARCH_FLAGS -march=x86-64-v3)
endif()
target_compile_options(longseq_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${LONGSEQ_ARCH_FLAGS}>)

# Eigen's AVX-512 GEMM is 20-30% slower than its AVX2 path on AMD Zen 4 (which runs AVX-512 as two
# 256-bit halves; shared/notes/machine-ceilings.md), while on Intel Xeons with two 512-bit FMA units
# it is twice as fast (measured: 131 vs 67 GFLOP/s, one thread). So for a native build on an AMD CPU
# the one translation unit that runs Eigen products is built without AVX-512. Only that file may
# instantiate Eigen products, to keep the ODR intact.
# GCC 12 reports false (maybe-)uninitialized warnings inside Eigen's AVX-512 intrinsics wrappers.
set(LONGSEQ_GEMM_FLAGS -Wno-uninitialized)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  list(APPEND LONGSEQ_GEMM_FLAGS -Wno-maybe-uninitialized)
endif()
if(LONGSEQ_NATIVE AND EXISTS /proc/cpuinfo)
  file(STRINGS /proc/cpuinfo _vendor REGEX "^vendor_id" LIMIT_COUNT 1)
  if(_vendor MATCHES "AuthenticAMD")
    list(APPEND LONGSEQ_GEMM_FLAGS -mno-avx512f)
  endif()
endif()

if(LONGSEQ_SANITIZE)
  string(REPLACE ";" "," _san "${LONGSEQ_SANITIZE}")
  target_compile_options(longseq_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${_san} -fno-omit-frame-pointer -fno-sanitize-recover=all>)
  target_link_options(longseq_flags INTERFACE -fsanitize=${_san})
endif()

# libFuzzer harnesses (scripts/fuzz): every project target gets coverage instrumentation and the
# address and undefined-behaviour sanitizers; the harness executables add the libFuzzer driver.
if(LONGSEQ_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "LONGSEQ_FUZZ needs clang (CC=clang CXX=clang++; Debian packages clang libclang-rt-dev libomp-dev)")
  endif()
  target_compile_options(longseq_flags INTERFACE -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                                                 -fno-sanitize-recover=all)
  target_link_options(longseq_flags INTERFACE -fsanitize=address,undefined)
endif()
