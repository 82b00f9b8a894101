// safetensors: every dtype round-trips bit-exactly; every kind of malformed file is an Error that
// names the file, never a crash (this suite also runs under ASan/UBSan).
#include "core/error.h"
#include "core/safetensors.h"
#include "core/weight_file.h"
#include "tests/testing.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>

using namespace longseq;
using longseq::testing::TempDir;

namespace {

void write_raw(const std::filesystem::path& p, const std::string& header, const std::string& data,
               std::optional<uint64_t> claimed_len = std::nullopt) {
  std::ofstream f(p, std::ios::binary);
  const uint64_t n = claimed_len.value_or(header.size());
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header << data;
}

// Expects open() to throw an Error whose message names the file and contains `needle`.
void expect_bad(const std::filesystem::path& p, const std::string& needle) {
  try {
    SafetensorsFile::open(p);
    ADD_FAILURE() << "no error for " << needle;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> tensors;
  const auto vals = longseq::testing::random_vector(6 * 7, 3, -100.0f, 100.0f);
  Tensor base = Tensor::from_vector(vals, {6, 7});
  for (DType t : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16, DType::I8, DType::U8,
                  DType::Bool})
    tensors.emplace_back(std::string("t_") + std::string(dtype_name(t)), base.to(t));
  tensors.emplace_back("strided_view", base.slice(1, 2, 3));
  tensors.emplace_back("empty", Tensor::empty({0, 4}));
  tensors.emplace_back("scalar", Tensor::full({}, 2.5f));
  write_safetensors(dir / "m.safetensors", tensors, {{"format", "pt"}, {"note", "longseq test"}});

  const auto f = SafetensorsFile::open(dir / "m.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.tensors().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const Tensor back = f.view(name);
    EXPECT_EQ(back.dtype(), t.dtype()) << name;
    EXPECT_EQ(back.shape(), t.shape()) << name;
    const Tensor c = t.contiguous();
    ASSERT_EQ(back.nbytes(), c.nbytes());
    EXPECT_EQ(std::memcmp(back.raw(), c.raw(), c.nbytes()), 0) << name;
  }
  // Larger dtypes first (the official layout), so every view is naturally aligned and zero-copy.
  EXPECT_EQ(f.tensors().front().dtype, DType::F64);
  EXPECT_FALSE(f.view("t_F32").storage()->owned());
  EXPECT_EQ(f.load_f32("t_BF16").to_vector(), base.to(DType::BF16).to(DType::F32).to_vector());
  EXPECT_EQ(f.load_f32("t_F16").dtype(), DType::F32);
  EXPECT_THROW(f.load_f32("t_I64"), Error);
  EXPECT_THROW(f.info("missing"), Error);
}

TEST(Safetensors, ViewOutlivesFileObject) {
  TempDir dir;
  write_safetensors(dir / "a.safetensors", {{"x", Tensor::full({1000}, 3.0f)}});
  Tensor v;
  {
    auto f = SafetensorsFile::open(dir / "a.safetensors");
    v = f.view("x");
  }
  EXPECT_EQ(v.item({999}), 3.0f);
}

TEST(Safetensors, WriterIsAtomicAndRejectsDuplicates) {
  TempDir dir;
  const auto target = dir / "out.safetensors";
  EXPECT_THROW(write_safetensors(target, {{"a", Tensor::zeros({2})}, {"a", Tensor::zeros({3}, DType::F16)}}), Error);
  EXPECT_FALSE(std::filesystem::exists(target));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 0)
      << "temp file left behind";
  EXPECT_THROW(write_safetensors(dir / "no/such/dir/x.safetensors", {{"a", Tensor::zeros({2})}}), Error);
}

