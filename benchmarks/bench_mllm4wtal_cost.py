"""Cost of the MLLM4WTAL plug-ins: training time per iteration (base vs base+KSM+CSR+head)
and inference time (base vs base+localization head).

The head trains on windows of a generated training set of ``--train-videos`` videos
(THUMOS14-like lengths), from iteration 1; its pseudo-label refresh (the base on every
training video, then its proposals) runs every ``loc_refresh_every`` iterations and is timed
on its own: the per-iteration figures leave it out, the refresh line gives its amortised
cost at the configured period.

Uses a registered base method (default DELU) on random features of ``--feature-dim``
(THUMOS14's 2048 by default; ``config/demo_training.yaml``'s CPU width is 256), and
generated token sequences of realistic lengths in place of text priors (a vocabulary of
--vocab words with --word-dim vectors); it measures cost, not accuracy.  ``--config``
takes the branch widths from a training config's ``mllm4wtal:`` section (otherwise the
paper's defaults).  Base and full steps are timed *interleaved* (one of each per round),
so a shared, loaded machine slows both alike; the figures are medians over the rounds,
with the load average before and after.  Runs on CUDA when available, else the CPU.

    # THUMOS14 shape
    python benchmarks/bench_mllm4wtal_cost.py --method delu --batch-size 10 --length 320
    # the CPU shape of the cost target (x2 the base): 256-d, demo branch widths, 1 thread
    python benchmarks/bench_mllm4wtal_cost.py --feature-dim 256 --config config/demo_training.yaml \
        --batch-size 10 --length 320 --threads 1 --repeats 15
    # what if A_CSR's conv head were as narrow as the base method's attention (D/4)?
    python benchmarks/bench_mllm4wtal_cost.py --feature-dim 256 --config config/demo_training.yaml \
        --set csr_attention_hidden=64
    # where the time goes (torch.profiler, grouped by op; add --profile-by-module for modules)
    python benchmarks/bench_mllm4wtal_cost.py --feature-dim 256 --config config/demo_training.yaml --profile
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from wtal_training.config import build_config
from wtal_training.models import BASE_METHODS, Batch
from wtal_training.objectives import build_objective
from wtal_training.sampler import DeviceFeatureSet


@dataclass
class _Item:
    input_ids: np.ndarray
    target_ids: np.ndarray
    mask_positions: np.ndarray


class GeneratedPriors:
    """Token sequences of MLLM-like lengths (key ~20 words, complete ~60) over a random vocabulary."""

    pad_id, unk_id, start_id, mask_id = 0, 1, 2, 3

    def __init__(self, classes: int, vocab: int, dim: int, key_len: int = 20, complete_len: int = 60) -> None:
        rng = np.random.default_rng(0)
        self.classes = [f"class{i}" for i in range(classes)]
        self.vocab = [f"w{i}" for i in range(vocab)]
        self.word_vectors = rng.standard_normal((vocab, dim)).astype(np.float32)
        self._key = rng.integers(4, vocab, key_len)
        target = rng.integers(4, vocab, complete_len)
        positions = np.sort(rng.choice(complete_len, complete_len // 3, replace=False))
        inputs = target.copy()
        inputs[positions] = self.mask_id
        self._item = _Item(inputs, target, positions)

    def key_tokens(self, video_id, cls):
        return [self._key]

    def key_bank(self, cls):
        return [self._key]

    def class_name_tokens(self, cls):
        return self._key[:2]

    def complete(self, video_id, cls):
        return [self._item]

    def template_complete(self, cls):
        return self._item


def _batch(args, device) -> Batch:
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(args.batch_size, args.classes)
    for b in range(args.batch_size):  # similar pairs first, as the engine's sampler builds them
        labels[b, (b // 2) % args.classes if b < 6 else int(torch.randint(args.classes, (1,), generator=g))] = 1
    feats = torch.randn(args.batch_size, args.length, args.feature_dim, generator=g)
    mask = torch.ones(args.batch_size, args.length, dtype=torch.bool)
    return Batch(feats.to(device), mask.to(device), labels.to(device), [f"v{b}" for b in range(args.batch_size)])


class _GeneratedStore:
    """Random training features (what ``DeviceFeatureSet`` reads of a FeatureStore)."""

    def __init__(self, videos: int, dim: int, classes: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        lengths = np.clip(rng.lognormal(np.log(300), 0.6, videos).astype(int), 40, 2600)  # THUMOS14-like
        self.features = {f"v{i:04d}": rng.standard_normal((n, dim)).astype(np.float32) for i, n in enumerate(lengths)}
        self.index = {v: [0, len(x)] for v, x in self.features.items()}
        self.feature_dim = dim
        self.gt = {
            "classes": [f"class{c}" for c in range(classes)],
            "snippet_seconds": 0.64,
            "database": {
                v: {"subset": "train", "labels": [f"class{i % classes}"]} for i, v in enumerate(self.features)
            },
        }

    def __getitem__(self, video_id: str) -> np.ndarray:
        return self.features[video_id]


@dataclass
class _TrainSet:
    train: DeviceFeatureSet
    gt: dict


def _timed(fn, device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a shared, loaded machine the CPU
    time is the steadier figure (waiting for a core is not counted)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start


def _interleaved(fns, warmup: int, repeats: int, device) -> list[tuple[list[float], list[float]]]:
    """Per function, its (wall, CPU) times over ``repeats`` rounds; each round runs every function once."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[tuple[list[float], list[float]]] = [([], []) for _ in fns]
    for _ in range(repeats):
        for fn, (wall, cpu) in zip(fns, times):
            w, c = _timed(fn, device)
            wall.append(w)
            cpu.append(c)
    return times


