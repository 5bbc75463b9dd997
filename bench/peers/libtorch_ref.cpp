// libtorch (PyTorch's C++ frontend, Debian libtorch-dev) on the reference tasks, for bench/run.sh.
// usage: libtorch_ref mlp|cnn|cnn-tanh EPOCHS DATA_DIR(unzipped IDX files) [SEED=0] [sgd|adam]
// sgd: lr 0.05, momentum 0.9 (the reference task); adam: lr 0.001, PyTorch's other defaults. cnn-tanh: the CNN with
// tanh and 2x2 average pooling.
#include <torch/torch.h>
#include <sys/resource.h>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

static std::vector<uint8_t> slurp(const std::string& p, size_t off) {
  std::ifstream f(p, std::ios::binary);
  std::vector<uint8_t> v((std::istreambuf_iterator<char>(f)), {});
  return std::vector<uint8_t>(v.begin() + long(off), v.end());
}

int main(int argc, char** argv) {
  const std::string kind = argv[1], dir = argv[3];
  const int epochs = std::atoi(argv[2]);
  torch::set_num_threads(2);
  torch::manual_seed(argc > 4 ? std::atoi(argv[4]) : 0);
  auto load = [&](const char* img, const char* lab) {
    auto x = slurp(dir + "/" + img, 16), y = slurp(dir + "/" + lab, 8);
    auto X = torch::from_blob(x.data(), {long(y.size()), 1, 28, 28}, torch::kUInt8).clone();
    auto Y = torch::from_blob(y.data(), {long(y.size())}, torch::kUInt8).to(torch::kLong);
    return std::make_pair(X, Y);
  };
  auto [Xtr, Ytr] = load("train-images-idx3-ubyte", "train-labels-idx1-ubyte");
  auto [Xte8, Yte] = load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");
  auto Xte = Xte8.to(torch::kFloat) / 255;
  torch::nn::Sequential net;
  if (kind == "mlp")
    net = torch::nn::Sequential(torch::nn::Flatten(), torch::nn::Linear(784, 256), torch::nn::ReLU(), torch::nn::Linear(256, 128),
                                torch::nn::ReLU(), torch::nn::Linear(128, 10));
  else if (kind == "cnn-tanh")
    net = torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 16, 5).padding(2)), torch::nn::Tanh(),
                                torch::nn::AvgPool2d(2), torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 5).padding(2)),
                                torch::nn::Tanh(), torch::nn::AvgPool2d(2), torch::nn::Flatten(), torch::nn::Linear(32 * 7 * 7, 128),
                                torch::nn::Tanh(), torch::nn::Linear(128, 10));
  else
    net = torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 16, 5).padding(2)), torch::nn::ReLU(),
                                torch::nn::MaxPool2d(2), torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 5).padding(2)),
                                torch::nn::ReLU(), torch::nn::MaxPool2d(2), torch::nn::Flatten(), torch::nn::Linear(32 * 7 * 7, 128),
                                torch::nn::ReLU(), torch::nn::Linear(128, 10));
  std::unique_ptr<torch::optim::Optimizer> optp;
  if (argc > 5 && std::string(argv[5]) == "adam")
    optp = std::make_unique<torch::optim::Adam>(net->parameters(), torch::optim::AdamOptions(0.001));
  else
    optp = std::make_unique<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  torch::optim::Optimizer& opt = *optp;
  const long N = Xtr.size(0);
  for (int ep = 1; ep <= epochs; ++ep) {
    auto perm = torch::randperm(N);
    auto t0 = std::chrono::steady_clock::now();
    net->train();
    for (long i = 0; i < N; i += 128) {
      auto j = perm.slice(0, i, std::min(N, i + 128));
      auto x = Xtr.index_select(0, j).to(torch::kFloat) / 255;
      opt.zero_grad();
      torch::nn::functional::cross_entropy(net->forward(x), Ytr.index_select(0, j)).backward();
      opt.step();
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    net->eval();
    torch::NoGradGuard ng;
    double acc = net->forward(Xte).argmax(1).eq(Yte).to(torch::kFloat).mean().item<double>();
    std::printf("libtorch-%s epoch %d %.3f test_acc %.4f\n", kind.c_str(), ep, s, acc);
    std::fflush(stdout);
  }
  torch::NoGradGuard ng;
  auto x1 = Xte.slice(0, 0, 1);
  for (int i = 0; i < 200; ++i) net->forward(x1);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 2000; ++i) net->forward(x1);
  std::printf("libtorch-%s batch1_us %.1f\n", kind.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 2000 * 1e6);
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  std::printf("libtorch-%s peak_rss_mb %.0f\n", kind.c_str(), ru.ru_maxrss / 1024.0);
}
