// `longseq init`, `forward` and `loglik` end to end: outputs match the in-process model and the
// reference fixtures, streaming chunk sizes do not change results, bad input fails cleanly.
#include "core/families/mamba_config.h"
#include "core/ops/gemm.h"
#include "core/safetensors.h"
#include "core/backend.h"
#include "genomics/tokenizer.h"
#include "tests/testing.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

using namespace longseq;
using namespace longseq::testing;

namespace {

struct TsvRow {
  std::string chrom, base;
  int64_t pos;
  double lp;
};

std::vector<TsvRow> parse_loglik(const std::string& text, std::map<std::string, double>* summary = nullptr) {
  std::vector<TsvRow> rows;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      const auto tab = line.find('\t');
      if (summary && tab != std::string::npos && line != "#chrom\tpos\tbase\tlogprob")
        (*summary)[line.substr(1, tab - 1)] = std::stod(line.substr(tab + 1));
      continue;
    }
    std::istringstream f(line);
    TsvRow r;
    f >> r.chrom >> r.pos >> r.base >> r.lp;
    rows.push_back(r);
  }
  return rows;
}

}  // namespace

TEST(ModelCli, InitThenLoglikTextIsChunkInvariant) {
  TempDir dir;
  const std::string m = (dir / "m").string();
  ASSERT_EQ(run_cli("init -o " + m + " --d-model 32 --n-layer 2 --seed 3").exit_code, 0);
  const std::string seq = "ACGTTGCAACGGGTTTAAACCCGTGTGTACNNACGTAGCTAGCTAGGATCCGATacgtacgt";
  const auto a = run_cli("loglik -m " + m + " --text " + seq + " --chunk 4096");
  const auto b = run_cli("--threads 1 loglik -m " + m + " --text " + seq + " --chunk 5");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::map<std::string, double> sa, sb;
  const auto ra = parse_loglik(a.out, &sa), rb = parse_loglik(b.out, &sb);
  ASSERT_EQ(ra.size(), seq.size() - 1);
  ASSERT_EQ(rb.size(), ra.size());
  double sum = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    EXPECT_EQ(ra[i].pos, int64_t(i) + 2);
    EXPECT_EQ(ra[i].base, std::string(1, seq[i + 1]));
    EXPECT_NEAR(ra[i].lp, rb[i].lp, 2e-6);
    EXPECT_LT(ra[i].lp, 0.0);
    sum += ra[i].lp;
  }
  EXPECT_NEAR(sa["sum"], sum, 1e-3);
  EXPECT_NEAR(sa["mean"], sum / double(ra.size()), 1e-5);
  EXPECT_EQ(sa["scored"], double(seq.size() - 1));
  // The same numbers from the library directly.
  const auto model = load_language_model(ModelDir::open(m));
  Tensor ids = Tensor::empty({int64_t(seq.size())}, DType::I64);
  for (size_t i = 0; i < seq.size(); ++i) {
    const char c = char(std::toupper(static_cast<unsigned char>(seq[i])));
    ids.data<int64_t>()[i] = c == 'A' ? 7 : c == 'C' ? 8 : c == 'G' ? 9 : c == 'T' ? 10 : 11;
  }
  Tensor logits = model->forward(ids, {}).logits;
  for (size_t t = 0; t + 1 < seq.size(); ++t) {
    double mx = -1e30, z = 0;
    for (int64_t v = 0; v < logits.size(1); ++v) mx = std::max(mx, double(logits.item({int64_t(t), v})));
    for (int64_t v = 0; v < logits.size(1); ++v) z += std::exp(double(logits.item({int64_t(t), v})) - mx);
    const double lp = logits.item({int64_t(t), ids.data<int64_t>()[t + 1]}) - mx - std::log(z);
    EXPECT_NEAR(ra[t].lp, lp, 2e-6) << t;
  }
}

