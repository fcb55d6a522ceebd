"""Evaluation of the codecs of Shindo et al., "Image Coding for Machines with Object Region Learning".

The two halves of the experiment:

- :mod:`icm_lib.evaluate.coding.sweep`: the codecs and what they do to the pixels: learned and
  classical codecs behind one interface (real bitstreams), coding a split, bit-allocation
  maps and region PSNR, the coding examples of Fig. 4.
- :mod:`icm_lib.evaluate.recognition.curves`: what the machines see: YOLO and Mask R-CNN trained
  clean and fine-tuned on coded images, COCOeval, mAP-bpp curves, BD-rate tables (Figs. 2-3).
"""
