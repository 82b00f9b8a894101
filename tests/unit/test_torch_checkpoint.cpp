// The native PyTorch checkpoint reader (core/torch_checkpoint.h, core/pickle.h, core/weight_file.h):
// checkpoints written by Debian's python3-torch (tests/data/make_torch_checkpoints.py, run once per
// test binary) read back as torch holds them, in every dtype, view and format; the released-layout
// Evo 2 fixture's model.pt equals its model.safetensors; hostile and damaged inputs fail in one line.
#include "core/memory.h"
#include "core/model_dir.h"
#include "core/pickle.h"
#include "core/torch_checkpoint.h"
#include "core/weight_file.h"
#include "tests/testing.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>

using namespace longseq;
using namespace longseq::testing;
namespace fs = std::filesystem;

namespace {

// The generated checkpoints (made once; the folder lives until the test binary exits).
const fs::path& generated() {
  static TempDir dir;
  static const bool made = [] {
    const std::string cmd = std::string(LONGSEQ_TORCH_PYTHON) + " " + LONGSEQ_SOURCE_DIR "/tests/data/make_torch_checkpoints.py " +
                            dir.path().string() + " 2>&1";
    return std::system(cmd.c_str()) == 0;
  }();
  if (!made) ADD_FAILURE() << LONGSEQ_TORCH_PYTHON << " could not write the checkpoints: is python3-torch installed (scripts/setup)?";
  return dir.path();
}

std::string bytes_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw()), c.nbytes());
}

// Every tensor of the manifest, in its order, with torch's dtype, shape and bytes.
void expect_as_torch_holds(const TorchCheckpoint& c, const fs::path& manifest_path) {
  const auto manifest = nlohmann::ordered_json::parse(read_all(manifest_path));
  ASSERT_EQ(c.tensors.size(), manifest.size()) << manifest_path;
  size_t i = 0;
  for (const auto& [name, m] : manifest.items()) {
    const auto& [got_name, t] = c.tensors[i++];
    EXPECT_EQ(got_name, name);
    EXPECT_EQ(std::string(dtype_name(t.dtype())), m["dtype"].get<std::string>()) << name;
    EXPECT_EQ(t.shape(), m["shape"].get<Shape>()) << name;
    EXPECT_EQ(bytes_of(t), read_all(manifest_path.parent_path() / m["raw"].get<std::string>())) << name;
  }
}

std::string one_line_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    return what;
  }
  ADD_FAILURE() << "no error";
  return "";
}

pickle::Pickle read_pickle(const std::string& bytes) {
  return pickle::Pickle::read(std::as_bytes(std::span(bytes.data(), bytes.size())), "test", [](std::string_view n) {
    return n == "collections.OrderedDict";
  });
}

}  // namespace

TEST(TorchCheckpoint, EveryDtypeViewAndFormatReadsAsTorchHoldsIt) {
  const fs::path& dir = generated();
  for (const char* name : {"dtypes.pt", "views.pt", "module.pt", "legacy.pt", "extra_state.pt", "train.ckpt"}) {
    SCOPED_TRACE(name);
    const TorchCheckpoint c = read_torch_checkpoint(dir / name);
    expect_as_torch_holds(c, dir / (std::string(name) + ".json"));
    EXPECT_EQ(c.format, std::string(name) == "legacy.pt" ? "legacy" : "zip");
  }
  const TorchCheckpoint te = read_torch_checkpoint(dir / "extra_state.pt");
  EXPECT_EQ(te.skipped, (std::vector<std::string>{"blocks.0.projections._extra_state", "blocks.1.projections._extra_state"}));
  const TorchCheckpoint ckpt = read_torch_checkpoint(dir / "train.ckpt");
  EXPECT_EQ(ckpt.state_dict_key, "state_dict");
  // Views keep torch's strides and share their storage: no copy per view.
  const TorchCheckpoint v = read_torch_checkpoint(dir / "views.pt");
  const auto find = [&](const std::string& n) {
    for (const auto& [k, t] : v.tensors)
      if (k == n) return t;
    return Tensor();
  };
  EXPECT_EQ(find("transposed").strides(), (Shape{1, 10}));
  EXPECT_EQ(find("expanded").strides(), (Shape{0, 1}));
  EXPECT_EQ(static_cast<const char*>(find("rows").raw()) - static_cast<const char*>(find("transposed").raw()), 20 * 4);
  EXPECT_EQ(static_cast<const char*>(find("shared_a").raw()) - static_cast<const char*>(find("transposed").raw()), 10 * 4);
}

