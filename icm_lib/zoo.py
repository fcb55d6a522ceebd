"""The zoo: trained codecs shipped in the repository, with the recipe that made them.

The way CompressAI ships its pretrained models and LIC_TCM its checkpoints: one
weights-only file per codec (safetensors, no code can run on load; the
transforms in half precision, :func:`stored_weights`) and a
manifest, ``zoo/<profile>/manifest.json``, that says for each codec its model
and config, loss and lambda, the steps, wall-clock time and hardware it took,
the fingerprint of the data it was trained on, the file's sha256 and its last
validation numbers. Each codec's validation log (``logs/<name>.jsonl``, the
run's ``metrics.jsonl``) ships beside it, so the training curves can be drawn
without the run.

The codecs are trained by this project's own command, ``icm zoo train``
(:func:`train`): the profile's ``02_train_codecs`` sweeps, every codec from
scratch with its own loss (a codec the recipe's ``WARM_START`` names: fine-tuned
from another codec of the recipe once that one is finished, e.g. the demo's
compared methods from the codec of their lambda, its Object-MSE 0.05 from 0.015),
in rounds of ``chunk`` steps so that all of them
progress together across sessions, resumable from a run's checkpoint or, on a
machine that has nothing else, from the zoo's weights alone (the Adam moments
then restart). ``icm zoo export`` writes the runs' current weights into the
zoo; :func:`install` turns the zoo into the run folders that notebooks 03 and
04 read, so the pipeline uses the zoo instead of training.

Deviation: the paper trains on COCO for days on GPUs; the demo zoo is trained
on the embedded ``shapes`` data (see the README for the recipe and compute).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from icm_lib.config import notebook_params
from icm_lib.data.layout import spec_fingerprint
from icm_lib.errors import UserError
from icm_lib.io import file_sha256, read_json, verified_file, write_atomic, write_json
from icm_lib.paths import codec_name, dataset_dir, zoo_dir

# The training, data, checkpoint and safetensors modules are imported inside the commands that
# use them, not here: `python -m icm_lib.cli.zoo list|verify` then starts in about 2 s instead of 5
# (no CompressAI, OpenCV, pycocotools). None of them imports this module: no cycle is hidden.

MANIFEST = "manifest.json"
PRECISION = "float16"  # of the transforms' weights in the files (:func:`stored_weights`); the entropy models exact
# What else the files leave out (:func:`stored_weights`): a zoo entry without this is stored anew on export.
STORED = "gaussian-tables-from-scale-table"
GAUSSIAN_TABLES = ("_quantized_cdf", "_offset", "_cdf_length")  # a GaussianConditional's, from its scale table
FORMAT = "icm-zoo"
VERSION = 1


def manifest(profile: str, folder: Path | None = None) -> dict[str, Any]:
    """The zoo's manifest of a profile (``folder``: of another zoo folder of it than ``zoo_dir``, e.g. ``zoo-next``).

    Raises:
        UserError: the profile has no zoo, or its manifest is not one.
    """
    path = (folder or zoo_dir(profile)) / MANIFEST
    if not path.is_file():
        raise UserError(
            f"profile {profile!r} has no zoo ({path} not found): train one with 'icm zoo train --profile {profile}'"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise UserError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("codecs"), list):
        raise UserError(f"{path} is not an icm zoo manifest")
    return data


def entries(profile: str) -> list[dict[str, Any]]:
    """The zoo's codecs as dicts: ``name``, ``loss`` ("object" | "mse"), ``lmbda``, ``model``, ``steps`` ..."""
    return [dict(entry) for entry in manifest(profile)["codecs"]]


def entry(profile: str, name: str) -> dict[str, Any]:
    """One codec's manifest entry by name."""
    found = [e for e in entries(profile) if e["name"] == name]
    if not found:
        raise UserError(
            f"no codec {name!r} in the {profile} zoo; it has: {', '.join(e['name'] for e in entries(profile))}"
        )
    return found[0]


def data_fingerprint(spec: dict[str, Any]) -> str:
    """SHA-256 of a dataset's identifying spec (for generated data: :func:`icm_lib.data.synth.spec`), as
    :meth:`icm_lib.data.layout.DatasetLayout.fingerprint` computes it for generated data."""
    return spec_fingerprint(spec)


def dataset_spec(profile: str, dataset: str) -> dict[str, Any]:
    """The spec of the user's dataset: its ``synth.json`` when generated, else what this code would generate."""
    from icm_lib.data import synth

    marker = dataset_dir(profile, dataset) / "synth.json"
    if marker.is_file():
        return json.loads(marker.read_text(encoding="utf-8"))
    return synth.spec(dataset, profile)


def check_file(profile: str, item: dict[str, Any]) -> Path:
    """The codec's weights file, after checking that it exists and matches the manifest's sha256."""
    return verified_file(zoo_dir(profile) / item["file"], item["sha256"], "zoo file")


def check_data(profile: str, item: dict[str, Any]) -> None:
    """Refuse a codec trained on other data than the user's dataset of the same name."""
    data = item["data"]
    mine = data_fingerprint(dataset_spec(profile, data["dataset"]))
    if mine != data["fingerprint"]:
        raise UserError(
            f"zoo codec {item['name']} was trained on other data ({data['spec']}) than "
            f"{dataset_dir(profile, data['dataset'])} ({dataset_spec(profile, data['dataset'])}): "
            f"retrain it with 'icm zoo train --profile {profile}'"
        )


def load(profile: str, name: str, verify_data: bool = True) -> nn.Module:
    """A zoo codec in eval mode, its entropy tables built, ready to code.

    Verifies the file against the manifest's sha256 and, unless ``verify_data`` is false,
    that the user's dataset is the one the codec was trained on.

    Raises:
        UserError: unknown name, missing or modified file, or data fingerprint mismatch.
    """
    from safetensors.torch import load_file

    from icm_lib.models import build

    item = entry(profile, name)
    path = check_file(profile, item)
    if verify_data:
        check_data(profile, item)
    model = build(item["model"], item["model_config"])
    restore_weights(model, load_file(str(path)))
    return model.eval()


