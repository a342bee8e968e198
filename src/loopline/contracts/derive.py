"""Derived columns the suites' rules look at; computed here, judged by Great Expectations.

Each ``add_*`` function takes the rows still alive at that stage and returns a copy with the
columns the stage's expectations name. Batch-relative columns (support, duplicates, floods) are
computed on the surviving rows only, so a row that already failed does not count for others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any

import pandas as pd

from loopline.contracts.gx_runner import ROW_ID
from loopline.data.tagged import TaggedSentence, bio_problems, is_bio_tag
from loopline.data.text import normalise_text, visible_text

FLOOD_KEYS = ("user", "source")  # who gave the feedback, in order of preference


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return None
    return str(value)


def prepare_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The working frame (index = ROW_ID): text and label as str-or-None, source_row, flood keys."""
    work = pd.DataFrame({ROW_ID: range(len(df))})  # positional: the input index may repeat
    work["text"] = df["text"].map(_as_text).astype(object).to_numpy()
    work["label"] = df["label"].map(_as_text).astype(object).to_numpy()
    if "source_row" in df.columns:
        work["source_row"] = df["source_row"].to_numpy()
    else:
        work["source_row"] = range(1, len(df) + 1)
    for key in FLOOD_KEYS:
        if key in df.columns:
            work[key] = df[key].map(_as_text).astype(object).to_numpy()
    return work


def add_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """text_length (characters) and text_content_length (characters without surrounding whitespace and
    invisible zero-width characters)."""
    out = frame.copy()
    out["text_length"] = out["text"].str.len()
    out["text_content_length"] = out["text"].map(visible_text, na_action="ignore").str.len()
    return out


def add_duplicate_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """has_conflicting_label (+ conflicting_labels), is_duplicate (+ duplicate_of: first source_row);
    texts compared case- and whitespace-insensitively."""
    return _duplicate_columns(frame, frame["text"].map(normalise_text), frame["label"], ", ")


def _duplicate_columns(frame: pd.DataFrame, key: pd.Series, label: pd.Series, separator: str) -> pd.DataFrame:
    """Duplicate/conflict columns of rows grouped by ``key`` (the compared text) and ``label``."""
    out = frame.copy()
    conflicting = label.groupby(key).transform("nunique").gt(1).astype(bool)
    out["has_conflicting_label"] = conflicting
    out["conflicting_labels"] = _joined_labels(key, label, conflicting, separator)
    repeated = pd.Series(pd.MultiIndex.from_arrays([key, label]).duplicated(keep="first"), index=out.index)
    out["is_duplicate"] = (~out["has_conflicting_label"] & repeated).astype(bool)
    out["duplicate_of"] = out["source_row"].groupby([key, label]).transform("first")
    return out


def _joined_labels(key: pd.Series, label: pd.Series, conflicting: pd.Series, separator: str) -> pd.Series:
    """Per row, the distinct labels of its text, sorted and joined: the row's own label unless the text
    conflicts. Joined in Python only for the conflicting texts (a few): one call per text of a mostly
    unique batch cost ~0.5 ms each, 80% of the contract's time at 50k rows."""
    joined = label.where(key.notna()).astype(object)
    if conflicting.any():
        groups = label[conflicting].groupby(key[conflicting])
        joined[conflicting] = groups.transform(lambda labels: separator.join(sorted(set(labels))))
    return joined


def truncate_texts(rows: pd.DataFrame, max_chars: int) -> pd.DataFrame:
    """The rows with their texts cut to ``max_chars`` characters."""
    return rows.assign(text=rows["text"].str.slice(0, max_chars))


def label_counts(labels: pd.Series) -> dict[str, int]:
    """Rows per label, by label."""
    return {str(label): int(count) for label, count in sorted(labels.astype(str).value_counts().items())}


def add_label_support(frame: pd.DataFrame) -> pd.DataFrame:
    """label_support: rows of the row's label among the surviving rows."""
    out = frame.copy()
    out["label_support"] = out.groupby("label")["label"].transform("size").astype(int)
    return out


