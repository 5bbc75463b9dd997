// File readers against good and malformed input; model files and .npy round trips; atomic writes.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <cstring>
#include <fstream>
#include "kernels/convert.h"
#include "rectifier/data.h"
#include "rectifier/error.h"
#include "rectifier/io.h"
#include "rectifier/trainer.h"
#include "test_util.h"

namespace rectifier {
namespace fs = std::filesystem;

namespace {
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("rectifier_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

void write(const std::string& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }
void write_gz(const std::string& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, bytes.data(), unsigned(bytes.size()));
  gzclose(f);
}
std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }
std::string idx_images(uint32_t n, uint32_t h, uint32_t w) {
  std::string s = be32(0x803) + be32(n) + be32(h) + be32(w);
  for (uint32_t i = 0; i < n * h * w; ++i) s += char(i % 251);
  return s;
}
std::string idx_labels(uint32_t n) {
  std::string s = be32(0x801) + be32(n);
  for (uint32_t i = 0; i < n; ++i) s += char(i % 3);
  return s;
}
// Expects an Error whose message contains every piece.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> pieces) {
  try {
    f();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code, 2);
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
    for (const auto& p : pieces) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
  }
}
}  // namespace

TEST(Idx, ReadsPlainAndGzipped) {
  TempDir d;
  write(d / "i", idx_images(5, 4, 3));
  write_gz(d / "l.gz", idx_labels(5));
  Dataset ds = read_idx(d / "i", d / "l.gz");
  EXPECT_EQ(ds.size(), 5u);
  EXPECT_EQ(ds.shape, (Shape{1, 4, 3}));
  EXPECT_EQ(ds.classes, 3);
  EXPECT_EQ(ds.labels[4], 1);
  EXPECT_EQ(ds.pixels[13], 13);
  float x[12];
  uint32_t idx = 1;
  ds.gather(&idx, 1, x);
  EXPECT_FLOAT_EQ(x[0], 12.0f / 255.0f);
}

// The images are read straight into the data set's storage, with the size a gzip file's trailer gives as a hint
// for reserving room; a trailer that lies is reported as a corrupt file, not trusted (no 4 GB reservation).
TEST(Idx, GzippedImagesReadInPlaceAndAWrongSizeTrailerIsAnError) {
  TempDir d;
  const std::string images = idx_images(300, 5, 7);
  write_gz(d / "i.gz", images);
  write(d / "l", idx_labels(300));
  Dataset good = read_idx(d / "i.gz", d / "l");
  ASSERT_EQ(good.pixels.size(), 300u * 35u);
  for (size_t i = 0; i < good.pixels.size(); ++i) ASSERT_EQ(good.pixels[i], uint8_t(images[16 + i])) << i;
  for (uint32_t lie : {0u, 7u, 0xffffffffu}) {
    std::fstream f(d / "i.gz", std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(-4, std::ios::end);
    const char b[4] = {char(lie), char(lie >> 8), char(lie >> 16), char(lie >> 24)};
    f.write(b, 4);
    f.close();
    // zlib checks the trailer once it has read the data: a wrong one is a corrupt file, named as such, whatever
    // room the hint reserved
    expect_error([&] { read_idx(d / "i.gz", d / "l"); }, {d / "i.gz", "corrupt gzip data", "incorrect length check"});
  }
}

// Blocks of 2 MB or more (a training set's images, a CNN's activations) are 2 MB aligned, where transparent huge
// pages can back them; smaller ones are not rounded up.
TEST(HugePages, LargeBuffersAndDataSetsAreAlignedToHugePages) {
  Buffer<float> big(kHugePage / sizeof(float) + 3), small(1000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % kHugePage, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % 64, 0u);
  for (size_t i = 0; i < big.size(); i += 4099) ASSERT_EQ(big[i], 0.0f);  // zero-filled as any Buffer
  HugeVector<uint8_t> v;
  for (int i = 0; i < 3 << 20; ++i) v.push_back(uint8_t(i * 7));  // grows across the 2 MB threshold
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % kHugePage, 0u);
  for (int i = 0; i < 3 << 20; i += 997) ASSERT_EQ(v[size_t(i)], uint8_t(i * 7));
  HugeVector<uint8_t> w = v;  // copies and shrinks through the same allocator
  w.resize(100);
  w.shrink_to_fit();
  EXPECT_EQ(w[99], uint8_t(99 * 7));
}

