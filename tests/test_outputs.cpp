// What squeeze writes and replaces (core/output_path.h), end to end through the CLI: outputs that are,
// contain or lie inside an input are refused; only an earlier squeeze output is replaced, and only with
// --force; directories squeeze did not create are never deleted; temporaries of killed runs are cleaned
// up. Every refusal leaves the input and any unrelated directory byte-identical (hashed before/after).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/output_path.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

// FNV-1a over every entry's relative path, kind and contents, in sorted order.
uint64_t tree_hash(const fs::path& root) {
  std::map<std::string, std::string> entries;
  for (auto& e : fs::recursive_directory_iterator(root)) {
    const std::string rel = fs::relative(e.path(), root).string();
    if (e.is_symlink()) entries[rel] = "L" + fs::read_symlink(e.path()).string();
    else if (e.is_directory()) entries[rel] = "D";
    else entries[rel] = "F" + sqtest::read_file(e.path());
  }
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  for (auto& [k, v] : entries) mix(k), mix(v);
  return h;
}

// A copy of the bundled model with files and a folder of the user's beside the weights.
fs::path user_model(const sqtest::TempDir& tmp) {
  const fs::path m = tmp / "model";
  fs::copy(sqtest::bundled_model(), m, fs::copy_options::recursive);
  sqtest::write_file(m / "notes.txt", "my notes\n");
  fs::create_directories(m / "data" / "runs");
  sqtest::write_file(m / "data" / "runs" / "log.txt", "a log\n");
  return m;
}

std::vector<std::string> quantize_args(const fs::path& model, const fs::path& out) {
  return {"quantize", "-m", model.string(), "-o", out.string(), "--method", "rtn", "--bits", "4", "-q"};
}

std::vector<std::string> calibrate_args(const fs::path& model, const fs::path& out) {
  return {"calibrate", "-m", model.string(), "--data", (model / "calib.txt").string(), "-o", out.string(),
          "--samples", "1", "--seqlen", "16", "-q"};
}

void expect_refused(const std::vector<std::string>& args, const std::string& needle) {
  const auto r = sqtest::run_cli(args);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  size_t lines = 0;  // one line (after the newline that ends a progress bar)
  for (size_t i = 0; i < r.err.size(); i++) lines += r.err[i] == '\n' && i > 0 && r.err[i - 1] != '\n';
  EXPECT_EQ(lines, 1u) << r.err;
}

TEST(Outputs, QuantizeOntoItsInputIsRefused) {
  sqtest::TempDir tmp;
  const fs::path m = user_model(tmp);
  const uint64_t before = tree_hash(tmp.path);
  expect_refused(quantize_args(m, m), "is or is inside the input");
  expect_refused(quantize_args(m, m / "q"), "is or is inside the input");
  expect_refused(quantize_args(m, tmp / "model/"), "is or is inside the input");
  expect_refused(quantize_args(m, tmp / "." / "model"), "is or is inside the input");
  auto with_force = quantize_args(m, m);
  with_force.push_back("--force");
  expect_refused(with_force, "is or is inside the input");
  EXPECT_EQ(tree_hash(tmp.path), before);
}

TEST(Outputs, OutputContainingAnInputIsRefused) {
  sqtest::TempDir tmp;
  fs::create_directories(tmp / "work");
  fs::copy(sqtest::bundled_model(), tmp / "work" / "model", fs::copy_options::recursive);
  const uint64_t before = tree_hash(tmp.path);
  auto args = quantize_args(tmp / "work" / "model", tmp / "work");
  args.push_back("--force");
  expect_refused(args, "contains the input");
  EXPECT_EQ(tree_hash(tmp.path), before);
  // A sensitivity file inside the output directory is an input too.
  fs::create_directories(tmp / "q");
  EXPECT_EQ(sqtest::run_cli(calibrate_args(tmp / "work" / "model", tmp / "q" / "c.safetensors")).rc, 0);
  const uint64_t with_calib = tree_hash(tmp.path);
  expect_refused({"quantize", "-m", (tmp / "work" / "model").string(), "-o", (tmp / "q").string(), "--method",
                  "squeezellm", "--bits", "3", "--sensitivity", (tmp / "q" / "c.safetensors").string(), "--force"},
                 "contains the input");
  EXPECT_EQ(tree_hash(tmp.path), with_calib);
}

TEST(Outputs, ADirectorySqueezeDidNotWriteIsNeverReplaced) {
  sqtest::TempDir tmp;
  const fs::path other = tmp / "other";  // looks like a model directory, but is the user's
  fs::create_directories(other / "sub");
  sqtest::write_file(other / "config.json", "{\"model_type\": \"llama\"}\n");
  sqtest::write_file(other / "sub" / "x.bin", "data");
  sqtest::write_file(tmp / "file", "a file");
  const uint64_t before = tree_hash(tmp.path);
  for (bool force : {false, true}) {
    auto args = quantize_args(sqtest::bundled_model(), other);
    if (force) args.push_back("--force");
    expect_refused(args, "was not written by squeeze; refusing to replace it");
    args = {"synth", "--like", "llama-7b", "--layers", "1", "-o", other.string(), "-q"};  // refused before writing
    if (force) args.push_back("--force");
    expect_refused(args, "was not written by squeeze; refusing to replace it");
    expect_refused(quantize_args(sqtest::bundled_model(), tmp / "file"), "not a directory");
  }
  EXPECT_EQ(tree_hash(tmp.path), before);
}

