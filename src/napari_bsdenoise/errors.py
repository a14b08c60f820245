"""Exceptions with messages meant for the user (API, CLI and napari notifications)."""


class BSDenoiseError(Exception):
    """Base class of every error napari-bsdenoise raises on purpose."""


class InputError(BSDenoiseError, ValueError):
    """The image, its axes or an option is not usable; the message says why and what to do."""


class ModelFileError(BSDenoiseError, ValueError):
    """A model file is missing, truncated, corrupted or not a napari-bsdenoise model."""