def verify(profile: str) -> list[tuple[str, str]]:
    """``(name, problem)`` for every codec whose file or data does not check out (empty: all good)."""
    problems = []
    for item in entries(profile):
        try:
            check_file(profile, item)
            check_data(profile, item)
        except UserError as err:
            problems.append((item["name"], str(err)))
    return problems


def effect(profile: str) -> list[dict[str, Any]]:
    """The paper's effect on the zoo's own validation: each family of codecs against the recipe's MSE codecs.

    Per family (``mbt2018-mean/object``, the ROI codec's, the task-loss codec's): BD-PSNR (dB, at equal bpp,
    :func:`icm_lib.metrics.bd_psnr`) inside the objects, on the background and over the whole image, and per
    codec its bpp on the validation images without objects against the MSE codecs' at the same bpp (their
    curve of that bpp against the overall bpp, interpolated linearly in log-log and extended by its end
    segments): the issue's targets of +2 dB and at most 0.25. ``anchor``: the MSE family compared with (the
    BD-PSNRs and ratios are NaN where the zoo holds fewer than two of its codecs, e.g. a next zoo's folder).
    """
    from icm_lib.metrics import bd_psnr

    items = sorted((e for e in entries(profile) if e.get("val")), key=lambda e: e["val"]["bpp"])
    anchor_family = f"{manifest(profile)['recipe'].get('MODEL')}/mse"
    families: dict[str, list[dict[str, Any]]] = {}
    for e in items:  # in bpp order, so each family's curve is too
        families.setdefault(f"{e['model']}/{e['loss']}", []).append(e)
    curve = lambda rows: {  # noqa: E731
        key: [r["val"].get(key, float("nan")) for r in rows]
        for key in ("bpp", "psnr", "object_psnr", "background_psnr", "empty_bpp")
    }
    anchor = curve(families.pop(anchor_family, []))
    regions = {"object": "object_psnr", "background": "background_psnr", "whole": "psnr"}
    return [
        {
            "family": family,
            "anchor": anchor_family,
            **{f"{region}_bd_psnr": bd_psnr(anchor, curve(rows), key) for region, key in regions.items()},
            "codecs": [
                {
                    "name": e["name"],
                    "bpp": e["val"]["bpp"],
                    "empty_bpp": (empty := e["val"].get("empty_bpp", float("nan"))),
                    "empty_ratio": empty / _log_log_at(anchor["bpp"], anchor["empty_bpp"], e["val"]["bpp"]),
                }
                for e in rows
            ],
        }
        for family, rows in families.items()
    ]


def _log_log_at(xs: list[float], ys: list[float], x: float) -> float:
    """``ys`` over ``xs`` (rising) at ``x``, linear in log-log between the neighbours or along the end segment
    outside them; NaN with fewer than 2 points, or where the segment has no positive values or no width."""
    if len(xs) < 2:
        return float("nan")
    i = min(max(sum(v <= x for v in xs) - 1, 0), len(xs) - 2)
    (x0, x1), (y0, y1) = xs[i : i + 2], ys[i : i + 2]
    if not (all(v > 0 for v in (x, x0, x1, y0, y1)) and x1 != x0):  # NaN too: validated without such images
        return float("nan")
    slope = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * math.exp(slope * math.log(x / x0))


def hardware() -> str:
    """The machine that trained, in words (GPU name, or CPU and core count)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def export(profile: str, params: dict[str, Any], runs: list, served: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the current weights of ``runs`` (TrainConfigs of the sweeps) into the zoo, with logs and manifest.

    Runs that have no checkpoint yet are left out; unfinished ones are exported with
    ``finished: false`` and the steps they have. Earlier entries of other codecs are kept.
    ``served``: the recipe the pipeline installs from the zoo, when ``params`` is another one being trained
    into it (:func:`recipe`'s overlay): the manifest's ``recipe`` is then ``served`` and ``next_recipe``
    ``params``.
    """
    from safetensors.torch import save as save_weights

    from icm_lib.checkpoint import load_checkpoint, read_weights_only
    from icm_lib.training.loop import CHECKPOINT, METRICS
    from icm_lib.training.sweep import sources_first, stale_fine_tunes

    folder = zoo_dir(profile)
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    try:
        kept = {e["name"]: e for e in entries(profile)}
    except UserError:
        kept = {}
    restored = {}  # sha256 of a file stored anew -> the new file's: the same weights
    stale = stale_fine_tunes(runs, _recorded_origin(kept))
    for cfg in sources_first(runs):  # a source's entry before its fine-tunes'
        name = codec_name(cfg.model, cfg.loss, cfg.lmbda)
        if not (cfg.out_dir / CHECKPOINT).is_file() or name in stale:
            continue  # a fine-tune of an older state of its source keeps its entry until it is trained anew
        previous = kept.get(name, {})
        run_meta = read_weights_only(cfg.out_dir / CHECKPOINT)["meta"]
        # not its history: another codec under the same name (the recipe now starts it elsewhere), or a fine-tune
        # made anew from its source's current state (one still of an earlier state is ``stale``, skipped above)
        started_elsewhere = _source_of(previous) != ((run_meta.get("train_config") or {}).get("warm_start") or None)
        if started_elsewhere or source_changed(previous, kept):
            previous = {}
        # a checkpoint seeded from the zoo says so (``zoo``) until it trains on; one trained here (the same steps
        # as the entry's, e.g. a fine-tune redone from a changed source) is exported again
        trained_here = int(run_meta["step"]) != previous.get("steps") or "zoo" not in run_meta
        if not trained_here and (previous.get("precision"), previous.get("stored")) == (PRECISION, STORED):
            continue  # nothing new since its entry (e.g. a run seeded from the zoo): the entry stays as it is
        model, meta, state = load_checkpoint(cfg.out_dir / CHECKPOINT)
        weights = folder / f"{name}.safetensors"
        write_atomic(weights, save_weights(stored_weights(model)))
        if previous and not trained_here:  # the same codec stored anew (PRECISION, STORED): its record stays
            kept[name] = {**previous, **_file_fields(weights)}
            restored[previous["sha256"]] = kept[name]["sha256"]
            continue
        trained = meta.get("train_config") or cfg.to_meta()  # the run's own settings (a time budget fixes its steps)
        recorded = {k: v for k, v in trained.items() if k not in ("out_dir", "resume", "init", "stop_at")}
        # a codec continued here with other settings than it was first trained with keeps those too: the
        # first (``earlier_train_config``) and each stage's in order (``train_stages``, the current one last)
        earlier = previous.get("earlier_train_config") or previous.get("train_config")
        stages = previous.get("train_stages") or [c for c in (earlier, previous.get("train_config")) if c]
        stages = [c for i, c in enumerate(stages) if i == 0 or c != stages[i - 1]]
        stages = stages if stages and stages[-1] == recorded else [*stages, recorded]
        log = folder / "logs" / f"{name}.jsonl"
        if (cfg.out_dir / METRICS).is_file():
            write_atomic(log, _log_rows(cfg.out_dir / METRICS))
        spec = dataset_spec(profile, cfg.dataset)
        kept[name] = {
            "name": name,
            "model": cfg.model,
            "model_config": meta["model_config"],
            "loss": cfg.loss,
            "loss_kwargs": {"lmbda": cfg.lmbda, **cfg.loss_kwargs},
            "lmbda": cfg.lmbda,
            "steps": int(meta["step"]),
            "target_steps": int(trained["steps"]),
            "warm_start": _warm_start_entry(trained.get("warm_start"), kept, meta.get("warm_start"), previous),
            "task_network": _task_network_entry(cfg),
            "finished": int(meta["step"]) >= int(trained["steps"]),
            "train_seconds": float(state["seconds"]) if state else previous.get("train_seconds"),
            "train_cpu_seconds": float(state.get("cpu_seconds", 0.0)) if state else previous.get("train_cpu_seconds"),
            "hardware": _hardware_log(previous.get("hardware", [])),
            "train_config": recorded,
            "data": {"profile": profile, "dataset": cfg.dataset, "spec": spec, "fingerprint": data_fingerprint(spec)},
            **({"earlier_train_config": earlier} if earlier and earlier != recorded else {}),
            **({"train_stages": stages} if len(stages) > 1 else {}),
            **_file_fields(weights),
            "log": f"logs/{log.name}",
            "val": _last_validation(log),
        }
    for item in kept.values():  # a fine-tune names its source's weights, whichever file now holds them
        source = item.get("warm_start") or {}
        if source.get("sha256") in restored:
            item["warm_start"] = {**source, "sha256": restored[source["sha256"]]}
    data = {
        "format": FORMAT,
        "version": VERSION,
        "profile": profile,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "recipe": _recorded_recipe(served or params),
        **({"next_recipe": _recorded_recipe(params)} if served and served != params else {}),
        "codecs": _in_order(kept.values()),
    }
    write_json(folder / MANIFEST, data)
    return data


