// Files: safetensors models, NumPy .npy arrays, and atomic writes (temp file, fsync, rename) so a failed save never
// leaves a half-written file or touches the old one.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>
#include "rectifier/model.h"

namespace rectifier {

// Writes `bytes` to `path` atomically. Throws Error naming the file on failure; the old file is left untouched.
void atomic_write(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);

// One tensor as stored in a safetensors file.
struct StoredTensor {
  std::string dtype;            // "F32", "F64" or "I64"
  std::vector<int64_t> shape;
  std::string bytes;            // raw little-endian data
};

struct SafeTensors {
  std::map<std::string, std::string> metadata;
  std::map<std::string, StoredTensor> tensors;
};

// 8-byte little-endian header length, JSON header (offsets, dtypes, shapes, __metadata__), raw data.
std::string encode_safetensors(const SafeTensors& st);
// Validates every field: header length, JSON, dtypes, shapes against byte ranges, overlaps and file size.
SafeTensors decode_safetensors(const std::string& bytes, const std::string& path);

// What a model file records for a model trained on `train` with `loss`: input shape, scaling, classes.
ModelInfo model_info(const Model<float>& model, const struct Dataset& train, const std::string& loss = "cross_entropy");
// Saves a model (float32 tensors by state_dict name; architecture and preprocessing in __metadata__).
template <class T> void save_model(const std::string& path, Model<T>& model, const ModelInfo& info);
// Loads a model file: builds the architecture it records and fills every tensor, checking names and shapes.
struct LoadedModel {
  Model<float> model;
  ModelInfo info;
};
LoadedModel load_model(const std::string& path);

// A float32 2-D NumPy array (rows, cols), written atomically.
void save_npy(const std::string& path, const float* data, size_t rows, size_t cols);

}  // namespace rectifier
