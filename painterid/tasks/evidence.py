"""Evidence a person can check: the native-resolution patches a `patches`-view model actually compared, each
questioned patch with its share of the score and its best-matching reference patch.

A `patches` model embeds a painting as a = L2(mean_i p_i), p_i the L2-normalised vectors of its n grid patches
(cut at native resolution from the image capped at 1024 px), then scores a pair through its normaliser chain.

**Share of a questioned patch (exact, `linear`).** When the chain's vector steps are affine (`center`, `whiten`,
`wccn`, `lda`, `selfsup`) followed by at most an `l2`, and the head is the cosine, the score decomposes exactly:
with x_i = A(p_i / |mean p|) (A the affine steps) the questioned vector is x_a = mean_i x_i, and

    score(a, b) = 2 cos(x_a, y_b) - r(a) - r(b) = sum_i <x_i, 2 ŷ_b - c̄(a)> / (n |x_a|)  -  r(b)

where ŷ_b is the reference in the scoring space, c̄(a) the mean of a's k nearest cohort paintings there (CSLS:
r(a) = <x̂_a, c̄(a)>, the neighbour set held as the model found it) and r(b) the reference's own neighbourhood.
share_i = <x_i, 2 ŷ_b - c̄(a)> / (n |x_a|): positive when the patch points towards the reference more than towards
the paintings of other artists that look most like the questioned work (it counts for the match), negative when it
points more towards those others. sum_i share_i - r(b) = score, to float rounding. What a patch adds to the
decision is its margin, share_i + (offset - threshold) / n (`Evidence.margins`, summing to score - threshold):
positive, it counts for the match; negative, against. With several
references the shares are those of the mean of the pair scores (ŷ_b and r(b) averaged).

**Otherwise (`shapley`).** For a chain with a non-linear vector step (`power`) or a non-cosine head (siamese), the
share is the exact Shapley value of each patch in the game v(S) = score(L2(mean_{i in S} p_i), b), v(empty) = 0
(all 2^n subsets for n <= 10, else 200 seeded random orders): the shares sum to the score (offset 0).

The best-matching reference patch of a questioned patch is the reference patch (over every reference given) with
the highest cosine in the model's scoring space (each patch mapped by the chain's vector steps as a painting
would be; raw patch cosine for a head without one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from painterid.core.errors import PainterIDError

AFFINE_STEPS = ("center", "whiten", "wccn", "lda", "selfsup")
EXACT_SHAPLEY_MAX = 10


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(1e-12))


@dataclass
class Side:
    """One painting as the model saw it: the image its patches are cut from, their positions, their vectors."""

    path: str
    image: object  # PIL.Image: the resized image the grid patches are cut from (native resolution up to the cap)
    grid: list[tuple[int, int]]  # (top, left) of each patch
    patch_size: tuple[int, int]  # (width, height)
    vectors: np.ndarray  # [n, D] L2-normalised patch vectors

    @property
    def vector(self) -> np.ndarray:
        """The painting's embedding: the L2 of the mean of its patch vectors."""
        return _l2(self.vectors.mean(0))

    def box(self, i: int) -> tuple[int, int, int, int]:
        top, left = self.grid[i]
        return left, top, left + self.patch_size[0], top + self.patch_size[1]

    def crop(self, i: int):
        return self.image.crop(self.box(i))


@dataclass
class Evidence:
    questioned: Side
    references: list[Side]
    pair_scores: list[float]  # the model's score of the questioned painting against each reference
    score: float  # their mean: what the shares add up to (with the offset)
    shares: np.ndarray  # [n] share of each questioned patch
    offset: float  # score - sum(shares): minus the references' mean CSLS neighbourhood (linear), 0 (shapley)
    attribution: str  # "linear" | "shapley"
    threshold: float  # the model's pair threshold
    best: list[tuple[int, int, float]] = field(default_factory=list)  # per questioned patch: (ref, patch, cos)

    @property
    def margins(self) -> np.ndarray:
        """What each questioned patch adds to (score - threshold): its share plus an even part of the rest,
        (offset - threshold) / n. Positive: the patch counts for the match; negative: against. For `linear`,
        n * margin_i is the score the painting would get above the threshold if all its patches were like patch i
        (its norm and cohort neighbours held)."""
        return self.shares + (self.offset - self.threshold) / len(self.shares)

    def order(self) -> list[int]:
        """Questioned patches from the one that counts most for the match to the one that counts most against."""
        return [int(i) for i in np.argsort(-self.margins, kind="stable")]


