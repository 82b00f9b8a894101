// Kernel source (kernels/*.cuh) is compiled twice: by nvcc for the device and by the C++ compiler
// for the CPU emulation (kernels/emu/cuda_emu.h). The two compilations must not share symbols, or
// a program that links both (the unit tests link the CUDA library and run emulated kernels) could
// have the linker pick nvcc's launch stub for an emulated call. And several .cu files include the
// same .cuh (fft_conv.cu uses the column sums of elementwise.cuh), whose non-template kernels
// (`inline` is ignored on __global__) must not collide either. So each .cuh puts its contents in
// an unnamed namespace under nvcc (one private copy per .cu file) and in an inline namespace of its
// own under emulation (where __global__ means inline: one copy per program). Callers write
// cuda::name either way.
#pragma once

#if defined(LONGSEQ_CUDA_EMULATION)
#define LS_KERNELS_BEGIN inline namespace emulated {
#else
#define LS_KERNELS_BEGIN namespace {
#endif
#define LS_KERNELS_END }
