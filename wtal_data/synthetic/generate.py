"""Snippet features from scripts, and the whole synthetic data set on disk.

Why features come from word vectors: the paper's branches only help when text about an
action carries information about the video.  Here a state's features are the REAL GloVe
vector of the word naming it (the phase "run", the context "pool", the background
"crowd"), through a fixed random projection per modality, plus a class-specific part and
noise.  A description that says "run" therefore points at the snippets that show a run,
as a real MLLM's text points at real I3D features.  Per snippet t and modality m::

    x_m(t) = P_m [ sum_s W[t, s] * (ww_m(s) * w_s + cw_m(s) * u_{c(s), m})       # signal
                   + (sum_s W[t, s] * ww_m(s)) * (delta_m(t) + o_m) ]              # word-space noise
             + eps_m(t) + O_m                                                      # feature noise

W[t, s] is the amplitude-weighted fraction of the snippet's 16 frames in state s
(smoothed over time: I3D sees more than 16 frames), w_s the unit-normalised GloVe
vector, u_{c,m} a random unit vector of word space (the class's look, not a word),
delta_m an AR(1) process in word space, eps_m an AR(1) process in feature space, o_m and
O_m per-video offsets.  Class part and word noise live in the same 50-d space as the
words, so their ratio (not the 1024-d projection) sets how discriminative a state is; the
noise is drawn independently per modality, so RGB and flow cannot cancel it.
Each video is seeded on its own, so its features do not depend on which other videos
are generated (the demo's videos have the same features as in the full set).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from wtal_data.word_vectors import load_word_vectors

from .scripts import StateTable, SynthConfigError, Timeline, rng_for

MODALITIES = ("rgb", "flow")


def _ar1(rng: np.random.Generator, length: int, dim: int, rho: float) -> np.ndarray:
    """Unit-variance AR(1) noise along axis 0 (temporally correlated, like overlapping clips)."""
    eta = rng.standard_normal((length, dim), dtype=np.float32)
    if rho <= 0 or length < 2:
        return eta
    out = np.empty_like(eta)
    out[0] = eta[0]
    innovation = np.float32(np.sqrt(1.0 - rho * rho))
    rho32 = np.float32(rho)
    for t in range(1, length):
        out[t] = rho32 * out[t - 1] + innovation * eta[t]
    return out


@dataclass
class FeatureModel:
    """The fixed parts of the generator: projections, class vectors and one mean per state."""

    projection: np.ndarray  # float32 (2, D_m, d_word): P_rgb, P_flow
    state_means: np.ndarray  # float32 (S, 2 * D_m)
    state_word_weight: np.ndarray  # float32 (S, 2)
    params: Mapping[str, Any]
    frames_per_snippet: int
    # video-dependent sets: per fact group and word, its (2 * D_m) feature direction; per
    # class, which state columns are its phases; flow gain of each manner word
    fact_directions: dict[str, dict[str, np.ndarray]] | None = None
    class_phase_states: dict[str, np.ndarray] | None = None
    speed_flow_gain: dict[str, float] | None = None

    @classmethod
    def build(
        cls, cfg: Mapping[str, Any], table: StateTable, classes: list[str], seed: int, vectors=None
    ) -> FeatureModel:
        feat = cfg["features"]
        dim = int(feat["dim_per_modality"])
        facts = cfg.get("video_facts")
        words = sorted({w for _, _, w in table.states} | (_fact_words(facts) if facts else set()))
        if vectors is None:
            vectors = load_word_vectors(cfg.get("word_vectors", "glove-6b-50d"), restrict_to=words)
        missing = [w for w in words if w not in vectors]
        if missing:
            raise SynthConfigError(f"{cfg.get('_path', 'config')}: words {missing} have no vector in {vectors.source}")
        rng = rng_for(seed, "feature-model")
        projection = rng.standard_normal((2, dim, vectors.dim), dtype=np.float32)
        class_vectors = rng.standard_normal((2, len(classes), vectors.dim), dtype=np.float32)
        class_vectors /= np.linalg.norm(class_vectors, axis=2, keepdims=True)
        class_row = {c: i for i, c in enumerate(classes)}
        means = np.zeros((len(table), 2 * dim), np.float32)
        word_weight = np.zeros((len(table), 2), np.float32)
        for s, (kind, label, word) in enumerate(table.states):
            w = vectors.get(word).astype(np.float32)
            w = w / np.linalg.norm(w)
            for m, modality in enumerate(MODALITIES):
                ww = float(feat[kind]["word_weight"][modality])
                cw = float(feat[kind]["class_weight"][modality])
                in_word_space = ww * w
                if label is not None and cw:
                    in_word_space = in_word_space + cw * class_vectors[m, class_row[label]]
                means[s, m * dim : (m + 1) * dim] = projection[m] @ in_word_space
                word_weight[s, m] = ww
        model = cls(projection, means, word_weight, feat, int(cfg["snippet"]["frames_per_snippet"]))
        if facts:
            model.fact_directions = _fact_directions(facts, vectors, projection)
            model.class_phase_states = {
                c: np.array([s for s, (kind, label, _) in enumerate(table.states) if kind == "phase" and label == c])
                for c in classes
            }
            model.speed_flow_gain = {w: float(g) for w, g in facts["speed"].get("flow_gain", {}).items()}
        return model

    @property
    def dim(self) -> int:
        return self.state_means.shape[1]

    def snippet_weights(self, tl: Timeline) -> np.ndarray:
        """W (T, S): amplitude-weighted share of each state in each snippet, smoothed in time."""
        T = tl.state.shape[0] // self.frames_per_snippet
        W = np.zeros((T, self.state_means.shape[0]), np.float32)
        rows = np.arange(tl.state.shape[0]) // self.frames_per_snippet
        np.add.at(W, (rows, tl.state), tl.amplitude / self.frames_per_snippet)
        kernel = np.asarray(self.params["smoothing"], np.float32)
        if kernel.size > 1 and T > 1:
            half = kernel.size // 2
            padded = np.concatenate([np.repeat(W[:1], half, 0), W, np.repeat(W[-1:], half, 0)])
            W = sum(k * padded[i : i + T] for i, k in enumerate(kernel)).astype(np.float32)
        return W

    def video_features(self, video_id: str, tl: Timeline, seed: int) -> np.ndarray:
        """(T, 2 * D_m) float32 features of one video; a pure function of (seed, video_id, timeline)."""
        p = self.params
        rng = rng_for(seed, "features", video_id)
        W = self.snippet_weights(tl)
        T, dim = W.shape[0], self.state_means.shape[1] // 2
        x = W @ self.state_means
        if tl.facts:
            x += self.fact_signal(W, tl.facts)
        word_scale = W @ self.state_word_weight  # (T, 2)
        d_word = self.projection.shape[2]
        for m in range(2):
            delta = float(p["word_noise_std"]) * _ar1(rng, T, d_word, float(p["word_noise_rho"]))
            delta += float(p["video_word_offset_std"]) * rng.standard_normal(d_word, dtype=np.float32)
            x[:, m * dim : (m + 1) * dim] += word_scale[:, m : m + 1] * (delta @ self.projection[m].T)
        x += float(p["feature_noise_std"]) * _ar1(rng, T, 2 * dim, float(p["feature_noise_rho"]))
        x += float(p["video_offset_std"]) * rng.standard_normal(2 * dim, dtype=np.float32)
        return x.astype(np.float32, copy=False)

    def fact_signal(self, W: np.ndarray, facts: Mapping[str, Mapping[str, Any]]) -> np.ndarray:
        """(T, 2 * D_m): what the performer adds while performing (video-dependent sets).

        During a class's phases (weighted by their share of each snippet, so boundaries
        blend), RGB shows the performer's look (``performer`` and ``colour`` directions) and
        flow the manner (``speed`` direction, and the phases' flow signal scaled by the
        manner's gain: a fast performer moves more).
        """
        dim = self.state_means.shape[1] // 2
        out = np.zeros((W.shape[0], 2 * dim), np.float32)
        for label, fact in facts.items():
            cols = self.class_phase_states[label]
            share = W[:, cols].sum(1, keepdims=True)
            look = sum(self.fact_directions[g][fact[g]] for g in ("performer", "colour", "speed"))
            out += share * look
            gain = self.speed_flow_gain.get(fact["speed"], 1.0) - 1.0
            if gain:
                out[:, dim:] += gain * (W[:, cols] @ self.state_means[cols, dim:])
        return out


def _fact_words(facts: Mapping[str, Any]) -> set[str]:
    return {w for g in ("performer", "colour", "speed") for w in facts[g]["words"]} | set(
        facts["optional_phases"]["words"]
    )


def _fact_directions(facts: Mapping[str, Any], vectors, projection: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per fact group, each word's feature direction: its GloVe vector minus the group's mean,
    unit norm in word space, times the group's weight, projected into the modality it shows in.

    Centring removes what the words of a group share ("a colour"), so the direction says
    *which* colour and adds no group-wide offset to every action snippet.
    """
    dim = projection.shape[1]
    out: dict[str, dict[str, np.ndarray]] = {}
    for group in ("performer", "colour", "speed"):
        spec = facts[group]
        words = list(spec["words"])
        unit = np.stack([vectors.get(w) / np.linalg.norm(vectors.get(w)) for w in words]).astype(np.float32)
        centred = unit - unit.mean(0)
        centred /= np.linalg.norm(centred, axis=1, keepdims=True)
        out[group] = {}
        for w, d in zip(words, centred):
            vec = np.zeros(2 * dim, np.float32)
            for m, modality in enumerate(MODALITIES):
                weight = float(spec["weight"].get(modality, 0.0))
                if weight:
                    vec[m * dim : (m + 1) * dim] = projection[m] @ (weight * d)
            out[group][w] = vec
    return out
