// dlib's DNN module (Debian libdlib-dev) on the reference tasks, for bench/run.sh.
// usage: dlib_ref mlp|cnn EPOCHS DATA_DIR(unzipped IDX files) [SEED=0]
// SEED seeds the shuffling and, through std::srand, the initial weights (dlib's layers draw theirs from std::rand()).
#include <dlib/data_io.h>
#include <dlib/dnn.h>
#include <sys/resource.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
using namespace dlib;
using mlp_net = loss_multiclass_log<fc<10, relu<fc<128, relu<fc<256, input<matrix<float>>>>>>>>;
using cnn_net = loss_multiclass_log<fc<10, relu<fc<128, max_pool<2, 2, 2, 2, relu<con<32, 5, 5, 1, 1,
                max_pool<2, 2, 2, 2, relu<con<16, 5, 5, 1, 1, input<matrix<float>>>>>>>>>>>>;

template <class Net>
void run(const char* kind, int epochs, unsigned seed, const std::vector<matrix<float>>& xtr, const std::vector<unsigned long>& ytr,
         const std::vector<matrix<float>>& xte, const std::vector<unsigned long>& yte) {
  std::srand(seed);
  Net net;
  dnn_trainer<Net> trainer(net, sgd(0, 0.9));
  trainer.set_learning_rate(0.05);
  trainer.set_mini_batch_size(128);
  trainer.set_min_learning_rate(1e-9);
  trainer.set_iterations_without_progress_threshold(1000000);
  dlib::rand rnd(seed);
  std::vector<size_t> perm(xtr.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  std::vector<matrix<float>> xb;
  std::vector<unsigned long> yb;
  for (int ep = 1; ep <= epochs; ++ep) {
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = perm.size() - 1; i > 0; --i) std::swap(perm[i], perm[rnd.get_random_64bit_number() % (i + 1)]);
    for (size_t i = 0; i < perm.size(); i += 128) {
      xb.clear();
      yb.clear();
      for (size_t j = i; j < std::min(i + 128, perm.size()); ++j) { xb.push_back(xtr[perm[j]]); yb.push_back(ytr[perm[j]]); }
      trainer.train_one_step(xb, yb);
    }
    trainer.get_net();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto pred = net(xte);
    size_t ok = 0;
    for (size_t i = 0; i < pred.size(); ++i) ok += pred[i] == yte[i];
    std::printf("dlib-%s epoch %d %.3f test_acc %.4f\n", kind, ep, s, double(ok) / pred.size());
    std::fflush(stdout);
  }
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  std::printf("dlib-%s peak_rss_mb %.0f\n", kind, ru.ru_maxrss / 1024.0);
}

int main(int argc, char** argv) {
  std::vector<matrix<unsigned char>> tri, tei;
  std::vector<unsigned long> trl, tel;
  load_mnist_dataset(argv[3], tri, trl, tei, tel);
  auto conv = [](const std::vector<matrix<unsigned char>>& v) {
    std::vector<matrix<float>> o;
    for (auto& m : v) o.push_back(matrix_cast<float>(m) / 255.0f);
    return o;
  };
  auto xtr = conv(tri), xte = conv(tei);
  const std::string kind = argv[1];
  const unsigned seed = argc > 4 ? unsigned(std::atoi(argv[4])) : 0u;
  if (kind == "mlp") run<mlp_net>("mlp", std::atoi(argv[2]), seed, xtr, trl, xte, tel);
  else run<cnn_net>("cnn", std::atoi(argv[2]), seed, xtr, trl, xte, tel);
}
