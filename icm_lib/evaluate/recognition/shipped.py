"""Clean detectors shipped with the zoo: notebook 04's recognizers trained on the clean images of the
generated datasets, so that a fresh checkout scores the codecs without training them first.

Trained on this machine, YOLO on ``shapes`` takes about 7 minutes, on ``aerial`` 2.5, and Mask R-CNN on
``shapes`` 9: a third of ``make reproduce`` from a fresh checkout. ``icm zoo detectors`` copies the clean
detectors of a profile's run into ``zoo/<profile>/detectors/`` with a manifest (``detectors.json``): the
recognizer, the dataset and its generator spec (fingerprint), the settings it was trained with, the
file's sha256 and bytes, and how long it took. A recognizer's :meth:`clean` installs the shipped detector
when the user's dataset was generated from the same spec and the settings are those asked for (the file
verified against its sha256); the run's reuse check then takes it as trained here. Real data (no
generator spec) and other settings train as before.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from icm_lib.data.layout import DatasetLayout
from icm_lib.errors import UserError
from icm_lib.io import file_sha256, read_json, verified_file, write_atomic, write_json

FOLDER = "detectors"  # zoo/<profile>/detectors/
MANIFEST = "detectors.json"  # in that folder


def shipped_dir(profile: str) -> Path:
    """``zoo/<profile>/detectors/``."""
    from icm_lib.paths import zoo_dir

    return zoo_dir(profile) / FOLDER


def entries(profile: str) -> list[dict[str, Any]]:
    """The shipped detectors of a profile (none when it ships none)."""
    path = shipped_dir(profile) / MANIFEST
    return list(read_json(path)["detectors"]) if path.is_file() else []


def find(profile: str, recognizer: str, dataset: str) -> dict[str, Any] | None:
    """The shipped detector of one recognizer ("yolo", "maskrcnn") and dataset, if any."""
    return next((e for e in entries(profile) if (e["recognizer"], e["dataset"]) == (recognizer, dataset)), None)


def export(profile: str, found: list[tuple[str, DatasetLayout, Path, dict[str, Any], dict[str, Any]]]) -> list[str]:
    """Copy clean detectors into the zoo and write its detectors manifest; returns their names.

    Args:
        found: ``(recognizer, layout, weights file, settings, record)`` per detector, as
            :func:`clean_runs` gives them (``record``: ``seconds`` and anything else worth keeping).
    """
    folder = shipped_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    kept = {e["name"]: e for e in entries(profile)}
    for recognizer, layout, weights, config, record in found:
        spec = _generated_spec(layout)
        if spec is None:
            raise UserError(f"{layout.root} was not generated (no synth.json): only generated data's detectors ship")
        name = f"{recognizer}-{layout.name}"
        target = folder / f"{name}{weights.suffix}"
        shutil.copyfile(weights, target)
        kept[name] = {
            "name": name,
            "recognizer": recognizer,
            "dataset": layout.name,
            "file": target.name,
            "sha256": file_sha256(target),
            "bytes": target.stat().st_size,
            "config": config,
            "data": {"spec": spec, "fingerprint": layout.fingerprint()},
            **record,
        }
    write_json(folder / MANIFEST, {"profile": profile, "detectors": sorted(kept.values(), key=lambda e: e["name"])})
    return sorted(kept)


def clean_runs(profile: str, datasets: list[str]) -> list[tuple[str, DatasetLayout, Path, dict, dict]]:
    """The finished clean detectors of a profile's run on these datasets, for :func:`export`."""
    from icm_lib.evaluate.recognition.maskrcnn.model import load_state_dict_file
    from icm_lib.evaluate.recognition.yolo import MARKER
    from icm_lib.paths import detectors_dir

    found = []
    for dataset in datasets:
        layout = DatasetLayout.of(profile, dataset)
        run = detectors_dir(profile) / "yolo" / dataset / "clean"
        if (run / "weights" / "last.pt").is_file() and (run / MARKER).is_file():
            marker = read_json(run / MARKER)
            record = {k: marker[k] for k in ("seconds", "seconds_per_epoch") if k in marker}
            found.append(("yolo", layout, run / "weights" / "last.pt", marker["config"], record))
        checkpoint = detectors_dir(profile) / "maskrcnn" / dataset / "clean.pt"
        if checkpoint.is_file():
            state = load_state_dict_file(checkpoint)
            if state["meta"].get("finished"):
                history = state["meta"].get("history") or []
                record = {"seconds": round(sum(h.get("seconds", 0.0) for h in history), 1)} if history else {}
                found.append(("maskrcnn", layout, checkpoint, state["config"], record))
    return found


