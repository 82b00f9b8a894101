// Deliberately naive float64 oracles for the ops, written from the papers' and reference code's
// definitions with no shared code with core/: what the fast and reference paths are checked against.
#pragma once

#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

namespace longseq::testing {

// Token-major layouts: u, delta, z (B, L, D); Bm, Cm (B, L, N); A (D, N); state (B, D, N).
struct ScanOracleIn {
  int64_t B, L, D, N;
  std::vector<float> u, delta, A, Bm, Cm, Dskip, z, bias, h0;  // Dskip, z, bias, h0 may be empty
  bool softplus = true;
};

inline void scan_oracle(const ScanOracleIn& in, std::vector<double>& y, std::vector<double>& state) {
  const auto [B, L, D, N] = std::tuple{in.B, in.L, in.D, in.N};
  y.assign(size_t(B * L * D), 0.0);
  state.assign(size_t(B * D * N), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      std::vector<double> h(size_t(N), 0.0);
      if (!in.h0.empty())
        for (int64_t n = 0; n < N; ++n) h[size_t(n)] = in.h0[size_t((b * D + d) * N + n)];
      for (int64_t t = 0; t < L; ++t) {
        const size_t i = size_t((b * L + t) * D + d);
        double dt = double(in.delta[i]) + (in.bias.empty() ? 0.0 : in.bias[size_t(d)]);
        if (in.softplus) dt = dt > 20 ? dt : std::log1p(std::exp(dt));
        double acc = 0;
        for (int64_t n = 0; n < N; ++n) {
          const size_t bn = size_t((b * L + t) * N + n);
          h[size_t(n)] = std::exp(dt * in.A[size_t(d * N + n)]) * h[size_t(n)] + dt * in.Bm[bn] * in.u[i];
          acc += in.Cm[bn] * h[size_t(n)];
        }
        if (!in.Dskip.empty()) acc += double(in.Dskip[size_t(d)]) * in.u[i];
        if (!in.z.empty()) {
          const double z = in.z[i];
          acc *= z / (1.0 + std::exp(-z));
        }
        y[i] = acc;
      }
      for (int64_t n = 0; n < N; ++n) state[size_t((b * D + d) * N + n)] = h[size_t(n)];
    }
}

// Gradients of sum(dy * y) for scan_oracle's inputs, in float64, from all L x N states kept in
// memory and a plain reverse loop (deliberately the textbook form: no chunks, no recomputation).
struct ScanOracleGrads {
  std::vector<double> du, ddelta, dz, dB, dC, dA, dD, dbias, dh0;
};

inline ScanOracleGrads scan_backward_oracle(const ScanOracleIn& in, const std::vector<float>& dy) {
  const auto [B, L, D, N] = std::tuple{in.B, in.L, in.D, in.N};
  ScanOracleGrads g;
  g.du.assign(size_t(B * L * D), 0.0), g.ddelta = g.du, g.dz = g.du;
  g.dB.assign(size_t(B * L * N), 0.0), g.dC = g.dB;
  g.dA.assign(size_t(D * N), 0.0), g.dh0.assign(size_t(B * D * N), 0.0);
  g.dD.assign(size_t(D), 0.0), g.dbias = g.dD;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      std::vector<double> h(static_cast<size_t>((L + 1) * N), 0.0), dt(static_cast<size_t>(L)), sp(static_cast<size_t>(L));  // h row t = state before token t
      if (!in.h0.empty())
        for (int64_t n = 0; n < N; ++n) h[size_t(n)] = in.h0[size_t((b * D + d) * N + n)];
      for (int64_t t = 0; t < L; ++t) {
        const size_t i = size_t((b * L + t) * D + d);
        const double raw = double(in.delta[i]) + (in.bias.empty() ? 0.0 : in.bias[size_t(d)]);
        dt[size_t(t)] = in.softplus ? (raw > 20 ? raw : std::log1p(std::exp(raw))) : raw;
        sp[size_t(t)] = in.softplus ? (raw > 20 ? 1.0 : 1.0 / (1.0 + std::exp(-raw))) : 1.0;
        for (int64_t n = 0; n < N; ++n)
          h[size_t((t + 1) * N + n)] = std::exp(dt[size_t(t)] * in.A[size_t(d * N + n)]) * h[size_t(t * N + n)] +
                                       dt[size_t(t)] * in.Bm[size_t((b * L + t) * N + n)] * in.u[i];
      }
      const double Dd = in.Dskip.empty() ? 0.0 : in.Dskip[size_t(d)];
      std::vector<double> G(size_t(N), 0.0);  // dL/dh_t, accumulated from the end
      for (int64_t t = L - 1; t >= 0; --t) {
        const size_t i = size_t((b * L + t) * D + d);
        const double u = in.u[i];
        double y = Dd * u;
        for (int64_t n = 0; n < N; ++n) y += in.Cm[size_t((b * L + t) * N + n)] * h[size_t((t + 1) * N + n)];
        double gy = dy[i];
        if (!in.z.empty()) {
          const double z = in.z[i], s = 1.0 / (1.0 + std::exp(-z));
          g.dz[i] = gy * y * s * (1.0 + z * (1.0 - s));
          gy *= z * s;
        }
        g.du[i] += gy * Dd;
        g.dD[size_t(d)] += gy * u;
        double ddt = 0;
        for (int64_t n = 0; n < N; ++n) {
          const size_t bn = size_t((b * L + t) * N + n);
          const double A = in.A[size_t(d * N + n)], a = std::exp(dt[size_t(t)] * A), hp = h[size_t(t * N + n)];
          G[size_t(n)] += gy * in.Cm[bn];
          g.dC[bn] += gy * h[size_t((t + 1) * N + n)];
          g.dB[bn] += G[size_t(n)] * dt[size_t(t)] * u;
          g.du[i] += G[size_t(n)] * dt[size_t(t)] * in.Bm[bn];
          ddt += G[size_t(n)] * (a * A * hp + in.Bm[bn] * u);
          g.dA[size_t(d * N + n)] += G[size_t(n)] * a * dt[size_t(t)] * hp;
          G[size_t(n)] *= a;
        }
        g.ddelta[i] = ddt * sp[size_t(t)];
        g.dbias[size_t(d)] += g.ddelta[i];
      }
      for (int64_t n = 0; n < N; ++n) g.dh0[size_t((b * D + d) * N + n)] = G[size_t(n)];
    }
  return g;
}

