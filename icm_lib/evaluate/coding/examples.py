"""Fig. 4 of Shindo et al. in data: the object codec and the MSE codec at similar bpp, side by side.

The paper's Fig. 4 shows input images above their reconstructions by the
Object-MSE codec. Here the MSE codec at the nearest bpp and both codecs'
bit-allocation maps (:mod:`icm_lib.evaluate.coding.bitmaps`) are added, and the
share of bits inside the objects is compared at similar bpp in numbers.
Everything is read back from the decoded folders and results files of
:mod:`icm_lib.evaluate.coding.sweep`; only the bit maps need the models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from icm_lib.data.layout import DatasetLayout
from icm_lib.evaluate.coding.bitmaps import bit_allocation_map
from icm_lib.evaluate.coding.codecs import BASELINE_METHOD, PAPER_METHOD, LearnedCodec, codec_identity
from icm_lib.evaluate.coding.sweep import codec_dir, load_records, read_family_results, read_mask, read_rgb


def _points_by_method(profile: str, dataset: str) -> dict[str, list[dict]]:
    """Every coded point of the learned codecs by compared method (``Object-MSE``, ``MSE``, ``ROI, Object-MSE``
    ...), each with its ``lmbda``, from one reading of the results files."""
    points: dict[str, list[dict]] = {}
    for family, body in read_family_results(profile, dataset).items():
        identity = codec_identity(body)
        if identity["loss"] is not None:
            r = body["results"]
            points.setdefault(identity["method"], []).extend(
                {k: r[k][i] for k in r} | {"family": family, "lmbda": identity["lmbda"][i]}
                for i in range(len(r["codec_id"]))
            )
    return points


def _nearest(points: list[dict], bpp: float) -> dict:
    return min(points, key=lambda p: abs(np.log(p["bpp"]) - np.log(bpp)))


def _summary(p: dict) -> dict:
    return {
        "id": p["codec_id"],
        "lmbda": p["lmbda"],
        "bpp": p["bpp"],
        "object_psnr": p["object_psnr"],
        "background_psnr": p["background_psnr"],
        "bit_share": p.get("object_bit_share"),
    }


def similar_bpp_pairs(profile: str, dataset: str) -> list[dict]:
    """Each object-codec point with the MSE-codec point nearest in bpp (log scale), from the results files,
    and the nearest point of every other compared method coded (the ROI codec, the task-loss codec ...).

    Returns:
        One dict per object codec: ``object_id``, ``mse_id`` and their ``*_bpp``, ``*_object_psnr``,
        ``*_background_psnr``, ``*_bit_share`` (None where not measured), ``object_area``, and ``others``:
        ``{method: {"id", "lmbda", "bpp", "object_psnr", "background_psnr", "bit_share"}}``.
    """
    others = _points_by_method(profile, dataset)
    objects, mses = others.pop(PAPER_METHOD, []), others.pop(BASELINE_METHOD, [])
    pairs = []
    for o in objects:
        if not mses:
            break
        pair = {"object_area": o.get("object_area")}
        for role, p in (("object", o), ("mse", _nearest(mses, o["bpp"]))):
            pair.update({f"{role}_{k}": v for k, v in _summary(p).items()})
        pair["others"] = {m: _summary(_nearest(points, o["bpp"])) for m, points in sorted(others.items())}
        pairs.append(pair)
    return sorted(pairs, key=lambda p: p["object_bpp"])


def pick_pair(profile: str, dataset: str, object_lambda: float | None = None) -> dict:
    """The pair shown in the figure: the object codec at ``object_lambda`` (the middle one by default)."""
    pairs = similar_bpp_pairs(profile, dataset)
    if not pairs:
        raise ValueError(f"no object and MSE codec results for {dataset} at profile {profile}: run notebooks 02 and 03")
    if object_lambda is None:
        return pairs[len(pairs) // 2]
    chosen = [p for p in pairs if p["object_lmbda"] == float(object_lambda)]
    if not chosen:
        raise ValueError(f"no object codec with lambda {object_lambda} in {[p['object_id'] for p in pairs]}")
    return chosen[0]


@dataclass
class ExamplePanels:
    """Images and labels of the coding-examples figure (one column per image)."""

    stems: list  # image names
    inputs: list  # HxWx3 uint8 originals
    masks: list  # HxW object masks
    rows: dict = field(default_factory=dict)  # row title -> list of (HxWx3 image or HxW bit map, panel label)
    gate_rows: set = field(default_factory=set)  # titles of rows holding HxW gate maps in [0, 1], not bits


def example_stems(layout: DatasetLayout, split: str, count: int, min_object_area: float = 0.05) -> list[str]:
    """``count`` images to show: the first (by name) whose objects cover at least ``min_object_area``
    of the pixels, topped up with the images of largest object area when too few do."""
    areas = {p.stem: float((read_mask(layout, split, p.stem) > 0).mean()) for p in layout.image_files(split)}
    stems = [s for s, a in areas.items() if a >= min_object_area][:count]
    rest = sorted((s for s in areas if s not in stems), key=lambda s: -areas[s])
    return stems + rest[: count - len(stems)]


def example_panels(
    profile: str, layout: DatasetLayout, split: str, stems: list[str], codecs: list[LearnedCodec]
) -> ExamplePanels:
    """Decoded images (labelled with their real bpp) and bit maps (estimated bpp, share in objects) per codec.

    The codecs must have coded the split already (:func:`icm_lib.evaluate.coding.sweep.code_split`).
    """
    panels = ExamplePanels(
        stems,
        [read_rgb(layout.images(split) / _name(layout, split, s)) for s in stems],
        [read_mask(layout, split, s) for s in stems],
    )
    for codec in codecs:
        records = load_records(profile, layout.name, codec.id, split)
        if records is None or not set(stems) <= set(records["images"]):
            raise FileNotFoundError(
                f"{codec.id} has not coded {layout.name}/{split} {stems}: run the coding sweep first"
            )
        folder = codec_dir(profile, layout.name, codec.id) / "images" / split
        decoded = [(read_rgb(folder / f"{s}.png"), f"{records['images'][s]['bpp']:.3f} bpp") for s in stems]
        maps = []
        for image, mask in zip(panels.inputs, panels.masks):
            bitmap = bit_allocation_map(codec.model, image, mask)
            maps.append((bitmap.bits, f"{bitmap.bpp:.3f} bpp est., {100 * bitmap.object_share(mask):.0f}% in objects"))
        name = f"{codec.family}\nlambda={codec.setting}"
        panels.rows[name] = decoded
        panels.rows[f"{name}: bits"] = maps
        gates = [gate_map(codec.model, image) for image in panels.inputs]
        if gates[0] is not None:
            panels.rows[f"{name}: gate"] = [
                (g, f"gate open on {100 * (g > 0.5).mean():.0f}% of the image") for g in gates
            ]
            panels.gate_rows.add(f"{name}: gate")
    return panels


def gate_map(model, image: np.ndarray) -> np.ndarray | None:
    """The encoder's gate (:mod:`icm_lib.models.gated`) at the image's size, in [0, 1]; None for an ungated codec.

    It is what the codec learned of where the objects are: it was never given a mask.
    """
    import torch
    import torch.nn.functional as F

    gate = getattr(getattr(model, "g_a", None), "gate_map", None)
    if gate is None:
        return None
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    h, w = x.shape[-2:]
    with torch.no_grad():
        padded = F.pad(x, (0, -w % 64, 0, -h % 64), mode="replicate")
        g = gate(padded.to(next(model.parameters()).device)).cpu()
    return F.interpolate(g, scale_factor=16, mode="nearest")[0, 0, :h, :w].numpy()


def _name(layout: DatasetLayout, split: str, stem: str) -> str:
    """File name of an image of the split from its stem (any image suffix)."""
    matches = [p.name for p in layout.image_files(split) if p.stem == stem]
    if not matches:
        raise FileNotFoundError(f"no image {stem!r} in {layout.images(split)}")
    return matches[0]
