"""HTTP routes of the recommender service."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.common.security import require_admin
from services.recommender.engine import MAX_ID, Recommender, UnknownItem, UnknownUser
from shared_backbone.text import normalise_text

FUTURE_SLACK_S = 86_400  # an interaction may be stamped up to a day ahead (clock skew), not later
TITLE_CHARS = 300  # the width of recommender_items.title


def get_recommender(request: Request) -> Recommender:
    return request.app.state.recommender


RecommenderDep = Annotated[Recommender, Depends(get_recommender)]
AdminDep = Annotated[None, Depends(require_admin)]
UserId = Annotated[int, Field(ge=1, le=MAX_ID)]


def _k(recommender: Recommender, k: int | None) -> int:
    limit = recommender.settings.max_k
    if k is None:
        return recommender.settings.default_k
    if not 1 <= k <= limit:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"k must be between 1 and {limit}, got {k}")
    return k


def _genres(recommender: Recommender, raw: list[str]) -> list[str]:
    """Genres by name, case-insensitive; ``?genres=Comedy,Drama`` and repeated ``?genres=`` both work."""
    known = {g.lower(): g for g in recommender.genres()}
    wanted = [g.strip() for value in raw for g in value.split(",") if g.strip()]
    unknown = [g for g in wanted if g.lower() not in known]
    if unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown genre(s) {unknown}; known: {sorted(known.values())}")
    return [known[g.lower()] for g in wanted]


class Recommended(BaseModel):
    item_id: int
    title: str
    year: int | None
    genres: list[str]
    score: float
    reason: str
    because_item_id: int | None


class UserRecommendations(BaseModel):
    user_id: int
    cold_start: bool = Field(description="true when the viewer is unknown or has no likes: the list is the most liked films")
    cold_start_reason: str | None
    items: list[Recommended]


class WishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="what the viewer would like to watch, in their words")
    k: int | None = None
    user_id: UserId | None = Field(default=None, description="leave out films this viewer has rated or dismissed")
    genres: list[str] = Field(default_factory=list)
    diversity: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not normalise_text(value):  # blank once white space and invisible characters are gone
            raise ValueError("the wish is empty: describe what you would like to watch")
        return value


class WishResponse(BaseModel):
    wish: str
    user_id: int | None
    items: list[Recommended]


class InteractionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    item_id: int = Field(ge=1, le=MAX_ID)
    kind: Literal["rating", "like", "dismiss"] = Field(description="dismiss: not interested, never shown again")
    rating: float | None = Field(default=None, ge=0.5, le=5.0, description="0.5 to 5 stars; only with kind=rating")
    at: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="seconds since the epoch; default now")

    @model_validator(mode="after")
    def _rating_goes_with_kind(self) -> InteractionRequest:
        if (self.kind == "rating") != (self.rating is not None):
            raise ValueError("a rating (0.5 to 5) is given with kind=rating and only then")
        if self.at is not None and self.at > time.time() + FUTURE_SLACK_S:
            raise ValueError("at is in the future: give seconds since the epoch, or leave it out for now")
        return self


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)

    @field_validator("name")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        """NUL is dropped: PostgreSQL's text cannot hold it (SQLite took it), and no one means to type it."""
        return value.replace("\x00", "") if value is not None else None


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=TITLE_CHARS)
    year: int | None = Field(default=None, ge=1870, le=2100)
    genres: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list, max_length=20)
    tags: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(default_factory=list, max_length=20)

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, value: str) -> str:
        title = normalise_text(value)
        if not title:
            raise ValueError("the title is empty")
        if len(title) > TITLE_CHARS:  # NFKC can lengthen text (one U+FDFA is 18 characters); PostgreSQL enforces the column's width
            raise ValueError(f"the title is longer than {TITLE_CHARS} characters once normalised")
        return title

    @field_validator("genres", "tags")
    @classmethod
    def _clean_labels(cls, values: list[str]) -> list[str]:
        """Trimmed, non-blank, and without commas: a genre must be selectable with ``?genres=a,b``."""
        cleaned = [normalise_text(v) for v in values]
        if any(not v or "," in v for v in cleaned):
            raise ValueError("each genre or tag must be non-blank and contain no comma")
        return list(dict.fromkeys(cleaned))


