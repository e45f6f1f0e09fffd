"""Per-item outcomes of each service, through the services' own code paths, for one seed's evaluation data.

* support: ``services.support.understanding.understand`` (the bot's understanding step: intent head, calibrated
  probabilities, out-of-scope score) on Banking77 test questions and CLINC150 out-of-scope test queries; out-of-scope
  AUROC as ``services.support.evaluation`` computes it (in-scope = 0, out-of-scope = 1, score = the bot's oos score);
* sentiment monitor: the head's argmax, as ``services.sentiment.evaluation.classification`` takes it;
* recommender: ``services.recommender.evaluation``'s scorers and ``rank_users`` (full-catalogue ranking minus what the
  user rated, the service's hybrid with the service's settings for a backbone, plain EASE for ``classic``), with the
  same cold-item pool.

The test items are the profile's seeded sample (``shared_backbone.training.prepare_data``, the sample the training run
evaluated its heads on), not the services' ``--limit`` (the first N rows), because the published test files are sorted
by label and their first rows would hold one or two classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from homogenization.probes import perturb
from services.recommender.collaborative import CollaborativeModel, InteractionMatrix
from services.recommender.evaluation import Like, hybrid_scorer, likes_before, model_scorer, rank_users
from services.recommender.settings import RecommenderSettings
from services.support.understanding import understand
from shared_backbone.client import BackboneClient
from shared_backbone.data import ClassificationData, load_clinc_out_of_scope, load_movielens
from shared_backbone.errors import DataError
from shared_backbone.evaluation import per_user_ranking, ranking_metrics
from shared_backbone.tasks import Profile
from shared_backbone.training import RecommendationData, _sample, prepare_data

K = 10
CLASSIFICATION_TASKS = ("intent", "sentiment", "topic")


@dataclass
class Catalogue:
    """One seed's recommender evaluation: the users, the catalogue, the collaborative inputs and plain EASE (fitted once)."""

    data: RecommendationData
    likes: list[Like]
    settings: RecommenderSettings
    column: dict[int, int] = field(init=False)
    when: dict[tuple[int, int], float] = field(init=False)
    interactions: InteractionMatrix = field(init=False)
    cold: np.ndarray = field(init=False)
    users: list[int] = field(init=False)
    ease: CollaborativeModel | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.column = {movie: i for i, movie in enumerate(self.data.catalogue)}
        self.when = {(user, movie): at for user, movie, at in self.likes}
        self.interactions = InteractionMatrix.build([(u, m) for u, m, _ in self.likes], self.data.catalogue)
        liked_ever = set(np.flatnonzero(np.asarray(self.interactions.matrix.sum(axis=0)).ravel() > 0).tolist())
        later = {m for items in self.data.held_out.get("test", {}).values() for m in items}
        self.cold = np.array(sorted(self.column[m] for m in later if m in self.column and self.column[m] not in liked_ever), dtype=np.int64)
        # the users rank_users keeps, in its order: a history inside the catalogue and something liked later
        self.users = [
            user
            for user, truth in sorted(self.data.held_out.get("test", {}).items())
            if truth and any(m in self.column for m in self.data.history["test"][user])
        ]

    def texts(self, typo_seed: int | None = None) -> list[str]:
        texts = [self.data.movies[m].text() for m in self.data.catalogue]
        return texts if typo_seed is None else [perturb(t, typo_seed) for t in texts]

    def user_texts(self) -> list[str]:
        """Each evaluated user's most recently liked film's text: what the group labels are computed on."""
        return [self.data.movies[self.data.history["test"][u][-1]].text() for u in self.users]

    def outcomes(self, vectors: np.ndarray | None) -> dict[str, np.ndarray]:
        """Per-user HR@10, Recall@10, NDCG@10 (all users) and Recall@10 in the cold-item pool (users with a cold like)."""
        size = len(self.data.catalogue)
        if vectors is None:
            if self.ease is None:
                self.ease = CollaborativeModel(self.settings.ease_l2, text_neighbours=0).fit(self.interactions)
            score = model_scorer(self.ease, size)
        else:
            s = self.settings
            model = CollaborativeModel(s.ease_l2, s.text_neighbours, s.text_neighbour_weight, s.min_item_likes).fit(
                self.interactions, vectors
            )
            score = hybrid_scorer(vectors, model, s)
        ranked, relevant = rank_users(score, self.data, self.column, K, self.when, "test")
        per_user = per_user_ranking(ranked, relevant, K)
        out = {"hr": per_user[f"hr@{K}"], "recall": per_user[f"recall@{K}"], "ndcg": per_user[f"ndcg@{K}"]}
        out["coverage"] = np.array([ranking_metrics(ranked, relevant, K, size)["coverage"]])
        if len(self.cold):
            ranked_cold, relevant_cold = rank_users(score, self.data, self.column, K, self.when, "test", pool=self.cold)
            out["cold_recall"] = per_user_ranking(ranked_cold, relevant_cold, K)[f"recall@{K}"]
        else:
            out["cold_recall"] = np.zeros(0)
        return out