def install_yolo(profile: str, layout: DatasetLayout, run_dir: Path, cfg) -> bool:
    """Put the shipped clean YOLO of ``layout`` into ``run_dir`` as :func:`train_yolo` would leave it, when
    the run is not there and the zoo's was trained on the same generated data with the settings ``cfg``."""
    from dataclasses import asdict

    from icm_lib.evaluate.recognition.yolo import MARKER, training_record

    weights = run_dir / "weights" / "last.pt"
    item = _usable(profile, "yolo", layout, asdict(cfg), weights)
    if item is None:
        return False
    weights.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_checked_file(profile, item), weights)
    record = training_record(layout.yolo_yaml, cfg) | {"seconds": item.get("seconds"), "zoo": _origin(item)}
    write_json(run_dir / MARKER, record)
    return True


def install_clean_yolo(profile: str, dataset: str) -> bool:
    """Put the profile's shipped clean YOLO of ``dataset`` where notebook 04 leaves its clean YOLO, with
    notebook 04's settings for that dataset, when it is not there and fits (:func:`install_yolo`); the task
    loss (Eq. 2) reads it from there. Nothing is trained."""
    from icm_lib.config import notebook_params
    from icm_lib.evaluate.recognition.yolo import dataset_config
    from icm_lib.paths import detectors_dir

    layout = DatasetLayout.of(profile, dataset)
    if not layout.root.is_dir():
        return False
    yolo = notebook_params(profile, "04_recognition_accuracy").get("YOLO") or {}
    run_dir = detectors_dir(profile) / "yolo" / dataset / "clean"
    return install_yolo(profile, layout, run_dir, dataset_config(yolo, dataset))


def install_maskrcnn(profile: str, layout: DatasetLayout, out_path: Path, config) -> bool:
    """Put the shipped clean Mask R-CNN of ``layout`` at ``out_path`` as :func:`train_segmenter` would leave
    it, when it is not there and the zoo's was trained on the same generated data with ``config``."""
    import io

    import torch

    from icm_lib.evaluate.recognition.maskrcnn.train import training_data

    item = _usable(profile, "maskrcnn", layout, config.to_dict(), out_path)
    if item is None:
        return False
    state = torch.load(_checked_file(profile, item), map_location="cpu", weights_only=True)
    state["meta"] = {**state["meta"], "data": training_data(layout), "zoo": _origin(item)}  # the paths of here
    buffer = io.BytesIO()
    torch.save(state, buffer)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_path, buffer.getvalue())
    return True


def _usable(profile: str, recognizer: str, layout: DatasetLayout, config: dict, target: Path) -> dict | None:
    """The shipped detector to install at ``target``: none when the run is there already, the zoo has none,
    or it was trained on other data or with other settings (then it is trained here, as without a zoo)."""
    if target.is_file():
        return None
    item = find(profile, recognizer, layout.name)
    if item is None:
        return None
    if item["data"]["fingerprint"] != layout.fingerprint():  # real data's fingerprint is never a spec's
        print(f"[zoo] the shipped {item['name']} was trained on other data than {layout.root}: training it", flush=True)
        return None
    if item["config"] != json.loads(json.dumps(config)):  # as the manifest holds it (tuples as lists)
        print(f"[zoo] the shipped {item['name']} was trained with other settings: training it", flush=True)
        return None
    print(f"[zoo] {item['name']}: the clean detector from {shipped_dir(profile)}", flush=True)
    return item


def _checked_file(profile: str, item: dict) -> Path:
    return verified_file(shipped_dir(profile) / item["file"], item["sha256"], "shipped detector")


def _origin(item: dict) -> dict:
    return {"name": item["name"], "sha256": item["sha256"]}


def _generated_spec(layout: DatasetLayout) -> dict | None:
    marker = layout.root / "synth.json"
    return read_json(marker) if marker.is_file() else None
