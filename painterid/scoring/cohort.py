"""The reference cohort a model carries: embeddings of other paintings its normaliser chain is fitted on.

`painterid train --cohort DATA|STORE` builds a model with one; `painterid cohort set MODEL DATA|STORE` replaces
it (an auction house's own archive is the natural cohort). Paintings by the model's validation or test artists
are left out (they chose the threshold / measure the model), and so is any painting twice (same sha256).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from painterid.core.errors import DataError


def select_cohort(lab, exclude_artists=(), exclude_hashes=()) -> tuple[np.ndarray, dict, list[str]]:
    """Vectors of `lab` (a pipeline.Labelled) fit for a cohort, a summary of what was kept, and their sha256s."""
    excluded = set(exclude_artists)
    seen = set(exclude_hashes)
    keep, n_artist, n_dup = [], 0, 0
    for i, (a, h) in enumerate(zip(lab.artists, lab.hashes)):
        if a and a in excluded:
            n_artist += 1
        elif h in seen:
            n_dup += 1
        else:
            seen.add(h)
            keep.append(i)
    info = {"paintings": len(keep), "left_out_validation_or_test_artists": n_artist,
            "left_out_test_or_duplicate": n_dup}
    if lab.sources:
        counts: dict[str, int] = {}
        for i in keep:
            counts[lab.sources[i] or "unknown"] = counts.get(lab.sources[i] or "unknown", 0) + 1
        info["sources"] = dict(sorted(counts.items()))
    return np.ascontiguousarray(lab.vectors[keep], dtype=np.float32), info, [lab.hashes[i] for i in keep]


def combine(parts: list[tuple[np.ndarray, dict, list[str], str]]) -> tuple[np.ndarray, dict, list[str]]:
    """Several (vectors, info, sha256s, where) cohorts as one."""
    vecs = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 0), np.float32)
    return (vecs, {"n": int(len(vecs)), "from": [{"data": w, **i} for _, i, _, w in parts]},
            [h for p in parts for h in p[2]])


def set_cohort(model_dir: str | Path, data_or_store: str | Path, store_dir=None, progress=None, device=None,
               out: str | Path | None = None, runtime: str | None = None, stage=None):
    """Replace the cohort of the model in `model_dir` by the paintings of DATA|STORE; rewrite it atomically (or
    write the result to `out`, leaving `model_dir` as it was).

    The chain's unsupervised steps (centre, whitening, CSLS) are refitted on the new cohort; steps learned on
    the training artists are kept, and so are the threshold and calibration. When the chain's selfsup step is
    refitted, each painting is read and embedded once on the fast path: its grid patches and
    `COHORT_EXTRA_PATCHES` random crops in one forward pass (patches.CapturingEmbedder), the painting vector the
    mean of its grid patches. `progress(done, total)` follows the embedding; `stage(message)` names each step."""
    from painterid.embedding.patches import COHORT_EXTRA_PATCHES, PatchSource
    from painterid.embedding.pipeline import labelled
    from painterid.scoring.loading import single_model
    from painterid.scoring.model import carried_files

    say = stage or (lambda message: None)
    model_dir = Path(model_dir)
    model = single_model(model_dir, "cohort set")  # fused: its standardisers depend on the members' cohorts
    refit = model.chain.needs_patches and model.refits_selfsup
    source = PatchSource(model.embedding, {}, base_dir=model.root, device=device,
                         extra=COHORT_EXTRA_PATCHES) if refit else None
    if refit and Path(data_or_store).is_dir():
        say(f"embedding {data_or_store}: each painting's grid patches and {source.extra} random crops in one pass "
            "(for selfsup)")
    lab = labelled(data_or_store, model.embedding, store_dir=store_dir, progress=progress, device=device,
                   base_dir=model.root, runtime=runtime,
                   embedder=source.capturing() if refit and _is_folder(data_or_store) else None)
    artists = model.artists or {}
    vecs, info, hashes = select_cohort(lab, list(artists.get("val", [])) + list(artists.get("test", [])))
    if len(vecs) < 2:
        raise DataError(f"{data_or_store}: only {len(vecs)} paintings left for a cohort (after leaving out the "
                        "model's validation and test artists)")
    patches = None
    if refit:
        source.paths.update({h: p for h, p in zip(lab.hashes, lab.paths or []) if p})
        patches = lambda: source(hashes)  # noqa: E731  (cached by the embedding pass above)
    if refit:
        say(f"fitting {model.normaliser} on {len(vecs)} paintings")
    model.set_cohort(vecs, {"from": [{"data": str(data_or_store), **info}]}, patches=patches)
    model.save(out if out is not None else model_dir, extra_files=carried_files(model_dir))
    return model, lab.failures


def _is_folder(data_or_store) -> bool:
    from painterid.store.feature_store import FeatureStore

    return not FeatureStore.is_store(Path(data_or_store))