@dataclass
class SeedData:
    """Everything one seed's evaluation reads: the sampled test sets, their typo copies, and the recommender's users."""

    seed: int
    classification: dict[str, ClassificationData]
    oos: list[str]
    catalogue: Catalogue
    typo: dict[str, list[str]]

    def sizes(self) -> dict[str, int]:
        sizes = {f"{task}_test": len(d.test) for task, d in self.classification.items()}
        sizes.update(
            out_of_scope_test=len(self.oos),
            users=len(self.catalogue.users),
            catalogue=len(self.catalogue.data.catalogue),
            cold_items=len(self.catalogue.cold),
        )
        sizes.update({f"{task}_train": len(d.train) for task, d in self.classification.items()})
        return sizes


def prepare_seed(data_dir: Path, profile: Profile, seed: int, likes: list[Like], recommender: RecommenderSettings) -> SeedData:
    """The seed's samples, the same ones ``train_deployment`` draws; an empty evaluation set is a ``DataError``."""
    run = prepare_data((*CLASSIFICATION_TASKS, "recommendation"), profile, seed, data_dir)
    oos = _sample(load_clinc_out_of_scope(data_dir).test, profile.eval_per_task, np.random.default_rng(seed))
    for task in CLASSIFICATION_TASKS:
        if not run.classification[task].test:
            raise DataError(f"the {task} evaluation set is empty (profile {profile.name}, seed {seed}): check {data_dir}")
        if not run.classification[task].train:
            raise DataError(f"the {task} training set is empty (profile {profile.name}, seed {seed}): check {data_dir}")
    if not oos:
        raise DataError(f"the out-of-scope evaluation set is empty: check {data_dir / 'clinc150'}")
    assert run.recommendation is not None
    catalogue = Catalogue(run.recommendation, likes, recommender)
    if not catalogue.users:
        raise DataError(f"the recommender evaluation set is empty: no user has held-out likes (profile {profile.name}, seed {seed})")
    typo = {task: [perturb(r.text, seed) for r in run.classification[task].test] for task in CLASSIFICATION_TASKS}
    return SeedData(seed, run.classification, oos, catalogue, typo)


def movielens_likes(data_dir: Path) -> list[Like]:
    """Every user's likes before the test period: what the collaborative models learn from."""
    return likes_before(load_movielens(data_dir), "test")


def support_outcomes(
    client: BackboneClient, texts: list[str], oos: list[str] | None, method: str, labels: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Predicted intent index per question and the oos score of every in-scope and out-of-scope query.

    ``understand`` needs a threshold only to set a flag this study does not read (AUROC is threshold-free).
    """
    understood = understand(client, texts, method, threshold=1.0)
    index = {name: i for i, name in enumerate(labels)}
    out = {
        "predicted": np.array([index[u.intent] for u in understood], dtype=np.int64),
        "oos_in": np.array([u.oos_score for u in understood]),
    }
    if oos is not None:
        out["oos_out"] = np.array([u.oos_score for u in understand(client, oos, method, threshold=1.0)])
    return out


def head_outcomes(client: BackboneClient, task: str, texts: list[str]) -> np.ndarray:
    """The head's most likely class per text (``services.sentiment.evaluation.classification`` takes the same argmax)."""
    return client.predict(task, texts).probabilities.argmax(axis=1)
