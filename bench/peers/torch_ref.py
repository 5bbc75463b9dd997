#!/usr/bin/python3
"""PyTorch on the reference tasks, for bench/run.sh. Same task as rectifier's: Fashion-MNIST, SGD lr 0.05 momentum 0.9,
batch 128, 2 threads, cross-entropy. usage: torch_ref.py mlp|cnn|cnn-tanh EPOCHS [SEED=0] [sgd|adam]
(cnn-tanh: the CNN with tanh and 2x2 average pooling)
(adam: lr 0.001, PyTorch's other defaults)
Prints: "pytorch-KIND epoch N SECONDS test_acc ACC", then "pytorch-KIND batch1_us US" and "peak_rss_mb MB"."""
import gzip, resource, sys, time, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(2); torch.manual_seed(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
D = "/usr/share/datasets/fashion-mnist/"
def idx(name, off):
    with gzip.open(D + name) as f: return np.frombuffer(f.read(), np.uint8, offset=off)
kind, epochs = sys.argv[1], int(sys.argv[2])
Xtr = torch.tensor(idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28).copy())
Ytr = torch.tensor(idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64))
Xte = torch.tensor(idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28).copy()).float() / 255
Yte = torch.tensor(idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64))
if kind == "mlp":
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
elif kind == "cnn-tanh":
    net = nn.Sequential(nn.Conv2d(1, 16, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(16, 32, 5, padding=2), nn.Tanh(),
                        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.Tanh(), nn.Linear(128, 10))
else:
    net = nn.Sequential(nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
if len(sys.argv) > 4 and sys.argv[4] == "adam": opt = torch.optim.Adam(net.parameters(), lr=0.001)
else: opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
for ep in range(epochs):
    perm = torch.randperm(len(Xtr)); t = time.perf_counter(); net.train()
    for i in range(0, len(Xtr), 128):
        j = perm[i:i + 128]; x = Xtr[j].float() / 255  # uint8 in memory, scaled per batch, as rectifier does
        opt.zero_grad(); F.cross_entropy(net(x), Ytr[j]).backward(); opt.step()
    dt = time.perf_counter() - t
    net.eval()
    with torch.no_grad(): acc = (net(Xte).argmax(1) == Yte).float().mean().item()
    print(f"pytorch-{kind} epoch {ep + 1} {dt:.3f} test_acc {acc:.4f}", flush=True)
x1 = Xte[:1]
with torch.no_grad():
    for _ in range(200): net(x1)
    t = time.perf_counter()
    for _ in range(2000): net(x1)
print(f"pytorch-{kind} batch1_us {(time.perf_counter() - t) / 2000 * 1e6:.1f}")
print(f"pytorch-{kind} peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