TEST(ModelCli, MatmulBf16IsAnApproximateOptIn) {
  // --matmul bf16 changes the numbers a little (bf16 products) where the CPU can run it, and says
  // what to do where it cannot; anything but fp32/bf16 is refused in one line.
  TempDir dir;
  const std::string m = (dir / "m").string();
  ASSERT_EQ(run_cli("init -o " + m + " --d-model 64 --n-layer 2 --seed 3").exit_code, 0);
  const std::string seq = "ACGTTGCAACGGGTTTAAACCCGTGTGTACACGTAGCTAGCTAGGATCCGATACGTACGTTTGACCA";
  const auto a = run_cli("loglik -m " + m + " --text " + seq);
  const auto b = run_cli("--matmul bf16 loglik -m " + m + " --text " + seq);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  if (!ops::gemm_bf16_products_supported()) {
    EXPECT_NE(b.exit_code, 0);
    EXPECT_NE(b.err.find("use --matmul fp32"), std::string::npos) << b.err;
  } else {
    ASSERT_EQ(b.exit_code, 0) << b.err;
    std::map<std::string, double> sa, sb;
    parse_loglik(a.out, &sa), parse_loglik(b.out, &sb);
    EXPECT_NE(sa["sum"], sb["sum"]);
    EXPECT_NEAR(sa["mean"], sb["mean"], 0.02 * std::abs(sa["mean"]));
  }
  const auto bad = run_cli("--matmul fp16 loglik -m " + m + " --text " + seq);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--matmul"), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
}

TEST(ModelCli, HyenaLoglikAndLengthLimit) {
  TempDir dir;
  const std::string m = (dir / "h").string();
  ASSERT_EQ(run_cli("init --family hyenadna -o " + m + " --d-model 16 --n-layer 2 --max-seq-len 40").exit_code, 0);
  const auto info = run_cli("info --no-tensors " + m);
  EXPECT_NE(info.out.find("pos_emb.z: used as stored"), std::string::npos) << info.out;
  const std::string seq = "ACGTACGGTACCATGACNNACGTTTAGCAAGT";
  const auto a = run_cli("loglik -m " + m + " --text " + seq + " --chunk 7");
  const auto b = run_cli("loglik -m " + m + " --text " + seq);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const auto ra = parse_loglik(a.out), rb = parse_loglik(b.out);
  ASSERT_EQ(ra.size(), seq.size() - 1);
  for (size_t i = 0; i < ra.size(); ++i) EXPECT_NEAR(ra[i].lp, rb[i].lp, 1e-6);
  const auto too_long = run_cli("loglik -m " + m + " --text " + seq + seq);
  EXPECT_NE(too_long.exit_code, 0);
  EXPECT_NE(too_long.err.find("the model's window is 40: add --context"), std::string::npos) << too_long.err;
}

