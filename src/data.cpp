#include "rectifier/data.h"

#include <zlib.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <type_traits>
#include "kernels/convert.h"
#include "rectifier/error.h"
#include "rectifier/rng.h"

namespace rectifier {

namespace fs = std::filesystem;

namespace {
constexpr int kPrefetchAhead = 4;  // images

// dst[j] = T(src[j]) * s: the SIMD kernel for float
template <class T>
void scale_bytes(const uint8_t* src, size_t n, T s, T* dst) {
  if constexpr (std::is_same_v<T, float>) kernels::scale_bytes(src, n, s, dst);
  else for (size_t j = 0; j < n; ++j) dst[j] = T(src[j]) * s;
}
}  // namespace

template <class T>
void Dataset::gather(const uint32_t* idx, int n, T* out) const {
  const size_t d = numel(shape);
  if (is_images()) {
    const T s = T(scale);
#pragma omp parallel for schedule(static) if (size_t(n) * d > 32768)
    for (int i = 0; i < n; ++i) {
      // The images come in random order, so the hardware prefetcher cannot see the next one: ask for it ahead.
      if (i + kPrefetchAhead < n) {
        const uint8_t* next = pixels.data() + size_t(idx[i + kPrefetchAhead]) * d;
        for (size_t j = 0; j < d; j += 64) __builtin_prefetch(next + j);
      }
      const uint8_t* src = pixels.data() + size_t(idx[i]) * d;
      T* dst = out + size_t(i) * d;
      scale_bytes(src, d, s, dst);
    }
  } else {
    for (int i = 0; i < n; ++i) {
      const float* src = features.data() + size_t(idx[i]) * d;
      T* dst = out + size_t(i) * d;
      for (size_t j = 0; j < d; ++j) dst[j] = T(src[j]) * T(scale);
    }
  }
}

template <class T>
void Dataset::gather_range(size_t first, int n, T* out) const {
  const size_t m = size_t(n) * numel(shape), off = first * numel(shape);
  const T s = T(scale);
  if (is_images())
    scale_bytes(pixels.data() + off, m, s, out);
  else
    for (size_t j = 0; j < m; ++j) out[j] = T(features[off + j]) * s;
}

template void Dataset::gather<float>(const uint32_t*, int, float*) const;
template void Dataset::gather<double>(const uint32_t*, int, double*) const;
template void Dataset::gather_range<float>(size_t, int, float*) const;
template void Dataset::gather_range<double>(size_t, int, double*) const;

namespace {

// The size the file will have once read: a gzip file's last four bytes (ISIZE, the size modulo 2^32 of its last
// member), else its own size. Only a hint for reserving room (one allocation, no copy as the data grow); nothing
// relies on it being right.
size_t size_hint(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return 0;
  const std::streamoff n = in.tellg();
  if (n < 18) return size_t(std::max<std::streamoff>(n, 0));
  unsigned char b[4] = {};
  in.seekg(0);
  in.read(reinterpret_cast<char*>(b), 2);
  if (!(b[0] == 0x1f && b[1] == 0x8b)) return size_t(n);
  in.seekg(n - 4);
  in.read(reinterpret_cast<char*>(b), 4);
  if (!in) return 0;
  const size_t isize = size_t(b[0]) | size_t(b[1]) << 8 | size_t(b[2]) << 16 | size_t(b[3]) << 24;
  return std::min(isize, size_t(n) * 1032);  // deflate expands at most 1032:1: a larger figure is a corrupt trailer
}

// The whole file into data (std::string or a byte vector), gunzipped when it is gzip (zlib reads plain files as
// they are). Read straight into the destination: a training set's images are never held twice.
template <class Bytes>
void slurp(const std::string& path, Bytes& data) {
  if (!fs::exists(path)) throw Error(path + ": no such file");
  data.clear();
  data.reserve(size_hint(path));
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open");
  char buf[1 << 16];
  while (true) {
    int got = gzread(f, buf, sizeof buf);
    if (got < 0) {
      int errnum = 0;
      std::string msg = gzerror(f, &errnum);
      gzclose(f);
      throw Error(path + ": corrupt gzip data after " + std::to_string(data.size()) + " bytes (" + msg + ")");
    }
    if (got == 0) break;
    data.insert(data.end(), buf, buf + got);
  }
  int errnum = 0;
  const char* msg = gzerror(f, &errnum);
  if (errnum != Z_OK && errnum != Z_STREAM_END) {
    std::string m = msg;
    gzclose(f);
    throw Error(path + ": truncated or corrupt gzip data after " + std::to_string(data.size()) + " bytes (" + m + ")");
  }
  gzclose(f);
}

template <class Bytes>
uint32_t be32(const Bytes& d, size_t off) {
  return (uint32_t(uint8_t(d[off])) << 24) | (uint32_t(uint8_t(d[off + 1])) << 16) |
         (uint32_t(uint8_t(d[off + 2])) << 8) | uint32_t(uint8_t(d[off + 3]));
}

std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

// Parses an IDX header of `dims` dimensions (unsigned bytes). Returns the dimensions; checks the data length.
template <class Bytes>
std::vector<uint32_t> idx_header(const Bytes& d, const std::string& path, int dims, const char* what) {
  const uint32_t want = 0x00000800u | uint32_t(dims);
  if (d.size() < 4) throw Error(path + ": truncated at byte " + std::to_string(d.size()) + ": no IDX magic number");
  const uint32_t magic = be32(d, 0);
  if (magic != want)
    throw Error(path + ": byte 0: wrong magic number " + hex(magic) + " (expected " + hex(want) + " for an IDX " + what +
                " file)");
  const size_t header = 4 + 4 * size_t(dims);
  if (d.size() < header)
    throw Error(path + ": truncated at byte " + std::to_string(d.size()) + ": header needs " + std::to_string(header) + " bytes");
  std::vector<uint32_t> dim;
  size_t total = 1;
  for (int i = 0; i < dims; ++i) {
    dim.push_back(be32(d, 4 + 4 * size_t(i)));
    if (dim.back() == 0 && i > 0) throw Error(path + ": byte " + std::to_string(4 + 4 * i) + ": dimension " + std::to_string(i) + " is 0");
    total *= dim.back();
  }
  if (d.size() < header + total)
    throw Error(path + ": truncated at byte " + std::to_string(d.size()) + ": the header promises " + std::to_string(total) +
                " bytes of data after byte " + std::to_string(header) + ", found " + std::to_string(d.size() - header));
  if (d.size() > header + total)
    throw Error(path + ": byte " + std::to_string(header + total) + ": " + std::to_string(d.size() - header - total) +
                " bytes after the end of the data the header describes");
  return dim;
}

std::string find_idx(const std::string& dir, const std::string& stem) {
  for (const char* ext : {"", ".gz"}) {
    fs::path p = fs::path(dir) / (stem + ext);
    if (fs::exists(p)) return p.string();
  }
  throw Error(dir + ": no " + stem + " or " + stem + ".gz in this directory");
}

}  // namespace

Dataset read_idx(const std::string& images_path, const std::string& labels_path) {
  Dataset ds;
  ds.source = images_path;
  slurp(images_path, ds.pixels);  // header and all, read in place; the header is dropped below
  auto dim = idx_header(ds.pixels, images_path, 3, "image");
  std::string lab;
  slurp(labels_path, lab);
  auto ldim = idx_header(lab, labels_path, 1, "label");
  if (ldim[0] != dim[0])
    throw Error(labels_path + ": " + std::to_string(ldim[0]) + " labels, but " + images_path + " has " +
                std::to_string(dim[0]) + " images");
  ds.shape = {1, int(dim[1]), int(dim[2])};
  ds.pixels.erase(ds.pixels.begin(), ds.pixels.begin() + 16);
  ds.labels.resize(ldim[0]);
  int mx = 0;
  for (size_t i = 0; i < ldim[0]; ++i) {
    ds.labels[i] = uint8_t(lab[8 + i]);
    mx = std::max(mx, ds.labels[i]);
  }
  ds.classes = mx + 1;
  ds.scale = 1.0 / 255.0;
  return ds;
}

Dataset read_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": " + (fs::exists(path) ? "cannot open" : "no such file"));
  Dataset ds;
  ds.source = path;
  std::string line;
  size_t lineno = 0, width = 0, width_line = 0;
  int mx = -1;
  std::vector<float> row;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    row.clear();
    size_t pos = 0, col = 0;
    bool header = false;
    while (true) {
      ++col;
      size_t comma = line.find(',', pos);
      std::string field = line.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      size_t b = field.find_first_not_of(" \t"), e = field.find_last_not_of(" \t");
      field = b == std::string::npos ? "" : field.substr(b, e - b + 1);
      float v = 0;
      auto r = std::from_chars(field.data(), field.data() + field.size(), v);
      if (r.ec != std::errc() || r.ptr != field.data() + field.size() || field.empty()) {
        if (ds.labels.empty() && width == 0) { header = true; break; }  // a header line before any data
        throw Error(path + ": line " + std::to_string(lineno) + ", column " + std::to_string(col) + ": '" + field +
                    "' is not a number");
      }
      if (!std::isfinite(v))
        throw Error(path + ": line " + std::to_string(lineno) + ", column " + std::to_string(col) + ": '" + field + "' is not finite");
      row.push_back(v);
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    if (header) continue;
    if (row.size() < 2)
      throw Error(path + ": line " + std::to_string(lineno) + ": expected a label and at least one feature, found " +
                  std::to_string(row.size()) + " column");
    if (width == 0) { width = row.size(); width_line = lineno; }
    if (row.size() != width)
      throw Error(path + ": line " + std::to_string(lineno) + ": " + std::to_string(row.size()) + " columns, but line " +
                  std::to_string(width_line) + " has " + std::to_string(width));
    const float label = row[0];
    if (label < 0 || label != std::floor(label) || label > 1e6)
      throw Error(path + ": line " + std::to_string(lineno) + ", column 1: label " + std::to_string(label) +
                  " is not a class number (0, 1, 2, ...)");
    ds.labels.push_back(int32_t(label));
    mx = std::max(mx, int(label));
    ds.features.insert(ds.features.end(), row.begin() + 1, row.end());
  }
  if (ds.labels.empty()) throw Error(path + ": no data rows");
  ds.shape = {int(width - 1)};
  ds.classes = std::max(mx + 1, 2);
  return ds;
}