// x (B, L, D), w (D, W), bias (D) or empty, prev (B, W-1, D) inputs before t = 0 or empty.
inline std::vector<double> conv_oracle(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& bias,
                                       const std::vector<float>& prev, int64_t B, int64_t L, int64_t D, int64_t W,
                                       bool silu) {
  std::vector<double> out(size_t(B * L * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t d = 0; d < D; ++d) {
        double s = bias.empty() ? 0.0 : bias[size_t(d)];
        for (int64_t k = 0; k < W; ++k) {
          const int64_t src = t - (W - 1) + k;  // absolute input time
          double v = 0;
          if (src >= 0)
            v = x[size_t((b * L + src) * D + d)];
          else if (!prev.empty() && src >= -(W - 1))
            v = prev[size_t((b * (W - 1) + (W - 1) + src) * D + d)];
          s += double(w[size_t(d * W + k)]) * v;
        }
        out[size_t((b * L + t) * D + d)] = silu ? s / (1.0 + std::exp(-s)) : s;
      }
  return out;
}

// Gradients of sum(dy * conv_oracle(...)) with respect to x, w, bias and prev, in float64: each
// output's upstream gradient is sent back along the W taps that made it.
struct ConvOracleGrads {
  std::vector<double> dx, dw, dbias, dprev;
};

inline ConvOracleGrads conv_backward_oracle(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& bias,
                                            const std::vector<float>& prev, const std::vector<float>& dy, int64_t B, int64_t L,
                                            int64_t D, int64_t W, bool silu) {
  ConvOracleGrads g{std::vector<double>(x.size()), std::vector<double>(w.size()), std::vector<double>(size_t(D)),
                    std::vector<double>(size_t(B * (W - 1) * D))};
  const auto input = [&](int64_t b, int64_t src, int64_t d) -> double {
    if (src >= 0) return x[size_t((b * L + src) * D + d)];
    return prev.empty() ? 0.0 : prev[size_t((b * (W - 1) + (W - 1) + src) * D + d)];
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t d = 0; d < D; ++d) {
        double pre = bias.empty() ? 0.0 : bias[size_t(d)];
        for (int64_t k = 0; k < W; ++k) pre += double(w[size_t(d * W + k)]) * input(b, t - (W - 1) + k, d);
        double gt = dy[size_t((b * L + t) * D + d)];
        if (silu) {
          const double s = 1.0 / (1.0 + std::exp(-pre));
          gt *= s * (1.0 + pre * (1.0 - s));
        }
        g.dbias[size_t(d)] += gt;
        for (int64_t k = 0; k < W; ++k) {
          const int64_t src = t - (W - 1) + k;
          g.dw[size_t(d * W + k)] += gt * input(b, src, d);
          if (src >= 0)
            g.dx[size_t((b * L + src) * D + d)] += gt * w[size_t(d * W + k)];
          else
            g.dprev[size_t((b * (W - 1) + (W - 1) + src) * D + d)] += gt * w[size_t(d * W + k)];
        }
      }
  return g;
}

// Long causal convolution by the definition (O(L^2), float64): y = gate (sum_{s <= t} k[s] u[t - s] +
// bias u) per (b, d), u, gate, y, dy (B, L, D), k (L, D); gate and bias may be empty. Gradients of
// sum(dy y).
struct LongConvOracle {
  std::vector<double> y, du, dk, dgate, dbias;
};

inline LongConvOracle long_conv_oracle(const std::vector<float>& u, const std::vector<float>& k, const std::vector<float>& gate,
                                       const std::vector<float>& bias, const std::vector<float>& dy, int64_t B, int64_t L, int64_t D) {
  LongConvOracle o{std::vector<double>(u.size()), std::vector<double>(u.size()), std::vector<double>(k.size()),
                   std::vector<double>(u.size()), std::vector<double>(size_t(D))};
  const auto at = [&](int64_t b, int64_t t, int64_t d) { return size_t((b * L + t) * D + d); };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t t = 0; t < L; ++t) {
        double conv = bias.empty() ? 0.0 : double(bias[size_t(d)]) * u[at(b, t, d)];
        for (int64_t s = 0; s <= t; ++s) conv += double(k[size_t(s * D + d)]) * u[at(b, t - s, d)];
        const double gt = gate.empty() ? 1.0 : gate[at(b, t, d)], g = dy[at(b, t, d)] * gt;
        o.y[at(b, t, d)] = gt * conv;
        o.dgate[at(b, t, d)] = dy[at(b, t, d)] * conv;
        if (!bias.empty()) {
          o.du[at(b, t, d)] += g * bias[size_t(d)];
          o.dbias[size_t(d)] += g * u[at(b, t, d)];
        }
        for (int64_t s = 0; s <= t; ++s) {
          o.du[at(b, t - s, d)] += g * k[size_t(s * D + d)];
          o.dk[size_t(s * D + d)] += g * u[at(b, t - s, d)];
        }
      }
  return o;
}

