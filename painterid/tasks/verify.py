"""verify: is each questioned painting consistent with a body of authenticated works of one artist?

For each questioned image: a set score (an aggregate of the model's own pair scores against the references,
scoring.sets), its log10 likelihood ratio (calibrated per number of references on held-out artists, MODEL/sets.json,
scoring.setcal) against a population of other artists (the model's cohort, or `contrast` paintings), p(same artist)
at a stated prior, the closest references, and the verdict, which follows from p: consistent when p >= 0.5.
Embedding goes through compare's content-hash cache and runtime choice (tasks.compare.embed_paths): with cached
references and the default aggregate no torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from painterid.core.errors import DataError, ImageError, PainterIDError

#: fewest paintings a --contrast population may hold (the znorm aggregates standardise over it)
MIN_CONTRAST = 10
ONE_REFERENCE_NOTE = "one reference: the set score is the pair score, as `painterid compare` gives it"


@dataclass
class References:
    """Reference paintings of one artist: vectors [K, D], names, content hashes (None from an index)."""

    vectors: np.ndarray
    names: list[str]
    hashes: list[str | None]
    source: str
    paths: list[Path] = field(default_factory=list)


def _hash_all(paths: list[Path]) -> tuple[list[Path], list[str], list[str]]:
    """(readable files, their sha256, one line per bad file)."""
    from painterid.store.feature_store import file_sha256

    good, hashes, bad = [], [], []
    for p in paths:
        if not p.exists():
            bad.append(f"{p}: no such file")
            continue
        if p.is_dir():
            bad.append(f"{p}: is a directory, not an image")
            continue
        try:
            hashes.append(file_sha256(p))
            good.append(p)
        except OSError as exc:
            bad.append(f"{p}: cannot read ({exc.strerror or exc})")
    return good, hashes, bad


def embed_tolerant(paths: list[Path], model, runtime=None, device=None) -> tuple[list[Path], np.ndarray, list[str]]:
    """(paths embedded, their vectors, one line per file that could not be read): a bad file costs only itself."""
    from painterid.tasks.compare import embed_paths

    good, _, bad = _hash_all(paths)
    if not good:
        return [], np.zeros((0, int(model.embedding["dim"])), np.float32), bad
    try:
        return good, embed_paths(good, model.embedding, device=device, base_dir=model.root, runtime=runtime), bad
    except ImageError:
        pass  # at least one unreadable image: one at a time, to keep the good ones
    keep, vecs = [], []
    for p in good:
        try:
            vecs.append(embed_paths([p], model.embedding, device=device, base_dir=model.root, runtime=runtime)[0])
            keep.append(p)
        except ImageError as exc:
            bad.append(str(exc))
    return keep, np.stack(vecs) if vecs else np.zeros((0, int(model.embedding["dim"])), np.float32), bad


def references_from_files(refs: list[Path], model, runtime=None, device=None, recursive=False) -> References:
    """The references of files / folders / a feature store; any bad reference is an error (exit 2)."""
    from painterid.core.io import check_config_match
    from painterid.store.feature_store import FeatureStore
    from painterid.tasks.compare import embed_paths, expand_images

    if len(refs) == 1 and FeatureStore.is_store(Path(refs[0])):
        store = FeatureStore.open(refs[0])
        check_config_match(store.embedding, model.embedding, what=f"references {refs[0]}",
                           fix="embed the references with this model's backbone, or give their image files")
        if not store.rows:
            raise DataError(f"{refs[0]}: the feature store holds no references")
        return References(np.asarray(store.vectors, np.float32), [r.name or r.path for r in store.rows],
                          [r.sha256 for r in store.rows], str(refs[0]), [Path(r.path) for r in store.rows])
    paths = expand_images(refs, recursive=recursive)
    good, hashes, bad = _hash_all(paths)
    if bad:
        raise ImageError(f"reference {bad[0]}")
    vecs = embed_paths(good, model.embedding, device=device, base_dir=model.root, runtime=runtime)
    return References(vecs, [str(p) for p in good], hashes, ", ".join(map(str, refs)), good)


def references_from_index(index_dir: Path, artist: str, model) -> References:
    """The paintings of `artist` in an artist index built with the model's embedding."""
    from painterid.core.io import check_config_match
    from painterid.tasks.index import ArtistIndex

    index = ArtistIndex.load(index_dir)
    check_config_match(index.embedding_config, model.embedding, what=f"index {index_dir}",
                       fix="build the index with this model's backbone (painterid index build)")
    rows = index._rows_of(artist)
    return References(index.vectors_of(rows), [index.files[int(r)] for r in rows], [None] * len(rows),
                      f"{index_dir} ({artist})")


def _self_excluded(q_hash: str | None, q_vec: np.ndarray, refs: References) -> np.ndarray:
    """Mask of the references that are the questioned painting itself (same content hash; from an index, the
    same vector)."""
    same = np.array([h is not None and h == q_hash for h in refs.hashes], dtype=bool)
    if any(h is None for h in refs.hashes):
        a = refs.vectors / np.maximum(np.linalg.norm(refs.vectors, axis=1, keepdims=True), 1e-12)
        same |= (a @ (q_vec / max(np.linalg.norm(q_vec), 1e-12))) > 1.0 - 1e-6
    return same


