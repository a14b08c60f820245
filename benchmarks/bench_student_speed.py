"""Student inference speed (issue #16): this code against an earlier commit, bf16 against fp32, and
careamics' N2V prediction, measured in one run on the same machine.

    python benchmarks/bench_student_speed.py --baseline d535304 --out benchmarks/results/student_speed.csv
    python benchmarks/bench_student_speed.py --table benchmarks/results/student_speed.csv

1. **Trained students** (``quality`` rows): on the first ``--limit`` image(s) of each ``--groups`` group,
   an AT-BSN teacher (``bsd.train``, ``--teacher-seconds``) is distilled into a tiny student
   (``bsd.distill``, ``--distill-seconds``) and saved.  Each student denoises its image with this code
   in fp32 and in bf16 and with the ``--baseline`` commit's code in fp32, without the safety check
   (``check=False``: the network's own output, also where the check would keep the input); the rows give
   the PSNR (scale-invariant for W2S) and its difference to the baseline, which says whether a speed-up
   kept the result (the issue asks for +-0.05 dB).
2. **End-to-end throughput** (``denoise`` rows): ``bsd.denoise(image, student)`` with its defaults
   (the safety check included) on a ``--sizes`` square grey image (the FMD image tiled with mirroring)
   with ``--threads`` torch threads, for the baseline (fp32), this code (fp32) and this code (bf16):
   the best of ``--repeats`` calls after one warm-up call, in megapixels per second; and the same for
   the AT-BSN teacher it was distilled from (baseline fp32, this code fp32 and bf16; ``--skip teacher``
   leaves it out), which the student replaces.
3. **careamics N2V** (``careamics`` rows) at the same sizes and threads: ``CAREamist.predict`` tiled as
   ``benchmarks/n2v_peer.py`` predicts large images (256x256 tiles, careamics' default 48 pixel
   overlap) and untiled, for careamics' default UNet (depth 2, 32 initial channels, 334 k parameters)
   and the same UNet with 16 initial channels (84 k, the size of the tiny student's 70 k).  Its weights
   come from a few training steps: the throughput does not depend on them.
4. **Network forward** (``forward`` rows): one pass of the bare networks on a ``--forward-size`` square
   (no tiling, no normalisation): the tiny student as it trains (``StudentUNet``), its inference form
   (``nn.fast_unet``) in fp32 and bf16, and both careamics UNets.

Every measurement runs in a fresh subprocess (``--worker``) with the thread count fixed before torch
loads; the baseline runs the package source of ``--baseline`` (``git archive``) from a temporary
folder, with the same model files.  Rows are appended to ``--out`` as they are measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _threads import limit_threads

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FIELDS = ["kind", "name", "code", "precision", "threads", "size", "megapixels_per_s", "seconds", "psnr",
          "delta_psnr_db", "detail"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default="d535304", help="git commit whose code is the baseline")
    p.add_argument("--groups", nargs="*", default=["sidd", "nam", "fmd", "w2s", "camera16"],
                   help="real groups, and camera16 (synthetic 16-bit, high SNR: the hardest case for bf16)")
    p.add_argument("--limit", type=int, default=1, help="images per group")
    p.add_argument("--teacher-seconds", type=float, default=90.0)
    p.add_argument("--distill-seconds", type=float, default=90.0)
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--forward-size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--skip", nargs="*", default=[], choices=["quality", "denoise", "teacher", "careamics", "forward"])
    p.add_argument("--out", type=Path, default=HERE / "results" / "student_speed.csv")
    p.add_argument("--table", type=Path, default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- worker: one measurement in a fresh process --------------------------------------------------
def best_of(fn, repeats: int) -> float:
    """The best of ``repeats`` timed calls after a warm-up call (oneDNN primitives, the allocator)."""
    from bench_roofline import best_time

    return best_time(fn, repeats, warmup=True)


def worker(job: dict) -> dict:
    import numpy as np

    if job["task"] in ("denoise", "forward_student"):
        sys.path.insert(0, job["src"])
        import napari_bsdenoise as bsd

        where = Path(bsd.__file__).resolve()
        if Path(job["src"]).resolve() not in where.parents:
            raise RuntimeError(f"imported {where}, not the code under {job['src']}")
    import torch

    torch.set_num_threads(job["threads"])
    if job["task"] == "denoise":
        model = bsd.load_model(job["model"])
        image = np.load(job["image"])
        if job.get("save"):
            np.save(job["save"], bsd.denoise(image, model, precision=job["precision"], check=False))
            return {}
        return {"seconds": best_of(lambda: bsd.denoise(image, model, precision=job["precision"]), job["repeats"])}
    if job["task"] == "forward_student":
        from napari_bsdenoise.nn.fast_unet import inference_form
        from napari_bsdenoise.nn.student import StudentUNet

        net = StudentUNet(1, 1, width=16, depth=3).eval()
        if job["form"] == "module":
            run = net.to(memory_format=torch.channels_last)
        else:
            run = inference_form(net, job["precision"])
        x = torch.randn(1, 1, job["size"], job["size"]).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            seconds = best_of(lambda: run(x), job["repeats"])
        return {"seconds": seconds, "parameters": sum(p.numel() for p in net.parameters())}
    if job["task"] in ("careamics", "forward_careamics"):
        return careamics_worker(job)
    raise ValueError(job["task"])


def careamics_worker(job: dict) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, str(HERE))
    from n2v_peer import _import_careamics, _quiet

    careamics, CAREamist, create_advanced_n2v_config = _import_careamics()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="n2v_speed_") as work, _quiet():
        config = create_advanced_n2v_config(
            experiment_name="n2v_speed", data_type="array", axes="YX", patch_size=(64, 64), batch_size=16,
            num_epochs=1, n_val_patches=1, num_workers=0,
            model_params={"depth": 2, "num_channels_init": job["channels"]},
            trainer_params={"accelerator": "cpu", "devices": 1, "enable_model_summary": False, "max_steps": 3})
        careamist = CAREamist(config, work_dir=work, enable_progress_bar=False)
        careamist.train(train_data=rng.normal(100, 10, (256, 256)).astype(np.float32))
        unet = careamist.model.model.eval()
        params = sum(p.numel() for p in unet.parameters())
        if job["task"] == "forward_careamics":
            x = torch.randn(1, 1, job["size"], job["size"])
            with torch.no_grad():
                return {"seconds": best_of(lambda: unet(x), job["repeats"]), "parameters": params,
                        "careamics": careamics.__version__}
        image = np.load(job["image"])
        tiled = job["tiled"]

        def predict():
            return careamist.predict(image, tile_size=(256, 256) if tiled else None,
                                     tile_overlap=(48, 48) if tiled else None, axes="YX", data_type="array",
                                     num_workers=0)

        return {"seconds": best_of(predict, job["repeats"]), "parameters": params,
                "careamics": careamics.__version__}


def run_worker(job: dict, threads: int) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps({**job, "threads": threads})]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker {job['task']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the run ---------------------------------------------------------------------------------------
def baseline_source(ref: str, work: Path) -> Path:
    dest = work / "baseline"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def camera16():
    """scikit-image's camera at 100-4100 photons with Poisson and read noise (sigma 3), as uint16 (noisy
    PSNR 38.7 dB over the clean range): 16-bit data, where bf16's 8-bit mantissa would show first.  (At
    500-20500 photons, 45.7 dB, a 60 s teacher scores 29 dB and the safety check keeps the input: no
    test of precision there.)"""
    import numpy as np
    from skimage import data

    gt = data.camera().astype(np.float64) / 255 * 4000 + 100
    rng = np.random.default_rng(16)
    noisy = rng.poisson(gt) + rng.normal(0, 3, gt.shape)
    return np.clip(np.round(noisy), 0, 65535).astype(np.uint16), gt


def score(group: str, gt, out) -> tuple[float, str]:
    """(PSNR, which): scale-invariant for W2S, over the clean image's range for camera16, else 0-255."""
    import numpy as np

    from metrics import psnr, si_psnr

    if group == "w2s":
        return float(si_psnr(gt, out)), "si_psnr"
    if group == "camera16":
        mse = float(np.mean((np.asarray(gt, np.float64) - out) ** 2))
        return float(10 * np.log10(float(np.ptp(gt)) ** 2 / mse)), "psnr over the clean range"
    return float(psnr(gt, out)), "psnr"


