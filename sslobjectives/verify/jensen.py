"""The Jensen sweep: how far centering is from inverse-prior normalisation, by temperature
and batch size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from sslobjectives import diagnostics as D
from sslobjectives import functional as F
from sslobjectives.verify.references import _t, _unit_rows, single_threaded

# --------------------------------------------------------------------------- Jensen sweep

SWEEP_TEMPS = (1.0, 0.5, 0.3, 0.2, 0.1, 0.07, 0.04, 0.02)
SWEEP_BATCHES = (16, 64, 256, 1024)


def _cosine_teacher(rng: np.random.Generator, batch: int, n_clusters: int, dim: int) -> np.ndarray:
    """DINO-like teacher logits: cosines between samples drawn around random unit prototypes
    (``x = normalise(w_c + g / sqrt(dim))``, ``g`` standard normal) and every prototype."""
    protos = _unit_rows(rng.normal(size=(n_clusters, dim)))
    centre = protos[rng.integers(n_clusters, size=batch)]
    x = _unit_rows(centre + rng.normal(size=(batch, dim)) / math.sqrt(dim))
    return x @ protos.T


def jensen_sweep(
    temps: tuple[float, ...] = SWEEP_TEMPS,
    batches: tuple[int, ...] = SWEEP_BATCHES,
    n_clusters: int = 256,
    dim: int = 64,
    seeds: int = 3,
) -> dict:
    """Mean Jensen gap over clusters (``jensen_gap``) and mean ``KL(inverse-prior || centered)``
    over the batch (``diagnostics.centering_kl``, what the cluster objectives log), both in
    nats and averaged over ``seeds`` draws, per teacher temperature and batch size."""
    gap = np.zeros((len(temps), len(batches)))
    kl = np.zeros_like(gap)
    with single_threaded():
        for seed in range(seeds):
            rng = np.random.default_rng(1000 + seed)
            for j, batch in enumerate(batches):
                z = _t(_cosine_teacher(rng, batch, n_clusters, dim))
                for i, temp in enumerate(temps):
                    gap[i, j] += float(F.jensen_gap(z, temp).mean()) / seeds
                    kl[i, j] += float(D.centering_kl(z, temp)) / seeds
    return {
        "temperatures": list(temps),
        "batches": list(batches),
        "jensen_gap": gap.tolist(),
        "kl_inverse_prior_to_centered": kl.tolist(),
        "n_clusters": n_clusters,
        "seeds": seeds,
        "model": (
            f"cosine logits of samples around {n_clusters} random unit prototypes in "
            f"R^{dim} (x = normalise(w_c + g/sqrt({dim})))"
        ),
    }


def plot_sweep(sweep: dict, out_dir: Path) -> Path:
    """Write ``jensen_gap_kl.png`` (and the numbers as ``jensen_gap_kl.json``) to ``out_dir``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    temps = sweep["temperatures"]
    panels = (
        ("jensen_gap", "mean Jensen gap log(P/G) over clusters (nats)"),
        ("kl_inverse_prior_to_centered", "mean KL(inverse-prior || centered) (nats)"),
    )
    for col, (key, ylabel) in enumerate(panels):
        ax = fig.add_subplot(1, 2, col + 1)
        values = np.asarray(sweep[key])
        for j, batch in enumerate(sweep["batches"]):
            ax.plot(temps, values[:, j], marker="o", label=f"batch {batch}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(temps, labels=[f"{t:g}" for t in temps])
        ax.minorticks_off()
        ax.invert_xaxis()
        ax.set_xlabel("teacher temperature (sharper ->)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"Centering vs inverse-prior normalisation: {sweep['model']}", fontsize=9)
    path = out_dir / "jensen_gap_kl.png"
    fig.savefig(path, dpi=120)
    (out_dir / "jensen_gap_kl.json").write_text(json.dumps(sweep, indent=2) + "\n")
    return path