TEST(Outputs, AnEarlierSqueezeOutputIsReplacedOnlyWithForce) {
  sqtest::TempDir tmp;
  const fs::path q = tmp / "q";
  auto r = sqtest::run_cli(quantize_args(sqtest::bundled_model(), tmp / "q/"));  // a trailing slash means q
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(fs::is_regular_file(q / sq::kOutputMarker));
  EXPECT_TRUE(fs::is_regular_file(q / "model.safetensors"));
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path), fs::directory_iterator()), 1) << "temporaries left";
  const uint64_t first = tree_hash(tmp.path);
  expect_refused(quantize_args(sqtest::bundled_model(), q), "pass --force to replace it");
  EXPECT_EQ(tree_hash(tmp.path), first);
  auto args = quantize_args(sqtest::bundled_model(), q);
  args[args.size() - 2] = "3";  // --bits 3: a different checkpoint
  args.push_back("--force");
  r = sqtest::run_cli(args);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(tree_hash(tmp.path), first);
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path), fs::directory_iterator()), 1) << "temporaries left";
}

TEST(Outputs, CalibrateNeverOverwritesTheModelOrAFileItDidNotWrite) {
  sqtest::TempDir tmp;
  const fs::path m = user_model(tmp);
  sqtest::write_file(tmp / "mine.safetensors", "not squeeze's");
  const uint64_t before = tree_hash(tmp.path);
  expect_refused(calibrate_args(m, m / "model.safetensors"), "is or is inside the input");
  expect_refused(calibrate_args(m, m / "calib.safetensors"), "is or is inside the input");
  expect_refused(calibrate_args(m, m / "calib.txt"), "is or is inside the input");
  auto args = calibrate_args(m, tmp / "mine.safetensors");
  args.push_back("--force");
  expect_refused(args, "was not written by squeeze; refusing to overwrite it");
  EXPECT_EQ(tree_hash(tmp.path), before);
  // Its own earlier output: replaced with --force only.
  const fs::path c = tmp / "c.safetensors";
  ASSERT_EQ(sqtest::run_cli(calibrate_args(m, c)).rc, 0);
  const uint64_t written = tree_hash(tmp.path);
  expect_refused(calibrate_args(m, c), "pass --force to replace it");
  EXPECT_EQ(tree_hash(tmp.path), written);
  args = calibrate_args(m, c);
  args.push_back("--force");
  EXPECT_EQ(sqtest::run_cli(args).rc, 0);
}

TEST(Outputs, SymbolicLinksAreNotOutputs) {
  sqtest::TempDir tmp;
  fs::create_directories(tmp / "real");
  fs::create_directory_symlink(tmp / "real", tmp / "link");
  sqtest::write_file(tmp / "target.bin", "x");
  fs::create_symlink(tmp / "target.bin", tmp / "flink.safetensors");
  const uint64_t before = tree_hash(tmp.path);
  expect_refused(quantize_args(sqtest::bundled_model(), tmp / "link"), "symbolic link");
  expect_refused(calibrate_args(sqtest::bundled_model(), tmp / "flink.safetensors"), "symbolic link");
  EXPECT_EQ(tree_hash(tmp.path), before);
}

// A killed run leaves "<out>.tmp.<pid>"; the next run removes it once that process is gone, but only
// when it holds squeeze's marker.
TEST(Outputs, TemporariesOfKilledRunsAreRemoved) {
  sqtest::TempDir tmp;
  const fs::path dead = tmp / "q.tmp.999999999", old = tmp / "q.old.999999998", foreign = tmp / "q.tmp.999999997";
  const fs::path running = tmp / ("q.tmp." + std::to_string(::getpid())  /* this test: alive */);
  for (const fs::path& d : {dead, old, running}) {
    fs::create_directories(d);
    sqtest::write_file(d / sq::kOutputMarker, "{}");
    sqtest::write_file(d / "model.safetensors", "partial");
  }
  fs::create_directories(foreign);
  sqtest::write_file(foreign / "keep.txt", "the user's");
  ASSERT_EQ(sqtest::run_cli(quantize_args(sqtest::bundled_model(), tmp / "q")).rc, 0);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(old));
  EXPECT_TRUE(fs::exists(running)) << "a live process's temporary was removed";
  EXPECT_EQ(sqtest::read_file(foreign / "keep.txt"), "the user's");
}

TEST(Outputs, PathRules) {
  EXPECT_EQ(sq::output_path("a/b/"), fs::path("a/b"));
  EXPECT_EQ(sq::output_path("a//"), fs::path("a"));
  EXPECT_EQ(sq::output_path("x"), fs::path("x"));
  EXPECT_THROW(sq::output_path(""), sq::Error);
  EXPECT_THROW(sq::output_path("/"), sq::Error);
  EXPECT_THROW(sq::output_path(".."), sq::Error);
  EXPECT_THROW(sq::output_path("a/."), sq::Error);
}

// An output file is unnamed until committed: an abandoned write leaves nothing in the directory.
TEST(Outputs, AnAbandonedFileLeavesNothing) {
  sqtest::TempDir tmp;
  {
    sq::AtomicFile f(tmp / "out.bin");
    f.write("partial");
    EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path), fs::directory_iterator()), 0);
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path), fs::directory_iterator()), 0);
  sq::AtomicFile f(tmp / "out.bin");
  f.write("whole");
  f.commit();
  EXPECT_EQ(sqtest::read_file(tmp / "out.bin"), "whole");
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path), fs::directory_iterator()), 1);
}

}  // namespace
