"""torchvision Mask R-CNN on the layout: :mod:`.data` (the dataset), :mod:`.model` (the network and
its settings), :mod:`.train` (training, fine-tuning and scoring)."""
