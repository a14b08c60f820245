"""Paired comparison table: every method on exactly the images where a reference method ran.

    python benchmarks/summarize.py benchmarks/results/*.csv --reference atbsn_s3 --out docs/benchmarks_atbsn.md

Means over different image subsets are not comparable, so each group's means
are taken over the images that have a row for ``--reference``; the table also
counts on how many of them the reference beats the noisy input and each baseline.
"""

from __future__ import annotations

import argparse

import pandas as pd

METRIC = {"w2s": "si_psnr"}  # W2S pairs were contrast-stretched one by one
GROUP_NAMES = {
    "sidd": "SIDD (smartphone sRGB)",
    "nam": "Nam (DSLR sRGB)",
    "fmd": "FMD (fluorescence)",
    "w2s": "W2S (widefield; SI-PSNR)",
    "synthetic": "synthetic",
}


def summarize(frames: list[pd.DataFrame], reference: str) -> str:
    d = pd.concat(frames).drop_duplicates(subset=["group", "image", "method"], keep="last")
    lines = []
    for group, sub in d.groupby("group", sort=False):
        ref_imgs = set(sub.loc[sub.method == reference, "image"])
        if not ref_imgs:
            continue
        metric = METRIC.get(group, "psnr")
        ssim = "si_ssim" if group == "w2s" else "ssim"
        sub = sub[sub.image.isin(ref_imgs)]
        piv = sub.pivot_table(index="image", columns="method", values=metric)
        piv_s = sub.pivot_table(index="image", columns="method", values=ssim)
        complete = [m for m in piv.columns if piv[m].notna().all()]
        lines.append(f"\n### {GROUP_NAMES.get(group, group)}: {len(ref_imgs)} images, {metric.upper().replace('_', '-')}\n")
        lines.append(f"| method | mean {metric} | mean {ssim} | s / image | {reference} better on |")
        lines.append("|---|--:|--:|--:|--:|")
        secs = sub.groupby("method").seconds.mean()
        for m in sorted(complete, key=lambda m: piv[m].mean()):
            wins = "" if m == reference else f"{int((piv[reference] > piv[m]).sum())}/{len(piv)}"
            lines.append(f"| {m} | {piv[m].mean():.2f} | {piv_s[m].mean():.4f} | {secs[m]:.1f} | {wins} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--reference", default="atbsn_s3")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    text = summarize([pd.read_csv(f) for f in args.csv], args.reference)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