// RMSNorm / LayerNorm by the definition in float64, and the gradients of sum(dy y).
struct NormOracle {
  std::vector<double> y, dx, dw, db;
};

inline NormOracle norm_oracle(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b, const std::vector<float>& dy,
                    int64_t R, int64_t D, bool rms, double eps, bool eps_outside = false) {
  // eps_outside (RMSNorm only): rstd = 1 / (rms + eps), rms = sqrt(mean x^2), so d rstd / d x_j =
  // -rstd^2 x_j / (D rms) and dx_j = rstd g_j - x_j rstd^2 / rms mean_c(g_c x_c).
  NormOracle o{std::vector<double>(x.size()), std::vector<double>(x.size()), std::vector<double>(size_t(D)), std::vector<double>(size_t(D))};
  for (int64_t r = 0; r < R; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < D; ++c) mean += x[size_t(r * D + c)];
    mean = rms ? 0.0 : mean / double(D);
    for (int64_t c = 0; c < D; ++c) var += (x[size_t(r * D + c)] - mean) * (x[size_t(r * D + c)] - mean);
    const double root = std::sqrt(var / double(D)), rstd = eps_outside ? 1.0 / (root + eps) : 1.0 / std::sqrt(var / double(D) + eps);
    double mg = 0, mgx = 0, mgx_raw = 0;
    for (int64_t c = 0; c < D; ++c) {
      const size_t i = size_t(r * D + c);
      const double xhat = (x[i] - mean) * rstd, g = double(dy[i]) * w[size_t(c)];
      o.y[i] = xhat * w[size_t(c)] + (b.empty() ? 0.0 : b[size_t(c)]);
      o.dw[size_t(c)] += dy[i] * xhat;
      o.db[size_t(c)] += dy[i];
      mg += g / double(D);
      mgx += g * xhat / double(D);
      mgx_raw += g * x[i] / double(D);
    }
    for (int64_t c = 0; c < D; ++c) {
      const size_t i = size_t(r * D + c);
      o.dx[i] = eps_outside ? rstd * double(dy[i]) * w[size_t(c)] - x[i] * rstd * rstd / root * mgx_raw
                            : rstd * (double(dy[i]) * w[size_t(c)] - (rms ? 0.0 : mg) - (x[i] - mean) * rstd * mgx);
    }
  }
  return o;
}

}  // namespace longseq::testing

#include "core/families/mamba_config.h"

#include <algorithm>
#include <functional>
#include <map>
#include <string>

