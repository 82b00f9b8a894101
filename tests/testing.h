// Shared test helpers: where the optional fixtures are, scratch folders, running the CLI, and error
// metrics for comparisons against references.
#pragma once

#include "tests/oracles.h"

#include "core/dtype.h"
#include "core/error.h"
#include "core/families/family.h"
#include "core/models/layer_model.h"
#include "core/models/lm.h"
#include "core/families/hyena_config.h"
#include "core/families/mamba_config.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sys/wait.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace longseq::testing {

// A model's logits streamed in chunks of `chunk` tokens, concatenated (L x V floats).
// A new Mamba-1 model with mamba_ssm's initialisation (through the registry), deterministic in seed.
inline std::unique_ptr<LayerLanguageModel> random_mamba(const MambaConfig& c, uint64_t seed) {
  auto m = new_model_from_json(mamba_config_json(c), seed);
  return std::unique_ptr<LayerLanguageModel>(&dynamic_cast<LayerLanguageModel&>(*m.release()));
}
// A new HyenaDNA model with the HF port's initialisation (through the registry), deterministic in seed.
inline std::unique_ptr<LayerLanguageModel> random_hyena(const HyenaConfig& c, uint64_t seed) {
  auto m = new_model_from_json(hyena_config_json(c), seed);
  return std::unique_ptr<LayerLanguageModel>(&dynamic_cast<LayerLanguageModel&>(*m.release()));
}
// Every tensor of a layer-described model under its name (file order).
inline std::vector<std::pair<std::string, Tensor>> named_parameters(const LanguageModel& m) {
  return dynamic_cast<const LayerLanguageModel&>(m).layers().named_tensors();
}

inline std::vector<float> streamed_logits(const LanguageModel& m, const Tensor& ids, int64_t chunk) {
  std::vector<float> out;
  m.stream_logits(ids, chunk, [&](int64_t, const Tensor& lg) {
    const auto v = lg.to_vector();
    out.insert(out.end(), v.begin(), v.end());
  });
  return out;
}

// ../shared/fixtures (from LONGSEQ_FIXTURES) when present; tests GTEST_SKIP otherwise.
inline std::optional<std::filesystem::path> fixtures_dir() {
  const char* env = std::getenv("LONGSEQ_FIXTURES");
  std::filesystem::path p = env ? env : LONGSEQ_SOURCE_DIR "/../shared/fixtures";
  if (std::filesystem::is_directory(p)) return p;
  return std::nullopt;
}

#define LONGSEQ_REQUIRE_FIXTURE(var, name)                                              \
  auto var##_root = ::longseq::testing::fixtures_dir();                                 \
  if (!var##_root || !std::filesystem::exists(*var##_root / (name)))                    \
    GTEST_SKIP() << "fixture " << (name) << " not present (../shared/fixtures)";        \
  const std::filesystem::path var = *var##_root / (name)

// A fresh folder removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "longseq-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Random A/C/G/T of length n, deterministic in seed.
inline std::string random_dna(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::string s(size_t(n), 'A');
  for (auto& c : s) c = "ACGT"[rng.below(4)];
  return s;
}

// A FASTA of (name, sequence) contigs, 60 bases per line.
inline void write_fasta(const std::filesystem::path& path, const std::vector<std::pair<std::string, std::string>>& contigs) {
  std::ofstream f(path);
  for (const auto& [name, seq] : contigs) {
    f << '>' << name << '\n';
    for (size_t i = 0; i < seq.size(); i += 60) f << seq.substr(i, 60) << '\n';
  }
}

// stdout of a shell command (stderr dropped); the test fails when it exits non-zero.
inline std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (!p) return out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  EXPECT_EQ(status, 0) << cmd;
  return out;
}

inline std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> v;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

