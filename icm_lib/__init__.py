"""icm_lib: a runnable reproduction of "Image Coding for Machines with Object
Region Learning" (Shindo, Watanabe, Yamada, Watanabe).

A learned codec (TCM, Liu et al., CVPR 2023) trained with the Object-MSE
rate-distortion loss spends its bits on object regions; detectors judge the
decoded images. Importing the package applies offline hygiene first (see
:mod:`icm_lib.offline`).
"""

from icm_lib import offline as _offline

_offline.apply()

__version__ = "0.1.0"
