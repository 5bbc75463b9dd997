#!/usr/bin/python3
"""torch.relu forward and backward from 16K to 64M floats on 2 threads, for bench/run.sh. Prints GB/s counting 8 bytes
per element (read + write), as kernels_bench does. Two forward figures: torch.relu (allocates its output, as users
call it) and torch.relu with out= (no allocation); backward is threshold_backward, what autograd calls."""
import time, torch
torch.set_num_threads(2)
for n in (1 << 14, 1 << 18, 1 << 22, 1 << 26):
    x = torch.randn(n); dy = torch.randn(n); out = torch.empty(n)
    reps = max(3, int(2e8 // n))
    def rate(f):
        f()
        t = time.perf_counter()
        for _ in range(reps): f()
        return n * 8 * reps / (time.perf_counter() - t) / 1e9
    fwd = rate(lambda: torch.relu(x))
    fwd_out = rate(lambda: torch.clamp_min(x, 0, out=out))
    y = torch.relu(x)
    bwd = rate(lambda: torch.ops.aten.threshold_backward(dy, y, 0))
    print(f"torch-relu n {n} forward_gbs {fwd:.2f} forward_out_gbs {fwd_out:.2f} backward_gbs {bwd:.2f}", flush=True)