def add_feedback_label_columns(frame: pd.DataFrame, known_labels: Collection[str]) -> pd.DataFrame:
    """label_support, label_is_known, and the flood columns batch_rows, user_share, flood_by."""
    out = add_label_support(frame)
    out["label_is_known"] = out["label"].isin(set(known_labels)).astype(bool)
    out["batch_rows"] = len(out)
    who, kind = _flood_key(out)
    out["flood_by"] = kind + " '" + who.fillna("") + "'"
    counts = out.groupby([who, out["label"]], dropna=True)["label"].transform("size")
    out["user_share"] = (counts / max(len(out), 1)).where(who.notna()).astype(float)
    return out


def _flood_key(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Who gave each row: the user if known, else the source; and which of the two it is."""
    who = pd.Series(None, index=frame.index, dtype=object)
    kind = pd.Series("user", index=frame.index, dtype=object)
    for key in reversed(FLOOD_KEYS):  # later keys first, so the preferred key wins
        if key in frame.columns:
            present = frame[key].notna()
            who = who.where(~present, frame[key])
            kind = kind.where(~present, key)
    return who, kind


def batch_frame(
    work: pd.DataFrame, quarantined: set[int], counted: set[int], flags: pd.DataFrame
) -> pd.DataFrame:
    """One row per input row with what the batch rules look at.

    ``quarantined``/``counted``: ROW_IDs quarantined / quarantined for a rule that counts towards
    the quarantine rate. ``flags``: is_duplicate and has_conflicting_label by ROW_ID (missing = 0).
    """
    ids = work[ROW_ID]
    out = pd.DataFrame({ROW_ID: ids.to_numpy()}, index=work.index)
    out["is_accepted"] = ~ids.isin(quarantined)
    out["accepted_label"] = work["label"].where(out["is_accepted"], None)
    out["is_quarantined"] = ids.isin(counted).astype(float)
    for column in ("is_duplicate", "has_conflicting_label"):
        values = flags.set_index(ROW_ID)[column].astype(float) if column in flags.columns else pd.Series()
        out[column] = ids.map(values).astype(float).fillna(0.0).to_numpy()
    return out


# Token classification (NER): ``text`` holds the tokens, ``label`` their BIO tags, both space-joined.

NO_ENTITY = "O"


def split_tokens(value: str | None) -> list[str]:
    """The whitespace-separated tokens of a text (or tags of a label); none for a missing value."""
    return value.split() if isinstance(value, str) else []


def add_token_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """token_count and tag_count (null where text / label is), malformed_tag (the first tag that is not
    O, B-TYPE or I-TYPE, with its position) and bio_problem (the first I-TYPE that does not continue a
    TYPE entity, from :func:`~loopline.data.tagged.bio_problems`); both null when there is none."""
    out = frame.copy()
    tags = out["label"].map(split_tokens)
    out["token_count"] = _count_where_present(out["text"])
    out["tag_count"] = _count_where_present(out["label"])
    out["malformed_tag"] = pd.Series([_first_malformed_tag(t) for t in tags], index=out.index, dtype=object)
    out["bio_problem"] = pd.Series([_first_bio_problem(t) for t in tags], index=out.index, dtype=object)
    return out


def _count_where_present(values: pd.Series) -> pd.Series:
    return pd.Series(
        [float(len(v.split())) if isinstance(v, str) else float("nan") for v in values],
        index=values.index,
        dtype=float,
    )


def _first_malformed_tag(tags: list[str]) -> str | None:
    bad = [(index, tag) for index, tag in enumerate(tags) if not is_bio_tag(tag)]
    if not bad:
        return None
    index, tag = bad[0]
    more = f" ({len(bad) - 1} more malformed)" if len(bad) > 1 else ""
    return f"{tag!r} at token {index}{more}"


def _first_bio_problem(tags: list[str]) -> str | None:
    """Transition problems of well-formed tags only: a malformed tag has its own rule."""
    if not all(is_bio_tag(tag) for tag in tags):
        return None
    problems = bio_problems(tags)
    if not problems:
        return None
    more = f" ({len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more


def truncate_sentences(rows: pd.DataFrame, max_tokens: int) -> pd.DataFrame:
    """The rows with their first ``max_tokens`` tokens and tags, space-joined (a BIO prefix stays BIO)."""
    return rows.assign(
        text=[" ".join(split_tokens(text)[:max_tokens]) for text in rows["text"]],
        label=[" ".join(split_tokens(label)[:max_tokens]) for label in rows["label"]],
    )


def add_token_duplicate_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Duplicate/conflict columns for sentences: the same tokens (case-sensitive: capitals matter for
    names) with the same tags are duplicates, with other tags conflicts."""
    key = frame["text"].map(lambda text: " ".join(split_tokens(text)))
    tags = frame["label"].map(lambda label: " ".join(split_tokens(label)))
    return _duplicate_columns(frame, key, tags, " | ")


def entity_mentions(label: str | None) -> list[str]:
    """The entity type of each entity (mention) in a BIO tag string, in order."""
    tags = tuple(split_tokens(label))
    return [kind for _, _, kind in TaggedSentence(tags, tags).entities()]


def entity_mention_counts(labels: pd.Series) -> dict[str, int]:
    """Mentions per entity type over all the tag strings."""
    counts = Counter(kind for label in labels for kind in entity_mentions(label))
    return dict(sorted(counts.items()))


def add_entity_support(frame: pd.DataFrame) -> pd.DataFrame:
    """rarest_entity_type and entity_support: of the row's entity types, the one with the fewest mentions
    among the surviving rows, and that count (null for sentences without entities)."""
    out = frame.copy()
    kinds = [set(entity_mentions(label)) for label in out["label"]]
    support = entity_mention_counts(out["label"])
    rarest = [min(row, key=lambda kind: (support[kind], kind)) if row else None for row in kinds]
    out["rarest_entity_type"] = pd.Series(rarest, index=out.index, dtype=object)
    out["entity_support"] = pd.Series(
        [float(support[kind]) if kind else float("nan") for kind in rarest], index=out.index, dtype=float
    )
    return out


def add_entity_type_count(batch: pd.DataFrame) -> pd.DataFrame:
    """accepted_entity_types: distinct entity types of the accepted rows (the same on every row)."""
    return batch.assign(accepted_entity_types=len(entity_mention_counts(batch["accepted_label"].dropna())))


def entity_types_of(labels: Collection[str]) -> frozenset[str]:
    """Entity types named by a model's tag list: ``B-PER``, ``I-PER`` → ``PER``; a bare ``PER`` counts too."""
    return frozenset(
        label[2:] if label[:2] in ("B-", "I-") and is_bio_tag(label) else label
        for label in labels
        if label != NO_ENTITY
    )


def add_token_feedback_columns(frame: pd.DataFrame, known_types: Collection[str]) -> pd.DataFrame:
    """unknown_entity_type and unknown_type_support (of the row's types the model does not know, the one
    in fewest sentences of the batch, and that count; null if none), and the flood columns batch_rows,
    user_share, flood_by, flood_label."""
    out = frame.copy()
    kinds = [frozenset(entity_mentions(label)) for label in out["label"]]
    unknown = [row - set(known_types) for row in kinds]
    sentences = Counter(kind for row in unknown for kind in row)
    rarest = [min(row, key=lambda kind: (sentences[kind], kind)) if row else None for row in unknown]
    out["unknown_entity_type"] = pd.Series(rarest, index=out.index, dtype=object)
    out["unknown_type_support"] = pd.Series(
        [float(sentences[kind]) if kind else float("nan") for kind in rarest], index=out.index, dtype=float
    )
    return _add_token_flood_columns(out, kinds)


def _add_token_flood_columns(out: pd.DataFrame, kinds: list[frozenset[str]]) -> pd.DataFrame:
    """One user (else source) giving one entity type (or only O tags) to a share of the batch's sentences."""
    out["batch_rows"] = len(out)
    who, kind = _flood_key(out)
    out["flood_by"] = kind + " '" + who.fillna("") + "'"
    keys = [sorted(row) or [NO_ENTITY] for row in kinds]
    given = Counter((user, key) for user, row in zip(who, keys, strict=True) if pd.notna(user) for key in row)
    shares: list[float] = []
    labels: list[str | None] = []
    for user, row in zip(who, keys, strict=True):
        if pd.isna(user):
            shares.append(float("nan"))
            labels.append(None)
            continue
        top = max(row, key=lambda key: (given[(user, key)], key))
        shares.append(given[(user, top)] / max(len(out), 1))
        labels.append("only O tags" if top == NO_ENTITY else f"entity type '{top}'")
    out["user_share"] = pd.Series(shares, index=out.index, dtype=float)
    out["flood_label"] = pd.Series(labels, index=out.index, dtype=object)
    return out
