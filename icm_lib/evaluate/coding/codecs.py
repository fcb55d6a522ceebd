"""Image codecs behind one interface: the learned codecs and the classical anchors.

The paper (Shindo et al., "Image Coding for Machines with Object Region
Learning") compares TCM trained with Object-MSE against TCM trained with MSE
and against VVC (VTM). Every codec here maps an HxWx3 uint8 image to a real,
self-contained bitstream and back, so bits per pixel always come from
``len(bytes)`` (headers included), never from an entropy estimate.

A codec is named ``<family>@<setting>``: ``tcm-tiny-object@0.05`` (learned:
model, loss, lambda), ``jpeg@q30`` (Pillow quality), ``vvc@qp37`` (VVC QP).
The name is a folder name only: what a codec is travels as data
(:attr:`ImageCodec.identity`: ``method``, ``model``, ``loss``, ``lmbda``) in its
coding records and every results file, and is read back by :func:`codec_identity`.

Deviations from the paper: besides VVC (``vvencapp``/``vvdecapp``, used when
they are on PATH and skipped with a message otherwise), the anchors include
the codecs that install from PyPI: JPEG, WebP, AVIF (Pillow), HEVC intra
(HEIC through pillow-heif) and JPEG XL (pillow-jxl-plugin). VVC is coded from
8-bit YUV 4:2:0 (BT.601 full range) converted here, not through ffmpeg.

What comes from CompressAI and what is written here. CompressAI's benchmark codecs
(``compressai.utils.bench.codecs``: ``JPEG``, ``WebP``, ``VTM``) run a whole
file-to-metrics round trip: they read an image path, take only a quality, and return
bpp, PSNR and the decoded image, never the bitstream. The coding sweep needs the
bitstream itself (it is stored, and decoded images are remade only when a codec's
fingerprint changes), encoder settings beyond quality (JPEG 4:2:0, WebP method, AVIF
speed and threads, x265 preset, JPEG XL effort), and AVIF, HEIC and JPEG XL, which
CompressAI does not wrap; its ``VTM`` drives the reference encoder from a config file on
4:4:4 BT.709 input. So the Pillow and VVC wrappers stay, on CompressAI's pattern of
one class per codec. From CompressAI the VVC wrapper takes the chroma resampling
(``compressai.transforms.functional.yuv_444_to_420`` and ``yuv_420_to_444``); the
colour matrix stays written out (see ``_RGB_TO_YUV``): CompressAI's is BT.709 only,
and OpenCV's BT.601 ``COLOR_RGB2YCrCb`` rounds its chroma factors, which changes one
chroma sample in five by a level. Bitstreams, decoded images, bpp and PSNR are the
same as before this change (checked on photo crops at every default quality).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from compressai.transforms.functional import yuv_420_to_444, yuv_444_to_420
from PIL import Image

from icm_lib.bitstream import decode as decode_bitstream
from icm_lib.bitstream import encode as encode_bitstream
from icm_lib.bitstream import to_uint8
from icm_lib.checkpoint import load_checkpoint, model_fingerprint
from icm_lib.models.roi import takes_mask


class ImageCodec(ABC):
    """An image codec: ``encode`` gives the bitstream, ``decode`` the image back."""

    family: str  # e.g. "jpeg" or "tcm-tiny-object"
    setting: str  # e.g. "q30" or "0.05"
    takes_mask: bool = False  # an ROI codec: ``encode(image, mask)`` codes the object mask too

    @property
    def id(self) -> str:
        """``<family>@<setting>``: the codec's folder name under ``decoded/<dataset>/``."""
        return f"{self.family}@{self.setting}"

    @property
    def fingerprint(self) -> str:
        """What makes this codec's output: decoded images coded with another fingerprint are redone."""
        return self.id

    @property
    def identity(self) -> dict:
        """What the codec is, as data: ``method`` (label), ``model``, ``loss`` and ``lmbda`` (None for an anchor)."""
        return {"method": self.family, "model": None, "loss": None, "lmbda": None}

    @abstractmethod
    def encode(self, image: np.ndarray) -> bytes:
        """Compress an HxWx3 uint8 RGB image into a self-contained bitstream."""

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Reconstruct the HxWx3 uint8 RGB image from :meth:`encode`'s bitstream."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id})"


# --------------------------------------------------------------------------- classical


@dataclass(frozen=True)
class PillowFormat:
    """A format Pillow writes, with the import that registers its plugin."""

    family: str  # codec family name used in ids and results
    pillow_format: str  # Pillow's format name for Image.save
    plugin: str | None  # module to import first (registers the encoder), or None
    options: tuple = ()  # extra Image.save keyword arguments as (key, value) pairs