namespace longseq::testing {

// One row of LM-head logits: out[v] = sum_i head[v, i] * h[i].
inline void head_oracle(const std::vector<float>& head, const std::vector<double>& h, int64_t V, double* out) {
  const int64_t d = int64_t(h.size());
  for (int64_t v = 0; v < V; ++v) {
    double s = 0;
    for (int64_t i = 0; i < d; ++i) s += double(head[size_t(v * d + i)]) * h[size_t(i)];
    out[v] = s;
  }
}

// Rows of float64 values (L rows) for the model oracles below.
using Rows = std::vector<std::vector<double>>;
// A parameter by its released name.
using ParamLookup = std::function<const std::vector<float>&(const std::string&)>;

// RMSNorm of a row, or LayerNorm (with the ".bias" tensor beside the weight) when !rms.
inline std::vector<double> norm_row_oracle(const std::vector<double>& x, const ParamLookup& P, const std::string& w_name, bool rms,
                                           double eps) {
  const auto& w = P(w_name + ".weight");
  const double n = double(x.size());
  double mean = 0, ss = 0;
  if (!rms)
    for (double v : x) mean += v / n;
  for (double v : x) ss += (v - mean) * (v - mean);
  const double r = 1.0 / std::sqrt(ss / n + eps);
  std::vector<double> o(x.size());
  for (size_t i = 0; i < x.size(); ++i) o[i] = (x[i] - mean) * r * w[i] + (rms ? 0.0 : P(w_name + ".bias")[i]);
  return o;
}

// mamba_ssm's Mamba-1 mixer (in_proj to out_proj, no biases on the projections) over rows h (L, d)
// in float64, token by token from a zero state; tensors <m>in_proj.weight ... by name.
inline Rows mamba_mixer_oracle(const MambaConfig& c, const ParamLookup& P, const std::string& m, const Rows& h) {
  const int64_t d = c.d_model, D = c.d_inner, N = c.d_state, R = c.dt_rank, W = c.d_conv, L = int64_t(h.size());
  const auto &inw = P(m + "in_proj.weight"), &cw = P(m + "conv1d.weight"), &cb = P(m + "conv1d.bias"), &xw = P(m + "x_proj.weight"),
             &dw = P(m + "dt_proj.weight"), &db = P(m + "dt_proj.bias"), &alog = P(m + "A_log"), &Dv = P(m + "D"),
             &ow = P(m + "out_proj.weight");
  auto silu = [](double v) { return v / (1.0 + std::exp(-v)); };
  Rows xs(size_t(L), std::vector<double>(size_t(D), 0.0)), zs = xs, out(size_t(L), std::vector<double>(size_t(d), 0.0));
  for (int64_t t = 0; t < L; ++t)
    for (int64_t j = 0; j < 2 * D; ++j) {
      double s = 0;
      for (int64_t i = 0; i < d; ++i) s += double(inw[size_t(j * d + i)]) * h[size_t(t)][size_t(i)];
      (j < D ? xs[size_t(t)][size_t(j)] : zs[size_t(t)][size_t(j - D)]) = s;
    }
  std::vector<double> state(static_cast<size_t>(D * N), 0.0);
  for (int64_t t = 0; t < L; ++t) {
    std::vector<double> u(static_cast<size_t>(D)), y(static_cast<size_t>(D));
    for (int64_t j = 0; j < D; ++j) {
      double s = cb[size_t(j)];
      for (int64_t k = 0; k < W; ++k) {
        const int64_t src = t - (W - 1) + k;
        if (src >= 0) s += double(cw[size_t(j * W + k)]) * xs[size_t(src)][size_t(j)];
      }
      u[size_t(j)] = silu(s);
    }
    std::vector<double> xdbl(static_cast<size_t>(R + 2 * N));
    for (int64_t r = 0; r < R + 2 * N; ++r) {
      double s = 0;
      for (int64_t j = 0; j < D; ++j) s += double(xw[size_t(r * D + j)]) * u[size_t(j)];
      xdbl[size_t(r)] = s;
    }
    for (int64_t j = 0; j < D; ++j) {
      double dt = db[size_t(j)];
      for (int64_t r = 0; r < R; ++r) dt += double(dw[size_t(j * R + r)]) * xdbl[size_t(r)];
      dt = dt > 20 ? dt : std::log1p(std::exp(dt));
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) {
        double& st = state[size_t(j * N + n)];
        st = std::exp(dt * -std::exp(double(alog[size_t(j * N + n)]))) * st + dt * xdbl[size_t(R + n)] * u[size_t(j)];
        acc += xdbl[size_t(R + N + n)] * st;
      }
      y[size_t(j)] = (acc + Dv[size_t(j)] * u[size_t(j)]) * silu(zs[size_t(t)][size_t(j)]);
    }
    for (int64_t i = 0; i < d; ++i) {
      double s = 0;
      for (int64_t j = 0; j < D; ++j) s += double(ow[size_t(i * D + j)]) * y[size_t(j)];
      out[size_t(t)][size_t(i)] = s;
    }
  }
  return out;
}

