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
