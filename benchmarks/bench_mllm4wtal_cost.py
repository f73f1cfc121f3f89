"""Cost of the MLLM4WTAL plug-ins: training time per iteration (base vs base+KSM+CSR+head)
and inference time (base vs base+localization head).

Uses a registered base method (default DELU) at THUMOS14 sizes (2048-d features, 20
classes) on random features, and generated token sequences of realistic lengths in place
of text priors (a vocabulary of --vocab words with --word-dim vectors); it measures cost,
not accuracy.  Prints one line per figure.  Runs on CUDA when available, else the CPU.

    python benchmarks/bench_mllm4wtal_cost.py --method delu --batch-size 10 --length 320
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from wtal_training.mllm4wtal import build_mllm4wtal_objective
from wtal_training.models import BASE_METHODS, Batch


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
    feats = torch.randn(args.batch_size, args.length, 2048, generator=g)
    mask = torch.ones(args.batch_size, args.length, dtype=torch.bool)
    return Batch(feats.to(device), mask.to(device), labels.to(device), [f"v{b}" for b in range(args.batch_size)])


def _time(fn, warmup: int, repeats: int, device) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="delu", choices=sorted(BASE_METHODS))
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--length", type=int, default=320, help="snippets per video (T)")
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--vocab", type=int, default=3000)
    p.add_argument("--word-dim", type=int, default=50)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = _batch(args, device)
    priors = GeneratedPriors(args.classes, args.vocab, args.word_dim)

    torch.manual_seed(0)
    base = BASE_METHODS[args.method](2048, args.classes).to(device)
    opt = torch.optim.Adam(base.parameters(), lr=5e-5, weight_decay=1e-3)

    base_iterations = iter(range(10**9))

    def base_step():
        base.train()
        loss, _ = base.loss(base(batch.features, batch.mask), batch, next(base_iterations))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t_base = _time(base_step, args.warmup, args.repeats, device)
    torch.manual_seed(0)
    base2 = BASE_METHODS[args.method](2048, args.classes).to(device)
    objective = build_mllm4wtal_objective({"modules": ["ksm", "csr"]}, base2, priors)
    counter = iter(range(10**9))
    t_full = _time(lambda: objective.step(batch, next(counter)), args.warmup, args.repeats, device)

    model = objective.inference_model().eval()
    test = batch.features[:1].repeat(1, 2, 1)[:, : max(args.length, 750)]  # one long test video
    test_mask = torch.ones(test.shape[:2], dtype=torch.bool, device=device)
    with torch.no_grad():
        t_inf_base = _time(lambda: base2.eval()(test, test_mask), args.warmup, args.repeats * 2, device)
        t_inf_full = _time(lambda: model(test, test_mask), args.warmup, args.repeats * 2, device)

    med = statistics.median
    print(
        f"device: {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{args.threads} CPU thread(s)'})"
    )
    print(f"method {args.method}, batch {args.batch_size} x {args.length} snippets x 2048, {args.classes} classes")
    print(
        f"train s/iter  base: {med(t_base):.4f}   base+KSM+CSR+head: {med(t_full):.4f}   "
        f"ratio: {med(t_full) / med(t_base):.2f}"
    )
    print(
        f"infer s/video ({test.shape[1]} snippets)  base: {med(t_inf_base):.4f}   base+head: {med(t_inf_full):.4f}   "
        f"overhead: {100 * (med(t_inf_full) / med(t_inf_base) - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()
