"""The training command line's datasets, through torchvision, with the papers' standard augmentations.

``dataset(name, root, train)`` gives CIFAR-10/100, SVHN, an ImageNet-style ImageFolder or Fashion-MNIST:

- CIFAR-10/100: ``root/cifar-10-batches-py`` or ``root/cifar-100-python`` (the python pickles of
  https://www.cs.toronto.edu/~kriz/cifar.html, extracted); training: random crop with 4-pixel padding and a
  horizontal flip.
- SVHN: ``root/train_32x32.mat`` and ``root/test_32x32.mat`` (http://ufldl.stanford.edu/housenumbers/, needs scipy);
  training: the padded random crop, no flip (digits are not mirror-symmetric).
- ImageNet: ``root/train/<class>/*`` and ``root/val/<class>/*`` (an ImageFolder per split, the layout of
  torchvision's reference scripts); training: RandomResizedCrop(224) and a flip; test: Resize(256), CenterCrop(224).
- Fashion-MNIST: the idx files of Debian's ``dataset-fashion-mnist`` (no download), padded to 32x32; training:
  random crop with 2-pixel padding.

Every image is normalised with its dataset's channel mean and std. The files are checked for presence, not for the
md5 sums of the original archives, so a re-packed copy in the same format works; a missing file is a
:class:`DatasetMissing` error naming the files expected and where they come from.
"""
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import torch
from torch.utils.data import Dataset

from .._extras import training_dependency
from .data import _find, fashion_mnist_candidates, read_idx
from .device_data import Augmentation, DeviceImages

np = training_dependency("numpy")
torchvision = training_dependency("torchvision")
v2 = training_dependency("torchvision.transforms.v2")


class DatasetMissing(FileNotFoundError):
    """A dataset's files are not where they were looked for; the message says which files and how to get them."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    in_channels: int
    num_classes: int
    expected: Callable[[Path], List[Path]]  # the files (or folders) that must exist under root
    source: str                             # where the files come from
    build: Callable[[Path, bool], Dataset]
    default_root: Optional[Callable[[], str]] = None  # where to look without --data


def _normalize(mean, std):
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


def _cifar_transform(train: bool, flip: bool, mean, std):
    augment = [v2.RandomCrop(32, padding=4)] + ([v2.RandomHorizontalFlip()] if flip else []) if train else []
    return v2.Compose(augment + _normalize(mean, std))


class _PresentCIFAR:
    """torchvision's CIFAR reader with the files checked for presence and format (unpickling checks it), not for the
    original archive's md5 sums."""

    def _check_integrity(self) -> bool:
        return True

    def _load_meta(self) -> None:
        with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


class _PresentCIFAR10(_PresentCIFAR, torchvision.datasets.CIFAR10):
    pass


class _PresentCIFAR100(_PresentCIFAR, torchvision.datasets.CIFAR100):
    pass


class _PresentSVHN(torchvision.datasets.SVHN):
    def _check_integrity(self) -> bool:
        return True


CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
SVHN_MEAN, SVHN_STD = (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)


def _cifar10(root: Path, train: bool) -> Dataset:
    return _PresentCIFAR10(str(root), train=train, transform=_cifar_transform(train, True, CIFAR10_MEAN, CIFAR10_STD))


def _cifar100(root: Path, train: bool) -> Dataset:
    return _PresentCIFAR100(str(root), train=train,
                            transform=_cifar_transform(train, True, CIFAR100_MEAN, CIFAR100_STD))


def _svhn(root: Path, train: bool) -> Dataset:
    try:
        import scipy.io  # noqa: F401  (torchvision reads the .mat files with it)
    except ImportError as error:
        raise DatasetMissing("leanconv: SVHN's .mat files are read with scipy: pip install scipy") from error
    return _PresentSVHN(str(root), split="train" if train else "test",
                        transform=_cifar_transform(train, False, SVHN_MEAN, SVHN_STD))


def _imagenet(root: Path, train: bool) -> Dataset:
    if train:
        transform = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip()]
                               + _normalize(IMAGENET_MEAN, IMAGENET_STD))
    else:
        transform = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224)]
                               + _normalize(IMAGENET_MEAN, IMAGENET_STD))
    return torchvision.datasets.ImageFolder(str(root / ("train" if train else "val")), transform=transform)


