// `longseq train`, `classify` and `forward --grad` end to end on small generated data: training
// lowers the loss, an interrupted + resumed run equals an uninterrupted one bit for bit (weights and
// metrics), results do not depend on the thread count, trained models load everywhere, and bad
// input fails with one line naming the problem.
#include "core/random.h"
#include "core/safetensors.h"
#include "genomics/dna_dataset.h"
#include "genomics/markov.h"
#include "core/backend.h"
#include "tests/testing.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using namespace longseq;
using namespace longseq::testing;

namespace {

// A genome with learnable structure (a repeated motif family and an order-2 bias) and an N run.
std::string synthetic_contig(int64_t n, uint64_t seed) {
  Rng rng(seed);
  const std::string motif = "GATTACACCGGTTAGCATCG";
  std::string s;
  while (int64_t(s.size()) < n) {
    if (rng.uniform() < 0.05) {
      s += motif;
    } else if (s.size() >= 2 && s[s.size() - 1] == 'A' && s[s.size() - 2] == 'C') {
      s += rng.uniform() < 0.7 ? 'T' : "ACG"[rng.below(3)];
    } else {
      s += "ACGT"[rng.below(4)];
    }
  }
  s.resize(size_t(n));
  for (int64_t i = n / 3; i < n / 3 + 200; ++i) s[size_t(i)] = 'N';
  return s;
}

std::filesystem::path write_fasta(const TempDir& dir) {
  const auto path = dir / "genome.fa";
  std::ofstream out(path);
  for (int c = 0; c < 2; ++c) {
    const std::string s = synthetic_contig(30000, uint64_t(c + 1));
    out << ">chr" << c + 1 << "\n";
    for (size_t i = 0; i < s.size(); i += 60) out << s.substr(i, 60) << "\n";
  }
  return path;
}

std::vector<nlohmann::json> read_metrics(const std::filesystem::path& p) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    j.erase("tokens_per_s");  // timings differ between runs
    j.erase("elapsed_s");
    rows.push_back(j);
  }
  return rows;
}

// `family`: a family name (a 16-wide, 2-block model), or a config file to build the model from.
std::string small_run(const std::filesystem::path& fasta, const std::filesystem::path& out, const std::string& family, int steps,
                      int batch = 4) {
  const std::string arch = family.find('/') != std::string::npos ? "--config " + family : "--family " + family + " --d-model 16 --n-layer 2";
  return fmt::format("train --task lm -r {} -o {} {} --length 64 --batch {} --steps {} "
                     "--warmup 2 --lr 3e-3 --log-every 1 --eval-every 3 --save-every 3 --val-windows 8 --seed 7",
                     fasta.string(), out.string(), arch, batch, steps);
}

// A tiny StripedHyena 2 (Evo 2) config in the released YAML style: every block type, byte-level ids.
std::filesystem::path write_evo2_config(const TempDir& tmp) {
  const auto path = tmp / "evo2-tiny.yml";
  std::ofstream(path) << "# Evo 2 shaped, scaled down\nvocab_size: 512\nhidden_size: 16\nnum_layers: 4\n"
                         "hcs_layer_idxs: [0]\nhcm_layer_idxs: [1]\nhcl_layer_idxs: [2]\nattn_layer_idxs: [3]\n"
                         "hcm_filter_length: 16\nhcm_filter_groups: 4\nhcs_filter_length: 7\nhcs_filter_groups: 4\n"
                         "hcl_filter_groups: 16\nshort_filter_length: 3\nnum_attention_heads: 2\nstate_size: 4\n"
                         "inner_mlp_size: 32\neps: 0.000001\nuse_interpolated_rotary_pos_emb: True\nrotary_emb_scaling_factor: 4\n"
                         "evo2_style_activations: True\ntie_embeddings: True\ncolumn_split: True\ninterleave: True\n"
                         "max_seqlen: 8192\ntokenizer_type: CharLevelTokenizer\n";
  return path;
}

}  // namespace

