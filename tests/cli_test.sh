#!/usr/bin/env bash
# End-to-end tests of the `rectifier` command on synthetic and small generated data.
# usage: cli_test.sh PATH/TO/rectifier
set -uo pipefail
R=${1:?usage: cli_test.sh RECTIFIER}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect CODE PATTERN -- command...: exit code and a stderr line matching PATTERN (one line only)
expect() {
  local code=$1 pat=$2; shift 3
  "$@" >"$T/out" 2>"$T/err"; local got=$?
  if [ "$got" != "$code" ]; then bad "exit $got (want $code): $*"; sed 's/^/  | /' "$T/err" | head -5; return; fi
  if [ -n "$pat" ] && ! grep -q -- "$pat" "$T/err"; then bad "stderr lacks '$pat': $*"; sed 's/^/  | /' "$T/err" | head -5; return; fi
  if [ "$code" != 0 ] && [ "$(wc -l <"$T/err")" != 1 ]; then bad "error is not one line: $*"; cat "$T/err"; return; fi
  ok
}

# --- --version: the version, then the SIMD target and the matrix-product library in use
expect 0 "" -- "$R" --version
grep -q '^rectifier [0-9]' "$T/out" && grep -q '^SIMD kernels: [A-Z0-9_]' "$T/out" && grep -q '^matrix products: OpenBLAS' "$T/out" \
  && ok || bad "--version: $(cat "$T/out")"
OMP_NUM_THREADS=1 "$R" --version | grep -q '^threads: 1 ' && ok || bad "--version does not show OMP_NUM_THREADS=1"

# --- train, eval, predict, info, diagnose, report on synthetic data
expect 0 "" -- "$R" train --data spirals --epochs 20 --lr 0.1 --out "$T/m.safetensors" --metrics "$T/m.jsonl" --report "$T/r.html" -q
[ "$(wc -l <"$T/m.jsonl")" = 20 ] && ok || bad "metrics has $(wc -l <"$T/m.jsonl") lines, want 20"
python3 - "$T/m.jsonl" <<'PY' && ok || bad "metrics lines lack fields"
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    for k in ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds", "lr", "diagnostics", "threads"):
        assert k in j, k
assert j["test_accuracy"] > 0.9, j["test_accuracy"]
PY
# --- the thread governor: its one-thread steps counted per epoch with two threads; none with --fixed-threads,
# --deterministic (every thread at every step) or one thread
for flags in "" "--fixed-threads" "--deterministic"; do
  expect 0 "" -- "$R" train --data spirals:4000 --epochs 3 --threads 2 $flags --metrics "$T/g.jsonl" -q
  python3 - "$T/g.jsonl" "$flags" <<'PY' && ok || bad "steps_one_thread with --threads 2 $flags"
import json, sys
ls = [json.loads(l) for l in open(sys.argv[1])]
assert all(l["threads"] == 2 and "steps_one_thread" in l for l in ls), ls[0]
one = sum(l["steps_one_thread"] for l in ls)
# spirals:4000 at batch 128: 32 steps an epoch, the first trial after 32 (4 steps on one thread at least)
assert (one == 0) if sys.argv[2] else (one >= 4), (sys.argv[2], one)
PY
done
expect 0 "" -- "$R" train --data spirals --epochs 2 --threads 1 --metrics "$T/g.jsonl" -q
python3 -c "import json; ls=[json.loads(l) for l in open('$T/g.jsonl')]; assert all(l['threads']==1 and 'steps_one_thread' not in l for l in ls)" \
  && ok || bad "one thread: metrics name threads 1 and no steps_one_thread"