TEST(Idx, MalformedFilesNameTheFileAndOffset) {
  TempDir d;
  write(d / "l", idx_labels(5));
  std::string wrong = idx_images(5, 4, 3);
  wrong[3] = 0x01;
  write(d / "magic", wrong);
  expect_error([&] { read_idx(d / "magic", d / "l"); }, {d / "magic", "byte 0", "magic number 0x00000801", "0x00000803"});
  std::string trunc = idx_images(5, 4, 3);
  trunc.resize(trunc.size() - 7);
  write(d / "trunc", trunc);
  expect_error([&] { read_idx(d / "trunc", d / "l"); }, {d / "trunc", "truncated at byte 69"});
  write(d / "short", std::string("\0\0\x08", 3));
  expect_error([&] { read_idx(d / "short", d / "l"); }, {d / "short", "truncated"});
  write(d / "i", idx_images(6, 4, 3));
  expect_error([&] { read_idx(d / "i", d / "l"); }, {d / "l", "5 labels", "6 images"});
  std::string gz;
  write_gz(d / "t.gz", idx_images(50, 10, 10));
  gz = read_file(d / "t.gz");
  write(d / "cut.gz", gz.substr(0, gz.size() / 2));
  expect_error([&] { read_idx(d / "cut.gz", d / "l"); }, {d / "cut.gz"});
  expect_error([&] { read_idx(d / "none", d / "l"); }, {d / "none", "no such file"});
}

TEST(Idx, MnistDirectoryNeedsAllFourFiles) {
  TempDir d;
  write(d / "train-images-idx3-ubyte", idx_images(6, 4, 4));
  write(d / "train-labels-idx1-ubyte", idx_labels(6));
  write_gz(d / "t10k-images-idx3-ubyte.gz", idx_images(3, 4, 4));
  expect_error([&] { load_data("mnist:" + d.path.string()); }, {"t10k-labels-idx1-ubyte"});
  write_gz(d / "t10k-labels-idx1-ubyte.gz", idx_labels(3));
  DataSplit s = load_data("mnist:" + d.path.string());
  EXPECT_EQ(s.train.size(), 6u);
  EXPECT_EQ(s.test.size(), 3u);
}

TEST(Csv, ReadsWithHeaderAndSplits) {
  TempDir d;
  write(d / "a.csv", "label,x,y\n0,1.5,2\n1,3,4\n\n2,5,6e-1\n1,0,0\n0,1,1\n");
  DataSplit s = load_data("csv:" + (d / "a.csv"));
  EXPECT_EQ(s.train.size(), 4u);
  EXPECT_EQ(s.test.size(), 1u);
  EXPECT_EQ(s.train.shape, (Shape{2}));
  EXPECT_EQ(s.train.classes, 3);
  EXPECT_FLOAT_EQ(s.train.features[5], 0.6f);
}

TEST(Csv, BadRowsNameTheLine) {
  TempDir d;
  write(d / "w.csv", "0,1,2\n1,3\n");
  expect_error([&] { read_csv(d / "w.csv"); }, {d / "w.csv", "line 2", "2 columns", "line 1 has 3"});
  write(d / "n.csv", "0,1,2\n1,abc,3\n");
  expect_error([&] { read_csv(d / "n.csv"); }, {d / "n.csv", "line 2, column 2", "'abc' is not a number"});
  write(d / "l.csv", "0.5,1,2\n");
  expect_error([&] { read_csv(d / "l.csv"); }, {d / "l.csv", "line 1, column 1", "not a class number"});
  write(d / "e.csv", "");
  expect_error([&] { read_csv(d / "e.csv"); }, {d / "e.csv", "no data rows"});
}

TEST(Data, UnknownSpecsAreErrors) {
  expect_error([] { load_data("cifar"); }, {"cifar", "unknown data set"});
  expect_error([] { load_data("spirals:x"); }, {"spirals:x"});
  EXPECT_EQ(load_data("moons:100").train.size(), 100u);
}

TEST(ModelFile, RoundTripIsExactAndNamesFollowPyTorch) {
  TempDir d;
  ArchContext ctx;
  ctx.input = {1, 6, 6};
  Model<float> m(parse_arch("conv(2,3,pad=1) batchnorm relu maxpool(2) flatten dense(4) relu dense(3)", ctx), ctx.input);
  m.init(InitSpec{}, 3);
  ModelInfo info;
  info.input = ctx.input;
  info.classes = 3;
  info.input_scale = 1.0 / 255;
  save_model(d / "m.safetensors", m, info);
  LoadedModel back = load_model(d / "m.safetensors");
  EXPECT_EQ(back.model.arch(), m.arch());
  EXPECT_EQ(back.info.input, ctx.input);
  EXPECT_DOUBLE_EQ(back.info.input_scale, 1.0 / 255);
  ASSERT_EQ(back.model.num_params(), m.num_params());
  for (size_t i = 0; i < m.num_params(); ++i) ASSERT_EQ(back.model.params()[i], m.params()[i]);
  std::vector<std::string> names;
  for (auto& t : back.model.state()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                             "1.num_batches_tracked", "5.weight", "5.bias", "7.weight", "7.bias"}));
  auto st = decode_safetensors(read_file(d / "m.safetensors"), "m");
  EXPECT_EQ(st.tensors["1.num_batches_tracked"].dtype, "I64");
  EXPECT_EQ(st.tensors["0.weight"].shape, (std::vector<int64_t>{2, 1, 3, 3}));
  EXPECT_EQ(st.metadata["arch"], m.arch());
  EXPECT_NE(st.metadata["pytorch"].find("nn.Conv2d(1, 2, 3, padding=1)"), std::string::npos);
}