TEST(TrainCli, LmTrainingLowersLossAndResumesExactly) {
  TempDir tmp;
  const auto fasta = write_fasta(tmp);
  for (const std::string& family : {std::string("mamba"), std::string("hyenadna"), write_evo2_config(tmp).string()}) {
    const std::string name = family.find('/') != std::string::npos ? "evo2" : family;
    const auto full = tmp / (name + "-full"), part = tmp / (name + "-part");
    const CliResult a = run_cli("--threads 2 " + small_run(fasta, full, family, 9));
    ASSERT_EQ(a.exit_code, 0) << a.err;
    const auto rows = read_metrics(full / "metrics.jsonl");
    ASSERT_EQ(rows.size(), 9u);
    EXPECT_LT(rows.back()["loss"].get<double>(), rows.front()["loss"].get<double>()) << family;
    ASSERT_TRUE(rows.back().contains("val_bits"));
    // Interrupted after step 6 (the run's own checkpoint), then resumed with the same command.
    const CliResult b = run_cli("--threads 1 " + small_run(fasta, part, family, 9) + " --max-minutes 1e-9");
    ASSERT_EQ(b.exit_code, 0) << b.err;
    EXPECT_TRUE(std::filesystem::exists(part / "checkpoint-0000001"));
    const CliResult c = run_cli("--threads 2 " + small_run(fasta, part, family, 9) + " --resume");
    ASSERT_EQ(c.exit_code, 0) << c.err;
    EXPECT_NE(c.err.find("resuming from"), std::string::npos) << c.err;
    EXPECT_EQ(read_metrics(part / "metrics.jsonl"), rows) << family << ": resumed metrics differ";
    EXPECT_EQ(read_all(part / "model/model.safetensors"), read_all(full / "model/model.safetensors"))
        << family << ": resumed weights differ (threads 1 then 2 vs 2)";
    // Only the newest checkpoints are kept, each complete.
    int kept = 0;
    for (const auto& e : std::filesystem::directory_iterator(part))
      if (e.path().filename().string().starts_with("checkpoint-")) {
        ++kept;
        EXPECT_TRUE(std::filesystem::exists(e.path() / "optimizer.safetensors"));
      }
    EXPECT_EQ(kept, 2);
    // The trained model is a normal model folder.
    const CliResult info = run_cli("info --no-tensors " + (full / "model").string());
    EXPECT_EQ(info.exit_code, 0) << info.err;
    // ... that reads the ids it was trained on (Evo 2: bytes, not the standard ids): its loglik on
    // the genome is below the first step's training bits (a model fed other ids than it learned
    // scores worse than it started).
    const CliResult ll = run_cli("loglik -m " + (full / "model").string() + " --fasta " + fasta.string() + " --region chr1:1-1000");
    ASSERT_EQ(ll.exit_code, 0) << ll.err;
    const auto at = ll.out.find("#bits_per_base\t");
    ASSERT_NE(at, std::string::npos) << ll.out.substr(0, 200);
    const double bits = std::stod(ll.out.substr(at + 15));
    EXPECT_LT(bits, rows.front()["bits"].get<double>()) << family << ": loglik " << bits << " bits/base";
  }
}

TEST(TrainCli, ResumeErrors) {
  TempDir tmp;
  const auto fasta = write_fasta(tmp);
  const CliResult none = run_cli(small_run(fasta, tmp / "empty", "mamba", 3) + " --resume");
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no complete checkpoint"), std::string::npos) << none.err;
  ASSERT_EQ(run_cli(small_run(fasta, tmp / "r", "mamba", 3)).exit_code, 0);
  const CliResult other = run_cli(small_run(fasta, tmp / "r", "mamba", 6, 2) + " --resume");
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("resume with the original options"), std::string::npos) << other.err;
  const CliResult missing = run_cli(small_run(fasta, tmp / "m", "mamba", 3) + " --contigs chrX");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("chrX"), std::string::npos) << missing.err;
}

TEST(TrainCli, CorpusWindowsAvoidNAndMarkovLearnsStructure) {
  TempDir tmp;
  const auto fasta = write_fasta(tmp);
  const DnaCorpus corpus = DnaCorpus::load(fasta, DnaTokenizer::standard(), {});
  EXPECT_NEAR(double(corpus.val_bases()) / double(corpus.train_bases() + corpus.val_bases()), 0.2, 0.01);
  Rng rng(3);
  std::vector<int64_t> w;
  for (int i = 0; i < 2000; ++i) {
    corpus.sample(rng, 300, true, w);
    ASSERT_EQ(w.size(), 300u);
    for (int64_t id : w) ASSERT_GE(corpus.base_index(id), 0) << "window crosses an N run";
  }
  auto windows = corpus.validation_windows(101, 40);
  EXPECT_EQ(windows.size(), 40u);
  const auto scores = markov_baselines(corpus, 3, windows);
  EXPECT_NEAR(scores[0].bits_per_base, 2.0, 0.05);          // near-uniform base composition
  EXPECT_LT(scores[2].bits_per_base, scores[0].bits_per_base - 0.03);  // the CA->T bias needs order 2
  std::vector<int64_t> x = {7, 8, 9, 10, 11}, y = x;
  corpus.reverse_complement(y);
  EXPECT_EQ(y, (std::vector<int64_t>{11, 7, 8, 9, 10}));  // N stays N; T A C G reversed
}

