"""Redraw figures/encoder_growth_shapes.png from the logs in docs/experiments/encoder_growth.

The twelfth session's experiment (README, "what would reach the remaining targets"): the zoo's
Object-MSE 0.015 at 45,000 steps continued at 1e-4 with its own encoder (N=64) and with larger
encoders grown from it (``mbt2018-mean-wide``). Each folder holds one run's validations, counted
from the first step of the zoo's codec. Run: ``.venv/bin/python scripts/plot_encoder_growth.py``.
"""

from __future__ import annotations

from pathlib import Path

from icm_lib.plots.training import plot_validation_curves

ROOT = Path(__file__).resolve().parents[1]
RUNS = {
    "N=64, M=96: the zoo's encoder": "n64",
    "wider: N_enc=128": "n_enc128",
    "deeper: N_enc=96, 1 residual block per stage": "n_enc96_blocks1",
    "deeper still: N_enc=96, 2 blocks per stage": "n_enc96_blocks2",
}

if __name__ == "__main__":
    folder = ROOT / "docs" / "experiments" / "encoder_growth"
    fig = plot_validation_curves({label: folder / name for label, name in RUNS.items()}, from_step=45000)
    fig.suptitle(
        "Object-MSE 0.015 continued at 1e-4 from the zoo's 45,000 steps: its encoder and larger ones grown from it"
    )
    fig.tight_layout()
    for suffix in (".png", ".pdf"):
        fig.savefig(ROOT / "figures" / f"encoder_growth_shapes{suffix}", dpi=110)
