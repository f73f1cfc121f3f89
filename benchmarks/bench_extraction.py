"""Speed of `python -m wtal_data extract` (I3D RGB + TV-L1 flow) on a folder of videos.

Prints videos/s and snippets/s for the whole driver (decode, 25 fps sampling, resize, TV-L1,
both networks), and the share of the time spent in flow and in the networks.  Speed does not
depend on the weight values, so without --rgb-weights/--flow-weights it uses random weights
of the real architecture (the features are then meaningless; only the time counts).

    python benchmarks/bench_extraction.py --videos data/demo/videos --shortest 2            # CPU
    python benchmarks/bench_extraction.py --videos data/demo/videos --device cuda --batch-size 32
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from wtal_data.extraction import extract as driver
from wtal_data.extraction.extract import ExtractionSettings, extract_videos, find_videos
from wtal_data.extraction.i3d import InceptionI3d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=Path("data/demo/videos"))
    parser.add_argument("--shortest", type=int, default=None, help="only the N videos with the fewest frames")
    parser.add_argument("--rgb-weights", type=Path)
    parser.add_argument("--flow-weights", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=224)
    args = parser.parse_args()

    videos = find_videos(args.videos)
    if args.shortest is not None:
        import decord

        frames = {v: len(decord.VideoReader(str(p))) for v, p in videos.items()}
        videos = {v: videos[v] for v in sorted(videos, key=lambda v: (frames[v], v))[: args.shortest]}
    timers = {"flow": 0.0, "networks": 0.0}
    flow_call, forward = driver.TVL1Flow.__call__, driver.I3DExtractor._forward

    def timed(name, fn):
        def wrapper(*a, **k):
            started = time.perf_counter()
            result = fn(*a, **k)
            if name == "networks" and a[0].device.type == "cuda":
                torch.cuda.synchronize()
            timers[name] += time.perf_counter() - started
            return result

        return wrapper

    driver.TVL1Flow.__call__ = timed("flow", flow_call)
    driver.I3DExtractor._forward = timed("networks", forward)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rgb, flow = args.rgb_weights, args.flow_weights
        if rgb is None or flow is None:
            torch.manual_seed(0)
            rgb, flow = tmp / "rgb.pt", tmp / "flow.pt"
            torch.save(InceptionI3d(3).state_dict(), rgb)
            torch.save(InceptionI3d(2).state_dict(), flow)
        settings = ExtractionSettings(resize=args.resize, crop=args.crop)
        started = time.perf_counter()
        manifest = extract_videos(videos, tmp / "out", rgb, flow, settings, args.device, args.batch_size)
        seconds = time.perf_counter() - started
    snippets = sum(manifest["videos"].values())
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, {args.resize}/{args.crop} px, batch {args.batch_size}"
    )
    print(f"{len(videos)} videos, {snippets} snippets in {seconds:.1f} s")
    print(f"{len(videos) / seconds:.4f} videos/s, {snippets / seconds:.3f} snippets/s")
    for name, spent in timers.items():
        print(f"  {name}: {spent:.1f} s ({100 * spent / seconds:.0f} %), {spent / snippets:.2f} s per snippet")


if __name__ == "__main__":
    main()