TEST(ModelCli, LoglikOnRealChr20Region) {
  const std::string ref = "/usr/share/doc/vt/examples/ref/20.fa.gz";
  if (!std::filesystem::exists(ref)) GTEST_SKIP() << "vt-examples not installed";
  TempDir dir;
  ASSERT_EQ(run_cli("init -o " + (dir / "m").string() + " --d-model 16 --n-layer 1").exit_code, 0);
  const auto r = run_cli("loglik -m " + (dir / "m").string() + " --fasta " + ref + " --region 20:2,000,001-2,003,000 -o " +
                         (dir / "ll.tsv").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = parse_loglik(read_all(dir / "ll.tsv"));
  ASSERT_EQ(rows.size(), 2999u);
  EXPECT_EQ(rows.front().chrom, "20");
  EXPECT_EQ(rows.front().pos, 2000002);
  EXPECT_EQ(rows.back().pos, 2003000);
}

TEST(ModelCli, ForwardMatchesFixture) {
  LONGSEQ_REQUIRE_FIXTURE(fx, "mamba_tiny");
  TempDir dir;
  const auto io = SafetensorsFile::open(fx / "io.safetensors");
  write_safetensors(dir / "in.safetensors", {{"input_ids", io.view("input_ids")}});
  const auto r = run_cli(fmt::format("forward -m {} -i {} -o {} --hidden --states --chunk 77", fx.string(),
                                     (dir / "in.safetensors").string(), (dir / "out.safetensors").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = SafetensorsFile::open(dir / "out.safetensors");
  for (const char* name : {"logits", "hidden_0", "hidden_1", "final_hidden", "ssm_state_1", "conv_state_0"}) {
    const auto got = out.load_f32(name).to_vector(), ref = io.load_f32(name).to_vector(),
               f32 = io.load_f32(std::string(name) + "_f32").to_vector();
    ASSERT_EQ(got.size(), ref.size()) << name;
    EXPECT_LE(compare(got, ref).max_abs, 2 * compare(f32, ref).max_abs + 1e-6) << name;
  }
}

TEST(ModelCli, BadInputsFailCleanly) {
  TempDir dir;
  const std::string m = (dir / "m").string();
  ASSERT_EQ(run_cli("init -o " + m + " --d-model 16 --n-layer 1").exit_code, 0);
  auto expect_fail = [](const CliResult& r, const std::string& needle) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  };
  expect_fail(run_cli("loglik -m " + m + " --text A"), "at least 2");
  expect_fail(run_cli("loglik -m " + m), "exactly one of");
  write_safetensors(dir / "bad.safetensors", {{"tokens", Tensor::zeros({1, 4}, DType::I64)}});
  expect_fail(run_cli("forward -m " + m + " -i " + (dir / "bad.safetensors").string() + " -o " + (dir / "o.safetensors").string()),
              "no 'input_ids'");
  Tensor ids = Tensor::zeros({1, 4}, DType::I64);
  ids.data<int64_t>()[2] = 500;
  write_safetensors(dir / "oov.safetensors", {{"input_ids", ids}});
  expect_fail(run_cli("forward -m " + m + " -i " + (dir / "oov.safetensors").string() + " -o " + (dir / "o.safetensors").string()),
              "outside the vocabulary");
  EXPECT_FALSE(std::filesystem::exists(dir / "o.safetensors"));
  // A failing loglik leaves no output file behind.
  expect_fail(run_cli("loglik -m " + m + " --text ACGT --chunk 0 -o " + (dir / "x.tsv").string()), "chunk");
  EXPECT_FALSE(std::filesystem::exists(dir / "x.tsv"));
}

TEST(ModelCli, DeviceChoice) {
  // --device cpu is the default path; cuda without a GPU (or a family with no device path) fails in
  // one line saying what to do, leaving no output.
  TempDir dir;
  const std::string m = (dir / "m").string(), h = (dir / "h").string();
  ASSERT_EQ(run_cli("init -o " + m + " --d-model 16 --n-layer 1").exit_code, 0);
  ASSERT_EQ(run_cli("init -o " + h + " --family hyenadna --d-model 16 --n-layer 1 --max-seq-len 40").exit_code, 0);
  const CliResult cpu = run_cli("loglik -m " + m + " --text ACGTACGTAC --device cpu"), plain = run_cli("loglik -m " + m + " --text ACGTACGTAC");
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  EXPECT_EQ(cpu.out, plain.out);
  const CliResult hy = run_cli("loglik -m " + h + " --text ACGTACGTAC --device cuda -o " + (dir / "y.tsv").string());
  EXPECT_NE(hy.exit_code, 0);
  EXPECT_NE(hy.err.find("--device cpu"), std::string::npos) << hy.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "y.tsv"));
  if (cuda_device_count() == 0) {
    const CliResult r = run_cli("loglik -m " + m + " --text ACGTACGTAC --device cuda -o " + (dir / "x.tsv").string());
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("--device cpu"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir / "x.tsv"));
  }
  EXPECT_NE(run_cli("loglik -m " + m + " --text ACGT --device tpu").exit_code, 0);
}