def _in_order(codecs) -> list[dict[str, Any]]:
    """A manifest's codecs in its order: by loss, then from the highest lambda down."""
    return sorted(codecs, key=lambda e: (e["loss"], -e["lmbda"]))


def _recorded_recipe(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in ("RESUME", "INIT", "INIT_OFFICIAL")}


def stored_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights as the zoo stores them: the floating-point tensors of the transforms (g_a, g_s, h_a, h_s) in
    half precision, half the bytes; those of the entropy models (factorized prior, quantiles, Gaussian scale
    table) and the factorized prior's integer CDF tables exact. The Gaussian conditional's CDF tables are left
    out: they are a function of its scale table alone, the same for every codec of a model (0.8 MB each for
    the demo's), and :func:`restore_weights` builds them again. Loading casts the rest back to float32, so
    encoder and decoder run the same rounded transforms; ``icm zoo precision`` measures what the rounding
    changes."""
    from compressai.entropy_models import EntropyModel, GaussianConditional

    exact = tuple(f"{name}." for name, module in model.named_modules() if isinstance(module, EntropyModel))
    rebuilt = {
        f"{name}.{table}"
        for name, module in model.named_modules()
        if isinstance(module, GaussianConditional)
        for table in GAUSSIAN_TABLES
    }
    return {
        k: (v.to(getattr(torch, PRECISION)) if v.is_floating_point() and not k.startswith(exact) else v).contiguous()
        for k, v in model.state_dict().items()
        if k not in rebuilt
    }


def restore_weights(model: nn.Module, stored: dict[str, torch.Tensor]) -> nn.Module:
    """Load :func:`stored_weights` into a model built from the entry's config: float32 again, each Gaussian
    conditional's CDF tables built from its stored scale table (as CompressAI's ``update_scale_table`` does,
    bit for bit what the codec was trained and validated with), the factorized prior's from the file."""
    from compressai.entropy_models import GaussianConditional

    state = dict(stored)
    for name, module in model.named_modules():
        if isinstance(module, GaussianConditional) and f"{name}.{GAUSSIAN_TABLES[0]}" not in state:
            module.update_scale_table(state[f"{name}.scale_table"].float(), force=True)
            state |= {f"{name}.{table}": getattr(module, table) for table in GAUSSIAN_TABLES}
    model.load_state_dict(state)
    model.update(force=False)  # the tables of the file and those just built stay; none is missing
    return model


def precision_effect(params: dict[str, Any], images: int = 40) -> list[dict[str, Any]]:
    """What storing the zoo's weights in :data:`PRECISION` changes, per codec whose run is on this machine:
    the validation (real bitstreams, the first ``images`` val images and the object-free ones) of the run's
    float32 weights and of the same weights as stored, ``{"name", "float32": {...}, PRECISION: {...}}``."""
    from icm_lib.checkpoint import load_checkpoint
    from icm_lib.data.layout import DatasetLayout
    from icm_lib.training.loop import CHECKPOINT
    from icm_lib.training.validate import evaluate_codec

    rows = []
    for cfg in zoo_runs(params):
        if not (cfg.out_dir / CHECKPOINT).is_file():
            continue
        model, _, _ = load_checkpoint(cfg.out_dir / CHECKPOINT)
        rounded = copy.deepcopy(model)
        restore_weights(rounded, stored_weights(model))
        layout = DatasetLayout.of(cfg.profile, cfg.dataset)
        rows.append(
            {
                "name": codec_name(cfg.model, cfg.loss, cfg.lmbda),
                "float32": evaluate_codec(model, layout, max_images=images),
                PRECISION: evaluate_codec(rounded, layout, max_images=images),
            }
        )
    return rows


