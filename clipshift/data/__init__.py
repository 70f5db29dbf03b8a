"""Training and evaluation data: world splits and real files on disk, as ImageTextTables (a world split too
large for memory as a StreamedTable, rendered per batch)."""

from clipshift.data.cache import decode_bytes_to_cache, decode_to_cache, default_cache_dir
from clipshift.data.config import DataConfig, SubsampleConfig, WorldData, load_table, parse_data_config
from clipshift.data.loaders import load_csv, load_imagefolder, load_imagenet_captions, load_wds
from clipshift.data.streamed import StreamedTable
from clipshift.data.subsample import match_counts, subsample_zipf, subset_by_size, trim_tail
from clipshift.data.table import Batch, ImageTextTable, world_table

__all__ = [
    "Batch",
    "DataConfig",
    "ImageTextTable",
    "StreamedTable",
    "SubsampleConfig",
    "WorldData",
    "decode_bytes_to_cache",
    "decode_to_cache",
    "default_cache_dir",
    "load_csv",
    "load_imagefolder",
    "load_imagenet_captions",
    "load_table",
    "load_wds",
    "match_counts",
    "parse_data_config",
    "subsample_zipf",
    "subset_by_size",
    "trim_tail",
    "world_table",
]