TEST(ModelCli, EmbedStreamsAFastaRegionChunkByChunk) {
  // A Mamba model streams: a FASTA region embedded 7 tokens at a time equals one chunk (float
  // rounding) and the same bases given as --text (same bytes); cls is the last row of --pool none;
  // --rc-average is the average of the sequence's and its reverse complement's states, row for row
  // (none), over the strands (mean) and of each strand's last row (cls).
  TempDir dir;
  const std::string m = (dir / "m").string();
  ASSERT_EQ(run_cli("init -o " + m + " --d-model 16 --n-layer 2 --seed 5").exit_code, 0);
  std::string contig;
  for (int i = 0; i < 300; ++i) contig += "ACGTTGCAAGCTNAGG"[(i * 7 + i / 5) % 16];
  {
    std::ofstream fa(dir / "g.fa");
    fa << ">c1\n" << contig.substr(0, 150) << "\n" << contig.substr(150) << "\n";
  }
  const std::string bases = contig.substr(10, 280), fa = (dir / "g.fa").string();
  std::string rc(bases.rbegin(), bases.rend());
  for (char& c : rc) c = c == 'A' ? 'T' : c == 'T' ? 'A' : c == 'C' ? 'G' : c == 'G' ? 'C' : c;
  int n = 0;
  const auto embed = [&](const std::string& input, const std::string& flags) {
    const std::string out = (dir / fmt::format("e{}.safetensors", n++)).string();
    const auto r = run_cli("embed -m " + m + " " + input + " --layer -1,0 " + flags + " -o " + out);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto f = SafetensorsFile::open(out);
    std::vector<std::vector<float>> layers;
    for (const auto& t : f.tensors()) layers.push_back(f.load_f32(t.name).to_vector());
    return layers;  // per position: "<name>/final", "<name>/layer_0"; pooled: "final", "layer_0" (sorted names)
  };
  const std::string region = "--fasta " + fa + " --regions c1:11-290";
  const auto whole = embed(region, "--pool none --chunk 65536"), chunked = embed(region, "--pool none --chunk 7");
  ASSERT_EQ(whole.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    const ErrorStats e = compare(chunked[k], whole[k]);
    EXPECT_LE(e.max_abs, 2e-6 * std::max(1.0, e.max_ref)) << k;
  }
  EXPECT_EQ(embed("--text " + bases, "--pool none --chunk 7"), chunked);
  const size_t d = 16, L = bases.size();
  ASSERT_EQ(whole[0].size(), L * d);
  const auto cls = embed(region, "--pool cls --chunk 7");
  for (size_t k = 0; k < 2; ++k) EXPECT_EQ(cls[k], std::vector<float>(chunked[k].end() - long(d), chunked[k].end())) << k;
  const auto rows_rc = embed("--text " + rc, "--pool none --chunk 7"), avg = embed(region, "--pool none --chunk 7 --rc-average");
  const auto mean = embed(region, "--chunk 7"), mean_rc = embed("--text " + rc, "--chunk 7"), mean_avg = embed(region, "--chunk 7 --rc-average");
  const auto cls_rc = embed("--text " + rc, "--pool cls --chunk 7"), cls_avg = embed(region, "--pool cls --chunk 7 --rc-average");
  for (size_t k = 0; k < 2; ++k)
    for (size_t j = 0; j < d; ++j) {
      for (size_t t = 0; t < L; ++t)
        EXPECT_EQ(avg[k][t * d + j], 0.5f * (chunked[k][t * d + j] + rows_rc[k][(L - 1 - t) * d + j])) << k << " " << t << " " << j;
      EXPECT_NEAR(mean_avg[k][j], 0.5 * (mean[k][j] + mean_rc[k][j]), 1e-6);
      EXPECT_NEAR(cls_avg[k][j], 0.5 * (cls[k][j] + cls_rc[k][j]), 1e-6);
    }
  const auto bad = run_cli("embed -m " + m + " " + region + " --chunk 0 -o " + (dir / "x.safetensors").string());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "x.safetensors"));
}