inline std::string read_all(const std::filesystem::path& p) {
  std::string out;
  if (FILE* f = std::fopen(p.c_str(), "rb")) {
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

// Runs the longseq binary (LONGSEQ_BIN if set, else the one this build made) with `args` (shell-quoted by the caller where needed),
// capturing stdout and stderr separately.
inline CliResult run_cli(const std::string& args, const std::string& stdin_path = "/dev/null") {
  const char* env = std::getenv("LONGSEQ_BIN");
  const std::string bin = env ? env : LONGSEQ_BIN_PATH;
  TempDir tmp;
  const std::string cmd = bin + " " + args + " >" + (tmp / "out").string() + " 2>" +
                          (tmp / "err").string() + " <" + stdin_path;
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_all(tmp / "out");
  r.err = read_all(tmp / "err");
  return r;
}

inline std::vector<float> random_vector(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Random selective-scan inputs in the ranges Mamba meets (softplus(delta) 0.02..1.3, A < 0); with
// `extras`, also D skip, z gating, delta bias and an initial state.
inline ScanOracleIn random_scan_inputs(int64_t B, int64_t L, int64_t D, int64_t N, bool extras, uint64_t seed) {
  ScanOracleIn in{B, L, D, N};
  const size_t bld = size_t(B * L * D), bln = size_t(B * L * N);
  in.u = random_vector(bld, seed + 1);
  in.delta = random_vector(bld, seed + 2, -4.0f, 1.0f);
  in.A = random_vector(size_t(D * N), seed + 3, -2.0f, -0.05f);
  in.Bm = random_vector(bln, seed + 4);
  in.Cm = random_vector(bln, seed + 5);
  if (extras) {
    in.Dskip = random_vector(size_t(D), seed + 6);
    in.z = random_vector(bld, seed + 7, -3.0f, 3.0f);
    in.bias = random_vector(size_t(D), seed + 8, -1.0f, 1.0f);
    in.h0 = random_vector(size_t(B * D * N), seed + 9);
  }
  return in;
}

// The oracle for a packed row (B = 1): sequence k is tokens [cu[k], cu[k+1]), run alone from
// row.h0's k-th (D, N) block (or zeros); y (L, D) and the final states (K, D, N), concatenated.
inline void packed_scan_oracle(const ScanOracleIn& row, const std::vector<int64_t>& cu, std::vector<double>& y,
                               std::vector<double>& h) {
  const int64_t D = row.D, N = row.N;
  y.clear();
  h.clear();
  for (size_t k = 0; k + 1 < cu.size(); ++k) {
    ScanOracleIn one{1, cu[k + 1] - cu[k], D, N};
    const auto cut = [&](const std::vector<float>& v, int64_t w) {
      return std::vector<float>(v.begin() + cu[k] * w, v.begin() + cu[k + 1] * w);
    };
    one.u = cut(row.u, D), one.delta = cut(row.delta, D), one.Bm = cut(row.Bm, N), one.Cm = cut(row.Cm, N);
    if (!row.z.empty()) one.z = cut(row.z, D);
    one.A = row.A, one.Dskip = row.Dskip, one.bias = row.bias, one.softplus = row.softplus;
    if (!row.h0.empty()) one.h0 = std::vector<float>(row.h0.begin() + int64_t(k) * D * N, row.h0.begin() + int64_t(k + 1) * D * N);
    std::vector<double> yk, hk;
    scan_oracle(one, yk, hk);
    y.insert(y.end(), yk.begin(), yk.end());
    h.insert(h.end(), hk.begin(), hk.end());
  }
}

struct ErrorStats {
  double max_abs = 0, max_ref = 0, rel_l2 = 0;
};

template <class A, class B>
ErrorStats compare(const A& got, const B& ref) {
  ErrorStats s;
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = double(got[i]) - double(ref[i]);
    s.max_abs = std::max(s.max_abs, std::abs(d));
    s.max_ref = std::max(s.max_ref, std::abs(double(ref[i])));
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  s.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return s;
}

// max |got - want| <= tol x max(1, max |want|) and relative L2 error <= tol, with the figures in the
// failure message.
inline void expect_within(const std::vector<float>& got, const std::vector<double>& want, double tol, const char* what) {
  const auto e = compare(got, want);
  SCOPED_TRACE(::testing::Message() << what << " max_abs " << e.max_abs << " max_ref " << e.max_ref << " rel_l2 " << e.rel_l2);
  EXPECT_LE(e.max_abs, tol * std::max(1.0, e.max_ref));
  EXPECT_LE(e.rel_l2, tol);
}

// Rounds v in place to bf16 or fp16 and returns the 16-bit storage.
inline std::vector<uint16_t> round_to_half(std::vector<float>& v, bool bf16) {
  std::vector<uint16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    bits[i] = bf16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
    v[i] = bf16 ? bf16_to_f32(bits[i]) : f16_to_f32(bits[i]);
  }
  return bits;
}

// The largest error of 16-bit outputs in units of their rounding bound: 2^-8 |want| (bf16) or
// 2^-11 |want| (fp16), plus abs_floor x max(1, max |want|). <= 1 passes.
inline double half_error_units(const std::vector<uint16_t>& got, const std::vector<double>& want, bool bf16, double abs_floor) {
  double max_ref = 0, worst = 0;
  for (double r : want) max_ref = std::max(max_ref, std::abs(r));
  const double rel = bf16 ? 1.0 / 256 : 1.0 / 2048;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = bf16 ? bf16_to_f32(got[i]) : f16_to_f32(got[i]);
    worst = std::max(worst, std::abs(g - want[i]) / (rel * std::abs(want[i]) + abs_floor * std::max(1.0, max_ref)));
  }
  return worst;
}

}  // namespace longseq::testing