def verify_one(model, cal, aggregate: str, q_path: Path, q_hash: str | None, q_vec: np.ndarray, refs: References,
               prior: float, population: np.ndarray | None, patches=None) -> dict:
    """The verify result of one questioned painting (the JSON line)."""
    from painterid.scoring.setcal import posterior
    from painterid.scoring.sets import make_trials, set_score

    same = _self_excluded(q_hash, q_vec, refs)
    keep = np.flatnonzero(~same)
    if not len(keep):
        raise DataError(f"{q_path}: its only reference is itself (same content); nothing left to compare with")
    qp, rp = (None, None) if patches is None else patches(q_path, [refs.paths[i] for i in keep])
    trial = make_trials(model, q_vec[None], refs.vectors[keep], population, qp, rp, aggregate)[0]
    score = set_score(aggregate, trial)
    z, k_used = cal.log10_lr(aggregate, len(keep), np.array([score]))
    p = float(posterior(z, prior)[0])
    order = np.argsort(-trial.pair, kind="stable")[:5]
    res = {"questioned": str(q_path), "references": int(len(keep)),
           "excluded_self": refs.names[int(np.flatnonzero(same)[0])] if same.any() else None,
           "aggregate": aggregate, "set_score": round(float(score), 6), "log10_lr": round(float(z[0]), 4),
           "calibrated_at_k": int(k_used), "prior": prior, "p_same": round(p, 6), "consistent": bool(p >= 0.5),
           "verdict": "consistent" if p >= 0.5 else "not consistent",
           "closest": [{"reference": refs.names[int(keep[j])], "score": round(float(trial.pair[j]), 6)}
                       for j in order],
           "model": str(model.root)}
    if len(keep) == 1:
        res["note"] = ONE_REFERENCE_NOTE
    return res


def verify(questioned: list[Path], model_dir: Path, references: list[Path] | None = None,
           index_dir: Path | None = None, artist: str | None = None, aggregate: str | None = None,
           prior: float = 0.5, contrast: list[Path] | None = None, runtime=None, device=None,
           recursive: bool = False) -> tuple[list[dict], list[str]]:
    """Verify each questioned painting against the references; returns (results, one line per bad file).

    Bad references, model or options raise (nothing is verified); a bad questioned file costs only itself."""
    from painterid.scoring.loading import single_model
    from painterid.scoring.setcal import load_set_calibration, posterior
    from painterid.scoring.sets import SET_AGGREGATES, population_of
    from painterid.tasks.compare import expand_images

    posterior(0.0, prior)  # a prior outside (0, 1) is refused before any work
    model = single_model(model_dir, "verify")
    cal = load_set_calibration(model_dir)
    agg = SET_AGGREGATES.get(aggregate or cal.default)
    refs = _references(references, index_dir, artist, model, runtime, device, recursive)
    population = None
    if contrast:
        if not agg.needs_population:
            raise PainterIDError(f"--contrast weighs the evidence against other artists' paintings; the {agg.name} "
                                 f"aggregate does not use a population (choose one of "
                                 f"{', '.join(SET_AGGREGATES.names(lambda a: a.needs_population))})")
        population = references_from_files(contrast, model, runtime, device, recursive).vectors
        if len(population) < MIN_CONTRAST:
            raise DataError(f"--contrast: {len(population)} paintings; give at least {MIN_CONTRAST} paintings of "
                            "other artists (a population to weigh the evidence against)")
    population = population_of(model, population)
    q_paths, q_vecs, bad = embed_tolerant(expand_images(questioned, recursive=recursive), model, runtime, device)
    _, q_hashes, _ = _hash_all(q_paths)
    patches = _patch_reader(model, device) if agg.needs_patches else None
    stale = _stale_calibration(model, cal)
    results = []
    for p, h, v in zip(q_paths, q_hashes, q_vecs):
        try:
            results.append(verify_one(model, cal, agg.name, p, h, v, refs, prior, population, patches))
            if stale:
                results[-1]["calibration_warning"] = stale
        except DataError as exc:
            bad.append(str(exc))
    return results, bad


def _stale_calibration(model, cal) -> str | None:
    """A warning when the model's cohort changed since its set calibration was fitted (`cohort set`)."""
    from painterid.tasks.setfit import cohort_digest

    want = cal.info.get("cohort_sha256")
    if want is None or want == cohort_digest(model):
        return None
    return ("the model's cohort changed since its likelihood ratio was fitted; refit it: painterid calibrate "
            "MODEL LABELLED_DATA --references 1,2,3,5")


def _references(references, index_dir, artist, model, runtime, device, recursive) -> References:
    if index_dir is not None or artist is not None:
        if references:
            raise PainterIDError("give either --references or --index with --artist, not both")
        if index_dir is None or artist is None:
            raise PainterIDError("--index and --artist go together")
        return references_from_index(Path(index_dir), artist, model)
    if not references:
        raise PainterIDError("verify needs --references (a folder or files of one artist's works) or "
                             "--index INDEX --artist NAME")
    return references_from_files(list(map(Path, references)), model, runtime, device, recursive)


def _patch_reader(model, device):
    """patches(questioned path, reference paths) -> ([1, P, D], [K, P, D]) grid patches (needs torch)."""
    from painterid.embedding.patches import PatchSource
    from painterid.store.feature_store import file_sha256

    def read(q: Path, refs: list[Path]):
        if not refs:
            raise DataError("patch-pool needs the references' image files (not an index)")
        paths = {file_sha256(p): str(p) for p in [q, *refs]}
        src = PatchSource(model.embedding, paths, base_dir=model.root, extra=0, device=device)
        x = src(list(paths))
        return x[:1], x[1:]
    return read


def write_reports(out_dir: Path, results: list[dict], model_dir: Path) -> list[Path]:
    """One self-contained HTML page per verify result (painterid.tasks.evidence; plotting imports only here)."""
    try:
        from painterid.tasks.evidence import write_verify_report
    except ModuleNotFoundError:
        raise PainterIDError("--report needs painterid.tasks.evidence, which this build lacks") from None
    return [write_verify_report(Path(out_dir), r, Path(model_dir)) for r in results]
