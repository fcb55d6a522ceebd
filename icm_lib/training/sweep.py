"""Lambda sweeps: one codec per (registered loss, lambda), optionally warm-started from a shared base.

The paper trains each of its eight codecs from scratch (object lambdas 0.05,
0.02, 0.01, 0.005; MSE lambdas 0.01, 0.005, 0.002, 0.001). To fit the CPU
demo's budget, a profile may set ``BASE_STEPS``: one base model is trained
first (plain MSE at a middle lambda), and every codec of both sweeps is then
fine-tuned from it for ``STEPS`` steps with its own loss and lambda. This is a
deviation of the miniature only; the paper profile sets ``BASE_STEPS: 0``.
``PROCESSES`` > 1 uses that many CPU processes of one thread each: the base is
trained data-parallel over them (gloo, as under torchrun), then that many
codecs are fine-tuned side by side. On a small CPU a small model gains little
from a second thread, and more from a second process (tcm-tiny on 2 cores:
5.2 steps/s data-parallel against 3.9 with one process).
A GPU trains everything in one process (several GPUs use torchrun instead).

The sweeps are :class:`icm_lib.config.TrainingStage`'s ``lambdas``, one list per
registered loss (:data:`icm_lib.losses.CRITERIA`). Codecs live in
``codecs_dir(profile)/<loss>/<model>_lambda<lmbda>/``; a run is reused only when
its ``summary.json`` records the settings and data asked for
(:func:`is_finished`); one made otherwise is refused with what differs.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from icm_lib.checkpoint import read_weights_only, verify_checkpoint
from icm_lib.config import TrainingStage, fields_of
from icm_lib.data.layout import DatasetLayout
from icm_lib.io import read_json
from icm_lib.losses import CRITERIA, criterion_class
from icm_lib.paths import codec_name, codecs_dir
from icm_lib.training import distributed
from icm_lib.training.config import TrainConfig, recipe_differences, recorded_config
from icm_lib.training.loop import CHECKPOINT, SUMMARY, started_from, train_codec

# TrainConfig fields a sweep sets per run; every other one of the same name as a TrainingStage setting is taken
# from the stage as it is, so a setting added to both reaches every run without a list to edit here.
PER_RUN = (
    "out_dir",
    "profile",
    "model",
    "loss",
    "lmbda",
    "loss_kwargs",
    "steps",
    "init",
    "init_official",
    "warm_start",
    "resume",
    "stop_at",
)
SHARED_FIELDS = tuple(
    f.name for f in fields(TrainConfig) if f.name not in PER_RUN and f.name in fields_of(TrainingStage)
)


class RunMismatch(ValueError):
    """A run folder holds a codec made with other settings or data than the ones asked for."""


@dataclass(frozen=True)
class TrainedCodec:
    """A finished codec of a sweep."""

    model: str  # registry name, e.g. tcm-tiny
    loss: str  # a registered loss name (icm_lib.losses.CRITERIA)
    lmbda: float
    path: Path  # its checkpoint.pt
    method: str = ""  # the compared method's label (the loss's), e.g. Object-MSE

    @property
    def family(self) -> str:
        """The codec family of the coding evaluation, e.g. ``tcm-tiny-object``."""
        return f"{self.model}-{self.loss}"

    @property
    def codec_id(self) -> str:
        """``<family>@<lambda>``, e.g. ``tcm-tiny-object@0.05``."""
        return f"{self.family}@{self.lmbda:g}"

    def summary(self) -> dict[str, Any]:
        """The run's ``summary.json`` (training time, final validation)."""
        return read_json(self.path.parent / SUMMARY)


def run_dir(profile: str, loss: str, model: str, lmbda: float) -> Path:
    """``codecs_dir(profile)/<loss>/<model>_lambda<lmbda>``."""
    return codecs_dir(profile) / loss / f"{model}_lambda{lmbda:g}"


def base_dir(profile: str, loss: str, model: str, lmbda: float) -> Path:
    """The shared warm-start model's folder (not itself a codec of the sweeps)."""
    return codecs_dir(profile) / "base" / f"{model}_{loss}_lambda{lmbda:g}"