def _file_fields(weights: Path) -> dict[str, Any]:
    """A zoo entry's fields of its weights file."""
    return {
        "file": weights.name,
        "precision": PRECISION,
        "stored": STORED,
        "sha256": file_sha256(weights),
        "bytes": weights.stat().st_size,
    }


def _warm_start_entry(
    source: str | None,
    kept: dict[str, dict[str, Any]],
    origin: dict[str, Any] | None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The codec a warm-started one was fine-tuned from, with that codec's steps then (its own come on top) and
    the sha256 of its zoo file when the zoo holds that state of it (``origin``: what the run recorded). A source
    the zoo no longer holds (:func:`prune`) keeps what the codec's ``previous`` entry recorded of it, its log
    among it."""
    if not source:
        return None
    entry = kept.get(source, {})
    steps = int(origin["step"]) if origin else entry.get("steps")
    recorded = (previous or {}).get("warm_start") or {}
    if not entry and (recorded.get("from"), recorded.get("steps")) == (source, steps):
        return recorded
    return {"from": source, "steps": steps, "sha256": entry.get("sha256") if entry.get("steps") == steps else None}


def _recorded_origin(known: dict[str, dict[str, Any]]):
    """``cfg -> origin`` from the zoo's entry of the codec, for a fine-tune's checkpoint that records none
    (trained before runs recorded it; :func:`icm_lib.training.sweep.stale_fine_tunes`)."""

    def origin(cfg) -> dict[str, Any] | None:
        source = (known.get(codec_name(cfg.model, cfg.loss, cfg.lmbda)) or {}).get("warm_start") or {}
        return {"from": source["from"], "step": source["steps"]} if source.get("steps") is not None else None

    return origin


def _task_network_entry(cfg) -> dict[str, Any] | None:
    """The frozen detector a task-loss codec (Eq. 2) was trained through: its weights file and sha256."""
    if cfg.loss != "task":
        return None
    from icm_lib.losses import criterion_kwargs
    from icm_lib.paths import project_root
    from icm_lib.task_network import weights_path

    network = criterion_kwargs(cfg.loss, cfg.loss_kwargs).get("network")
    path = weights_path(str(network), cfg.profile, cfg.dataset)
    shown = path.relative_to(project_root()) if path.is_relative_to(project_root()) else path
    return {"network": network, "file": str(shown), "sha256": file_sha256(path) if path.is_file() else None}


def _log_rows(metrics: Path) -> str:
    """The validation lines of a run's ``metrics.jsonl`` and every 100th training line: the curves' data, small."""
    rows = []
    for line in metrics.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("split") == "val" or row["step"] % 100 == 0:
                rows.append(line + "\n")
    return "".join(rows)


def _last_validation(log: Path) -> dict[str, Any]:
    if not log.is_file():
        return {}
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    vals = [r for r in rows if r.get("split") == "val"]
    return vals[-1] if vals else {}


def _hardware_log(previous: list) -> list:
    """Hardware this codec was trained on, one entry per machine kind."""
    here = hardware()
    return previous if here in previous else [*previous, here]


def seed_runs(profile: str, runs: list, to_train: bool = True, chosen: list | None = None) -> list[str]:
    """Start every run that has no checkpoint from the zoo's weights of the same codec, when the zoo has them.

    The run's checkpoint then holds the zoo's weights and step, with no optimizer state
    (Adam restarts; the learning-rate schedule is placed at the step). ``to_train``: leave out a fine-tune
    that is not the recipe's any more (:func:`_stale_warm_start`; it is trained anew), where :func:`install`
    places every codec of the zoo as it is. ``chosen``: the runs this call trains (default: all); of a stale
    fine-tune outside them the message says it is left as the zoo has it. Returns the names seeded.
    """
    from icm_lib.checkpoint import save_checkpoint
    from icm_lib.losses import method_label
    from icm_lib.training.loop import CHECKPOINT, METRICS
    from icm_lib.training.sweep import sources_first

    try:
        known = {e["name"]: e for e in entries(profile)}
    except UserError:
        return []
    seeded, anew = [], set()
    for cfg in sources_first(runs):  # a source before its fine-tunes
        name = codec_name(cfg.model, cfg.loss, cfg.lmbda)
        if (cfg.out_dir / CHECKPOINT).is_file() or name not in known:
            continue
        item = known[name]
        stale = f"its source {cfg.warm_start} is trained anew" if cfg.warm_start in anew else ""
        stale = stale or _stale_warm_start(cfg, item, known)
        if stale and to_train:
            if chosen is None or any(cfg is other for other in chosen):
                print(f"[zoo] {name}: not resumed from the zoo, {stale}; trained anew", flush=True)
            else:
                print(f"[zoo] {name}: {stale}; not among the codecs to train, the zoo's entry stays", flush=True)
            anew.add(name)
            continue
        model = load(profile, name)
        state = {
            "step": item["steps"],
            "seconds": item.get("train_seconds") or 0.0,
            "cpu_seconds": item.get("train_cpu_seconds") or 0.0,
            "rng": [],
        }
        meta = {
            "loss": cfg.loss,
            "method": method_label(model, cfg.loss),  # what its records say it is (the ROI codec: not Object-MSE)
            "lmbda": cfg.lmbda,
            "step": item["steps"],
            "zoo": {"profile": profile, "name": name},
            "data": {"profile": profile, "dataset": cfg.dataset, "split": "train"},
            "train_config": cfg.to_meta(),
            **({"warm_start": origin} if (origin := _recorded_origin(known)(cfg)) else {}),
        }
        save_checkpoint(cfg.out_dir / CHECKPOINT, model, meta, training_state=state)
        log = zoo_dir(profile) / item["log"]
        if log.is_file():
            shutil.copyfile(log, cfg.out_dir / METRICS)
        if item.get("finished"):  # finished as a run trained here: what is fine-tuned from it starts, not waits
            _write_summary(profile, cfg, item)
        seeded.append(name)
    return seeded


def seed_sources(profile: str, runs: list) -> list[str]:
    """Place the zoo's codec each run starts from that is no codec of the recipe (``GROWN_FROM``: another model's)
    in that codec's run folder, where the run's ``init`` points, for the runs that have no checkpoint yet and
    no entry of their own in the zoo (those are resumed from it). Returns the names placed."""
    import dataclasses

    from icm_lib.training.loop import CHECKPOINT

    names = {codec_name(cfg.model, cfg.loss, cfg.lmbda) for cfg in runs}
    try:
        known = {e["name"]: e for e in entries(profile)}
    except UserError:
        return []
    placed = []
    for cfg in runs:
        source = known.get(cfg.warm_start)
        own = codec_name(cfg.model, cfg.loss, cfg.lmbda)
        placed_already = cfg.init is None or cfg.init.is_file() or (cfg.out_dir / CHECKPOINT).is_file()
        if not source or cfg.warm_start in names or own in known or placed_already:
            continue
        as_trained = dataclasses.replace(
            cfg,
            out_dir=cfg.init.parent,
            model=source["model"],
            model_kwargs=source["model_config"],
            steps=source.get("target_steps", source["steps"]),
            warm_start=(source.get("warm_start") or {}).get("from") or "",
            init=None,
        )
        placed += seed_runs(profile, [as_trained], to_train=False)
    return placed


def _source_of(item: dict[str, Any]) -> str | None:
    """The codec a zoo entry was fine-tuned from (None: trained from scratch, or no entry)."""
    return (item.get("warm_start") or {}).get("from")


def _stale_warm_start(cfg, item: dict[str, Any], known: dict[str, dict[str, Any]]) -> str:
    """Why the zoo's codec is not the one the recipe fine-tunes (empty when it is): the recipe starts it from
    another codec than the zoo's did, or its source has changed in the zoo since it was fine-tuned."""
    if (cfg.warm_start or None) != _source_of(item):
        return (
            f"the recipe starts it from {cfg.warm_start or 'scratch'}, the zoo's from {_source_of(item) or 'scratch'}"
        )
    if source_changed(item, known):
        return f"its source {cfg.warm_start} has changed since"
    return ""


