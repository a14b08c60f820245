"""Roofline of inference (issue #16): how far the networks run from this CPU's own matmul throughput.

    python benchmarks/bench_roofline.py --threads 1 2 --out benchmarks/results/roofline.csv
    python benchmarks/bench_roofline.py --table benchmarks/results/roofline.csv

In one run: the machine's fp32 and bf16 matmul GFLOP/s (torch, the best of 512, 1024 and 2048 square
matrices: the limit), then for each
network (AT-BSN teacher tiny and small at blind spot 3, the tiny and small students as they train, and
the inference forms that ``denoise`` runs, ``nn.fast_unet`` and ``nn.fast_atbsn``, in fp32 and bf16) the FLOPs per
pixel counted from the convolutions (2 x multiply-adds; pooling, activations and upsampling not
counted) and the achieved GFLOP/s of one inference pass on 512x512 and 2048x2048 inputs
(``torch.no_grad``, channels_last, the best of ``--repeats``), with the ratio to the same-dtype matmul
limit.  ``layer`` rows: the same per convolution layer of the tiny teacher, its inference form and the tiny
student's inference form on 512x512 (time from forward hooks), which shows what bounds them.  ``--networks``
measures a subset (e.g. only the students' inference form).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from _threads import limit_threads

FIELDS = ["threads", "kind", "name", "size", "dtype", "gflop_per_pass", "flop_per_pixel", "seconds", "gflops",
          "fraction_of_matmul", "detail"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--networks", nargs="+", default=None, help="names of networks() to measure (default all)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/roofline.csv"))
    p.add_argument("--table", type=Path, default=None)
    return p.parse_args(argv)


def conv_flops(net, x, *call):
    """FLOPs (2 x MACs) of the Conv2d layers in one ``net(x, *call)`` pass, and per layer."""
    import torch

    per_layer = []

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        per_layer.append((mod, 2 * k * out.numel()))

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            net(x, *call)
    finally:
        for h in handles:
            h.remove()
    return sum(f for _, f in per_layer), per_layer


def best_time(fn, repeats, warmup: bool = True):
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_limit(dtype, repeats, sizes=(512, 1024, 2048)):
    """The best GFLOP/s of torch's square matmul over ``sizes`` (preallocated output, best of
    ``3 * repeats`` calls after a warm-up): the machine's own limit for this dtype and thread count."""
    import torch

    best = 0.0
    for n in sizes:
        a, b, c = (torch.randn(n, n, dtype=dtype) for _ in range(3))
        t = best_time(lambda: torch.mm(a, b, out=c), 3 * repeats)
        best = max(best, 2 * n**3 / t / 1e9)
    return best


def networks():
    """name -> (network, forward arguments, dtype name); modules as they train run fp32 channels_last."""
    import torch

    from napari_bsdenoise.nn.atbsn import ATBSN
    from napari_bsdenoise.nn.fast_unet import inference_form
    from napari_bsdenoise.nn.student import StudentUNet

    def trained_form(net):
        return net.eval().to(memory_format=torch.channels_last)

    tiny, small = StudentUNet(1, 1, width=16, depth=3).eval(), StudentUNet(1, 1, width=32, depth=4).eval()
    t_tiny, t_small = ATBSN(1, 1, width=16, depth=3).eval(), ATBSN(1, 1, width=32, depth=4).eval()
    return {"teacher_tiny": (trained_form(t_tiny), (3,), "fp32"),
            "teacher_small": (trained_form(t_small), (3,), "fp32"),
            "teacher_tiny_fast": (inference_form(t_tiny, "fp32"), (3,), "fp32"),
            "teacher_small_fast": (inference_form(t_small, "fp32"), (3,), "fp32"),
            "teacher_tiny_fast_bf16": (inference_form(t_tiny, "bf16"), (3,), "bf16"),
            "teacher_small_fast_bf16": (inference_form(t_small, "bf16"), (3,), "bf16"),
            "student_tiny": (trained_form(tiny), (0,), "fp32"),
            "student_small": (trained_form(small), (0,), "fp32"),
            "student_tiny_fast": (inference_form(tiny, "fp32"), (0,), "fp32"),
            "student_small_fast": (inference_form(small, "fp32"), (0,), "fp32"),
            "student_tiny_fast_bf16": (inference_form(tiny, "bf16"), (0,), "bf16"),
            "student_small_fast_bf16": (inference_form(small, "bf16"), (0,), "bf16")}


LAYER_NETWORKS = ("teacher_tiny", "teacher_tiny_fast", "student_tiny_fast")
#: The teacher's inference form computes two extra rows per convolution (cut off after it, nn/fast_atbsn.py):
#: its useful FLOPs are the trained form's, so a pass's GFLOP/s is counted from that.
FLOP_REFERENCE = {"teacher_tiny_fast": "teacher_tiny", "teacher_small_fast": "teacher_small",
                  "teacher_tiny_fast_bf16": "teacher_tiny", "teacher_small_fast_bf16": "teacher_small"}