TEST(ModelCli, EmbedEqualsForwardHiddenRowsAndPsRcAverageIsStrandInvariant) {
  // `embed --pool none` gives forward --hidden's rows (final_hidden and hidden_0) for the same ids;
  // --pool mean is their mean; a Caduceus-PS model's --rc-average embedding of a sequence equals
  // that of its reverse complement; a bidirectional model is refused by loglik in one line.
  LONGSEQ_REQUIRE_FIXTURE(fx, "caduceus_ps_tiny");
  TempDir dir;
  const std::string seq = "ACGTTGCAAGCTTAGGCATNNACGGATTACAGATTACCAT";
  std::vector<int64_t> ids(seq.size());
  DnaTokenizer::standard().encode(seq, ids.data());
  write_safetensors(dir / "ids.safetensors", {{"input_ids", Tensor::from_ids(ids).unsqueeze(0)}}, {});
  const std::string m = fx.string();
  ASSERT_EQ(run_cli("forward -m " + m + " -i " + (dir / "ids.safetensors").string() + " -o " + (dir / "f.safetensors").string() +
                    " --hidden").exit_code, 0);
  const auto e = run_cli("embed -m " + m + " -i " + (dir / "ids.safetensors").string() + " --pool none --layer -1,0 -o " +
                         (dir / "e.safetensors").string());
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const auto f = SafetensorsFile::open(dir / "f.safetensors"), g = SafetensorsFile::open(dir / "e.safetensors");
  EXPECT_EQ(g.load_f32("row0/final").to_vector(), f.load_f32("final_hidden").to_vector());
  EXPECT_EQ(g.load_f32("row0/layer_0").to_vector(), f.load_f32("hidden_0").to_vector());
  const auto mean = run_cli("embed -m " + m + " --text " + seq + " -o " + (dir / "m.safetensors").string());
  ASSERT_EQ(mean.exit_code, 0) << mean.err;
  const auto rows = f.load_f32("final_hidden").to_vector(), pooled = SafetensorsFile::open(dir / "m.safetensors").load_f32("final").to_vector();
  const size_t d = pooled.size(), L = rows.size() / d;
  ASSERT_EQ(L, seq.size());
  for (size_t j = 0; j < d; ++j) {
    double s = 0;
    for (size_t t = 0; t < L; ++t) s += rows[t * d + j];
    EXPECT_NEAR(pooled[j], s / double(L), 1e-6);
  }
  const auto embed = [&](const std::string& s, const std::string& out, const std::string& flags) {
    EXPECT_EQ(run_cli("embed -m " + m + " --text " + s + " " + flags + " -o " + (dir / out).string()).exit_code, 0);
    return SafetensorsFile::open(dir / out).load_f32("final").to_vector();
  };
  std::string rc(seq.rbegin(), seq.rend());
  for (char& c : rc) c = c == 'A' ? 'T' : c == 'T' ? 'A' : c == 'C' ? 'G' : c == 'G' ? 'C' : c;
  // PS: the reverse complement's states are the sequence's, rows reversed and channels reversed, so
  // its mean is the mirror image; the strand-averaged mean is its own mirror image.
  const auto a = embed(seq, "a.safetensors", ""), b = embed(rc, "b.safetensors", ""), c = embed(seq, "c.safetensors", "--rc-average");
  for (size_t j = 0; j < d; ++j) {
    EXPECT_NEAR(a[j], b[d - 1 - j], 1e-5) << j;
    EXPECT_NEAR(c[j], c[d - 1 - j], 1e-5) << j;
    EXPECT_NEAR(c[j], 0.5 * (a[j] + a[d - 1 - j]), 1e-5) << j;
  }
  const auto ll = run_cli("loglik -m " + m + " --text " + seq);
  EXPECT_NE(ll.exit_code, 0);
  EXPECT_NE(ll.err.find("bidirectional"), std::string::npos) << ll.err;
}

