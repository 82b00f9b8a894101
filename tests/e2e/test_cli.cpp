// The longseq binary end to end: global flags, help on misuse, `info` on fixtures and on a model
// written here, and one-line errors for broken model folders.
#include "core/safetensors.h"

#include "tests/testing.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace longseq;
using longseq::testing::run_cli;
using longseq::testing::TempDir;

namespace {

// A Mamba-1 model folder in the state-spaces format with random weights; returns its parameter count
// computed from the architecture.
int64_t write_tiny_mamba(const std::filesystem::path& dir, int64_t d_model, int64_t n_layer, int64_t vocab) {
  std::filesystem::create_directories(dir);
  const int64_t D = 2 * d_model, N = 16, R = (d_model + 15) / 16, W = 4, V = (vocab + 7) / 8 * 8;
  std::ofstream(dir / "config.json") << fmt::format(
      R"({{"d_model": {}, "n_layer": {}, "vocab_size": {}, "ssm_cfg": {{}}, "rms_norm": true, "residual_in_fp32": true,
          "fused_add_norm": true, "pad_vocab_size_multiple": 8, "tie_embeddings": true}})",
      d_model, n_layer, vocab);
  std::vector<std::pair<std::string, Tensor>> t;
  uint64_t seed = 1;
  auto add = [&](const std::string& name, Shape shape) {
    t.emplace_back(name, Tensor::from_vector(longseq::testing::random_vector(size_t(shape_numel(shape)), seed++), shape));
  };
  add("backbone.embedding.weight", {V, d_model});
  for (int64_t i = 0; i < n_layer; ++i) {
    const std::string p = fmt::format("backbone.layers.{}.", i);
    add(p + "norm.weight", {d_model});
    add(p + "mixer.in_proj.weight", {2 * D, d_model});
    add(p + "mixer.conv1d.weight", {D, 1, W});
    add(p + "mixer.conv1d.bias", {D});
    add(p + "mixer.x_proj.weight", {R + 2 * N, D});
    add(p + "mixer.dt_proj.weight", {D, R});
    add(p + "mixer.dt_proj.bias", {D});
    add(p + "mixer.A_log", {D, N});
    add(p + "mixer.D", {D});
    add(p + "mixer.out_proj.weight", {d_model, D});
  }
  add("backbone.norm_f.weight", {d_model});
  write_safetensors(dir / "model.safetensors", t, {{"format", "pt"}});
  const int64_t per_layer =
      d_model + 2 * D * d_model + D * W + D + (R + 2 * N) * D + D * R + D + D * N + D + d_model * D;
  return V * d_model + n_layer * per_layer + d_model;
}

std::string grouped(int64_t v) {
  std::string s = std::to_string(v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

int count_lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST(Cli, VersionAndHelp) {
  const auto v = run_cli("--version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("longseq " LONGSEQ_VERSION), std::string::npos) << v.out;
  const auto h = run_cli("--help");
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("info"), std::string::npos);
  EXPECT_NE(h.out.find("--threads"), std::string::npos);
}

TEST(Cli, MisuseShowsHelpAndFails) {
  const auto none = run_cli("");
  EXPECT_NE(none.exit_code, 0);
  const auto unknown = run_cli("frobnicate");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE((unknown.out + unknown.err).find("info"), std::string::npos) << "help text lists subcommands";
  const auto flag = run_cli("info --no-such-flag x");
  EXPECT_NE(flag.exit_code, 0);
  EXPECT_NE(flag.err.find("--no-such-flag"), std::string::npos);
  EXPECT_NE(run_cli("--threads -3 info x").exit_code, 0);
  EXPECT_NE(run_cli("--log-level loud info x").exit_code, 0);
}

TEST(Cli, InfoOnGeneratedMamba) {
  TempDir dir;
  const int64_t params = write_tiny_mamba(dir / "m", 48, 3, 10);
  const auto r = run_cli("--threads 1 info " + (dir / "m").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("family     mamba (state-spaces format)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("parameters " + grouped(params) + " "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("backbone.layers.2.mixer.A_log"), std::string::npos);
  EXPECT_NE(r.out.find("per 1k tokens"), std::string::npos);
  EXPECT_NE(r.out.find("lm_head.weight is tied"), std::string::npos);
  const auto j = run_cli("info --json " + (dir / "m").string());
  ASSERT_EQ(j.exit_code, 0);
  const auto parsed = nlohmann::json::parse(j.out);
  EXPECT_EQ(parsed["parameters"].get<int64_t>(), params);
  EXPECT_EQ(parsed["tensors"].size(), size_t(2 + 3 * 10));
}

TEST(Cli, InfoOnFixtures) {
  auto root = longseq::testing::fixtures_dir();
  if (!root) GTEST_SKIP() << "../shared/fixtures not present";
  for (const char* name : {"mamba_tiny", "hyena_tiny", "caduceus_ps_tiny"}) {
    if (!std::filesystem::exists(*root / name)) continue;
    const auto r = run_cli("info --json " + (*root / name).string());
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const auto w = SafetensorsFile::open(*root / name / "model.safetensors");
    EXPECT_EQ(j["tensors"].size(), w.tensors().size());
    if (std::filesystem::exists(*root / name / "grads.safetensors")) {
      int64_t n = 0;
      const auto grads = SafetensorsFile::open(*root / name / "grads.safetensors");
      for (const auto& t : grads.tensors())
        if (t.name.rfind("grad.", 0) == 0) n += shape_numel(t.shape);
      EXPECT_EQ(j["parameters"].get<int64_t>(), n) << name;
    }
  }
}

TEST(Cli, BrokenModelFoldersGiveOneLineErrors) {
  TempDir dir;
  write_tiny_mamba(dir / "m", 16, 1, 4);
  const auto check = [](const std::string& args, const std::string& needle) {
    const auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  };
  check("info " + (dir / "nothing").string(), "not a model directory");
  std::filesystem::create_directories(dir / "empty");
  check("info " + (dir / "empty").string(), "no config.json");
  // Truncated weights.
  std::filesystem::copy(dir / "m", dir / "trunc", std::filesystem::copy_options::recursive);
  std::filesystem::resize_file(dir / "trunc/model.safetensors", std::filesystem::file_size(dir / "trunc/model.safetensors") - 100);
  check("info " + (dir / "trunc").string(), "truncated");
  // Invalid config value names the key.
  std::filesystem::copy(dir / "m", dir / "cfg", std::filesystem::copy_options::recursive);
  std::ofstream(dir / "cfg/config.json") << R"({"d_model": "wide", "n_layer": 1, "vocab_size": 4})";
  check("info " + (dir / "cfg").string(), "'d_model'");
  std::ofstream(dir / "cfg/config.json") << R"({"d_model": 16, "n_layer": 1, "vocab_size": 4, "ssm_cfg": {"layer": "Mamba2"}})";
  check("info " + (dir / "cfg").string(), "Mamba-1");
}
