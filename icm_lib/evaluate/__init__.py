"""Evaluation of the codecs of Shindo et al., "Image Coding for Machines with Object Region Learning".

- :mod:`icm_lib.evaluate.codecs`: learned and classical codecs behind one interface (real bitstreams).
- :mod:`icm_lib.evaluate.coding`: coding a dataset split, per-image records, results per codec family.
- :mod:`icm_lib.evaluate.bitmaps`: bit-allocation maps and the share of bits inside the objects (Fig. 4).
- The recognition modules (detectors, COCOeval, BD-rate) measure the machines on the decoded images.
"""
