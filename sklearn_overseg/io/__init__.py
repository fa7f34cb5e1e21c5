"""Reading and writing: label volumes (:mod:`.volumes`) and fitted models (:mod:`.persistence`).

``from sklearn_overseg.io import load_volume`` works as before the re-layout: the names
of :mod:`sklearn_overseg.io.volumes` are re-exported here. They are imported on first
use, so the command line can check file names (:mod:`._formats`, :mod:`._paths`) before
numpy is imported.
"""

from importlib import import_module

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "HDF5Volume",
    "VolumeReadError",
    "ZarrChunkError",
    "atomic_output",
    "load_volume",
    "open_volume",
    "read_region",
    "save_volume",
    "volume_format",
]


def __getattr__(name: str):
    if name in __all__:
        value = getattr(import_module(".volumes", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