// A Mamba-1 LM written straight from mamba_ssm's modules in float64, token by token, from a map of
// released parameter names to values. Returns logits (L, V) row-major.
inline std::vector<double> mamba_oracle(const MambaConfig& c, const std::map<std::string, std::vector<float>>& p,
                                        const std::vector<int64_t>& ids) {
  const int64_t d = c.d_model, V = c.padded_vocab, L = int64_t(ids.size());
  const ParamLookup P = [&](const std::string& k) -> const std::vector<float>& { return p.at(k); };
  const auto& emb = P("backbone.embedding.weight");
  Rows resid(size_t(L), std::vector<double>(size_t(d), 0.0));
  for (int64_t t = 0; t < L; ++t)
    for (int64_t i = 0; i < d; ++i) resid[size_t(t)][size_t(i)] = emb[size_t(ids[size_t(t)] * d + i)];
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string b = "backbone.layers." + std::to_string(l) + ".";
    Rows h(static_cast<size_t>(L));
    for (int64_t t = 0; t < L; ++t) h[size_t(t)] = norm_row_oracle(resid[size_t(t)], P, b + "norm", c.rms_norm, c.norm_eps);
    const Rows out = mamba_mixer_oracle(c, P, b + "mixer.", h);
    for (int64_t t = 0; t < L; ++t)
      for (int64_t i = 0; i < d; ++i) resid[size_t(t)][size_t(i)] += out[size_t(t)][size_t(i)];
  }
  std::vector<double> logits(static_cast<size_t>(L * V));
  const auto& head = p.count("lm_head.weight") ? P("lm_head.weight") : emb;
  for (int64_t t = 0; t < L; ++t)
    head_oracle(head, norm_row_oracle(resid[size_t(t)], P, "backbone.norm_f", c.rms_norm, c.norm_eps), V, logits.data() + t * V);
  return logits;
}