def is_finished(cfg: TrainConfig) -> bool:
    """Whether ``cfg.out_dir`` holds the finished run ``cfg`` asks for (then it is reused, not trained).

    False when the folder holds no finished run, or one of fewer steps with the same settings (it is
    extended). A run zoo.install placed counts as finished once it reached its steps, like one trained here.

    Raises:
        RunMismatch: the run was made with other settings (:func:`recipe_differences`, ``steps`` included
            unless a time budget fixes them) or on other data; the message names each difference.
    """
    out_dir = Path(cfg.out_dir)
    if not (out_dir / SUMMARY).is_file() or not (out_dir / CHECKPOINT).is_file():
        return False
    summary = read_json(out_dir / SUMMARY)
    recorded = recorded_config(summary.get("config") or {})
    budget = cfg.time_budget > 0 or recorded.get("time_budget", 0) > 0
    differences = recipe_differences(cfg, recorded, steps=False)
    if not budget and summary.get("step", 0) > cfg.steps:
        differences.append(f"steps {summary.get('step')} (asked {cfg.steps})")
    fingerprint = summary.get("data_fingerprint") or (summary.get("zoo") or {}).get("data_fingerprint")
    if fingerprint and fingerprint != DatasetLayout.of(cfg.profile, cfg.dataset).fingerprint():
        differences.append(f"data (it was trained on other {cfg.profile}/{cfg.dataset} data)")
    if differences:
        raise RunMismatch(
            f"{out_dir} holds a codec made otherwise: {'; '.join(differences)}. "
            f"Delete the folder to train it anew, or ask for its settings"
        )
    if summary.get("step", 0) < cfg.steps:
        return False
    verify_checkpoint(out_dir / CHECKPOINT)  # a truncated or altered checkpoint is an error, not a finished run
    return True


def finished_codecs(stage: TrainingStage, losses: tuple[str, ...] | None = None) -> list[TrainedCodec]:
    """The finished codecs of a stage's recipe (of these ``losses``; default: all of its sweeps): its runs'
    (model, loss, lambda) among :func:`trained_codecs`."""
    recipe = {(cfg.model, cfg.loss, cfg.lmbda) for cfg in sweep_configs(stage, losses)[1]}
    return [c for c in trained_codecs(stage.profile) if (c.model, c.loss, c.lmbda) in recipe]


def trained_codecs(profile: str) -> list[TrainedCodec]:
    """The finished codecs of a profile (every registered loss), by loss then decreasing lambda."""
    found = []
    for loss in CRITERIA:
        for summary in sorted((codecs_dir(profile) / loss).glob(f"*/{SUMMARY}")):
            data = read_json(summary)
            if (summary.parent / CHECKPOINT).is_file():
                method = data.get("method") or criterion_class(loss).method  # summaries before the registry lack it
                found.append(
                    TrainedCodec(data["model"], loss, float(data["lmbda"]), summary.parent / CHECKPOINT, method)
                )
    order = list(CRITERIA)
    return sorted(found, key=lambda c: (order.index(c.loss), -c.lmbda))


def training_stage(params: TrainingStage | dict[str, Any]) -> TrainingStage:
    """A :class:`TrainingStage` from itself or from notebook parameters (``RESUME`` aside)."""
    if isinstance(params, TrainingStage):
        return params
    return TrainingStage.from_params({k: v for k, v in params.items() if k != "RESUME"})


def sweep_configs(
    params: TrainingStage | dict[str, Any],
    losses: tuple[str, ...] | None = None,
    resume: bool | None = None,
    grown: Callable[[str], bool] | None = None,
) -> tuple[TrainConfig | None, list[TrainConfig]]:
    """The base run (None without ``base_steps``) and one run per (loss, lambda) of the stage.

    Args:
        params: the stage, or its upper-case parameters (``RESUME`` among them, as the zoo passes them).
        losses: which of the stage's sweeps (default: all of its ``lambdas``).
        resume: continue unfinished runs (default: ``RESUME`` of the parameters, else True).
        grown: ``source codec name -> whether it can be grown from`` (the zoo holds it); a run of the stage's
            model trained from scratch whose ``grown_from`` source passes starts from that source's run
            (:func:`_grown`). None: every such run from scratch (notebook 02 retraining here).
    """
    stage = training_stage(params)
    if resume is None:
        resume = params.get("RESUME", True) if isinstance(params, dict) else True
    losses = sweep_losses(stage) if losses is None else tuple(losses)
    for loss in losses:
        criterion_class(loss)  # an unknown loss name is refused with the registered ones
    shared = {name: getattr(stage, name) for name in SHARED_FIELDS} | {"resume": resume}
    base = None
    if stage.base_steps > 0:
        base = TrainConfig(
            base_dir(stage.profile, stage.base_loss, stage.model, stage.base_lambda),
            profile=stage.profile,
            loss=stage.base_loss,
            lmbda=stage.base_lambda,
            steps=stage.base_steps,
            loss_kwargs=stage.loss_kwargs.get(stage.base_loss, {}),
            **{**shared, "lr": stage.base_lr},
        )
    init = base.out_dir / CHECKPOINT if base else (Path(stage.init) if stage.init else None)
    sweeps = _codec_sweeps(stage)
    runs = [
        TrainConfig(
            run_dir(stage.profile, loss, model, lmbda),
            profile=stage.profile,
            model=model,
            loss=loss,
            lmbda=float(lmbda),
            loss_kwargs=stage.loss_kwargs.get(loss, {}),
            **{
                **shared,
                "steps": stage.steps,
                "init": init if model == stage.model else None,
                "init_official": stage.init_official and base is None and model == stage.model,
                **(
                    _warm_start(stage, sweeps, model, loss, float(lmbda))
                    or (_grown(stage, loss, float(lmbda), grown) if model == stage.model else {})
                ),
            },
        )
        for model, lambdas in sweeps
        for loss in losses
        for lmbda in lambdas.get(loss, [])
    ]
    return base, runs


