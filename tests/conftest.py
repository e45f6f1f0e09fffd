"""Shared fixtures: a tiny encoder built here, offline, once per test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from shared_backbone.data import DEFAULT_DATA_DIR
from shared_backbone.settings import BackboneSettings

TINY_DIMENSION = 32


def _vocabulary_texts() -> list[str]:
    import csv

    texts = []
    with (DEFAULT_DATA_DIR / "banking77" / "train.csv").open(encoding="utf-8") as handle:
        texts += [row["text"] for row in csv.DictReader(handle)][:2000]
    with (DEFAULT_DATA_DIR / "twitter_financial_news_sentiment" / "sent_train.csv").open(encoding="utf-8") as handle:
        texts += [row["text"] for row in csv.DictReader(handle)][:2000]
    with (DEFAULT_DATA_DIR / "movielens_latest_small" / "movies.csv").open(encoding="utf-8") as handle:
        texts += [row["title"] + " " + row["genres"].replace("|", " ") for row in csv.DictReader(handle)][:2000]
    return texts


def build_tiny_encoder(folder: Path) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece vocabulary learnt from our own data."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(_vocabulary_texts(), trainers.WordPieceTrainer(vocab_size=1500, special_tokens=specials))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    hf_dir = folder / "hf"
    fast = BertTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )
    fast.save_pretrained(hf_dir)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=fast.vocab_size,
        hidden_size=TINY_DIMENSION,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(hf_dir, safe_serialization=True)
    transformer = Transformer(str(hf_dir), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(TINY_DIMENSION, "mean"), Normalize()], device="cpu")
    out = folder / "tiny-encoder"
    model.save(str(out), safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def tiny_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny_settings(tmp_path: Path, tiny_encoder_path: Path) -> BackboneSettings:
    """Settings that train the tiny encoder into a fresh artifact folder."""
    return BackboneSettings(base_model=tiny_encoder_path, artifacts_dir=tmp_path / "artifacts", data_dir=DEFAULT_DATA_DIR, threads=2)


@pytest.fixture(scope="session")
def trained_shared(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_path: Path) -> BackboneSettings:
    """One `shared` smoke training of the tiny encoder, reused by read-only tests."""
    from shared_backbone.training import train_deployment

    settings = BackboneSettings(base_model=tiny_encoder_path, artifacts_dir=tmp_path_factory.mktemp("shared"), threads=2)
    train_deployment("shared", "smoke", settings, progress=False)
    return settings


@pytest.fixture(scope="session")
def frozen_quick(tmp_path_factory: pytest.TempPathFactory) -> BackboneSettings:
    """The real all-MiniLM-L6-v2, frozen, with `quick` heads: one training (~2 min) for every real-backbone test."""
    from shared_backbone.training import train_deployment

    settings = BackboneSettings(artifacts_dir=tmp_path_factory.mktemp("frozen-quick"), base_model=None)
    train_deployment("frozen", "quick", settings, progress=False)
    return settings


SMALL_MOVIES = """movieId,title,genres
1,Star Voyage (1980),Sci-Fi|Adventure
2,Galaxy Raiders (1985),Sci-Fi|Action
3,Moon Base (1990),Sci-Fi
4,Laugh Factory (1981),Comedy
5,Silly Summer (1986),Comedy
6,"Wedding Chaos, The (1995)",Comedy|Romance
7,Night Terror (1979),Horror
8,Haunting Hour (1999),Horror|Thriller
9,Space Jokers (2001),Comedy|Sci-Fi
10,Quiet Drama (2005),Drama
"""
SMALL_TAGS = "userId,movieId,tag,timestamp\n1,9,funny,1\n1,9,space,1\n1,1,space,1\n"
# user 6 also disliked a comedy (rated 2)
SMALL_RATINGS = [(1, 1, 5), (1, 2, 4.5), (1, 3, 4), (2, 1, 5), (2, 2, 4), (3, 4, 5), (3, 5, 4), (3, 6, 4), (4, 4, 4), (4, 5, 5)]
SMALL_RATINGS += [(5, 7, 5), (5, 8, 4), (6, 2, 4), (6, 3, 5), (6, 4, 2)]


@pytest.fixture
def small_movielens(tmp_path: Path) -> Path:
    """Ten films in MovieLens's CSV shape: sci-fi fans 1, 2, 6; comedy fans 3, 4; horror fan 5."""
    folder = tmp_path / "small-movielens"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "movies.csv").write_text(SMALL_MOVIES, encoding="utf-8")
    (folder / "tags.csv").write_text(SMALL_TAGS, encoding="utf-8")
    rows = [f"{u},{m},{r},{1_000_000 + n * 1000}" for n, (u, m, r) in enumerate(SMALL_RATINGS)]
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return folder


# --- one store test, two databases ---------------------------------------------------------------

# Production servers often keep the host's local zone; an offset with half an hour and no daylight
# saving makes any code that mixes the server's wall time with UTC fail every time, not twice a year.
POSTGRES_TIME_ZONE = "Asia/Kolkata"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL for an empty store: a SQLite file (the default), or a fresh schema of the PostgreSQL
    server that ``SPINE_TEST_POSTGRES_URL`` names (``scripts/test-postgres.sh`` starts one and prints its URL).

    Without that variable the PostgreSQL case is skipped, unless ``CI_REQUIRE_POSTGRES=1`` (CI), where it fails.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    server = os.environ.get("SPINE_TEST_POSTGRES_URL", "")
    if not server:
        reason = 'SPINE_TEST_POSTGRES_URL is not set; export SPINE_TEST_POSTGRES_URL="$(bash scripts/test-postgres.sh)" to run it'
        if os.environ.get("CI_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CI_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    from sqlalchemy import create_engine, make_url, text

    schema = f"test_{uuid.uuid4().hex[:16]}"  # one per test: every test starts from an empty database
    admin = create_engine(server)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    options = f"-csearch_path={schema} -cTimeZone={POSTGRES_TIME_ZONE}"
    yield make_url(server).update_query_dict({"options": options}).render_as_string(hide_password=False)
    with admin.begin() as connection:
        connection.execute(text("SET LOCAL lock_timeout = '30s'"))  # a connection the test left open fails the drop, never hangs it
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
