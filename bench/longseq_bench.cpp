// longseq-bench: one runner for every op. For each op it prints the time, ns per element and the
// achieved GB/s or GFLOP/s next to this machine's ceilings measured at start. Benchmarks are not
// tests: nothing here asserts a time. Figures go to docs/PERFORMANCE.md with the command line.
#include "bench/ceilings.h"
#include "core/memory.h"
#include "core/ops/gemm.h"
#include "core/ops/ops.h"
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

Mat<float> rows_of(const Tensor& t) { return mat(t.data<float>(), t.size(0), t.numel() / t.size(0)); }

// Selective scan at the mamba-130m inner width, the shape the figures are quoted at: the
// SIMD inference path, and the plain recurrence that keeps chunk states for a backward.
void add_scan_ops(std::vector<Op>& list) {
  const int64_t D = 1536, N = 16;
  for (auto [L, plain] : {std::pair<int64_t, bool>{65536, false}, {4096, true}}) {
    auto t = std::make_shared<std::vector<Tensor>>();
    for (auto [shape, seed] : {std::pair<Shape, uint64_t>{{L, D}, 11}, {{L, D}, 12}, {{D, N}, 13}, {{L, N}, 14}, {{L, N}, 15}, {{D}, 16},
                               {{L, D}, 17}, {{D}, 18}})
      t->push_back(random_tensor(shape, seed));
    auto y = std::make_shared<Tensor>(Tensor::empty({L, D})), state = std::make_shared<Tensor>(Tensor::zeros({D, N}));
    auto saved = std::make_shared<Tensor>(Tensor::empty({ops::scan_chunks(L, 256) * D * N}));
    const auto& v = *t;
    const ops::ScanArgs<float> a{.u = rows_of(v[0]), .delta = rows_of(v[1]), .B = rows_of(v[3]), .C = rows_of(v[4]), .z = rows_of(v[6]),
                                 .A = v[2].data<float>(), .Dskip = v[5].data<float>(), .delta_bias = v[7].data<float>(),
                                 .state = plain ? nullptr : state->data<float>()};
    const double n = double(L * D);
    list.push_back({plain ? "selective_scan_plain" : "selective_scan", fmt::format("L={} D={} N={}", L, D, N), n,
                   16.0 * n + 8.0 * double(L * N), 0, [=] {
                     (void)t;
                     ops::selective_scan_forward<float>(a, rows_of(*y), plain ? saved->data<float>() : nullptr);
                   }});
  }
  {  // The exp-throughput bound of the scan: N exp2 per channel-token, nothing else.
    auto x = std::make_shared<Tensor>(random_tensor({1 << 22}, 19));
    auto y = std::make_shared<Tensor>(Tensor::empty({1 << 22}));
    list.push_back({"simd.exp2", "4M values", double(1 << 22), 0, 0, [x, y] {
                     const float* px = x->data<float>();
                     float* py = y->data<float>();
#pragma omp parallel for schedule(static)
                     for (int64_t i = 0; i < (int64_t(1) << 22); i += simd::kLanes)
                       simd::store(py + i, simd::exp2(simd::load(px + i)));
                   }});
  }
}

void add_conv_ops(std::vector<Op>& list) {
  const int64_t L = 65536, D = 1536, W = 4;
  auto x = std::make_shared<Tensor>(random_tensor({L, D}, 21)), w = std::make_shared<Tensor>(random_tensor({D, W}, 22));
  auto b = std::make_shared<Tensor>(random_tensor({D}, 23)), out = std::make_shared<Tensor>(Tensor::empty({L, D}));
  auto state = std::make_shared<Tensor>(Tensor::zeros({W, D}));
  const double n = double(L * D);
  list.push_back({"causal_conv1d", fmt::format("L={} D={} W={} silu", L, D, W), n, 8.0 * n, 0, [=] {
                   ops::causal_conv1d_forward<float>(
                       {.x = rows_of(*x), .w = w->data<float>(), .b = b->data<float>(), .W = W, .silu = true, .state = state->data<float>()},
                       rows_of(*out));
                 }});
}

// FFT long convolution at L = 262144 over 64 channels, against FFTW's own batched r2c + c2r round
// trip of the same size (the rate FFTW reaches here). FLOPs are counted as 2.5 n log2 n per real
// transform: the conv runs three (input, filter, inverse), or two with a cached filter spectrum.
void add_fft_ops(std::vector<Op>& list) {
  const int64_t L = 262144, C = 64, n = ops::fft_size(L);
  const double per_fft = 2.5 * double(n) * std::log2(double(n)) * double(C);
  auto v = std::make_shared<Tensor>(random_tensor({C, L}, 31));  // channel-major rows, convolved in place
  auto k = std::make_shared<Tensor>(random_tensor({C, L}, 32));
  auto spec = std::make_shared<ops::FilterSpectrum>(ops::fft_filter_spectrum(rows_of(*k)));
  const std::string shape = fmt::format("L={} C={} n={}", L, C, n);
  list.push_back({"fft_conv", shape, double(L * C), 0, 3 * per_fft, [=] { ops::fft_conv_rows(rows_of(*v), nullptr, nullptr, rows_of(*k)); }});
  list.push_back({"fft_conv_cached", shape, double(L * C), 0, 2 * per_fft,
                 [=] { ops::fft_conv_rows(rows_of(*v), nullptr, spec->row(0), {}); }});
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
  list.push_back({"fftw.roundtrip", fmt::format("n={} x{} 1 thread", n, C), double(L * C), 0, 2 * per_fft, [=] {
                   (void)re, (void)co;
                   fftwf_execute(r2c.get());
                   fftwf_execute(c2r.get());
                 }});
}

