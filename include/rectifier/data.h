// Data sets. Images stay uint8 in memory and are scaled per batch as they are gathered; tabular and synthetic data
// are float. Every reader checks what it reads and names the file and byte offset (or line) of what is wrong.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "rectifier/tensor.h"

namespace rectifier {

struct Dataset {
  std::string source;             // where it came from, for messages
  Shape shape;                    // one example: {1, 28, 28} for images, {d} for tabular data
  HugeVector<uint8_t> pixels;     // (n, shape) when the data are images (huge pages: rows are read at random)
  HugeVector<float> features;     // (n, shape) otherwise
  std::vector<int32_t> labels;    // (n)
  int classes = 0;
  double scale = 1.0;             // applied when gathering: 1/255 for images

  size_t size() const { return labels.size(); }
  bool is_images() const { return !pixels.empty(); }
  // Copies the examples idx[0..n) into out (n, shape), scaled to the model's input.
  template <class T> void gather(const uint32_t* idx, int n, T* out) const;
  // Copies examples [first, first+n) in order.
  template <class T> void gather_range(size_t first, int n, T* out) const;
};

struct DataSplit {
  std::string name;
  Dataset train, test;
};

// The directory Debian's dataset-fashion-mnist installs.
inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// spec: "fashion-mnist", "mnist:DIR" (the four IDX files, gzipped or not), "csv:FILE" (label first; the last 20%
// of rows are the test split) or "csv:TRAIN,TEST", or a synthetic set: "spirals", "xor", "moons"
// (optionally ":N" training examples, e.g. "spirals:4000"). Synthetic sets are drawn from a fixed seed.
DataSplit load_data(const std::string& spec);
// Names and one-line descriptions of the accepted forms, for --help.
std::string data_help();

// IDX readers (gzip or plain). Throw Error naming the file and byte offset.
Dataset read_idx(const std::string& images_path, const std::string& labels_path);
Dataset read_csv(const std::string& path);
Dataset make_synthetic(const std::string& name, size_t n, uint64_t seed);

}  // namespace rectifier
