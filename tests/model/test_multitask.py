"""The full model: built from the schema alone, ESMM outputs, task subsets, text interactions,
field products, the position-bias tower, label-prior init and the word-match input."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from mtlrec.config import ModelConfig
from mtlrec.model.inputs import ModelInputs, TensorFrame, tensor_frame
from mtlrec.model.match import KERNELS
from mtlrec.model.multitask import MultiTaskModel
from mtlrec.model.spec import FeatureSpec, SchemaFeature
from mtlrec.model.text import build_text_table
from mtlrec.training.synthetic import SCHEMA, synthetic_frame
from tests.plain import plain_model, plain_text

SCHEMA_FEATURES = [SchemaFeature(f["name"], f["kind"]) for f in SCHEMA]


def tiny_cfg(**overrides: object) -> ModelConfig:
    base = dict(
        embedding_dim=4, hash_buckets=64, text_dim=4, bottom_dims=(8,), n_experts=2,
        n_shared_experts=1, expert_dims=(8,), tower_dims=(4,), dropout=0.0,
        text=plain_text(encoder="tiny", max_length=16),
    )  # fmt: skip
    return plain_model(**{**base, **overrides})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_frame(48, 16, seed=5)


@pytest.fixture(scope="module")
def spec(frame: pd.DataFrame) -> FeatureSpec:
    return FeatureSpec.fit(SCHEMA_FEATURES, frame, hash_buckets=64)


@pytest.fixture(scope="module")
def inputs(frame: pd.DataFrame, spec: FeatureSpec, tmp_path_factory) -> ModelInputs:
    encoded = spec.encode(frame)
    cache = tmp_path_factory.mktemp("cache")
    table = build_text_table(encoded.strings, tiny_cfg().text, cache)
    return TensorFrame.build(encoded, table).inputs(torch.arange(len(frame)))


@pytest.mark.parametrize("bottom", ["shared_bottom", "mmoe", "ple"])
def test_forward_shapes_per_bottom(spec: FeatureSpec, inputs: ModelInputs, bottom: str) -> None:
    outputs = MultiTaskModel(tiny_cfg(bottom=bottom), spec)(inputs)
    n_rows = len(inputs)
    assert outputs.ctr_logit.shape == outputs.cvr_logit.shape == (n_rows,)
    assert ((outputs.relevance >= 0) & (outputs.relevance <= 3)).all()


def test_esmm_ctcvr_is_ctr_times_cvr(spec: FeatureSpec, inputs: ModelInputs) -> None:
    outputs = MultiTaskModel(tiny_cfg(), spec)(inputs)
    torch.testing.assert_close(outputs.p_ctcvr, outputs.p_ctr * outputs.p_cvr)


def test_task_subset_has_only_its_heads(spec: FeatureSpec, inputs: ModelInputs) -> None:
    model = MultiTaskModel(tiny_cfg(tasks=("relevance",)), spec)
    outputs = model(inputs)
    assert outputs.ctr_logit is None and outputs.p_ctcvr is None
    assert list(model.towers) == ["relevance"]


def test_new_schema_column_grows_the_input(frame: pd.DataFrame, spec: FeatureSpec) -> None:
    wider = frame.assign(item_profile__rating=range(len(frame)), item_profile__brand="acme")
    extra = [SchemaFeature("item_profile__rating", "numeric"),
             SchemaFeature("item_profile__brand", "categorical")]  # fmt: skip
    wider_spec = FeatureSpec.fit(SCHEMA_FEATURES + extra, wider, hash_buckets=64)
    base = MultiTaskModel(tiny_cfg(), spec).in_dim
    assert MultiTaskModel(tiny_cfg(), wider_spec).in_dim == base + 2 + 4  # numeric+flag, embedding


def test_query_interactions_vanish_without_query(spec: FeatureSpec, inputs: ModelInputs) -> None:
    model = MultiTaskModel(tiny_cfg(), spec)
    feed = inputs.text_present[:, 0] == 0  # rows with a null query
    assert feed.any() and (~feed).any()
    text = model.text(inputs.text_embeddings, inputs.text_index, inputs.text_present)  # (B, 13)
    interactions = text[:, 2 * 4 :]  # cosine + projected product
    assert torch.count_nonzero(interactions[feed]) == 0
    assert torch.count_nonzero(interactions[~feed]) > 0


def test_text_features_of_distinct_texts_equal_the_per_row_ones(
    spec: FeatureSpec, inputs: ModelInputs
) -> None:
    """Projecting each distinct text once, then gathering, is the per-row computation."""
    module = MultiTaskModel(tiny_cfg(), spec).text
    present = inputs.text_present
    rows = inputs.text_embeddings[inputs.text_index] * present.unsqueeze(-1)  # (B, T, D)
    expected = [proj(rows[:, t]) for t, proj in enumerate(module.projections)]
    query = rows[:, module.query_index]
    for t in module.partners:
        cosine = torch.nn.functional.cosine_similarity(query, rows[:, t], dim=-1, eps=1e-8)
        pair = module.pair_projection(query) * module.pair_projection(rows[:, t])
        expected += [cosine.unsqueeze(-1), pair]
    assert inputs.text_embeddings.shape[0] < inputs.text_index.numel()  # texts do repeat
    spans = inputs.text_spans
    for t in range(present.shape[1]):  # each column reads its own block of distinct texts
        index = inputs.text_index[:, t]
        assert spans[t] <= int(index.min()) and int(index.max()) < spans[t + 1]
    actual = module(inputs.text_embeddings, inputs.text_index, present, spans)
    torch.testing.assert_close(actual, torch.cat(expected, dim=-1))
    anywhere = module(inputs.text_embeddings, inputs.text_index, present)  # no spans: any row
    torch.testing.assert_close(anywhere, actual)


def test_frozen_cosines_are_computed_once_per_frame_and_equal_the_models(
    frame: pd.DataFrame, spec: FeatureSpec, inputs: ModelInputs, tmp_path: Path
) -> None:
    module = MultiTaskModel(tiny_cfg(), spec).text
    rows = torch.arange(len(frame)).flip(0)[:20]
    batch = tensor_frame(spec, tiny_cfg(), frame, tmp_path).inputs(rows)
    assert batch.text_cosines is not None and batch.text_cosines.shape == (20, 1)
    assert batch.text_cosines.abs().sum() > 0
    args = (batch.text_embeddings, batch.text_index, batch.text_present, batch.text_spans)
    computed = module(*args)  # the cosines from the batch's texts
    assert torch.equal(module(*args, batch.text_cosines), computed)
    assert inputs.text_cosines is None  # TensorFrame.build without them: the model computes


def finetuned(
    frame: pd.DataFrame, spec: FeatureSpec, cache: Path, n_rows: int
) -> tuple[MultiTaskModel, ModelInputs]:
    """A model that fine-tunes its text encoder, and a batch of the frame's first rows.

    Its initialisation is seeded: with the global generator as earlier tests in the process
    left it, 16 of 400 seeds gave weights through whose ReLUs no gradient of these 8 rows'
    ctr logit reached the encoder (CI failed on one such order)."""
    torch.manual_seed(0)
    cfg = tiny_cfg(text=plain_text(encoder="tiny", max_length=16, finetune_layers=1))
    model = MultiTaskModel(cfg, spec)
    encoded = spec.encode(frame)
    table = build_text_table(encoded.strings, cfg.text, cache, model.text_encoder)
    return model, TensorFrame.build(encoded, table).inputs(torch.arange(n_rows))


def test_finetuned_encoder_is_part_of_the_model(
    frame: pd.DataFrame, spec: FeatureSpec, tmp_path: Path
) -> None:
    model, batch = finetuned(frame, spec, tmp_path, 8)
    assert batch.text_embeddings is None and batch.text_tokens is not None
    model(batch).ctr_logit.sum().backward()
    top = model.text_encoder.bert.encoder.layer[-1].attention.self.query.weight
    assert top.grad is not None and torch.count_nonzero(top.grad) > 0
    assert any(name.startswith("text_encoder.") for name in model.state_dict())


def test_a_finetuned_encoder_s_null_texts_read_as_zero(
    frame: pd.DataFrame, spec: FeatureSpec, tmp_path: Path
) -> None:
    """As the frozen table's row 0: the text features then need no mask for a null text."""
    model, batch = finetuned(frame, spec, tmp_path, len(frame))
    distinct = model.text_embeddings(batch)
    null = batch.text_index[~batch.text_present].unique()
    known = batch.text_index[batch.text_present].unique()
    assert len(null) and torch.count_nonzero(distinct[null]) == 0
    assert bool((distinct[known].abs().sum(-1) > 0).all())