// Caduceus (kuleshov-group/caduceus, modeling_caduceus.py + modeling_rcps.py) in float64, written the
// way the released code runs it: hidden states and the residual kept apart (mamba_ssm's Block), the
// RCPS embedding, the fused or unfused RCPS add + norm (the fused one feeds the second channel half
// to the "fwd" call, as released), the RCPS-wrapped BiMamba (in_proj / out_proj of mamba_rev read
// from mamba_fwd when tied) and the RCPS LM head. Returns logits (L, V).
struct CaduceusOracleConfig {
  MambaConfig m;
  bool rcps = false, fused_add_norm = true, weight_tie = true;
  std::vector<int64_t> complement;
};
inline std::vector<double> caduceus_oracle(const CaduceusOracleConfig& c, const std::map<std::string, std::vector<float>>& p,
                                           const std::vector<int64_t>& ids) {
  const int64_t d = c.m.d_model, V = c.m.padded_vocab, L = int64_t(ids.size()), width = c.rcps ? 2 * d : d;
  const std::string bb = "caduceus.backbone.";
  const auto P = [&](const std::string& k) -> const std::vector<float>& { return p.at(k); };
  const auto cols = [&](const Rows& x, int64_t c0, int64_t n) {
    Rows o(x.size(), std::vector<double>(size_t(n)));
    for (size_t t = 0; t < x.size(); ++t)
      for (int64_t i = 0; i < n; ++i) o[t][size_t(i)] = x[t][size_t(c0 + i)];
    return o;
  };
  const auto cat = [](const Rows& a, const Rows& b) {
    Rows o = a;
    for (size_t t = 0; t < a.size(); ++t) o[t].insert(o[t].end(), b[t].begin(), b[t].end());
    return o;
  };
  const auto flip_l = [](Rows x) { return Rows(x.rbegin(), x.rend()); };
  const auto flip_lc = [&](const Rows& x) {
    Rows o = flip_l(x);
    for (auto& r : o) std::reverse(r.begin(), r.end());
    return o;
  };
  const auto add = [](Rows a, const Rows& b) {
    for (size_t t = 0; t < a.size(); ++t)
      for (size_t i = 0; i < a[t].size(); ++i) a[t][i] += b[t][i];
    return a;
  };
  const auto norm = [&](const Rows& x, const std::string& w) {
    Rows o(x.size());
    for (size_t t = 0; t < x.size(); ++t) o[t] = norm_row_oracle(x[t], P, w, c.m.rms_norm, c.m.norm_eps);
    return o;
  };
  const auto bimamba = [&](const std::string& m, const Rows& h) {
    const std::string fwd = m + "mamba_fwd.", rev = m + "mamba_rev.";
    const ParamLookup rev_p = [&](const std::string& k) -> const std::vector<float>& {
      const bool tied = c.weight_tie && (k == rev + "in_proj.weight" || k == rev + "out_proj.weight");
      return P(tied ? fwd + k.substr(rev.size()) : k);
    };
    return add(mamba_mixer_oracle(c.m, P, fwd, h), flip_l(mamba_mixer_oracle(c.m, rev_p, rev, flip_l(h))));
  };
  // Embedding.
  Rows hidden(static_cast<size_t>(L), std::vector<double>(static_cast<size_t>(width)));
  const auto& emb = P(bb + (c.rcps ? "embeddings.word_embeddings.embedding.weight" : "embeddings.word_embeddings.weight"));
  for (int64_t t = 0; t < L; ++t)
    for (int64_t i = 0; i < d; ++i) hidden[size_t(t)][size_t(i)] = emb[size_t(ids[size_t(t)] * d + i)];
  if (c.rcps) {  // [E(x), flip_LC(E(rc(x)))], rc(x)[t] = comp(x[L - 1 - t])
    Rows rc(static_cast<size_t>(L), std::vector<double>(static_cast<size_t>(d)));
    for (int64_t t = 0; t < L; ++t)
      for (int64_t i = 0; i < d; ++i) rc[size_t(t)][size_t(i)] = emb[size_t(c.complement[size_t(ids[size_t(L - 1 - t)])] * d + i)];
    hidden = cat(cols(hidden, 0, d), flip_lc(rc));
  }
  Rows residual;
  const std::string sub = c.rcps && !c.fused_add_norm ? ".submodule" : "";
  for (int64_t l = 0; l < c.m.n_layer; ++l) {
    const std::string b = bb + "layers." + std::to_string(l) + ".";
    const Rows S = residual.empty() ? hidden : add(hidden, residual);
    if (!c.rcps) {
      residual = S;
      hidden = bimamba(b + "mixer.", norm(S, b + "norm"));
      continue;
    }
    // The fused path as released reads the halves the other way round.
    const Rows first = cols(S, c.fused_add_norm ? d : 0, d), second = cols(S, c.fused_add_norm ? 0 : d, d);
    const Rows rc_res = flip_lc(second);
    residual = cat(first, flip_lc(rc_res));
    const Rows h = cat(norm(first, b + "norm" + sub), flip_lc(norm(rc_res, b + "norm" + sub)));
    const std::string m = b + "mixer.submodule.";
    hidden = cat(bimamba(m, cols(h, 0, d)), flip_lc(bimamba(m, flip_lc(cols(h, d, d)))));
  }
  const Rows S = add(hidden, residual);
  const Rows fin = c.rcps ? cat(norm(cols(S, 0, d), bb + "norm_f" + sub), flip_lc(norm(flip_lc(cols(S, d, d)), bb + "norm_f" + sub)))
                          : norm(S, bb + "norm_f");
  std::vector<double> logits(static_cast<size_t>(L * V), 0.0);
  for (int64_t t = 0; t < L; ++t) {
    const auto& f = fin[size_t(t)];
    for (int64_t v = 0; v < V; ++v) {
      double s = 0;
      for (int64_t i = 0; i < d; ++i) s += double(emb[size_t(v * d + i)]) * f[size_t(i)];
      if (c.rcps)  // flip_C(h[:, d:]) . W[comp[v]]
        for (int64_t i = 0; i < d; ++i) s += double(emb[size_t(c.complement[size_t(v)] * d + i)]) * f[size_t(2 * d - 1 - i)];
      logits[size_t(t * V + v)] = s;
    }
  }
  return logits;
}

}  // namespace longseq::testing

#include "core/families/hyena_config.h"

namespace longseq::testing {

// Direct causal convolution per channel in float64: y[t, c] = sum_{s<=t} k[s, c] u[t-s, c] + bias[c] u[t, c].
inline std::vector<double> long_conv_oracle(const std::vector<float>& u, const std::vector<float>& k, const std::vector<float>& bias,
                                            int64_t L, int64_t C) {
  std::vector<double> y(static_cast<size_t>(L * C), 0.0);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < L; ++t) {
      double s = bias.empty() ? 0.0 : double(bias[size_t(c)]) * u[size_t(t * C + c)];
      for (int64_t j = 0; j <= t; ++j) s += double(k[size_t(j * C + c)]) * u[size_t((t - j) * C + c)];
      y[size_t(t * C + c)] = s;
    }
  return y;
}

