#include "core/ops/selective_scan.h"

#include "core/error.h"
#include "kernels/activations.h"
#include "core/ops/simd.h"

#include <omp.h>

#include <algorithm>
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

// SIMD path over channels [d0, d1) (a multiple of kLanes), in blocks of kT tokens. Token blocks are
// the outer loop so that the rows of u, delta, z and y a block touches (kT rows of the thread's
// channel range) stay in L2 across its channel blocks; rows are D floats apart, so walking one
// 16-channel column down the whole sequence would miss on every token. Within a block, dt and dt*u
// are computed once, then for each state n the recurrence runs along the tokens with h_n in a
// register: exp2 calls of different tokens are independent and only one FMA per token is on the
// critical path (keeping all N states in registers instead spills at N = 16).
template <int kN>
void scan_range_simd(const Ptrs& p, int64_t L, int64_t N_rt, int64_t d0, int64_t d1, bool softplus_delta, bool use_initial) {
  using namespace simd;
  constexpr int64_t kT = 64;
  const int64_t N = kN > 0 ? kN : N_rt;
  const int64_t blocks = (d1 - d0) / kLanes;
  std::vector<vf> h(static_cast<size_t>(blocks * N)), A2(static_cast<size_t>(blocks * N));
  for (int64_t k = 0; k < blocks; ++k)
    for (int64_t n = 0; n < N; ++n)
      for (int l = 0; l < kLanes; ++l) {
        const int64_t d = d0 + k * kLanes + l;
        A2[size_t(k * N + n)][l] = p.A[d * N + n] * kLog2e;  // exp(dt*A) = exp2(dt*A*log2(e))
        h[size_t(k * N + n)][l] = use_initial ? p.state[d * N + n] : 0.0f;
      }
  vf dt[kT], du[kT], y[kT];
  for (int64_t t0 = 0; t0 < L; t0 += kT) {
    const int64_t nt = std::min(kT, L - t0);
    const float* B = p.B + t0 * p.sB;
    const float* C = p.C + t0 * p.sC;
    for (int64_t k = 0; k < blocks; ++k) {
      const int64_t dc = d0 + k * kLanes;
      const vf Dv = p.Dskip ? load(p.Dskip + dc) : splat(0.0f);
      const vf bias = p.bias ? load(p.bias + dc) : splat(0.0f);
      for (int64_t t = 0; t < nt; ++t) {
        const vf u = load(p.u + (t0 + t) * p.su + dc);
        vf d = load(p.delta + (t0 + t) * p.sdelta + dc) + bias;
        if (softplus_delta) d = simd::softplus(d);
        dt[t] = d;
        du[t] = d * u;
        y[t] = Dv * u;
      }
      vf* hk = h.data() + k * N;
      const vf* ak = A2.data() + k * N;
      for (int64_t n = 0; n < N; ++n) {
        vf hn = hk[n];
        const vf a = ak[n];
        for (int64_t t = 0; t < nt; ++t) {
          hn = exp2(dt[t] * a) * hn + du[t] * B[t * p.sB + n];
          y[t] += hn * C[t * p.sC + n];
        }
        hk[n] = hn;
      }
      for (int64_t t = 0; t < nt; ++t) {
        vf out = y[t];
        if (p.z) out *= simd::silu(load(p.z + (t0 + t) * p.sz + dc));
        store(p.y + (t0 + t) * p.sy + dc, out);
      }
    }
  }
  if (p.state)
    for (int64_t k = 0; k < blocks; ++k)
      for (int64_t n = 0; n < N; ++n)
        for (int l = 0; l < kLanes; ++l) p.state[(d0 + k * kLanes + l) * N + n] = h[size_t(k * N + n)][l];
}

using RangeFn = void (*)(const Ptrs&, int64_t, int64_t, int64_t, int64_t, bool, bool);

RangeFn pick_range(int64_t N) {
  switch (N) {
    case 4: return &scan_range_simd<4>;
    case 8: return &scan_range_simd<8>;
    case 16: return &scan_range_simd<16>;
    default: return &scan_range_simd<0>;
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
  const int64_t simd_end = d.D / W * W;  // channels past it (fewer than W) take the scalar path
  const RangeFn range = pick_range(d.N);
  // Each (batch, channel group) is independent: the split changes which thread computes a channel,
  // never how, so results do not depend on the thread count. Groups are contiguous channel ranges
  // (one per thread and batch) so each thread reads long row segments.
  const int64_t groups_per_batch = std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), simd_end / W));
  const int64_t blocks = simd_end / W;
#pragma omp parallel for schedule(static, 1) collapse(2)
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t g = 0; g <= groups_per_batch; ++g) {
      const Ptrs p = batch_ptrs(a, b);
      if (g == groups_per_batch) {
        if (simd_end < d.D) scan_channels_scalar(p, d.L, d.N, simd_end, d.D, a.delta_softplus, a.use_initial_state);
        continue;
      }
      const int64_t k0 = blocks * g / groups_per_batch, k1 = blocks * (g + 1) / groups_per_batch;
      if (k1 > k0) range(p, d.L, d.N, k0 * W, k1 * W, a.delta_softplus, a.use_initial_state);
    }
}

}  // namespace longseq
