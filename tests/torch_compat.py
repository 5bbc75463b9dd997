#!/usr/bin/python3
"""A rectifier model file loads by name into the equivalent PyTorch network and gives the outputs `rectifier predict`
gives (max abs difference 1e-4). Trains an MLP and a CNN with the CLI on MNIST-format data (generated here, or a real
directory given as the second argument), then rebuilds each network in PyTorch from the source the file records,
loads the state with load_state_dict(strict=True) and compares.

usage: torch_compat.py PATH/TO/rectifier [MNIST_DIR]      exit 0 ok, 1 mismatch, 77 PyTorch not installed (skip)
"""
import json, os, struct, subprocess, sys, tempfile
try:
    import numpy as np, torch, torch.nn as nn
except ImportError:
    print("PyTorch or NumPy not installed: skipped"); sys.exit(77)

R = sys.argv[1]
tmp = tempfile.mkdtemp()


def write_idx(d):
    rng = np.random.default_rng(0)
    for split, n in (("train", 512), ("t10k", 200)):
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        # Class-dependent blobs so training has something to learn.
        imgs = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, l in enumerate(labels):
            imgs[i, 2 * l:2 * l + 8, 4:24] = 200
        open(f"{d}/{split}-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, n, 28, 28) + imgs.tobytes())
        open(f"{d}/{split}-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, n) + labels.tobytes())


def read_idx_images(d):
    import gzip
    for name in ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            b = (gzip.open if p.endswith(".gz") else open)(p, "rb").read()
            n, h, w = struct.unpack(">III", b[4:16])
            return np.frombuffer(b, np.uint8, offset=16).reshape(n, 1, h, w)
    raise SystemExit(f"no t10k images in {d}")


def load_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    meta = header.pop("__metadata__")
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    state = {}
    for name, t in header.items():
        s, e = t["data_offsets"]
        a = np.frombuffer(b[8 + n + s:8 + n + e], dtypes[t["dtype"]]).reshape(t["shape"])
        state[name] = torch.from_numpy(a.copy())
    return meta, state


data_dir = sys.argv[2] if len(sys.argv) > 2 else None
if data_dir is None:
    data_dir = os.path.join(tmp, "idx"); os.makedirs(data_dir); write_idx(data_dir)
worst = 0.0
for arch, extra in (("mlp", []), ("cnn", []), ("conv(8,3,stride=2,pad=1) batchnorm relu avgpool(2) conv(8,3,pad=1) leaky_relu(0.1) "
                                             "gap flatten dense(16) prelu dropout(0.2) dense(10)", [])):
    model = os.path.join(tmp, "m.safetensors"); out = os.path.join(tmp, "p.npy")
    subprocess.run([R, "train", "--data", f"mnist:{data_dir}", "--arch", arch, "--epochs", "1", "--out", model, "-q"] + extra,
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([R, "predict", "--model", model, "--data", f"mnist:{data_dir}", "--out", out], check=True,
                   stdout=subprocess.DEVNULL)
    meta, state = load_safetensors(model)
    net = eval(meta["pytorch"], {"nn": nn})
    net.load_state_dict(state, strict=True)  # by name: every tensor present, no extra ones
    net.eval()
    x = torch.from_numpy(read_idx_images(data_dir).astype(np.float32)) * float(meta["input_scale"])
    if isinstance(net[0], nn.Linear):
        x = x.reshape(x.shape[0], -1)
    with torch.no_grad():
        y = net(x).numpy()
    ours = np.load(out)
    diff = float(np.abs(y - ours).max())
    worst = max(worst, diff)
    print(f"{arch}: max abs difference {diff:.3g} over {ours.shape}")
    if ours.shape != y.shape or diff > 1e-4:
        sys.exit(1)
print(f"PyTorch loads every model by name; worst max abs difference {worst:.3g}")
