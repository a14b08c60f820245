"""Torch modules only (no I/O, nothing of napari): blind-spot primitives and networks."""

from .atbsn import ATBSN, blind_spot_shift
from .bsgd import BSGDNet
from .dbsn import DBSN
from .student import StudentUNet

__all__ = ["ATBSN", "DBSN", "StudentUNet", "blind_spot_shift", "build_network"]


def build_network(cfg):
    """Instantiate the network described by a :class:`~napari_bsdenoise.config.NetworkConfig`."""
    if cfg.method == "atbsn":
        return ATBSN(cfg.in_channels, cfg.out_channels, width=cfg.width, depth=cfg.depth)
    if cfg.method == "dbsn":
        return DBSN(cfg.in_channels, cfg.out_channels, width=cfg.width, depth=cfg.depth)
    if cfg.method == "student":
        return StudentUNet(cfg.in_channels, cfg.out_channels, width=cfg.width, depth=cfg.depth)
    if cfg.method == "bsgd":  # blind-spot guided diffusion: two time-conditioned branches (nn/bsgd.py)
        return BSGDNet(cfg.in_channels, cfg.out_channels, width=cfg.width, depth=cfg.depth)
    raise ValueError(f"unknown method {cfg.method!r}")
