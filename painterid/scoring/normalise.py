"""Normalisers: composable transforms fitted on a reference cohort, then applied to any vectors (numpy only).

A model's normaliser is a *chain*, written as a comma-separated spec and recorded in its config.json::

    power,center,l2,csls:10        signed square root, centre on the cohort mean, L2, then CSLS against the cohort

Vector steps (`power`, `center`, `l2`, `whiten[:DIM]`, `wccn`, `lda[:DIM]`) map each vector on its own once
fitted, so a score never depends on what else is being compared. The score step (`csls[:K]`, last in a chain)
adjusts a pair's score by each vector's mean similarity to its K nearest *cohort* paintings (Conneau et al.,
2018: 2 s(a, b) - r(a) - r(b)), never by the other queries. Every step stores its fitted state as arrays
(`to_config` + `arrays`, saved as safetensors by the model) and is rebuilt with `from_config` without fitting.

Unsupervised steps (`center`, `whiten`, `csls`) are fitted on the cohort; the supervised ones (`wccn`, `lda`)
need artist labels and are fitted on the training paintings. `selfsup[:DIM]` (first in a chain) is a linear
projection learned without labels from the per-patch vectors of the cohort paintings (painterid.embedding.patches,
training.selfsup: patches of one painting close, of different paintings apart); applying it is one matrix. This module imports numpy only: `compare` stays
light; scikit-learn is imported lazily by the fits that use it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: the legacy values of a model's "normaliser" (before chains): both still load and score as before
LEGACY = ("none", "csls")


def neighbourhood(score_to_cohort: Callable[[np.ndarray], np.ndarray], x: np.ndarray, k: int,
                  chunk: int = 4096, exclude_self: float | None = None) -> np.ndarray:
    """Mean of each row's k highest scores against the cohort (r(x) in CSLS).

    `exclude_self`: scores at or above it are the query itself lying in the cohort (same vector) and are left
    out, so a cohort painting compared with itself gets the same r(x) as any other painting."""
    out = np.empty(len(x), dtype=np.float32)
    for s in range(0, len(x), chunk):
        sims = score_to_cohort(x[s:s + chunk])  # [n, C]
        if exclude_self is not None:
            sims = np.where(sims >= exclude_self, -np.inf, sims)  # the query itself, lying in the cohort
        kk = min(k, sims.shape[1])
        top = np.partition(sims, -kk, axis=1)[:, -kk:]
        top = np.where(np.isfinite(top), top, np.nan)
        out[s:s + chunk] = np.nan_to_num(np.nanmean(top, axis=1), nan=0.0) if exclude_self is not None \
            else top.mean(1)
    return out


def csls(raw: np.ndarray, r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
    """Cross-domain similarity local scaling: 2 s(a, b) - r(a) - r(b)."""
    return 2.0 * raw - r_a - r_b


def _f32(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Normaliser:
    """One step of a chain. Subclasses set `name`, `score_level`, `supervised` and the fitted arrays."""

    name = ""
    score_level = False  # True: adjusts pair scores (CSLS), does not map vectors
    supervised = False   # True: fitted on labelled training paintings, kept when the cohort is replaced
    arg: str | None = None  # the name of the one ":N" parameter of the spec, if any
    needs_patches = False  # True: fitted on the cohort's per-patch vectors (Chain.fit's `patches`)

    def __init__(self, **params):
        self.params = params
        self.state: dict[str, np.ndarray] = {}

    # -- fitting and applying ---------------------------------------------------------------------
    def fit(self, x: np.ndarray, labels=None) -> "Normaliser":
        return self

    def apply(self, x: np.ndarray) -> np.ndarray:
        return x

    @property
    def fitted(self) -> bool:
        return True

    # -- artefact ---------------------------------------------------------------------------------
    def spec(self) -> str:
        v = self.params.get(self.arg) if self.arg else None
        return self.name if v is None else f"{self.name}:{v}"

    def to_config(self) -> dict:
        return {"name": self.name, "params": dict(self.params)}

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.state)

    @classmethod
    def from_config(cls, cfg: dict, arrays: dict[str, np.ndarray]) -> "Normaliser":
        step = NORMALISERS[cfg["name"]](**cfg.get("params", {}))
        step.state = {k: _f32(v) for k, v in arrays.items()}
        return step

    def __repr__(self) -> str:
        return self.spec()


class Power(Normaliser):
    """Signed square root of each component (power normalisation, alpha = 0.5): damps bursty features."""

    name = "power"

    def apply(self, x):
        return _f32(np.sign(x) * np.sqrt(np.abs(x)))


class L2(Normaliser):
    """Unit length."""

    name = "l2"

    def apply(self, x):
        return _f32(_l2(np.asarray(x, dtype=np.float32)))


class Center(Normaliser):
    """Subtract the cohort mean: the direction every painting shares (the look of a photograph) goes."""

    name = "center"

    def fit(self, x, labels=None):
        self.state = {"mean": _f32(np.asarray(x, np.float64).mean(0))}
        return self

    @property
    def fitted(self):
        return "mean" in self.state

    def apply(self, x):
        return _f32(x - self.state["mean"])


class _Projection(Normaliser):
    """A step that maps vectors by one fitted matrix `proj` (after subtracting a fitted `mean`, when it has one)."""

    @property
    def fitted(self):
        return "proj" in self.state

    def apply(self, x):
        x = np.asarray(x, np.float32)
        if "mean" in self.state:
            x = x - self.state["mean"]
        x = x @ self.state["proj"]
        return _f32(x + self.state["bias"] if "bias" in self.state else x)


class Whiten(_Projection):
    """PCA whitening with shrinkage: project on the top `dim` principal axes of the cohort and divide each by
    sqrt(its variance + shrink * the mean kept variance), so rare directions are not blown up."""

    name = "whiten"
    arg = "dim"

    def __init__(self, dim: int = 128, shrink: float = 1.0):
        super().__init__(dim=int(dim), shrink=float(shrink))

    def fit(self, x, labels=None):
        from sklearn.decomposition import PCA

        x = np.asarray(x, np.float64)
        dim = int(min(self.params["dim"], x.shape[0] - 1, x.shape[1]))
        pca = PCA(n_components=dim, svd_solver="full").fit(x)
        var = pca.explained_variance_
        scale = 1.0 / np.sqrt(var + self.params["shrink"] * var.mean())
        self.state = {"mean": _f32(pca.mean_), "proj": _f32(pca.components_.T * scale[None, :])}
        return self


def _within_class(x: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """Rows of x centred on their artist's mean (artists with 2+ paintings only), and the global mean."""
    labels = np.asarray(labels, dtype=object)
    names, codes = np.unique(labels, return_inverse=True)
    counts = np.bincount(codes)
    keep = counts[codes] >= 2
    if keep.sum() < 4:
        raise ValueError("a supervised normaliser needs artists with two or more paintings")
    sums = np.zeros((len(names), x.shape[1]))
    np.add.at(sums, codes, x)
    means = sums / counts[:, None]
    return (x - means[codes])[keep], x.mean(0)


