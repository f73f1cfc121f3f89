"""Benchmark: videos/s of the prior-generation stage (hf backend) against batch size.

Runs the real stage (:class:`prior_generation.generate.Runner`: decord decoding in the
background worker, processor, batched ``generate``, Parquet parts) over generated mp4
files, with a random-weight model of a chosen shape built in memory:

* ``--shape tiny`` (default): hidden 32, 2 layers, CPU-friendly;
* ``--shape 7b``: the LLaVA-NeXT-Video-7B / Qwen2-VL-7B shape, built directly on the GPU in
  bf16 (about 16 GB), 336 px frames.

Each video has one class, so one video = one key + one complete row.  A random model
never emits end-of-sequence, so every row uses all its new tokens: the worst case.
Model loading is excluded; decoding is included.  Prints one line per batch size.

    python benchmarks/bench_prior_generation.py --shape tiny --batch-sizes 1,4,8 --videos 16
    python benchmarks/bench_prior_generation.py --shape 7b --arch qwen2_vl --batch-sizes 1,8,32 \\
        --videos 64 --max-new-tokens-key 64 --max-new-tokens-complete 64
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_mp4(path: Path, frames: list[np.ndarray], width: int, height: int) -> str:
    """Write RGB ``frames`` at 25 fps; returns the codec used.

    H.264 through imageio-ffmpeg, as real videos are; where that package is missing (the GPU
    machines here have OpenCV but not imageio-ffmpeg, whose wheel is too large to carry)
    MPEG-4 Part 2 through OpenCV, which decord reads too."""
    try:
        import imageio_ffmpeg
    except ImportError:
        import cv2

        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
        writer.release()
        return "mpeg4 (OpenCV)"
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=25,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=16,
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for frame in frames:
        writer.send(frame.tobytes())
    writer.close()
    return "h264 (imageio-ffmpeg)"


def make_videos(root: Path, count: int, frames: int, width: int, height: int) -> tuple[Path, Path]:
    """``count`` mp4 files and a canonical ground truth naming them (generated, not real)."""
    from wtal_data.canonical import write_ground_truth

    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    database = {}
    for i in range(count):
        vid = f"bench_{i:05d}"
        base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        codec = write_mp4(videos / f"{vid}.mp4", [np.roll(base, t * 3, axis=1) for t in range(frames)], width, height)
        database[vid] = {
            "subset": "train",
            "duration": frames / 25,
            "fps": 25.0,
            "labels": ["CliffDiving"],
            "annotations": [],
        }
    gt = {
        "schema_version": 1,
        "dataset": "bench-generated",
        "family": "thumos14",
        "synthetic": True,
        "classes": ["CliffDiving"],
        "snippet_seconds": 0.64,
        "database": database,
        "ambiguous": {},
    }
    write_ground_truth(root / "canonical", gt)
    print(f"generated {count} videos of {frames} frames, {width}x{height}, {codec}", flush=True)
    return root / "canonical" / "ground_truth.json", videos


def build_backend(args):
    import torch

    from prior_generation.backends.hf import HFBackend
    from prior_generation.tiny_model import make_model

    cuda = torch.cuda.is_available() and args.device != "cpu"
    config, processor = make_model(args.arch, seed=0, shape=args.shape, init=False)
    model_cls = {
        "llava_next_video": "LlavaNextVideoForConditionalGeneration",
        "qwen2_vl": "Qwen2VLForConditionalGeneration",
    }[args.arch]
    import transformers

    dtype = torch.bfloat16 if cuda else torch.float32
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):
        net = getattr(transformers, model_cls)._from_config(config, dtype=dtype).eval()
    net.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    net.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    processor.tokenizer.padding_side = "left"
    backend = HFBackend(
        f"random-{args.arch}-{args.shape}",
        num_frames=args.num_frames,
        max_new_tokens={"key": args.max_new_tokens_key, "complete": args.max_new_tokens_complete},
    )
    backend.processor, backend.net = processor, net
    backend._eos = {processor.tokenizer.eos_token_id}
    backend.load = lambda: None  # already built in memory
    params = sum(p.numel() for p in net.parameters())
    return backend, params, cuda


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="llava_next_video", choices=["llava_next_video", "qwen2_vl"])
    parser.add_argument("--shape", default="tiny", choices=["tiny", "7b"])
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--videos", type=int, default=16, help="videos per batch-size run")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--video-frames", type=int, default=64, help="frames in each generated mp4")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--max-new-tokens-key", type=int, default=64)
    parser.add_argument("--max-new-tokens-complete", type=int, default=256)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    import torch

    from prior_generation.generate import GenerateConfig, Runner

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="bench_priors_"))
    try:
        gt, videos = make_videos(root, args.videos, args.video_frames, args.width, args.height)
        backend, params, cuda = build_backend(args)
        device = torch.cuda.get_device_name() if cuda else f"CPU ({args.threads} thread(s))"
        print(
            f"# {args.arch} shape={args.shape} ({params / 1e6:.1f} M params) on {device}; {args.videos} videos "
            f"{args.width}x{args.height}, {args.num_frames} frames, max_new_tokens key/complete "
            f"{args.max_new_tokens_key}/{args.max_new_tokens_complete}"
        )
        results = []
        # warm-up (kernels, allocator) on a throwaway run
        warm = GenerateConfig(
            ground_truth=gt,
            videos=videos,
            output=root / "warm.parquet",
            backend="hf",
            num_frames=args.num_frames,
            batch_size=2,
            shard=(0, max(1, args.videos // 2)),
        )
        Runner(warm, backend).run()
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            cfg = GenerateConfig(
                ground_truth=gt,
                videos=videos,
                output=root / f"b{batch}.parquet",
                backend="hf",
                num_frames=args.num_frames,
                batch_size=batch,
                max_new_tokens_key=args.max_new_tokens_key,
                max_new_tokens_complete=args.max_new_tokens_complete,
            )
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            summary = Runner(cfg, backend).run()
            if cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - start
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
            row = {
                "batch_size": batch,
                "videos": args.videos,
                "rows": summary.total,
                "seconds": wall,
                "videos_per_s": args.videos / wall,
                "rows_per_s": summary.total / wall,
                "peak_gib": peak,
                "failed": len(summary.failures),
            }
            results.append(row)
            print(
                f"batch {batch:3d}: {row['videos_per_s']:7.2f} videos/s  {row['rows_per_s']:7.2f} rows/s  "
                f"{wall:7.2f} s  peak {peak:.1f} GiB  failed {row['failed']}",
                flush=True,
            )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {"device": device, "arch": args.arch, "shape": args.shape, "params": params, "results": results},
                    indent=1,
                )
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
