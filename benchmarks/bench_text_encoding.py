"""Text encoding against the machine's fp32 matmul rate: MiniLM's useful GFLOP/s over the GEMM's.

Encodes the distinct titles and queries of the training splits in `--data` (or a seeded sample
of `--texts` of them) with the project's own `TextEncoder.embed` (params.yaml `model.text`), for
each thread count of `--threads`. The machine's fp32 rate is measured around each encoding:
`--probes` square `torch.mm`s of size `--gemm` just before and just after it, at the same thread
count, so both see the same load on a shared machine. The table holds the round (of `--rounds`)
with the best ratio, and the ratio to the fastest single GEMM too; the ratio of every round is
printed below it.

Useful FLOPs come from the model config (see `minilm_flops`) at each text's real token count;
the padding the batches add is counted apart, as waste, and not credited. Then `--single` texts
are encoded one at a time (a new query at the ranking service): `embed` against HF's forward.

    .venv/bin/python benchmarks/bench_text_encoding.py [--data data/training] [--texts N]
        [--threads 1 2] [--rounds 3] [--single 200] [--profile]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mtlrec.config import load_params
from mtlrec.host import read_host
from mtlrec.model.text import TextEncoder, build_text_encoder
from mtlrec.tokens import clean_text

TEXT_COLUMNS = ("query", "item_profile__title")
SPLITS = ("train", "valid", "test")


def minilm_flops(lengths: np.ndarray, config: object) -> float:
    """FLOPs of the transformer layers for sequences of `lengths` tokens (a multiply-add is 2).

    Per layer and sequence of L tokens, hidden H, intermediate I:
        Q, K, V and output projections   4 x 2 L H^2
        feed-forward (H -> I -> H)        2 x 2 L H I
        attention scores Q K^T            2 L^2 H
        attention-weighted sum of V       2 L^2 H
    i.e. 8 L H^2 + 4 L H I + 4 L^2 H, times the number of layers. Embedding lookups, layer
    norms, softmax, GELU, biases and the mean pooling are not counted (O(L H) each).
    """
    h, i = config.hidden_size, config.intermediate_size
    lengths = lengths.astype(np.float64)
    per_layer = 8 * lengths * h * h + 4 * lengths * h * i + 4 * lengths**2 * h
    return float(per_layer.sum() * config.num_hidden_layers)


def distinct_texts(data: Path) -> list[str]:
    """The cleaned, distinct, non-empty titles and queries of the splits, sorted."""
    texts: set[str] = set()
    for split in SPLITS:
        frame = pd.read_parquet(data / f"{split}.parquet", columns=list(TEXT_COLUMNS))
        for column in TEXT_COLUMNS:
            texts.update(t for t in map(clean_text, frame[column].unique()) if t is not None)
    return sorted(texts)


class GemmProbe:
    """Times square fp32 `torch.mm`s of size n at the current thread count: the machine's rate."""

    def __init__(self, n: int) -> None:
        self.a, self.b = torch.randn(n, n), torch.randn(n, n)
        self.flops = 2 * n**3
        self.seconds: list[float] = []

    def __call__(self, repeats: int) -> None:
        for _ in range(repeats):
            started = time.perf_counter()
            torch.mm(self.a, self.b)
            self.seconds.append(time.perf_counter() - started)


def count_positions(encoder: TextEncoder, texts: list[str]) -> int:
    """Token positions the encoder's batches run (padding included), seen by a hook on the
    word embeddings (HF's forward and `frozen_forward` both look every position up there)."""
    positions = 0

    def record(module: torch.nn.Module, args: tuple) -> None:
        nonlocal positions
        positions += args[0].numel()  # (b, L) ids

    handle = encoder.bert.embeddings.word_embeddings.register_forward_pre_hook(record)
    try:
        encoder.embed(texts)
    finally:
        handle.remove()
    return positions


def encode_round(
    encoder: TextEncoder, texts: list[str], probe: GemmProbe, repeats: int
) -> tuple[float, float]:
    """Seconds of one encoding, and the GEMM rate (GFLOP/s) of the probes just before and after.

    A shared machine's load changes by the second: the round's ratio compares the encoding with
    the rate the machine gave at that time.
    """
    probe.seconds.clear()
    probe(repeats)
    started = time.perf_counter()
    encoder.embed(texts)
    seconds = time.perf_counter() - started
    probe(repeats)
    return seconds, probe.flops * len(probe.seconds) / sum(probe.seconds) / 1e9