TEST(TorchCheckpoint, PartsReadAsTheWholeFile) {
  // A checkpoint split at arbitrary bytes (storages straddle parts and are copied) reads as the whole,
  // by its own name or by its .part0.
  const fs::path& dir = generated();
  TempDir tmp;
  const std::string whole = read_all(dir / "dtypes.pt");
  const size_t cuts[] = {0, 1000, 2500, whole.size()};
  for (int k = 0; k < 3; ++k) {
    std::ofstream(tmp / ("d.pt.part" + std::to_string(k)), std::ios::binary) << whole.substr(cuts[k], cuts[k + 1] - cuts[k]);
  }
  EXPECT_EQ(torch_checkpoint_parts(tmp / "d.pt").size(), 3u);
  for (const fs::path& p : {tmp / "d.pt", tmp / "d.pt.part0"}) expect_as_torch_holds(read_torch_checkpoint(p), dir / "dtypes.pt.json");
}

TEST(TorchCheckpoint, Evo2FixtureCheckpointEqualsItsSafetensors) {
  LONGSEQ_REQUIRE_FIXTURE(fx, "evo2_tiny");
  reset_peak_memory();
  const size_t before = memory_stats().current;
  const WeightFile pt = WeightFile::open(fx / "model.pt");
  // torch.save aligns its storages: every tensor is a view of the mapped file, nothing is copied.
  EXPECT_EQ(memory_stats().peak, before);
  const WeightFile st = WeightFile::open(fx / "model.safetensors");
  EXPECT_EQ(pt.format(), "pytorch zip");
  ASSERT_EQ(pt.tensors().size(), st.tensors().size());
  size_t bf16 = 0;
  for (const auto& t : st.tensors()) {
    ASSERT_TRUE(pt.contains(t.name)) << t.name;
    EXPECT_EQ(pt.info(t.name).dtype, t.dtype) << t.name;
    EXPECT_EQ(pt.info(t.name).shape, t.shape) << t.name;
    EXPECT_EQ(bytes_of(pt.view(t.name)), bytes_of(st.view(t.name))) << t.name;
    bf16 += t.dtype == DType::BF16;
  }
  EXPECT_GT(bf16, 0u);  // released dtypes: bf16 weights, f32 poles/residues/inv_freq
  // A model folder with only the checkpoint reads it.
  TempDir tmp;
  fs::copy_file(fx / "config.json", tmp / "config.json");
  fs::copy_file(fx / "model.pt", tmp / "evo2_tiny.pt");
  const ModelDir m = ModelDir::open(tmp.path());
  EXPECT_EQ(m.weights.path().filename(), "evo2_tiny.pt");
  EXPECT_EQ(ModelDir::files(tmp.path()).back().filename(), "evo2_tiny.pt");
}

TEST(TorchCheckpoint, SafetensorsWhoseHeaderLengthLooksLikeAPickleStaySafetensors) {
  // A safetensors header of 128 (+ 256 k) bytes starts with 0x80, a pickle's first byte: the JSON
  // at byte 8 decides, whatever the file is called.
  TempDir tmp;
  for (int pad = 0; pad < 64; ++pad) {
    write_safetensors(tmp / "w.bin", {{"w", Tensor::full({2, 3}, 1.5f)}}, {{"pad", std::string(size_t(pad), 'x')}});
    if (read_all(tmp / "w.bin")[0] != '\x80') continue;
    const WeightFile w = WeightFile::open(tmp / "w.bin");
    EXPECT_EQ(w.format(), "safetensors");
    EXPECT_EQ(w.load_f32("w").to_vector(), std::vector<float>(6, 1.5f));
    return;
  }
  ADD_FAILURE() << "no padding gave a 0x80 first byte";
}