def _branch_widths(path: str | None) -> dict:
    if not path:
        return {}
    return dict((yaml.safe_load(Path(path).read_text()) or {}).get("mllm4wtal") or {})


def _profile(step, device, by_module: bool, rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile, record_function

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, with_stack=by_module, with_modules=by_module) as prof:
        for _ in range(3):
            with record_function("full_step"):
                step()
    sort = "cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    if by_module:
        print(prof.key_averages(group_by_stack_n=6).table(sort_by=sort, row_limit=rows))
    else:
        print(prof.key_averages().table(sort_by=sort, row_limit=rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="delu", choices=sorted(BASE_METHODS))
    p.add_argument("--feature-dim", type=int, default=2048, help="D of the input features (RGB + flow)")
    p.add_argument("--config", help="a training config whose mllm4wtal: section gives the branch widths")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one mllm4wtal: key after --config (what-if widths), e.g. csr_attention_hidden=64",
    )
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--length", type=int, default=320, help="snippets per video (T)")
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--vocab", type=int, default=3000)
    p.add_argument("--word-dim", type=int, default=50)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (one base and one full step each)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-videos", type=int, default=200, help="generated training videos for the head's windows")
    p.add_argument("--no-inference", action="store_true", help="skip the inference figures")
    p.add_argument("--profile", action="store_true", help="print a torch.profiler table of full steps instead")
    p.add_argument("--profile-by-module", action="store_true", help="with --profile: group by call stack")
    p.add_argument("--profile-rows", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = _batch(args, device)
    priors = GeneratedPriors(args.classes, args.vocab, args.word_dim)
    widths = _branch_widths(args.config)
    for item in args.set:
        key, _, value = item.partition("=")
        widths[key] = yaml.safe_load(value)

    torch.manual_seed(0)
    base = BASE_METHODS[args.method](args.feature_dim, args.classes).to(device)
    opt = torch.optim.Adam(base.parameters(), lr=5e-5, weight_decay=1e-3)
    base_iterations = iter(range(1, 10**9))

    def base_step():
        base.train()
        loss, _ = base.loss(base(batch.features, batch.mask), batch, next(base_iterations))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    torch.manual_seed(0)
    base2 = BASE_METHODS[args.method](args.feature_dim, args.classes).to(device)
    store = _GeneratedStore(args.train_videos, args.feature_dim, args.classes)
    train = _TrainSet(DeviceFeatureSet(store, store.gt, sorted(store.features), device), store.gt)
    sets = [f"max_seqlen={args.length}", f"batch_size={args.batch_size}"]
    train_config = build_config(args.method, "thumos14", sets=sets, iterations=1000, modules=["ksm", "csr"])
    # the head learns from iteration 1 here (its warm-up would hide its cost)
    train_config = train_config.updated({"mllm4wtal": {**widths, "loc_warmup": 0.0}}, "benchmark widths")
    objective = build_objective(train_config, base2, priors, data=train)
    full_iterations = iter(range(1, 10**9))

    def full_step():
        objective.step(batch, next(full_iterations))

    if args.profile or args.profile_by_module:
        for _ in range(args.warmup):
            full_step()
        _profile(full_step, device, args.profile_by_module, args.profile_rows)
        return

    load_before = os.getloadavg()
    t_base, t_full = _interleaved([base_step, full_step], args.warmup, args.repeats, device)
    load_after = os.getloadavg()

    med = statistics.median
    where = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"{args.threads} CPU thread(s), {os.cpu_count()} cores"
    )
    print(f"device: {device} ({where}); load average 1/5/15 min before {load_before}, after {load_after}")
    print(
        f"method {args.method}, batch {args.batch_size} x {args.length} snippets x {args.feature_dim}, "
        f"{args.classes} classes, modules {objective.cfg['modules']} + head {objective.cfg['loc_head']}, "
        f"branch widths {widths or 'defaults'}"
    )
    print(f"train s/iter, median of {args.repeats} interleaved rounds after {args.warmup} warm-up:")
    for clock, b, f in (("wall", t_base[0], t_full[0]), ("CPU", t_base[1], t_full[1])):
        ratios = [x / y for x, y in zip(f, b)]
        print(
            f"  {clock:4s}  base: {med(b):.4f}   base+modules: {med(f):.4f}   ratio: {med(f) / med(b):.2f} "
            f"(per-round ratios: median {med(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f})"
        )
    head = objective.head_training
    refresh = [_timed(head.refresh, device)[0] for _ in range(2)]
    period = head.refresh_every
    print(
        f"  head pseudo-label refresh ({args.train_videos} videos): {min(refresh):.3f} s, every {period} iterations: "
        f"+{min(refresh) / period:.4f} s/iter, ratio with it {(med(t_full[0]) + min(refresh) / period) / med(t_base[0]):.2f}"
    )
    if args.no_inference:
        return
    model = objective.inference_model().eval()
    test = batch.features[:1].repeat(1, 2, 1)[:, : max(args.length, 750)]  # one long test video
    test_mask = torch.ones(test.shape[:2], dtype=torch.bool, device=device)
    with torch.no_grad():
        base2.eval()
        (t_inf_base, _), (t_inf_full, _) = _interleaved(
            [lambda: base2(test, test_mask), lambda: model(test, test_mask)], args.warmup, args.repeats * 2, device
        )
    print(
        f"infer s/video ({test.shape[1]} snippets)  base: {med(t_inf_base):.4f}   base+head: {med(t_inf_full):.4f}   "
        f"overhead: {100 * (med(t_inf_full) / med(t_inf_base) - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()
