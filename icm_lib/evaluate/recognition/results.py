"""Recognition results on disk: accuracy-rate curves, BD-rate tables, headline numbers.

``results/recognition/<dataset>/<detector>/``::

    uncompressed.json                 accuracy on the original val images
    <family>_<pretrained|finetuned>.json
                                      CompressAI's results shape: codec_id, bpp, map, map50 (segm_map...)
    bdrate_<metric>.json / .md        BD-rate of every curve against every other (Sec. 4 of the paper)
    evaluations.json                  cache of scores, keyed by model and image folder

A curve is named ``<family> (<mode>)``, e.g. ``tcm-tiny-object (finetuned)``.
Each curve's file carries what its codec is (``method``, ``model``, ``loss``;
:func:`icm_lib.evaluate.coding.codecs.codec_identity`): the paper's codec is the one
of method ``Object-MSE`` (:data:`~icm_lib.evaluate.coding.codecs.PAPER_METHOD`), compared with the ``MSE``
codec and the other compared methods (the ROI codec, which
shares the Object-MSE loss, and the task-loss codec); a curve without a loss is
a classical anchor. BD-rate tables record each row's method beside its name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from icm_lib.evaluate.coding.codecs import PAPER_METHOD, codec_identity
from icm_lib.evaluate.recognition.bdrate import Curve, bd_rate, bd_rate_table, write_table
from icm_lib.io import write_json
from icm_lib.paths import results_dir

MODES = ("pretrained", "finetuned")


def recognition_dir(profile: str, dataset: str, detector: str) -> Path:
    return results_dir(profile) / "recognition" / dataset / detector


def curve_methods(bodies: dict[str, dict]) -> dict[str, str | None]:
    """Each curve's compared method (``Object-MSE``, ``MSE``, ``ROI, Object-MSE`` ...; None: a classical
    anchor), by curve name."""
    identities = {name: codec_identity(body) for name, body in bodies.items()}
    return {name: None if i["loss"] is None else i["method"] for name, i in identities.items()}


def write_curve(
    folder: Path,
    family: str,
    mode: str,
    detector: str,
    rows: list[dict],
    n_images: int | None,
    identity: dict | None = None,
    seeds: list[int] | None = None,
) -> Path:
    """``<family>_<mode>.json``: one point per codec setting, sorted by bpp, with what the codec is
    (``identity``: ``method``, ``model``, ``loss``, as :attr:`ImageCodec.identity`) and, for fine-tuned
    detectors, the seeds of their fine-tunes (the scores are their mean; ``<metric>_by_seed`` each seed's)."""
    rows = sorted(rows, key=lambda r: r["bpp"])
    keys = [k for k in rows[0] if k != "codec_id"]
    description = (
        f"{detector} ({mode}) on {family}-decoded val images ({n_images or 'all'} images): "
        "bpp from the real bitstream (mean over images); mAP@[.5:.95] and mAP50 by pycocotools COCOeval"
    )
    identity = identity or {}
    body = {
        "name": family,
        "description": description,
        "detector": detector,
        "mode": mode,
        **{k: identity.get(k) for k in ("method", "model", "loss")},
        **({"seeds": list(seeds)} if seeds is not None else {}),
        "results": {"codec_id": [r["codec_id"] for r in rows], **{k: [r[k] for r in rows] for k in keys}},
    }
    return write_json(folder / f"{family}_{mode}.json", body)


def write_uncompressed(folder: Path, detector: str, scores: dict, n_images: int | None) -> Path:
    body = {
        "name": "uncompressed",
        "description": f"{detector} on the original val images ({n_images or 'all'} images), COCOeval",
        "results": {k: [v] for k, v in scores.items()},
    }
    return write_json(folder / "uncompressed.json", body)


def read_curves(folder: Path) -> dict[str, dict]:
    """Every ``<family>_<mode>.json`` of a folder, by curve name ``<family> (<mode>)``."""
    curves = {}
    for path in sorted(Path(folder).glob("*_*.json")):
        family, _, mode = path.stem.rpartition("_")
        if mode in MODES:
            curves[f"{family} ({mode})"] = json.loads(path.read_text(encoding="utf-8"))
    return curves


def read_uncompressed(folder: Path) -> dict[str, float]:
    path = Path(folder) / "uncompressed.json"
    if not path.is_file():
        return {}
    results = json.loads(path.read_text(encoding="utf-8"))["results"]
    return {k: (v[0] if v[0] is not None else math.nan) for k, v in results.items()}


def _curve(body: dict, metric: str) -> Curve:
    res = body["results"]
    return Curve(list(res["bpp"]), [math.nan if v is None else v for v in res.get(metric, [None] * len(res["bpp"]))])


def anchor_curve(methods: dict[str, str | None]) -> str | None:
    """The paper's codec's curve (:data:`PAPER_METHOD`), fine-tuned when there is one; ``methods`` by curve name."""
    objects = [n for n, method in methods.items() if method == PAPER_METHOD]
    finetuned = [n for n in objects if n.endswith("(finetuned)")]
    return (finetuned or objects or [None])[0]


def bd_rate_tables(
    folder: Path, metrics: tuple[str, ...] = ("map",), min_points: int = 4, drop_dominated: bool = False
) -> dict[str, dict]:
    """Write ``bdrate_<metric>.json`` and ``.md`` for every metric the curves hold; returns the tables."""
    bodies = read_curves(folder)
    methods = curve_methods(bodies)
    tables = {}
    for metric in metrics:
        curves = {n: _curve(b, metric) for n, b in bodies.items() if metric in b["results"]}
        if not curves:
            continue
        table = bd_rate_table(
            curves,
            anchor=anchor_curve({n: methods[n] for n in curves}),
            min_points=min_points,
            drop_dominated=drop_dominated,
        )
        table.update(
            metric=metric,
            min_points=min_points,
            drop_dominated=drop_dominated,
            methods={n: methods[n] for n in table["rows"]},
        )
        description = (
            f"BD-rate (%) of each row's curve against each column's at equal {metric} "
            "(bjontegaard, Akima); negative = the row needs fewer bits"
        )
        write_table(
            table,
            Path(folder) / f"bdrate_{metric}.json",
            description,
            title=f"{Path(folder).parent.name} / {Path(folder).name}: {metric}",
        )
        tables[metric] = table
    return tables


def table_value(table: dict, row: str, column: str) -> float:
    """One cell of a BD-rate table (NaN when absent or not computable)."""
    if row not in table["rows"] or column not in table["columns"]:
        return math.nan
    value = table["bd_rate"][table["rows"].index(row)][table["columns"].index(column)]
    return math.nan if value is None else value


def seed_bd_rates(folder: Path, table: dict, row: str, column: str) -> list[float]:
    """BD-rate of curve ``row`` against curve ``column`` for each fine-tune seed alone (the spread behind the
    table's value, which compares the curves of the seeds' mean), with the table's metric and settings.

    Empty when either curve holds one seed only (no ``<metric>_by_seed``) or they hold other seeds.
    """
    bodies = read_curves(folder)
    key = f"{table.get('metric', 'map')}_by_seed"
    pair = [bodies.get(name) for name in (row, column)]
    if any(b is None or key not in b["results"] for b in pair) or pair[0].get("seeds") != pair[1].get("seeds"):
        return []
    settings = {"min_points": table.get("min_points", 4), "drop_dominated": table.get("drop_dominated", False)}
    curves = [
        [Curve(b["results"]["bpp"], [v[i] for v in b["results"][key]]) for i in range(len(b["seeds"]))] for b in pair
    ]
    return [bd_rate(anchor, test, **settings).value for test, anchor in zip(*curves)]


def read_table(folder: Path, metric: str = "map") -> dict | None:
    """The folder's ``bdrate_<metric>.json`` (None before :func:`bd_rate_tables` wrote it)."""
    path = Path(folder) / f"bdrate_{metric}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def method_curve(names: list[str], methods: dict[str, str | None], method: str, mode: str) -> str | None:
    """The curve of ``names`` that holds the codecs of ``method`` scored in ``mode`` (None: there is none)."""
    return next((n for n in names if methods.get(n) == method and n.endswith(f"({mode})")), None)


def table_methods(table: dict, folder: Path) -> dict[str, str | None]:
    """Each row's method of a BD-rate table (tables written before they recorded it: from the folder's curves)."""
    return table.get("methods") or curve_methods(read_curves(folder))


def best_classical(table: dict, mode: str, methods: dict[str, str | None] | None = None) -> str | None:
    """The classical curve of ``mode`` the object codec saves the fewest bits against (the strongest anchor).

    ``methods``: each curve's method, None for an anchor (default: the table's own record of them).
    """
    methods = methods if methods is not None else table.get("methods", {})
    anchor = table["rows"][0]
    candidates = [c for c in table["columns"] if c.endswith(f"({mode})") and c in methods and methods[c] is None]
    scored = [(table_value(table, anchor, c), c) for c in candidates]
    scored = [(v, c) for v, c in scored if math.isfinite(v)]
    return max(scored)[1] if scored else None


def most_accurate_classical(folder: Path, mode: str, metric: str = "map") -> str | None:
    """The classical curve of ``mode`` with the highest mean ``metric`` (fallback when no BD-rate is computable)."""
    scored = []
    for name, body in read_curves(folder).items():
        values = [v for v in body["results"].get(metric, []) if v is not None and math.isfinite(v)]
        if name.endswith(f"({mode})") and codec_identity(body)["loss"] is None and values:
            scored.append((sum(values) / len(values), name))
    return max(scored)[1] if scored else None


def recovered_fraction(folder: Path, metric: str = "map") -> float:
    """Share of the accuracy lost to the object codec at its lowest rate that fine-tuning wins back.

    ``(finetuned - pretrained) / (uncompressed - pretrained)`` at the lowest-bpp point.
    """
    bodies, clean = read_curves(folder), read_uncompressed(folder).get(metric, math.nan)
    objects = [n.split(" (")[0] for n, method in curve_methods(bodies).items() if method == PAPER_METHOD]
    for family in objects:
        pre, fine = bodies.get(f"{family} (pretrained)"), bodies.get(f"{family} (finetuned)")
        if pre is None or fine is None:
            continue
        lowest = min(range(len(fine["results"]["bpp"])), key=lambda i: fine["results"]["bpp"][i])
        codec_id = fine["results"]["codec_id"][lowest]
        if codec_id not in pre["results"]["codec_id"]:
            continue
        before = pre["results"][metric][pre["results"]["codec_id"].index(codec_id)]
        after = fine["results"][metric][lowest]
        lost = clean - before if before is not None else math.nan
        return (after - before) / lost if lost and lost > 0 and after is not None else math.nan
    return math.nan
