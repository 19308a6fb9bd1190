"""The data layer: data sets as uint8 tensors, device-resident batches, augmentation, subsets."""

from nasforge.data.augment import Augment, cutout, random_crop, random_flip
from nasforge.data.datasets import (
    DATASETS,
    Dataset,
    Split,
    data_root,
    dataset_info,
    load_dataset,
)
from nasforge.data.loader import Batches
from nasforge.data.subset import read_index_file, split_weight_arch, write_index_file

__all__ = [
    "DATASETS",
    "Augment",
    "Batches",
    "Dataset",
    "Split",
    "cutout",
    "data_root",
    "dataset_info",
    "load_dataset",
    "random_crop",
    "random_flip",
    "read_index_file",
    "split_weight_arch",
    "write_index_file",
]