def _warm_start(
    stage: TrainingStage, sweeps: list[tuple[str, dict[str, list[float]]]], model: str, loss: str, lmbda: float
) -> dict[str, Any]:
    """The settings of a run the stage's ``warm_start`` fine-tunes from another codec of the recipe (its
    checkpoint as ``init``, its own steps, lr and decay, none by default); empty for a run trained from scratch.

    A key ``model/loss`` fine-tunes every lambda of that sweep from the codec ``from: model/loss`` of the same
    lambda; a key ``model/loss/lambda`` fine-tunes that one codec, and its ``from`` may name the source's
    lambda too (``model/loss/lambda``), e.g. a rate fine-tuned from another rate of the same sweep.
    """
    key = f"{model}/{loss}/{lmbda:g}"
    spec = stage.warm_start.get(key)
    if spec is None:
        key = f"{model}/{loss}"
        spec = stage.warm_start.get(key)
    if spec is None:
        return {}
    key = f"warm_start: {key}"
    if not isinstance(spec, dict) or set(spec) - {"from", "steps", "lr", "decay_at", "val_every"} or "from" not in spec:
        raise ValueError(f"{key} needs {{from: model/loss, steps: N, lr: L}}, got {spec!r}")
    source_model, _, rest = str(spec["from"]).partition("/")
    source_loss, _, source_lmbda = rest.partition("/")
    try:
        source_lmbda = float(source_lmbda) if source_lmbda else lmbda
    except ValueError:
        raise ValueError(f"{key}: from {spec['from']!r} is not model/loss or model/loss/lambda") from None
    if (source_model, source_loss, source_lmbda) == (model, loss, lmbda):
        raise ValueError(f"{key}: a codec cannot be fine-tuned from itself")
    if source_lmbda not in [float(x) for x in dict(sweeps).get(source_model, {}).get(source_loss, [])]:
        raise ValueError(
            f"{key}: the recipe has no codec {source_model}/{source_loss} at lambda {source_lmbda:g} to start from "
            "(add it to the lambdas, or leave this codec out of warm_start)"
        )
    return _started_from(stage, spec, source_model, source_loss, source_lmbda)


def _started_from(stage: TrainingStage, spec: dict, model: str, loss: str, lmbda: float) -> dict[str, Any]:
    """A run's settings to start from the codec (model, loss, lambda) of the stage's runs: that codec's checkpoint
    as ``init``, its name as ``warm_start``, and the spec's own steps, lr, decay (none by default) and
    validation interval (the stage's otherwise)."""
    return {
        "warm_start": codec_name(model, loss, lmbda),
        "init": run_dir(stage.profile, loss, model, lmbda) / CHECKPOINT,
        "steps": int(spec.get("steps", stage.steps)),
        "lr": float(spec.get("lr", stage.lr)),
        "decay_at": list(spec.get("decay_at", [])),
        "val_every": int(spec.get("val_every", stage.val_every)),
    }


def _grown(stage: TrainingStage, loss: str, lmbda: float, grown: Callable[[str], bool] | None) -> dict[str, Any]:
    """The settings of a run that starts from the codec of the same loss and lambda under ``grown_from``'s model
    (its run's checkpoint as ``init``, recorded as ``warm_start``; the model's ``load_state_dict`` grows its
    weights, e.g. ``mbt2018-mean-wide`` a ``mbt2018-mean``'s), with ``grown_from``'s steps, lr, decay (none by
    default) and validation interval; empty when ``grown`` does not take the source (it trains from scratch)."""
    spec = stage.grown_from
    if not spec or grown is None:
        return {}
    if (
        not isinstance(spec, dict)
        or set(spec) - {"model", "steps", "lr", "decay_at", "val_every"}
        or "model" not in spec
    ):
        raise ValueError(f"grown_from needs {{model: M, steps: N, lr: L}}, got {spec!r}")
    if spec["model"] == stage.model:
        raise ValueError(f"grown_from: {stage.model} cannot grow from itself")
    if not grown(codec_name(spec["model"], loss, lmbda)):
        return {}
    return _started_from(stage, spec, spec["model"], loss, lmbda)


