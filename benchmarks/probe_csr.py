"""Does CSR's reconstruction need the video?  Masked-word accuracy with own vs shuffled features.

    python benchmarks/probe_csr.py --dataset /tmp/vd/canonical --dataset /tmp/synth/canonical \
        [--workdir /tmp/probe_csr] [--steps 300] [--batch 16] [--max-snippets 128] [--heldout 0.2]

For each generated data set (a canonical folder with ``scripts.json``):

1. descriptions from the synthetic backend (``python -m prior_generation generate --backend
   synthetic``) and text priors (``python -m prior_generation.text_priors build``), as the
   workflow makes them (results/priors/{dataset}/synthetic/text_priors);
2. a held-out fraction of the *training* videos (never the test split) is set aside; CSR
   alone (``wtal_training.mllm4wtal.csr.CompleteSemanticReconstruction`` and its loss, eq.
   17) is trained on the other training videos' features and complete descriptions for a
   fixed schedule.  Masks are redrawn every step with the text-priors stage's own masking
   weights (``text_priors.masking``): one fixed mask per sentence on ~170 sentences would be
   memorised;
3. on the held-out descriptions (their stored mask plus ``--eval-masks - 1`` redrawn ones),
   masked-word accuracy and loss are measured with each video's own features and with
   the features of another held-out video (a derangement).  The gap is what reconstruction
   takes from the video.  Accuracy is also split by the kind of masked word: a *fact* word
   (performer, colour, manner, count, optional phase; thumos14-vd only), a *script* word
   (phase or context word of any class) or *other* (template words).

Figures, not a test; they go to docs/synthetic-benchmark.md and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

# One thread: on a loaded 2-core machine, two OpenMP threads spin-wait on each other (8x slower
# per step, measured).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from prior_generation.text_priors import load_text_priors  # noqa: E402
from prior_generation.text_priors.masking import mask_row, mask_weights, row_rng  # noqa: E402
from wtal_data.canonical import FeatureStore, load_ground_truth  # noqa: E402
from wtal_data.synthetic.describer_vd import NUMBER_WORDS  # noqa: E402
from wtal_training.mllm4wtal.common import ConvAttention  # noqa: E402
from wtal_training.mllm4wtal.csr import CompleteSemanticReconstruction  # noqa: E402

DRAW_SEPARATOR = "@draw"


def build_priors(canonical: Path, work: Path, draws: int = 1) -> Path:
    """Descriptions (synthetic backend) and text priors of one data set; reused when present.

    ``draws`` > 1: the describer writes every description ``draws`` times with seeds 0, 1, ...
    (other omissions, wrong words, paraphrases and templates: what several samples of an
    MLLM would give); draw s > 0 is stored under the video id ``<video>@draw<s>``, and one
    text-priors build covers all draws (one vocabulary)."""
    work.mkdir(parents=True, exist_ok=True)
    descriptions, priors = work / "descriptions.parquet", work / "text_priors"
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(Path(__file__).resolve().parents[1]))}
    if not descriptions.exists():
        tables = []
        for draw in range(draws):
            out = work / f"descriptions-draw{draw}.parquet"
            subprocess.run(
                [sys.executable, "-m", "prior_generation", "generate", "--backend", "synthetic", "--seed", str(draw)]
                + ["--scripts", str(canonical / "scripts.json"), "--ground-truth", str(canonical / "ground_truth.json")]
                + ["--output", str(out), "--log", str(work / f"generate-draw{draw}.log")],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            table = pq.read_table(out)
            if draw:
                ids = [f"{v}{DRAW_SEPARATOR}{draw}" for v in table.column("video_id").to_pylist()]
                column = table.schema.get_field_index("video_id")
                table = table.set_column(column, table.schema.field(column), pa.array(ids, pa.string()))
            tables.append(table)
        pq.write_table(pa.concat_tables(tables), descriptions)
    if not (priors / "meta.json").exists():
        ground_truth = [] if draws > 1 else ["--ground-truth", str(canonical / "ground_truth.json")]
        subprocess.run(
            [sys.executable, "-m", "prior_generation.text_priors", "build", "--descriptions", str(descriptions)]
            + ["--output-dir", str(priors), *ground_truth]
            + ["--log", str(work / "text_priors.log"), "--no-progress"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    return priors


def video_of(row_video_id: str) -> str:
    """The video whose features a description row goes with (draws share their video's)."""
    return row_video_id.split(DRAW_SEPARATOR)[0]


def word_kinds(scripts: dict) -> tuple[set[str], set[str]]:
    """(fact words, script words) of a scripts.json, lower case, as the describer may say them."""
    script_words = {p["word"] for c in scripts["classes"].values() for p in c["phases"]}
    script_words |= {w for c in scripts["classes"].values() for w in c["context"]}
    facts: set[str] = set()
    spec = scripts.get("video_facts")
    if spec:
        desc = scripts["describer"]
        for group in ("performer", "colour", "speed"):
            for w in spec[group]["words"]:
                facts |= {w, *desc.get("synonyms", {}).get(w, []), *desc.get("adverbs", {}).get(w, [])}
        facts |= set(spec["optional_phases"]["words"]) | set(NUMBER_WORDS[1:]) | {"once", "single", "many"}
    return facts, script_words - facts


def fact_values(scripts: dict) -> dict[str, str]:
    """Each way the describer may say a fact -> the fact it says (``crimson`` -> ``red``,
    ``rapidly`` -> ``fast``): a masked fact word counts as read from the video when the
    prediction says the same fact, whichever paraphrase the description happened to use."""
    spec, desc = scripts.get("video_facts"), scripts.get("describer", {})
    if not spec:
        return {}
    out: dict[str, str] = {}
    for group in ("performer", "colour", "speed"):
        for w in spec[group]["words"]:
            for said in {w, *desc.get("synonyms", {}).get(w, []), *desc.get("adverbs", {}).get(w, [])}:
                out[said] = w
    return out


class Rows:
    """Complete descriptions of training videos: tokens, POS, action flags, stored masks."""

    def __init__(self, priors: Path, train_ids: set[str]):
        table = pq.read_table(priors / "tokens.parquet").to_pydict()
        meta = json.loads((priors / "meta.json").read_text())
        self.cfg = meta.get("config", {})
        self.rows = [
            {k: table[k][i] for k in ("video_id", "class_name", "token_ids", "pos", "is_action", "masked_input_ids")}
            for i, kind in enumerate(table["kind"])
            if kind == "complete" and video_of(table["video_id"][i]) in train_ids
        ]
        pos_w = self.cfg.get("pos_weights") or {"VERB": 4.0, "NOUN": 2.0, "PROPN": 2.0, "ADJ": 1.0, "ADV": 1.0}
        self.weights = [
            mask_weights(r["pos"], r["is_action"], pos_w, float(self.cfg.get("action_weight", 4.0))) for r in self.rows
        ]
        self.ratio = float(self.cfg.get("mask_ratio", 1 / 3))

    def masked(self, i: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """(input ids, targets with -100 off the masks); rng None: the stored mask."""
        row = self.rows[i]
        ids = np.asarray(row["token_ids"], np.int64)
        if rng is None:
            inputs = np.asarray(row["masked_input_ids"], np.int64)
            positions = np.flatnonzero(inputs != ids)
        else:
            m = mask_row(ids.tolist(), self.weights[i], self.ratio, rng)
            inputs, positions = np.asarray(m.input_ids, np.int64), np.asarray(m.positions, np.int64)
        targets = np.full(len(ids), -100, np.int64)
        targets[positions] = ids[positions]
        return inputs, targets


def pad(seqs: list[np.ndarray], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(s) for s in seqs)
    out = np.full((len(seqs), n), value, np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return torch.as_tensor(out), torch.as_tensor(out == value)


def video_batch(store: FeatureStore, vids: list[str], max_len: int, rng: np.random.Generator | None):
    """Features sampled to at most ``max_len`` snippets (random sorted indices when training,
    a uniform stride when evaluating), padded; (features, mask)."""
    clips = []
    for v in vids:
        x = np.asarray(store[v], np.float32)
        if len(x) > max_len:
            idx = (
                np.sort(rng.choice(len(x), max_len, replace=False))
                if rng is not None
                else np.linspace(0, len(x) - 1, max_len).round().astype(int)
            )
            x = x[idx]
        clips.append(x)
    T = max(len(c) for c in clips)
    feats = np.zeros((len(clips), T, clips[0].shape[1]), np.float32)
    mask = np.zeros((len(clips), T), bool)
    for i, c in enumerate(clips):
        feats[i, : len(c)], mask[i, : len(c)] = c, True
    return torch.as_tensor(feats), torch.as_tensor(mask)


def probe_dataset(canonical: Path, work: Path, args) -> dict:
    t0 = time.perf_counter()
    gt = load_ground_truth(canonical)
    scripts = json.loads((canonical / "scripts.json").read_text())
    priors = build_priors(canonical, work, args.draws)
    t_priors = time.perf_counter() - t0
    tp = load_text_priors(priors, gt["classes"])
    train = sorted(v for v, e in gt["database"].items() if e["subset"] == "train")
    split_rng = np.random.default_rng(args.seed)
    heldout = set(np.array(train)[split_rng.permutation(len(train))[: round(args.heldout * len(train))]].tolist())
    rows = Rows(priors, set(train))
    fit = [i for i, r in enumerate(rows.rows) if video_of(r["video_id"]) not in heldout]  # every draw
    test = [i for i, r in enumerate(rows.rows) if r["video_id"] in heldout]  # the first draw only
    store = FeatureStore.open(canonical)

    torch.manual_seed(args.seed)
    model = CompleteSemanticReconstruction(
        tp.word_vectors, tp.pad_id, tp.mask_id, store.feature_dim, dim=args.dim, heads=4, layers=2, ffn=2 * args.dim
    )
    # The class's A_CSR head is 512 wide (D x 512 and 512 x 512 k3 convolutions: 95% of a
    # step's FLOPs at these sizes); a narrower one keeps the probe to minutes on a CPU.  The
    # head's width does not decide whether the masked words need the video.
    model.attention = ConvAttention(store.feature_dim, hidden=args.attention_hidden)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed + 1)
    model.train()
    t1 = time.perf_counter()
    for step in range(args.steps):
        pick = [fit[j] for j in rng.choice(len(fit), args.batch, replace=False)]
        pairs = [rows.masked(i, rng) for i in pick]
        ids, padding = pad([p[0] for p in pairs], tp.pad_id)
        targets, _ = pad([p[1] for p in pairs], -100)
        feats, mask = video_batch(store, [video_of(rows.rows[i]["video_id"]) for i in pick], args.max_snippets, rng)
        loss = model.loss(model(feats, mask, ids, padding)["logits"], targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            print(f"  [{canonical}] step {step + 1}/{args.steps} train loss {loss.item():.3f}", file=sys.stderr)
    t_train = time.perf_counter() - t1

    facts, script_words = word_kinds(scripts)
    values = fact_values(scripts)
    model.eval()
    order = [test[j] for j in np.random.default_rng(args.seed + 2).permutation(len(test))]
    partner = {a: b for a, b in zip(order, order[1:] + order[:1])}  # another held-out video
    result: dict = {"dataset": gt["dataset"], "fit_rows": len(fit), "heldout_rows": len(test)}
    with torch.no_grad():
        for condition in ("own", "shuffled"):
            hits, nll, kinds, same_fact, graded = [], [], [], [], []
            for start in range(0, len(test), args.batch):
                chunk = test[start : start + args.batch]
                vids = [rows.rows[i if condition == "own" else partner[i]]["video_id"] for i in chunk]
                feats, mask = video_batch(store, vids, args.max_snippets, None)
                for r in range(args.eval_masks):
                    pairs = [
                        rows.masked(i, None if r == 0 else row_rng(args.seed, "probe", str(r), str(i))) for i in chunk
                    ]
                    ids, padding = pad([p[0] for p in pairs], tp.pad_id)
                    targets, _ = pad([p[1] for p in pairs], -100)
                    logits = model(feats, mask, ids, padding)["logits"]
                    sel = targets != -100
                    tgt = targets[sel]
                    nll += torch.nn.functional.cross_entropy(logits[sel], tgt, reduction="none").tolist()
                    hits += (logits[sel].argmax(-1) == tgt).tolist()
                    words = tp.decode(tgt.tolist())
                    kinds += ["fact" if w in facts else "script" if w in script_words else "other" for w in words]
                    said = tp.decode(logits[sel].argmax(-1).tolist())
                    graded += [w in values for w in words]
                    same_fact += [w in values and values[w] == values.get(p) for w, p in zip(words, said)]
            hits_a, nll_a, kinds_a = np.array(hits, float), np.array(nll), np.array(kinds)
            result[condition] = {"acc": hits_a.mean(), "loss": nll_a.mean(), "masked_words": len(hits_a)}
            for k in ("fact", "script", "other"):
                sel = kinds_a == k
                result[condition][f"acc_{k}"] = hits_a[sel].mean() if sel.any() else float("nan")
                result[condition][f"n_{k}"] = int(sel.sum())
            graded_a = np.array(graded, bool)
            # performer, colour and manner words, right when the prediction says the same fact
            result[condition]["acc_fact_value"] = (
                float(np.array(same_fact, float)[graded_a].mean()) if graded_a.any() else float("nan")
            )
            result[condition]["n_fact_value"] = int(graded_a.sum())
    result["seconds"] = {
        "priors": round(t_priors, 1),
        "train": round(t_train, 1),
        "total": round(time.perf_counter() - t0, 1),
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", required=True, help="canonical folder of a generated set")
    parser.add_argument("--workdir", default="/tmp/probe_csr", help="descriptions and text priors go here")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dim", type=int, default=128, help="CSR width (the demo's csr_dim)")
    parser.add_argument("--max-snippets", type=int, default=96, help="snippets sampled per video")
    parser.add_argument("--attention-hidden", type=int, default=64, help="width of the A_CSR conv head")
    parser.add_argument("--heldout", type=float, default=0.2, help="fraction of training videos held out")
    parser.add_argument("--eval-masks", type=int, default=5, help="masks per held-out description")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--draws", type=int, default=1, help="describer draws per description for fitting (held-out: the first)"
    )
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    results = []
    for folder in args.dataset:
        canonical = Path(folder)
        res = probe_dataset(canonical, Path(args.workdir) / canonical.parent.name, args)
        print(json.dumps(res, default=float))
        results.append(res)
    print(f"\n{platform.node()} {datetime.now(UTC):%Y-%m-%d}, torch {torch.__version__}, {args.steps} steps")
    head = (
        "| set | features | masked acc (own / shuffled) | loss (own / shuffled) | fact words "
        "| same fact (performer, colour, manner) | script words | other |"
    )
    print(head + "\n|" + "---|" * 8)
    for r in results:
        o, s = r["own"], r["shuffled"]

        def pair(key, o=o, s=s):
            return f"{o[key]:.3f} / {s[key]:.3f}" if o[f"n_{key[4:]}"] else "-"

        print(
            f"| `{r['dataset']}` | {r['heldout_rows']} held-out descr., {o['masked_words']} masked words "
            f"| {o['acc']:.3f} / {s['acc']:.3f} | {o['loss']:.3f} / {s['loss']:.3f} "
            f"| {pair('acc_fact')} | {pair('acc_fact_value')} ({o['n_fact_value']}) "
            f"| {pair('acc_script')} | {pair('acc_other')} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
