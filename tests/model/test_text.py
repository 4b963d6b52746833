"""Text encoders and the on-disk embedding cache."""

import gc
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlrec.model import text
from mtlrec.model.spec import distinct_texts
from mtlrec.model.text import build_text_encoder, build_text_table
from mtlrec.model.text_cache import embed_texts
from tests.plain import plain_text

TINY = plain_text(encoder="tiny", max_length=16, batch_size=4)


@pytest.fixture(scope="module")
def tiny_encoder() -> text.TextEncoder:
    return build_text_encoder(TINY)


def test_tiny_encoder_is_seeded_and_unit_norm(tiny_encoder: text.TextEncoder) -> None:
    again = build_text_encoder(TINY)
    first = tiny_encoder.embed(["red mug", "blue lamp for the desk"])
    np.testing.assert_array_equal(first, again.embed(["red mug", "blue lamp for the desk"]))
    assert first.shape == (2, text.TINY_HIDDEN)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)


def test_null_and_blank_text_embed_to_zero(tiny_encoder: text.TextEncoder, tmp_path: Path) -> None:
    strings, codes = distinct_texts([["red mug", None, " "], [float("nan"), "red mug", ""]])
    assert strings == ["", "red mug"]
    assert [list(c) for c in codes] == [[1, 0, 0], [0, 1, 0]]
    table = build_text_table(strings, TINY, tmp_path, tiny_encoder)
    assert torch.count_nonzero(table.embeddings[0]) == 0
    assert torch.count_nonzero(table.embeddings[1]) > 0


def test_finetune_trains_only_the_top_layers() -> None:
    encoder = build_text_encoder(plain_text(encoder="tiny", finetune_layers=1))
    trainable = {name for name, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("bert.encoder.layer.1.") for name in trainable)
    ids, mask = encoder.tokenize(["red mug", "a blue lamp"])
    encoder(ids, mask).sum().backward()
    grads = {name for name, p in encoder.named_parameters() if p.grad is not None}
    assert grads == trainable
    with pytest.raises(ValueError, match="finetune_layers"):
        encoder.set_trainable_layers(3)


def test_minilm_sentence_embeddings(tmp_path: Path) -> None:
    cfg = plain_text(encoder="minilm")
    vectors = embed_texts(
        ["red running shoes", "crimson sneakers for jogging", "stainless steel kettle"],
        cfg,
        tmp_path,
    )
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_batches_hold_one_token_count_within_the_budget(tiny_encoder: text.TextEncoder) -> None:
    lengths = [3, 5, 3, 16, 3, 5, 3, 3, 3]
    batches = tiny_encoder.batches(lengths)  # budget: batch_size 4 x max_length 16 = 64 tokens
    assert sorted(int(row) for rows in batches for row in rows) == list(range(len(lengths)))
    for rows in batches:
        assert len({lengths[row] for row in rows}) == 1  # no padding
        assert len(rows) * lengths[rows[0]] <= 64
    assert [len(rows) for rows in batches] == [6, 2, 1]  # six 3-token texts fit in one batch


@pytest.mark.parametrize("threads", [1, 2])
def test_embed_matches_one_padded_batch(threads: int) -> None:
    """Unpadded, token-sorted batches (and worker threads) give the padded batch's embeddings."""
    encoder = build_text_encoder(plain_text(encoder="minilm", max_length=8, batch_size=2))
    texts = ["mug", "red mug", "a red mug", "red mug", "blue ceramic coffee mug with a handle"]
    texts += ["stainless steel kettle for the gas stove, 1.7 litres", "lamp", "desk lamp"]
    with torch.inference_mode():
        expected = encoder(*encoder.tokenize(texts)).numpy()  # (N, D), padded to the longest
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        vectors = encoder.embed(texts)
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    cosine = (vectors * expected).sum(axis=1)  # both unit norm
    assert cosine.min() >= 0.9999
    assert encoder.embed([]).shape == (0, 384)


@pytest.mark.parametrize("encoder_name", ["tiny", "minilm"])
def test_frozen_forward_is_hf_bert_with_mean_pooling(encoder_name: str) -> None:
    """The lean inference forward `embed` uses computes the HF model's function."""
    encoder = build_text_encoder(plain_text(encoder=encoder_name, max_length=16)).eval()
    assert text.supports_frozen_forward(encoder.bert.config)
    texts = ["red mug for tea", "blue lamp for desk", "steel kettle with lid"]
    ids = encoder.token_ids(texts)
    assert len({len(row) for row in ids}) == 1  # one token count: no padding
    batch = torch.tensor(ids)
    with torch.inference_mode():
        expected = encoder(batch, torch.ones_like(batch))
        lean = text.frozen_forward(encoder.bert, batch)
    assert lean.shape == expected.shape
    torch.testing.assert_close(lean, expected, rtol=0, atol=1e-5)


