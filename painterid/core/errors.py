"""Errors a user can cause: the CLI prints them as one line and exits with status 2."""


class PainterIDError(Exception):
    """Base class for every error caused by input (a path, an image, a mismatched artefact)."""


class ImageError(PainterIDError):
    """An image file cannot be read or decoded."""


class WeightsUnavailable(PainterIDError):
    """Pretrained weights for a backbone are not on this machine."""


class ArtefactError(PainterIDError):
    """A store, model or index directory is missing, corrupt, or made with other settings."""


class DataError(PainterIDError):
    """A data set (folder, CSV) is malformed or unusable for the asked operation."""
