"""painterid: were these paintings made by the same artist?

The public API (``painterid.compare``, ``painterid.embedding``, ``painterid.load_model``) lives in
:mod:`painterid.api` and is imported on first use, so ``import painterid`` stays cheap.
"""

from painterid.core.version import __version__

_API = ("compare", "embed", "load_model", "verify")

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from painterid import api

        return getattr(api, name)
    raise AttributeError(f"module 'painterid' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
