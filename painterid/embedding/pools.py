"""The poolings of backbone features into one vector per image (the registry; the code is in features.py).

Light to import (no torch): the CLI lists these at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from painterid.core.registry import Registry

__all__ = ["POOLS", "POOL_REGISTRY", "Pool"]


@dataclass(frozen=True)
class Pool:
    """One pooling of backbone features into a vector."""

    name: str
    help: str
    needs_stages: bool  # reads feature_info's intermediate maps


#: The poolings (the CLI's --pool choices).
POOL_REGISTRY: Registry[Pool] = Registry("pool")
for _p in (Pool("gap", "timm's pooled final features (global average pooling)", False),
           Pool("style", "channel means and deviations of every stage (texture, brush marks)", True),
           Pool("both", "gap and style concatenated, one forward pass", True),
           Pool("stage", "channel means of the last feature stage, before the head's 1x1 convolution", True),
           Pool("cls", "a transformer's class token after its final norm (ViTs with a class token)", False),
           Pool("tokens", "mean of a transformer's patch tokens after its final norm (CNNs: mean of the last map)",
                False)):
    POOL_REGISTRY.register(_p)
POOLS = POOL_REGISTRY.names()
