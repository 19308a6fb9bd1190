"""The data layer: data sets as uint8 tensors or image folders, batches, augmentation, subsets."""

from nasforge.data.augment import Augment, cutout, random_crop, random_flip
from nasforge.data.datasets import (
    DATASETS,
    Dataset,
    FolderSplit,
    Split,
    data_root,
    dataset_info,
    load_dataset,
)
from nasforge.data.folders import FolderBatches
from nasforge.data.loader import Batches, make_batches
from nasforge.data.subset import read_index_file, split_weight_arch, write_index_file

__all__ = [
    "DATASETS",
    "Augment",
    "Batches",
    "Dataset",
    "FolderBatches",
    "FolderSplit",
    "Split",
    "cutout",
    "data_root",
    "dataset_info",
    "load_dataset",
    "make_batches",
    "random_crop",
    "random_flip",
    "read_index_file",
    "split_weight_arch",
    "write_index_file",
]