TEST(TorchCheckpoint, RefusedAndDamagedFilesFailInOneLine) {
  const fs::path& dir = generated();
  EXPECT_NE(one_line_error([&] { read_torch_checkpoint(dir / "bad_global.pt"); }).find("'argparse.Namespace'"), std::string::npos);
  EXPECT_NE(one_line_error([&] { read_torch_checkpoint(dir / "out_of_range.pt"); }).find("does not fit its storage"), std::string::npos);
  TempDir tmp;
  const std::string whole = read_all(dir / "dtypes.pt");
  for (size_t n : {size_t(0), size_t(3), size_t(100), whole.size() / 2, whole.size() - 30}) {
    std::ofstream(tmp / "cut.pt", std::ios::binary) << whole.substr(0, n);
    const std::string e = one_line_error([&] { read_torch_checkpoint(tmp / "cut.pt"); });
    EXPECT_NE(e.find("cut.pt"), std::string::npos) << e;
  }
  std::ofstream(tmp / "text.pt") << "this is not a checkpoint at all";
  EXPECT_NE(one_line_error([&] { read_torch_checkpoint(tmp / "text.pt"); }).find("not a PyTorch checkpoint"), std::string::npos);
  std::string legacy = read_all(dir / "legacy.pt");
  std::ofstream(tmp / "legacy_cut.pt", std::ios::binary) << legacy.substr(0, legacy.size() - 8);
  EXPECT_NE(one_line_error([&] { read_torch_checkpoint(tmp / "legacy_cut.pt"); }).find("past the end"), std::string::npos);
}

TEST(Pickle, HostileOpcodesAreRefusedAndNothingRuns) {
  // os.system('ls') as a pickle: refused at the GLOBAL, before any call is even built.
  EXPECT_NE(one_line_error([] { read_pickle(std::string("\x80\x02" "cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.", 31)); })
                .find("'os.system'"),
            std::string::npos);
  EXPECT_NE(one_line_error([] { read_pickle("\x80\x02h\x05."); }).find("memo entry 5"), std::string::npos);
  EXPECT_NE(one_line_error([] { read_pickle("\x80\x02."); }).find("empty stack"), std::string::npos);
  EXPECT_NE(one_line_error([] { read_pickle(std::string("\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\x3f.", 12)); }).find("truncated"),
            std::string::npos);
  EXPECT_NE(one_line_error([] { read_pickle("\x80\x02I1\n."); }).find("opcode 0x49"), std::string::npos);
  EXPECT_NE(one_line_error([] { read_pickle("\x80\x02}K\x01s."); }).find("empty stack"), std::string::npos);
  // 200,000 nested lists and a list that contains itself: read and freed without recursion or leaks.
  const int depth = 200000;
  const std::string nested = "\x80\x02" + std::string(depth, ']') + std::string(depth - 1, 'a') + ".";
  EXPECT_EQ(read_pickle(nested).root().kind, pickle::Kind::List);
  const auto cycle = read_pickle(std::string("\x80\x02]q\x00h\x00" "a.", 9));
  EXPECT_EQ(cycle.root().items.at(0), &cycle.root());
  // A 10-byte LONG1 (the legacy format's magic number) is kept as its bytes.
  const auto big = read_pickle(std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15));
  EXPECT_EQ(big.root().kind, pickle::Kind::BigInt);
  EXPECT_EQ(big.root().s.size(), 10u);
}

TEST(Pickle, EveryPrefixOfARealPickleFailsCleanly) {
  const std::string whole = read_all(generated() / "views.data.pkl");
  ASSERT_GT(whole.size(), 100u);
  const auto allowed = [](std::string_view) { return true; };
  EXPECT_EQ(pickle::Pickle::read(std::as_bytes(std::span(whole.data(), whole.size())), "views", allowed).size(), whole.size());
  for (size_t n = 0; n < whole.size(); ++n)
    EXPECT_THROW(pickle::Pickle::read(std::as_bytes(std::span(whole.data(), n)), "views", allowed), Error) << n;
}