def every_part_cfg(**overrides: object) -> ModelConfig:
    """Every input part on: field products, word matches, term gating, a read-only task."""
    text = plain_text(encoder="tiny", max_length=16, word_match=True, term_gating=True,
                      term_buckets=16)  # fmt: skip
    base = dict(text=text, field_interactions=True, bottom="ple", read_only_tasks=("cvr",))
    return tiny_cfg(**{**base, **overrides})


@pytest.fixture(scope="module")
def every_part_inputs(frame: pd.DataFrame, spec: FeatureSpec, tmp_path_factory) -> ModelInputs:
    cache = tmp_path_factory.mktemp("cache")
    return tensor_frame(spec, every_part_cfg(), frame, cache).inputs(torch.arange(len(frame)))


def test_data_columns_are_where_features_puts_the_dense_and_match_inputs(
    spec: FeatureSpec, every_part_inputs: ModelInputs
) -> None:
    inputs = every_part_inputs
    model = MultiTaskModel(every_part_cfg(), spec)
    x = model.features(inputs)
    (dense, match) = model.data_columns
    assert torch.equal(x[:, dense[0] : dense[1]], inputs.dense)
    assert torch.equal(x[:, match[0] : match[1]], inputs.match)
    assert model.bottom.experts.data_columns == model.data_columns
    assert model.in_dim == x.shape[1] > match[1]  # term gating's columns after the matches


