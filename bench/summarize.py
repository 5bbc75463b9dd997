#!/usr/bin/python3
"""Turns the outputs bench/run.sh collected into Markdown tables with ratios. usage: summarize.py OUT_DIR"""
import json, os, re, statistics, sys

d = sys.argv[1]
def read(name):
    p = os.path.join(d, name)
    return open(p).read() if os.path.exists(p) else ""
def runs(name):
    """The rounds of a run, NAME.r1, NAME.r2, ... (or NAME alone, from older runs), in order."""
    found = sorted((int(m.group(1)), f"{name}.r{m.group(1)}") for n in os.listdir(d)
                   for m in [re.fullmatch(re.escape(name) + r"\.r(\d+)\.(?:jsonl|out)", n)] if m)
    return [r for _, r in dict(found).items()] if found else [name]
def rss_mb(name):
    v = [int(m.group(1)) / 1024 for r in runs(name) for m in [re.search(r"peak_rss_kb (\d+)", read(r + ".err"))] if m]
    return max(v) if v else None
def ours(name):
    rounds = [[json.loads(l) for l in read(r + ".jsonl").splitlines() if l.strip()] for r in runs(name)]
    rounds = [x for x in rounds if x]
    if not rounds: return None
    return {"sec": statistics.median(l["seconds"] for x in rounds for l in x),
            "best": min(l["seconds"] for x in rounds for l in x),
            "accs": [x[-1]["test_accuracy"] for x in rounds if "test_accuracy" in x[-1]],
            "round_sec": [statistics.median(l["seconds"] for l in x) for x in rounds],
            "rss": rss_mb(name), "epochs": len(rounds[0]), "rounds": len(rounds),
            # the steps that ran on one thread of two (the thread governor), and all steps, per round
            "one": [sum(l.get("steps_one_thread", 0) for l in x) for x in rounds],
            "steps": [x[-1].get("steps", 0) for x in rounds]}
def one_thread(v):
    """How many of a two-thread run's steps the thread governor ran on one thread, with each round's share."""
    if not v or not any(v["one"]): return None
    return (f"{sum(v['one'])} of {sum(v['steps'])} steps ({100 * sum(v['one']) / max(sum(v['steps']), 1):.1f}%; by round "
            + ", ".join(f"{100 * a / max(b, 1):.1f}%" for a, b in zip(v["one"], v["steps"])) + ")")
def peer(name):
    texts = [read(r + ".out") for r in runs(name)]
    eps = [re.findall(r"epoch \d+ ([\d.]+)s? test_acc ([\d.]+)", t) for t in texts]
    eps = [e for e in eps if e]
    if not eps: return None
    b1 = [float(m.group(1)) for t in texts for m in [re.search(r"batch1_us ([\d.]+)", t)] if m]
    return {"sec": statistics.median(float(s) for e in eps for s, _ in e), "best": min(float(s) for e in eps for s, _ in e),
            "accs": [float(e[-1][1]) for e in eps], "round_sec": [statistics.median(float(s) for s, _ in e) for e in eps],
            "rss": rss_mb(name),
            "b1": statistics.median(b1) if b1 else None, "b1s": b1, "epochs": len(eps[0]), "rounds": len(eps)}
def scaling_pairs(task):
    """The paired scaling runs (rectifier-scaling-1t.pN, -2t.pN): per pair, the medians of epochs 2.. on 1 and 2 threads,
    and the two-thread run's steps on one thread (the thread governor) in those epochs."""
    if task != "mlp": return []
    pairs = []
    for p in range(1, 1000):
        sides = [[json.loads(l) for l in read(f"rectifier-scaling-{t}t.p{p}.jsonl").splitlines() if l.strip()] for t in (1, 2)]
        if not all(sides): break
        pairs.append(tuple(statistics.median(l["seconds"] for l in x[1:] or x) for x in sides) +
                     (sum(l.get("steps_one_thread", 0) for l in sides[1][1:]),))
    return pairs
kern = {}
if read("kernels.json"):
    for b in json.loads(read("kernels.json"))["benchmarks"]:
        kern[b["name"]] = b
def gbs(name):
    b = kern.get(name)
    return b["bytes_per_second"] / 1e9 if b else None
def f(v, fmt="%.2f"):
    return "-" if v is None else fmt % v
def acc(v):
    """The mean test accuracy over the rounds (one seed each), with each round's when there are several."""
    a = v["accs"]
    if not a: return "-"
    return f"{statistics.mean(a):.4f}" + (f" ({', '.join(f'{x:.4f}' for x in a)})" if len(a) > 1 else "")

out = []
version = read("version.txt").strip().splitlines()
if version:
    out.append(f"\n{version[0]}, on this machine: " + "; ".join(version[1:]) + ".")