TEST(ModelCli, PytorchCheckpointFoldersRunAsTheirSafetensorsAndConvertBack) {
  // A model folder holding pytorch_model.bin (written by python3-torch from the fixture's tensors)
  // gives the same forward bytes as the safetensors folder, `info` names the format, and `convert`
  // writes back the same tensors (names, dtypes, bytes), the I64 complement_map buffer included.
  LONGSEQ_REQUIRE_FIXTURE(fx, "caduceus_ps_tiny");
  TempDir dir;
  std::vector<int64_t> ids(77);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t(7 + (i * 5 + i / 3) % 4);
  write_safetensors(dir / "ids.safetensors", {{"input_ids", Tensor::from_ids(ids).unsqueeze(0)}}, {});
  for (const char* name : {"caduceus_ps_tiny", "hyena_tiny", "mamba_tiny"}) {
    SCOPED_TRACE(name);
    const std::filesystem::path src = fx.parent_path() / name, bin = dir / (std::string(name) + "_bin");
    if (!std::filesystem::exists(src)) continue;
    std::filesystem::create_directories(bin);
    std::filesystem::copy_file(src / "config.json", bin / "config.json");
    const std::string make = std::string(LONGSEQ_TORCH_PYTHON) + " " LONGSEQ_SOURCE_DIR "/tests/data/make_torch_checkpoints.py --from-safetensors " +
                             (src / "model.safetensors").string() + " " + (bin / "pytorch_model.bin").string();
    ASSERT_EQ(std::system(make.c_str()), 0) << make;
    const auto forward = [&](const std::filesystem::path& m, const std::string& out) {
      const auto r = run_cli("forward -m " + m.string() + " -i " + (dir / "ids.safetensors").string() + " -o " + (dir / out).string());
      EXPECT_EQ(r.exit_code, 0) << r.err;
      return SafetensorsFile::open(dir / out).load_f32("logits").to_vector();
    };
    EXPECT_EQ(forward(bin, "b.safetensors"), forward(src, "a.safetensors"));
    const auto info = run_cli("info --no-tensors " + bin.string());
    EXPECT_NE(info.out.find("pytorch_model.bin (pytorch zip)"), std::string::npos) << info.out;
    const auto conv = run_cli("convert " + bin.string() + " " + (dir / (std::string(name) + "_st")).string());
    ASSERT_EQ(conv.exit_code, 0) << conv.err;
    const auto a = SafetensorsFile::open(src / "model.safetensors"), b = SafetensorsFile::open(dir / (std::string(name) + "_st") / "model.safetensors");
    ASSERT_EQ(a.tensors().size(), b.tensors().size());
    for (const auto& t : a.tensors()) {
      ASSERT_TRUE(b.contains(t.name)) << t.name;
      EXPECT_EQ(b.info(t.name).dtype, t.dtype) << t.name;
      const Tensor x = a.view(t.name), y = b.view(t.name);
      EXPECT_EQ(std::string(static_cast<const char*>(x.raw()), x.nbytes()), std::string(static_cast<const char*>(y.raw()), y.nbytes())) << t.name;
    }
    EXPECT_TRUE(std::filesystem::exists(dir / (std::string(name) + "_st") / "config.json"));
  }
  // A file converts to a file; onto its own input, or to a non-safetensors name, it is refused.
  const std::filesystem::path pt = dir / "caduceus_ps_tiny_bin" / "pytorch_model.bin";
  EXPECT_EQ(run_cli("convert " + pt.string() + " " + (dir / "one.safetensors").string() + " --dtype f32").exit_code, 0);
  EXPECT_EQ(SafetensorsFile::open(dir / "one.safetensors").info("caduceus.backbone.embeddings.word_embeddings.embedding.weight").dtype, DType::F32);
  const auto self = run_cli("convert " + pt.string() + " " + pt.string());
  EXPECT_NE(self.exit_code, 0);
  EXPECT_NE(run_cli("convert " + pt.string() + " " + (dir / "x.bin").string()).exit_code, 0);
  EXPECT_NE(run_cli("convert " + pt.string() + " " + (dir / "y.safetensors").string() + " --dtype f8").exit_code, 0);
  // A checkpoint with a NaN: one line naming the tensor, and no output folder left behind.
  std::filesystem::create_directories(dir / "nan");
  std::filesystem::copy_file(fx / "config.json", dir / "nan/config.json");
  const std::string nan = std::string(LONGSEQ_TORCH_PYTHON) + " -c \"import torch; torch.save({'w': torch.tensor([1.0, float('nan')])}, '" +
                          (dir / "nan/pytorch_model.bin").string() + "')\"";
  ASSERT_EQ(std::system(nan.c_str()), 0);
  const auto bad = run_cli("convert " + (dir / "nan").string() + " " + (dir / "nan_out").string());
  EXPECT_NE(bad.err.find("tensor 'w' holds a non-finite value"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "nan_out"));
}

namespace {
// The sequences of a FASTA text, in order.
std::vector<std::string> fasta_records(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (line[0] == '>')
      out.emplace_back();
    else if (!out.empty())
      out.back() += line;
  }
  return out;
}
}  // namespace