def test_frozen_forward_into_buffers_gives_the_same_bits() -> None:
    """Reused buffers (larger than a batch, batches of two lengths) change no number."""
    encoder = build_text_encoder(plain_text(encoder="tiny", max_length=16)).eval()
    batches = [torch.tensor(encoder.token_ids(texts)) for texts in (["red mug", "blue lamp"],
               ["steel kettle with lid", "green desk lamp large"])]  # fmt: skip
    assert batches[0].shape[1] != batches[1].shape[1]
    buffers = text.ForwardBuffers.allocate(max(b.numel() for b in batches) + 5, encoder.bert.config)
    with torch.inference_mode():
        for batch in batches + batches:  # the second pass reads buffers the first one wrote
            expected = text.frozen_forward(encoder.bert, batch)
            assert torch.equal(text.frozen_forward(encoder.bert, batch, buffers), expected)
        small = text.ForwardBuffers.allocate(batches[1].numel() - 1, encoder.bert.config)
        with pytest.raises(ValueError, match="buffers hold"):
            text.frozen_forward(encoder.bert, batches[1], small)


@pytest.mark.parametrize("length", [1, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33])
@pytest.mark.parametrize("batch", [1, 2, 5])
def test_packed_attention_is_each_sequence_alone(length: int, batch: int) -> None:
    """Sequences grouped side by side under a mask attend within themselves only, whatever
    the tail past the batch holds (finite), and a batch that does not fill its last group."""
    heads, width = 4, 32
    rows = batch * length
    generator = torch.Generator().manual_seed(length * 10 + batch)
    flat = [torch.randn(rows + text.ATTENTION_TAIL, width, generator=generator) for _ in range(3)]
    for tensor in flat:
        tensor[rows:] = 1e4  # next batches' numbers: weight 0 however large
    expected = torch.nn.functional.scaled_dot_product_attention(
        *(t[:rows].view(batch, length, heads, -1).transpose(1, 2) for t in flat)
    )  # (b, heads, L, d): one sequence's attention never reads another's keys
    with torch.inference_mode():
        packed = text.packed_attention(*flat, batch, length, heads)  # (rows, width)
    assert packed.shape == (rows, width)
    torch.testing.assert_close(packed, expected.transpose(1, 2).reshape(rows, width))


def test_packed_attention_groups_fill_a_key_block() -> None:
    assert text.attention_groups(5) == (3, 16)  # 15 keys and one masked
    assert text.attention_groups(8) == (2, 16)
    assert text.attention_groups(9) == (1, 16)
    assert text.attention_groups(17) == (1, 32)
    with pytest.raises(ValueError, match="rows past the batch"):
        short = torch.zeros(3 * 5, 32)  # no tail: the last group's window runs off the end
        text.packed_attention(short, short, short, 3, 5, 4)


def test_embed_pauses_the_garbage_collector(
    tiny_encoder: text.TextEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tokenizing runs with the cyclic collector off; its state is restored after, off too."""
    seen = []
    token_ids = tiny_encoder.token_ids

    def recording(texts: list[str]) -> list[list[int]]:
        seen.append(gc.isenabled())
        return token_ids(texts)

    monkeypatch.setattr(tiny_encoder, "token_ids", recording)
    assert gc.isenabled()
    expected = tiny_encoder.embed(["red mug"])
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        np.testing.assert_array_equal(tiny_encoder.embed(["red mug"]), expected)
        assert seen == [False, False] and not gc.isenabled()
    finally:
        gc.enable()


def test_embed_falls_back_to_hf_for_another_activation(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = build_text_encoder(TINY).eval()
    with torch.inference_mode():
        expected = encoder(*encoder.tokenize(["red mug"])).numpy()
    encoder.bert.config.hidden_act = "relu"  # a BERT frozen_forward does not compute
    assert not text.supports_frozen_forward(encoder.bert.config)

    def refuse(*args: object) -> None:
        raise AssertionError("frozen_forward used for an unsupported config")

    monkeypatch.setattr(text, "frozen_forward", refuse)
    np.testing.assert_allclose(encoder.embed(["red mug"]), expected, atol=1e-6)
