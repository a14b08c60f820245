"""Torch modules only (no I/O, nothing of napari): blind-spot primitives and networks."""

from .atbsn import ATBSN, blind_spot_shift
from .bsgd import BSGDNet
from .dbsn import DBSN
from .student import StudentUNet

__all__ = ["ATBSN", "BSGDNet", "DBSN", "StudentUNet", "blind_spot_shift"]

