"""Seeded fuzzing of the two parsers of other people's files: bitstreams and COCO annotation JSON.

Every case must end in a clean refusal (a one-line UserError, no file written) or a correct
output, never a traceback, a hang or a crash. Each fuzzer runs in a watched subprocess
(hostile.py), so a segfault or a hang fails the test instead of killing the test run.
"""

from __future__ import annotations

import json
import sys

import pytest
from PIL import Image

from hostile import codec_files, run_watched
from icm_lib.cli import main

BITSTREAM_CASES = 200
COCO_CASES = 400

_BITSTREAM_FUZZ = r"""
import json, random, struct, sys, zlib
import torch
from icm_lib.checkpoint import load_checkpoint
from icm_lib.errors import UserError
from icm_lib.bitstream import decode, read_header

torch.set_num_threads(1)
model, _, _ = load_checkpoint(sys.argv[1])
good = open(sys.argv[2], "rb").read()
offset = read_header(good)[1]
rng = random.Random(int(sys.argv[3]))
stats = {"decoded": 0, "refused": 0, "wrong": []}


def with_crc(body):
    return body + struct.pack("<I", zlib.crc32(body))


def noise(n):
    return bytes(rng.randrange(256) for _ in range(n))


def mutate(data):
    body, kind = bytearray(data[:-4]), rng.randrange(6)
    if kind == 0:  # bits flipped anywhere, the CRC left as it was
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 1:  # bits flipped in the entropy-coded strings, the CRC made right: the rANS decoder sees them
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(offset, len(body))] ^= 1 << rng.randrange(8)
        return with_crc(bytes(body))
    if kind == 2:  # other sizes in the header (up to 96 pixels a side), the CRC made right
        struct.pack_into("<HH", body, offset - 13, rng.randint(0, 96), rng.randint(0, 96))
        return with_crc(bytes(body))
    if kind == 3:  # strings cut or grown, their lengths and the CRC made right
        strings = body[offset:][:rng.randrange(len(body) - offset + 1)] + noise(rng.randint(0, 40))
        split = rng.randint(0, len(strings))
        struct.pack_into("<2I", body, offset - 8, split, len(strings) - split)
        return with_crc(bytes(body[:offset]) + bytes(strings))
    if kind == 4:  # a valid start, then noise
        return with_crc(bytes(body[:rng.randrange(len(body))]) + noise(rng.randint(0, 60)))
    return noise(rng.randint(0, 120))


for case in range(int(sys.argv[4])):
    data = mutate(good)
    try:
        x = decode(model, data)
    except UserError as err:  # BitstreamError is one
        stats["refused"] += 1
        if "\n" in str(err) or not str(err):
            stats["wrong"].append([case, "message " + repr(str(err))[:80]])
        continue
    header = read_header(data)[0]
    stats["decoded"] += 1
    if tuple(x.shape) != (3, header.height, header.width) or not (0 <= float(x.min()) <= float(x.max()) <= 1):
        stats["wrong"].append([case, f"output {tuple(x.shape)} for {header.height}x{header.width}"])
print(json.dumps(stats))
"""