TEST(Safetensors, MalformedFilesGiveErrors) {
  TempDir dir;
  const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string data8(8, '\0');
  auto path = [&](const char* n) { return dir / n; };

  write_raw(path("ok"), good, data8);
  EXPECT_NO_THROW(SafetensorsFile::open(path("ok")));

  { std::ofstream(path("empty"), std::ios::binary); }
  expect_bad(path("empty"), "shorter than");
  { std::ofstream f(path("short"), std::ios::binary); f << "abc"; }
  expect_bad(path("short"), "shorter than");
  write_raw(path("hdr_long"), good, data8, 10000);
  expect_bad(path("hdr_long"), "runs past the end");
  write_raw(path("hdr_huge"), good, data8, uint64_t(1) << 62);
  expect_bad(path("hdr_huge"), "implausible");
  write_raw(path("truncated"), good, std::string(5, '\0'));
  expect_bad(path("truncated"), "past the end of the data section");
  write_raw(path("not_json"), "{\"a\": [1, 2", data8);
  expect_bad(path("not_json"), "not well-formed JSON");
  write_raw(path("not_object"), "[1,2,3]", data8);
  expect_bad(path("not_object"), "not a JSON object");
  write_raw(path("dtype"), R"({"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", data8);
  expect_bad(path("dtype"), "unsupported dtype 'F8_E4M3'");
  write_raw(path("size"), R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data8);
  expect_bad(path("size"), "needs 12 bytes");
  write_raw(path("oob"), R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data8);
  expect_bad(path("oob"), "past the end");
  write_raw(path("overlap"),
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            data8);
  expect_bad(path("overlap"), "overlap");
  write_raw(path("reversed"), R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", data8);
  expect_bad(path("reversed"), "reversed");
  write_raw(path("neg_shape"), R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data8);
  expect_bad(path("neg_shape"), "non-negative");
  write_raw(path("no_offsets"), R"({"a":{"dtype":"F32","shape":[2]}})", data8);
  expect_bad(path("no_offsets"), "missing 'data_offsets'");
  write_raw(path("bad_meta"), R"({"__metadata__":{"k":1}})", "");
  expect_bad(path("bad_meta"), "__metadata__");
  write_raw(path("overflow"), R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", data8);
  expect_bad(path("overflow"), "too large");
  expect_bad(path("does_not_exist"), "cannot open");
  expect_bad(dir.path(), "not a regular file");
}

TEST(Safetensors, RandomCorruptionNeverCrashes) {
  TempDir dir;
  write_safetensors(dir / "src", {{"w", Tensor::full({3, 5}, 1.0f)}, {"ids", Tensor::zeros({4}, DType::I64)}});
  const std::string bytes = longseq::testing::read_all(dir / "src");
  std::mt19937 rng(5);
  int errors = 0;
  for (int i = 0; i < 300; ++i) {
    std::string b = bytes;
    if (i % 3 == 0) b.resize(1 + rng() % (b.size() - 1));
    for (int k = 0; k < 3; ++k) b[rng() % b.size()] = char(rng());
    { std::ofstream(dir / "bad", std::ios::binary) << b; }
    try {
      const auto f = SafetensorsFile::open(dir / "bad");
      for (const auto& t : f.tensors()) (void)f.view(t.name).to_vector();
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 50);
}

TEST(Safetensors, NonFiniteWeightsAreRefusedNamingTheTensor) {
  TempDir dir;
  const float nan = std::nanf("");
  write_safetensors(dir / "w.safetensors", {{"ok", Tensor::from_vector(std::vector<float>{1, 2}, {2})},
                                            {"bad.weight", Tensor::from_vector(std::vector<float>{1, 2, nan, 4}, {2, 2})},
                                            {"half", Tensor::from_vector(std::vector<float>{1, INFINITY}, {2}).to(DType::F16)}});
  const auto f = SafetensorsFile::open(dir / "w.safetensors");
  EXPECT_NO_THROW(f.load_f32("ok"));
  EXPECT_NO_THROW(f.view("bad.weight"));  // the raw view is not a weight load
  try {
    f.load_f32("bad.weight");
    ADD_FAILURE() << "no error for a NaN weight";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'bad.weight' holds a non-finite value (nan at flat index 2)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.load_f32("half"), Error);
}

TEST(Safetensors, Bf16WeightsKeptAsStoredAreCheckedToo) {
  // A bf16 weight kept bf16 (an inference model's linear weights) is screened like a converted one:
  // an infinity past the first screening block is found at its index; a finite one comes back as
  // stored, contiguous.
  TempDir dir;
  std::vector<float> v(3000, 0.5f);
  const Tensor good = Tensor::from_vector(v, {3, 1000}).to(DType::BF16);
  v[2500] = INFINITY;
  write_safetensors(dir / "w.safetensors", {{"good", good}, {"bad.weight", Tensor::from_vector(v, {3, 1000}).to(DType::BF16)}});
  const auto f = WeightFile::open(dir / "w.safetensors");
  const Tensor kept = f.load_weight("good", true);
  EXPECT_EQ(kept.dtype(), DType::BF16);
  EXPECT_TRUE(kept.is_contiguous());
  EXPECT_EQ(std::memcmp(kept.raw(), good.raw(), good.nbytes()), 0);
  EXPECT_EQ(f.load_weight("good", false).dtype(), DType::F32);
  try {
    f.load_weight("bad.weight", true);
    ADD_FAILURE() << "no error for an infinite bf16 weight";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'bad.weight' holds a non-finite value (inf at flat index 2500)"), std::string::npos) << e.what();
  }
}
