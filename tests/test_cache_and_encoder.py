from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared_backbone.cache import EmbeddingCache
from shared_backbone.encoder import Backbone
from shared_backbone.errors import ArtifactError
from shared_backbone.text import encoder_text


def test_cache_is_keyed_by_backbone_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    cache = EmbeddingCache(path)
    cache.put_many("a@1", {"k": np.array([1.0, 2.0], dtype=np.float32)})
    assert cache.get_many("b@1", ["k"]) == {}
    cache.close()
    again = EmbeddingCache(path)
    np.testing.assert_array_equal(again.get_many("a@1", ["k", "missing"])["k"], [1.0, 2.0])
    assert again.count() == 1 and again.count("a@1") == 1


def test_encode_keeps_order_and_unit_length(tiny_encoder_path: Path) -> None:
    backbone = Backbone(tiny_encoder_path, "tiny", batch_size=2)
    texts = ["a much longer sentence about a card that never arrived in the post", "hi", "card", "  card  "]
    vectors = backbone.encode(texts)
    assert vectors.shape == (4, backbone.dimension) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    one_by_one = np.stack(
        [
            backbone.model.encode([t], normalize_embeddings=True)[0]
            for t in ["a much longer sentence about a card that never arrived in the post", "hi"]
        ]
    )
    np.testing.assert_allclose(vectors[:2], one_by_one, atol=1e-5)
    np.testing.assert_array_equal(vectors[2], vectors[3])  # same text once normalised
    assert backbone.encode([]).shape == (0, backbone.dimension)
    with pytest.raises(TypeError):
        backbone.encode("a single string")


def test_encode_uses_the_cache(tiny_encoder_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = EmbeddingCache()
    backbone = Backbone(tiny_encoder_path, "tiny@x", cache=cache)
    first = backbone.encode(["one", "two", "one"])
    assert cache.count("tiny@x") == 2

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was called although every text is cached")

    monkeypatch.setattr(backbone, "_encode_uncached", fail)
    np.testing.assert_array_equal(backbone.encode(["two", "one"]), first[[1, 0]])


def test_encoder_text_strips_links_only_when_asked() -> None:
    tweet = "$PLAY beats  on revenue https://t.co/b9vKnTeu3n and http://x.io/a?b=1 too"
    assert encoder_text(tweet) == "$PLAY beats on revenue https://t.co/b9vKnTeu3n and http://x.io/a?b=1 too"
    assert encoder_text(tweet, strip_links=True) == "$PLAY beats on revenue and too"
    assert encoder_text(" https://t.co/abc ", strip_links=True) == "https://t.co/abc"  # only a link: kept, never empty
    assert encoder_text("see httpx docs", strip_links=True) == "see httpx docs"


def test_a_backbone_trained_without_links_reads_none(tiny_encoder_path: Path) -> None:
    stripping = Backbone(tiny_encoder_path, "tiny-strip", strip_links=True)
    literal = Backbone(tiny_encoder_path, "tiny")
    with_link, without = "card never arrived https://t.co/b9vKnTeu3n", "card never arrived"
    vectors = stripping.encode([with_link, without])
    np.testing.assert_array_equal(vectors[0], vectors[1])
    assert np.abs(literal.encode([with_link]) - literal.encode([without])).max() > 1e-3  # the link does change a literal reading


def test_token_length_sorting_by_tokens_not_characters(tiny_encoder_path: Path) -> None:
    backbone = Backbone(tiny_encoder_path, "tiny")
    short_chars_many_tokens, long_chars_few_tokens = "a b c d e f g h", "understandingly"
    lengths = backbone.token_lengths([short_chars_many_tokens, long_chars_few_tokens])
    assert lengths[0] > lengths[1]


def test_broken_encoder_folder_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no modules.json"):
        Backbone(tmp_path, "x").warm_up()
    (tmp_path / "modules.json").write_text("[{broken", encoding="utf-8")
    with pytest.raises(ArtifactError, match="cannot load encoder"):
        Backbone(tmp_path, "x").warm_up()
