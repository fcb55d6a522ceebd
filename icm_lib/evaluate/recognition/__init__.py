"""The recognition half: what the machines see in the decoded images (Figs. 2-3).

- :mod:`~icm_lib.evaluate.recognition.yolo`: YOLO (ultralytics) trained, fine-tuned and scored.
- :mod:`~icm_lib.evaluate.recognition.maskrcnn`: torchvision Mask R-CNN (data, model, training).
- :mod:`~icm_lib.evaluate.recognition.cocoeval`: COCO mAP of predictions.
- :mod:`~icm_lib.evaluate.recognition.recognizers`: both detectors behind one interface.
- :mod:`~icm_lib.evaluate.recognition.curves`: mAP against bpp, pre-trained and fine-tuned.
- :mod:`~icm_lib.evaluate.recognition.bdrate`: Bjontegaard rates and the tables.
- :mod:`~icm_lib.evaluate.recognition.results`: the results files and their reading.
"""