Dataset make_synthetic(const std::string& name, size_t n, uint64_t seed) {
  Dataset ds;
  ds.source = name;
  ds.shape = {2};
  ds.classes = 2;
  Rng rng(seed);
  for (size_t i = 0; i < n; ++i) {
    float x = 0, y = 0;
    int label = int(i % 2);
    if (name == "spirals") {
      const double t = std::sqrt(rng.uniform()) * 3.0 * 3.141592653589793;  // 1.5 turns
      const double r = t / (3.0 * 3.141592653589793);
      const double a = t + label * 3.141592653589793;
      x = float(r * std::cos(a) + 0.02 * rng.normal());
      y = float(r * std::sin(a) + 0.02 * rng.normal());
    } else if (name == "xor") {
      x = float(rng.uniform(-1, 1));
      y = float(rng.uniform(-1, 1));
      label = (x > 0) != (y > 0);
    } else if (name == "moons") {
      const double t = rng.uniform() * 3.141592653589793;
      x = float(label ? 1 - std::cos(t) : std::cos(t)) + float(0.1 * rng.normal());
      y = float(label ? 0.5 - std::sin(t) : std::sin(t)) + float(0.1 * rng.normal());
      x = (x - 0.5f);
      y = (y - 0.25f) * 2;
    } else {
      throw Error("data: unknown synthetic set '" + name + "' (spirals, xor, moons)");
    }
    ds.features.push_back(x);
    ds.features.push_back(y);
    ds.labels.push_back(label);
  }
  return ds;
}