TEST(ModelFile, CorruptAndTruncatedFilesAreErrors) {
  TempDir d;
  Model<float> m(parse_arch("dense(4) relu dense(2)", ArchContext{}), {3});
  m.init(InitSpec{}, 1);
  ModelInfo info;
  info.input = {3};
  info.classes = 2;
  save_model(d / "m.safetensors", m, info);
  const std::string good = read_file(d / "m.safetensors");
  write(d / "trunc", good.substr(0, good.size() - 10));
  expect_error([&] { load_model(d / "trunc"); }, {d / "trunc", "truncated"});
  write(d / "tiny", good.substr(0, 5));
  expect_error([&] { load_model(d / "tiny"); }, {d / "tiny", "truncated"});
  std::string hdr = good;
  hdr[8] = 'x';
  write(d / "json", hdr);
  expect_error([&] { load_model(d / "json"); }, {d / "json", "not valid JSON"});
  std::string len = good;
  len[7] = 0x7f;
  write(d / "len", len);
  expect_error([&] { load_model(d / "len"); }, {d / "len", "header length"});
  // A file whose tensors do not fit the architecture it records.
  SafeTensors st = decode_safetensors(good, "x");
  st.tensors["0.weight"].shape = {3, 4};
  write(d / "shape", encode_safetensors(st));
  expect_error([&] { load_model(d / "shape"); }, {d / "shape", "0.weight", "[3, 4]", "[4, 3]"});
  st = decode_safetensors(good, "x");
  st.tensors.erase("2.bias");
  write(d / "missing", encode_safetensors(st));
  expect_error([&] { load_model(d / "missing"); }, {d / "missing", "'2.bias' is missing"});
  st = decode_safetensors(good, "x");
  st.metadata.erase("arch");
  write(d / "meta", encode_safetensors(st));
  expect_error([&] { load_model(d / "meta"); }, {d / "meta", "arch"});
}

TEST(AtomicWrite, FailureLeavesTheOldFileUntouched) {
  TempDir d;
  atomic_write(d / "f", "old");
  EXPECT_EQ(read_file(d / "f"), "old");
  expect_error([&] { atomic_write(d / "no/such/dir/f", "new"); }, {"no/such/dir/f"});
  // A directory in the way: the rename fails, the temp file is removed.
  fs::create_directories(d.path / "dir" / "x");
  expect_error([&] { atomic_write(d / "dir", "new"); }, {d / "dir", "unchanged"});
  size_t files = 0;
  for (auto& e : fs::directory_iterator(d.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
  atomic_write(d / "f", "new");
  EXPECT_EQ(read_file(d / "f"), "new");
}

TEST(Npy, HeaderAndDataAreNumPyFormat) {
  TempDir d;
  float v[6] = {1, 2, 3, 4, 5, 6};
  save_npy(d / "a.npy", v, 2, 3);
  std::string s = read_file(d / "a.npy");
  EXPECT_EQ(s.substr(0, 6), "\x93NUMPY");
  const size_t hlen = uint8_t(s[8]) | (uint8_t(s[9]) << 8);
  EXPECT_EQ((10 + hlen) % 64, 0u);
  EXPECT_NE(s.find("'shape': (2, 3)"), std::string::npos);
  EXPECT_EQ(s.size(), 10 + hlen + 24);
  float last;
  std::memcpy(&last, s.data() + s.size() - 4, 4);
  EXPECT_EQ(last, 6.0f);
}

}  // namespace rectifier

namespace rectifier {
// The gather's conversion (kernels/convert.h) against the plain loop, bit for bit, over every byte value and
// lengths around the vector widths.
TEST(DataKernel, ScaleBytesMatchesPlainLoop) {
  std::vector<uint8_t> src(1000);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 37 + i / 256);
  for (size_t n : {0, 1, 7, 15, 16, 17, 31, 33, 63, 64, 65, 784, 1000}) {
    std::vector<float> got(n + 1, -1.0f), want(n + 1, -1.0f);
    kernels::scale_bytes(src.data(), n, 1.0f / 255, got.data());
    kernels::scale_bytes_ref(src.data(), n, 1.0f / 255, want.data());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), (n + 1) * sizeof(float)), 0) << n;  // and nothing past n
  }
}
}  // namespace rectifier
