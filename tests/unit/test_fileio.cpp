#include "core/error.h"
#include "core/fileio.h"
#include "tests/testing.h"

#include <fstream>

using namespace longseq;

TEST(AtomicFile, CommitReplacesTarget) {
  longseq::testing::TempDir dir;
  const auto target = dir / "out.txt";
  { std::ofstream(target) << "old"; }
  {
    AtomicFile f(target);
    f.write("new contents");
    EXPECT_EQ(longseq::testing::read_all(target), "old");  // invisible until commit
    f.commit();
  }
  EXPECT_EQ(longseq::testing::read_all(target), "new contents");
}

TEST(AtomicFile, AbandonedWriteLeavesNothing) {
  longseq::testing::TempDir dir;
  const auto target = dir / "out.txt";
  try {
    AtomicFile f(target);
    f.write("partial");
    throw std::runtime_error("interrupted");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(std::filesystem::exists(target));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  EXPECT_THROW(AtomicFile(dir / "missing/x"), Error);
}

TEST(AtomicFile, DevicesAreWrittenInPlace) {
  // Renaming a temp file over /dev/null would turn the device into a regular file.
  {
    AtomicFile f("/dev/null");
    EXPECT_EQ(f.temp_path(), std::filesystem::path("/dev/null"));
    f.write("discarded");
    f.commit();
  }
  EXPECT_TRUE(std::filesystem::is_character_file("/dev/null"));
}

TEST(AtomicFile, TempIsRegisteredForSignalCleanupUntilCommitted) {
  longseq::testing::TempDir dir;
  const size_t before = registered_temp_paths();
  {
    AtomicFile f(dir / "out.txt");
    EXPECT_EQ(registered_temp_paths(), before + 1);
    EXPECT_TRUE(std::filesystem::exists(f.temp_path()));
    f.write("x");
    f.commit();
    EXPECT_EQ(registered_temp_paths(), before);
  }
  {
    AtomicFile abandoned(dir / "other.txt");
    EXPECT_EQ(registered_temp_paths(), before + 1);
  }
  EXPECT_EQ(registered_temp_paths(), before);
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) n += e.path().filename() == "out.txt" ? 0 : 1;
  EXPECT_EQ(n, 0u) << "only the committed file remains";
}

TEST(OutputChecks, SameFileFollowsLinksAndIgnoresMissingPaths) {
  longseq::testing::TempDir dir;
  const auto a = dir / "a.txt", b = dir / "b.txt";
  std::ofstream(a) << "a";
  std::ofstream(b) << "b";
  std::filesystem::create_symlink(a, dir / "sym");
  std::filesystem::create_hard_link(a, dir / "hard");
  EXPECT_TRUE(same_file(a, dir / "sym"));
  EXPECT_TRUE(same_file(a, dir / "hard"));
  EXPECT_TRUE(same_file(a, dir / "." / "a.txt"));
  EXPECT_FALSE(same_file(a, b));
  EXPECT_FALSE(same_file(dir / "missing", dir / "missing"));
}

TEST(OutputChecks, OutputFileRules) {
  longseq::testing::TempDir dir;
  const auto in = dir / "in.vcf";
  std::ofstream(in) << "x";
  std::filesystem::create_directories(dir / "sub");
  const auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message([&] { check_output_file(in, {dir / "other", in}); }).find("same file as the input"), std::string::npos);
  EXPECT_NE(message([&] { check_output_file(dir / "sub", {in}); }).find("is a folder"), std::string::npos);
  EXPECT_NE(message([&] { check_output_file(dir / "nope" / "o.vcf", {in}); }).find("does not exist"), std::string::npos);
  EXPECT_EQ(message([&] { check_output_file(dir / "new.vcf", {in, dir / "absent"}); }), "");
  EXPECT_EQ(message([&] { check_output_file("/dev/null", {in}); }), "");
  EXPECT_NE(message([&] { check_output_folder(in, {}); }).find("not a folder"), std::string::npos);
  EXPECT_NE(message([&] { check_output_folder(dir / "sub", {dir / "sub"}); }).find("is the input"), std::string::npos);
  EXPECT_EQ(message([&] { check_output_folder(dir / "fresh", {in}); }), "");
  const auto idx = with_suffixes(in, {".tbi", ".csi"});
  ASSERT_EQ(idx.size(), 3u);
  EXPECT_EQ(idx[2], dir / "in.vcf.csi");
}