def source_changed(item: dict[str, Any], known: dict[str, dict[str, Any]], _seen: tuple = ()) -> bool:
    """Whether a zoo codec was fine-tuned from another state of its source than the one the zoo holds now, or
    from a codec that was (a chain); ``icm zoo train`` fine-tunes it again."""
    origin = item.get("warm_start") or {}
    source = known.get(origin.get("from"))
    if source is None or source["name"] in _seen:
        return False
    return source.get("sha256") != origin.get("sha256") or source_changed(source, known, (*_seen, item["name"]))


def train(
    params: dict[str, Any],
    chunk: int = 2000,
    rounds: int = 0,
    only: list[str] | None = None,
    served: dict[str, Any] | None = None,
) -> list:
    """Train the profile's sweeps for the zoo: every codec from scratch with its own loss, in rounds.

    Each round brings every unfinished codec to ``chunk`` steps past the one furthest behind
    (codecs already there wait, so the exported codecs stay comparable; ``PROCESSES`` processes at
    a time, one thread each, on the CPU or sharing one GPU), then exports all of them to the zoo,
    so a session that ends between rounds leaves every codec checkpointed and exported. Runs
    without a checkpoint start from the zoo's weights when it has them. Generated data that is
    missing is generated first (with its masks).

    Args:
        params: the ``02_train_codecs`` parameters of the profile (the recipe).
        chunk: steps per codec per round.
        rounds: stop after this many rounds (0: until every codec is finished).
        only: train just the codecs whose names match one of these shell patterns
            (``mbt2018-mean-object-*``); the others are left as they are. A fine-tune among them
            is made anew from its source when the source has changed, as without ``only``.
        served: the recipe the pipeline installs, when ``params`` is the next one (:func:`export`).
    Returns:
        The runs' TrainConfigs.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from icm_lib.training import distributed
    from icm_lib.training.loop import CHECKPOINT, train_codec
    from icm_lib.training.sweep import train_one_thread

    profile = params["PROFILE"]
    ensure_data(profile, params["DATASET"])
    runs = _trainable(zoo_runs(params))
    chosen = selected(runs, only)  # trained; every run stays in ``runs``, for its fine-tunes' sources
    for name in seed_runs(profile, runs, chosen=chosen):
        print(f"[zoo] {name}: resumed from the zoo's weights (fresh optimizer state)", flush=True)
    for name in seed_sources(profile, chosen):
        print(f"[zoo] {name}: placed from the zoo, to grow the recipe's codec from (GROWN_FROM)", flush=True)
    ctx = distributed.setup()
    processes = int(params.get("PROCESSES", 1))  # on a GPU too: small codecs side by side share it well
    if params.get("TIME_BUDGET"):  # one round in which each run fixes its own steps to the budget
        chunk, rounds = 10**9, 1
    done_rounds = 0
    while not rounds or done_rounds < rounds:
        waiting = _retire_stale(profile, runs, chosen)
        todo = [cfg for cfg in chosen if not _done(cfg)]
        if not todo:
            break
        # A warm-started codec waits for its source (``WARM_START``) to finish.
        ready = [cfg for cfg in todo if not cfg.warm_start or _source_finished(cfg, runs, waiting)]
        if not ready:
            for cfg in todo:  # its source is neither finished nor trained by this call: say so, not stop silently
                print(
                    f"[zoo] {codec_name(cfg.model, cfg.loss, cfg.lmbda)}: waits for its source {cfg.warm_start}, "
                    "which is not finished: train it too (--only)",
                    flush=True,
                )
            break
        todo = ready
        done = {id(cfg): _step_of(cfg.out_dir / CHECKPOINT) for cfg in todo}
        target = min(done.values()) + chunk  # the codecs furthest behind catch up first: comparable at every export
        todo = [cfg for cfg in todo if done[id(cfg)] < target]
        for cfg in todo:
            cfg.stop_at = 0 if cfg.time_budget else min(cfg.steps, target)
        started = time.perf_counter()
        if processes > 1 and len(todo) > 1:
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(train_one_thread, todo))
        else:
            for cfg in todo:
                train_codec(cfg, ctx)
        export(profile, params, chosen, served)
        done_rounds += 1
        print(
            f"[zoo] round {done_rounds}: {len(todo)} codecs to step <= {max(c.stop_at for c in todo)} "
            f"in {time.perf_counter() - started:.0f} s; exported to {zoo_dir(profile)}",
            flush=True,
        )
    return runs


def selected(runs: list, patterns: list[str] | None) -> list:
    """The runs whose codec names match one of the shell patterns (all of them without patterns).

    Raises:
        UserError: a pattern matches none of the recipe's codecs.
    """
    if not patterns:
        return runs
    names = [codec_name(cfg.model, cfg.loss, cfg.lmbda) for cfg in runs]
    for pattern in patterns:
        if not fnmatch.filter(names, pattern):
            raise UserError(f"no codec of the recipe matches {pattern!r}; its codecs: {', '.join(names)}")
    return [cfg for cfg, name in zip(runs, names) if any(fnmatch.fnmatchcase(name, p) for p in patterns)]


def _trainable(runs: list) -> list:
    """The runs whose loss can be built on this machine; the others are left out, each with one line that
    says why (the task loss on a machine without ultralytics), with the runs fine-tuned from them, so that
    a bare GPU machine trains the rest of the zoo instead of failing in a round."""
    from icm_lib.losses import create_criterion
    from icm_lib.training.sweep import sources_first

    missing: dict[str, str] = {}
    for cfg in sources_first(runs):  # a source before its fine-tunes
        if cfg.warm_start in missing:
            missing[codec_name(cfg.model, cfg.loss, cfg.lmbda)] = f"its source {cfg.warm_start} is left out"
            continue
        try:
            create_criterion(cfg.loss, cfg.lmbda, {"profile": cfg.profile, "dataset": cfg.dataset}, **cfg.loss_kwargs)
        except UserError as err:
            missing[codec_name(cfg.model, cfg.loss, cfg.lmbda)] = str(err)
    for name, why in missing.items():
        print(f"[zoo] {name}: left out here, {why}", flush=True)
    return [cfg for cfg in runs if codec_name(cfg.model, cfg.loss, cfg.lmbda) not in missing]


def _retire_stale(profile: str, runs: list, chosen: list) -> dict[str, str]:
    """Move aside each fine-tune whose source has trained on since it started, once that source is finished
    (and, with it, the fine-tunes made from it: a chain), so that it is fine-tuned anew from it: each of the
    ``chosen`` runs (those being trained) with its chain. Returns the stale fine-tunes left waiting for their
    source, by name, with why."""
    from icm_lib.training.loop import CHECKPOINT
    from icm_lib.training.sweep import retire, stale_fine_tunes

    try:
        known = {e["name"]: e for e in entries(profile)}
    except UserError:
        known = {}
    stale = stale_fine_tunes(runs, _recorded_origin(known))
    by_name = {codec_name(c.model, c.loss, c.lmbda): c for c in runs}
    for name, why in list(stale.items()):
        cfg = by_name[name]
        if cfg.warm_start not in stale and _done(by_name[cfg.warm_start]) and cfg in chosen:
            for run in _made_from(cfg, runs):  # the chain too, chosen or not: its checkpoints are outdated
                if (run.out_dir / CHECKPOINT).is_file():
                    retire(run, why if run is cfg else f"made from {cfg.warm_start}'s earlier state via {name}")
                stale.pop(codec_name(run.model, run.loss, run.lmbda), None)
    return stale


def _made_from(cfg, runs: list) -> list:
    """``cfg`` and every run fine-tuned from it, directly or through another."""
    made = [cfg]
    for run in runs:
        if run.warm_start == codec_name(cfg.model, cfg.loss, cfg.lmbda):
            made += _made_from(run, runs)
    return made


def _source_finished(cfg, runs: list, waiting: dict[str, str]) -> bool:
    """Whether a warm-started run can go on: its source codec is finished (a fine-tune trained while its source
    trains on would be made anew from the source's new weights: steps wasted), or, with no source among the
    runs (a codec grown from another model's, ``GROWN_FROM``), it has its own checkpoint or its source's; not
    while it, or its source, is a fine-tune ``waiting`` for its own source to finish (:func:`_retire_stale`)."""
    from icm_lib.training.loop import CHECKPOINT

    if codec_name(cfg.model, cfg.loss, cfg.lmbda) in waiting or cfg.warm_start in waiting:
        return False
    sources = [s for s in runs if codec_name(s.model, s.loss, s.lmbda) == cfg.warm_start]
    if sources:
        return _done(sources[0])
    return (cfg.out_dir / CHECKPOINT).is_file() or (cfg.init is not None and Path(cfg.init).is_file())


def _done(cfg) -> bool:
    """Whether a zoo run needs no more training: finished here, or past its steps (a codec of the zoo trained
    longer than the recipe asks, e.g. under a time budget, is kept as it is, not refused as another codec)."""
    from icm_lib.training.loop import CHECKPOINT
    from icm_lib.training.sweep import is_finished

    step = _step_of(cfg.out_dir / CHECKPOINT)
    return step > cfg.steps or (step == cfg.steps and is_finished(cfg))


def _step_of(checkpoint: Path) -> int:
    """The step a run's checkpoint has reached (0 without one)."""
    from icm_lib.checkpoint import read_weights_only

    return int(read_weights_only(checkpoint)["meta"]["step"]) if checkpoint.is_file() else 0


def zoo_runs(params: dict[str, Any]) -> list:
    """The recipe's runs as the zoo trains them: in ``data/<profile>/zoo-runs/<loss>/<model>_lambda<l>``,
    apart from the run folders of the pipeline (``codecs/``), which :func:`install` fills from the zoo.

    With ``GROWN_FROM`` a codec the recipe trains from scratch starts from the zoo's codec of the same loss and
    lambda under that model when the zoo holds it (:func:`icm_lib.training.sweep.sweep_configs`), as a
    fine-tune of it; without one it trains from scratch with the recipe (an empty zoo: everything anew)."""
    import dataclasses

    from icm_lib.paths import codecs_dir, data_dir
    from icm_lib.training.sweep import sweep_configs

    base, runs = sweep_configs(params, grown=_growable(params["PROFILE"]))
    if base is not None:
        raise UserError("the zoo trains every codec from scratch with its own loss: set BASE_STEPS to 0")
    root = data_dir(params["PROFILE"]) / "zoo-runs"

    def moved(path: Path) -> Path:  # codecs/<loss>/<run>[/checkpoint.pt] -> zoo-runs/<loss>/<run>[/...]
        return root / path.relative_to(codecs_dir(params["PROFILE"]))

    return [
        dataclasses.replace(cfg, out_dir=moved(cfg.out_dir), init=moved(cfg.init) if cfg.warm_start else cfg.init)
        for cfg in runs
    ]


def prune(profile: str, params: dict[str, Any], dry_run: bool = False) -> list[str]:
    """Drop from the zoo every codec that is no codec of the recipe ``params``: its entry, file and log (e.g.
    the ``mbt2018-mean`` codecs once the recipe serves those grown from them). What the remaining entries
    record of a dropped codec (``warm_start``: its name, steps and sha256) stays, and git's history keeps its
    file. The log of a codec another was grown or fine-tuned from stays too, named in that codec's
    ``warm_start`` (``log``): the first part of its training history, which notebook 02's figure draws
    (:func:`install`); that record also keeps the source's model, settings, training time and hardware.
    Returns the names dropped (``dry_run``: that would be, nothing changed).

    Raises:
        UserError: the zoo lacks a codec of the recipe (switch the recipe once the zoo holds all of them).
    """
    from icm_lib.training.sweep import sweep_configs

    _, runs = sweep_configs(params, grown=_growable(profile))
    wanted = {codec_name(cfg.model, cfg.loss, cfg.lmbda) for cfg in runs}
    data = manifest(profile)
    missing = sorted(wanted - {e["name"] for e in data["codecs"]})
    if missing:
        raise UserError(f"the {profile} zoo lacks {', '.join(missing)} of the recipe: nothing dropped")
    dropped = [e for e in data["codecs"] if e["name"] not in wanted]
    if dry_run:
        return [e["name"] for e in dropped]
    data["recipe"] = _recorded_recipe(params)  # what the zoo serves from now on
    data.pop("next_recipe", None)
    data["codecs"] = [e for e in data["codecs"] if e["name"] in wanted]
    gone = {e["name"]: e for e in dropped}
    # what a dropped source was and cost stays with the codec made from it (the zoo's compute: the sum over its history)
    kept_fields = ("train_seconds", "train_cpu_seconds", "hardware", "model", "model_config", "train_config")
    history = set()  # the logs of dropped sources, kept as their codecs' history
    for item in data["codecs"]:
        source = gone.get(_source_of(item))
        if source is None:
            continue
        item["warm_start"] = {**item["warm_start"], **{k: source[k] for k in kept_fields if k in source}}
        if source.get("log") and (zoo_dir(profile) / source["log"]).is_file():
            item["warm_start"]["log"] = source["log"]
            history.add(source["log"])
    write_json(zoo_dir(profile) / MANIFEST, data)  # the manifest first: a file it lists is never missing
    for item in dropped:
        for name in (item["file"], item.get("log")):
            if name and name not in history:
                (zoo_dir(profile) / name).unlink(missing_ok=True)
    return [e["name"] for e in dropped]


def merge(profile: str, source: Path) -> list[str]:
    """Take the codecs of another zoo folder of the profile (``<source>/<profile>``: ``zoo-next``, where the codecs
    of a next recipe are kept while they are trained, or a zoo trained on another machine) into this zoo, as they
    are recorded there: each file checked against its entry's sha256 and copied with its logs, its entry replacing
    this zoo's of the same name (training time, hardware and stages included: what an export of the runs seeded
    from it would not know); the other entries stay. A codec started from one the other folder did not hold (grown
    from this zoo's) gets that source's sha256 when this zoo holds it at the step it started from. Every file is
    checked before any is copied, and the manifest is written last. Returns the names taken.

    Raises:
        UserError: ``source`` holds no zoo of the profile, is this zoo, or one of its files does not match its entry.
    """
    folder, theirs_dir = zoo_dir(profile), Path(source) / profile
    if theirs_dir.resolve() == folder.resolve():
        raise UserError(f"{theirs_dir} is the {profile} zoo itself: nothing to merge")
    theirs = manifest(profile, theirs_dir)
    if theirs.get("profile", profile) != profile:
        raise UserError(f"{theirs_dir / MANIFEST} is the zoo of profile {theirs['profile']!r}, not {profile!r}")
    for item in theirs["codecs"]:
        verified_file(theirs_dir / item["file"], item["sha256"], "zoo file")
    try:
        data = manifest(profile)
    except UserError:  # no zoo here yet: the other's becomes it
        data = {k: v for k, v in theirs.items() if k != "codecs"} | {"codecs": []}
    kept = {e["name"]: e for e in data["codecs"]}
    for item in theirs["codecs"]:
        logs = [item.get("log"), (item.get("warm_start") or {}).get("log")]
        for name in [item["file"], *[log for log in logs if log and (theirs_dir / log).is_file()]]:
            write_atomic(folder / name, (theirs_dir / name).read_bytes())
        kept[item["name"]] = item
    for item in theirs["codecs"]:  # each source named as an export here names it (one the other folder lacked)
        if (origin := item.get("warm_start")) and origin.get("steps") is not None:
            item["warm_start"] = _warm_start_entry(origin["from"], kept, {"step": origin["steps"]}, item)
    data["codecs"] = _in_order(kept.values())
    data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(folder / MANIFEST, data)  # the manifest last: a file it lists is never missing
    return [item["name"] for item in theirs["codecs"]]


def _growable(profile: str):
    """``codec name -> whether a recipe's codec can be grown from it`` (``GROWN_FROM``): the zoo holds it, or
    holds a codec grown from it (its source's entry may be gone by then, the grown one goes on as grown)."""
    try:
        known = entries(profile)
    except UserError:
        known = []
    return ({e["name"] for e in known} | {_source_of(e) for e in known}).__contains__


def ensure_data(profile: str, dataset: str) -> None:
    """Generate an embedded dataset and its masks when they are missing (a fresh machine); real data must exist."""
    from icm_lib.data import synth
    from icm_lib.data.masks import build_dataset_masks

    if dataset in synth.DATASETS and profile in synth.SIZES:
        build_dataset_masks(synth.synthesize(dataset, profile), verbose=False)
    elif not dataset_dir(profile, dataset).is_dir():
        raise UserError(f"no dataset {dataset_dir(profile, dataset)}: bring it into the layout first (icm data ...)")


def install(profile: str, params: dict[str, Any]) -> list[str]:
    """Put the zoo's codecs where notebooks 03 and 04 find trained codecs (the sweeps' run folders).

    Each codec of the recipe that the zoo holds gets ``checkpoint.pt`` (weights, no optimizer
    state), ``metrics.jsonl`` (its log) and ``summary.json`` (its manifest entry's validation);
    a codec grown from one that is no codec of the recipe (``GROWN_FROM``) also gets ``history.jsonl``,
    that codec's log up to the step it was grown at, when the zoo keeps it.
    A run folder holding a codec trained here (not installed from the zoo) is left as it is.
    Returns the names of the codecs in place (installed, or trained here).
    """
    from icm_lib.training.loop import CHECKPOINT, HISTORY, SUMMARY
    from icm_lib.training.sweep import sweep_configs

    _, runs = sweep_configs(params, grown=_growable(profile))  # a grown codec recorded as the zoo made it
    known = {e["name"]: e for e in entries(profile)}
    names = {codec_name(cfg.model, cfg.loss, cfg.lmbda) for cfg in runs}
    placed = []
    for cfg in runs:
        name = codec_name(cfg.model, cfg.loss, cfg.lmbda)
        if name not in known:
            raise UserError(
                f"the {profile} zoo has no codec {name} of the recipe: train it with 'icm zoo train --profile {profile}'"
            )
        item = known[name]
        summary_path = cfg.out_dir / SUMMARY
        previous = read_json(summary_path) if summary_path.is_file() else None
        if (cfg.out_dir / CHECKPOINT).is_file() and not (previous or {}).get("zoo"):
            print(
                f"[zoo] {cfg.out_dir} holds a codec trained here: used instead of the zoo's {name} "
                "(delete the folder to use the zoo's)",
                flush=True,
            )
            placed.append(name)
            continue
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        history = _history(profile, item, known, names)
        if history:
            write_atomic(cfg.out_dir / HISTORY, history)
        else:
            (cfg.out_dir / HISTORY).unlink(missing_ok=True)
        if previous and previous.get("zoo", {}).get("sha256") == item["sha256"]:
            placed.append(name)
            continue
        for stale in (CHECKPOINT, SUMMARY):
            (cfg.out_dir / stale).unlink(missing_ok=True)
        seed_runs(profile, [cfg], to_train=False)
        _write_summary(profile, cfg, item)  # an unfinished one too: notebooks 03 and 04 read its validation
        placed.append(name)
    return placed


def _write_summary(profile: str, cfg, item: dict[str, Any]) -> None:
    """The run's ``summary.json`` from the zoo entry ``item`` it was seeded from, as a run trained here leaves
    it: its validation, and, for a finished codec, the mark that makes the run finished (its fine-tunes go on)."""
    from icm_lib.training.loop import SUMMARY

    write_json(
        cfg.out_dir / SUMMARY,
        {
            "model": cfg.model,
            "loss": cfg.loss,
            "lmbda": cfg.lmbda,
            "step": item["steps"],
            "data_fingerprint": item["data"]["fingerprint"],
            "train_seconds": item.get("train_seconds"),
            "train_cpu_seconds": item.get("train_cpu_seconds"),
            "device": ", ".join(item.get("hardware", [])),
            "val": item["val"],
            "config": item["train_config"],
            "zoo": {"profile": profile, "name": item["name"], "sha256": item["sha256"], "finished": item["finished"]},
        },
    )


def _history(profile: str, item: dict[str, Any], known: dict[str, dict[str, Any]], recipe: set[str]) -> str:
    """The log of the codec ``item`` was grown from, up to the step it was grown at, when that codec is no codec
    of the ``recipe`` (whose own run draws its curve) and the zoo keeps its log (:func:`prune`); else empty."""
    origin = item.get("warm_start") or {}
    source = origin.get("from")
    if not source or source in recipe or origin.get("steps") is None:
        return ""
    log = origin.get("log") or (known.get(source) or {}).get("log")
    if not log or not (zoo_dir(profile) / log).is_file():
        return ""
    lines = (zoo_dir(profile) / log).read_text(encoding="utf-8").splitlines()
    return "".join(line + "\n" for line in lines if line.strip() and json.loads(line)["step"] <= origin["steps"])


def recipe(profile: str, overlay: str | Path | None = None) -> dict[str, Any]:
    """The zoo's recipe of a profile: its ``02_train_codecs`` parameters, runs resumed from their checkpoints.

    ``overlay``: a YAML file of settings that replace the profile's (upper-case keys, as in the profile's
    ``02_train_codecs`` section, or that section itself), e.g. the next zoo's recipe while it is trained
    (``zoo/demo/next-recipe.yaml``; the profile's recipe stays the one the pipeline installs until then).

    Raises:
        UserError: the overlay is missing, not a mapping, or holds a setting the stage does not know.
    """
    import yaml

    from icm_lib.config import TrainingStage

    params = notebook_params(profile, "02_train_codecs")
    if overlay is not None:
        path = Path(overlay)
        if not path.is_file():
            raise UserError(f"no recipe file {path}")
        try:
            extra = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise UserError(f"{path}: not YAML ({str(err).splitlines()[0]})") from None
        extra = extra.get("02_train_codecs", extra) if isinstance(extra, dict) else extra
        if not isinstance(extra, dict):
            raise UserError(f"{path}: expected a mapping of 02_train_codecs settings, got {type(extra).__name__}")
        params.update(extra)
        try:
            TrainingStage.from_params(params)
        except ValueError as err:
            raise UserError(f"{path}: {err}") from None
    params["RESUME"] = True
    return params


def obtain_codecs(params: dict[str, Any]) -> list:
    """Notebook 02's codecs: the zoo's (``ZOO`` true: installed, no training) or trained here with the recipe.

    Returns:
        The profile's trained codecs of the recipe's model (:class:`icm_lib.training.sweep.TrainedCodec`).
    """
    from icm_lib.training.sweep import finished_codecs, train_sweeps, training_stage

    if not params.get("ZOO"):
        return train_sweeps(params)
    placed = install(params["PROFILE"], params)
    print(
        f"[zoo] {len(placed)} codecs from {zoo_dir(params['PROFILE'])} (no training; ZOO: false retrains them here)",
        flush=True,
    )
    return finished_codecs(training_stage(params))
