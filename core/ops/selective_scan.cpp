#include "core/ops/selective_scan.h"

#include "core/error.h"
#include "core/ops/activations.h"
#include "core/ops/simd.h"

#include <cmath>
#include <vector>

namespace longseq {

namespace {

struct Dims {
  int64_t B, L, D, N;
};

void check_btd(const Tensor& t, const char* name, const Dims& d, int64_t last) {
  LS_CHECK(t.defined() && t.dtype() == DType::F32 && t.dim() == 3, "selective_scan: {} must be F32 (B, L, {}), got {}", name,
           last, t.describe());
  LS_CHECK(t.size(0) == d.B && t.size(1) == d.L && t.size(2) == last, "selective_scan: {} is {}, expected [{}, {}, {}]", name,
           shape_str(t.shape()), d.B, d.L, last);
  LS_CHECK(last <= 1 || t.stride(2) == 1, "selective_scan: {} needs unit stride along its last dimension", name);
}

void check_vec(const Tensor& t, const char* name, int64_t n) {
  if (!t.defined()) return;
  LS_CHECK(t.dtype() == DType::F32 && t.dim() == 1 && t.size(0) == n && t.is_contiguous(),
           "selective_scan: {} must be contiguous F32 [{}], got {}", name, n, t.describe());
}

Dims validate(const SelectiveScanArgs& a) {
  LS_CHECK(a.u.defined() && a.u.dim() == 3, "selective_scan: u must be (B, L, D), got {}", a.u.describe());
  LS_CHECK(a.A.defined() && a.A.dim() == 2 && a.A.dtype() == DType::F32 && a.A.is_contiguous(),
           "selective_scan: A must be contiguous F32 (D, N), got {}", a.A.describe());
  const Dims d{a.u.size(0), a.u.size(1), a.u.size(2), a.A.size(1)};
  LS_CHECK(a.A.size(0) == d.D, "selective_scan: A has {} rows but u has D = {}", a.A.size(0), d.D);
  check_btd(a.u, "u", d, d.D);
  check_btd(a.delta, "delta", d, d.D);
  check_btd(a.B, "B", d, d.N);
  check_btd(a.C, "C", d, d.N);
  check_btd(a.y, "y", d, d.D);
  if (a.z.defined()) check_btd(a.z, "z", d, d.D);
  check_vec(a.Dskip, "D", d.D);
  check_vec(a.delta_bias, "delta_bias", d.D);
  if (a.state.defined())
    LS_CHECK(a.state.dtype() == DType::F32 && a.state.is_contiguous() && a.state.shape() == (Shape{d.B, d.D, d.N}),
             "selective_scan: state must be contiguous F32 [{}, {}, {}], got {}", d.B, d.D, d.N, a.state.describe());
  LS_CHECK(!a.use_initial_state || a.state.defined(), "selective_scan: use_initial_state without a state tensor");
  return d;
}

// Raw pointers and element strides of one batch row, shared by both paths.
struct Ptrs {
  const float *u, *delta, *B, *C, *z, *A, *Dskip, *bias;
  int64_t su, sdelta, sB, sC, sz;  // token strides
  float* y;
  int64_t sy;
  float* state;  // (D, N) of this batch or null
};

Ptrs batch_ptrs(const SelectiveScanArgs& a, int64_t b) {
  auto row = [b](const Tensor& t) { return t.defined() ? t.data<float>() + b * t.stride(0) : nullptr; };
  auto tstride = [](const Tensor& t) { return t.defined() ? t.stride(1) : 0; };
  Ptrs p{row(a.u),          row(a.delta),       row(a.B),          row(a.C),          row(a.z),
         a.A.data<float>(), a.Dskip.defined() ? a.Dskip.data<float>() : nullptr,
         a.delta_bias.defined() ? a.delta_bias.data<float>() : nullptr,
         tstride(a.u),      tstride(a.delta),   tstride(a.B),      tstride(a.C),      tstride(a.z),
         row(a.y),          tstride(a.y),       nullptr};
  if (a.state.defined()) p.state = a.state.data<float>() + b * a.state.stride(0);
  return p;
}

// Scalar path for channels [d0, d1): the reference, and the tail of the fast path.
void scan_channels_scalar(const Ptrs& p, int64_t L, int64_t N, int64_t d0, int64_t d1, bool softplus_delta,
                          bool use_initial) {
  std::vector<float> h(static_cast<size_t>(N));
  for (int64_t d = d0; d < d1; ++d) {
    for (int64_t n = 0; n < N; ++n) h[size_t(n)] = use_initial ? p.state[d * N + n] : 0.0f;
    const float* A = p.A + d * N;
    for (int64_t t = 0; t < L; ++t) {
      const float u = p.u[t * p.su + d];
      float dt = p.delta[t * p.sdelta + d] + (p.bias ? p.bias[d] : 0.0f);
      if (softplus_delta) dt = softplus(dt);
      const float* Bt = p.B + t * p.sB;
      const float* Ct = p.C + t * p.sC;
      float y = 0.0f;
      for (int64_t n = 0; n < N; ++n) {
        h[size_t(n)] = std::exp(dt * A[n]) * h[size_t(n)] + dt * Bt[n] * u;
        y += Ct[n] * h[size_t(n)];
      }
      if (p.Dskip) y += p.Dskip[d] * u;
      if (p.z) y *= silu(p.z[t * p.sz + d]);
      p.y[t * p.sy + d] = y;
    }
    if (p.state)
      for (int64_t n = 0; n < N; ++n) p.state[d * N + n] = h[size_t(n)];
  }
}

// SIMD path for kLanes channels starting at d0. kN > 0 fixes the state size at compile time so the
// N state vectors live in registers; kN == 0 handles any N from memory.
template <int kN>
void scan_block_simd(const Ptrs& p, int64_t L, int64_t N_rt, int64_t d0, bool softplus_delta, bool use_initial) {
  using namespace simd;
  const int64_t N = kN > 0 ? kN : N_rt;
  constexpr int kMaxN = kN > 0 ? kN : 256;
  vf h[kMaxN], A2[kMaxN];
  for (int64_t n = 0; n < N; ++n) {
    for (int l = 0; l < kLanes; ++l) {
      A2[n][l] = p.A[(d0 + l) * N + n] * kLog2e;  // exp(dt*A) = exp2(dt*A*log2(e))
      h[n][l] = use_initial ? p.state[(d0 + l) * N + n] : 0.0f;
    }
  }
  const vf Dv = p.Dskip ? load(p.Dskip + d0) : splat(0.0f);
  const vf bias = p.bias ? load(p.bias + d0) : splat(0.0f);
  for (int64_t t = 0; t < L; ++t) {
    const vf u = load(p.u + t * p.su + d0);
    vf dt = load(p.delta + t * p.sdelta + d0) + bias;
    if (softplus_delta) dt = simd::softplus(dt);
    const vf du = dt * u;
    const float* Bt = p.B + t * p.sB;
    const float* Ct = p.C + t * p.sC;
    vf y = splat(0.0f);
    for (int64_t n = 0; n < N; ++n) {
      h[n] = exp2(dt * A2[n]) * h[n] + du * Bt[n];
      y += h[n] * Ct[n];
    }
    y += Dv * u;
    if (p.z) y *= simd::silu(load(p.z + t * p.sz + d0));
    store(p.y + t * p.sy + d0, y);
  }
  if (p.state)
    for (int64_t n = 0; n < N; ++n)
      for (int l = 0; l < kLanes; ++l) p.state[(d0 + l) * N + n] = h[n][l];
}

using BlockFn = void (*)(const Ptrs&, int64_t, int64_t, int64_t, bool, bool);

BlockFn pick_block(int64_t N) {
  switch (N) {
    case 4: return &scan_block_simd<4>;
    case 8: return &scan_block_simd<8>;
    case 16: return &scan_block_simd<16>;
    default: return &scan_block_simd<0>;
  }
}

}  // namespace

bool selective_scan_supported(const SelectiveScanArgs& a) { return a.A.defined() && a.A.dim() == 2 && a.A.size(1) <= 256; }

void selective_scan_ref(const SelectiveScanArgs& a) {
  const Dims d = validate(a);
  for (int64_t b = 0; b < d.B; ++b)
    scan_channels_scalar(batch_ptrs(a, b), d.L, d.N, 0, d.D, a.delta_softplus, a.use_initial_state);
}

void selective_scan(const SelectiveScanArgs& a) {
  const Dims d = validate(a);
  if (!selective_scan_supported(a)) return selective_scan_ref(a);
  constexpr int64_t W = simd::kLanes;
  const int64_t blocks = (d.D + W - 1) / W;  // the last block may be a scalar tail
  const BlockFn block = pick_block(d.N);
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t k = 0; k < blocks; ++k) {
      const Ptrs p = batch_ptrs(a, b);
      const int64_t d0 = k * W;
      if (d0 + W <= d.D)
        block(p, d.L, d.N, d0, a.delta_softplus, a.use_initial_state);
      else
        scan_channels_scalar(p, d.L, d.N, d0, d.D, a.delta_softplus, a.use_initial_state);
    }
}

}  // namespace longseq