expect 0 "" -- "$R" eval --model "$T/m.safetensors" --data spirals --json
python3 -c "import json,sys; j=json.loads(open('$T/out').read()); assert set(j)=={'loss','accuracy','n'} and j['n']==1000 and j['accuracy']>0.9, j" && ok || bad "eval --json: $(cat "$T/out")"
expect 0 "" -- "$R" predict --model "$T/m.safetensors" --data spirals --out "$T/p.npy"
python3 -c "
import struct
b = open('$T/p.npy','rb').read(); assert b[:6] == b'\x93NUMPY'
h = int.from_bytes(b[8:10], 'little'); hdr = b[10:10+h].decode()
assert \"'shape': (1000, 2)\" in hdr, hdr; assert len(b) == 10 + h + 1000*2*4
" && ok || bad "predict .npy"
expect 0 "" -- "$R" info "$T/m.safetensors"
grep -q "nn.Sequential(nn.Linear(2, 64), nn.ReLU()" "$T/out" && grep -q "total parameters: 4482" "$T/out" && ok || bad "info: $(cat "$T/out")"
expect 0 "" -- "$R" diagnose --model "$T/m.safetensors" --data spirals
grep -q "dead" "$T/out" && ok || bad "diagnose table"
expect 0 "" -- "$R" report "$T/m.jsonl" --out "$T/r2.html"
grep -q "<svg" "$T/r2.html" && grep -q "Dead units" "$T/r.html" && ok || bad "report html"

# --- same seed, one thread: bit-identical model files; another seed differs
"$R" train --data moons --epochs 3 --seed 3 --threads 1 --out "$T/a.safetensors" -q >/dev/null
"$R" train --data moons --epochs 3 --seed 3 --threads 1 --out "$T/b.safetensors" -q >/dev/null
"$R" train --data moons --epochs 3 --seed 4 --threads 1 --out "$T/c.safetensors" -q >/dev/null
cmp -s "$T/a.safetensors" "$T/b.safetensors" && ok || bad "same seed gave different files"
cmp -s "$T/a.safetensors" "$T/c.safetensors" && bad "different seeds gave identical files" || ok
# two threads with --deterministic (products wide enough to be split between the threads): bit-identical too
for f in d e; do
  "$R" train --data moons:2000 --arch 2-512-512-2 --epochs 2 --seed 3 --threads 2 --deterministic --out "$T/$f.safetensors" -q >/dev/null
done
cmp -s "$T/d.safetensors" "$T/e.safetensors" && ok || bad "--deterministic with two threads gave different files"

# --- every option of the core issue is accepted and trains
expect 0 "" -- "$R" train --data xor --epochs 2 --act leaky_relu --init xavier_uniform --bias-init -0.1 --weight-decay 1e-4 \
  --clip-norm 1 --schedule step --step-epochs 1 --gamma 0.5 --warmup 1 --dropout 0.1 --optimizer sgd --nesterov -q
for opt in adam adamw rmsprop; do expect 0 "" -- "$R" train --data xor --epochs 2 --optimizer $opt --lr 0.01 -q; done
expect 0 "" -- "$R" train --data xor --epochs 2 --loss mse -q
expect 0 "" -- "$R" train --data xor --epochs 2 --loss bce --arch 2-16-1 -q
expect 0 "" -- "$R" train --data moons --epochs 2 --arch "dense(16) prelu batchnorm dense(16) selu dense(2)" --init lecun -q

# --- plots: every activation, well-formed SVG
for a in relu leaky_relu elu selu gelu silu relu6 softplus mish sigmoid tanh identity; do
  expect 0 "" -- "$R" plot $a --range -5:10 --out "$T/$a.svg"
  xmllint --noout "$T/$a.svg" 2>/dev/null && ok || bad "$a.svg is not well-formed XML"
done
expect 0 "" -- "$R" plot relu sigmoid tanh --out "$T/three.svg"
[ "$(grep -c '<path' "$T/three.svg")" = 6 ] && ok || bad "three activations and derivatives: $(grep -c '<path' "$T/three.svg") paths"

