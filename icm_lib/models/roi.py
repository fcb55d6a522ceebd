"""The ROI codec: a mean-scale hyperprior told where the objects are (a compared method, not the paper's).

Shindo et al. ("Image Coding for Machines with Object Region Learning") place
Object-MSE against ROI-based codecs, which are given a map of the regions to
keep at coding time; their comparison is Li et al., "ROI-Based Deep Image
Compression with Swin Transformers" (ICASSP 2023). Li et al.'s Swin network has
no public code, so this module is the *explicit form of the ROI-based family on
our base model*, not their network: Minnen et al.'s mean-scale hyperprior
(CompressAI's ``MeanScaleHyperprior``, the demo zoo's ``mbt2018-mean``, same N
and M) whose latent is gated by the object mask before quantization,

    m_y = maxpool_16(m)                 the mask on the latent grid: a latent is kept when its 16x16 block
                                        touches an object
    m_z = maxpool_4(m_y)                the same on the hyper-latent grid
    y   = g_a(x) * m_y,   z = h_a(y)
    y_hat = Q(y) * m_y,   z_hat = Q(z) * m_z
    rate  = -sum over kept elements of log2 p      (a background element is not coded: it costs 0 bits)

and it is trained with the Object-MSE loss (Eq. 4). Registered as
``mbt2018-mean-roi``; its results carry the method label "ROI".

Why the decoder needs the mask. The gate decides which elements the entropy
coder skips; the decoder must skip the same ones, and it cannot infer them from
the hyperprior (a zero latent is not free under a Gaussian whose mean and scale
``h_s`` predicts from ``z``, and ``z`` itself is skipped on the background).
So the latent-grid mask ``m_y`` is coded in the file as a third string
(:mod:`icm_lib.models.latent_mask`: raw bits or run-lengths, whichever is
shorter) and counted in bpp like every other byte. Measured on the 200 demo
``shapes`` val images (160-256 pixels a side): 16.5 bytes on average for the
images with objects (at most 28; 0.003 bpp), 3 bytes for those without; the
mask keeps 28 % of the latents where the objects cover 19 % of the pixels. The
decoder decodes the mask, then ``z`` at ``m_z``, then ``y`` at ``m_y``, and sets
the skipped elements to 0, as the forward pass does. An image without any
object therefore costs the file's header, the mask's bytes and the CRC, nothing
more. The mask's bits are not in the training rate: the codec cannot change them.

The encoder takes the mask at coding time: in the evaluation from the dataset's
object masks (Eq. 3), on the command line from ``icm encode --mask MASK.png``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyModel
from torch import Tensor

from icm_lib.models.latent_mask import decode_latent_mask, encode_latent_mask
from icm_lib.models.wide_encoder import WideEncoderMeanScaleHyperprior

Y_STRIDE, Z_STRIDE = 16, 64  # pixels per latent and per hyper-latent along a side


def takes_mask(model: torch.nn.Module) -> bool:
    """Whether a codec codes an object mask given at coding time (an ROI codec)."""
    return bool(getattr(model, "takes_mask", False))


def latent_masks(mask: Tensor) -> tuple[Tensor, Tensor]:
    """``m_y`` and ``m_z``: the (B, 1, H, W) pixel mask max-pooled to the latent and hyper-latent grids."""
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    m_y = F.max_pool2d((mask > 0).float(), Y_STRIDE, ceil_mode=True)
    return m_y, F.max_pool2d(m_y, Z_STRIDE // Y_STRIDE, ceil_mode=True)


class RoiMeanScaleHyperprior(WideEncoderMeanScaleHyperprior):
    """``MeanScaleHyperprior(N, M)`` coding only the latents inside a given object mask (see the module docstring).

    Its encoder is the plain one by default; ``N_enc`` and ``enc_blocks`` grow it as in ``mbt2018-mean-wide``
    (:mod:`icm_lib.models.wide_encoder`), so that the ROI codec is fine-tuned from a codec of that model
    with the same encoder: the comparison then differs in the mask alone.
    """

    takes_mask = True  # forward, compress take the object mask; the bitstream carries it
    method = "ROI"  # label of the compared method in results (with the loss's: "ROI, Object-MSE")

    def forward(self, x: Tensor, mask: Tensor | None = None) -> dict:
        """``{"x_hat", "likelihoods": {"y", "z"}}`` with likelihood 1 (0 bits) at every skipped element.

        Args:
            x: (B, 3, H, W), H and W multiples of 64.
            mask: (B, 1, H, W) or (B, H, W), nonzero = object.
        """
        m_y, m_z = self._masks(x, mask)
        y = self.g_a(x) * m_y
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        z_hat = z_hat * m_z
        scales_hat, means_hat = self.h_s(z_hat).chunk(2, 1)
        y_hat, y_likelihoods = self.gaussian_conditional(y, scales_hat, means=means_hat)
        y_hat = y_hat * m_y
        likelihoods = {
            "y": torch.where(m_y > 0, y_likelihoods, torch.ones_like(y_likelihoods)),
            "z": torch.where(m_z > 0, z_likelihoods, torch.ones_like(z_likelihoods)),
        }
        return {"x_hat": self.g_s(y_hat), "likelihoods": likelihoods}

    def _masks(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        if mask is None:
            raise ValueError(
                f"{getattr(self, 'registry_name', type(self).__name__)} is an ROI codec: "
                "it needs the object mask (forward(x, mask), compress(x, mask))"
            )
        if mask.shape[0] != x.shape[0] or mask.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not fit the image {tuple(x.shape)}")
        return latent_masks(mask.to(x.device))

    def compress(self, x: Tensor, mask: Tensor | None = None) -> dict:
        """Strings ``[y, z, mask]`` per image: the kept latents (rANS), then the latent-grid mask's bytes."""
        m_y, m_z = self._masks(x, mask)
        y = self.g_a(x) * m_y
        z = self.h_a(y)
        eb = self.entropy_bottleneck
        z_symbols = eb.quantize(z, "symbols", _medians(eb, z))
        z_indexes = eb._build_indexes(z.size())
        strings: list[list[bytes]] = [[], [], []]
        for i in range(x.shape[0]):
            keep_z = (m_z[i] > 0).expand_as(z[i])
            strings[1].append(_encode_selected(eb, z_symbols[i], z_indexes[i], keep_z))
            z_hat = _decode_selected(eb, strings[1][-1], z_indexes[i], keep_z, _medians(eb, z)[i])
            scales_hat, means_hat = self.h_s(z_hat[None]).chunk(2, 1)
            gc = self.gaussian_conditional
            y_symbols = gc.quantize(y[i : i + 1], "symbols", means_hat)[0]
            keep_y = (m_y[i] > 0).expand_as(y[i])
            strings[0].append(_encode_selected(gc, y_symbols, gc.build_indexes(scales_hat)[0], keep_y))
            strings[2].append(encode_latent_mask(m_y[i, 0].cpu().numpy() > 0))
        return {"strings": strings, "shape": z.size()[-2:]}

    def decompress(self, strings: list, shape) -> dict:
        """The images of :meth:`compress`'s strings; ``shape`` is the hyper-latent's (H/64, W/64)."""
        if len(strings) != 3:
            raise ValueError(f"an ROI bitstream holds 3 strings (y, z, mask), not {len(strings)}")
        h, w = int(shape[0]), int(shape[1])
        eb, gc = self.entropy_bottleneck, self.gaussian_conditional
        images = []
        for y_string, z_string, mask_string in zip(*strings):
            m_y = torch.from_numpy(decode_latent_mask(mask_string, h * 4, w * 4))[None, None].float()
            m_z = F.max_pool2d(m_y, Z_STRIDE // Y_STRIDE)
            z_size = (1, eb.channels, h, w)
            z_indexes = eb._build_indexes(z_size)[0]
            medians = _medians(eb, torch.empty(z_size))[0]
            z_hat = _decode_selected(eb, z_string, z_indexes, (m_z[0] > 0).expand(z_size[1:]), medians)
            scales_hat, means_hat = self.h_s(z_hat[None]).chunk(2, 1)
            y_indexes = gc.build_indexes(scales_hat)[0]
            y_hat = _decode_selected(gc, y_string, y_indexes, (m_y[0] > 0).expand_as(y_indexes), means_hat[0])
            images.append(self.g_s(y_hat[None]).clamp_(0, 1))
        return {"x_hat": torch.cat(images)}


def _medians(eb, z: Tensor) -> Tensor:
    """The entropy bottleneck's medians broadcast to ``z``'s shape (what its ``compress`` subtracts)."""
    return eb._get_medians().detach().reshape(1, -1, 1, 1).expand(z.shape[0], -1, *z.shape[2:])


def _coder_tables(model: EntropyModel) -> tuple[list, list, list]:
    return (
        model._quantized_cdf.tolist(),
        model._cdf_length.reshape(-1).int().tolist(),
        model._offset.reshape(-1).int().tolist(),
    )


def _encode_selected(model: EntropyModel, symbols: Tensor, indexes: Tensor, keep: Tensor) -> bytes:
    """CompressAI's rANS string of the kept symbols alone (raster order); ``b""`` when none is kept."""
    if not bool(keep.any()):
        return b""
    model._check_cdf_size()
    return model.entropy_coder.encode_with_indexes(
        symbols[keep].int().tolist(), indexes[keep].int().tolist(), *_coder_tables(model)
    )


def _decode_selected(model: EntropyModel, string: bytes, indexes: Tensor, keep: Tensor, means: Tensor) -> Tensor:
    """The dequantized kept elements (``symbol + mean``) in place, zeros elsewhere."""
    out = torch.zeros(indexes.shape)
    if not bool(keep.any()):
        if string:
            raise ValueError("bitstream holds latents where its mask keeps none")
        return out
    values = model.entropy_coder.decode_with_indexes(string, indexes[keep].int().tolist(), *_coder_tables(model))
    out[keep] = torch.tensor(values, dtype=torch.float32) + means.expand(indexes.shape)[keep]
    return out