@pytest.mark.parametrize("bottom", ["shared_bottom", "mmoe", "ple"])
def test_training_s_first_layer_gives_evaluation_s_function_and_gradients(
    spec: FeatureSpec, every_part_inputs: ModelInputs, bottom: str
) -> None:
    """In training the first layer is one product for the experts and gates
    (`layers.joint_product`) that sends the data columns no gradient; in fp32 with no dropout it
    is evaluation's function, and the same gradients wherever a parameter gives one."""
    inputs = every_part_inputs
    torch.manual_seed(0)
    model = MultiTaskModel(every_part_cfg(bottom=bottom), spec)
    results = []
    for training in (True, False):
        model.train(training)
        model.zero_grad(set_to_none=True)
        x = model.features(inputs).detach().requires_grad_()
        hidden = model.bottom(x)
        torch.manual_seed(1)
        sum((h * torch.randn(h.shape)).sum() for h in hidden).backward()
        grads = {name: p.grad for name, p in model.bottom.named_parameters()}
        results.append(([h.detach() for h in hidden], x.grad, grads))
    (trained, x_grad, grads), (evaluated, x_grad_eval, grads_eval) = results
    for a, b in zip(trained, evaluated, strict=True):
        torch.testing.assert_close(a, b)
    for start, stop in model.data_columns:
        assert x_grad_eval[:, start:stop].any() and not x_grad[:, start:stop].any()
        x_grad_eval[:, start:stop] = 0.0
    torch.testing.assert_close(x_grad, x_grad_eval)
    assert grads.keys() == grads_eval.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, grads_eval[name], msg=name)