def sweep_losses(stage: TrainingStage) -> tuple[str, ...]:
    """Every loss the stage trains a codec with: those of ``lambdas``, then any only ``other_models`` use."""
    extra = [loss for lambdas in stage.other_models.values() if isinstance(lambdas, dict) for loss in lambdas]
    return tuple(dict.fromkeys([*stage.lambdas, *extra]))


def _codec_sweeps(stage: TrainingStage) -> list[tuple[str, dict[str, list[float]]]]:
    """``(model, {loss: lambdas})``: the stage's model with its ``lambdas``, then each of ``other_models``
    (a compared method on the same base, e.g. the ROI codec), trained from scratch with the same settings."""
    from icm_lib.models import available

    for model, lambdas in stage.other_models.items():
        if model not in available():
            raise ValueError(f"other_models: unknown model {model!r}; available: {', '.join(available())}")
        if not isinstance(lambdas, dict):
            raise ValueError(f"other_models: {model} needs {{loss: [lambdas]}}, got {lambdas!r}")
        for loss in lambdas:
            criterion_class(loss)
    return [(stage.model, stage.lambdas), *stage.other_models.items()]


def train_sweeps(
    params: TrainingStage | dict[str, Any],
    losses: tuple[str, ...] | None = None,
    ctx: distributed.Context | None = None,
    resume: bool | None = None,
) -> list[TrainedCodec]:
    """Train the base (when asked) and every codec of the sweeps, reusing the finished runs asked for.

    Args:
        params: the stage (``TrainingStage.from_profile(profile)``) or its parameters;
            ``processes`` codecs are trained side by side after the base.
        losses: which sweeps to run (default: every loss of ``lambdas``).
    Returns:
        The profile's finished codecs of these losses.
    Raises:
        RunMismatch: a run folder holds a codec made with other settings or data.
    """
    ctx = ctx or distributed.setup()
    stage = training_stage(params)
    base, runs = sweep_configs(params, losses, resume)
    losses = sweep_losses(stage) if losses is None else tuple(losses)
    processes = stage.processes
    side_by_side = processes > 1 and ctx.world == 1 and ctx.device.type == "cpu"
    if base is not None and not _reused(base, ctx):
        if side_by_side:
            train_data_parallel(base, processes)
        else:
            train_codec(base, ctx)
    for group in warm_start_levels(runs):  # sources first
        if ctx.is_main:  # a fine-tune whose source has trained on since is trained anew from it
            stale = stale_fine_tunes(runs)
            for cfg in group:
                if codec_name(cfg.model, cfg.loss, cfg.lmbda) in stale:
                    retire(cfg, stale[codec_name(cfg.model, cfg.loss, cfg.lmbda)])
        distributed.barrier(ctx)
        group = [cfg for cfg in group if not _reused(cfg, ctx)]
        if side_by_side and len(group) > 1:
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
                for _ in pool.map(train_one_thread, group):
                    pass
        else:
            for cfg in group:
                train_codec(cfg, ctx)
    return finished_codecs(stage, losses)


def warm_start_levels(runs: list[TrainConfig]) -> list[list[TrainConfig]]:
    """The runs in groups that can train side by side: those from scratch, then those whose source is in an
    earlier group (a source the list does not hold is finished already), e.g. Object-MSE 0.015, then 0.05
    fine-tuned from it, then the ROI codec at 0.05 fine-tuned from that."""
    names = {codec_name(c.model, c.loss, c.lmbda) for c in runs}
    levels, placed, left = [], set(), list(runs)
    while left:
        level = [c for c in left if not c.warm_start or c.warm_start in placed or c.warm_start not in names]
        if not level:
            raise ValueError(f"warm_start: a cycle among {', '.join(sorted(c.warm_start for c in left))}")
        levels.append(level)
        placed |= {codec_name(c.model, c.loss, c.lmbda) for c in level}
        left = [c for c in left if all(c is not d for d in level)]
    return levels


