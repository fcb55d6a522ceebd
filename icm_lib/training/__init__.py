"""Training the learned codecs of the paper: the Object-MSE and MSE lambda sweeps.

Shindo et al., "Image Coding for Machines with Object Region Learning", train
TCM (Liu et al., CVPR 2023) with ``R + lambda * 255^2 * Object_MSE`` (Eq. 4)
and, as the comparison, with ``R + lambda * 255^2 * MSE`` (Eq. 1). The recipe
is TCM's published one: Adam with lr 1e-4 on the network, a separate Adam with
lr 1e-3 on the entropy bottleneck's quantiles (the auxiliary loss), a step
learning-rate decay and gradient clipping at 1.0.

Modules:

- :mod:`~icm_lib.training.config`: :class:`TrainConfig`, the settings of one run.
- :mod:`~icm_lib.training.state`: optimizers, the resumable data order, random states.
- :mod:`~icm_lib.training.distributed`: torchrun / DDP set-up (nccl on GPU, gloo on CPU).
- :mod:`~icm_lib.training.loop`: :func:`train_codec`, one resumable run.
- :mod:`~icm_lib.training.precision`: the transforms in bfloat16 (``compute_dtype``), a speed option.
- :mod:`~icm_lib.training.validate`: validation with real bitstreams.
- :mod:`~icm_lib.training.sweep`: lambda sweeps, warm starts, :func:`trained_codecs`.
- :mod:`~icm_lib.training.report`: results JSON and the object/background BD-PSNR.
"""
