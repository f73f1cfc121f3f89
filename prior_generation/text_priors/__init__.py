"""Text priors: tokenize, mask and embed the MLLM descriptions for KSM and CSR.

``python -m prior_generation.text_priors build`` turns the descriptions Parquet of the
prior-generation stage into a folder of token ids, a vocabulary, a word-vector matrix,
per-class key-description banks and masked complete descriptions (see :mod:`.build` for
the file contract); ``load_text_priors`` reads it for training.
"""

from .build import build_text_priors
from .config import ClassOrderError, TextPriorsConfig, TextPriorsError
from .load import CompleteItem, TextPriors, load_text_priors
from .report import compute_report, format_report

__all__ = [
    "ClassOrderError",
    "CompleteItem",
    "TextPriors",
    "TextPriorsConfig",
    "TextPriorsError",
    "build_text_priors",
    "compute_report",
    "format_report",
    "load_text_priors",
]