titles = {"mlp": "MLP", "cnn": "CNN", "cnn-tanh": "CNN with tanh and average pooling", "mlp-adam": "MLP with Adam (lr 0.001)"}
for task in ("mlp", "cnn", "cnn-tanh", "mlp-adam"):
    r = ours(f"rectifier-{task}")
    if not r: continue
    out.append(f"\n### {titles[task]} training, {r['epochs']} epochs, 2 threads, {r['rounds']} round(s)\n")
    out.append("s/epoch: the median over every epoch of every round, and the fastest epoch (the host only ever slows a "
               "run down). Test accuracy: after the last epoch, the mean over the rounds (round r seeds every library "
               "with r - 1), each round's in brackets. Ratios against rectifier with diagnostics (the default): of the "
               "pooled medians, of the fastest epochs, and the median of the ratios within each round (each peer's run "
               "against rectifier's run of the same round, minutes apart).\n")
    out.append("| library | s/epoch (median) | fastest epoch | test accuracy | peak RSS MB | rectifier is faster by (median, fastest, within rounds) |")
    out.append("|---|---|---|---|---|---|")
    rows = [("rectifier", r), ("rectifier --no-diagnostics", ours(f"rectifier-{task}-nodiag"))] + \
           [(p, peer(f"{p}-{task}")) for p in ("dlib", "libtorch", "pytorch")]
    for name, v in rows:
        if v is None: continue
        paired = [a / b for a, b in zip(v["round_sec"], r["round_sec"])]
        ratio = "-" if name.startswith("rectifier") else (f"{f(v['sec'] / r['sec'])}x, {f(v['best'] / r['best'])}x, "
                                                          f"{f(statistics.median(paired))}x ({', '.join(f(x) for x in paired)})")
        out.append(f"| {name} | {f(v['sec'])} | {f(v['best'])} | {acc(v)} | {f(v['rss'], '%.0f')} | {ratio} |")
    gaps = [(name, 100 * (statistics.mean(r["accs"]) - statistics.mean(v["accs"]))) for name, v in rows[2:]
            if v and v["accs"] and r["accs"]]
    if gaps:
        out.append("\nAccuracy, rectifier's mean minus each peer's, in points: " +
                   ", ".join(f"{name} {g:+.2f}" for name, g in gaps) + ".")
    nd = ours(f"rectifier-{task}-nodiag")
    gov = [(label, one_thread(v)) for label, v in (("with diagnostics", r), ("without", nd))]
    if any(x for _, x in gov):
        out.append("\nrectifier's two-thread runs, steps the thread governor ran on one thread (src/thread_governor.h: "
                   "while one was the faster): " + "; ".join(f"{label} {x or 'none'}" for label, x in gov) + ".")
    if nd:
        out.append(f"\nDiagnostics cost: {f(r['sec'])} s/epoch with, {f(nd['sec'])} without: "
                   f"{f(100 * (r['sec'] / nd['sec'] - 1), '%+.1f')}%.")
    one = ours(f"rectifier-{task}-1t")
    if one:
        out.append(f"Thread scaling: {f(one['sec'])} s/epoch on 1 thread, {f(r['sec'])} on 2: {f(one['sec'] / r['sec'])}x "
                   "(the rounds' medians).")
    pairs = scaling_pairs(task)
    if pairs:
        ratios = sorted(a / b for a, b, _ in pairs)
        out.append(f"Thread scaling, paired ({len(pairs)} alternating pairs of 3-epoch runs, the median of epochs 2-3 of each): "
                   f"{f(statistics.median(ratios))}x by the median pair (pairs from {f(ratios[0])}x to {f(ratios[-1])}x; "
                   f"1 thread / 2 threads, s/epoch: " + ", ".join(f"{f(a)}/{f(b)}" + (f" ({one} steps on one)" if one else "")
                                                              for a, b, one in pairs) + ").")
def us(b): return b["real_time"] * {"ns": 1e-3, "us": 1, "ms": 1e3}[b["time_unit"]]
# rectifier's batch-1 latency: in each MLP round (rectifier-batch1.rN.json, after the peers of that round), else the
# kernel benchmarks' at the end of the run
b1_rounds, b1_model, b1_label = [], [], ""
for r in runs("rectifier-batch1"):
    t = read(r + ".json")
    for x in json.loads(t)["benchmarks"] if t else []:
        if x["name"] == "BM_MlpBatch1/real_time": b1_rounds.append(us(x)); b1_label = x.get("label", "")
        if x["name"] == "BM_MlpBatch1Model/real_time": b1_model.append(us(x))
