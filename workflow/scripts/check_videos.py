"""Fail early when a real data set's videos are not where the MLLM stage will read them.

Real videos are provided by the user; this check lists every missing file with the exact
path it must have, instead of letting prior generation fail on the first one hours in.
Run by the `check_videos` rule (Snakemake `script:`); writes a small JSON marker on success.
"""

import json
import os
import sys
from pathlib import Path


def missing_videos(ground_truth: Path, videos: Path, subset: str) -> tuple[list[str], int]:
    """Paths of the `subset` videos absent from `videos`, and how many were checked."""
    with open(ground_truth) as f:
        database = json.load(f)["database"]
    wanted = sorted(v for v, e in database.items() if e.get("subset") == subset)
    return [str(videos / f"{v}.mp4") for v in wanted if not (videos / f"{v}.mp4").is_file()], len(wanted)


def main(ground_truth, videos, subset, output, log, dataset) -> int:
    missing, checked = missing_videos(Path(ground_truth), Path(videos), subset)
    if missing:
        shown = "\n".join(f"  {p}" for p in missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        message = (
            f"Real data set '{dataset}': {len(missing)} of {checked} {subset} videos are missing.\n"
            f"Put each video as {videos}/<video_id>.mp4 (the video ids of {ground_truth}); missing:\n"
            f"{shown}{more}\n"
            "Synthetic data never stands in for real videos."
        )
        Path(log).write_text(message + "\n")
        print(message, file=sys.stderr)
        return 1
    tmp = Path(output).with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"dataset": dataset, "videos": str(videos), "subset": subset, "checked": checked}, indent=2) + "\n"
    )
    os.replace(tmp, output)
    Path(log).write_text(f"{checked} {subset} videos present in {videos}\n")
    return 0


if __name__ == "__main__" and "snakemake" in globals():
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    sys.exit(main(sm.input.gt, sm.params.videos, sm.params.subset, sm.output[0], sm.log[0], sm.wildcards.dataset))
