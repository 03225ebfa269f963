"""Set evidence: one questioned painting against K reference paintings of one artist.

Every aggregate reads the pair scores of the model's own scoring path (its normaliser chain, head and CSLS
against its cohort: `PairModel.scores`), never raw cosine. A `SetTrial` holds what the aggregates need for one
questioned painting: its pair scores against the references, the head scores before the model's score step
(CSLS), the pair scores of a population of other artists' paintings (the model's cohort, or `verify --contrast`)
against the same references, the vectors after the chain, and optionally per-patch vectors.

Aggregates (one registry, SET_AGGREGATES; `verify --aggregate`, bench/sets.py measures them all):
mean / max / top2 of the pair scores; the same over the head scores before CSLS (`head-*`); `centroid`: the pair
score against the mean reference vector; `znorm-*`: the aggregate minus its mean over the population against the
same references, over their spread (how unusual the questioned painting's closeness is for another artist's);
`patch-pool`: each questioned patch against the pool of all references' patches; `artist-lr`: a logistic
regression fitted on the references against the population (K >= 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from painterid.core.errors import DataError
from painterid.core.registry import Registry


@dataclass
class SetTrial:
    """What the aggregates read for one questioned painting against K references (see the module doc)."""

    pair: np.ndarray                       # [K] pair scores (model.scores) questioned vs each reference
    head: np.ndarray                       # [K] head scores before the score step (CSLS)
    population: np.ndarray | None = None   # [C, K] pair scores of other artists' paintings vs the references
    q: np.ndarray | None = None            # [D] questioned vector after the chain's vector steps
    refs: np.ndarray | None = None         # [K, D] references after the chain
    pop: np.ndarray | None = None          # [C, D] population after the chain
    centroid: float | None = None          # pair score against the mean reference vector
    q_patches: np.ndarray | None = None    # [P, D] questioned patches (L2-normalised)
    ref_patches: np.ndarray | None = None  # [K * P, D] all references' patches


@dataclass(frozen=True)
class Aggregate:
    name: str
    help: str
    fn: Callable[[SetTrial], float]
    min_k: int = 1
    needs_patches: bool = False
    needs_population: bool = False


SET_AGGREGATES: Registry[Aggregate] = Registry("set aggregate")


def _top2(x: np.ndarray) -> float:
    return float(np.sort(x)[-2:].mean())


def _znorm(stat: Callable[[np.ndarray], float]) -> Callable[[SetTrial], float]:
    def fn(t: SetTrial) -> float:
        if t.population is None or len(t.population) < 2:
            raise DataError("a population-normalised aggregate needs a population (the model's cohort)")
        pop = np.array([stat(row) for row in t.population])
        return float((stat(t.pair) - pop.mean()) / max(pop.std(), 1e-6))
    return fn


def _patch_pool(t: SetTrial) -> float:
    if t.q_patches is None or t.ref_patches is None:
        raise DataError("patch-pool needs the per-patch vectors of the paintings")
    sims = t.q_patches @ t.ref_patches.T
    return float(sims.max(axis=1).mean())


def _artist_lr(t: SetTrial) -> float:
    from sklearn.linear_model import LogisticRegression

    if t.pop is None or t.refs is None or t.q is None:
        raise DataError("artist-lr needs the population's vectors (the model's cohort)")
    x = np.vstack([t.refs, t.pop])
    y = np.r_[np.ones(len(t.refs)), np.zeros(len(t.pop))]
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=500).fit(x, y)
    return float(clf.decision_function(t.q[None])[0])


for _name, _help, _fn in (
        ("mean", "mean of the pair scores", lambda t: float(t.pair.mean())),
        ("max", "best pair score (what the best of `compare` shows)", lambda t: float(t.pair.max())),
        ("top2", "mean of the two best pair scores", lambda t: _top2(t.pair)),
        ("head-mean", "mean of the head scores before CSLS", lambda t: float(t.head.mean())),
        ("head-max", "best head score before CSLS", lambda t: float(t.head.max())),
        ("head-top2", "mean of the two best head scores before CSLS", lambda t: _top2(t.head)),
        ("centroid", "pair score against the mean of the references' vectors", lambda t: float(t.centroid))):
    SET_AGGREGATES.register(Aggregate(_name, _help, _fn))
for _name, _stat in (("mean", np.mean), ("max", np.max), ("top2", _top2)):
    SET_AGGREGATES.register(Aggregate(f"znorm-{_name}", f"{_name} of the pair scores, standardised against the "
                                      "population's against the same references", _znorm(_stat),
                                      needs_population=True))
SET_AGGREGATES.register(Aggregate("patch-pool", "mean over questioned patches of the best match among all "
                                  "references' patches (needs torch: patches are cut from the images)",
                                  _patch_pool, needs_patches=True))
SET_AGGREGATES.register(Aggregate("artist-lr", "logistic regression of the references against the population "
                                  "(K >= 3)", _artist_lr, min_k=3, needs_population=True))


def pair_matrix(model, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pair scores, head scores before the score step) of every (x[i], y[j]) through the model."""
    head = model.score_matrix(x, y)
    if model.chain.score_step is None:
        return head, head
    rx, ry = model.neighbourhood(x), model.neighbourhood(y)
    return (2.0 * head - rx[:, None] - ry[None, :]).astype(np.float32), head