std::string data_help() {
  return "fashion-mnist (Debian's dataset-fashion-mnist), mnist:DIR (the four IDX files, gzipped or not), "
         "csv:FILE (label in the first column; last 20% of rows = test split) or csv:TRAIN,TEST, "
         "or a synthetic set: spirals, xor, moons (optionally :N training examples)";
}

DataSplit load_data(const std::string& spec) {
  DataSplit s;
  s.name = spec;
  auto colon = spec.find(':');
  std::string kind = spec.substr(0, colon), arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (kind == "fashion-mnist" || kind == "mnist") {
    std::string dir = kind == "fashion-mnist" && arg.empty() ? kFashionMnistDir : arg;
    if (dir.empty()) throw Error("data 'mnist' needs a directory: mnist:DIR");
    if (!fs::is_directory(dir)) {
      std::string hint = dir == kFashionMnistDir ? " (install it: apt-get install dataset-fashion-mnist, or run make deps)" : "";
      throw Error(dir + ": no such directory" + hint);
    }
    s.train = read_idx(find_idx(dir, "train-images-idx3-ubyte"), find_idx(dir, "train-labels-idx1-ubyte"));
    s.test = read_idx(find_idx(dir, "t10k-images-idx3-ubyte"), find_idx(dir, "t10k-labels-idx1-ubyte"));
    if (s.train.shape != s.test.shape)
      throw Error(s.test.source + ": images are " + shape_str(s.test.shape) + " but the training images are " + shape_str(s.train.shape));
  } else if (kind == "csv") {
    if (arg.empty()) throw Error("data 'csv' needs a file: csv:FILE or csv:TRAIN,TEST");
    auto comma = arg.find(',');
    if (comma != std::string::npos) {
      s.train = read_csv(arg.substr(0, comma));
      s.test = read_csv(arg.substr(comma + 1));
      if (s.train.shape != s.test.shape)
        throw Error(s.test.source + ": " + std::to_string(numel(s.test.shape)) + " features per row, but " + s.train.source +
                    " has " + std::to_string(numel(s.train.shape)));
    } else {
      Dataset all = read_csv(arg);
      const size_t n = all.size(), ntest = std::max<size_t>(n / 5, 1), ntrain = n - ntest;
      if (ntrain == 0) throw Error(arg + ": needs at least 2 rows to hold out a test split");
      const size_t d = numel(all.shape);
      s.train = all;
      s.test = all;
      s.train.labels.resize(ntrain);
      s.train.features.resize(ntrain * d);
      s.test.labels.erase(s.test.labels.begin(), s.test.labels.begin() + long(ntrain));
      s.test.features.erase(s.test.features.begin(), s.test.features.begin() + long(ntrain * d));
    }
    const int classes = std::max(s.train.classes, s.test.classes);
    s.train.classes = s.test.classes = classes;
  } else if (kind == "spirals" || kind == "xor" || kind == "moons") {
    size_t n = 2000;
    if (!arg.empty()) {
      auto r = std::from_chars(arg.data(), arg.data() + arg.size(), n);
      if (r.ec != std::errc() || r.ptr != arg.data() + arg.size() || n < 2 || n > 100000000)
        throw Error("data '" + spec + "': expected " + kind + ":N with N a whole number of examples >= 2");
    }
    s.train = make_synthetic(kind, n, 1);
    s.test = make_synthetic(kind, std::max<size_t>(n / 2, 2), 2);
  } else {
    throw Error("data '" + spec + "': unknown data set; expected " + data_help());
  }
  return s;
}

}  // namespace rectifier
