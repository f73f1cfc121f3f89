"""Sanity probes of a synthetic set's difficulty: partial separability, not a solved task.

These are oracle probes (they read the script, which no method may see) that measure
whether the generator has the properties docs/synthetic-benchmark.md argues for:

* action vs background is only partially separable per snippet (ridge probe AUC);
* key phases identify the class, shared phases much less (linear classifier accuracy);
* class-context background correlates with the class (context snippets classified by
  the action class means land on their class far above chance);
* text carries information: a linear map from features to word space retrieves the word
  a snippet shows far above chance;
* key descriptions carry class-specific information about the video, class names alone
  less (:func:`text_probe`: text-to-video retrieval in word space).

Fitted on the train subset, measured on the test subset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..canonical import FeatureStore
from .describer import describe
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


def _unit_vectors(vectors, words: Sequence[str]) -> np.ndarray:
    """float64 (len(words), dim): each word's unit-normalised vector (every word must be known)."""
    return np.stack([vectors.get(w) / np.linalg.norm(vectors.get(w)) for w in words]).astype(np.float64)


def _fit_word_map(X: np.ndarray, words: Sequence[str], vectors, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge map from snippet features to the unit word vector of the word each snippet shows."""
    return _ridge(X, _unit_vectors(vectors, words), lam=lam)


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
        V = _unit_vectors(vectors, words)
        widx = {w: i for i, w in enumerate(words)}
        W, b = _fit_word_map(Xtr, wtr, vectors, lam=lam)
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


# Function words left out of a text's word-space vector.  Every other word counts, the
# describer's template words ("athlete", "video", "performs") included: they are class-free,
# in every class's text about equally often, so centring (see text_probe) removes most of them.
STOP_WORDS = frozenset(
    "a an the this that these those is are was be been does do did it its we you he she they here there "
    "in on at of to by with from for into near and or but then as".split()
)
# The CamelCase rule of prior_generation.prompts.readable_class_name ("CliffDiving" -> "cliff
# diving"), repeated here because wtal_data must not import prior_generation (package chain).
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])")


def content_words(text: str) -> list[str]:
    """Lower-cased alphanumeric words of ``text`` that are not in :data:`STOP_WORDS`, in order."""
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP_WORDS]


def class_name_words(name: str) -> list[str]:
    """Content words of a class name: "CleanAndJerk" -> ["clean", "jerk"], "Shotput" -> ["shotput"]."""
    return content_words(_CAMEL.sub(" ", re.sub(r"[_\-]+", " ", name)))


def _text_vector(texts: Sequence[str], vectors) -> np.ndarray | None:
    """Mean over texts of each text's mean unit word vector (unknown words skipped); None if no word is known."""
    per_text = []
    for text in texts:
        known = [w for w in content_words(text) if vectors.get(w) is not None]
        if known:
            per_text.append(_unit_vectors(vectors, known).mean(0))
    return np.mean(per_text, 0) if per_text else None


def _instance_rows(annotations: Sequence[Mapping[str, Any]], label: str, n: int, snippet_seconds: float) -> list[int]:
    """Snippets whose centre lies inside one of ``label``'s segments (a segment shorter than a
    snippet contributes the snippet at its middle)."""
    rows: set[int] = set()
    centres = (np.arange(n) + 0.5) * snippet_seconds
    for a in annotations:
        if a["label"] != label:
            continue
        start, end = a["segment"]
        inside = np.flatnonzero((centres >= start) & (centres <= end))
        rows.update(inside.tolist() if len(inside) else [min(n - 1, int(0.5 * (start + end) / snippet_seconds))])
    return sorted(rows)


def text_probe(
    store: FeatureStore,
    gt: Mapping[str, Any],
    scripts: Mapping[str, Any],
    vectors=None,
    max_snippets: int = 20000,
    seed: int = 0,
    lam: float = 1.0,
    describer_seed: int = 0,
    key_texts: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float]:
    """Do key descriptions carry class-specific information about the video, and class names less?

    A text-to-video retrieval oracle in word space (the features are built from GloVe
    vectors, so a word-space read-out exists):

    1. A ridge map from snippet features to the unit word vector of the word a snippet
       shows (as :func:`probe`'s word retrieval), fitted on the phase snippets of train
       videos (at most ``max_snippets``, drawn with ``seed``), with the script's labels.
    2. Per (video, class) pair with at least one ground-truth instance, the mapped
       snippets inside the class's segments are averaged: the pair's video vector.
    3. Per class, two text vectors: KEY, the describer's key sentences (``describe(...,
       "key", describer_seed)``) of the class's train videos, each the mean unit vector of
       its content words, averaged over the videos (a class-level prior, as KSM's class
       queries); NAME, the mean unit vector of the class name's words ("BaseballPitch" ->
       baseball, pitch).  Unknown words are skipped; a class with no known word is never
       retrieved.  ``key_texts`` (class -> sentences) replaces the describer.
    4. Each test pair retrieves the class whose text vector has the highest cosine with
       its video vector.  Text vectors are centred on their mean over the classes, video
       vectors on the mean of the train pairs' video vectors: every GloVe vector shares a
       common direction, and without centring one generic text becomes a hub
       (``text_*_acc_uncentred``, reported too; on thumos14-vd class names then retrieve
       LongJump for almost every pair).

    ``vectors``: a word-vector table (``.get(word)``, None when unknown); by default the
    set's own (``scripts["word_vectors"]``).  Returns ``text_key_acc``, ``text_name_acc``,
    their uncentred versions, ``text_chance`` (1 / classes) and ``text_pairs`` (test pairs).
    """
    classes = list(gt["classes"])
    snippet_seconds = float(gt["snippet_seconds"])
    train = [v for v in sorted(gt["database"]) if gt["database"][v]["subset"] == "train"]
    test = [v for v in sorted(gt["database"]) if gt["database"][v]["subset"] == "test"]
    if key_texts is None:
        key_texts = {
            c: [describe(scripts, v, c, "key", describer_seed) for v in train if c in gt["database"][v]["labels"]]
            for c in classes
        }
    if vectors is None:
        from ..word_vectors import DEFAULT_SOURCE, load_word_vectors

        needed = {w for texts in key_texts.values() for t in texts for w in content_words(t)}
        needed |= {w for c in classes for w in class_name_words(c)}
        needed |= {e["word"] for v in train for e in scripts["videos"][v]["events"]}
        vectors = load_word_vectors(scripts.get("word_vectors", DEFAULT_SOURCE), restrict_to=needed)

    # 1. word-space read-out from the train videos' phase snippets
    labels = snippet_labels({"videos": {v: scripts["videos"][v] for v in train}}, snippet_seconds)
    rows, words = [], []
    for vid in train:
        phase = [t for t, e in enumerate(labels[vid]) if e["kind"] == "phase"]
        rows.append(np.asarray(store[vid])[phase])
        words += [labels[vid][t]["word"] for t in phase]
    X = np.concatenate(rows)
    keep = np.sort(np.random.default_rng(seed).permutation(len(X))[:max_snippets])
    W, b = _fit_word_map(X[keep], [words[i] for i in keep], vectors, lam=lam)

    # 2. video vectors of the (video, class) pairs
    def pairs(videos: list[str]) -> tuple[np.ndarray, np.ndarray]:
        vecs, ys = [], []
        for vid in videos:
            rec = gt["database"][vid]
            feats = np.asarray(store[vid])
            for label in rec["labels"]:
                inside = _instance_rows(rec["annotations"], label, len(feats), snippet_seconds)
                if inside:
                    vecs.append((feats[inside] @ W + b).mean(0))
                    ys.append(classes.index(label))
        return np.stack(vecs), np.array(ys)

    Vtr, _ = pairs(train)
    Vte, yte = pairs(test)

    # 3. text vectors; 4. retrieval by cosine
    def text_matrix(per_class: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
        known = np.array([t is not None for t in per_class])
        T = np.stack([t if t is not None else np.zeros(W.shape[1]) for t in per_class])
        return T, known

    def accuracy(T: np.ndarray, known: np.ndarray, centre: bool) -> float:
        if not known.any():
            return 0.0
        V = Vte - Vtr.mean(0) if centre else Vte
        if centre:
            T = T - T[known].mean(0)
        T = T / np.maximum(np.linalg.norm(T, axis=1, keepdims=True), 1e-12)
        V = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
        scores = np.where(known[None, :], V @ T.T, -np.inf)
        return float((np.argmax(scores, 1) == yte).mean())

    out: dict[str, float] = {}
    texts = {
        "key": [_text_vector(key_texts.get(c, []), vectors) for c in classes],
        "name": [_text_vector([" ".join(class_name_words(c))], vectors) for c in classes],
    }
    for kind, per_class in texts.items():
        T, known = text_matrix(per_class)
        out[f"text_{kind}_acc"] = accuracy(T, known, centre=True)
        out[f"text_{kind}_acc_uncentred"] = accuracy(T, known, centre=False)
    out["text_chance"] = 1.0 / len(classes)
    out["text_pairs"] = float(len(yte))
    return out