def layer_rows(threads: int, name: str, net, call, limit: dict) -> list[dict]:
    """Per convolution of ``net`` on 512x512: FLOPs, time (forward hooks), GFLOP/s, fraction of the
    matmul limit, and the time outside the convolutions."""
    import torch

    x = torch.randn(1, 1, 512, 512).contiguous(memory_format=torch.channels_last)
    _, per_layer = conv_flops(net, x, *call)
    flops_of: dict = {}
    for m, f in per_layer:  # summed: the teacher's inference form calls each layer once per rotation
        flops_of[id(m)] = flops_of.get(id(m), 0) + f
    spent: dict = {}

    def pre(mod, inp):
        mod._t0 = time.perf_counter()

    def post(mod, inp, out):
        spent[id(mod)] = spent.get(id(mod), 0.0) + time.perf_counter() - mod._t0

    convs = [(n, m) for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    handles = [h for _, m in convs for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    with torch.no_grad():
        net(x, *call)
        spent.clear()
        t0 = time.perf_counter()
        net(x, *call)
        total = time.perf_counter() - t0
    for h in handles:
        h.remove()
    rows = []
    for lname, m in convs:
        f, t = flops_of.get(id(m), 0), spent.get(id(m), 0.0)
        dtype = "bf16" if m.weight.dtype == torch.bfloat16 else "fp32"
        rows.append({"threads": threads, "kind": "layer", "name": f"{name}: {lname}", "size": 512, "dtype": dtype,
                     "gflop_per_pass": round(f / 1e9, 4), "seconds": round(t, 4),
                     "gflops": round(f / t / 1e9, 2) if t else "",
                     "fraction_of_matmul": round(f / t / 1e9 / limit[dtype], 3) if t else "",
                     "detail": f"{m.in_channels}->{m.out_channels} k{m.kernel_size[0]}"})
    rows.append({"threads": threads, "kind": "layer", "name": f"{name}: (outside the convolutions)", "size": 512,
                 "dtype": "", "seconds": round(total - sum(spent.values()), 4),
                 "detail": "padding, rotations, pooling, upsampling, concatenation, activations"})
    return rows


def run(args) -> None:
    import torch

    from results import append_rows

    for threads in args.threads:
        torch.set_num_threads(threads)
        limit = {}
        for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            limit[name] = matmul_limit(dtype, args.repeats)
            append_rows(args.out, FIELDS, [{"threads": threads, "kind": "matmul", "name": "matmul (best of 512-2048)", "size": "",
                                            "dtype": name, "gflops": round(limit[name], 2)}])
        every = networks()
        nets = {k: v for k, v in every.items() if args.networks is None or k in args.networks}
        for size in args.sizes:
            for name, (net, call, dtype) in nets.items():
                x = torch.randn(1, 1, size, size).contiguous(memory_format=torch.channels_last)
                # convolution FLOPs scale with the pixels (sizes are multiples of the pooling factor):
                # counted on 256x256, so a 2048x2048 pass runs once, timed, with no warm-up
                small = torch.randn(1, 1, 256, 256).contiguous(memory_format=torch.channels_last)
                flop_net = every[FLOP_REFERENCE.get(name, name)][0]
                flops = conv_flops(flop_net, small, *call)[0] * (size / 256) ** 2
                with torch.no_grad():
                    t = best_time(lambda: net(x, *call), args.repeats, warmup=True) if size <= 512 else \
                        best_time(lambda: net(x, *call), 1, warmup=False)
                g = flops / t / 1e9
                row = {"threads": threads, "kind": "network", "name": name, "size": size, "dtype": dtype,
                       "gflop_per_pass": round(flops / 1e9, 3), "flop_per_pixel": round(flops / size**2),
                       "seconds": round(t, 3), "gflops": round(g, 2),
                       "fraction_of_matmul": round(g / limit[dtype], 3),
                       "detail": f"{size * size / t / 1e6:.3f} MP/s"}
                append_rows(args.out, FIELDS, [row])  # (row by row: a 2048^2 teacher pass takes minutes)
                print(row, flush=True)
        for name in LAYER_NETWORKS:
            if name in nets:
                net, call, _ = nets[name]
                rows = layer_rows(threads, name, net, call, limit)
                append_rows(args.out, FIELDS, rows)
                for r in rows:
                    print(r, flush=True)


def table(path: Path) -> str:
    rows = list(csv.DictReader(open(path)))
    out = ["| threads | what | size | GFLOP/pass | FLOP/pixel | s | GFLOP/s | of matmul | note |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] == "layer":
            continue
        out.append(f"| {r['threads']} | {r['name']} ({r['dtype']}) | {r['size']} | {r['gflop_per_pass']} | "
                   f"{r['flop_per_pixel']} | {r['seconds']} | {r['gflops']} | {r['fraction_of_matmul']} | "
                   f"{r['detail']} |")
    layers = [r for r in rows if r["kind"] == "layer"]
    if layers:
        out += ["", "| threads | layer (512^2) | channels | GFLOP | s | GFLOP/s | of matmul |",
                "|---|---|---|---|---|---|---|"]
        for r in layers:
            out.append(f"| {r['threads']} | {r['name']} | {r['detail']} | {r['gflop_per_pass']} | {r['seconds']} | "
                       f"{r['gflops']} | {r['fraction_of_matmul']} |")
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.table is not None:
        print(table(args.table))
        return 0
    limit_threads(max(args.threads))
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
