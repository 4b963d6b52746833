"""The multi-task model: shared input representation -> bottom -> one tower per task.

Inputs: embeddings of ids and categoricals, optionally their pairwise inner products (IPNN: Qu et
al., "Product-based Neural Networks for User Response Prediction", ICDM 2016), standardised
numerics (with missing flags), a projection of every text feature's sentence embedding, and
query-text interactions (cosine similarity and a projected elementwise product of the `query` with
each other text; zero when the query is null).
CVR follows ESMM (Ma et al., "Entire Space Multi-Task Model", SIGIR 2018): p_ctcvr = p_ctr * p_cvr
is trained on all impressions, so the CVR tower is never fitted on the clicked rows alone.
Bias features (the list position) skip the bottom and add a learned bias to the ctr logit only: a
shallow tower (Zhao et al., "Recommending What Video to Watch Next", RecSys 2019). Clicks depend on
where an item was shown, purchases given a click do not; the towers then learn the position-free
propensities and serving can rank with the bias left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mtlrec.config import ModelConfig
from mtlrec.model.inputs import ModelInputs, query_cosines
from mtlrec.model.layers import Embedding, FactoredInput, GatheredBlock, set_train_dtype
from mtlrec.model.match import n_match_features, n_term_features
from mtlrec.model.mmoe import MMoE
from mtlrec.model.ple import PLE
from mtlrec.model.shared_bottom import SharedBottom
from mtlrec.model.spec import FeatureSpec
from mtlrec.model.tasks import RELEVANCE_MAX, task_specs
from mtlrec.model.terms import TermGating
from mtlrec.model.text import TextEncoder, build_text_encoder
from mtlrec.model.text_cache import encoder_dim
from mtlrec.model.towers import Tower

EMBEDDING_INIT_STD = 0.05  # small: rarely seen hash buckets should start close to "no signal"
PRIOR_CLAMP = 1e-4  # keeps the logit of a label prior finite


@dataclass(frozen=True)
class TaskOutputs:
    """Raw outputs of the configured tasks; None for a task the model does not have."""

    ctr_logit: torch.Tensor | None = None  # (B,)
    cvr_logit: torch.Tensor | None = None  # (B,)
    relevance: torch.Tensor | None = None  # (B,) graded 0..3

    @property
    def p_ctr(self) -> torch.Tensor | None:
        return None if self.ctr_logit is None else torch.sigmoid(self.ctr_logit)

    @property
    def p_cvr(self) -> torch.Tensor | None:
        return None if self.cvr_logit is None else torch.sigmoid(self.cvr_logit)

    @property
    def log_p_ctcvr(self) -> torch.Tensor | None:
        """log(p_ctr * p_cvr), exact in log space: a product of tiny probabilities stays finite."""
        if self.ctr_logit is None or self.cvr_logit is None:
            return None
        return F.logsigmoid(self.ctr_logit) + F.logsigmoid(self.cvr_logit)  # (B,)

    @property
    def p_ctcvr(self) -> torch.Tensor | None:
        log_p = self.log_p_ctcvr
        return None if log_p is None else torch.exp(log_p)


class FieldEmbedding(nn.Module):
    """All id/categorical fields in one table (row offsets per field): one gather per batch."""

    def __init__(self, field_sizes: list[int], dim: int) -> None:
        super().__init__()
        offsets = torch.tensor([0, *field_sizes[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets[: len(field_sizes)], persistent=False)
        self.sizes = list(field_sizes)
        self.table = Embedding(max(sum(field_sizes), 1), dim)
        nn.init.normal_(self.table.weight, std=EMBEDDING_INIT_STD)
        self.out_dim = len(field_sizes) * dim

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        rows = fields + self.offsets  # (B, F)
        return self.table(rows)  # (B, F, E)

    def blocks(self, fields: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per field: its rows of the table, (V_f, E), and each row's value in them (B,).

        A field with more values than the batch has rows (hashed ids: `hash_buckets` + 1)
        gives the batch's distinct values' rows instead, (U_f <= B, E), and each row's place
        among them: a factored first layer multiplies every row of a block, and the whole
        slice of a 20,001-bucket id is ~10x a 2,048-row batch. With `model.id_embeddings` an
        fp32 step took 217.3 ms with the slices, 36.3 with these (Zen 5 held to AVX2)."""
        weight, at = self.table.weight, 0
        out = []
        for f, size in enumerate(self.sizes):
            values = fields[:, f]
            if size > len(fields):
                distinct, index = torch.unique(values, return_inverse=True)
                out.append((weight.index_select(0, distinct + at), index))
            else:
                out.append((weight[at : at + size], values))
            at += size
        return out