def measure(
    args: argparse.Namespace, encoder: TextEncoder, texts: list[str], gflop: float, threads: int
) -> dict:
    torch.set_num_threads(threads)
    probe = GemmProbe(args.gemm)
    encoder.embed(texts[: 4 * encoder.cfg.batch_size])  # warm-up: kernels, allocator
    probe(1)
    rounds, fastest = [], float("inf")
    for _ in range(args.rounds):
        rounds.append(encode_round(encoder, texts, probe, args.probes))
        fastest = min(fastest, *probe.seconds)
    seconds, machine = min(rounds, key=lambda r: r[0] * r[1])  # the best ratio
    return {
        "threads": threads,
        "seconds": seconds,
        "machine": machine,
        "best_probe": probe.flops / fastest / 1e9,
        "ratios": [gflop / (s * m) for s, m in rounds],
    }


def one_at_a_time(encoder: TextEncoder, texts: list[str], n: int) -> dict[str, list[float]]:
    """Milliseconds to encode each of `n` texts alone (a new query at the ranking service), one
    thread: the project's `embed`, and HF's forward with the same pooling, alternating."""
    torch.set_num_threads(1)
    sample = random.Random(1).sample(texts, min(n, len(texts)))
    encoder.eval()

    def hf(text: str) -> None:
        with torch.inference_mode():
            encoder(*encoder.tokenize([text]))

    times: dict[str, list[float]] = {"embed": [], "HF forward": []}
    for text in sample:
        for name, encode in (("embed", lambda t: encoder.embed([t])), ("HF forward", hf)):
            started = time.perf_counter()
            encode(text)
            times[name].append((time.perf_counter() - started) * 1e3)
    return times


def profile(encoder: TextEncoder, texts: list[str], threads: int) -> None:
    """Self CPU time per operator for one encoding (torch.profiler)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(threads)
    encoder.embed(texts[: 4 * encoder.cfg.batch_size])
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        encoder.embed(texts)
    print(f"\nprofile, {threads} thread(s):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data/training"))
    parser.add_argument("--texts", type=int, default=None, help="a seeded sample of N texts")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--probes", type=int, default=3, help="GEMMs before and after each round")
    parser.add_argument("--gemm", type=int, default=2048, help="size of the square probe GEMM")
    parser.add_argument("--profile", action="store_true", help="also print a torch.profiler table")
    parser.add_argument("--single", type=int, default=200, help="texts timed one at a time")
    args = parser.parse_args()
    texts = distinct_texts(args.data)
    if args.texts is not None and args.texts < len(texts):
        texts = sorted(random.Random(0).sample(texts, args.texts))
    encoder = build_text_encoder(load_params(args.params).model.text)
    config = encoder.bert.config
    ids = encoder.tokenizer(texts, truncation=True, max_length=encoder.cfg.max_length)["input_ids"]
    lengths = np.array([len(row) for row in ids])
    tokens, positions = int(lengths.sum()), count_positions(encoder, texts)
    useful = minilm_flops(lengths, config) / 1e9
    threads = dict.fromkeys(args.threads)
    results = [measure(args, encoder, texts, useful, n) for n in threads]
    print(f"MiniLM: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
          f"intermediate {config.intermediate_size}, {config.num_attention_heads} heads; "
          f"max_length {encoder.cfg.max_length}, batch_size {encoder.cfg.batch_size}")  # fmt: skip
    print("\n| threads | texts | tokens | padding tokens (waste) | GFLOP useful | seconds "
          "| GFLOP/s | machine GFLOP/s | ratio | best GEMM GFLOP/s | ratio to best |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for r in results:
        achieved = useful / r["seconds"]
        print(f"| {r['threads']} | {len(texts):,} | {tokens:,} | {positions - tokens:,} "
              f"({(positions - tokens) / positions:.1%}) | {useful:,.1f} | {r['seconds']:.2f} "
              f"| {achieved:,.1f} | {r['machine']:,.1f} | {achieved / r['machine']:.1%} "
              f"| {r['best_probe']:,.1f} | {achieved / r['best_probe']:.1%} |")  # fmt: skip
    print(
        f"\nThe best of {args.rounds} rounds; machine GFLOP/s: the {args.probes} GEMMs "
        f"({args.gemm}^3) before and after that round's encoding, all their FLOPs over all "
        "their time; best GEMM: the fastest single one of all rounds."
    )
    for r in results:
        print(
            f"ratio per round, {r['threads']} thread(s): "
            + ", ".join(f"{ratio:.1%}" for ratio in r["ratios"])
        )
    print(f"host: {read_host()}")
    if args.single:
        print(f"\n| one text at a time, 1 thread ({args.single} texts) | median ms | p90 ms |\n"
              "|---|---|---|")  # fmt: skip
        for name, ms in one_at_a_time(encoder, texts, args.single).items():
            print(f"| {name} | {np.median(ms):.2f} | {np.percentile(ms, 90):.2f} |")
    if args.profile:
        for n in threads:
            profile(encoder, texts, n)


if __name__ == "__main__":
    main()
