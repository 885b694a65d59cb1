"""Turn the metrics.json files of `scorerecon batch scripts/results.yaml` into the tables of
docs/results.md: mean +- std over the held-out slices per task and method (from each job's
per-slice PSNR/SSIM), and the sweep means (PSNR against views / acceleration).

    .venv/bin/python scripts/results_table.py out/results/ct out/results/mri
"""
import json
import sys
from pathlib import Path

import numpy as np

ORDER = ["fbp", "fista_tv", "zero_filled", "rss", "sense", "tv", "li", "score"]


def fmt(values, digits):
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return "n/a"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.{digits}f}"


def main(roots):
    print("| job | measurement | slices | method | PSNR (dB) | SSIM | s / slice |")
    print("|---|---|---|---|---|---|---|")
    sweeps = []
    for metrics in [m for root in roots for m in sorted(Path(root).glob("*/metrics.json"))]:
        d = json.loads(metrics.read_text())
        job = metrics.parent.name
        notes = d.get("notes", [])
        what = notes[0].removeprefix("Measurement: ").split(" (")[0] if notes else ""
        methods = d["methods"]
        best = {
            k: max(m[k] for m in methods.values() if m.get(k) is not None)
            for k in ("psnr", "ssim")
        }
        for name in sorted(methods, key=lambda n: ORDER.index(n) if n in ORDER else 99):
            m = methods[name]
            n = len(m["psnr_per_slice"])
            p = fmt(m["psnr_per_slice"], 2)
            s = fmt(m["ssim_per_slice"], 4)
            if m["psnr"] == best["psnr"]:
                p = f"**{p}**"
            if m["ssim"] == best["ssim"]:
                s = f"**{s}**"
            print(f"| {job} | {what} | {n} | {name} | {p} | {s} | {m['seconds'] / max(n, 1):.1f} |")
        sweep = d.get("sweep") or []
        if sweep:
            sweeps.append((job, d.get("sweep_parameter", "x"), sweep))
    for job, param, sweep in sweeps:
        xs = sorted({p["x"] for p in sweep})
        names = sorted({p["method"] for p in sweep}, key=lambda n: ORDER.index(n) if n in ORDER else 99)
        print()
        print(f"Sweep `{job}`: mean PSNR (dB) / SSIM against {param}")
        print()
        print("| method | " + " | ".join(f"{x:g}" for x in xs) + " |")
        print("|---|" + "---|" * len(xs))
        for name in names:
            cells = []
            for x in xs:
                p = next(q for q in sweep if q["x"] == x and q["method"] == name)
                cells.append(f"{p['psnr']:.2f} / {p['ssim']:.4f}")
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
