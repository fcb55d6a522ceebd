"""The coding half: what each codec does to the pixels, from real bitstreams.

- :mod:`~icm_lib.evaluate.coding.codecs`: learned and classical codecs behind one interface.
- :mod:`~icm_lib.evaluate.coding.sweep`: coding a dataset split, per-image records, results per codec family.
- :mod:`~icm_lib.evaluate.coding.bitmaps`: bit-allocation maps and the share of bits inside the objects.
- :mod:`~icm_lib.evaluate.coding.examples`: the coding examples of Fig. 4.
"""