def pairs(groups, limit: int):
    from data import load_group

    for group in groups:
        if group == "camera16":
            yield group, "camera16 (synthetic)", *camera16()
            continue
        for pair in load_group(group, limit=limit):
            yield group, pair.name, *pair.load()


def train_students(args, work: Path) -> list[dict]:
    import numpy as np

    import napari_bsdenoise as bsd

    students = []
    for group, name, noisy, gt in pairs(args.groups, args.limit):
        t0 = time.perf_counter()
        teacher = bsd.train(noisy, seconds=args.teacher_seconds, seed=0)
        student = bsd.distill(noisy, teacher, student="tiny", seconds=args.distill_seconds, seed=0)
        stem = f"{group}_{len(students)}"
        student.save(work / f"{stem}.safetensors")
        teacher.save(work / f"{stem}_teacher.safetensors")
        np.save(work / f"{stem}_noisy.npy", noisy)
        students.append({"group": group, "name": name, "model": str(work / f"{stem}.safetensors"),
                         "image": str(work / f"{stem}_noisy.npy"), "gt": gt, "stem": stem,
                         "train_s": time.perf_counter() - t0})
        print(f"trained {stem} ({name}) in {students[-1]['train_s']:.0f} s", flush=True)
    return students


def big_image(noisy, size: int):
    import numpy as np

    grey = noisy if noisy.ndim == 2 else noisy.mean(axis=-1)
    reps = [-(-size // n) for n in grey.shape]
    tiled = np.pad(grey, [(0, (r - 1) * n) for r, n in zip(reps, grey.shape)], mode="symmetric")
    return np.ascontiguousarray(tiled[:size, :size], dtype=grey.dtype)


def run(args) -> None:
    import numpy as np

    from results import append_rows

    def emit(row):
        append_rows(args.out, FIELDS, [row])
        print(row, flush=True)

    with tempfile.TemporaryDirectory(prefix="student_speed_") as tmp:
        work = Path(tmp)
        codes = {"this": str(REPO / "src"), args.baseline: str(baseline_source(args.baseline, work))}
        students = train_students(args, work) if {"quality", "denoise"} - set(args.skip) else []
        if "quality" not in args.skip:
            for s in students:
                scores = {}
                for code, precision in (("this", "fp32"), ("this", "bf16"), (args.baseline, "fp32")):
                    save = work / f"{s['stem']}_{code}_{precision}.npy"
                    run_worker({"task": "denoise", "src": codes[code], "model": s["model"], "image": s["image"],
                                "precision": precision, "save": str(save)}, threads=2)
                    scores[code, precision], which = score(s["group"], s["gt"], np.load(save))
                base = scores[args.baseline, "fp32"]
                for (code, precision), value in scores.items():
                    emit({"kind": "quality", "name": f"{s['group']}: {Path(s['name']).name}", "code": code,
                          "precision": precision, "psnr": round(value, 3),
                          "delta_psnr_db": round(value - base, 4), "detail": which})
        grey = [s for s in students if s["group"] in ("fmd", "w2s")] or students
        for threads in args.threads:
            for size in args.sizes:
                if "denoise" not in args.skip and grey:
                    path = work / f"big_{size}.npy"
                    if not path.exists():  # (once for every thread count)
                        np.save(path, big_image(np.load(grey[0]["image"]), size))
                    for name, code, precision in (("tiny student", args.baseline, "fp32"),
                                                  ("tiny student", "this", "fp32"), ("tiny student", "this", "bf16"),
                                                  ("tiny teacher", args.baseline, "fp32"),
                                                  ("tiny teacher", "this", "fp32"), ("tiny teacher", "this", "bf16")):
                        if name == "tiny teacher" and "teacher" in args.skip:
                            continue
                        model = grey[0]["model"].replace(".safetensors", "_teacher.safetensors" if "teacher" in name
                                                         else ".safetensors")
                        r = run_worker({"task": "denoise", "src": codes[code], "model": model,
                                        "image": str(path), "precision": precision,
                                        "repeats": args.repeats}, threads)
                        emit({"kind": "denoise", "name": name, "code": code, "precision": precision,
                              "threads": threads, "size": size, "seconds": round(r["seconds"], 3),
                              "megapixels_per_s": round(size * size / r["seconds"] / 1e6, 3),
                              "detail": f"bsd.denoise defaults, model of {grey[0]['stem']}"})
                if "careamics" not in args.skip:
                    path = work / f"big_{size}.npy"
                    if not path.exists():
                        np.save(path, np.random.default_rng(0).normal(100, 10, (size, size)).astype("float32"))
                    for channels in (16, 32):
                        for tiled in (True, False):
                            r = run_worker({"task": "careamics", "channels": channels, "image": str(path),
                                            "tiled": tiled, "repeats": args.repeats}, threads)
                            emit({"kind": "careamics", "name": f"N2V UNet depth 2/{channels}", "code": "careamics "
                                  + r["careamics"], "precision": "fp32", "threads": threads, "size": size,
                                  "seconds": round(r["seconds"], 3),
                                  "megapixels_per_s": round(size * size / r["seconds"] / 1e6, 3),
                                  "detail": f"{r['parameters']} parameters; CAREamist.predict "
                                  + ("tiles 256, overlap 48" if tiled else "whole image")})
            if "forward" not in args.skip:
                n = args.forward_size
                jobs = [("tiny student, StudentUNet (channels_last)", {"task": "forward_student", "form": "module",
                                                                       "precision": "fp32"}, "this"),
                        ("tiny student, inference form", {"task": "forward_student", "form": "fast",
                                                          "precision": "fp32"}, "this"),
                        ("tiny student, inference form", {"task": "forward_student", "form": "fast",
                                                          "precision": "bf16"}, "this"),
                        ("careamics UNet depth 2/16", {"task": "forward_careamics", "channels": 16}, "careamics"),
                        ("careamics UNet depth 2/32", {"task": "forward_careamics", "channels": 32}, "careamics")]
                for name, job, code in jobs:
                    r = run_worker({**job, "src": codes["this"], "size": n, "repeats": args.repeats}, threads)
                    emit({"kind": "forward", "name": name, "code": code, "precision": job.get("precision", "fp32"),
                          "threads": threads, "size": n, "seconds": round(r["seconds"], 4),
                          "megapixels_per_s": round(n * n / r["seconds"] / 1e6, 3),
                          "detail": f"{r['parameters']} parameters"})


def summary(rows, baseline: str) -> list[str]:
    """threads x size: MP/s of denoise (baseline, this fp32, this bf16, the teacher) and of careamics' best
    prediction (tiled or whole image) per UNet, with the ratios the issue asks about."""
    speed = {}
    for r in rows:
        if r["kind"] == "denoise":
            key = ("teacher " if "teacher" in r["name"] else "") + ("base" if r["code"] != "this" else r["precision"])
        elif r["kind"] == "careamics":
            key = r["name"].split()[-1]  # "2/16" or "2/32"
        else:
            continue
        cell = speed.setdefault((int(r["threads"]), int(r["size"])), {})
        cell[key] = max(cell.get(key, 0.0), float(r["megapixels_per_s"]))
    out = [f"| threads | size | {baseline} fp32 | this fp32 | speed-up | this bf16 | careamics N2V 2/16 | careamics "
           "N2V 2/32 (default) | this fp32 / N2V 2/16 | teacher: " f"{baseline} fp32 | teacher: this fp32 | "
           "teacher speed-up | teacher: this bf16 | student / teacher (this, fp32) |",
           "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for (threads, size), c in sorted(speed.items()):
        def f(k):
            return f"{c[k]:.3f}" if k in c else ""

        def ratio(a, b):
            return f"{c[a] / c[b]:.2f}x" if a in c and b in c else ""

        out.append(f"| {threads} | {size} | {f('base')} | {f('fp32')} | {ratio('fp32', 'base')} | {f('bf16')} | "
                   f"{f('2/16')} | {f('2/32')} | {ratio('fp32', '2/16')} | {f('teacher base')} | "
                   f"{f('teacher fp32')} | {ratio('teacher fp32', 'teacher base')} | {f('teacher bf16')} | "
                   f"{ratio('fp32', 'teacher fp32')} |")
    return out


def table(path: Path) -> str:
    rows = list(csv.DictReader(open(path)))
    out = []
    quality = [r for r in rows if r["kind"] == "quality"]
    if quality:
        out += ["| image | code | precision | PSNR (dB) | vs baseline (dB) |", "|---|---|---|--:|--:|"]
        out += [f"| {r['name']} | {r['code']} | {r['precision']} | {r['psnr']} | {float(r['delta_psnr_db']):+.4f} |"
                for r in quality]
        out.append("")
    speed = [r for r in rows if r["kind"] != "quality"]
    baselines = {r["code"] for r in speed if r["kind"] == "denoise" and r["code"] != "this"}
    if baselines:
        out += summary(speed, ", ".join(sorted(baselines))) + [""]
    if speed:
        out += ["| what | code | precision | threads | size | s | MP/s | note |", "|---|---|---|--:|--:|--:|--:|---|"]
        out += [f"| {r['kind']}: {r['name']} | {r['code']} | {r['precision']} | {r['threads']} | {r['size']} | "
                f"{r['seconds']} | {r['megapixels_per_s']} | {r['detail']} |" for r in speed]
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        job = json.loads(args.worker)
        limit_threads(job["threads"])
        print(json.dumps(worker(job)))
        return 0
    if args.table is not None:
        print(table(args.table))
        return 0
    limit_threads(2)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
