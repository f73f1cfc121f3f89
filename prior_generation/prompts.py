"""The two prompts of the paper (§3.1 key, §3.2 complete) and how a class name enters them.

Templates are plain strings with a ``{cls}`` placeholder; they come from the config or
the CLI, and default to the paper's wording.  Every output row stores the rendered
prompt and a hash of the *template* plus the class-name rendering rule, so a downstream
stage can tell that a template changed and rerun.

Class names are rendered readable before they enter a prompt, because an MLLM reads
"cliff diving" far better than "CliffDiving":

* CamelCase is split at lower->upper and letter->digit boundaries
  ("CliffDiving" -> "cliff diving", "SoccerPenalty" -> "soccer penalty");
* runs of capitals stay whole ("TVShow" -> "tv show");
* ``_`` and ``-`` become spaces; whitespace is collapsed; the result is lower-cased.
  ActivityNet names ("Playing bagpipes") therefore become "playing bagpipes".
"""

from __future__ import annotations

import hashlib
import re

from wtal_common.errors import ConfigError

from .settings import DEFAULTS

KINDS = ("key", "complete")

DEFAULT_TEMPLATES = DEFAULTS.templates()  # the paper's wording (settings.py)

# Bumped whenever readable_class_name changes, so stored prompt hashes change with it.
CLASS_RENDERING_VERSION = 1

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])")


def readable_class_name(name: str) -> str:
    """ "CliffDiving" -> "cliff diving"; see the module docstring for the rules."""
    text = re.sub(r"[_\-]+", " ", name)
    text = _CAMEL.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def validate_template(kind: str, template: str) -> str:
    """A template must name the class: without ``{cls}`` the prior is class-blind."""
    if kind not in KINDS:
        raise ConfigError(f"prompt kind {kind!r} is not one of {KINDS}")
    if "{cls}" not in template:
        raise ConfigError(f"--prompt-{kind}: template must contain '{{cls}}', got {template!r}")
    try:
        template.format(cls="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"--prompt-{kind}: bad template {template!r} ({exc}); only {{cls}} may be used") from exc
    return template


def render_prompt(template: str, class_name: str) -> str:
    return template.format(cls=readable_class_name(class_name))


def prompt_hash(template: str) -> str:
    """Short, stable hash of a template and the class-name rendering rule."""
    digest = hashlib.sha256(f"v{CLASS_RENDERING_VERSION}\x00{template}".encode()).hexdigest()
    return digest[:16]
