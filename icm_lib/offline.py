"""Offline hygiene: keep every tool's config and cache inside the project and
stop download attempts, so a notebook opened in JupyterLab behaves exactly like
one run by papermill or the CLI on a machine without internet.

Imported (and applied) by ``icm_lib/__init__.py`` before torch, ultralytics or
matplotlib are imported anywhere in the package. Values already set in the
environment win, so a user can point the caches elsewhere.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from icm_lib.io import write_atomic
from icm_lib.paths import cache_dir

# Ultralytics draws plot labels with Arial and downloads it when missing;
# matplotlib's DejaVu fonts under those names stop the attempt.
_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def apply() -> None:
    """Set cache/config variables inside the project and place the fonts ultralytics wants."""
    root = cache_dir()
    folders = {
        "YOLO_CONFIG_DIR": root / "ultralytics",
        "TORCH_HOME": root / "torch",
        "MPLCONFIGDIR": root / "matplotlib",
    }
    for var, folder in folders.items():
        os.environ.setdefault(var, str(folder))
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _place_fonts(Path(os.environ["YOLO_CONFIG_DIR"]))
    # compressai 1.2.8 scripts its rANS helpers with torch.jit.script, which torch 2.14
    # deprecates on every import: noise for users, nothing they can act on.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)


def _place_fonts(config_dir: Path) -> None:
    missing = [name for name in _FONT_NAMES if not (config_dir / name).exists()]
    if not missing:
        return
    import matplotlib  # here, not above: only once apply() has set MPLCONFIGDIR

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in missing:
        write_atomic(config_dir / name, source.read_bytes())
