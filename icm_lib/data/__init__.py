"""Datasets and object masks: the embedded generated data, real COCO2017 and
VisDrone in one COCO-format layout (:mod:`icm_lib.data.layout`)."""
