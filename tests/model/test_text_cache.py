"""The text embeddings' disk cache (mtlrec.model.text_cache)."""

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from mtlrec.model import text, text_cache
from mtlrec.model.text import build_text_encoder
from mtlrec.model.text_cache import TextEmbeddingCache, embed_texts, encoder_id
from tests.conftest import fresh_python
from tests.plain import plain_text

TINY = plain_text(encoder="tiny", max_length=16, batch_size=4)


@pytest.fixture(scope="module")
def tiny_encoder() -> text.TextEncoder:
    return build_text_encoder(TINY)


def test_second_encode_reads_the_cache(
    tiny_encoder: text.TextEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strings = ["red mug", "green chair", "red mug"]
    first = embed_texts(strings, TINY, tmp_path, tiny_encoder)

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the encoder must not run for cached strings")

    monkeypatch.setattr(text, "build_text_encoder", fail)
    monkeypatch.setattr(tiny_encoder, "embed", fail)
    np.testing.assert_array_equal(embed_texts(strings, TINY, tmp_path), first)
    np.testing.assert_array_equal(embed_texts(strings[:1], TINY, tmp_path, tiny_encoder), first[:1])
    padded = embed_texts([" red mug ", None, ""], TINY, tmp_path)  # stripped: a cache hit too
    np.testing.assert_array_equal(padded[0], first[0])
    assert not padded[1:].any()


def test_cache_is_keyed_by_encoder_id(tmp_path: Path) -> None:
    other = plain_text(encoder="tiny", max_length=8)
    assert encoder_id(other) != encoder_id(TINY)
    cache = TextEmbeddingCache(tmp_path, encoder_id(TINY))
    cache.store([cache.key("a")], np.ones((1, 3), np.float32))
    assert TextEmbeddingCache(tmp_path, encoder_id(other)).lookup([cache.key("a")]) == {}
    assert list(cache.lookup([cache.key("a")])[cache.key("a")]) == [1.0, 1.0, 1.0]


@pytest.fixture
def memory_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's setting: new strings in this process's memory, at most 3 of them."""
    monkeypatch.setattr(TextEmbeddingCache, "persist_new", False)
    monkeypatch.setattr(TextEmbeddingCache, "_recent", OrderedDict())
    monkeypatch.setattr(text_cache, "MEMORY_ONLY_LIMIT", 3)


@pytest.mark.usefixtures("memory_only")
def test_memory_only_keeps_the_most_recent_strings_and_writes_nothing(tmp_path: Path) -> None:
    cache = TextEmbeddingCache(tmp_path, encoder_id(TINY))
    keys = [cache.key(t) for t in ("a", "b", "c", "d")]
    for i, key in enumerate(keys[:3]):
        cache.store([key], np.full((1, 2), i, np.float32))
    cache.store(keys[:1], np.full((1, 2), 9, np.float32))  # "a" again: now the most recent
    cache.store(keys[3:], np.full((1, 2), 3, np.float32))  # evicts "b", the oldest
    found = cache.lookup(keys)
    assert sorted(found) == sorted([keys[0], keys[2], keys[3]])
    assert found[keys[0]].tolist() == [9.0, 9.0]
    assert not (tmp_path / "text_embeddings").exists()


def test_a_full_cache_hit_imports_no_torch(tiny_encoder: text.TextEncoder, tmp_path: Path) -> None:
    """The stages that read cached strings only (featurize, index) start without torch: a fresh
    process embeds the cached strings with the same numbers, and torch stays unimported; a miss
    imports the encoder (and torch) as before."""
    strings = ["red mug", "green chair"]
    np.save(tmp_path / "first.npy", embed_texts(strings, TINY, tmp_path, tiny_encoder))
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from mtlrec.features import featurize\n"
        "from mtlrec.model.text_cache import embed_texts\n"
        "from mtlrec.serving import retrieval\n"
        "from tests.plain import plain_text\n"
        f"cfg, cache = plain_text(encoder='tiny', max_length=16, batch_size=4), {str(tmp_path)!r}\n"
        f"got = embed_texts({strings!r}, cfg, cache)\n"
        "same = bool((got == np.load(cache + '/first.npy')).all())\n"
        "print(same, 'torch' in sys.modules)\n"
        "embed_texts(['a string not cached'], cfg, cache)\n"
        "print('torch' in sys.modules)\n"
    )
    assert fresh_python(code) == ["True", "False", "True"]
