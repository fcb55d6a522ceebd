"""What notebook 01 does, as library calls: have the datasets of a profile in
place (generated for ``smoke`` / ``demo``, imported real data for ``paper``)
and their object masks built, and summarise them."""

from __future__ import annotations

from icm_lib.data.coco import check_real_dataset
from icm_lib.data.layout import DatasetLayout
from icm_lib.data.masks import build_masks, load_coco, mask_statistics
from icm_lib.data.synth import DATASETS, SIZES, synthesize
from icm_lib.errors import UserError

# How to bring each real dataset into the layout, quoted in the error when it is missing.
IMPORT_COMMANDS = {
    "coco": "icm data coco --train-images .../train2017 --val-images .../val2017 --annotations .../annotations --profile paper",
    "visdrone": "icm data visdrone --root .../VisDrone2019 --profile paper",
}


def prepare_datasets(profile: str, datasets: list[str], seed: int) -> dict[str, DatasetLayout]:
    """Layouts of ``datasets`` for ``profile``: embedded ones generated when missing, real ones checked.

    Raises:
        UserError: a real dataset is not imported yet (names the command), or a name is unknown.
    """
    layouts = {}
    for name in datasets:
        if name in DATASETS and profile in SIZES:
            layouts[name] = synthesize(name, profile, seed)
        elif name in IMPORT_COMMANDS:
            layouts[name] = check_real_dataset(DatasetLayout.of(profile, name), IMPORT_COMMANDS[name])
        else:
            raise UserError(
                f"dataset {name!r} is not available at profile {profile!r} "
                f"(embedded: {', '.join(DATASETS)} at {', '.join(SIZES)}; real: {', '.join(IMPORT_COMMANDS)})"
            )
    return layouts


def build_dataset_masks(
    layouts: dict[str, DatasetLayout], splits: list[str], overwrite: bool = False
) -> dict[str, dict]:
    """Masks of every split of every dataset; per dataset: images per split and masks/second
    (measured when the masks were built, also when they are now reused)."""
    summary = {}
    for name, layout in layouts.items():
        runs = {split: build_masks(layout, split, overwrite=overwrite) for split in splits}
        seconds = sum(r["seconds"] for r in runs.values())
        summary[name] = {
            "images": {s: r["images"] for s, r in runs.items()},
            "masks_per_second": sum(r["images"] for r in runs.values()) / seconds if seconds > 0 else None,
            "masks_reused": all(r["reused"] for r in runs.values()),
        }
    return summary


def object_area_statistics(layouts: dict[str, DatasetLayout], split: str = "val") -> dict[str, dict]:
    """:func:`~icm_lib.data.masks.mask_statistics` of one split of every dataset."""
    return {name: mask_statistics(layout, split) for name, layout in layouts.items()}


def dataset_summary(
    layouts: dict[str, DatasetLayout], masks: dict[str, dict], statistics: dict[str, dict], split: str = "val"
) -> dict[str, dict]:
    """Sizes, masks/second and object-area statistics per dataset, for the notebook's record."""
    out = {}
    for name, layout in layouts.items():
        stats = statistics[name]
        n_objects = sum(1 for a in load_coco(layout.annotations(split))["annotations"] if not a.get("iscrowd"))
        out[name] = {
            **masks[name],
            f"objects_{split}": n_objects,
            "object_area_mean": stats["mean"],
            "object_area_median": stats["median"],
            "empty_images": stats["empty_images"],
            "root": layout.root,
        }
    return out
