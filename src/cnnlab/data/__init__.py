"""Datasets: readers for each file format, the dataset registry, the batch loader.

``load_dataset(name, data_dir)`` returns an :class:`ImageDataset` of uint8 NCHW tensors.
"""
from .core import (DATASETS, ImageDataset, cache_dir, channel_stats, dataset_options, load_dataset,
                   register_dataset, stratified_split)
from .idx import DataFileError, read_idx, read_idx_pair

# Each import below registers its datasets.
from . import mnist  # noqa: F401,E402
from . import cifar, images, iris, notmnist  # noqa: F401,E402
from .images import DataSkipWarning, load_image_folder  # noqa: E402
from .info import dataset_info, format_verification, plot_class_distribution, verify_dataset  # noqa: E402
from .loader import BatchLoader  # noqa: E402

__all__ = ["DATASETS", "BatchLoader", "ImageDataset", "DataFileError", "DataSkipWarning", "cache_dir", "channel_stats",
           "dataset_info", "dataset_options", "format_verification", "load_dataset", "load_image_folder",
           "plot_class_distribution", "read_idx", "read_idx_pair", "register_dataset",
           "stratified_split", "verify_dataset"]