TEST(TrainCli, ClassifierTrainsAndPredicts) {
  TempDir tmp;
  // GC-rich vs AT-rich sequences of varying length.
  std::ofstream tsv(tmp / "train.tsv");
  tsv << "sequence\tlabel\n";
  Rng rng(5);
  for (int i = 0; i < 60; ++i) {
    const bool gc = i % 2 == 0;
    std::string s;
    const int64_t n = 40 + int64_t(rng.below(30));
    for (int64_t k = 0; k < n; ++k) s += rng.uniform() < 0.8 ? (gc ? "GC" : "AT")[rng.below(2)] : "ACGT"[rng.below(4)];
    tsv << s << "\t" << (gc ? "gc_rich" : "at_rich") << "\n";
  }
  tsv.close();
  const auto out = tmp / "cls";
  const CliResult r = run_cli("train --task classify --data " + (tmp / "train.tsv").string() + " -o " + out.string() +
                              " --family hyenadna --d-model 16 --n-layer 1 --max-seq-len 128 --batch 8 --steps 40 --lr 5e-3 "
                              "--warmup 4 --eval-every 20 --val-fraction 0.2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = read_metrics(out / "metrics.jsonl");
  EXPECT_GE(rows.back()["val_accuracy"].get<double>(), 0.9) << r.out;
  std::ofstream fa(tmp / "q.fa");
  fa << ">gc\nGCGCGGCCGCGCGGCGCCGCGGCGCGCCGGCGCGCGCGGC\n>at\nATATTAATATATTTAAATATATTATAATTATATAATATAT\n";
  fa.close();
  const CliResult c = run_cli("classify -m " + (out / "model").string() + " " + (tmp / "q.fa").string());
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("gc\tgc_rich"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("at\tat_rich"), std::string::npos) << c.out;
  // A missing input and a malformed TSV line fail with one line naming them.
  const CliResult missing = run_cli("classify -m " + (out / "model").string() + " " + (tmp / "missing.fa").string());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("missing.fa"), std::string::npos) << missing.err;
  std::ofstream bad(tmp / "bad.tsv");
  bad << "ACGT\tx\nACGTACGT\n";
  bad.close();
  const CliResult b = run_cli("train --task classify --data " + (tmp / "bad.tsv").string() + " -o " + (tmp / "b").string());
  EXPECT_EQ(b.exit_code, 1);
  EXPECT_NE(b.err.find("bad.tsv:2"), std::string::npos) << b.err;
}