// HyenaDNA (HF port) in float64 from released parameter names: direct long convolution, no FFT.
inline std::vector<double> hyena_oracle(const HyenaConfig& c, const std::map<std::string, std::vector<float>>& p,
                                        const std::vector<int64_t>& ids) {
  const int64_t d = c.d_model, L = int64_t(ids.size()), V = c.padded_vocab, O = c.filter_order, E = c.emb_dim,
                W = c.short_filter_order, I = c.d_inner;
  auto P = [&](const std::string& k) -> const std::vector<float>& { return p.at(k); };
  auto rows = [](int64_t n, int64_t m) { return Rows(size_t(n), std::vector<double>(size_t(m), 0.0)); };
  auto lin = [&](const std::vector<double>& x, const std::string& name, int64_t out, bool bias) {
    const auto& w = P(name + ".weight");
    const int64_t in = int64_t(x.size());
    std::vector<double> y(size_t(out), 0.0);
    for (int64_t o = 0; o < out; ++o) {
      double s = bias ? double(P(name + ".bias")[size_t(o)]) : 0.0;
      for (int64_t i = 0; i < in; ++i) s += double(w[size_t(o * in + i)]) * x[size_t(i)];
      y[size_t(o)] = s;
    }
    return y;
  };
  auto ln = [&](const std::vector<double>& x, const std::string& name, double eps) {
    const double n = double(x.size());
    double mean = 0, var = 0;
    for (double v : x) mean += v / n;
    for (double v : x) var += (v - mean) * (v - mean) / n;
    std::vector<double> o(x.size());
    for (size_t i = 0; i < x.size(); ++i) o[i] = (x[i] - mean) / std::sqrt(var + eps) * P(name + ".weight")[i] + P(name + ".bias")[i];
    return o;
  };
  const std::string bb = "hyena.backbone.";
  Rows x = rows(L, d);
  for (int64_t t = 0; t < L; ++t)
    for (int64_t i = 0; i < d; ++i) x[size_t(t)][size_t(i)] = P(bb + "embeddings.word_embeddings.weight")[size_t(ids[size_t(t)] * d + i)];
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string b = bb + "layers." + std::to_string(l) + ".", m = b + "mixer.", f = m + "filter_fn.";
    // Implicit filter k (L, d).
    Rows k = rows(L, d);
    const auto &z = P(f + "pos_emb.z"), &tt = P(f + "pos_emb.t"), &deltas = P(f + "modulation.deltas"),
               &freq = P(f + "implicit_filter.1.freq");
    for (int64_t t = 0; t < L; ++t) {
      std::vector<double> h(z.begin() + t * E, z.begin() + (t + 1) * E);
      for (int64_t j = 0; j <= c.num_inner_mlps; ++j) {
        h = lin(h, f + "implicit_filter." + std::to_string(2 * j), O, true);
        for (int64_t o = 0; o < O; ++o) h[size_t(o)] = std::sin(double(freq[size_t(o)]) * h[size_t(o)]);
      }
      h = lin(h, f + "implicit_filter." + std::to_string(2 * (c.num_inner_mlps + 1)), d, false);
      for (int64_t i = 0; i < d; ++i)
        k[size_t(t)][size_t(i)] = h[size_t(i)] * (std::exp(-double(tt[size_t(t)]) * std::abs(double(deltas[size_t(i)]))) + 0.05);
    }
    Rows proj = rows(L, 3 * d), sc = rows(L, 3 * d);
    for (int64_t t = 0; t < L; ++t) proj[size_t(t)] = lin(ln(x[size_t(t)], b + "norm1", 1e-5), m + "in_proj", 3 * d, true);
    const auto &sw = P(m + "short_filter.weight"), &sb = P(m + "short_filter.bias");
    for (int64_t t = 0; t < L; ++t)
      for (int64_t ch = 0; ch < 3 * d; ++ch) {
        double s = sb[size_t(ch)];
        for (int64_t j = 0; j < W; ++j)
          if (t - (W - 1) + j >= 0) s += double(sw[size_t(ch * W + j)]) * proj[size_t(t - (W - 1) + j)][size_t(ch)];
        sc[size_t(t)][size_t(ch)] = s;
      }
    const auto& fb = P(f + "bias");
    for (int64_t t = 0; t < L; ++t) {
      std::vector<double> y(static_cast<size_t>(d));
      for (int64_t i = 0; i < d; ++i) {
        double s = double(fb[size_t(i)]) * sc[size_t(t)][size_t(2 * d + i)] * sc[size_t(t)][size_t(d + i)];
        for (int64_t j = 0; j <= t; ++j)
          s += k[size_t(j)][size_t(i)] * sc[size_t(t - j)][size_t(2 * d + i)] * sc[size_t(t - j)][size_t(d + i)];
        y[size_t(i)] = s * sc[size_t(t)][size_t(i)];
      }
      const auto o = lin(y, m + "out_proj", d, true);
      for (int64_t i = 0; i < d; ++i) x[size_t(t)][size_t(i)] += o[size_t(i)];
      auto h = lin(ln(x[size_t(t)], b + "norm2", 1e-5), b + "mlp.fc1", I, true);
      for (auto& v : h) v = 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
      const auto o2 = lin(h, b + "mlp.fc2", d, true);
      for (int64_t i = 0; i < d; ++i) x[size_t(t)][size_t(i)] += o2[size_t(i)];
    }
  }
  std::vector<double> logits(static_cast<size_t>(L * V));
  for (int64_t t = 0; t < L; ++t) {
    const auto h = ln(x[size_t(t)], bb + "ln_f", c.layer_norm_eps);
    const auto& head = p.count("lm_head.weight") ? P("lm_head.weight") : P(bb + "embeddings.word_embeddings.weight");
    head_oracle(head, h, V, logits.data() + t * V);
  }
  return logits;
}