b1 = kern.get("BM_MlpBatch1/real_time")
if b1_rounds or b1:
    out.append("\n### MLP batch-1 inference latency\n")
    if b1_rounds:
        out.append(f"The median over the MLP's rounds, each library timed in the same round (rectifier right after the "
                   f"peers); in brackets each round's figure, and the median of the ratios within the rounds.\n")
    out.append("| library | microseconds | rectifier is faster by |\n|---|---|---|")
    ours_us = statistics.median(b1_rounds) if b1_rounds else us(b1)
    out.append(f"| rectifier | {ours_us:.1f}" + (f" ({', '.join(f'{x:.1f}' for x in b1_rounds)})" if b1_rounds else "") + " | - |")
    for p in ("libtorch", "pytorch"):
        v = peer(f"{p}-mlp")
        if not (v and v["b1"]): continue
        cell = f"{v['b1'] / ours_us:.2f}x"
        if b1_rounds and len(v["b1s"]) == len(b1_rounds):
            cell += f" (within rounds {statistics.median(a / b for a, b in zip(v['b1s'], b1_rounds)):.2f}x)"
        out.append(f"| {p} | {v['b1']:.1f}" + (f" ({', '.join(f'{x:.1f}' for x in v['b1s'])})" if b1_rounds else "") + f" | {cell} |")
    if b1_model:
        out.append(f"\nrectifier: a Predictor (weights packed once, zero inputs skipped; {b1_label or 'see kernels_bench.cpp'}). "
                   f"The same model through Model::forward, as training runs it: {statistics.median(b1_model):.1f} us "
                   f"({', '.join(f'{x:.1f}' for x in b1_model)}).")
for task in ("mlp", "cnn"):
    step = [kern.get(f"BM_TrainStep/{task}_{k}/real_time") for k in ("plain", "diagnostics")]
    if all(step):
        out.append(f"\n{task.upper()} training step (batch 128): {step[0]['real_time']:.0f} us plain, {step[1]['real_time']:.0f} us "
                   f"with diagnostics ({100 * (step[1]['real_time'] / step[0]['real_time'] - 1):+.1f}%).")
# ReLU rounds (relu-R.json, torch-relu-R.out): the median of each figure over the rounds.
relu_rounds = [json.loads(read(n)) for n in sorted(os.listdir(d)) if re.fullmatch(r"relu-\d+\.json", n)]
def relu_gbs(name):
    v = [b["bytes_per_second"] / 1e9 for r in relu_rounds for b in r["benchmarks"] if b["name"] == name]
    return statistics.median(v) if v else gbs(name)
torch_runs = {}
for n in sorted(os.listdir(d)):
    if re.fullmatch(r"torch-relu-\d+\.out", n):
        for m in re.finditer(r"n (\d+) forward_gbs ([\d.]+) forward_out_gbs ([\d.]+) backward_gbs ([\d.]+)", read(n)):
            torch_runs.setdefault(int(m.group(1)), []).append(tuple(float(m.group(i)) for i in (2, 3, 4)))
torch_relu = {k: tuple(statistics.median(r[i] for r in v) for i in range(3)) for k, v in torch_runs.items()}
if kern or relu_rounds:
    rounds = f" (median of {len(relu_rounds)} interleaved rounds)" if relu_rounds else ""
    out.append(f"\n### ReLU, 2 threads: GB/s and microseconds per call{rounds}\n")
    out.append("Forward moves 8 bytes per element (read x, write y); backward 12 (read x or y, read dy, write dx), for both "
               "libraries. rectifier's training path keeps a 1-bit mask in forward and reads it in backward (8 bytes + 1 bit).\n")
    out.append("| elements | parallel copy GB/s | forward: rectifier / torch.relu / torch.relu(out=) | backward us: rectifier / torch | forward+mask, backward from mask GB/s |")
    out.append("|---|---|---|---|---|")
    for n in (1 << 14, 1 << 18, 1 << 22, 1 << 26):
        t = torch_relu.get(n, (None, None, None))
        bw = relu_gbs(f"BM_ActBackward/relu/{n}/real_time")
        ours_us = n * 12 / bw / 1e3 if bw else None
        torch_us = n * 8 / t[2] / 1e3 if t[2] else None  # the torch script counts 8 bytes for its backward
        out.append(f"| {n} | {f(relu_gbs(f'BM_Copy/{n}/real_time'), '%.1f')} | {f(relu_gbs(f'BM_ActForward/relu/{n}/real_time'), '%.1f')} / "
                   f"{f(t[0], '%.1f')} / {f(t[1], '%.1f')} | {f(ours_us, '%.1f')} / {f(torch_us, '%.1f')} | "
                   f"{f(relu_gbs(f'BM_ReluForwardMask/{n}/real_time'), '%.1f')}, {f(relu_gbs(f'BM_ReluBackwardMask/{n}/real_time'), '%.1f')} |")
print("\n".join(out))
