"""Sanity probes of a synthetic set's difficulty: partial separability, not a solved task.

These are oracle probes (they read the script, which no method may see) that measure
whether the generator has the properties docs/synthetic-benchmark.md argues for:

* action vs background is only partially separable per snippet (ridge probe AUC);
* key phases identify the class, shared phases much less (linear classifier accuracy);
* class-context background correlates with the class (context snippets classified by
  the action class means land on their class far above chance);
* text carries information: a linear map from features to word space retrieves the word
  a snippet shows far above chance.

Fitted on the train subset, measured on the test subset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..canonical import FeatureStore
from .scripts import event_at


def snippet_labels(scripts: Mapping[str, Any], snippet_seconds: float) -> dict[str, list[Mapping[str, Any]]]:
    """Per video, the event at each snippet's centre."""
    out = {}
    for vid, rec in scripts["videos"].items():
        centres = (np.arange(rec["num_snippets"]) + 0.5) * snippet_seconds
        out[vid] = [event_at(rec["events"], float(t)) for t in centres]
    return out


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores), np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _ridge(X: np.ndarray, Y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    mu = X.mean(0)
    Xc = (X - mu).astype(np.float64)
    A = Xc.T @ Xc + lam * len(X) * np.eye(X.shape[1])
    W = np.linalg.solve(A, Xc.T @ (Y - Y.mean(0)))
    return W, Y.mean(0) - mu @ W


def probe(
    store: FeatureStore,
    gt: Mapping[str, Any],
    scripts: Mapping[str, Any],
    vectors=None,
    max_snippets: int = 20000,
    seed: int = 0,
    lam: float = 1.0,
) -> dict[str, float]:
    """Compute the probe figures (see module docstring) on at most ``max_snippets`` per subset."""
    rng = np.random.default_rng(seed)
    labels = snippet_labels(scripts, float(gt["snippet_seconds"]))
    classes = list(gt["classes"])
    cidx = {c: i for i, c in enumerate(classes)}
    data: dict[str, dict[str, Any]] = {}
    for subset in ("train", "test"):
        rows, events = [], []
        for vid in sorted(labels):
            if gt["database"][vid]["subset"] != subset:
                continue
            feats = np.asarray(store[vid])
            rows.append(feats)
            events += labels[vid]
        X = np.concatenate(rows)
        keep = rng.permutation(len(X))[:max_snippets]
        data[subset] = {"X": X[keep], "ev": [events[i] for i in keep]}

    def arrays(subset):
        ev = data[subset]["ev"]
        kind = np.array([e["kind"] for e in ev])
        label = np.array([cidx[e["label"]] if e["label"] else -1 for e in ev])
        key = np.array(
            [
                e["kind"] == "phase"
                and e["word"] in {p["word"] for p in scripts["classes"][e["label"]]["phases"] if p["key"]}
                for e in ev
            ]
        )
        return data[subset]["X"], kind, label, key, [e["word"] for e in ev]

    Xtr, ktr, ltr, keytr, wtr = arrays("train")
    Xte, kte, lte, keyte, wte = arrays("test")
    out: dict[str, float] = {}

    # action vs background (context counts as background: it is not the action)
    W, b = _ridge(Xtr, (ktr == "phase").astype(np.float64)[:, None], lam=lam)
    score = (Xte @ W + b)[:, 0]
    out["action_vs_background_auc"] = _auc(score, kte == "phase")
    out["action_vs_context_auc"] = _auc(score[kte != "background"], kte[kte != "background"] == "phase")

    # linear (ridge, one-vs-all) classifier fitted on action snippets only
    tr_phase = ktr == "phase"
    onehot = np.eye(len(classes))[ltr[tr_phase]]
    Wc, bc = _ridge(Xtr[tr_phase], onehot, lam=lam)
    pred = np.argmax(Xte @ Wc + bc, 1)
    phase = kte == "phase"
    out["class_acc_key_phase"] = float((pred[phase & keyte] == lte[phase & keyte]).mean())
    out["class_acc_shared_phase"] = float((pred[phase & ~keyte] == lte[phase & ~keyte]).mean())
    ctx = kte == "context"
    out["class_acc_context_by_action_classifier"] = float((pred[ctx] == lte[ctx]).mean())
    out["chance_class_acc"] = 1.0 / len(classes)

    # text -> features: ridge from features to the word's GloVe vector, retrieve the word
    if vectors is not None:
        words = sorted(set(wtr) | set(wte))
        V = np.stack([vectors.get(w) / np.linalg.norm(vectors.get(w)) for w in words]).astype(np.float64)
        widx = {w: i for i, w in enumerate(words)}
        Ytr = V[[widx[w] for w in wtr]]
        W, b = _ridge(Xtr, Ytr, lam=lam)
        Yhat = Xte @ W + b
        Yhat /= np.linalg.norm(Yhat, axis=1, keepdims=True)
        hit = np.argmax(Yhat @ V.T, 1) == np.array([widx[w] for w in wte])
        out["word_retrieval_acc"] = float(hit.mean())
        out["word_retrieval_acc_phase"] = float(hit[phase].mean())
        out["word_chance"] = 1.0 / len(words)
    return out


def fact_probe(
    store: FeatureStore, gt: Mapping[str, Any], scripts: Mapping[str, Any], lam: float = 1.0
) -> dict[str, float]:
    """Oracle ceilings of the per-video facts of a video-dependent set (``thumos14-vd``).

    Per (video, class), the features of the class's phase snippets (read from the script,
    which no method sees) are averaged, and a ridge one-vs-all classifier fitted on train
    videos predicts each fact group (performer, colour, speed) on test videos.  Optional
    phases: a snippet-level classifier over the optional-phase words, on the snippets that
    show one.  Chance is 1 / (words in the group).
    """
    spec = scripts.get("video_facts")
    if not spec:
        return {}
    labels = snippet_labels(scripts, float(gt["snippet_seconds"]))
    groups = ("performer", "colour", "speed")
    optional = list(spec["optional_phases"]["words"])
    pooled: dict[str, list] = {"train": [], "test": []}
    snippets: dict[str, list] = {"train": [], "test": []}
    for vid in sorted(labels):
        subset = gt["database"][vid]["subset"]
        feats = np.asarray(store[vid])
        for label, fact in scripts["videos"][vid].get("facts", {}).items():
            rows = [t for t, e in enumerate(labels[vid]) if e["kind"] == "phase" and e["label"] == label]
            if rows:
                pooled[subset].append((feats[rows].mean(0), fact))
        for t, e in enumerate(labels[vid]):
            if e["kind"] == "phase" and e["word"] in optional:
                snippets[subset].append((feats[t], optional.index(e["word"])))
    out: dict[str, float] = {}
    Xtr = np.stack([x for x, _ in pooled["train"]])
    Xte = np.stack([x for x, _ in pooled["test"]])
    for g in groups:
        words = list(spec[g]["words"])
        ytr = np.array([words.index(f[g]) for _, f in pooled["train"]])
        yte = np.array([words.index(f[g]) for _, f in pooled["test"]])
        W, b = _ridge(Xtr, np.eye(len(words))[ytr], lam=lam)
        out[f"fact_acc_{g}"] = float((np.argmax(Xte @ W + b, 1) == yte).mean())
        out[f"fact_chance_{g}"] = 1.0 / len(words)
    if snippets["train"] and snippets["test"]:
        Str = np.stack([x for x, _ in snippets["train"]])
        Ste = np.stack([x for x, _ in snippets["test"]])
        ytr = np.array([y for _, y in snippets["train"]])
        yte = np.array([y for _, y in snippets["test"]])
        W, b = _ridge(Str, np.eye(len(optional))[ytr], lam=lam)
        out["optional_phase_snippet_acc"] = float((np.argmax(Ste @ W + b, 1) == yte).mean())
        out["optional_phase_chance"] = 1.0 / len(optional)
    out["fact_pairs_train"], out["fact_pairs_test"] = float(len(Xtr)), float(len(Xte))
    return out