class WCCN(_Projection):
    """Within-class covariance normalisation (speaker verification): whiten the scatter of paintings around
    their own artist's mean, learned on the training artists, shrunk towards the identity (Ledoit-Wolf)."""

    name = "wccn"
    supervised = True

    def fit(self, x, labels=None):
        from sklearn.covariance import LedoitWolf

        if labels is None:
            raise ValueError("wccn is fitted on labelled paintings (training artists)")
        resid, _ = _within_class(np.asarray(x, np.float64), labels)
        cov = LedoitWolf(assume_centered=True).fit(resid).covariance_
        w, v = np.linalg.eigh(cov)
        self.state = {"proj": _f32(v @ np.diag(1.0 / np.sqrt(np.maximum(w, 1e-12))) @ v.T)}
        return self


class LDA(_Projection):
    """Linear discriminant analysis with shrinkage (scikit-learn, eigen solver): the `dim` directions that
    separate the training artists best relative to the spread within each artist; applied as one matrix."""

    name = "lda"
    supervised = True
    arg = "dim"

    def __init__(self, dim: int = 64):
        super().__init__(dim=int(dim))

    def fit(self, x, labels=None):
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        if labels is None:
            raise ValueError("lda is fitted on labelled paintings (training artists)")
        x = np.asarray(x, np.float64)
        labels = np.asarray(labels, dtype=object)
        _, codes = np.unique(labels, return_inverse=True)
        multi = np.bincount(codes)[codes] >= 2
        if len(np.unique(codes[multi])) < 3:
            raise ValueError("lda needs three or more training artists with two or more paintings")
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(x[multi], codes[multi])
        dim = int(min(self.params["dim"], lda.scalings_.shape[1]))
        self.state = {"mean": _f32(x[multi].mean(0)), "proj": _f32(lda.scalings_[:, :dim])}
        return self