@pytest.mark.parametrize("numpy_blas", [False, True], ids=["torch", "numpy"])
@pytest.mark.parametrize("bottom", ["mmoe", "ple"])
def test_a_factored_first_layer_is_the_dense_one(
    spec: FeatureSpec,
    every_part_inputs: ModelInputs,
    bottom: str,
    numpy_blas: bool,
    numpy_calls: list[tuple[int, ...]],
) -> None:
    """While training, the fields' and texts' projections' columns are multiplied once per
    distinct value and gathered (`layers.FactoredInput`): the same function, the same gradient
    for every parameter, the read-only task's experts and gate sending them none. With
    `numpy_blas` every product of the factored layer runs in numpy's BLAS: the rest's three,
    and three per block (forward, its rows' and its weight's gradients). The hashed ids have
    more values than the batch has rows: their blocks hold the batch's distinct values only."""
    inputs = every_part_inputs
    torch.manual_seed(0)
    model = MultiTaskModel(every_part_cfg(bottom=bottom), spec).train()
    model.set_train_dtype(torch.float32, numpy_blas)
    x = model.features(inputs, factored=True)
    torch.testing.assert_close(x.dense(), model.features(inputs))
    assert len(x.blocks) == len(model.embedding.sizes) + len(spec.texts)
    fields = inputs.fields.index_select(1, model.main_fields)
    wide = [f for f, size in enumerate(model.embedding.sizes) if size > len(inputs)]
    assert len(wide) == len(spec.ids) == 2
    for f, block in enumerate(x.blocks[: len(model.embedding.sizes)]):
        n_rows = fields[:, f].unique().numel() if f in wide else model.embedding.sizes[f]
        assert block.rows.shape[0] == n_rows
    assert x.rest.shape[1] < model.in_dim
    results = []
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the numpy path runs on one torch thread only
    try:
        for factored in (True, False):
            model.zero_grad(set_to_none=True)
            hidden = model.bottom(model.features(inputs, factored))
            torch.manual_seed(1)
            sum((h * torch.randn(h.shape)).sum() for h in hidden).backward()
            grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
            results.append(([h.detach() for h in hidden], grads))
            if factored:
                assert len(numpy_calls) == (3 + 3 * len(x.blocks) if numpy_blas else 0)
    finally:
        torch.set_num_threads(previous)
    (factored_hidden, grads), (dense_hidden, dense_grads) = results
    for a, b in zip(factored_hidden, dense_hidden, strict=True):
        torch.testing.assert_close(a, b)
    assert grads.keys() == dense_grads.keys()
    assert any(name.startswith("embedding.") for name in grads)
    assert any(name.startswith("text.projections.") for name in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, dense_grads[name], msg=name)


def test_a_training_step_factors_the_first_layer_of_mmoe_and_ple_only(
    spec: FeatureSpec, every_part_inputs: ModelInputs
) -> None:
    seen = []
    for bottom in ("shared_bottom", "mmoe", "ple"):
        model = MultiTaskModel(every_part_cfg(bottom=bottom), spec).train()
        hook = model.bottom.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
        model(every_part_inputs)
        with torch.no_grad():
            model(every_part_inputs)
        model.eval()(every_part_inputs)
        hook.remove()
    kinds = [type(x).__name__ for x in seen]
    assert kinds == ["Tensor"] * 3 + ["FactoredInput", "Tensor", "Tensor"] * 2


def test_a_bf16_first_layer_trains_unfactored(
    spec: FeatureSpec, every_part_inputs: ModelInputs
) -> None:
    model = MultiTaskModel(every_part_cfg(bottom="ple"), spec).train()
    seen = []
    model.bottom.register_forward_pre_hook(lambda _, args: seen.append(type(args[0]).__name__))
    banks = [m for m in model.bottom.modules() if hasattr(m, "train_dtype")]
    assert banks
    for dtype in (torch.bfloat16, torch.float32):
        model.set_train_dtype(dtype)
        assert all(bank.train_dtype == dtype for bank in banks)
        model(every_part_inputs)
    assert seen == ["Tensor", "FactoredInput"]


def test_schema_without_text_or_ids(frame: pd.DataFrame, tmp_path: Path) -> None:
    schema = [SchemaFeature("item_profile__price", "numeric")]
    spec = FeatureSpec.fit(schema, frame, hash_buckets=64)
    encoded = spec.encode(frame)
    table = build_text_table(encoded.strings, tiny_cfg().text, tmp_path)
    batch = TensorFrame.build(encoded, table).inputs(torch.arange(4))
    model = MultiTaskModel(tiny_cfg(bottom="mmoe"), spec)
    assert model.in_dim == 2 and model(batch).ctr_logit.shape == (4,)


def test_field_interactions_add_one_product_per_pair(
    spec: FeatureSpec, inputs: ModelInputs
) -> None:
    plain = MultiTaskModel(tiny_cfg(), spec)
    crossed = MultiTaskModel(tiny_cfg(field_interactions=True), spec)
    n_fields = len(spec.field_names)
    assert crossed.in_dim == plain.in_dim + n_fields * (n_fields - 1) // 2
    embedded = crossed.embedding(inputs.fields)  # (B, F, E)
    products = crossed.products(embedded)
    pairs = [(i, j) for i in range(n_fields) for j in range(i + 1, n_fields)]  # IPNN's order
    expected = torch.stack([(embedded[:, i] * embedded[:, j]).sum(-1) for i, j in pairs], dim=1)
    torch.testing.assert_close(products, expected)


