#!/usr/bin/env bash
# rectifier against its peers, side by side in one run on this machine (see docs/benchmarks.md).
# usage: bench/run.sh BUILD_DIR [MLP_EPOCHS] [CNN_EPOCHS]   (make bench: 10 and 2)
#   env: PEERS="dlib libtorch pytorch" TASKS="mlp cnn cnn-tanh" KERNELS=1 MLP_ROUNDS=3 CNN_ROUNDS=3 SCALING_PAIRS=6 ADAM_ROUNDS=2
# Trains the reference MLP (784-256-128-10, ReLU, SGD lr 0.05 momentum 0.9, batch 128, 2 threads) and CNN with
# rectifier and each peer (and cnn-tanh, the CNN with tanh and 2x2 average pooling as before ReLU, with all but dlib), then prints seconds per epoch (median), final test accuracy, peak memory, batch-1 latency
# and the ratios, and runs the kernel benchmarks. Results: BUILD_DIR/bench/results.md and kernels.json.
set -euo pipefail
B=$(cd "${1:?usage: bench/run.sh BUILD_DIR [MLP_EPOCHS] [CNN_EPOCHS]}" && pwd); E_mlp=${2:-10}; E_cnn=${3:-2}
epochs() { if [ "$1" = mlp ]; then echo "$E_mlp"; else echo "$E_cnn"; fi; }
# rectifier's --arch for a task: the presets mlp and cnn, and cnn-tanh (the peers build the same network)
arch_of() {
  case $1 in
    cnn-tanh) echo "conv(16,5,pad=2) tanh avgpool(2) conv(32,5,pad=2) tanh avgpool(2) flatten dense(128) tanh dense(10)" ;;
    *) echo "$1" ;;
  esac
}
here=$(cd "$(dirname "$0")" && pwd)
out=$B/bench; mkdir -p "$out/data"
PEERS=${PEERS:-"dlib libtorch pytorch"}
TASKS=${TASKS:-"mlp cnn cnn-tanh"}
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
for f in /usr/share/datasets/fashion-mnist/*.gz; do t="$out/data/$(basename "$f" .gz)"; [ -s "$t" ] || zcat "$f" >"$t"; done
log=$out/log.txt; : >"$log"
R=$B/rectifier
# run NAME CMD...: runs a command under /usr/bin/time, keeps its output and peak RSS
run() {
  local name=$1; shift
  echo ">>> $name: $*" | tee -a "$log" >&2
  /usr/bin/time -f "peak_rss_kb %M" "$@" >"$out/$name.out" 2>"$out/$name.err" || { echo "$name failed" >&2; cat "$out/$name.err" >&2; return 1; }
  cat "$out/$name.out" "$out/$name.err" >>"$log"
}
common=(--data fashion-mnist --batch 128 --optimizer sgd --lr 0.05 --momentum 0.9 --schedule constant -q)
rm -f "$out"/*.out "$out"/*.err "$out"/*.jsonl "$out"/*.json "$out"/*.safetensors
"$R" --version >"$out/version.txt"  # the SIMD target, the OpenBLAS build and the threads this run used

# Build the peers (again when their source is newer than the binary).
for p in $PEERS; do
  case $p in
    dlib)
      # dlib gets -march=native, as the shared peer script builds it: every advantage to the peer.
      [ "$out/dlib_ref" -nt "$here/peers/dlib_ref.cpp" ] || g++ -O3 -march=native -std=c++17 "$here/peers/dlib_ref.cpp" -o "$out/dlib_ref" -ldlib -lopenblas -lpthread ;;
    libtorch)
      if [ ! "$out/libtorch_ref" -nt "$here/peers/libtorch_ref.cpp" ]; then
        mkdir -p "$out/lt" && printf 'cmake_minimum_required(VERSION 3.25)\nproject(lt CXX)\nfind_package(Torch REQUIRED)\nadd_executable(libtorch_ref %s)\ntarget_link_libraries(libtorch_ref "${TORCH_LIBRARIES}")\nset_property(TARGET libtorch_ref PROPERTY CXX_STANDARD 17)\n' "$here/peers/libtorch_ref.cpp" >"$out/lt/CMakeLists.txt"
        cmake -S "$out/lt" -B "$out/lt/build" -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build "$out/lt/build" >/dev/null
        cp "$out/lt/build/libtorch_ref" "$out/libtorch_ref"
      fi ;;
    pytorch) ;;
    *) echo "unknown peer $p" >&2; exit 2 ;;
  esac
done

# Rounds: every library once per round, one after the other, so a slow spell of the shared host falls on all of
# them rather than on one. MLP_ROUNDS (3) for the MLP, CNN_ROUNDS (3) for the CNN, dlib's CNN in the first round
# only (it takes ten times as long as the others, and no target is set against it); the summary pools the epochs,
# and also takes each peer's ratio within each round. Round r seeds every library with r - 1 (initial weights and
# shuffling), so that the accuracies compared are means over as many seeds as rounds, not one draw each.
rounds() { if [ "$1" = mlp ]; then echo "${MLP_ROUNDS:-3}"; else echo "${CNN_ROUNDS:-3}"; fi; }
for t in $TASKS; do
  E=$(epochs $t)
  for r in $(seq 1 "$(rounds $t)"); do
    seed=$((r - 1))
    # rectifier with diagnostics (the default), on 1 thread, and without diagnostics; the order turns each round
    configs=("" "-1t" "-nodiag")
    for i in 0 1 2; do
      c=${configs[$(( (i + r - 1) % 3 ))]}
      case $c in -1t) extra=(--threads 1) ;; -nodiag) extra=(--threads 2 --no-diagnostics) ;; *) extra=(--threads 2 --out "$out/rectifier-$t.r$r.safetensors") ;; esac
      run rectifier-$t$c.r$r "$R" train --arch "$(arch_of $t)" --epochs "$E" "${common[@]}" --seed $seed "${extra[@]}" --metrics "$out/rectifier-$t$c.r$r.jsonl"
    done
    for p in $PEERS; do
      case $p in
        dlib) if [ "$t" = cnn-tanh ] || { [ "$t" = cnn ] && [ "$r" -gt 1 ]; }; then continue; fi
              run dlib-$t.r$r "$out/dlib_ref" $t "$E" "$out/data" $seed ;;
        libtorch) run libtorch-$t.r$r "$out/libtorch_ref" $t "$E" "$out/data" $seed ;;
        pytorch) run pytorch-$t.r$r /usr/bin/python3 "$here/peers/torch_ref.py" $t "$E" $seed ;;
      esac
    done
    # rectifier's batch-1 latency in each MLP round, right after the peers took theirs (they time it after training,
    # on the first test image): the model rectifier trained in this round, on the same image
    if [ "$t" = mlp ]; then
      run rectifier-batch1.r$r env RECTIFIER_BENCH_MODEL="$out/rectifier-mlp.r$r.safetensors" "$B/bench/kernels_bench" \
        --benchmark_filter='^BM_MlpBatch1' --benchmark_min_time=0.5 \
        --benchmark_out="$out/rectifier-batch1.r$r.json" --benchmark_out_format=json
    fi
  done
done
# The MLP with Adam (lr 0.001, PyTorch's defaults otherwise), a common choice that leaves about half of the ReLUs
# on (SGD: 30-37%): ADAM_ROUNDS rounds of 3 epochs, rectifier and the peers that have it (libtorch, PyTorch).
case " $TASKS " in
  *" mlp "*)
    for r in $(seq 1 "${ADAM_ROUNDS:-2}"); do
      seed=$((r - 1))
      run rectifier-mlp-adam.r$r "$R" train --arch mlp --epochs 3 --data fashion-mnist --batch 128 --optimizer adam \
        --lr 0.001 --schedule constant -q --seed $seed --threads 2 --metrics "$out/rectifier-mlp-adam.r$r.jsonl"
      for p in $PEERS; do
        case $p in
          libtorch) run libtorch-mlp-adam.r$r "$out/libtorch_ref" mlp 3 "$out/data" $seed adam ;;
          pytorch) run pytorch-mlp-adam.r$r /usr/bin/python3 "$here/peers/torch_ref.py" mlp 3 $seed adam ;;
        esac
      done
    done ;;
esac
# Thread scaling, paired: short MLP runs (3 epochs) on 1 thread and on 2, alternating (which one goes first turns
# each pair), so that both sides of a pair see the host at about the same speed; the summary takes the ratio within
# each pair (epochs 2-3) and the median over the pairs, beside the ratio of the rounds' medians above.
case " $TASKS " in
  *" mlp "*)
    for p in $(seq 1 "${SCALING_PAIRS:-6}"); do
      for t in $(if [ $((p % 2)) = 1 ]; then echo 1 2; else echo 2 1; fi); do
        run rectifier-scaling-${t}t.p$p "$R" train --arch mlp --epochs 3 "${common[@]}" --seed 0 --threads $t --metrics "$out/rectifier-scaling-${t}t.p$p.jsonl"
      done
    done ;;
esac
if [ "${KERNELS:-1}" = 1 ]; then
  # ReLU against torch.relu in three interleaved rounds (the shared host's speed drifts): the summary takes medians.
  for r in 1 2 3; do
    case " $PEERS " in *" pytorch "*) run torch-relu-$r /usr/bin/python3 "$here/peers/torch_relu.py" ;; esac
    "$B/bench/kernels_bench" --benchmark_filter='^BM_(Copy|ActForward/relu/|ActBackward/relu/|ReluForwardMask|ReluBackwardMask)' \
      --benchmark_min_time=0.2 --benchmark_out="$out/relu-$r.json" --benchmark_out_format=json >>"$log"
  done
  "$B/bench/kernels_bench" --benchmark_min_time=0.2 --benchmark_out="$out/kernels.json" --benchmark_out_format=json | tee -a "$log"
fi
/usr/bin/python3 "$here/summarize.py" "$out" | tee "$out/results.md"
