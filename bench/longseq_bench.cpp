// longseq-bench: one runner for every op. For each op it prints the time, ns per element and the
// achieved GB/s or GFLOP/s next to this machine's ceilings measured at start. Benchmarks are not
// tests: nothing here asserts a time. Figures go to docs/PERFORMANCE.md with the command line.
#include "bench/ceilings.h"
#include "core/memory.h"
#include "core/ops/causal_conv1d.h"
#include "core/ops/fft_conv.h"
#include "core/ops/gemm.h"
#include "core/ops/selective_scan.h"
#include "core/ops/simd.h"
#include "core/tensor.h"
#include "core/threads.h"

#include <CLI/CLI.hpp>
#include <fftw3.h>
#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <random>
#include <regex>

using namespace longseq;
using namespace longseq::bench;

namespace {

struct Op {
  std::string name, shape;
  double elements;  // for ns/element
  double bytes;     // moved per call (0 if compute-bound)
  double flops;     // per call (0 if memory-bound)
  std::function<void()> run;
};

Tensor random_tensor(Shape shape, uint64_t seed) {
  Tensor t = Tensor::empty(std::move(shape));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
  return t;
}

// Selective scan at the mamba-130m inner width, the shape the figures are quoted at.
void add_scan_ops(std::vector<Op>& ops) {
  const int64_t D = 1536, N = 16;
  for (auto [L, ref] : {std::pair<int64_t, bool>{65536, false}, {4096, true}}) {
    auto a = std::make_shared<SelectiveScanArgs>();
    a->u = random_tensor({1, L, D}, 11);
    a->delta = random_tensor({1, L, D}, 12);
    a->A = random_tensor({D, N}, 13);
    a->B = random_tensor({1, L, N}, 14);
    a->C = random_tensor({1, L, N}, 15);
    a->Dskip = random_tensor({D}, 16);
    a->z = random_tensor({1, L, D}, 17);
    a->delta_bias = random_tensor({D}, 18);
    a->delta_softplus = true;
    a->y = Tensor::empty({1, L, D});
    a->state = Tensor::zeros({1, D, N});
    const double n = double(L * D);
    ops.push_back({ref ? "selective_scan_ref" : "selective_scan", fmt::format("L={} D={} N={}", L, D, N), n,
                   16.0 * n + 8.0 * double(L * N), 0, [a, ref] { ref ? selective_scan_ref(*a) : selective_scan(*a); }});
  }
  {  // The exp-throughput bound of the scan: N exp2 per channel-token, nothing else.
    auto x = std::make_shared<Tensor>(random_tensor({1 << 22}, 19));
    auto y = std::make_shared<Tensor>(Tensor::empty({1 << 22}));
    ops.push_back({"simd.exp2", "4M values", double(1 << 22), 0, 0, [x, y] {
                     const float* px = x->data<float>();
                     float* py = y->data<float>();
#pragma omp parallel for schedule(static)
                     for (int64_t i = 0; i < (int64_t(1) << 22); i += simd::kLanes)
                       simd::store(py + i, simd::exp2(simd::load(px + i)));
                   }});
  }
}

void add_conv_ops(std::vector<Op>& ops) {
  const int64_t L = 65536, D = 1536, W = 4;
  auto a = std::make_shared<CausalConv1dArgs>();
  a->x = random_tensor({1, L, D}, 21);
  a->weight = random_tensor({D, W}, 22);
  a->bias = random_tensor({D}, 23);
  a->out = Tensor::empty({1, L, D});
  a->state = Tensor::zeros({1, W, D});
  a->silu = true;
  const double n = double(L * D);
  ops.push_back({"causal_conv1d", fmt::format("L={} D={} W={} silu", L, D, W), n, 8.0 * n, 0, [a] { causal_conv1d(*a); }});
}

// FFT long convolution at L = 262144 over 64 channels, against FFTW's own batched r2c + c2r round
// trip of the same size (the rate FFTW reaches here). FLOPs are counted as 2.5 n log2 n per real
// transform: the conv runs three (input, filter, inverse), or two with a cached filter spectrum.
void add_fft_ops(std::vector<Op>& ops) {
  const int64_t L = 262144, C = 64, n = fft_fast_size(2 * L - 1);
  const double per_fft = 2.5 * double(n) * std::log2(double(n)) * double(C);
  auto u = std::make_shared<Tensor>(random_tensor({L, C}, 31));
  auto k = std::make_shared<Tensor>(random_tensor({L, C}, 32));
  auto y = std::make_shared<Tensor>(Tensor::empty({L, C}));
  auto spec = std::make_shared<FilterSpectrum>(fft_filter_spectrum(*k));
  const std::string shape = fmt::format("L={} C={} n={}", L, C, n);
  ops.push_back({"fft_conv", shape, double(L * C), 0, 3 * per_fft, [=] { fft_conv({.u = *u, .y = *y, .k = *k}); }});
  ops.push_back({"fft_conv_cached", shape, double(L * C), 0, 2 * per_fft,
                 [=] { fft_conv({.u = *u, .y = *y, .spectrum = spec.get()}); }});
  auto re = std::make_shared<Tensor>(random_tensor({C, n}, 33));
  auto co = std::make_shared<Tensor>(Tensor::empty({C, n / 2 + 1, 2}));
  const int len = int(n);
  auto r2c = std::shared_ptr<fftwf_plan_s>(
      fftwf_plan_many_dft_r2c(1, &len, int(C), re->data<float>(), nullptr, 1, len,
                              reinterpret_cast<fftwf_complex*>(co->data<float>()), nullptr, 1, len / 2 + 1, FFTW_ESTIMATE),
      fftwf_destroy_plan);
  auto c2r = std::shared_ptr<fftwf_plan_s>(
      fftwf_plan_many_dft_c2r(1, &len, int(C), reinterpret_cast<fftwf_complex*>(co->data<float>()), nullptr, 1, len / 2 + 1,
                              re->data<float>(), nullptr, 1, len, FFTW_ESTIMATE),
      fftwf_destroy_plan);
  // The plans point into re and co: the closure must keep them alive.
  ops.push_back({"fftw.roundtrip", fmt::format("n={} x{} 1 thread", n, C), double(L * C), 0, 2 * per_fft, [=] {
                   (void)re, (void)co;
                   fftwf_execute(r2c.get());
                   fftwf_execute(c2r.get());
                 }});
}

std::vector<Op> make_ops() {
  std::vector<Op> ops;
  {  // Contiguous copy of a (L, D) activation: the memcpy floor every op is measured against.
    auto src = std::make_shared<Tensor>(random_tensor({65536, 1024}, 1));
    auto dst = std::make_shared<Tensor>(Tensor::empty({65536, 1024}));
    const double n = double(src->numel());
    ops.push_back({"tensor.copy", "L=65536 D=1024 f32", n, 8 * n, 0, [=] { dst->copy_from(*src); }});
  }
  {  // Strided gather: a D-slice of a wider activation (the x half of in_proj's output).
    auto src = std::make_shared<Tensor>(random_tensor({65536, 2048}, 2));
    auto dst = std::make_shared<Tensor>(Tensor::empty({65536, 1024}));
    const double n = double(dst->numel());
    ops.push_back({"tensor.copy_strided", "L=65536 D=1024 of 2048", n, 8 * n, 0,
                   [=] { dst->copy_from(src->slice(1, 0, 1024)); }});
  }
  {  // BF16 weights to F32 on load.
    auto src = std::make_shared<Tensor>(random_tensor({4096, 4096}, 3).to(DType::BF16));
    const double n = double(src->numel());
    ops.push_back({"tensor.bf16_to_f32", "4096x4096", n, 6 * n, 0, [=] { (void)src->to(DType::F32); }});
  }
  for (auto [M, K, O] : {std::tuple<int64_t, int64_t, int64_t>{4096, 768, 3072}, {4096, 1536, 768}, {2048, 256, 768}}) {
    auto x = std::make_shared<Tensor>(random_tensor({M, K}, 4));
    auto w = std::make_shared<Tensor>(random_tensor({O, K}, 5));
    auto y = std::make_shared<Tensor>(Tensor::empty({M, O}));
    ops.push_back({"linear", fmt::format("M={} K={} O={}", M, K, O), double(M * O), 0, 2.0 * M * K * O,
                   [=] { linear(*x, *w, {}, *y); }});
  }
  add_scan_ops(ops);
  add_conv_ops(ops);
  add_fft_ops(ops);
  return ops;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"longseq-bench: op timings against this machine's measured ceilings"};
  std::string filter = ".*";
  std::vector<int> threads_list;
  int reps = 7;
  app.add_option("--filter", filter, "Regex on op names");
  app.add_option("--threads", threads_list, "Thread counts to run (default: 1 and all cores)");
  app.add_option("--reps", reps, "Timed repetitions per op (median reported)");
  CLI11_PARSE(app, argc, argv);
  if (threads_list.empty()) {
    threads_list = {1};
    if (available_cores() > 1) threads_list.push_back(available_cores());
  }
  const std::regex re(filter);
  auto ops = make_ops();
  for (int threads : threads_list) {
    set_num_threads(threads);
    const Ceilings c = measure_ceilings(threads);
    fmt::print("\n== threads={}  ceilings: copy {:.1f} GB/s, fp32 FMA peak {:.1f} GFLOP/s ==\n", threads, c.copy_gbs,
               c.fma_gflops);
    fmt::print("{:<22} {:<26} {:>10} {:>10} {:>12} {:>9}\n", "op", "shape", "ms", "ns/elem", "rate", "% ceiling");
    for (auto& op : ops) {
      if (!std::regex_search(op.name, re)) continue;
      const double s = median_seconds(reps, op.run);
      const bool compute = op.flops > 0;
      if (!compute && op.bytes == 0) {
        fmt::print("{:<22} {:<26} {:>10.3f} {:>10.3f}\n", op.name, op.shape, s * 1e3, s * 1e9 / op.elements);
        continue;
      }
      const double rate = compute ? op.flops / s / 1e9 : op.bytes / s / 1e9;
      const double pct = 100.0 * rate / (compute ? c.fma_gflops : c.copy_gbs);
      fmt::print("{:<22} {:<26} {:>10.3f} {:>10.3f} {:>7.1f} {:<4} {:>8.0f}%\n", op.name, op.shape, s * 1e3,
                 s * 1e9 / op.elements, rate, compute ? "GF/s" : "GB/s", pct);
    }
  }
  fmt::print("\npeak RSS {:.1f} MiB\n", double(peak_rss_bytes()) / (1 << 20));
  return 0;
}
