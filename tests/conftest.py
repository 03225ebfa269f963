"""Shared fixtures: small generated data sets and a session-wide embedding cache dir."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "paintings"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes painterid's cache under a temporary directory, never the user's home; and is offline."""
    monkeypatch.setenv("PAINTERID_CACHE", str(tmp_path_factory.getbasetemp() / "painterid-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing downloads during the tests (hub tests stub the download)


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """16 procedural artists × 6 paintings in the Kaggle layout (shared by the slow end-to-end tests)."""
    from painterid.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("syn") / "data", n_artists=16, per_artist=6, size=160,
                                  seed=7)


@pytest.fixture(scope="session")
def small_store(tmp_path_factory, synthetic_data) -> Path:
    """The synthetic data embedded once with the smallest offline backbone."""
    from painterid.embedding.embedder import Embedder, EmbeddingConfig
    from painterid.embedding.pipeline import embed_data

    out = tmp_path_factory.mktemp("store") / "store"
    embedder = Embedder(EmbeddingConfig(backbone="efficientnet_lite0", view="center", pool="style"), num_workers=0)
    store, _, failures = embed_data(synthetic_data, embedder, out)
    assert not failures
    return out


def real_paintings() -> Path:
    if not (SHARED / "train_info.csv").is_file():
        pytest.skip("../shared/paintings is absent")
    return SHARED
