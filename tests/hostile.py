"""Helpers of the hostile-input tests: the `icm` command in a watched subprocess, folder snapshots.

A case that could exhaust memory, hang or crash runs in a subprocess whose resident memory is
polled and capped (not RLIMIT_AS: the CUDA build of torch reserves more address space than that
at import), so that a regression fails the test instead of the machine.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAP = 3 * 2**30 // 2  # 1.5 GiB: torch and a tiny codec take about 0.9 GiB here
# `icm` with only the command modules these tests use: main() and the commands are the real ones,
# without the 5 s of imports (ultralytics, torchvision, ...) that the other commands bring.
ICM = [
    sys.executable,
    "-c",
    "import sys; from icm_lib import cli; "
    "cli.COMMAND_MODULES = ('icm_lib.codec_cli', 'icm_lib.data.cli'); sys.exit(cli.main())",
]


@dataclass
class Outcome:
    """What a watched subprocess did."""

    returncode: int | None
    stdout: str
    stderr: str
    peak_rss: int  # bytes
    killed: str | None  # why it was killed: "memory" or "time"; None when it exited by itself


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_watched(
    args: list, cwd: Path, cap: int = CAP, timeout: float = 120, env: dict | None = None, umask: int | None = None
) -> Outcome:
    """Run ``args`` in ``cwd``; kill it when its resident memory passes ``cap`` or it runs past ``timeout``."""
    if not Path("/proc/self/status").exists():
        import pytest

        pytest.skip("needs /proc to watch a process's memory")
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.Popen(
        [str(a) for a in args],
        cwd=cwd,
        env=full_env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )
    output: dict[str, str] = {}
    reader = threading.Thread(target=lambda: output.update(zip(("out", "err"), proc.communicate())))
    reader.start()
    start, peak, killed = time.monotonic(), 0, None
    while reader.is_alive():
        peak = max(peak, _rss(proc.pid))
        if peak > cap or time.monotonic() - start > timeout:
            killed = "memory" if peak > cap else "time"
            proc.kill()
            break
        time.sleep(0.01)
    reader.join()
    return Outcome(proc.returncode, output.get("out", ""), output.get("err", ""), peak, killed)


def icm(*args, cwd: Path, **kwargs) -> Outcome:
    """``icm ARGS`` in a watched subprocess."""
    return run_watched([*ICM, *args], cwd, **kwargs)


def codec_files(root: Path, height: int = 32, width: int = 48) -> Path:
    """``root/ckpt.pt`` (an untrained tcm-tiny, seed 0, with its weights hash) and ``root/a.png`` (noise)."""
    import numpy as np
    import torch
    from PIL import Image

    from icm_lib.checkpoint import save_checkpoint
    from icm_lib.models import create

    torch.manual_seed(0)
    save_checkpoint(root / "ckpt.pt", create("tcm-tiny"), {"loss": "mse", "lmbda": 0.01, "step": 0, "data": "test"})
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / "a.png")
    return root


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder`` (hidden ones included): its SHA-256 and permission bits."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode & 0o777)
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    }


def assert_refused(outcome: Outcome, message: str) -> None:
    """Exit status 2 and one line ``icm: error: ...`` holding ``message``, without a traceback."""
    assert outcome.killed is None, f"killed for {outcome.killed} at {outcome.peak_rss / 2**30:.2f} GiB"
    lines = outcome.stderr.strip().splitlines()
    assert outcome.returncode == 2, outcome.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("icm: error: ") and message in lines[0], outcome.stderr[-2000:]


def assert_error_line(status: int, err: str, message: str) -> None:
    """The in-process form of :func:`assert_refused`: ``main()``'s status and captured stderr."""
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("icm: error: ") and message in lines[0], err
