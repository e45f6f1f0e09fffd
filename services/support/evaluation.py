"""`spine eval support`: the bot's quality on held-out data, through the same code the API runs.

- intent accuracy and macro-F1 on the Banking77 test split;
- out-of-scope AUROC: Banking77 test (in scope) against CLINC150's out-of-scope test queries, and
  the share of each side on the right side of the threshold chosen on validation data;
- answer accuracy@1: the article the bot answers from is the gold intent's article; retrieval
  accuracy@1: the top FAISS passage belongs to the gold intent's article (no intent head involved);
- the policy's answer / clarify / hand-off rates on in-scope and out-of-scope questions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from services.support.bot import SupportBot
from services.support.policy import decide
from shared_backbone.data import load_banking77, load_clinc_out_of_scope
from shared_backbone.errors import DataError
from shared_backbone.heads import classification_metrics


def _rates(actions: list[str]) -> dict[str, float]:
    counts = Counter(actions)
    return {f"{action}_rate": counts.get(action, 0) / max(len(actions), 1) for action in ("answer", "clarify", "handoff")}


def _same_article(article_of: dict[str, str], predicted: str, gold: str) -> bool:
    return gold in article_of and article_of.get(predicted) == article_of[gold]


def evaluate_support(bot: SupportBot, limit: int | None = None) -> dict[str, Any]:
    """Every metric of the support service; ``limit`` caps each test set (for smoke runs)."""
    bot.client.warm_up()
    bot.kb.warm_up(bot.client)
    if bot.calibration is None:
        from services.support.understanding import calibrate_out_of_scope

        data_dir = bot.settings.backbone.data_dir
        bot.calibration = calibrate_out_of_scope(
            bot.client, bot.settings.oos_score, data_dir, bot.settings.backbone.artifacts_dir / "support" / "calibration"
        )
    info = bot.client.info()
    banking = load_banking77(bot.settings.backbone.data_dir, seed=info.seed)
    test = banking.test[:limit] if limit else banking.test
    oos = load_clinc_out_of_scope(bot.settings.backbone.data_dir).test
    oos = oos[:limit] if limit else oos
    if not test or not oos:
        raise DataError("support evaluation needs in-scope and out-of-scope test queries")
    gold = [banking.labels[r.label] for r in test]
    in_scope = bot.understand([r.text for r in test])
    out_scope = bot.understand(list(oos))
    label_index = {name: i for i, name in enumerate(banking.labels)}
    predicted = np.array([label_index[u.intent] for u in in_scope])
    intent = classification_metrics(np.array([r.label for r in test]), predicted)
    scores_in = np.array([u.oos_score for u in in_scope])
    scores_out = np.array([u.oos_score for u in out_scope])
    auroc = float(roc_auc_score(np.r_[np.zeros(len(scores_in)), np.ones(len(scores_out))], np.r_[scores_in, scores_out]))
    threshold = bot.oos_threshold
    decisions_in = [decide(u, bot.thresholds, r.text) for u, r in zip(in_scope, test, strict=True)]
    decisions_out = [decide(u, bot.thresholds, text) for u, text in zip(out_scope, oos, strict=True)]
    article_of = {intent: article.id for article in bot.kb.articles.values() for intent in [article.intent]}
    answered = [(d.intent, g) for d, g in zip(decisions_in, gold, strict=True) if d.action.value == "answer"]
    offered = [g in d.options for d, g in zip(decisions_in, gold, strict=True) if d.action.value == "clarify"]
    hits = bot.kb.search(np.stack([u.embedding for u in in_scope]), k=1)
    retrieved = [row[0].passage.article_id if row else None for row in hits]
    return {
        "backbone": info.artifact_id,
        "backbone_id": info.backbone_id,
        "n_in_scope": len(test),
        "n_out_of_scope": len(oos),
        "intent_accuracy": intent["accuracy"],
        "intent_macro_f1": intent["macro_f1"],
        "oos_score": bot.settings.oos_score,
        "oos_threshold": threshold,
        "oos_threshold_from": "settings" if bot.settings.oos_threshold is not None else "validation (Youden's J)",
        "oos_validation_auroc": bot.calibration.validation_auroc,
        "oos_auroc": auroc,
        "oos_recall_at_threshold": float((scores_out >= threshold).mean()),
        "in_scope_kept_at_threshold": float((scores_in < threshold).mean()),
        "answer_accuracy@1": float(np.mean([_same_article(article_of, u.intent, g) for u, g in zip(in_scope, gold, strict=True)])),
        "answered_and_right_rate": float(
            np.mean([d.action.value == "answer" and d.intent == g for d, g in zip(decisions_in, gold, strict=True)])
        ),
        "answered_precision": float(np.mean([i == g for i, g in answered])) if answered else 0.0,
        "clarify_offers_gold": float(np.mean(offered)) if offered else None,
        "retrieval_accuracy@1": float(np.mean([r == article_of.get(g) for r, g in zip(retrieved, gold, strict=True)])),
        "in_scope": _rates([d.action.value for d in decisions_in]),
        "out_of_scope": _rates([d.action.value for d in decisions_out]),
    }
