"""Fail early when a real data set's videos cannot be read where the MLLM stage will read them.

Real videos are provided by the user.  Prior generation runs hours later, often on a GPU
node, so this check opens every training video now: a missing file, a 0-byte file or one
that is not a video (no readable container or stream) is listed with its exact path, all of
them at once.  Opening a file with decord (the reader prior generation uses) parses the
container header and the frame index, not the frames, so the check costs seconds, not a
decode.  Run by the `check_videos` rule (Snakemake `script:`); writes a small JSON marker
on success.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # the repository root (Snakemake runs jobs there): wtal_common

from wtal_common.io import atomic_write_json  # noqa: E402


def video_problem(path: Path) -> str | None:
    """Why `path` cannot serve as a video for the MLLM, or None when it can."""
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    import decord

    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        frames = len(reader)
    except Exception as exc:  # decord raises DECORDError and plain RuntimeErrors
        return f"not a readable video ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    if frames == 0:
        return "video without frames"
    return None


def bad_videos(ground_truth: Path, videos: Path, subset: str) -> tuple[list[tuple[str, str]], int]:
    """(path, problem) of every `subset` video that cannot be read, and how many were checked."""
    with open(ground_truth) as f:
        database = json.load(f)["database"]
    wanted = sorted(v for v, e in database.items() if e.get("subset") == subset)
    problems = []
    for video in wanted:
        path = videos / f"{video}.mp4"
        problem = video_problem(path)
        if problem is not None:
            problems.append((str(path), problem))
    return problems, len(wanted)


def main(ground_truth, videos, subset, output, dataset) -> int:
    problems, checked = bad_videos(Path(ground_truth), Path(videos), subset)
    if problems:
        listed = "\n".join(f"  {path}: {problem}" for path, problem in problems)
        print(
            f"Real data set '{dataset}': {len(problems)} of {checked} {subset} videos cannot be read.\n"
            f"Put each video as {videos}/<video_id>.mp4 (the video ids of {ground_truth}):\n"
            f"{listed}\n"
            "Synthetic data never stands in for real videos.",
            file=sys.stderr,
        )
        return 2
    atomic_write_json(output, {"dataset": dataset, "videos": str(videos), "subset": subset, "checked": checked}, 2)
    print(f"{checked} {subset} videos present and readable in {videos}", file=sys.stderr)
    return 0


if __name__ == "__main__" and "snakemake" in globals():
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    sys.stderr = open(sm.log[0], "w", buffering=1)  # the rule's log holds messages and tracebacks
    sys.exit(main(sm.input.gt, sm.params.videos, sm.params.subset, sm.output[0], sm.wildcards.dataset))
