"""Training: datasets, a training loop and the `python -m leanconv.train` command line."""
from .data import fashion_mnist, random_images, read_idx
from .loop import TrainResult, evaluate, table, train

__all__ = ["fashion_mnist", "random_images", "read_idx", "train", "evaluate", "table", "TrainResult"]
