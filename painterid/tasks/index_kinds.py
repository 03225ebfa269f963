"""The FAISS index kinds (`index build --kind`): light to import, so the CLI lists them without loading faiss."""

from __future__ import annotations

from painterid.core.registry import Registry
from painterid.data.pairs import Choice

INDEX_KINDS: Registry[Choice] = Registry("index kind")
for _name, _help in (("auto", "flat up to 200k paintings, hnsw above"), ("flat", "exact search"),
                     ("hnsw", "approximate graph search"), ("ivf", "approximate inverted lists")):
    INDEX_KINDS.register(Choice(_name, _help))