def test_bias_feature_only_shifts_the_click_logit(spec: FeatureSpec, inputs: ModelInputs) -> None:
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_cfg(bias_features=("position",)), spec)
    assert model.in_dim == MultiTaskModel(tiny_cfg(), spec).in_dim - 4  # one field fewer
    before = model(inputs)
    with torch.no_grad():
        model.bias.table.weight.fill_(-2.0)
    after = model(inputs)
    torch.testing.assert_close(after.ctr_logit, before.ctr_logit - 2.0)
    torch.testing.assert_close(after.cvr_logit, before.cvr_logit)
    torch.testing.assert_close(after.relevance, before.relevance)
    assert (
        MultiTaskModel(tiny_cfg(tasks=("relevance",), bias_features=("position",)), spec).bias
        is None
    )
    with pytest.raises(ValueError, match="bias_features"):
        MultiTaskModel(tiny_cfg(bias_features=("item_profile__price",)), spec)


@pytest.mark.parametrize("bottom", ["shared_bottom", "mmoe", "ple"])
def test_bottom_dropout_sets_the_bottoms_rate_and_the_towers_keep_dropout(
    spec: FeatureSpec, inputs: ModelInputs, bottom: str
) -> None:
    def varies(module: torch.nn.Module, x: torch.Tensor) -> bool:
        """Two training passes over the same input differ (dropout drew other units)."""
        first, second = module(x), module(x)
        if isinstance(first, list):  # a bottom: one output per task
            first, second = torch.cat(first, -1), torch.cat(second, -1)
        return not torch.equal(first, second)

    torch.manual_seed(0)
    model = MultiTaskModel(tiny_cfg(bottom=bottom, dropout=0.5, bottom_dropout=0.0), spec).train()
    x = model.features(inputs).detach()
    assert not varies(model.bottom, x)  # no dropout in the bottom: the same units each pass
    assert varies(model.towers["ctr"], torch.randn(len(inputs), model.bottom.out_dim))
    same = MultiTaskModel(tiny_cfg(bottom=bottom, dropout=0.5, bottom_dropout=None), spec).train()
    assert varies(same.bottom, same.features(inputs).detach())  # None: the towers' rate


def test_output_biases_start_at_the_label_priors(spec: FeatureSpec, inputs: ModelInputs) -> None:
    model = MultiTaskModel(tiny_cfg(), spec)
    model.init_output_biases({"ctr": 0.04, "cvr": 0.1, "relevance": 1.5})
    for tower in model.towers.values():  # no hidden signal: the output is the bias alone
        torch.nn.init.zeros_(tower.head.weight)
    out = model(inputs)
    torch.testing.assert_close(out.p_ctr, torch.full_like(out.p_ctr, 0.04))
    torch.testing.assert_close(out.p_cvr, torch.full_like(out.p_cvr, 0.1))
    torch.testing.assert_close(out.relevance, torch.full_like(out.relevance, 1.5))


def test_word_match_features_feed_the_bottom(
    frame: pd.DataFrame, spec: FeatureSpec, tmp_path: Path
) -> None:
    cfg = tiny_cfg(text=plain_text(encoder="tiny", max_length=16, word_match=True))
    model = MultiTaskModel(cfg, spec)
    assert model.in_dim == MultiTaskModel(tiny_cfg(), spec).in_dim + len(KERNELS)
    rows = torch.arange(8)
    batch = tensor_frame(spec, cfg, frame, tmp_path).inputs(rows)
    assert batch.match.shape == (8, len(KERNELS))
    assert model(batch).ctr_logit.shape == (8,)
    without_match = tensor_frame(spec, tiny_cfg(), frame, tmp_path).inputs(rows)
    with pytest.raises(ValueError, match="word-match"):
        model(without_match)


