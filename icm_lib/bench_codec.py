"""``icm bench codec``: coding speed on this CPU and the real rate against its estimate.

For each model, image size and batch size: milliseconds per image to
``compress`` and to ``decompress`` a batch (CompressAI's rANS coder), and the
ratio of the real entropy-coded bits (the strings, no file header) to the
entropy estimate ``-sum log2 likelihoods`` of ``forward`` in eval mode; the
estimate is the limit, so the ratio says what the coder loses (target <= 1.01
at 256x256 and larger). ``bpp`` is that of whole bitstream files
(:mod:`icm_lib.bitstream`, header included) at batch 1.

Test images are crops of the photos bundled with scikit-image. A random-weight
model's latents fit its entropy model badly, so unless ``--checkpoint`` gives
trained weights, small models first get ``--train-steps`` quick rate-distortion
steps on crops of those photos; the output names the weights of each row.
A ratio below 1 is a badly calibrated model, not a better coder: the estimate
charges up to 30 bits (the likelihood bound) for a symbol the rANS coder
escapes with fewer, and the coder's scale table can fit the residuals better
than an untrained scale prediction.

What the ratio is made of (:mod:`icm_lib.models.entropy_tables`): the scale
table (``scale_levels``), the rounding of pmfs to 16-bit frequencies
(``cdf_rounding``), and a fixed 32-64 bits per rANS string (the coder's final
state), paid twice per image (one y string, one z string). At 256x256 and
0.1 bpp an image is about 6,500 bits, so those two strings alone cost about
1.5 % on that image; the ratio of a batch averages over its images.
``--scale-levels`` and ``--cdf-rounding`` code a TCM with other tables than
its config's (same weights), to compare.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from icm_lib.bitstream import bits_per_pixel, encode
from icm_lib.checkpoint import load_checkpoint, read_weights_only
from icm_lib.cli_groups import group
from icm_lib.errors import UserError
from icm_lib.losses import RateDistortionLoss
from icm_lib.models import create, parameter_count, with_config
from icm_lib.models.entropy_tables import CDF_ROUNDINGS

MODELS = ("tcm-tiny", "tcm-small")
QUICK_TRAIN_MAX_PARAMS = 5_000_000  # larger models are too slow to pre-train here: they stay random
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


@dataclass
class Row:
    model: str
    weights: str
    size: int
    batch: int
    encode_ms: float  # per image
    decode_ms: float  # per image
    bits_ratio: float  # real string bits / entropy estimate
    bpp: float  # whole file (header included), batch 1 only; NaN otherwise


def test_images(size: int, count: int, seed: int = 0) -> torch.Tensor:
    """(count, 3, size, size) crops in [0, 1] of scikit-image's photos, each rescaled to cover ``size``."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    crops = []
    for i in range(count):
        photo = Image.fromarray(photos[i % len(photos)])
        scale = max(size / photo.width, size / photo.height, rng.uniform(0.6, 1.0))
        photo = photo.resize((max(size, round(photo.width * scale)), max(size, round(photo.height * scale))))
        top, left = rng.integers(0, photo.height - size + 1), rng.integers(0, photo.width - size + 1)
        crop = np.asarray(photo)[top : top + size, left : left + size]
        crops.append(torch.from_numpy(crop.copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(crops)


def quick_train(model: torch.nn.Module, steps: int, lmbda: float = 0.01, crop: int = 64, batch: int = 8) -> None:
    """A few Adam steps of Eq. (1) on photo crops, so that latents and entropy model roughly agree."""
    torch.manual_seed(0)
    pool = test_images(crop, 64, seed=1)
    params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    quantiles = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    optimizer, aux_optimizer = torch.optim.Adam(params, 1e-3), torch.optim.Adam(quantiles, 1e-2)
    criterion = RateDistortionLoss(lmbda)
    model.train()
    for _ in range(steps):
        x = pool[torch.randint(len(pool), (batch,))]
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        criterion(model(x), x)["loss"].backward()
        optimizer.step()
        model.aux_loss().backward()
        aux_optimizer.step()
    model.eval()


def prepare(name: str, checkpoints: dict, train_steps: int, tables: dict | None = None) -> tuple[torch.nn.Module, str]:
    """The model to measure and a description of its weights and coding tables.

    ``tables`` (e.g. ``{"scale_levels": 256}``) replaces coding-table settings of a TCM's config.
    """
    if name in checkpoints:
        model, meta, _ = load_checkpoint(checkpoints[name])
        weights = f"checkpoint {checkpoints[name]} (step {meta.get('step')})"
    else:
        torch.manual_seed(0)
        model = create(name)
        if train_steps > 0 and parameter_count(model) <= QUICK_TRAIN_MAX_PARAMS:
            quick_train(model, train_steps)
            weights = f"random init + {train_steps} quick RD steps (lambda 0.01, 64x64 photo crops)"
        else:
            weights = "random init (untrained: rates say little)"
        model.eval().update(force=True)
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        return model, weights
    if tables:
        model = with_config(model, **tables)
    return model, f"{weights}, {model.cfg.scale_levels} scales, {model.cfg.cdf_rounding} rounding"


def measure(model: torch.nn.Module, images: torch.Tensor) -> tuple[float, float, float]:
    """Encode and decode ms per image, and real string bits / entropy estimate, for one batch."""
    with torch.no_grad():
        likelihoods = model(images)["likelihoods"]
        estimate = sum(-torch.log2(lk).sum().item() for lk in likelihoods.values())
        start = time.perf_counter()
        coded = model.compress(images)
        encoded = time.perf_counter()
        model.decompress(coded["strings"], coded["shape"])
        decoded = time.perf_counter()
    real = 8 * sum(len(s) for strings in coded["strings"] for s in strings)
    n = len(images)
    return 1000 * (encoded - start) / n, 1000 * (decoded - encoded) / n, real / estimate


def file_bpp(model: torch.nn.Module, image: torch.Tensor) -> float:
    return bits_per_pixel(encode(model, image), *image.shape[-2:])


def bench(models, sizes, batches, checkpoints: dict, train_steps: int, tables: dict | None = None) -> list[Row]:
    rows = []
    for name in models:
        model, weights = prepare(name, checkpoints, train_steps, tables)
        for size in sizes:
            images = test_images(size, max(batches))
            for batch in batches:
                enc, dec, ratio = measure(model, images[:batch])
                bpp = file_bpp(model, images[0]) if batch == 1 else float("nan")
                rows.append(Row(name, weights, size, batch, enc, dec, ratio, bpp))
                print(format_row(rows[-1]), flush=True)
    return rows


HEADER = (
    f"{'model':<10} {'size':>9} {'batch':>5} {'enc ms/img':>11} {'dec ms/img':>11} {'bits/estimate':>13} {'bpp':>7}"
)


def format_row(row: Row) -> str:
    return (
        f"{row.model:<10} {f'{row.size}x{row.size}':>9} {row.batch:>5} {row.encode_ms:>11.1f} "
        f"{row.decode_ms:>11.1f} {row.bits_ratio:>13.4f} {row.bpp:>7.4f}"
    )


def _cli(args) -> int:
    checkpoints = {}
    for path in args.checkpoint or []:
        meta = read_weights_only(path).get("meta", {})
        if "model" not in meta:
            raise UserError(f"{path} is not an icm codec checkpoint")
        checkpoints[meta["model"]] = path
    models = args.models or (["tcm-tiny"] if args.quick else list(MODELS))
    sizes, batches = ([256], [1, 8]) if args.quick else (args.sizes, args.batches)
    steps = min(args.train_steps, 100) if args.quick else args.train_steps
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"icm bench codec: CPU, {torch.get_num_threads()} thread(s), photo crops from scikit-image")
    print(HEADER)
    tables = {
        key: value
        for key, value in (("scale_levels", args.scale_levels), ("cdf_rounding", args.cdf_rounding))
        if value is not None
    }
    rows = bench(models, sizes, batches, checkpoints, steps, tables)
    print("weights: " + "; ".join(sorted({f"{r.model}: {r.weights}" for r in rows})))
    print("bits/estimate: entropy-coded string bits over -sum log2 likelihoods; bpp: whole files, batch 1")
    return 0


def add_cli(sub) -> None:
    parser = group(sub, "bench", "benchmarks").add_parser(
        "codec", help="encode/decode speed and real bits vs entropy estimate"
    )
    parser.add_argument("--models", nargs="+", help=f"registry names (default: {' '.join(MODELS)})")
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512], help="square image sides")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8], help="batch sizes")
    parser.add_argument("--checkpoint", action="append", help="trained weights for the model they name (repeatable)")
    parser.add_argument("--train-steps", type=int, default=300, help="quick RD steps for small random models")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="tcm-tiny at 256x256 only, <= 100 training steps")
    parser.add_argument("--scale-levels", type=int, help="code TCMs with this many scales (default: each config's)")
    parser.add_argument(
        "--cdf-rounding", choices=CDF_ROUNDINGS, help="code TCMs with this pmf rounding (default: each config's)"
    )
    parser.set_defaults(func=_cli)