class SelfSup(_Projection):
    """A linear projection (D -> `dim`) of the frozen embedding, trained with no artist label on the per-patch
    vectors of the cohort so that patches of one painting score high and of different paintings low
    (scoring.selfsup; docs/RESULTS.md, "Which default, and why"). With validation pairs the checkpoint is chosen on them and the
    chosen step count is recorded (`steps`), so a refit on another cohort (`cohort set`) trains as long."""

    name = "selfsup"
    arg = "dim"
    needs_patches = True

    def __init__(self, dim: int = 256, steps: int = 300):
        super().__init__(dim=int(dim), steps=int(steps))

    def fit(self, x, labels=None, patches=None, validation=None):
        from painterid.scoring.selfsup import SelfSupSettings, train_projection

        if patches is None:
            raise ValueError("selfsup is trained on the per-patch vectors of the cohort paintings, and none were "
                             "given (their images are needed)")
        patches = patches() if callable(patches) else patches
        fitted = train_projection(patches, SelfSupSettings(dim=self.params["dim"], steps=self.params["steps"]),
                                  validation)
        self.state = {"proj": fitted["proj"], "bias": fitted["bias"]}
        self.params["steps"] = fitted["step"]
        self.curve = fitted["curve"]
        return self


class CSLS(Normaliser):
    """CSLS against the cohort (the cohort mapped by the vector steps before it): a pair's score minus the mean
    of each side's `k` best scores against the cohort. Never against the query set."""

    name = "csls"
    score_level = True
    arg = "k"

    def __init__(self, k: int = 10, skip_self: bool = True):
        super().__init__(k=int(k), skip_self=bool(skip_self))

    def fit(self, x, labels=None):
        if len(x) <= self.params["k"]:
            raise ValueError(f"csls:{self.params['k']} needs a cohort of more than {self.params['k']} paintings "
                             f"(got {len(x)})")
        self.state = {"cohort": _f32(x)}
        return self

    @property
    def fitted(self):
        return "cohort" in self.state

    @property
    def cohort(self) -> np.ndarray:
        return self.state["cohort"]

    def r(self, x: np.ndarray, score_to_cohort: Callable[[np.ndarray], np.ndarray] | None = None,
          exclude_self: float | None = None) -> np.ndarray:
        """r(x): mean of the k best scores of each vector against the cohort (cosine unless a scorer is given)."""
        if score_to_cohort is None:
            cn = _l2(self.cohort)
            score_to_cohort = lambda q: _l2(np.asarray(q, np.float32)) @ cn.T  # noqa: E731
            exclude_self = 1.0 - 1e-5 if exclude_self is None else exclude_self
        return neighbourhood(score_to_cohort, x, self.params["k"], exclude_self=exclude_self)

    def adjust(self, raw: np.ndarray, r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
        return csls(raw, r_a, r_b)

    def arrays(self) -> dict[str, np.ndarray]:
        return {}  # the cohort is the model's own (cohort.safetensors), mapped by the steps before: not stored twice


NORMALISERS: dict[str, type[Normaliser]] = {c.name: c for c in (Power, Center, L2, Whiten, WCCN, LDA, SelfSup,
                                                                  CSLS)}

#: what `train --normaliser auto` tries on the validation artists
AUTO_CHAINS = ("none", "csls", "center,l2,csls", "power,center,l2,csls", "wccn,l2,csls")


def parse_spec(spec: str) -> list[Normaliser]:
    """Steps of a chain spec: "none" / "" is the empty chain; "csls:5,power" raises (csls must come last)."""
    spec = (spec or "none").strip().lower()
    if spec == "none":
        return []
    steps = []
    for part in (p.strip() for p in spec.split(",")):
        name, _, value = part.partition(":")
        cls = NORMALISERS.get(name)
        if cls is None:
            raise ValueError(f"unknown normaliser {name!r}; choose from none, {', '.join(NORMALISERS)} "
                             "(comma-separated, e.g. power,center,l2,csls)")
        if value and not cls.arg:
            raise ValueError(f"normaliser {name!r} takes no parameter (got {part!r})")
        try:
            steps.append(cls(**({cls.arg: int(value)} if value else {})))
        except ValueError:
            raise ValueError(f"bad parameter in {part!r}: expected an integer") from None
    if any(s.score_level for s in steps[:-1]):
        raise ValueError(f"{spec!r}: csls adjusts scores and must be the last step of a chain")
    if any(s.needs_patches for s in steps[1:]):
        raise ValueError(f"{spec!r}: selfsup is learned on the embedding's own patch vectors and must be the "
                         "first step of a chain")
    return steps


class Chain:
    """Vector steps, then at most one score step (CSLS). Fit once; apply to any vectors."""

    def __init__(self, steps: list[Normaliser] | None = None):
        self.steps = list(steps or [])

    @classmethod
    def parse(cls, spec: str) -> "Chain":
        return cls(parse_spec(spec))

    @property
    def spec(self) -> str:
        return ",".join(s.spec() for s in self.steps) or "none"

    @property
    def vector_steps(self) -> list[Normaliser]:
        return [s for s in self.steps if not s.score_level]

    @property
    def score_step(self) -> CSLS | None:
        return self.steps[-1] if self.steps and self.steps[-1].score_level else None  # type: ignore[return-value]

    @property
    def supervised(self) -> bool:
        return any(s.supervised for s in self.steps)

    @property
    def needs_patches(self) -> bool:
        return any(s.needs_patches for s in self.steps)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __repr__(self) -> str:
        return f"Chain({self.spec!r})"

    def fit(self, cohort: np.ndarray, train: np.ndarray | None = None, train_labels=None,
            refit_supervised: bool = True, patches=None, validation=None, refit_selfsup: bool = True) -> "Chain":
        """Fit the steps in order: unsupervised ones on `cohort`, supervised ones on (`train`, `train_labels`),
        each on the vectors as the steps before it map them. With `refit_supervised=False` a fitted supervised
        step keeps its arrays (replacing a model's cohort keeps what was learned from its training artists), and
        with `refit_selfsup=False` so does a fitted selfsup step (what a trained head or wccn was fitted on).
        `patches`: the cohort's per-patch vectors [N, P, D] (or a function returning them), for selfsup;
        `validation`: (vectors, pairs [K, 3]) of validation artists selfsup chooses its checkpoint on."""
        c = _f32(cohort)
        t = None if train is None else _f32(train)
        for step in self.steps:
            if step.supervised:
                if refit_supervised or not step.fitted:
                    if t is None:
                        raise ValueError(f"{step.name} needs labelled training paintings")
                    step.fit(t, train_labels)
            elif step.needs_patches:
                if refit_selfsup or not step.fitted:
                    step.fit(c, patches=patches, validation=validation)
            else:
                step.fit(c)
            if not step.score_level:
                c = step.apply(c)
                t = None if t is None else step.apply(t)
        return self

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The vector steps applied to x [N, D] (the score step does not map vectors)."""
        x = _f32(x)
        for step in self.vector_steps:
            x = step.apply(x)
        return x

    def with_score_step(self, step: Normaliser | None, cohort: np.ndarray) -> "Chain":
        """This fitted chain of vector steps followed by the score step `step` (if any), fitted on `cohort` as the
        vector steps map it: the chains that differ only in their score step share one fit of the rest."""
        steps = list(self.vector_steps)
        if step is not None:
            steps.append(step.fit(self.apply(cohort)))
        return Chain(steps)

    @property
    def out_dim(self) -> int | None:
        for step in reversed(self.vector_steps):
            if "proj" in step.state:
                return int(step.state["proj"].shape[1])
        return None

    # -- artefact ---------------------------------------------------------------------------------
    def to_config(self) -> list[dict]:
        return [s.to_config() for s in self.steps]

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"{i}.{s.name}.{k}": v for i, s in enumerate(self.steps) for k, v in s.arrays().items()}

    @classmethod
    def from_config(cls, cfg: list[dict], arrays: dict[str, np.ndarray],
                    cohort: np.ndarray | None = None, require_fitted: bool = True) -> "Chain":
        """Rebuild a fitted chain from its config and arrays; CSLS gets `cohort` mapped by the steps before it."""
        steps = []
        for i, c in enumerate(cfg):
            if c.get("name") not in NORMALISERS:
                raise ValueError(f"unknown normaliser {c.get('name')!r} in the chain")
            prefix = f"{i}.{c['name']}."
            steps.append(Normaliser.from_config(c, {k[len(prefix):]: v for k, v in arrays.items()
                                                     if k.startswith(prefix)}))
        chain = cls(steps)
        score = chain.score_step
        if score is not None and cohort is not None and len(cohort):
            score.state = {"cohort": chain.apply(cohort)}
        missing = [s.name for s in steps if not s.fitted]
        if missing and require_fitted:
            raise ValueError(f"the fitted arrays of {', '.join(missing)} are missing")
        return chain


def legacy_chain(normaliser: str, csls_k: int = 10, cohort: np.ndarray | None = None) -> Chain:
    """The chain of a model saved before chains ("none", or "csls" with csls_k and a cohort): same scores."""
    if normaliser in (None, "", "none") or cohort is None or not len(cohort):
        if normaliser not in (None, "", "none", "csls"):
            raise ValueError(f"unknown normaliser {normaliser!r}")
        return Chain([])
    if normaliser != "csls":
        raise ValueError(f"unknown normaliser {normaliser!r}")
    step = CSLS(csls_k, skip_self=False)
    step.state = {"cohort": _f32(cohort)}
    return Chain([step])