std::vector<Op> make_ops() {
  std::vector<Op> list;
  {  // Contiguous copy of a (L, D) activation: the memcpy floor every op is measured against.
    auto src = std::make_shared<Tensor>(random_tensor({65536, 1024}, 1));
    auto dst = std::make_shared<Tensor>(Tensor::empty({65536, 1024}));
    const double n = double(src->numel());
    list.push_back({"tensor.copy", "L=65536 D=1024 f32", n, 8 * n, 0, [=] { dst->copy_from(*src); }});
  }
  {  // Strided gather: a D-slice of a wider activation (the x half of in_proj's output).
    auto src = std::make_shared<Tensor>(random_tensor({65536, 2048}, 2));
    auto dst = std::make_shared<Tensor>(Tensor::empty({65536, 1024}));
    const double n = double(dst->numel());
    list.push_back({"tensor.copy_strided", "L=65536 D=1024 of 2048", n, 8 * n, 0,
                   [=] { dst->copy_from(src->slice(1, 0, 1024)); }});
  }
  {  // BF16 weights to F32 on load.
    auto src = std::make_shared<Tensor>(random_tensor({4096, 4096}, 3).to(DType::BF16));
    const double n = double(src->numel());
    list.push_back({"tensor.bf16_to_f32", "4096x4096", n, 6 * n, 0, [=] { (void)src->to(DType::F32); }});
  }
  for (auto [M, K, O] : {std::tuple<int64_t, int64_t, int64_t>{4096, 768, 3072}, {4096, 1536, 768}, {2048, 256, 768}}) {
    auto x = std::make_shared<Tensor>(random_tensor({M, K}, 4));
    auto w = std::make_shared<Tensor>(random_tensor({O, K}, 5));
    auto y = std::make_shared<Tensor>(Tensor::empty({M, O}));
    list.push_back({"linear", fmt::format("M={} K={} O={}", M, K, O), double(M * O), 0, 2.0 * M * K * O,
                   [=] { ops::linear_forward<float>(rows_of(*x), w->data<float>(), nullptr, rows_of(*y)); }});
    if (ops::gemm_bf16_products_supported())  // --matmul bf16: the same product with bf16 pair products
      list.push_back({"linear.bf16_products", fmt::format("M={} K={} O={}", M, K, O), double(M * O), 0, 2.0 * M * K * O, [=] {
                        ops::gemm_bf16_products({x->data<float>(), K, 1}, ops::GemmOperand<float>{w->data<float>(), 1, K}, K, rows_of(*y),
                                                false, nullptr);
                      }});
  }
  // Evo 2 1b's attention: 15 heads of 128, causal; at 32 k also with a sliding window of 4,096 keys.
  for (auto [L, window] : {std::pair<int64_t, int64_t>{2048, 0}, {8192, 0}, {32768, 0}, {32768, 4096}}) {
    const int64_t H = 15, hd = 128;
    auto q = std::make_shared<Tensor>(random_tensor({L, H * hd}, 6)), k = std::make_shared<Tensor>(random_tensor({L, H * hd}, 7)),
         v = std::make_shared<Tensor>(random_tensor({L, H * hd}, 8)), y = std::make_shared<Tensor>(Tensor::empty({L, H * hd}));
    const double w = window > 0 ? double(window) : double(L);  // query-key pairs per head: rows see min(i + 1, w) keys
    const double pairs = double(L) * double(L + 1) / 2 - (L > w ? (double(L) - w) * (double(L) - w + 1) / 2 : 0.0);
    list.push_back({"attention.causal", fmt::format("L={} H={} hd={}{}", L, H, hd, window > 0 ? fmt::format(" window={}", window) : ""),
                    double(L * H), 0, 4.0 * pairs * double(H * hd), [=] {
                      ops::causal_attention_forward<float>({.q = rows_of(*q), .k = rows_of(*k), .v = rows_of(*v), .heads = H, .kv_heads = H,
                                                            .head_dim = hd, .window = window},
                                                           rows_of(*y), nullptr);
                    }});
  }
  {  // One decode step of that attention against a cache of 8,192 keys (the row-at-a-time schedule).
    const int64_t L = 8192, H = 15, hd = 128;
    auto q = std::make_shared<Tensor>(random_tensor({1, H * hd}, 6)), k = std::make_shared<Tensor>(random_tensor({L, H * hd}, 7)),
         v = std::make_shared<Tensor>(random_tensor({L, H * hd}, 8)), y = std::make_shared<Tensor>(Tensor::empty({1, H * hd}));
    list.push_back({"attention.decode", fmt::format("S={} H={} hd={}", L, H, hd), double(H), 2.0 * double(L * H * hd) * 4, 4.0 * double(L * H * hd),
                    [=] {
                      ops::causal_attention_forward<float>({.q = rows_of(*q), .k = rows_of(*k), .v = rows_of(*v), .heads = H, .kv_heads = H,
                                                            .head_dim = hd, .offset = L - 1},
                                                           rows_of(*y), nullptr);
                    }});
  }
  add_scan_ops(list);
  add_conv_ops(list);
  add_fft_ops(list);
  return list;
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
