#include "rectifier/io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include "rectifier/data.h"
#include "rectifier/error.h"

namespace rectifier {

namespace fs = std::filesystem;
using nlohmann::json;

void atomic_write(const std::string& path, const std::string& bytes) {
  fs::path p(path);
  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + p.filename().string() + ".tmp.XXXXXX")).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = mkstemp(name.data());
  if (fd < 0) throw Error(path + ": cannot write (" + std::strerror(errno) + ")");
  auto fail = [&](const char* what) {
    int e = errno;
    close(fd);
    unlink(name.data());
    throw Error(path + ": " + what + " failed (" + std::strerror(e) + "); the existing file, if any, is unchanged");
  };
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("write");
    }
    done += size_t(w);
  }
  if (fchmod(fd, 0644) != 0) fail("chmod");
  if (fsync(fd) != 0) fail("fsync");
  if (close(fd) != 0) { unlink(name.data()); throw Error(path + ": close failed"); }
  if (rename(name.data(), path.c_str()) != 0) {
    int e = errno;
    unlink(name.data());
    throw Error(path + ": rename failed (" + std::strerror(e) + "); the existing file, if any, is unchanged");
  }
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) { fsync(dfd); close(dfd); }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": " + (fs::exists(path) ? "cannot open" : "no such file"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {
size_t dtype_size(const std::string& d) {
  if (d == "F32") return 4;
  if (d == "F64" || d == "I64") return 8;
  return 0;
}
}  // namespace

std::string encode_safetensors(const SafeTensors& st) {
  json header = json::object();
  if (!st.metadata.empty()) header["__metadata__"] = st.metadata;
  size_t off = 0;
  for (const auto& [name, t] : st.tensors) {
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h += ' ';  // the data start 8-byte aligned
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  out += h;
  for (const auto& [name, t] : st.tensors) out += t.bytes;
  return out;
}

SafeTensors decode_safetensors(const std::string& bytes, const std::string& path) {
  if (bytes.size() < 8)
    throw Error(path + ": truncated at byte " + std::to_string(bytes.size()) + ": a safetensors file starts with an 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  if (n > bytes.size() - 8)
    throw Error(path + ": byte 0: header length " + std::to_string(n) + " runs past the end of the file (" +
                std::to_string(bytes.size()) + " bytes): truncated or not a safetensors file");
  json h;
  try {
    h = json::parse(bytes.begin() + 8, bytes.begin() + 8 + long(n));
  } catch (const json::parse_error& e) {
    throw Error(path + ": byte " + std::to_string(8 + e.byte - 1) + ": the header is not valid JSON");
  }
  if (!h.is_object()) throw Error(path + ": byte 8: the header is not a JSON object");
  SafeTensors st;
  const size_t data0 = 8 + size_t(n), data_size = bytes.size() - data0;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw Error(path + ": __metadata__ is not an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) throw Error(path + ": __metadata__." + m.key() + " is not a string");
        st.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw Error(where + ": needs dtype, shape and data_offsets");
    StoredTensor t;
    if (!v["dtype"].is_string() || dtype_size(t.dtype = v["dtype"].get<std::string>()) == 0)
      throw Error(where + ": dtype " + v["dtype"].dump() + " is not one of F32, F64, I64");
    uint64_t count = 1;
    if (!v["shape"].is_array()) throw Error(where + ": shape is not an array");
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) throw Error(where + ": shape " + v["shape"].dump() + " is not a list of sizes");
      t.shape.push_back(d.get<int64_t>());
      count *= uint64_t(t.shape.back());
    }
    const json& o = v["data_offsets"];
    if (!o.is_array() || o.size() != 2 || !o[0].is_number_unsigned() || !o[1].is_number_unsigned())
      throw Error(where + ": data_offsets " + o.dump() + " is not [begin, end]");
    const uint64_t b = o[0].get<uint64_t>(), e = o[1].get<uint64_t>();
    if (b > e || e > data_size)
      throw Error(where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] run past the " +
                  std::to_string(data_size) + " bytes of data: the file is truncated");
    if (e - b != count * dtype_size(t.dtype))
      throw Error(where + ": " + std::to_string(e - b) + " bytes of data, but shape " + v["shape"].dump() + " of " +
                  t.dtype + " needs " + std::to_string(count * dtype_size(t.dtype)));
    t.bytes = bytes.substr(data0 + b, e - b);
    ranges.push_back({b, e});
    st.tensors[name] = std::move(t);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      throw Error(path + ": tensors overlap at data byte " + std::to_string(ranges[i].first));
  return st;
}

ModelInfo model_info(const Model<float>& model, const Dataset& train, const std::string& loss) {
  ModelInfo info;
  info.arch = model.arch();
  info.input = train.shape;
  info.loss = loss;
  info.input_scale = train.scale;
  info.classes = train.classes;
  return info;
}

template <class T>
void save_model(const std::string& path, Model<T>& model, const ModelInfo& info) {
  SafeTensors st;
  for (const auto& t : model.state()) {
    StoredTensor s;
    for (int d : t.shape) s.shape.push_back(d);
    if (t.counter) {
      s.dtype = "I64";
      s.bytes.assign(reinterpret_cast<const char*>(t.counter), 8);
    } else {
      s.dtype = "F32";
      const size_t n = numel(t.shape);
      s.bytes.resize(n * 4);
      for (size_t i = 0; i < n; ++i) {
        float f = float(t.value[i]);
        std::memcpy(s.bytes.data() + 4 * i, &f, 4);
      }
    }
    st.tensors[t.name] = std::move(s);
  }
  std::string shape;
  for (size_t i = 0; i < info.input.size(); ++i) shape += (i ? "," : "") + std::to_string(info.input[i]);
  st.metadata = info.extra;
  st.metadata["format"] = "rectifier";
  st.metadata["format_version"] = "1";
  st.metadata["arch"] = model.arch();
  st.metadata["input_shape"] = shape;
  st.metadata["classes"] = std::to_string(info.classes);
  st.metadata["loss"] = info.loss;
  char scale[32];
  std::snprintf(scale, sizeof scale, "%.17g", info.input_scale);
  st.metadata["input_scale"] = scale;
  st.metadata["pytorch"] = model.torch_source();
  atomic_write(path, encode_safetensors(st));
}

template void save_model<float>(const std::string&, Model<float>&, const ModelInfo&);
template void save_model<double>(const std::string&, Model<double>&, const ModelInfo&);

LoadedModel load_model(const std::string& path) {
  SafeTensors st = decode_safetensors(read_file(path), path);
  auto meta = [&](const char* key) -> const std::string& {
    auto it = st.metadata.find(key);
    if (it == st.metadata.end()) throw Error(path + ": __metadata__ has no '" + key + "': not a rectifier model file");
    return it->second;
  };
  ModelInfo info;
  info.arch = meta("arch");
  info.loss = meta("loss");
  try {
    std::string shape = meta("input_shape");
    std::stringstream ss(shape);
    std::string part;
    while (std::getline(ss, part, ',')) info.input.push_back(std::stoi(part));
    info.classes = std::stoi(meta("classes"));
    info.input_scale = std::stod(meta("input_scale"));
  } catch (const std::logic_error&) {
    throw Error(path + ": __metadata__ input_shape, classes or input_scale is not a number");
  }
  if (info.input.empty()) throw Error(path + ": __metadata__ input_shape is empty");
  for (const auto& [k, v] : st.metadata) info.extra[k] = v;
  std::vector<LayerSpec> specs;
  try {
    specs = parse_arch(info.arch, ArchContext{});
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  Model<float> model = [&] {
    try {
      return Model<float>(specs, info.input);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
  }();
  size_t used = 0;
  for (auto& t : model.state()) {
    auto it = st.tensors.find(t.name);
    if (it == st.tensors.end()) throw Error(path + ": tensor '" + t.name + "' is missing (architecture: " + info.arch + ")");
    const StoredTensor& s = it->second;
    std::vector<int64_t> want(t.shape.begin(), t.shape.end());
    if (s.shape != want) {
      Shape got(s.shape.begin(), s.shape.end());
      throw Error(path + ": tensor '" + t.name + "' has shape " + shape_str(got) + " but the architecture needs " + shape_str(t.shape));
    }
    if (t.counter) {
      if (s.dtype != "I64") throw Error(path + ": tensor '" + t.name + "' is " + s.dtype + ", expected I64");
      std::memcpy(t.counter, s.bytes.data(), 8);
    } else if (s.dtype == "F32") {
      std::memcpy(t.value, s.bytes.data(), s.bytes.size());
    } else if (s.dtype == "F64") {
      for (size_t i = 0; i < numel(t.shape); ++i) {
        double d;
        std::memcpy(&d, s.bytes.data() + 8 * i, 8);
        t.value[i] = float(d);
      }
    } else {
      throw Error(path + ": tensor '" + t.name + "' is " + s.dtype + ", expected F32");
    }
    ++used;
  }
  if (used != st.tensors.size()) {
    for (const auto& [name, _] : st.tensors) {
      bool known = false;
      for (auto& t : model.state()) known |= t.name == name;
      if (!known) throw Error(path + ": tensor '" + name + "' is not part of the architecture " + info.arch);
    }
  }
  return {std::move(model), info};
}

void save_npy(const std::string& path, const float* data, size_t rows, size_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  const size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += char(1);
  out += char(0);
  out += char(header.size() & 0xff);
  out += char((header.size() >> 8) & 0xff);
  out += header;
  out.append(reinterpret_cast<const char*>(data), rows * cols * sizeof(float));
  atomic_write(path, out);
}

}  // namespace rectifier