TEST(ModelCli, GenerateIsGreedyAtZeroTemperatureAndTheSameForAnyThreads) {
  TempDir dir;
  const std::string m = (dir / "m").string();
  ASSERT_EQ(run_cli("init -o " + m + " --d-model 16 --n-layer 2 --seed 5").exit_code, 0);
  const std::string prompt = "ACGTTGCAAGCTTAGGCATTACGGA";
  const auto greedy = run_cli("generate -m " + m + " --text " + prompt + " --max-new 75 --temperature 0");
  ASSERT_EQ(greedy.exit_code, 0) << greedy.err;
  const auto got = fasta_records(greedy.out);
  ASSERT_EQ(got.size(), 1u);
  // The same, step by step from whole forward passes, the best of A, C, G, T each time.
  const auto model = load_language_model(ModelDir::open(m));
  const DnaTokenizer tok = DnaTokenizer::standard();
  std::string seq = prompt;
  for (int t = 0; t < 75; ++t) {
    std::vector<int64_t> ids(seq.size());
    tok.encode(seq, ids.data());
    const Tensor logits = model->forward(Tensor::from_ids(ids), {}).logits;
    char best = 'A';
    for (char b : std::string("CGT"))
      if (logits.item({int64_t(seq.size()) - 1, tok.id(b)}) > logits.item({int64_t(seq.size()) - 1, tok.id(best)})) best = b;
    seq += best;
  }
  EXPECT_EQ(got[0], seq.substr(prompt.size()));
  // Sampled: the same bytes at 1 and 2 threads; another seed, another output; each sample its own.
  const std::string args = "generate -m " + m + " --text " + prompt + " --max-new 50 -n 3 --seed 9 --top-k 3";
  const auto one = run_cli("--threads 1 " + args), two = run_cli("--threads 2 " + args), other = run_cli(args + "0");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.out, two.out);
  EXPECT_NE(one.out, other.out);
  const auto samples = fasta_records(one.out);
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_NE(samples[0], samples[1]);
  for (const auto& s : samples) EXPECT_EQ(s.find_first_not_of("ACGT"), std::string::npos) << s;
  const auto with_prompt = run_cli("generate -m " + m + " --text " + prompt + " --max-new 5 --temperature 0 --include-prompt -o " +
                                   (dir / "g.fa").string());
  ASSERT_EQ(with_prompt.exit_code, 0) << with_prompt.err;
  EXPECT_EQ(fasta_records(read_all(dir / "g.fa")).at(0), seq.substr(0, prompt.size() + 5));
  // Refusals: one line each, nothing written.
  const std::string c = (dir / "c").string();
  ASSERT_EQ(run_cli("init -o " + c + " --family caduceus --d-model 16 --n-layer 2").exit_code, 0);
  for (const std::string& bad : {"generate -m " + c + " --text ACGT", "generate -m " + m + " --text ACGT --temperature -1",
                                 "generate -m " + m + " --text ACGT --top-k 6", "generate -m " + m + " --text ACGT --max-new 0",
                                 "generate -m " + m}) {
    const auto r = run_cli(bad + " -o " + (dir / "x.fa").string());
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << bad << ": " << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "x.fa"));
  const auto onto_model = run_cli("generate -m " + m + " --text ACGT -o " + m + "/model.safetensors");
  EXPECT_NE(onto_model.exit_code, 0);
  EXPECT_NE(onto_model.err.find("same file"), std::string::npos) << onto_model.err;
  EXPECT_NE(SafetensorsFile::open(m + "/model.safetensors").tensors().size(), 0u);
}

TEST(ModelCli, LoglikPastTheWindowRunsOverlappingWindowsWithContext) {
  // A HyenaDNA model of max_seq_len 64 scores 200 bases with --context 24: every position 2..200
  // once, in order; the first window's rows are those of the first 64 bases scored alone; without
  // --context the refusal names it; within the window --context changes nothing.
  TempDir dir;
  const std::string m = (dir / "h").string();
  ASSERT_EQ(run_cli("init -o " + m + " --family hyenadna --d-model 16 --n-layer 2 --max-seq-len 64 --seed 2").exit_code, 0);
  std::string seq;
  for (int i = 0; i < 200; ++i) seq += "ACGTTGCAAGCTAGGC"[(i * 5 + i / 7) % 16];
  const auto refused = run_cli("loglik -m " + m + " --text " + seq);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("--context"), std::string::npos) << refused.err;
  const auto r = run_cli("loglik -m " + m + " --text " + seq + " --context 24");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = parse_loglik(r.out);
  ASSERT_EQ(rows.size(), 199u);
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i].pos, int64_t(i) + 2);
  const auto first = parse_loglik(run_cli("loglik -m " + m + " --text " + seq.substr(0, 64)).out);
  ASSERT_EQ(first.size(), 63u);
  for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(first[i].lp, rows[i].lp) << i;
  EXPECT_EQ(run_cli("loglik -m " + m + " --text " + seq.substr(0, 64) + " --context 24").out,
            run_cli("loglik -m " + m + " --text " + seq.substr(0, 64)).out);
  EXPECT_NE(run_cli("loglik -m " + m + " --text " + seq + " --context 64").exit_code, 0);
  EXPECT_NE(run_cli("loglik -m " + m + " --text " + seq + " --context 8 --window 65").exit_code, 0);
  // embed the same way: refused without --context, every position once with it.
  const auto e_refused = run_cli("embed -m " + m + " --text " + seq + " -o " + (dir / "e0.safetensors").string());
  EXPECT_NE(e_refused.err.find("--context"), std::string::npos) << e_refused.err;
  const auto e = run_cli("embed -m " + m + " --text " + seq + " --context 24 --pool none -o " + (dir / "e.safetensors").string());
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(SafetensorsFile::open(dir / "e.safetensors").info("text/final").shape, (Shape{200, 16}));
}