class _PairProducts(torch.autograd.Function):
    """The upper triangle of each row's Gram matrix, (B, F, E) -> (B, P), with one batched
    product each way: the gradient is (G + G^T) @ e for G the pairs' gradient placed in both
    triangles (a (B, P) x (P, F * F) product with a 0/1 matrix: exact, and a fraction of an
    `index_copy_` along a row's columns), where autograd's bmm backward takes two products and
    their sum, after an `index_add_` into a zero Gram matrix."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, embedded: torch.Tensor, pairs: torch.Tensor, placement: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(embedded, placement)
        gram = torch.bmm(embedded, embedded.transpose(1, 2))  # (B, F, F)
        return gram.flatten(1).index_select(1, pairs)  # (B, P)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        embedded, placement = ctx.saved_tensors
        batch, n_fields, _ = embedded.shape
        placed = torch.mm(grad, placement.to(grad.dtype))  # (B, F * F): G + G^T
        return torch.bmm(placed.view(batch, n_fields, n_fields), embedded), None, None


class InnerProducts(nn.Module):
    """<e_i, e_j> for every pair of fields i < j (IPNN's product layer).

    One batched product of each row's (F, E) embeddings with themselves, then its upper
    triangle: the F x F products cost less than gathering both sides of the P pairs (two
    (B, P, E) copies, and two scattered adds in the backward). 6 fields, 1,024 rows, one
    thread: 0.8 ms forward and backward against 1.7 ms."""

    def __init__(self, n_fields: int) -> None:
        super().__init__()
        left, right = torch.triu_indices(n_fields, n_fields, offset=1)  # (P,), (P,)
        self.register_buffer("pairs", left * n_fields + right, persistent=False)
        # (P, F * F): pair p's gradient goes to both (i, j) and (j, i) of the Gram matrix.
        placement = torch.zeros(len(left), n_fields * n_fields)
        placement[torch.arange(len(left)), left * n_fields + right] = 1.0
        placement[torch.arange(len(left)), right * n_fields + left] = 1.0
        self.register_buffer("placement", placement, persistent=False)
        self.out_dim = len(left)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        return _PairProducts.apply(embedded, self.pairs, self.placement)  # (B, F, E) -> (B, P)


class BiasTower(nn.Module):
    """A learned scalar per value of each bias field, summed: a logit offset (B,)."""

    def __init__(self, field_sizes: list[int]) -> None:
        super().__init__()
        offsets = torch.tensor([0, *field_sizes[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets[: len(field_sizes)], persistent=False)
        self.table = Embedding(max(sum(field_sizes), 1), 1)
        nn.init.zeros_(self.table.weight)  # no position effect until the data shows one

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        return self.table(fields + self.offsets).sum(dim=(1, 2))  # (B, K) -> (B,)


def split_fields(spec: FeatureSpec, bias_features: tuple[str, ...]) -> tuple[list[int], list[int]]:
    """Column indices of the bottom's fields and of the bias tower's fields."""
    names = spec.field_names
    unknown = [name for name in bias_features if name not in names]
    if unknown:
        raise ValueError(f"bias_features {unknown} are not id/categorical fields of {names}")
    bias = [names.index(name) for name in bias_features]
    return [i for i in range(len(names)) if i not in bias], bias


def build_bottom(
    cfg: ModelConfig, in_dim: int, n_tasks: int, data_columns: Sequence[tuple[int, int]] = ()
) -> SharedBottom | MMoE | PLE:
    """The configured bottom; for PLE, `n_experts` is the number of experts of each task.
    `data_columns`: the (start, stop) column ranges of its input that are data (no parameter
    behind them), to which it sends no gradient."""
    read_only = [t for t, name in enumerate(cfg.tasks) if name in cfg.read_only_tasks]
    if len(read_only) == n_tasks:  # someone must write the shared representation: a single task
        read_only = []
    dropout = cfg.dropout if cfg.bottom_dropout is None else cfg.bottom_dropout
    if cfg.bottom == "mmoe":
        return MMoE(
            in_dim, cfg.n_experts, cfg.expert_dims, n_tasks, dropout, read_only, data_columns
        )
    if cfg.bottom == "ple":
        return PLE(
            in_dim,
            cfg.n_experts,
            cfg.n_shared_experts,
            cfg.expert_dims,
            n_tasks,
            dropout,
            read_only,
            data_columns,
        )
    return SharedBottom(in_dim, cfg.bottom_dims, n_tasks, dropout, read_only, data_columns)


def build_term_gating(cfg: ModelConfig, spec: FeatureSpec) -> TermGating | None:
    """The term gating block when configured and the schema has a query and another text."""
    width = n_term_features(len(spec.texts), spec.query_index)
    if not cfg.text.term_gating or width == 0:
        return None
    return TermGating(encoder_dim(cfg.text), width, cfg.text_dim, cfg.text.term_buckets)


class TextFeatures(nn.Module):
    """Per-text projections plus query x text interactions (cosine, projected product)."""

    def __init__(self, n_texts: int, query_index: int | None, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.projections = nn.ModuleList(nn.Linear(in_dim, out_dim) for _ in range(n_texts))
        self.query_index = query_index
        self.partners = [t for t in range(n_texts) if query_index is not None and t != query_index]
        # No bias: a null (zero) text then gives a zero product, whatever was learned.
        self.pair_projection = nn.Linear(in_dim, out_dim, bias=False)
        self.out_dim = n_texts * out_dim + len(self.partners) * (out_dim + 1)

    def forward(
        self,
        distinct: torch.Tensor,
        index: torch.Tensor,
        present: torch.Tensor,
        spans: tuple[int, ...] = (),
        cosines: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`distinct` (U, D): the batch's distinct texts, a null text's row zero (the text
        table's row 0; `MultiTaskModel.text_embeddings` zeroes an encoder's); `index` (B, T):
        each row's text in it; `present` (B, T): the text is non-null; `spans`: column t's
        texts are rows spans[t]:spans[t + 1] (empty: any row). Each projection runs once per
        distinct text of its column (a few hundred a batch, not B x T), then is gathered per
        row. A null text's zero row projects to the bias, and to zero in the bias-free pair
        projection, with no mask: a mask or `torch.where` over the (B, K) gathers cost ~1 ms of
        a 2,048-row training step (one thread), forward and backward. `cosines` (B, P): the
        query-text cosines when the caller has them (`inputs.query_cosines`)."""
        # Gathers are `index_select`: the backward of `x[rows]` is an accumulating `index_put_`,
        # which deterministic mode runs by sorting the rows first; `index_select`'s is one
        # `index_add_` in row order, the same sums (a step 0.2-0.3 ms shorter with the other
        # gathers of the forward, the trained weights bit for bit the same).
        parts = [rows.index_select(0, at) for rows, at in self.projected(distinct, index, spans)]
        parts.append(self.interactions(distinct, index, present, cosines))
        return torch.cat(parts, dim=-1)  # (B, out_dim)

    def projected(
        self, distinct: torch.Tensor, index: torch.Tensor, spans: tuple[int, ...] = ()
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per text column: its distinct texts projected, (U_t, out_dim), and each row's in them
        (B,): the first `n_texts * out_dim` output columns are these, gathered."""
        out = []
        for t, proj in enumerate(self.projections):
            start, stop = (spans[t], spans[t + 1]) if spans else (0, len(distinct))
            out.append((proj(distinct[start:stop]), index[:, t] - start))
        return out

    def interactions(
        self,
        distinct: torch.Tensor,
        index: torch.Tensor,
        present: torch.Tensor,
        cosines: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, the output columns after the projections): per partner text, its cosine with the
        query and the product of their pair projections."""
        parts = []
        if self.partners:
            q = self.query_index
            if cosines is None:
                cosines = query_cosines(distinct, index, present, q)  # (B, P)
            pair = self.pair_projection(distinct)  # (U, K), no bias: zero for a null text
            query_proj = pair.index_select(0, index[:, q])  # (B, K)
            for p, t in enumerate(self.partners):
                matched = query_proj * pair.index_select(0, index[:, t])  # (B, K)
                parts += [cosines[:, p : p + 1], matched]
        if not parts:
            return distinct.new_zeros((index.shape[0], 0))
        return torch.cat(parts, dim=-1)


class MultiTaskModel(nn.Module):
    """Embeddings + dense + text -> bottom (shared_bottom | mmoe | ple) -> a tower per task."""

    def __init__(
        self, cfg: ModelConfig, spec: FeatureSpec, text_encoder: TextEncoder | None = None
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.tasks = task_specs(cfg.tasks)
        main, bias = split_fields(spec, cfg.bias_features)
        self.register_buffer("main_fields", torch.tensor(main, dtype=torch.long), persistent=False)
        self.register_buffer("bias_fields", torch.tensor(bias, dtype=torch.long), persistent=False)
        self.embedding = FieldEmbedding([spec.field_sizes[f] for f in main], cfg.embedding_dim)
        self.products = InnerProducts(len(main)) if cfg.field_interactions else None
        has_ctr = any(task.name == "ctr" for task in self.tasks)
        sizes = [spec.field_sizes[f] for f in bias]
        self.bias = BiasTower(sizes) if bias and has_ctr else None
        self.text_encoder: TextEncoder | None = None
        if cfg.text.finetune_layers > 0:  # only a trained encoder is part of the model
            self.text_encoder = (
                text_encoder if text_encoder is not None else build_text_encoder(cfg.text)
            )
        text_in = encoder_dim(cfg.text)
        self.text = TextFeatures(len(spec.texts), spec.query_index, text_in, cfg.text_dim)
        products = self.products.out_dim if self.products is not None else 0
        self.n_match = 0
        if cfg.text.word_match:
            self.n_match = n_match_features(len(spec.texts), spec.query_index)
        self.terms = build_term_gating(cfg, spec)
        term_dim = self.terms.out_dim if self.terms is not None else 0
        # `features`' columns in its order, and whether each part is data (no gradient).
        parts = [
            (self.embedding.out_dim, False),
            (spec.dense_dim, True),
            (self.text.out_dim, False),
            (products, False),
            (self.n_match, True),
            (term_dim, False),
        ]
        self.in_dim = sum(width for width, _ in parts)
        starts = [sum(width for width, _ in parts[:i]) for i in range(len(parts))]
        self.data_columns = tuple(
            (start, start + width)
            for start, (width, data) in zip(starts, parts, strict=True)
            if data and width
        )
        self.bottom = build_bottom(cfg, self.in_dim, len(self.tasks), self.data_columns)
        # While training, the columns of each field's embedding and each text's projection are
        # multiplied once per distinct value and gathered (`layers.FactoredInput`), by the
        # bottoms whose first layer is `joint_product`'s, in fp32 only: the banks' default,
        # which `set_train_dtype` (the one place that decides it) sets here.
        self.set_train_dtype(torch.float32)
        # (start, width) of each gathered block: a field's embedding, a text's projection.
        blocks = [(f * cfg.embedding_dim, cfg.embedding_dim) for f in range(len(main))]
        blocks += [(starts[2] + t * cfg.text_dim, cfg.text_dim) for t in range(len(spec.texts))]
        self.gathered_starts = [start for start, _ in blocks]
        gathered = {c for start, width in blocks for c in range(start, start + width)}
        rest = [c for c in range(self.in_dim) if c not in gathered]
        self.rest_data_columns = tuple(
            (rest.index(start), rest.index(stop - 1) + 1) for start, stop in self.data_columns
        )
        self.towers = nn.ModuleDict(
            {
                task.name: Tower(self.bottom.out_dim, cfg.tower_dims, cfg.dropout)
                for task in self.tasks
            }
        )

    def text_embeddings(self, inputs: ModelInputs) -> torch.Tensor:
        """The batch's distinct texts, (U, D)."""
        if inputs.text_embeddings is not None:
            return inputs.text_embeddings  # from the frozen cache
        if self.text_encoder is None or inputs.text_tokens is None:
            raise ValueError("inputs carry neither text embeddings nor tokens for the encoder")
        tokens = inputs.text_tokens
        encoded = self.text_encoder(tokens.input_ids, tokens.attention_mask)  # (U, D)
        # A null text reads as zero (`TextFeatures`), as the frozen table's row 0 does; the
        # encoder gives the empty string a vector of its own.
        index = inputs.text_index[inputs.text_present]
        known = encoded.new_zeros((len(encoded), 1)).index_fill_(0, index, 1.0)
        return encoded * known

    def features(self, inputs: ModelInputs, factored: bool = False) -> torch.Tensor | FactoredInput:
        """The bottom's input x (B, in_dim); `factored`: as a `FactoredInput`, its fields' and
        texts' projections' columns as rows of small matrices with each row's index."""
        distinct = self.text_embeddings(inputs)
        fields = inputs.fields.index_select(1, self.main_fields)  # (B, F)
        embedded = self.embedding(fields)  # (B, F, E)
        index, present = inputs.text_index, inputs.text_present
        projected = self.text.projected(distinct, index, inputs.text_spans)
        interactions = self.text.interactions(distinct, index, present, inputs.text_cosines)
        tail = [inputs.dense, interactions]  # the order of `data_columns` (__init__)
        if self.products is not None:
            tail.append(self.products(embedded))  # (B, F * (F - 1) / 2)
        if self.n_match:
            if inputs.match is None or inputs.match.shape[1] != self.n_match:
                raise ValueError(f"the model reads {self.n_match} word-match features per row")
            tail.append(inputs.match)  # (B, M)
        if self.terms is not None:
            if inputs.terms is None:
                raise ValueError("the model reads per-term query matches (text.term_gating)")
            tail.append(self.terms(inputs.terms))  # (B, text_dim)
        if factored:
            pieces = [*self.embedding.blocks(fields), *projected]
            blocks = tuple(
                GatheredBlock(start, rows, at)
                for start, (rows, at) in zip(self.gathered_starts, pieces, strict=True)
            )
            rest = torch.cat(tail, dim=-1)
            return FactoredInput(rest, blocks, self.rest_data_columns)
        texts = [rows.index_select(0, at) for rows, at in projected]  # (B, text_dim) each
        # (B, F * E), (B, Dd), (B, text out), the rest
        return torch.cat([embedded.flatten(1), tail[0], *texts, *tail[1:]], dim=-1)

    def set_train_dtype(self, dtype: torch.dtype, numpy_blas: bool = False) -> None:
        """Train the bottom's first layer with products in `dtype` (`layers.set_train_dtype`),
        its gathered columns (`features(factored=True)`) in fp32 only.

        Why not in bf16: the gathered columns trade a part of one product for fp32 gathers and
        sums over the batch, which pays where the product is slow. A 2,048-row step of the
        default PLE (one thread, alternating every ten steps): Zen 4 fp32 in numpy's BLAS 49.4
        -> 39.6 ms, Intel Xeon with AMX fp32 62.2 -> 60.1; in bf16 Zen 4 34.3 -> 33.3, but the
        Intel host 45.6 -> 56.9 ms (its bf16 product of all 313 columns 2.5 ms, of the other
        153 1.9, and the fp32 sums' memory traffic more than the rest)."""
        set_train_dtype(self.bottom, dtype, numpy_blas)
        self.factored = isinstance(self.bottom, MMoE | PLE) and dtype == torch.float32

    @torch.no_grad()
    def init_output_biases(self, priors: dict[str, float]) -> None:
        """Start each tower at its label prior (a click rate of 4%, not 50%): no early epoch is
        spent, and no embedding distorted, learning the base rate."""
        for task in self.tasks:
            if task.name not in priors:
                continue
            prior = priors[task.name] / (RELEVANCE_MAX if task.name == "relevance" else 1.0)
            prior = min(max(prior, PRIOR_CLAMP), 1.0 - PRIOR_CLAMP)
            self.towers[task.name].head.bias.fill_(math.log(prior / (1.0 - prior)))

    def forward(self, inputs: ModelInputs) -> TaskOutputs:
        factored = self.factored and self.training and torch.is_grad_enabled()
        hidden = self.bottom(self.features(inputs, factored))  # n_tasks x (B, H)
        raw = {
            task.name: self.towers[task.name](h)  # (B,)
            for task, h in zip(self.tasks, hidden, strict=True)
        }
        if "ctr" in raw and self.bias is not None:
            raw["ctr"] = raw["ctr"] + self.bias(inputs.fields.index_select(1, self.bias_fields))
        relevance = raw.get("relevance")
        return TaskOutputs(
            ctr_logit=raw.get("ctr"),
            cvr_logit=raw.get("cvr"),
            relevance=None if relevance is None else RELEVANCE_MAX * torch.sigmoid(relevance),
        )