def sources_first(runs: list[TrainConfig]) -> list[TrainConfig]:
    """The runs in :func:`warm_start_levels` order, flat: each source before the runs fine-tuned from it."""
    return [cfg for level in warm_start_levels(runs) for cfg in level]


def stale_fine_tunes(runs: list[TrainConfig], recorded=None) -> dict[str, str]:
    """The warm-started runs whose checkpoint no longer follows from its source, by codec name, with why: the
    source's run has trained on since the fine-tune started from it (its checkpoint is at another step), or
    the source is itself such a run (a chain: the ROI codec at 0.05 from Object-MSE 0.05 from 0.015).

    Args:
        runs: the recipe's runs, sources among them (a source the list does not hold is taken as it is).
        recorded: ``cfg -> origin`` for a checkpoint from before fine-tunes recorded theirs
            (:func:`icm_lib.training.loop.started_from`), e.g. the zoo's entry; None: such a one is kept.
    """
    by_name = {codec_name(c.model, c.loss, c.lmbda): c for c in runs}
    stale: dict[str, str] = {}
    steps: dict[str, int] = {}  # each source's checkpoint read once
    for cfg in sources_first(runs):
        name = codec_name(cfg.model, cfg.loss, cfg.lmbda)
        source = by_name.get(cfg.warm_start)
        if source is None or not (cfg.out_dir / CHECKPOINT).is_file():
            continue
        if cfg.warm_start in stale:
            stale[name] = f"its source {cfg.warm_start} is to be trained anew"
            continue
        origin = started_from(cfg.out_dir / CHECKPOINT) or (recorded(cfg) if recorded else None)
        if not origin or not (source.out_dir / CHECKPOINT).is_file():
            continue
        if cfg.warm_start not in steps:
            steps[cfg.warm_start] = int(read_weights_only(source.out_dir / CHECKPOINT)["meta"]["step"])
        now = steps[cfg.warm_start]
        if origin["from"] != cfg.warm_start or int(origin["step"]) != now:
            stale[name] = f"fine-tuned from {origin['from']} at step {origin['step']}, which is at step {now} now"
    return stale


def retire(cfg: TrainConfig, why: str) -> Path:
    """Move a run's folder aside, nothing deleted, so that it is trained anew: ``<loss>/<run>`` to
    ``stale/<loss>/<run>-<time>`` beside the loss folders (where no sweep looks for codecs)."""
    folder = Path(cfg.out_dir)
    moved = folder.parent.parent / "stale" / folder.parent.name / f"{folder.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    moved.parent.mkdir(parents=True, exist_ok=True)
    folder.rename(moved)
    print(f"[train] {folder.name} ({cfg.loss}): {why}; trained anew (the old run is in {moved})", flush=True)
    return moved


def _reused(cfg: TrainConfig, ctx: distributed.Context) -> bool:
    if not is_finished(cfg):
        return False
    if ctx.is_main:
        print(f"[train] {cfg.out_dir.name} ({cfg.loss}): finished, reused", flush=True)
    return True


def train_one_thread(cfg: TrainConfig) -> None:
    """One run in a worker process of :func:`train_sweeps`, with one thread."""
    import torch

    torch.set_num_threads(1)
    train_codec(cfg, distributed.setup())


def train_data_parallel(cfg: TrainConfig, processes: int) -> None:
    """Train one run data-parallel over ``processes`` local CPU processes (gloo, one thread each).

    The same as ``torchrun --nproc_per_node <processes> -m icm_lib.cli.train`` on this
    machine, started from Python (a notebook) instead of the shell. A failure in
    any process is raised here with that process's traceback.
    """
    import torch.multiprocessing as mp

    if cfg.batch_size % processes:
        raise ValueError(f"batch size {cfg.batch_size} is not divisible by the {processes} processes")
    mp.start_processes(
        _data_parallel_worker, args=(cfg, processes, _free_port()), nprocs=processes, start_method="spawn"
    )


def _data_parallel_worker(rank: int, cfg: TrainConfig, world: int, port: int) -> None:
    import torch

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    ctx = distributed.setup()
    try:
        train_codec(cfg, ctx)
    finally:
        distributed.teardown()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sweep_runs(params: TrainingStage | dict[str, Any], losses: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Every run folder of the sweeps by label (``base mse@0.003``, ``tcm-tiny-object@0.05`` ...)."""
    base, runs = sweep_configs(params, losses)
    out = {f"base {base.loss}@{base.lmbda:g}": base.out_dir} if base else {}
    out.update({f"{cfg.model}-{cfg.loss}@{cfg.lmbda:g}": cfg.out_dir for cfg in runs})
    return out