def test_term_gating_feeds_the_bottom_and_learns_from_the_terms(
    frame: pd.DataFrame, spec: FeatureSpec, tmp_path: Path
) -> None:
    cfg = tiny_cfg(text=plain_text(encoder="tiny", max_length=16, term_gating=True))
    model = MultiTaskModel(cfg, spec)
    assert model.in_dim == MultiTaskModel(tiny_cfg(), spec).in_dim + cfg.text_dim
    rows = torch.arange(len(frame))
    batch = tensor_frame(spec, cfg, frame, tmp_path).inputs(rows)
    terms = batch.terms
    assert terms is not None and terms.counts.shape[0] == len(terms.slots) == len(terms.rows)
    assert bool((terms.rows.diff() >= 0).all())  # packed row by row
    gated = model.terms(batch.terms)  # (B, text_dim)
    no_query = ~batch.text_present[:, spec.query_index]
    assert no_query.any() and not gated[no_query].any()  # a feed row has no term
    assert not no_query[terms.rows].any()  # and no packed slot
    model(batch).relevance.sum().backward()
    assert model.terms.gate.weight.grad.abs().sum() > 0
    without_terms = tensor_frame(spec, tiny_cfg(), frame, tmp_path).inputs(rows)
    with pytest.raises(ValueError, match="per-term"):
        model(without_terms)


def test_packed_term_gating_is_the_masked_sum_over_the_padded_slots(
    frame: pd.DataFrame, spec: FeatureSpec, tmp_path: Path
) -> None:
    text = plain_text(encoder="tiny", max_length=16, term_gating=True, term_buckets=32)
    cfg = tiny_cfg(text=text)
    model = MultiTaskModel(cfg, spec)
    torch.nn.init.normal_(model.terms.own.weight)  # not the zero start: the buckets count
    rows = torch.arange(len(frame)).flip(0)  # any order of rows
    table = tensor_frame(spec, cfg, frame, tmp_path).terms
    padded = table.terms[table.index[rows]]  # (B, Lq): the padded form, 0 in empty slots
    gate = model.terms.gate(table.vectors[padded]) + model.terms.own(table.buckets[padded])
    match = model.terms.match(table.counts[table.index[rows]])  # (B, Lq, H)
    expected = (gate * match * (padded > 0).unsqueeze(-1)).sum(dim=1)  # (B, H)
    assert (padded > 0).any() and (padded == 0).any()
    torch.testing.assert_close(model.terms(table.inputs(rows)), expected)


def test_term_buckets_add_a_learned_gate_per_word_starting_at_zero(
    frame: pd.DataFrame, spec: FeatureSpec, tmp_path: Path
) -> None:
    text = plain_text(encoder="tiny", max_length=16, term_gating=True)
    plain_cfg = tiny_cfg(text=text)
    cfg = tiny_cfg(text=text.model_copy(update={"term_buckets": 32}))
    torch.manual_seed(0)
    plain = MultiTaskModel(plain_cfg, spec)
    torch.manual_seed(0)
    model = MultiTaskModel(cfg, spec)
    batch = tensor_frame(spec, cfg, frame, tmp_path).inputs(torch.arange(len(frame)))
    assert batch.terms is not None and batch.terms.buckets.max() > 0
    torch.testing.assert_close(model.terms(batch.terms), plain.terms(batch.terms))  # zero init
    model(batch).relevance.sum().backward()
    grad = model.terms.own.weight.grad
    assert grad[1:].abs().sum() > 0 and not grad[0].any()  # padding never learns


def test_a_read_only_cvr_leaves_the_embeddings_to_the_other_tasks(
    frame: pd.DataFrame, spec: FeatureSpec, tmp_path: Path
) -> None:
    cfg = tiny_cfg(bottom="ple", read_only_tasks=("cvr",))
    batch = tensor_frame(spec, cfg, frame, tmp_path).inputs(torch.arange(len(frame)))
    model = MultiTaskModel(cfg, spec)
    model(batch).cvr_logit.sum().backward()
    grad = model.embedding.table.weight.grad  # zero: cvr's gate shares the bottom's product
    assert grad is None or not grad.any()
    model(batch).ctr_logit.sum().backward()  # (values may be 0 through a dead tiny ReLU)
    assert model.embedding.table.weight.grad is not None
    alone = MultiTaskModel(tiny_cfg(tasks=("cvr",), read_only_tasks=("cvr",)), spec)
    alone(batch).cvr_logit.sum().backward()  # a model of one task writes its own inputs
    assert alone.embedding.table.weight.grad is not None