def population_of(model, contrast: np.ndarray | None = None) -> np.ndarray | None:
    """The population other artists' evidence is weighed against: `contrast` vectors, else the model's cohort."""
    pop = contrast if contrast is not None else model.cohort
    return None if pop is None or len(pop) == 0 else np.asarray(pop, dtype=np.float32)


def _not_in(pop: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    """Rows of `pop` that are not (to float rounding) one of `vecs` (a reference inside the cohort)."""
    a = pop / np.maximum(np.linalg.norm(pop, axis=1, keepdims=True), 1e-12)
    b = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    return pop[(a @ b.T).max(axis=1) < 1.0 - 1e-5]


def make_trials(model, questioned: np.ndarray, refs: np.ndarray, population: np.ndarray | None = None,
                q_patches: np.ndarray | None = None, ref_patches: np.ndarray | None = None,
                aggregate: str | None = None) -> list[SetTrial]:
    """One SetTrial per questioned vector against the same references, every score through `model`; with
    `aggregate`, only what that aggregate reads besides the pair scores is computed (verify's fast path)."""
    refs = np.asarray(refs, dtype=np.float32)
    agg = None if aggregate is None else SET_AGGREGATES.get(aggregate)
    centre = refs.mean(axis=0, keepdims=True)
    both, head = pair_matrix(model, questioned, np.vstack([refs, centre]))  # the questioned side's CSLS once
    pair, cent, head = both[:, :-1], both[:, -1], head[:, :-1]
    pop_pair = pt = None
    if population is not None and (agg is None or agg.needs_population):
        pop = _not_in(population, np.vstack([refs, questioned]))
        pop_pair = None if len(pop) < 2 else pair_matrix(model, pop, refs)[0]
        pt = model.transform(pop)
    qt, rt = model.transform(questioned), model.transform(refs)
    rp = None if ref_patches is None else ref_patches.reshape(-1, ref_patches.shape[-1])
    return [SetTrial(pair[i], head[i], pop_pair, qt[i], rt, pt, float(cent[i]),
                     None if q_patches is None else q_patches[i], rp) for i in range(len(questioned))]


def set_score(name: str, trial: SetTrial) -> float:
    """The aggregate `name` of one trial (an unknown name or too few references is one-line user error)."""
    agg = SET_AGGREGATES.get(name)
    k = len(trial.pair)
    if k < agg.min_k:
        raise DataError(f"the {name} aggregate needs at least {agg.min_k} references; got {k}")
    return agg.fn(trial)

#: the set score verify and the shipped calibration use (measured: docs/RESULTS.md, screening)
DEFAULT_AGGREGATE = "centroid"
