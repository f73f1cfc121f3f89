"""Write one ablation study's tables (rule `ablation`): results/{name}_ablation.json and .md.

A thin call into :mod:`evaluation.ablation`; the spec (arms, their seeds' eval_map.json and
run.json files) comes from the rule's params (workflow/rules/common.smk: ablation_spec).
"""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # the repository root (Snakemake runs jobs there)

from evaluation.ablation import markdown_tables, summarise_ablation  # noqa: E402
from wtal_common.io import atomic_write_json, atomic_write_text  # noqa: E402

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821 (Snakemake's global)
summary = summarise_ablation(snakemake.params.spec)  # noqa: F821
atomic_write_json(snakemake.output.json, summary)  # noqa: F821
atomic_write_text(snakemake.output.table, markdown_tables(summary))  # noqa: F821
logging.info("wrote %s", snakemake.output.json)  # noqa: F821
