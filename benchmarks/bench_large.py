"""Larger-than-memory denoising benchmark (issue #3): a synthetic uint16 stack on disk -> zarr.

Generates a ZYX uint16 zarr stack of ``--size-gb`` lazily (chunk by chunk, never in memory),
denoises it to another zarr store with ``napari_bsdenoise.denoise(..., out=...)`` and reports:

* wall time, megapixels/s, peak RSS of the process during denoising (sampled every 0.1 s);
* the share of wall time spent outside the network's forward passes (reading, normalising,
  cropping, writing, scheduling): ``1 - sum(forward time) / (wall * workers)``.

The network's weights are random (throughput does not depend on them); ``--network`` picks the
architecture: ``tiny`` (the CPU default of ``train``), ``small`` (the GPU default), or ``minimal``, a
single centre-masked 3x3 convolution that costs almost nothing, so that an 8 GB run on two cores
measures the streaming machinery itself (a real network would take hours).  ``--cold`` drops the OS
page cache first (root) so runs of different sizes read from disk alike.

    OMP_NUM_THREADS=1 python benchmarks/bench_large.py --size-gb 1 --side 4096 --network minimal --tile 1024 --cold
    OMP_NUM_THREADS=1 python benchmarks/bench_large.py --size-gb 8 --side 4096 --network minimal --tile 1024 --cold
    OMP_NUM_THREADS=1 python benchmarks/bench_large.py --size-gb 0.016 --network tiny --memory 600MB --cold

Results are appended to ``benchmarks/results/large.csv``.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def _minimal_network():
    """A 1-pixel blind-spot network reduced to one centre-masked 3x3 convolution (a learned
    neighbour average).  The smallest AT-BSN still runs at only ~0.7 Mpx/s per core, i.e. hours for
    8 GB on two cores; this one costs almost nothing, so a run measures the streaming machinery
    (reading, halos, normalising, blending, writing, scheduling) and its memory, which is what must
    not grow with the stack."""
    import torch
    from torch import nn

    class MinimalBSN(nn.Module):
        multiple = 1

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            mask = torch.ones(1, 1, 3, 3)
            mask[..., 1, 1] = 0  # the blind spot
            self.register_buffer("mask", mask)

        def receptive_radius(self, blind_spot):
            return 1

        def forward(self, x, blind_spot=1):
            return nn.functional.conv2d(x, self.conv.weight * self.mask, self.conv.bias, padding=1)

    return MinimalBSN().eval()


def make_model(network: str):
    from napari_bsdenoise import BlindSpotModel
    from napari_bsdenoise.config import NETWORK_PRESETS, ModelConfig, NetworkConfig, Normalization

    import torch

    torch.manual_seed(0)
    preset = NETWORK_PRESETS["tiny" if network == "minimal" else network]
    cfg = ModelConfig(network=NetworkConfig(method="atbsn", in_channels=1, out_channels=1, **preset),
                      normalization=Normalization([1000.0], [100.0]), axes="ZYX")
    model = BlindSpotModel(cfg)
    if network == "minimal":
        # the threaded scheduler takes the network object itself (tiling caches it in-process); the
        # saved payload would rebuild 'tiny', so this network is for scheduler="threads" only
        model = BlindSpotModel(cfg, network=_minimal_network())
    return model


def _plane(block, block_info=None):
    """A smooth pattern plus Poisson-like noise, deterministic per chunk."""
    loc = block_info[None]["array-location"]
    z0 = loc[0][0]
    yy, xx = np.meshgrid(np.arange(*loc[1]), np.arange(*loc[2]), indexing="ij")
    rng = np.random.default_rng(z0 * 1_000_003 + loc[1][0] * 1009 + loc[2][0])
    base = 1000 + 400 * np.sin(yy / 37.0 + z0 / 5.0) * np.cos(xx / 53.0)
    noisy = base + rng.normal(0, 1, base.shape) * np.sqrt(base) * 3
    return np.clip(noisy, 0, 65535).astype(np.uint16)[None]


def make_stack(path: Path, size_gb: float, side: int) -> tuple[int, int, int]:
    import dask.array as da

    n_z = max(1, round(size_gb * 2**30 / (side * side * 2)))
    shape = (n_z, side, side)
    if path.exists():
        import zarr

        z = zarr.open_array(str(path), mode="r")
        if z.shape == shape and z.attrs.get("complete"):
            return shape
        shutil.rmtree(path)
    x = da.zeros(shape, chunks=(1, side, side), dtype=np.uint16).map_blocks(_plane, dtype=np.uint16)
    x.to_zarr(str(path), overwrite=True)  # chunk by chunk
    import zarr

    z = zarr.open_array(str(path), mode="r+")
    z.attrs.update({"axes": "ZYX", "complete": True})
    return shape


class RSSSampler(threading.Thread):
    def __init__(self, period=0.1):
        super().__init__(daemon=True)
        import psutil

        self.proc, self.period, self.peak, self.stop_flag = psutil.Process(), period, 0, False

    def run(self):
        while not self.stop_flag:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.period)


class ForwardTimer:
    """Wraps ModelRef.network so every forward pass is timed (thread-safe sum)."""

    def __init__(self):
        self.total, self.lock = 0.0, threading.Lock()

    def install(self):
        from napari_bsdenoise.engine import tiling

        real = tiling.ModelRef.network
        timer = self

        class Timed:
            def __init__(self, net):
                self.net, self.multiple = net, net.multiple

            def receptive_radius(self, s):
                return self.net.receptive_radius(s)

            def to(self, d):
                return self

            def eval(self):
                return self

            def __call__(self, x, s):
                t = time.perf_counter()
                y = self.net(x, s)
                with timer.lock:
                    timer.total += time.perf_counter() - t
                return y

        tiling.ModelRef.network = lambda self, dev: Timed(real(self, dev))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-gb", type=float, default=1.0)
    p.add_argument("--side", type=int, default=1024, help="Y = X of each plane")
    p.add_argument("--network", default="tiny", choices=["minimal", "tiny", "small", "paper"])
    p.add_argument("--memory", default=None, help="activation memory per running chunk (e.g. 600MB)")
    p.add_argument("--tile", type=int, default=None)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "input"],
                   help="output dtype: float32, or the input's (uint16, rounded)")
    p.add_argument("--workdir", default=os.environ.get("BSD_BENCH_DIR", "/tmp/bsd_bench"))
    p.add_argument("--keep", action="store_true", help="keep the output store")
    p.add_argument("--cold", action="store_true",
                   help="drop the OS page cache first (root, Linux) so 1 GB and 8 GB runs read from disk alike")
    args = p.parse_args(argv)

    import napari_bsdenoise as bsd
    from napari_bsdenoise.engine import tiling

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"stack_{args.size_gb:g}GB_{args.side}.zarr"
    t = time.perf_counter()
    shape = make_stack(src, args.size_gb, args.side)
    gen_s = time.perf_counter() - t
    model = make_model(args.network)
    out = work / f"out_{args.size_gb:g}GB_{args.network}.zarr"
    if out.exists():
        shutil.rmtree(out)
    if args.cold:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    timer = ForwardTimer()
    timer.install()
    rss = RSSSampler()
    rss.start()
    cpu0 = sum(rss.proc.cpu_times()[:2])
    t0 = time.perf_counter()
    last = [0.0]

    def show(e):
        if e.kind == "chunk" and time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(f"  {e.step}/{e.total} chunks, {e.elapsed:.0f} s, eta {e.eta or 0:.0f} s", flush=True)

    for event in bsd.denoise_iter(str(src), model, out=out, memory=args.memory, tile_size=args.tile,
                                  n_workers=args.workers, scheduler="threads", dtype=args.dtype):
        show(event)
    wall = time.perf_counter() - t0
    cpu = sum(rss.proc.cpu_times()[:2]) - cpu0
    rss.stop_flag = True
    rss.join()
    job = tiling.build(str(src), model, memory=args.memory, tile_size=args.tile, n_workers=args.workers)
    mpx = float(np.prod(shape)) / 1e6
    outside = 1 - timer.total / (wall * args.workers)
    on_disk = sum(f.stat().st_size for f in src.rglob("*") if f.is_file()) / 2**30
    row = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "size_gb_nominal": args.size_gb,
        "shape": "x".join(map(str, shape)),
        "input_gb_on_disk": round(on_disk, 3),
        "network": args.network,
        "out_dtype": args.dtype,
        "page_cache": "cold" if args.cold else "warm",
        # "direct": chunks read straight from the store; "graph": one dask-graph compute per chunk
        "chunk_runner": "direct" if job.direct is not None else "graph",
        "workers": args.workers,
        "omp_threads": os.environ.get("OMP_NUM_THREADS", ""),
        "tile": job.plan.tile,
        "halo": job.plan.halo,
        "chunk": job.plan.chunk,
        "generate_s": round(gen_s, 1),
        "wall_s": round(wall, 1),
        "mpx": round(mpx, 1),
        "mpx_per_s": round(mpx / wall, 4),
        "cpu_s_per_mpx": round(cpu / mpx, 3),  # robust to other jobs sharing the machine
        "peak_rss_gb": round(rss.peak / 2**30, 3),
        "outside_network_share": round(outside, 3),
    }
    print(row)
    res = HERE / "results" / "large.csv"
    res.parent.mkdir(exist_ok=True)
    rows = list(csv.DictReader(open(res))) if res.exists() else []
    fields = list(dict.fromkeys([*(rows[0].keys() if rows else []), *row]))  # old columns first
    with open(res, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows + [row])
    assert tiling.is_complete(out)
    if not args.keep:
        shutil.rmtree(out)
    return row


if __name__ == "__main__":
    main()