# --- bad input: exit 2, one line naming the file and what is wrong
mkdir -p "$T/idx"
python3 - "$T/idx" <<'PY'
import struct, sys, os
d = sys.argv[1]
def images(n): return struct.pack(">IIII", 0x803, n, 28, 28) + bytes(range(256)) * (n * 784 // 256) + bytes(n * 784 % 256)
def labels(n): return struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))
open(f"{d}/train-images-idx3-ubyte", "wb").write(images(30))
open(f"{d}/train-labels-idx1-ubyte", "wb").write(labels(30))
open(f"{d}/t10k-images-idx3-ubyte", "wb").write(images(10))
open(f"{d}/t10k-labels-idx1-ubyte", "wb").write(labels(10))
for name, f in {"trunc": images(30)[:-100], "magic": struct.pack(">I", 0x802) + images(30)[4:]}.items():
    os.makedirs(f"{d}/{name}", exist_ok=True)
    for k in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        os.link(f"{d}/{k}", f"{d}/{name}/{k}")
    open(f"{d}/{name}/train-images-idx3-ubyte", "wb").write(f)
os.makedirs(f"{d}/count", exist_ok=True)
open(f"{d}/count/train-images-idx3-ubyte", "wb").write(images(30))
open(f"{d}/count/train-labels-idx1-ubyte", "wb").write(labels(29))
PY
expect 0 "" -- "$R" train --data "mnist:$T/idx" --epochs 1 -q
expect 2 "$T/idx/trunc/train-images-idx3-ubyte: truncated" -- "$R" train --data "mnist:$T/idx/trunc" -q
expect 2 "$T/idx/magic/train-images-idx3-ubyte: byte 0: wrong magic number" -- "$R" train --data "mnist:$T/idx/magic" -q
expect 2 "$T/idx/count/train-labels-idx1-ubyte: 29 labels" -- "$R" train --data "mnist:$T/idx/count" -q
printf '0,1,2\n1,2\n' >"$T/w.csv"
expect 2 "$T/w.csv: line 2: 2 columns" -- "$R" train --data "csv:$T/w.csv" -q
expect 2 "unknown activation 'relux'" -- "$R" train --data xor --act relux -q
expect 2 "unknown value 'sgdd'" -- "$R" train --data xor --optimizer sgdd -q
expect 2 "input width 784 does not match the data's 2 inputs" -- "$R" train --data xor --arch 784-10 -q
expect 2 "at position 11: expected ',' or ')'" -- "$R" train --data fashion-mnist --arch "conv(16,5 relu" -q
expect 2 "no such file" -- "$R" eval --model "$T/none.safetensors" --data xor
head -c 100 "$T/m.safetensors" >"$T/trunc.safetensors"
expect 2 "$T/trunc.safetensors: byte 0: header length" -- "$R" eval --model "$T/trunc.safetensors" --data spirals
python3 -c "b=bytearray(open('$T/m.safetensors','rb').read()); b[8]=ord('x'); open('$T/corrupt.safetensors','wb').write(b)"
expect 2 "$T/corrupt.safetensors: byte 8: the header is not valid JSON" -- "$R" predict --model "$T/corrupt.safetensors" --data spirals --out "$T/x.npy"
expect 2 "the model takes inputs of shape \[2\] but" -- "$R" eval --model "$T/m.safetensors" --data "mnist:$T/idx"
# A failed save leaves the existing file untouched.
cp "$T/m.safetensors" "$T/keep.safetensors"
expect 2 "$T/nodir/x.safetensors" -- "$R" train --data xor --epochs 1 --out "$T/nodir/x.safetensors" -q
mkdir -p "$T/isdir.safetensors/sub"
expect 2 "unchanged" -- "$R" train --data xor --epochs 1 --out "$T/isdir.safetensors" -q
cmp -s "$T/m.safetensors" "$T/keep.safetensors" && ok || bad "model file changed"
ls -a "$T" | grep -q '\.tmp\.' && bad "a temporary file was left behind" || ok

# --- non-finite values stop training with exit code 3, naming the layer; the last good weights are saved
expect 3 "non-finite value at step" -- "$R" train --data spirals --epochs 5 --lr 1e30 --out "$T/nan.safetensors" -q
grep -q "layer" "$T/err" && ok || bad "NaN message does not name the layer: $(cat "$T/err")"
expect 0 "" -- "$R" eval --model "$T/nan.safetensors" --data spirals

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