def linear_chain(model) -> bool:
    """Whether `model`'s score decomposes exactly over the questioned patches (see the module docstring)."""
    from painterid.scoring.model import COSINE_METHODS

    if model.method not in COSINE_METHODS:
        return False
    names = [s.name for s in model.chain.vector_steps]
    while names and names[-1] == "l2":
        names.pop()
    return all(n in AFFINE_STEPS for n in names)


def _affine(model, x: np.ndarray) -> np.ndarray:
    steps = list(model.chain.vector_steps)
    while steps and steps[-1].name == "l2":
        steps.pop()
    for step in steps:
        x = step.apply(x)
    return np.asarray(x, np.float32)


def _cohort_mean(model, xa_unit: np.ndarray) -> np.ndarray | None:
    """c̄(a): the mean of the questioned painting's k nearest cohort paintings in the scoring space (CSLS)."""
    step = model.chain.score_step
    if step is None:
        return None
    cs = _l2(step.cohort)
    sims = cs @ xa_unit
    if step.params.get("skip_self", True):
        sims = np.where(sims >= 1.0 - 1e-5, -np.inf, sims)
    k = min(int(step.params["k"]), int(np.isfinite(sims).sum()))
    top = np.argsort(-sims, kind="stable")[:k]
    return cs[top].mean(0)