# Encoder effort one notch faster than each library's default, where that costs little: on the
# embedded shapes images AVIF speed 7 (vs 6) and x265 preset "fast" (vs libheif's "slow") run about
# 2x faster for a few percent more bits at equal PSNR; JPEG XL effort 5 codes as well as 7 there.
PILLOW_FORMATS = {
    f.family: f
    for f in (
        PillowFormat("jpeg", "JPEG", None, (("subsampling", "4:2:0"),)),
        PillowFormat("webp", "WEBP", None, (("method", 4),)),
        PillowFormat("avif", "AVIF", None, (("speed", 7), ("max_threads", 1))),
        PillowFormat("heic", "HEIF", "pillow_heif", (("enc_params", {"preset": "fast"}),)),
        PillowFormat("jxl", "JXL", "pillow_jxl", (("effort", 5), ("num_threads", 1))),
    )
}
CLASSICAL_FAMILIES = (*PILLOW_FORMATS, "vvc")

# Qualities chosen to span roughly 0.05-1.5 bpp on the embedded datasets (VVC: QPs).
DEFAULT_QUALITIES = {
    "jpeg": [5, 10, 20, 40, 70],
    "webp": [0, 10, 30, 60, 85],
    "avif": [5, 20, 40, 60, 80],
    "heic": [5, 20, 40, 55, 70],
    "jxl": [5, 20, 40, 60, 85],
    "vvc": [47, 42, 37, 32, 27],
}


class CodecUnavailable(RuntimeError):
    """The encoder or decoder of a codec family is not installed here."""


class PillowCodec(ImageCodec):
    """A classical codec written and read by Pillow (or a Pillow plugin) at one quality."""

    def __init__(self, family: str, quality: int):
        if family not in PILLOW_FORMATS:
            raise ValueError(f"unknown Pillow codec {family!r}; expected one of {sorted(PILLOW_FORMATS)}")
        self.format = PILLOW_FORMATS[family]
        self.family = family
        self.quality = int(quality)
        self.setting = f"q{self.quality}"
        _check_pillow_format(self.format)

    def __reduce__(self):
        # rebuilt through __init__ in a worker process, which registers the format's plugin there too
        return (PillowCodec, (self.family, self.quality))

    @property
    def fingerprint(self) -> str:
        import PIL

        return f"{self.id} {self.format.pillow_format} {dict(self.format.options)} pillow-{PIL.__version__}"

    def encode(self, image: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(_check_image(image)).save(
            buffer, format=self.format.pillow_format, quality=self.quality, **dict(self.format.options)
        )
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as im:
            return np.array(im.convert("RGB"))


def _check_pillow_format(fmt: PillowFormat) -> None:
    """Raise :class:`CodecUnavailable` when Pillow cannot write ``fmt`` here."""
    if fmt.plugin is not None:
        try:
            module = __import__(fmt.plugin)
        except ImportError as err:
            raise CodecUnavailable(f"{fmt.family}: plugin {fmt.plugin} is not installed ({err})") from err
        if fmt.plugin == "pillow_heif":
            module.register_heif_opener()
    Image.init()
    if fmt.pillow_format not in Image.SAVE:
        raise CodecUnavailable(f"{fmt.family}: this Pillow build has no {fmt.pillow_format} encoder")


class VVCCodec(ImageCodec):
    """VVC intra coding (the paper's anchor) through the ``vvencapp`` / ``vvdecapp`` command-line tools."""

    family = "vvc"

    def __init__(self, qp: int, preset: str = "medium"):
        self.encoder, self.decoder = shutil.which("vvencapp"), shutil.which("vvdecapp")
        if not (self.encoder and self.decoder):
            raise CodecUnavailable(
                "vvc: vvencapp/vvdecapp are not on PATH (install VVenC and VVdeC to add the paper's VVC anchor)"
            )
        self.qp, self.preset = int(qp), preset
        self.setting = f"qp{self.qp}"

    @property
    def fingerprint(self) -> str:
        return f"{self.id} vvencapp --preset {self.preset}"

    def encode(self, image: np.ndarray) -> bytes:
        image = _check_image(image)
        h, w = image.shape[:2]
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "in.yuv", Path(tmp) / "out.266"
            src.write_bytes(_yuv420_from_rgb(image))
            width, height = _padded(w), _padded(h)
            _run(
                [
                    self.encoder,
                    "--preset",
                    self.preset,
                    "-i",
                    str(src),
                    "-s",
                    f"{width}x{height}",
                    "-c",
                    "yuv420",
                    "--qp",
                    str(self.qp),
                    "-f",
                    "1",
                    "-o",
                    str(out),
                ]
            )
            # the stream codes the padded picture: prefix the true size (4 bytes, counted in the rate)
            return h.to_bytes(2, "big") + w.to_bytes(2, "big") + out.read_bytes()

    def decode(self, data: bytes) -> np.ndarray:
        h, w = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:4], "big")
        with tempfile.TemporaryDirectory() as tmp:
            stream, out = Path(tmp) / "in.266", Path(tmp) / "out.yuv"
            stream.write_bytes(data[4:])
            _run([self.decoder, "-b", str(stream), "-o", str(out)])
            return _rgb_from_yuv420(out.read_bytes(), _padded(w), _padded(h))[:h, :w]


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({done.returncode}): {done.stderr.strip()[-300:]}")