recommendations_router = APIRouter(tags=["recommendations"])
catalogue_router = APIRouter(tags=["catalogue and viewers"])


@recommendations_router.get("/users/{user_id}/recommendations", response_model=UserRecommendations)
def user_recommendations(
    user_id: Annotated[int, PathParam(ge=1, le=MAX_ID)],
    recommender: RecommenderDep,
    k: int | None = None,
    exclude_seen: bool = True,
    genres: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies query defaults
    year_from: Annotated[int | None, Query(ge=0, le=3000)] = None,
    year_to: Annotated[int | None, Query(ge=0, le=3000)] = None,
    diversity: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
) -> Any:
    """The viewer's list with a reason per film; unknown viewers get the cold-start list (flagged), not an error."""
    if year_from is not None and year_to is not None and year_from > year_to:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"year_from ({year_from}) is after year_to ({year_to})")
    return recommender.recommend(
        user_id,
        _k(recommender, k),
        exclude_seen=exclude_seen,
        genres=_genres(recommender, genres),
        year_from=year_from,
        year_to=year_to,
        diversity=diversity,
    )


@recommendations_router.post("/recommendations/query", response_model=WishResponse)
def wish(body: WishRequest, recommender: RecommenderDep) -> Any:
    """A free-text wish ("a funny space adventure"), for viewers with no history or in a new mood."""
    limit = recommender.settings.max_wish_chars
    if len(body.text) > limit:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"the wish is {len(body.text):,} characters; the limit is {limit:,}")
    return recommender.wish(
        body.text, _k(recommender, body.k), user_id=body.user_id, genres=_genres(recommender, body.genres), diversity=body.diversity
    )


@recommendations_router.get("/items/{item_id}/similar")
def similar(item_id: int, recommender: RecommenderDep, k: int | None = None) -> dict[str, Any]:
    try:
        return recommender.similar(item_id, _k(recommender, k))
    except UnknownItem:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id} in the catalogue") from None


@catalogue_router.post("/interactions")
def interact(body: InteractionRequest, recommender: RecommenderDep) -> dict[str, Any]:
    """Record a rating, like or dismissal; the viewer's next list reflects it at once.

    One opinion per viewer and item: a repeat replaces the earlier one (``replaced: true``), never adds a second.
    A viewer id not seen before is created.
    """
    try:
        return recommender.interact(body.user_id, body.item_id, body.kind, body.rating, body.at)
    except UnknownItem:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {body.item_id} in the catalogue") from None


@catalogue_router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(body: NewUser, recommender: RecommenderDep) -> dict[str, Any]:
    return recommender.create_user(body.name.strip() if body.name else None)


@catalogue_router.get("/users")
def list_users(recommender: RecommenderDep, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict[str, Any]]:
    return recommender.users(limit)


@catalogue_router.get("/users/{user_id}")
def get_user(user_id: int, recommender: RecommenderDep) -> dict[str, Any]:
    try:
        return recommender.user(user_id)
    except UnknownUser:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown user {user_id}") from None


@catalogue_router.get("/genres")
def genres(recommender: RecommenderDep) -> list[str]:
    return recommender.genres()


@catalogue_router.get("/items")
def find_items(
    recommender: RecommenderDep,
    title: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[dict[str, Any]]:
    """Films whose title contains ``title``, the most liked first."""
    return recommender.find_items(title, limit)


@catalogue_router.get("/items/{item_id}")
def get_item(item_id: int, recommender: RecommenderDep) -> dict[str, Any]:
    try:
        return recommender.item(item_id)
    except UnknownItem:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id} in the catalogue") from None


@catalogue_router.post("/items", status_code=status.HTTP_201_CREATED)
def add_item(body: NewItem, recommender: RecommenderDep, _: AdminDep) -> dict[str, Any]:
    """Add a film: embedded and indexed before this returns, so it can be recommended at once."""
    return recommender.add_item(body.title, body.year, body.genres, body.tags)


@catalogue_router.post("/model/refit")
def refit(recommender: RecommenderDep, _: AdminDep) -> dict[str, Any]:
    """Refit the collaborative model on every like so far, so new viewers' and items' likes inform others' lists."""
    return recommender.refit()
