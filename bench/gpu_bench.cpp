// GPU kernel benchmark (CUDA builds; needs a device): times each kernel at the shapes of
// docs/PERFORMANCE.md's on-paper bounds and prints a Markdown table with the time, the bytes the
// kernel must move by design and the resulting GB/s (and GFLOP/s for the GEMM), so a run on any GPU
// can be set against its memory bandwidth. Each figure is the median of --reps timed calls after one
// warm-up call (cudaEvent around the host entry, which synchronizes).
// The "model" rows run the device models end to end (mamba-130m and hyenadna-large-1m shapes).
// Usage: gpu-bench [--length L] [--channels D] [--hyena-channels D] [--reps R] [--only NAME]
#include "core/backend.h"
#include "core/families/hyena_config.h"
#include "core/families/family.h"
#include "core/families/mamba_config.h"
#include "kernels/causal_conv1d.h"
#include "kernels/cuda_check.h"
#include "kernels/fft_conv.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/runtime.h"
#include "kernels/selective_scan.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

using namespace longseq;

namespace {

// Device floats filled with a constant (values do not change the work), freed on scope exit.
struct Buf {
  float* p = nullptr;
  explicit Buf(int64_t n, float value = 0.01f) {
    CUDA_CHECK(cudaMalloc(&p, size_t(std::max<int64_t>(n, 1)) * sizeof(float)));
    std::vector<float> host(size_t(std::min<int64_t>(n, int64_t(1) << 24)), value);
    for (int64_t off = 0; off < n; off += int64_t(host.size()))
      CUDA_CHECK(cudaMemcpy(p + off, host.data(), size_t(std::min<int64_t>(int64_t(host.size()), n - off)) * sizeof(float),
                            cudaMemcpyHostToDevice));
  }
  Buf(const Buf&) = delete;
  ~Buf() { cudaFree(p); }
};

double median_ms(const std::function<void()>& f, int reps) {
  f();  // warm-up: plans, pool memory
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(a));
    f();
    CUDA_CHECK(cudaEventRecord(b));
    CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void row(const std::string& name, const std::string& shape, double ms, double bytes, double flops = 0) {
  fmt::print("| {} | {} | {:.3f} | {:.2f} | {:.0f} |{}\n", name, shape, ms, bytes / 1e9, bytes / 1e9 / (ms / 1e3),
             flops > 0 ? fmt::format(" {:.0f} GFLOP/s", flops / 1e9 / (ms / 1e3)) : std::string(" -"));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Times the CUDA kernels at the shapes of docs/PERFORMANCE.md"};
  int64_t L = int64_t(1) << 20, D = 1536, Dh = 256;
  int reps = 5;
  std::string only;
  app.add_option("--length", L, "sequence length L")->check(CLI::PositiveNumber);
  app.add_option("--channels", D, "Mamba inner channels D (scan, conv1d)")->check(CLI::PositiveNumber);
  app.add_option("--hyena-channels", Dh, "Hyena channels (FFT conv)")->check(CLI::PositiveNumber);
  app.add_option("--reps", reps, "timed calls per kernel (median)")->check(CLI::PositiveNumber);
  app.add_option("--only", only, "run only the kernels whose name contains this");
  CLI11_PARSE(app, argc, argv);
  if (cuda_device_count() == 0) {
    fmt::print(stderr, "gpu-bench: {}; run it on a machine with a CUDA device\n", cuda_device_summary());
    return 1;
  }
  fmt::print("device: {}\n\n| kernel | shape | ms | GB moved (by design) | GB/s | compute |\n|---|---|---|---|---|---|\n",
             cuda::device_summary());
  const auto want = [&](const char* name) { return only.empty() || std::string(name).find(only) != std::string::npos; };
  const int64_t N = 16, LD = L * D, LN = L * N;
  const std::string scan_shape = fmt::format("B=1 L={} D={} N={}", L, D, N);
  try {
    if (want("selective_scan")) {
      Buf u(LD), delta(LD, -1.0f), z(LD), y(LD), A(D * N, -0.5f), Bm(LN), Cm(LN), Dskip(D), bias(D);
      const cuda::SelectiveScanParams p{.batch = 1, .length = L, .channels = D, .states = N, .u = u.p, .u_b = LD, .u_l = D, .delta = delta.p,
                                        .delta_b = LD, .delta_l = D, .Bm = Bm.p, .B_b = LN, .B_l = N, .Cm = Cm.p, .C_b = LN, .C_l = N,
                                        .z = z.p, .z_b = LD, .z_l = D, .A = A.p, .Dskip = Dskip.p, .delta_bias = bias.p, .softplus = true,
                                        .y = y.p, .y_b = LD, .y_l = D};
      row("selective_scan_forward", scan_shape, median_ms([&] { cuda::selective_scan_forward(p); }, reps), 16.0 * double(LD) + 8.0 * double(LN));
      Buf dy(LD), du(LD), ddelta(LD), dz(LD), dB(LN), dC(LN), dA(D * N), dD(D), dbias(D);
      const cuda::SelectiveScanBwdParams g{.fwd = p, .dy = dy.p, .dy_b = LD, .dy_l = D, .du = du.p, .du_b = LD, .du_l = D, .ddelta = ddelta.p,
                                           .ddelta_b = LD, .ddelta_l = D, .dz = dz.p, .dz_b = LD, .dz_l = D, .dB = dB.p, .dB_b = LN,
                                           .dB_l = N, .dC = dC.p, .dC_b = LN, .dC_l = N, .dA = dA.p, .dDskip = dD.p, .ddelta_bias = dbias.p};
      row("selective_scan_backward", scan_shape, median_ms([&] { cuda::selective_scan_backward(g); }, reps), 48.0 * double(LD));
    }
    if (want("causal_conv1d")) {
      Buf x(LD), w(D * 4), b(D), out(LD), dy(LD), dx(LD), dw(D * 4), db(D);
      const cuda::CausalConv1dParams p{.batch = 1, .length = L, .channels = D, .width = 4, .x = x.p, .x_b = LD, .x_l = D, .weight = w.p,
                                       .bias = b.p, .silu = true, .out = out.p, .out_b = LD, .out_l = D};
      const std::string shape = fmt::format("B=1 L={} D={} W=4", L, D);
      row("causal_conv1d_forward", shape, median_ms([&] { cuda::causal_conv1d_forward(p); }, reps), 8.0 * double(LD));
      row("causal_conv1d_backward", shape,
          median_ms([&] {
            cuda::causal_conv1d_backward({.fwd = p, .dout = dy.p, .dout_b = LD, .dout_l = D, .dx = dx.p, .dx_b = LD, .dx_l = D, .dweight = dw.p,
                                          .dbias = db.p});
          }, reps),
          12.0 * double(LD));
    }
    if (want("fft_conv")) {
      const int64_t n = cuda::fft_conv_size(L), LH = L * Dh;
      Buf u(LH), k(LH), gate(LH), bias(Dh), y(LH), spec(Dh * (n / 2 + 1) * 2), dy(LH), du(LH), dk(LH), dgate(LH), db(Dh);
      auto* s = reinterpret_cast<cuda::CFloat*>(spec.p);
      const std::string shape = fmt::format("B=1 L={} D={} n={}", L, Dh, n);
      row("fft_conv_filter_spectrum", shape, median_ms([&] { cuda::fft_conv_filter_spectrum(k.p, Dh, L, Dh, s); }, reps),
          4.0 * double(LH) + 16.0 * double(n) * double(Dh));
      const cuda::FftConvParams p{.batch = 1, .length = L, .channels = Dh, .u = {u.p, LH, Dh}, .gate = {gate.p, LH, Dh}, .bias = bias.p,
                                  .filter = {L, Dh, n, s}, .y = y.p, .y_b = LH, .y_l = Dh};
      const double fwd_bytes = 16.0 * double(LH) + 4.0 * double(n) * double(Dh) * 8.0;  // u, gate, rows, y + ~8 passes over n-point rows
      row("fft_conv_forward", shape, median_ms([&] { cuda::fft_conv_forward(p); }, reps), fwd_bytes);
      row("fft_conv_backward", shape,
          median_ms([&] {
            cuda::fft_conv_backward({.fwd = p, .dy = {dy.p, LH, Dh}, .du = du.p, .du_b = LH, .du_l = Dh, .dk = dk.p, .dk_l = Dh,
                                     .dgate = dgate.p, .dgate_b = LH, .dgate_l = Dh, .dbias = db.p});
          }, reps),
          3.0 * fwd_bytes);
    }
    if (want("norm")) {
      const int64_t R = L, C = 768;
      Buf x(R * C), w(C, 1.0f), b(C), y(R * C), mean(R), rstd(R), dy(R * C), dx(R * C), dw(C), db(C);
      for (bool rms : {true, false}) {
        const cuda::NormParams p{.rows = R, .cols = C, .rms = rms, .x = x.p, .x_r = C, .weight = w.p, .bias = rms ? nullptr : b.p, .y = y.p,
                                 .y_r = C, .mean = mean.p, .rstd = rstd.p};
        const std::string shape = fmt::format("R={} D={}", R, C);
        row(rms ? "rms_norm_forward" : "layer_norm_forward", shape, median_ms([&] { cuda::norm_forward(p); }, reps), 8.0 * double(R * C));
        row(rms ? "rms_norm_backward" : "layer_norm_backward", shape,
            median_ms([&] { cuda::norm_backward({.fwd = p, .dy = dy.p, .dy_r = C, .dx = dx.p, .dx_r = C, .dweight = dw.p, .dbias = db.p}); }, reps),
            20.0 * double(R * C));
      }
    }
    if (want("gemm")) {
      const int64_t M = std::min<int64_t>(L, 65536), K = 768, O = 2 * D;
      Buf x(M * K), w(O * K), y(M * O);
      for (bool tf32 : {false, true})
        row(tf32 ? "linear (tf32)" : "linear (fp32)", fmt::format("M={} K={} O={}", M, K, O),
            median_ms([&] { cuda::linear(x.p, K, w.p, nullptr, y.p, O, M, K, O, tf32); }, reps), 4.0 * double(M * K + O * K + M * O),
            2.0 * double(M) * double(K) * double(O));
    }
    if (want("model")) {
      // End to end: the device models with random weights at released shapes, tokens streamed in.
      const auto ids_of = [](int64_t n, int64_t V) {
        std::vector<int64_t> ids(static_cast<size_t>(n));
        for (int64_t t = 0; t < n; ++t) ids[size_t(t)] = int64_t((uint64_t(t) * 2654435761u >> 7) % uint64_t(V));
        return Tensor::from_ids(ids);
      };
      MambaConfig mc;  // mamba-130m: d 768, 24 layers, D 1536, N 16
      mc.d_model = 768, mc.n_layer = 24, mc.vocab_size = 12, mc.padded_vocab = 16, mc.d_state = 16, mc.d_inner = 1536, mc.dt_rank = 48;
      const auto mamba = make_device_model(new_model_from_json(mamba_config_json(mc), 1), "cuda");
      const LanguageModel& dev = *mamba;
      const int64_t chunk = 65536;
      const Tensor ids = ids_of(L, mc.vocab_size);
      const double ms = median_ms([&] { dev.stream_logits(ids, chunk, [](int64_t, const Tensor&) {}); }, std::min(reps, 3));
      fmt::print("| mamba-130m shape, loglik stream | L={} chunk={} | {:.1f} | - | - | {:.0f} tokens/s |\n", L, chunk, ms, double(L) / (ms / 1e3));
      HyenaConfig hc;  // hyenadna-large-1m: d 256, 8 layers, d_inner 1024
      hc.d_model = 256, hc.n_layer = 8, hc.d_inner = 1024, hc.vocab_size = 12, hc.padded_vocab = 16, hc.max_seq_len = L + 2;
      const auto hyena = make_device_model(new_model_from_json(hyena_config_json(hc), 2), "cuda");
      const LanguageModel& hdev = *hyena;
      const auto start = std::chrono::steady_clock::now();
      hdev.forward(ids, {});  // the first call of a length also computes the filters and their spectra
      const double first = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      const double cached = median_ms([&] { hdev.forward(ids, {}); }, std::min(reps, 3));
      fmt::print("| hyenadna-large-1m shape, one window | L={} | {:.1f} (first call, with the filters: {:.1f}) | - | - | {:.0f} tokens/s |\n", L,
                 cached, first, double(L) / (cached / 1e3));
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "gpu-bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