TEST(TrainCli, ForwardGradMatchesFixture) {
  LONGSEQ_REQUIRE_FIXTURE(dir, "mamba_tiny");
  TempDir tmp;
  const CliResult r = run_cli("forward --grad -m " + dir.string() + " -i " + (dir / "io.safetensors").string() + " -o " +
                              (tmp / "g.safetensors").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto got = SafetensorsFile::open(tmp / "g.safetensors"), ref = SafetensorsFile::open(dir / "grads.safetensors");
  EXPECT_NEAR(got.load_f32("loss").to_vector()[0], ref.load_f32("loss").to_vector()[0], 1e-6);
  int n = 0;
  for (const auto& t : ref.tensors()) {
    if (!t.name.starts_with("grad.")) continue;
    ASSERT_TRUE(got.contains(t.name)) << t.name;
    const auto g = got.load_f32(t.name).to_vector(), e = ref.load_f32(t.name).to_vector();
    double scale = 0, err = 0;
    for (size_t i = 0; i < e.size(); ++i) scale = std::max(scale, double(std::abs(e[i]))), err = std::max(err, double(std::abs(g[i] - e[i])));
    EXPECT_LE(err, 1e-5 * scale) << t.name;
    ++n;
  }
  EXPECT_EQ(n, 22);
}

TEST(TrainCli, ArchitectureFromConfigAndCsvMetrics) {
  TempDir tmp;
  const auto fasta = write_fasta(tmp);
  ASSERT_EQ(run_cli("init -o " + (tmp / "arch").string() + " --family hyenadna --d-model 8 --n-layer 1 --max-seq-len 80").exit_code, 0);
  const CliResult r = run_cli("train --task lm -r " + fasta.string() + " -o " + (tmp / "out").string() + " --config " +
                              (tmp / "arch/config.json").string() + " --length 64 --batch 2 --steps 3 --log-every 1 --val-windows 2 " +
                              "--metrics " + (tmp / "m.csv").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream csv(read_all(tmp / "m.csv"));
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(csv, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_TRUE(lines[0].starts_with("step,loss,bits,lr,grad_norm")) << lines[0];
  EXPECT_TRUE(lines[3].starts_with("3,")) << lines[3];
  const auto cfg = nlohmann::json::parse(read_all(tmp / "out/model/config.json"));
  EXPECT_EQ(cfg["d_model"], 8);
  EXPECT_EQ(cfg["max_seq_len"], 80);
  const CliResult bad = run_cli("train --task lm -r " + fasta.string() + " -o " + (tmp / "o2").string() + " --config " + fasta.string());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("genome.fa"), std::string::npos) << bad.err;
}

TEST(TrainCli, DeviceCudaFailsCleanlyWithoutAGpu) {
  // `train --device cuda` on a machine without a GPU (or a family the device path does not train)
  // stops before training in one line that names --device cpu, and writes no model.
  if (cuda_device_count() > 0) GTEST_SKIP() << "a device is present: tests/gpu covers device training";
  TempDir tmp;
  const auto fasta = write_fasta(tmp);
  for (const std::string family : {"mamba", "hyenadna"}) {
    const CliResult r = run_cli("train --task lm -r " + fasta.string() + " -o " + (tmp / family).string() + " --family " + family +
                                " --d-model 8 --n-layer 1 --length 64 --batch 2 --steps 2 --device cuda");
    EXPECT_NE(r.exit_code, 0) << family;
    EXPECT_NE(r.err.find("--device cpu"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(tmp / family / "model" / "model.safetensors")) << family;
  }
}

TEST(TrainCli, HybridFromConfigAloneTrainsScoresAndRuns) {
  // A Mamba/Hyena stripe written as config.json only (the hybrid family, docs/ARCHITECTURE.md):
  // `init --config`, `train --config` (the loss falls; 1 and 2 threads give the same weights), `info`,
  // `loglik` and `score-variants` (1 and 2 threads give the same file) on the trained model.
  TempDir tmp;
  const auto fasta = write_fasta(tmp);
  const nlohmann::json stripe = {{"model_type", "longseq-hybrid"}, {"d_model", 16}, {"n_layer", 2}, {"vocab_size", 12},
                                 {"layers", {"mamba", "hyena"}}, {"mamba", {{"d_state", 8}}},
                                 {"hyena", {{"d_inner", 32}, {"max_seq_len", 130}, {"filter_order", 8}}}};
  {
    std::ofstream(tmp / "stripe.json") << stripe.dump(2);
  }
  ASSERT_EQ(run_cli("init --config " + (tmp / "stripe.json").string() + " -o " + (tmp / "init").string()).exit_code, 0);
  const auto train = [&](const std::string& out, int threads) {
    return run_cli(fmt::format("--threads {} train --task lm -r {} -o {} --config {} --length 64 --batch 4 --steps 9 --warmup 2 "
                               "--lr 3e-3 --log-every 1 --eval-every 3 --val-windows 8 --seed 7",
                               threads, fasta.string(), (tmp / out).string(), (tmp / "stripe.json").string()));
  };
  const CliResult a = train("a", 2), b = train("b", 1);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto rows = read_metrics(tmp / "a/metrics.jsonl");
  ASSERT_EQ(rows.size(), 9u);
  EXPECT_LT(rows.back()["loss"].get<double>(), rows.front()["loss"].get<double>());
  EXPECT_EQ(read_all(tmp / "a/model/model.safetensors"), read_all(tmp / "b/model/model.safetensors"));
  const std::string model = (tmp / "a/model").string();
  const CliResult info = run_cli("info --no-tensors " + model);
  EXPECT_NE(info.out.find("mamba,hyena"), std::string::npos) << info.out;
  const CliResult ll = run_cli("loglik -m " + model + " --fasta " + fasta.string() + " --region chr1:1-100");
  ASSERT_EQ(ll.exit_code, 0) << ll.err;
  EXPECT_NE(ll.out.find("#bits_per_base"), std::string::npos);
  // Three SNVs on chr1 with their true reference bases.
  const std::string genome = read_all(fasta);
  const std::string chr1 = [&] {
    std::string s;
    std::istringstream in(genome);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line) && !line.starts_with(">")) s += line;
    return s;
  }();
  std::ofstream vcf(tmp / "calls.vcf");
  vcf << "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=" << chr1.size() << ">\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n";
  for (int pos : {200, 5000, 25000}) vcf << "chr1\t" << pos << "\t.\t" << chr1[size_t(pos - 1)] << "\t" << (chr1[size_t(pos - 1)] == 'A' ? 'C' : 'A') << "\t.\t.\t.\n";
  vcf.close();
  const auto score = [&](int threads, const std::string& out) {
    return run_cli(fmt::format("--threads {} score-variants -r {} -m {} -i {} -o {} --window 64", threads, fasta.string(), model,
                               (tmp / "calls.vcf").string(), (tmp / out).string()));
  };
  const CliResult sv = score(2, "scored2.vcf"), sv1 = score(1, "scored1.vcf");
  ASSERT_EQ(sv.exit_code, 0) << sv.err;
  ASSERT_EQ(sv1.exit_code, 0) << sv1.err;
  EXPECT_NE(sv.err.find("3 scored"), std::string::npos) << sv.err;
  const auto records = [&](const std::string& name) {  // all but the header line that records the command
    std::istringstream in(read_all(tmp / name));
    std::string line, out;
    while (std::getline(in, line))
      if (!line.starts_with("##longseqCommand")) out += line + "\n";
    return out;
  };
  EXPECT_EQ(records("scored1.vcf"), records("scored2.vcf"));  // one model copy per thread, the same scores
}

TEST(TrainCli, MaskedLmTrainsCaduceusAndRefusesTheWrongTask) {
  // --task mlm on Caduceus-PS: the loss falls, the report gives held-out masked accuracy and the
  // symmetric Markov baselines, the model scores with llr, and 1 and 2 threads give the same bytes.
  // A causal model is refused for mlm and a bidirectional one for lm, each in one line.
  TempDir tmp;
  const auto fasta = write_fasta(tmp);
  const std::string args = "train --task mlm -r " + fasta.string() +
                           " --family caduceus --d-model 16 --n-layer 2 --length 128 --batch 4 --steps 12 --lr 3e-3 --warmup 2 "
                           "--log-every 1 --eval-every 12 --val-windows 8 --baseline --seed 4 -o ";
  const CliResult a = run_cli("--threads 2 " + args + (tmp / "a").string());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const auto rows = read_metrics(tmp / "a/metrics.jsonl");
  ASSERT_EQ(rows.size(), 12u);
  EXPECT_LT(rows.back()["loss"].get<double>(), rows.front()["loss"].get<double>());
  EXPECT_NE(a.err.find("held-out masked bases: accuracy"), std::string::npos) << a.err;
  EXPECT_NE(a.err.find("symmetric Markov, 5 bases each side"), std::string::npos) << a.err;
  const CliResult b = run_cli("--threads 1 " + args + (tmp / "b").string());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(read_all(tmp / "a/model/model.safetensors"), read_all(tmp / "b/model/model.safetensors"));
  const CliResult info = run_cli("info --no-tensors " + (tmp / "a/model").string());
  EXPECT_NE(info.out.find("Caduceus-PS"), std::string::npos) << info.out;
  // The masked-LM model fine-tunes as a classifier (--init), whose predictions `classify` reads.
  {
    std::ofstream tsv(tmp / "cls.tsv");
    tsv << "sequence\tlabel\n";
    Rng rng(3);
    for (int i = 0; i < 24; ++i) {
      std::string seq;
      for (int k = 0; k < 48; ++k) seq += (i % 2 ? "AT" : "GC")[rng.below(2)];
      tsv << seq << "\t" << (i % 2 ? "at" : "gc") << "\n";
    }
  }
  const CliResult ft = run_cli("train --task classify --data " + (tmp / "cls.tsv").string() + " --init " + (tmp / "a/model").string() +
                               " --batch 4 --steps 6 --lr 3e-3 --warmup 1 --eval-every 6 --val-fraction 0.25 -o " + (tmp / "ft").string());
  ASSERT_EQ(ft.exit_code, 0) << ft.err;
  std::ofstream(tmp / "q.fa") << ">q\nGCGCGGCCGCGCGGCGCCGCGGCGCGCC\n";
  const CliResult cls = run_cli("classify -m " + (tmp / "ft/model").string() + " " + (tmp / "q.fa").string());
  ASSERT_EQ(cls.exit_code, 0) << cls.err;
  EXPECT_TRUE(cls.out.find("q\tgc") != std::string::npos || cls.out.find("q\tat") != std::string::npos) << cls.out;

  const CliResult lm = run_cli("train --task lm -r " + fasta.string() + " --family caduceus --steps 1 -o " + (tmp / "c").string());
  EXPECT_NE(lm.exit_code, 0);
  EXPECT_NE(lm.err.find("--task mlm"), std::string::npos) << lm.err;
  const CliResult mlm = run_cli("train --task mlm -r " + fasta.string() + " --family mamba --steps 1 -o " + (tmp / "d").string());
  EXPECT_NE(mlm.exit_code, 0);
  EXPECT_NE(mlm.err.find("--task lm"), std::string::npos) << mlm.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "c"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "d"));
}