// y (Lq, H hd) and lse (H, Lq) in double, the definition written out.
inline void attention_oracle(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v, int64_t Lq, int64_t S,
                      int64_t H, int64_t Hkv, int64_t hd, int64_t offset, std::vector<double>& y, std::vector<double>& lse) {
  y.assign(size_t(Lq * H * hd), 0.0);
  lse.assign(size_t(H * Lq), 0.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < Lq; ++i) {
      const int64_t kvh = h / (H / Hkv), keys = offset + i + 1;
      std::vector<double> s(static_cast<size_t>(keys));
      double m = -1e300;
      for (int64_t j = 0; j < keys; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < hd; ++e) dot += double(q[size_t(i * H * hd + h * hd + e)]) * double(k[size_t(j * Hkv * hd + kvh * hd + e)]);
        s[size_t(j)] = dot / std::sqrt(double(hd));
        m = std::max(m, s[size_t(j)]);
      }
      double z = 0;
      for (double x : s) z += std::exp(x - m);
      for (int64_t j = 0; j < keys; ++j)
        for (int64_t e = 0; e < hd; ++e)
          y[size_t(i * H * hd + h * hd + e)] += std::exp(s[size_t(j)] - m) / z * double(v[size_t(j * Hkv * hd + kvh * hd + e)]);
      lse[size_t(h * Lq + i)] = m + std::log(z);
    }
  (void)S;
}


// The modal long filter by its definition (O(L^2), float64), one sequence: h[s, c] = sum_n R p^s
// with p = exp(log_poles); y[t, c] = gate (sum_{s <= t} h[s, c] u[t - s, c] + Dskip u[t, c] +
// sum_n R p^(t + 1) S0[c, n]) with the initial state S0 (D, N) (empty: zeros); `state` (D, N) is each
// mode's state after the last token, p^L S0 + sum_j p^(L - 1 - j) u[j]. gate and Dskip may be empty.
inline void modal_oracle(const std::vector<float>& u, const std::vector<float>& gate, const std::vector<float>& log_poles,
                         const std::vector<float>& R, const std::vector<float>& Dskip, const std::vector<float>& S0, int64_t L, int64_t D,
                         int64_t N, std::vector<double>& y, std::vector<double>& state) {
  y.assign(size_t(L * D), 0.0);
  state.assign(size_t(D * N), 0.0);
  for (int64_t c = 0; c < D; ++c)
    for (int64_t n = 0; n < N; ++n) {
      const double p = std::exp(double(log_poles[size_t(c * N + n)])), r = R[size_t(c * N + n)];
      const double s0 = S0.empty() ? 0.0 : S0[size_t(c * N + n)];
      for (int64_t t = 0; t < L; ++t) {
        double s = std::pow(p, double(t + 1)) * s0;  // this mode's state at t
        for (int64_t j = 0; j <= t; ++j) s += std::pow(p, double(t - j)) * double(u[size_t(j * D + c)]);
        y[size_t(t * D + c)] += r * s;
        if (t == L - 1) state[size_t(c * N + n)] = s;
      }
      if (L == 0) state[size_t(c * N + n)] = s0;
    }
  for (int64_t t = 0; t < L; ++t)
    for (int64_t c = 0; c < D; ++c) {
      double& v = y[size_t(t * D + c)];
      if (!Dskip.empty()) v += double(Dskip[size_t(c)]) * double(u[size_t(t * D + c)]);
      if (!gate.empty()) v *= double(gate[size_t(t * D + c)]);
    }
}

}  // namespace longseq::testing
