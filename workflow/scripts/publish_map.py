"""Copy the configured summary to results/{dataset}_map.json (the `publish_map` rule).

Several summaries may exist per data set (one per MLLM and experiment, under
results/summaries/); the documented results/{dataset}_map.json is the one of the MLLM and
experiment the config names, copied atomically so a reader never sees half a file.  The
rule's `reference` input (the reference experiment's summary) is only made to exist here:
the finished run prints it beside the copy (common.smk: result_headlines).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # the repository root (Snakemake runs jobs there): wtal_common

from wtal_common.io import atomic_write_bytes  # noqa: E402


def main(summary, output) -> int:
    atomic_write_bytes(output, Path(summary).read_bytes())
    print(f"copied {summary} to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__" and "snakemake" in globals():
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    sys.stderr = open(sm.log[0], "w", buffering=1)  # the rule's log holds messages and tracebacks
    sys.exit(main(sm.input.summary, sm.output[0]))