# BT.601 full range (JPEG's YCbCr), as the paper's VTM anchors take 8-bit 4:2:0 input. Written out:
# CompressAI's rgb2ycbcr is BT.709 only, and cv2's COLOR_RGB2YCrCb rounds the chroma factors
# (0.713, 0.564), which moves a fifth of the chroma samples by one level.
_RGB_TO_YUV = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YUV_OFFSET = np.array([0.0, 128.0, 128.0])
_PAD = 8  # VVC codes pictures in multiples of its minimum block size


def _padded(side: int) -> int:
    return -(-side // _PAD) * _PAD


def _yuv420_from_rgb(image: np.ndarray) -> bytes:
    """One raw 8-bit YUV 4:2:0 frame (BT.601 full range), edge-padded to multiples of 8."""
    h, w = image.shape[:2]
    rgb = np.pad(image, ((0, _padded(h) - h), (0, _padded(w) - w), (0, 0)), mode="edge").astype(np.float64)
    yuv = torch.from_numpy(rgb @ _RGB_TO_YUV.T + _YUV_OFFSET).permute(2, 0, 1)[None]
    planes = yuv_444_to_420(yuv)  # chroma: the mean of each 2x2 block
    return b"".join(np.clip(np.round(p[0, 0].numpy()), 0, 255).astype(np.uint8).tobytes() for p in planes)


def _rgb_from_yuv420(data: bytes, width: int, height: int) -> np.ndarray:
    """HxWx3 uint8 RGB from a raw 4:2:0 frame of 8 bits, or of 10 bits in 16-bit samples (vvdecapp's default)."""
    n, nc = width * height, (width // 2) * (height // 2)
    samples = n + 2 * nc
    if len(data) not in (samples, 2 * samples):
        raise RuntimeError(f"decoded YUV has {len(data)} bytes; expected {samples} (8-bit) or {2 * samples} (10-bit)")
    deep = len(data) == 2 * samples
    flat = torch.from_numpy(
        np.frombuffer(data, np.dtype("<u2") if deep else np.uint8).astype(np.float64) / (4.0 if deep else 1.0)
    )
    planes = (
        flat[:n].reshape(1, 1, height, width),
        *(flat[n + i * nc : n + (i + 1) * nc].reshape(1, 1, height // 2, width // 2) for i in (0, 1)),
    )
    yuv = yuv_420_to_444(planes, mode="nearest")[0].permute(1, 2, 0).numpy()  # chroma: each sample on its 2x2 block
    rgb = (yuv - _YUV_OFFSET) @ np.linalg.inv(_RGB_TO_YUV).T
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def classical_codecs(
    families: list[str] | None = None, qualities: dict[str, list[int]] | None = None
) -> tuple[list[ImageCodec], list[str]]:
    """The classical anchors over a quality sweep.

    Args:
        families: subset of :data:`CLASSICAL_FAMILIES` (all by default).
        qualities: quality (QP for ``vvc``) list per family; :data:`DEFAULT_QUALITIES` where missing.
    Returns:
        ``(codecs, skipped)``: the codecs whose encoder is installed, and one message per
        family that is not (printed too), e.g. ``"vvc: vvencapp/vvdecapp are not on PATH ..."``.
    """
    families = list(CLASSICAL_FAMILIES if families is None else families)
    unknown = sorted(set(families) - set(CLASSICAL_FAMILIES))
    if unknown:
        raise ValueError(f"unknown classical codec(s) {unknown}; expected some of {list(CLASSICAL_FAMILIES)}")
    qualities = {**DEFAULT_QUALITIES, **(qualities or {})}
    codecs, skipped = [], []
    for family in families:
        make = VVCCodec if family == "vvc" else (lambda q, f=family: PillowCodec(f, q))
        try:
            codecs.extend(make(q) for q in qualities[family])
        except CodecUnavailable as err:
            print(f"[coding] skipped {err}")
            skipped.append(str(err))
    return codecs, skipped


# --------------------------------------------------------------------------- learned


class LearnedCodec(ImageCodec):
    """A trained codec (TCM or a CompressAI baseline) coding through :mod:`icm_lib.bitstream`'s bitstream."""

    def __init__(self, model, family: str, setting: str, meta: dict | None = None, path: Path | None = None):
        self.model = model.eval()
        self.family, self.setting = family, setting
        self.meta, self.path = meta or {}, path
        # computed once: the weights of a loaded codec do not change, and hashing them costs as
        # much as coding a small image
        self.weights_fingerprint = model_fingerprint(self.model)
        self._fingerprint = f"{self.id} weights-{self.weights_fingerprint}"
        self.takes_mask = takes_mask(self.model)

    @property
    def fingerprint(self) -> str:
        """The id and a hash of the weights: a retrained codec under the same id is coded anew."""
        return self._fingerprint

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> LearnedCodec:
        """Load a checkpoint saved by :func:`icm_lib.checkpoint.save_checkpoint`.

        The family is ``<model>-<loss>`` (``tcm-tiny-object``), the setting the lambda (``0.05``).
        """
        model, meta, _ = load_checkpoint(Path(path))
        family = f"{meta['model']}-{meta['loss']}"
        return cls(model, family, format(float(meta["lmbda"]), "g"), meta, Path(path))

    def __reduce__(self):
        # sent to worker processes as its checkpoint path when it has one, not as pickled weights
        if self.path is not None:
            return (LearnedCodec.from_checkpoint, (self.path,))
        return (LearnedCodec, (self.model, self.family, self.setting, self.meta, self.path))

    @property
    def lmbda(self) -> float:
        return float(self.setting)

    @property
    def identity(self) -> dict:
        return codec_identity(
            {
                "model": self.meta.get("model"),
                "loss": self.meta.get("loss"),
                "lmbda": self.lmbda,
                # checkpoints written without it: the model's and the loss's label, as training gives them
                "method": self.meta.get("method") or _method_of(self.model, self.meta.get("loss")),
                "family": self.family,
            }
        )

    def encode(self, image: np.ndarray, mask: np.ndarray | None = None) -> bytes:
        """The bitstream of an image; ``mask`` (HxW, nonzero = object) is what an ROI codec codes, and only it."""
        binary = None if mask is None else (np.asarray(mask) > 0)
        return encode_bitstream(self.model, _check_image(image), fingerprint=self.weights_fingerprint, mask=binary)

    def decode(self, data: bytes) -> np.ndarray:
        return to_uint8(decode_bitstream(self.model, data, fingerprint=self.weights_fingerprint))


# The compared methods the evaluation is built around, by the label their records carry: the paper's
# codec (Eq. 4; the ROI codec shares its loss but not its method) and the codec it is set against (Eq. 1).
PAPER_METHOD = "Object-MSE"
BASELINE_METHOD = "MSE"


def codec_identity(record: dict) -> dict:
    """``method``, ``model``, ``loss`` and ``lmbda`` of a codec from any record of it: a checkpoint's meta,
    a coding payload, a results body (there ``lmbda`` is the list of its points'), a recognition curve.

    Records written before these fields existed are read here, and only here: the method from the
    loss's registration, the model and loss from a family name ``<model>-<loss>`` (a registered loss;
    anything else is a classical anchor), a point's lambda from its ``setting``.
    """
    from icm_lib.losses import CRITERIA

    out = {k: record.get(k) for k in ("method", "model", "loss", "lmbda")}
    family = record.get("family") or record.get("name") or ""
    if "loss" not in record and "model" not in record:  # a record from before the registry
        out["loss"] = next((loss for loss in CRITERIA if family.endswith(f"-{loss}")), None)
        out["model"] = family[: -len(out["loss"]) - 1] if out["loss"] else None
    if out["lmbda"] is None and out["loss"] is not None:
        settings = record.get("setting") or (record.get("results") or {}).get("setting")
        if isinstance(settings, list):
            out["lmbda"] = [float(s) for s in settings]
        elif settings is not None:
            out["lmbda"] = float(settings)
    if not out["method"]:
        out["method"] = CRITERIA[out["loss"]].method if out["loss"] in CRITERIA else family
    return out


def _method_of(model: torch.nn.Module, loss: str | None) -> str | None:
    from icm_lib.losses import CRITERIA, method_label

    return method_label(model, loss) if loss in CRITERIA else None


def _check_image(image: np.ndarray) -> np.ndarray:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {got}")
    return np.ascontiguousarray(image)
