// Kernel source (kernels/*.cuh) is compiled twice: by nvcc for the device and by the C++ compiler
// for the CPU emulation (kernels/emu/cuda_emu.h). The two compilations must not share symbols, or
// a program that links both (the unit tests link the CUDA library and run emulated kernels) could
// have the linker pick nvcc's launch stub for an emulated call. Each .cuh therefore puts its
// contents in an inline namespace that differs between the two: callers still write cuda::name.
#pragma once

#if defined(LONGSEQ_CUDA_EMULATION)
#define LS_KERNELS_BEGIN inline namespace emulated {
#else
#define LS_KERNELS_BEGIN inline namespace device {
#endif
#define LS_KERNELS_END }
