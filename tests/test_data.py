from __future__ import annotations

from pathlib import Path

import pytest

from shared_backbone import data
from shared_backbone.errors import DataError
from shared_backbone.text import normalise_text, text_hash


def test_normalise_text_folds_width_controls_and_spaces() -> None:
    assert normalise_text("  Ｃard\u200b  not\t\n arrived\x07 ") == "Card not arrived"
    assert normalise_text("$TSLA up") == "$TSLA up"
    assert text_hash("a b") == text_hash(normalise_text(" a  b "))
    assert text_hash("a") != text_hash("b")


def test_published_sizes_are_kept() -> None:
    banking = data.load_banking77()
    assert len(banking.train) + len(banking.validation) == 10_003
    assert len(banking.test) == 3_080 and len(banking.labels) == 77
    sentiment = data.load_financial_sentiment()
    assert len(sentiment.train) + len(sentiment.validation) == 9_543 and len(sentiment.test) == 2_388
    assert sentiment.labels == ("bearish", "bullish", "neutral")
    topic = data.load_financial_topic()
    assert len(topic.train) + len(topic.validation) == 16_990 and len(topic.test) == 4_117 and len(topic.labels) == 20
    oos = data.load_clinc_out_of_scope()
    assert (len(oos.train), len(oos.validation), len(oos.test)) == (100, 100, 1_000)


def test_validation_split_is_stratified_and_seeded() -> None:
    a, b, c = data.load_banking77(seed=1), data.load_banking77(seed=1), data.load_banking77(seed=2)
    assert a.validation == b.validation
    assert a.validation != c.validation
    assert {r.label for r in a.validation} == set(range(77))  # every intent is represented
    assert len({(r.text, r.label) for r in a.validation} & {(r.text, r.label) for r in a.train}) <= 5  # only verbatim duplicates


def test_movielens_temporal_split_and_orphans() -> None:
    movielens = data.load_movielens()
    assert len(movielens.movies) == 9_742
    assert movielens.orphan_lines == [100_838]  # the one rating of a film not in movies.csv
    total = len(movielens.train) + len(movielens.validation) + len(movielens.test)
    assert total == 100_836
    last_train: dict[int, int] = {}
    for r in movielens.train:
        last_train[r.user_id] = max(last_train.get(r.user_id, 0), r.timestamp)
    assert all(r.timestamp >= last_train[r.user_id] for r in movielens.test)
    assert set(last_train) == {r.user_id for r in movielens.test}


def test_temporal_split_keeps_a_training_rating() -> None:
    ratings = [data.Rating(1, 10, 5.0, 100), data.Rating(2, 11, 4.0, 1), data.Rating(2, 12, 3.0, 2)]
    train, validation, test = data.temporal_user_split(ratings, 0.5, 0.5)
    assert [r.movie_id for r in train if r.user_id == 1] == [10]
    assert {r.movie_id for r in train if r.user_id == 2} == {11}
    assert [r.movie_id for r in test] == [12] and validation == []


def test_movie_text_has_title_genres_and_tags(tmp_path: Path) -> None:
    (tmp_path / "movies.csv").write_text('movieId,title,genres\n1,"Alien (1979)",Horror|Sci-Fi\n', encoding="utf-8")
    (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,1,space,1\n2,1,Space,2\n3,1,creepy,3\n", encoding="utf-8")
    movie = data.load_movies(tmp_path)[1]
    assert movie.year == 1979 and movie.genres == ("Horror", "Sci-Fi") and movie.tags == ("space", "creepy")
    assert movie.text() == "Alien (1979) Genres: Horror, Sci-Fi. Tags: space, creepy."


def _write_banking(root: Path, train: str) -> None:
    folder = root / "banking77"
    folder.mkdir(parents=True)
    (folder / "categories.json").write_text('["card_arrival", "age_limit"]', encoding="utf-8")
    (folder / "train.csv").write_text(train, encoding="utf-8")
    (folder / "test.csv").write_text("text,category\nhow old,age_limit\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("text,label\nhi,age_limit\n", "train.csv:1: missing column(s) category"),
        (
            "text,category\n" + "where is my card,card_arrival\n" * 4 + "how old,unknown_intent\n",
            "train.csv:6: column 'category': bad value 'unknown_intent'",
        ),
        ("text,category\n   ,age_limit\n", "train.csv:2: column 'text'"),
        ('text,category\n"never closed,age_limit\n', "train.csv"),
    ],
)
def test_bad_csv_names_file_line_and_column(tmp_path: Path, train: str, message: str) -> None:
    _write_banking(tmp_path, train)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.load_banking77(tmp_path)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found"):
        data.load_banking77(tmp_path)
    folder = tmp_path / "twitter_financial_news_sentiment"
    folder.mkdir()
    (folder / "sent_train.csv").write_bytes(b"text,label\n\xff\xfe bad,0\n")
    (folder / "sent_valid.csv").write_text("text,label\nok,0\n", encoding="utf-8")
    with pytest.raises(DataError, match="not valid UTF-8"):
        data.load_financial_sentiment(tmp_path)


def test_broken_parquet_and_json(tmp_path: Path) -> None:
    folder = tmp_path / "twitter_financial_news_topic"
    folder.mkdir()
    (folder / "classes.txt").write_text("A\nB\n", encoding="utf-8")
    (folder / "train.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable parquet file"):
        data.load_financial_topic(tmp_path)
    (tmp_path / "clinc150").mkdir()
    (tmp_path / "clinc150" / "data_full.json").write_text('{"oos_train": [', encoding="utf-8")
    with pytest.raises(DataError, match="malformed JSON"):
        data.load_clinc_out_of_scope(tmp_path)


def test_parquet_label_out_of_range(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "twitter_financial_news_topic"
    folder.mkdir()
    (folder / "classes.txt").write_text("A\nB\n", encoding="utf-8")
    pq.write_table(pa.table({"text": ["x", "y"], "label": [0, 7]}), folder / "train.parquet")
    with pytest.raises(DataError, match=r"row 1: column 'label': 7 is not in 0..1"):
        data.load_financial_topic(tmp_path)


def test_ratings_of_unknown_films(tmp_path: Path) -> None:
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A (2000),Drama\n", encoding="utf-8")
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,5\n1,2,4.0,6\n", encoding="utf-8")
    movies = data.load_movies(tmp_path)
    ratings, orphans = data.load_ratings(tmp_path / "ratings.csv", movies)
    assert [r.movie_id for r in ratings] == [1] and orphans == [3]
    with pytest.raises(DataError, match=r"ratings.csv:3: column 'movieId': 2 is not in the catalogue"):
        data.load_ratings(tmp_path / "ratings.csv", movies, strict=True)
    (tmp_path / "bad.csv").write_text("userId,movieId,rating,timestamp\n1,1,9.0,5\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.csv:2: column 'rating'"):
        data.load_ratings(tmp_path / "bad.csv")