class FashionMNISTImages(Dataset):
    """Fashion-MNIST from its idx files as (1, 32, 32) normalised images (zero-padded from 28x28), with the padded
    random crop in training."""

    def __init__(self, root: Path, train: bool):
        prefix = "train" if train else "t10k"
        self.images = torch.from_numpy(read_idx(_find(root, f"{prefix}-images-idx3-ubyte")).copy()).unsqueeze(1)
        self.labels = torch.from_numpy(read_idx(_find(root, f"{prefix}-labels-idx1-ubyte")).astype(np.int64))
        if len(self.images) != len(self.labels):
            raise ValueError(f"leanconv: {root}: {len(self.images)} images but {len(self.labels)} labels")
        augment = [v2.RandomCrop(32, padding=2)] if train else []
        self.transform = v2.Compose([v2.Pad(2)] + augment + [v2.ToDtype(torch.float32, scale=True),
                                                              v2.Normalize(FASHION_MEAN, FASHION_STD)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.transform(v2.functional.to_image(self.images[index])), self.labels[index]


def _fashion_expected(root: Path) -> List[Path]:
    return [root / f"{stem}[.gz]" for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]


def _fashion_default_root() -> str:
    """$LEANCONV_FASHION_MNIST where set, else Debian's install or ./data/fashion-mnist: the first that exists (else
    the first named)."""
    candidates = fashion_mnist_candidates()
    return next((c for c in candidates if Path(c).is_dir()), candidates[0])


def _present(path: Path) -> bool:
    text = str(path)
    if text.endswith("[.gz]"):
        return Path(text[:-5]).exists() or Path(text[:-5] + ".gz").exists()
    return path.exists()


DATASETS = {spec.name: spec for spec in [
    DatasetSpec("cifar10", 3, 10,
                lambda r: [r / "cifar-10-batches-py" / f for f in
                           [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]],
                "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extracted into DIR",
                _cifar10),
    DatasetSpec("cifar100", 3, 100, lambda r: [r / "cifar-100-python" / f for f in ("train", "test", "meta")],
                "cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extracted into DIR",
                _cifar100),
    DatasetSpec("svhn", 3, 10, lambda r: [r / "train_32x32.mat", r / "test_32x32.mat"],
                "train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/", _svhn),
    DatasetSpec("imagenet", 3, 1000, lambda r: [r / "train", r / "val"],
                "the ILSVRC-2012 images from https://image-net.org, one folder per class under train/ and val/ "
                "(the layout of torchvision's reference training scripts)", _imagenet),
    DatasetSpec("fashion-mnist", 1, 10, _fashion_expected,
                "Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or the four idx files of "
                "https://github.com/zalandoresearch/fashion-mnist", lambda r, t: FashionMNISTImages(r, t),
                default_root=_fashion_default_root),
]}


def dataset(name: str, root=None, train: bool = True) -> Dataset:
    """The ``train`` or test split of dataset ``name`` from ``root`` (see the module doc), or DatasetMissing."""
    if name not in DATASETS:
        raise ValueError(f"leanconv: unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    if root is None:
        if spec.default_root is None:
            raise DatasetMissing(f"leanconv: {name} needs --data DIR: {spec.source}")
        root = spec.default_root()
    root = Path(root)
    missing = [p for p in spec.expected(root) if not _present(p)]
    if missing:
        listed = "\n  ".join(str(p) for p in missing)
        source = spec.source.replace("DIR", str(root))
        raise DatasetMissing(f"leanconv: {name} not found in {root}: missing\n  {listed}\nGet {source}.")
    return spec.build(root, train)


# The augmentations above, for the datasets small enough to live on the device (leanconv.train.device_data).
_DEVICE_AUGMENTATION = {"fashion-mnist": Augmentation(pad=2, crop_padding=2),
                        "cifar10": Augmentation(crop_padding=4, flip=True),
                        "cifar100": Augmentation(crop_padding=4, flip=True), "svhn": Augmentation(crop_padding=4)}
_NORMALIZATION = {"fashion-mnist": (FASHION_MEAN, FASHION_STD), "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
                  "cifar100": (CIFAR100_MEAN, CIFAR100_STD), "svhn": (SVHN_MEAN, SVHN_STD)}


def device_dataset(name: str, root=None, train: bool = True, device="cpu", flip: bool = False,
                   erasing: float = 0.0) -> DeviceImages:
    """The ``train`` or test split of ``name`` as uint8 images on ``device``, augmented there as :func:`dataset`
    augments them (``flip`` adds a horizontal flip where the dataset has none; ``erasing`` random erasing with that
    probability)."""
    if name not in _DEVICE_AUGMENTATION:
        raise ValueError(f"leanconv: --data-on-device holds fashion-mnist, cifar10, cifar100 or svhn; {name} is "
                         "read through its DataLoader")
    source = dataset(name, root, train)  # the files checked and read as the DataLoader path reads them
    if isinstance(source, FashionMNISTImages):
        images, labels = source.images, source.labels
    elif isinstance(source, torchvision.datasets.SVHN):
        images, labels = torch.from_numpy(source.data), torch.as_tensor(source.labels)
    else:  # CIFAR: (N, H, W, C)
        images, labels = torch.from_numpy(source.data).permute(0, 3, 1, 2).contiguous(), torch.as_tensor(source.targets)
    augmentation = _DEVICE_AUGMENTATION[name]
    augmentation = Augmentation(augmentation.pad, augmentation.crop_padding, augmentation.flip or flip, erasing)
    return DeviceImages(images, labels, *_NORMALIZATION[name], augmentation, train, device)


__all__ = ["DATASETS", "DatasetMissing", "FashionMNISTImages", "dataset", "device_dataset"]