def linear_shares(model, q: np.ndarray, refs: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """(shares [n], offset) of the questioned patch vectors `q` [n, D] against references (each [m, D] patch
    vectors) for a model whose chain is `linear_chain`: shares.sum() + offset = the mean pair score."""
    n = len(q)
    m = q.mean(0)
    x = _affine(model, q / max(float(np.linalg.norm(m)), 1e-12))  # mean_i x_i = A(a), a = L2(mean q)
    xa = x.mean(0)
    norm = max(float(np.linalg.norm(xa)), 1e-12)
    b = np.stack([_l2(r.mean(0)) for r in refs])
    yb = model.space(b).mean(0)  # mean over the references of ŷ_b
    target = 2.0 * yb if model.chain.score_step is not None else yb
    cbar = _cohort_mean(model, xa / norm)
    if cbar is not None:
        target = target - cbar
    shares = (x @ target) / (n * norm)
    offset = -float(model.neighbourhood(b).mean()) if cbar is not None else 0.0
    return shares.astype(np.float64), offset


def shapley_shares(model, q: np.ndarray, refs: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """Shapley value of each questioned patch in v(S) = mean_b score(L2(mean_{i in S} q_i), b), v(empty) = 0."""
    n = len(q)
    b = np.stack([_l2(r.mean(0)) for r in refs])

    def value(masks: np.ndarray) -> np.ndarray:  # masks [K, n] bool, none empty
        vecs = _l2((masks.astype(np.float32) @ q) / masks.sum(1, keepdims=True))
        s = model.scores(np.repeat(vecs, len(b), 0), np.tile(b, (len(vecs), 1)))
        return s.reshape(len(vecs), len(b)).mean(1)

    if n <= EXACT_SHAPLEY_MAX:
        codes = np.arange(1 << n)
        masks = ((codes[:, None] >> np.arange(n)) & 1).astype(bool)
        v = np.zeros(1 << n)
        v[1:] = value(masks[1:])
        size = masks.sum(1)
        w = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
        shares = np.zeros(n)
        for i in range(n):
            without = codes[~masks[:, i]]
            shares[i] = float(np.sum(w[size[without]] * (v[without | (1 << i)] - v[without])))
        return shares
    rng = np.random.default_rng(seed)
    shares = np.zeros(n)
    for _ in range(200):
        perm = rng.permutation(n)
        masks = np.zeros((n, n), bool)
        for k in range(n):
            masks[k:, perm[k]] = True
        v = np.concatenate([[0.0], value(masks)])
        shares[perm] += np.diff(v)
    return shares / 200


def best_matches(model, q: np.ndarray, refs: list[np.ndarray]) -> list[tuple[int, int, float]]:
    """For each questioned patch: (reference index, patch index, cosine) of its closest reference patch."""
    pool = np.concatenate(refs)
    owner = np.concatenate([[(r, j) for j in range(len(v))] for r, v in enumerate(refs)])
    sq, sp = model.space(q), model.space(pool)
    if sq is None:
        sq, sp = q, pool
    sims = _l2(sq) @ _l2(sp).T
    best = sims.argmax(1)
    return [(int(owner[j][0]), int(owner[j][1]), float(sims[i, j])) for i, j in enumerate(best)]


def side_of(path, embedder, fingerprint: dict) -> Side:
    from painterid.embedding.images import load_image
    from painterid.embedding.patches import grid_patches

    image, grid, vectors = grid_patches(embedder, fingerprint, load_image(path))
    _, h, w = (int(v) for v in fingerprint["input_size"])
    return Side(str(path), image, [tuple(g) for g in grid], (w, h), np.asarray(vectors, np.float32))


def patch_evidence(model, questioned, references, embedder=None, device=None, runtime=None) -> Evidence:
    """The evidence for `questioned` (an image path) against `references` (image paths) under `model` (a
    PairModel of the `patches` view): pair scores, the shares of the questioned patches, their best matches."""
    from painterid.embedding.runtime import make_embedder, request_from_fingerprint

    references = list(references)
    if not references:
        raise PainterIDError("evidence needs at least one reference painting")
    if model.embedding.get("view") != "patches":
        raise PainterIDError(f"the patch evidence is for models of the `patches` view; this one's view is "
                             f"{model.embedding.get('view')!r}")
    if embedder is None:
        embedder = make_embedder(request_from_fingerprint(model.embedding, model.root), device=device,
                                 runtime=runtime)
    q = side_of(questioned, embedder, model.embedding)
    refs = [side_of(r, embedder, model.embedding) for r in references]
    pair = model.scores(np.repeat(q.vector[None], len(refs), 0), np.stack([r.vector for r in refs]))
    if linear_chain(model):
        shares, offset, kind = *linear_shares(model, q.vectors, [r.vectors for r in refs]), "linear"
    else:
        shares, offset, kind = shapley_shares(model, q.vectors, [r.vectors for r in refs]), 0.0, "shapley"
    return Evidence(q, refs, [float(s) for s in pair], float(np.mean(pair)), shares, offset, kind,
                    float(model.threshold), best_matches(model, q.vectors, [r.vectors for r in refs]))


#: closest references whose patches the verify page compares with the questioned painting's
PAGE_REFERENCES = 3


def write_verify_report(out_dir: Path, result: dict, model_dir: Path) -> Path:
    """One self-contained HTML page (images inlined as base64 PNG/JPEG) for one questioned painting."""
    from painterid.scoring.loading import load_model
    from painterid.scoring.model import PairModel
    from painterid.tasks.evidence_page import write_page

    closest = list(result.get("closest") or [])
    model = load_model(model_dir)  # a fused model: the page without patch evidence
    ev = None
    if isinstance(model, PairModel) and model.embedding.get("view") == "patches" and closest:
        ev = patch_evidence(model, str(result["questioned"]), [c["reference"] for c in closest[:PAGE_REFERENCES]])
    return write_page(Path(out_dir), result, ev)