_COCO_FUZZ = r"""
import copy, json, math, random, shutil, sys
from pathlib import Path
import cv2
from icm_lib.errors import UserError
from icm_lib.data.masks import write_masks

root, rng = Path(sys.argv[1]), random.Random(int(sys.argv[2]))
base = json.loads((root / "base.json").read_text())
HOSTILE = [None, True, False, 0, 1, -1, 7, 2.5, -3.5, 1e12, -1e12, 10**20, math.nan, math.inf, -math.inf, "", "abc",
           "0P01", "\x7f", [], [[]], {}, [1, 2], [1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7], [[1, 2, 3, 4, 5, 6, 7]],
           [[0, 0, 1e12, 0, 1e12, 1e12]], [[-5, -5, 50, -5, 20, 40]], [0, 0, 1e12, 1e12], [-1, -1, 5, -3],
           {"size": [16, 24], "counts": [10, 5]}, {"size": [16, 24], "counts": [384]}, {"size": [16, 24], "counts": "!!"},
           {"size": [16, 24], "counts": "o"}, {"size": [1e9, 1e9], "counts": [1]}, {"size": "x", "counts": [1]},
           {"counts": [1]}, [[1, 2, 3, 4, 5, "x"]], [[math.nan, 0, 1, 1, 0, 1]], [1]]


def slots(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from slots(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from slots(value, path + (i,))


def mutate(coco):
    for _ in range(rng.randint(1, 3)):
        path = rng.choice([p for p in slots(coco) if p])
        parent = coco
        for key in path[:-1]:
            parent = parent[key]
        action = rng.randrange(10)
        if action < 7:
            parent[path[-1]] = copy.deepcopy(rng.choice(HOSTILE))
        elif action < 9 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))  # a duplicate entry
        elif isinstance(parent, dict):
            del parent[path[-1]]
    return coco


stats = {"written": 0, "refused": 0, "wrong": []}
for case in range(int(sys.argv[3])):
    coco = mutate(copy.deepcopy(base))
    ann, out = root / "case.json", root / f"masks{case}"
    ann.write_text(json.dumps(coco))
    try:
        summary = write_masks(ann, root / "images", out, verbose=False)
    except UserError as err:
        stats["refused"] += 1
        if "\n" in str(err) or not str(err) or (out.exists() and any(out.iterdir())):
            stats["wrong"].append([case, "message or files: " + str(err)[:80]])
        continue
    stats["written"] += 1
    for img in coco["images"]:
        mask = cv2.imread(str(out / (Path(img["file_name"]).stem + ".png")), cv2.IMREAD_UNCHANGED)
        if mask is None or mask.shape != (img["height"], img["width"]) or not set(mask.ravel()) <= {0, 255}:
            stats["wrong"].append([case, f"mask of {img['file_name']}"])
    shutil.rmtree(out)
print(json.dumps(stats))
"""


def _stats(outcome) -> dict:
    assert outcome.killed is None and outcome.returncode == 0, outcome.stderr[-3000:]
    stats = json.loads(outcome.stdout.strip().splitlines()[-1])
    print(stats)  # shown with pytest -s: how many cases took each path
    return stats


@pytest.mark.usefixtures("one_thread")
def test_fuzz_bitstream_bytes(tmp_path):
    """Mutated bitstreams (bits, sizes, string lengths, noise; CRC made right for most): refused or decoded right."""
    codec_files(tmp_path, 40, 56)
    assert (
        main(["encode", str(tmp_path / "a.png"), str(tmp_path / "a.icm"), "--checkpoint", str(tmp_path / "ckpt.pt")])
        == 0
    )
    outcome = run_watched(
        [sys.executable, "-c", _BITSTREAM_FUZZ, tmp_path / "ckpt.pt", tmp_path / "a.icm", 13, BITSTREAM_CASES],
        tmp_path,
        timeout=240,
    )
    stats = _stats(outcome)
    assert stats["wrong"] == []
    assert stats["decoded"] > 10 and stats["refused"] > 100  # both paths were taken


def test_fuzz_coco_annotations(tmp_path):
    """Mutated COCO files (hostile values, duplicates, deletions anywhere): refused with no file written, or right masks."""
    images = [
        {"id": 1, "file_name": "a.png", "height": 16, "width": 24},
        {"id": 2, "file_name": "b.jpg", "height": 9, "width": 13},
        {"id": "c", "file_name": "c.png", "height": 30, "width": 30},
    ]
    (tmp_path / "images").mkdir()
    for img in images:
        Image.new("RGB", (img["width"], img["height"])).save(tmp_path / "images" / img["file_name"])
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [2, 2, 8, 6],
            "segmentation": [[2, 2, 10, 2, 10, 8, 2, 8]],
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 1,
            "bbox": [0, 0, 3, 3],
            "segmentation": {"size": [16, 24], "counts": [0, 3, 13, 3, 13, 3, 349]},
        },
        {"id": 3, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [1, 1, 4, 4], "segmentation": []},
        {
            "id": 4,
            "image_id": "c",
            "category_id": 1,
            "iscrowd": 1,
            "bbox": [5, 5, 5, 5],
            "segmentation": {"size": [30, 30], "counts": "k45i00000000cb0"},
        },
        {"id": 5, "image_id": "c", "category_id": 1, "ignore": 1, "bbox": [0, 0, 30, 30], "segmentation": []},
    ]
    (tmp_path / "base.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]})
    )
    outcome = run_watched([sys.executable, "-c", _COCO_FUZZ, tmp_path, 7, COCO_CASES], tmp_path, timeout=120)
    stats = _stats(outcome)
    assert stats["wrong"] == []
    assert stats["written"] > 20 and stats["refused"] > 100  # both paths were taken
