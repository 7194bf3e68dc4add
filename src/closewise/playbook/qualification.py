"""Qualification scorecards: a deal's latest answer to each question of a framework (MEDDICC, BANT or one the
org defines), and the score they add up to.

Answers are `yes` (1), `partial` (0.5), `no` (0) and `unknown` (0); a question never answered counts 0. The
score of a deal on a framework is the mean over the framework's questions, from 0 to 1. An `unknown` answer
is a finding: the rep does not know something the playbook says a qualified deal must know. Everything is
as of a moment: answers given later are not seen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import polars as pl

from closewise.errors import InvalidInput
from closewise.playbook.default import QualificationFramework

ANSWER_VALUES: Final = {"yes": 1.0, "partial": 0.5, "no": 0.0, "unknown": 0.0}
ANSWERS_SCHEMA: Final = {"opportunity_id": pl.Int64(), "framework": pl.String(), "question": pl.String(),
                         "answer": pl.String(), "answered_at": pl.Datetime("us"), "answered_by": pl.Int64()}


def check_answer(answer: str) -> str:
    value = answer.strip().lower()
    if value not in ANSWER_VALUES:
        raise InvalidInput(f"unknown answer {answer!r}; one of {', '.join(ANSWER_VALUES)}", where="answer")
    return value


def latest_answers(answers: pl.DataFrame, *, as_of: datetime) -> pl.DataFrame:
    """The last answer given by `as_of` to each (deal, framework, question)."""
    return (answers.filter(pl.col("answered_at") <= as_of)
            .sort("answered_at")
            .group_by("opportunity_id", "framework", "question", maintain_order=True).last())


def scores(answers: pl.DataFrame, frameworks: list[QualificationFramework], *, as_of: datetime) -> pl.DataFrame:
    """Per deal and framework it has answers for: `score` (0-1), `answered` (questions with an answer),
    `questions`, `unknown` (questions answered unknown), `last_answered_at`."""
    latest = latest_answers(answers, as_of=as_of)
    sizes = pl.DataFrame({"framework": [f.key for f in frameworks],
                          "questions": [len(f.questions) for f in frameworks]},
                         schema={"framework": pl.String(), "questions": pl.Int64()})
    known = {(f.key, q.key) for f in frameworks for q in f.questions}
    keys = pl.DataFrame({"framework": [k[0] for k in known], "question": [k[1] for k in known]},
                        schema={"framework": pl.String(), "question": pl.String()})
    return (latest.join(keys, on=["framework", "question"], how="semi")
            .with_columns(pl.col("answer").replace_strict(ANSWER_VALUES, default=0.0, return_dtype=pl.Float64)
                          .alias("_value"))
            .group_by("opportunity_id", "framework")
            .agg(pl.col("_value").sum().alias("_points"), pl.len().alias("answered"),
                 (pl.col("answer") == "unknown").sum().alias("unknown"),
                 pl.col("answered_at").max().alias("last_answered_at"))
            .join(sizes, on="framework", how="inner")
            .with_columns((pl.col("_points") / pl.col("questions")).alias("score"))
            .select("opportunity_id", "framework", "score", "answered", "questions", "unknown", "last_answered_at")
            .sort("opportunity_id", "framework"))


def unknown_findings(answers: pl.DataFrame, *, as_of: datetime) -> pl.DataFrame:
    """Each question whose latest answer by `as_of` is `unknown`: `opportunity_id`, `framework`, `question`,
    `answered_at`."""
    return (latest_answers(answers, as_of=as_of).filter(pl.col("answer") == "unknown")
            .select("opportunity_id", "framework", "question", "answered_at").sort("opportunity_id", "question"))
