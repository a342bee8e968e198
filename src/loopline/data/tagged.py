"""Token-tagged sentences (named-entity recognition data): CoNLL files, token JSONL and span JSONL.

Every reader returns ``TaggedSentence`` values with tags in **BIO** (IOB2): ``B-X`` opens an entity,
``I-X`` continues it, ``O`` is outside. CoNLL-2003's original files use **IOB1**, where ``I-X`` is the
default and ``B-X`` appears only where an entity follows straight on from another of the same type;
converting by swapping the first ``I-`` of each run would merge such neighbours, so ``iob1_to_bio``
opens a new entity exactly where IOB1 says one starts (after ``O``, after another type, or at ``B-``).

The first piece of the token-classification task (issue 10); the task interface builds on it.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from loopline.data.loading import decode_file
from loopline.errors import DataError

Scheme = Literal["auto", "iob1", "bio"]
DOCSTART = "-DOCSTART-"
#: Words and single punctuation marks, with their character offsets (span JSONL has raw text).
_TOKEN = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]", re.UNICODE)
_TAG = re.compile(r"O|[BI]-\S+")


def entity_type(tag: str) -> str:
    """``B-PER`` / ``I-PER`` → ``PER``; ``O`` stays ``O``."""
    return tag[2:] if tag[:2] in ("B-", "I-") else tag


@dataclass(frozen=True)
class TaggedSentence:
    tokens: tuple[str, ...]
    tags: tuple[str, ...]  # BIO, one per token

    def entities(self) -> list[tuple[int, int, str]]:
        """(first token, end token exclusive, type) of each entity."""
        found: list[tuple[int, int, str]] = []
        for index, tag in enumerate(self.tags):
            if tag.startswith("B-"):
                found.append((index, index + 1, tag[2:]))
            elif tag.startswith("I-") and found and found[-1][1] == index and found[-1][2] == tag[2:]:
                found[-1] = (found[-1][0], index + 1, tag[2:])
        return found


def iob1_to_bio(tags: Sequence[str]) -> list[str]:
    """IOB1 tags as BIO: an ``I-X`` that does not continue an ``X`` entity opens one."""
    converted: list[str] = []
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            converted.append("B-" + tag[2:])
        else:
            converted.append(tag)
        previous = tag
    return converted


def is_bio_tag(tag: str) -> bool:
    """``O``, ``B-TYPE`` or ``I-TYPE`` with a non-empty type and no whitespace."""
    return _TAG.fullmatch(tag) is not None


def bio_problems(tags: Sequence[str], known: Iterable[str] | None = None) -> list[str]:
    """What is wrong with a BIO tag sequence: malformed tags, ``I-X`` without an ``X`` before it,
    types outside ``known`` (entity types such as ``PER``; None accepts any)."""
    allowed = None if known is None else set(known)
    problems = []
    previous = "O"
    for index, tag in enumerate(tags):
        if not is_bio_tag(tag):
            problems.append(f"token {index}: tag {tag!r} is not O, B-TYPE or I-TYPE")
        elif tag != "O" and allowed is not None and tag[2:] not in allowed:
            problems.append(f"token {index}: unknown entity type {tag[2:]!r}")
        elif tag.startswith("I-") and previous[2:] != tag[2:]:
            problems.append(f"token {index}: {tag} does not continue a {tag[2:]} entity (after {previous})")
        previous = tag
    return problems


def read_conll(path: Path | str, scheme: Scheme = "auto", encoding: str = "utf-8") -> list[TaggedSentence]:
    """A CoNLL file: one ``token ... tag`` line per token (the tag is the last column), a blank line
    between sentences, ``-DOCSTART-`` lines skipped. ``auto`` reads IOB1 when some entity starts with
    ``I-`` (no valid BIO file does), else BIO."""
    path = Path(path)
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    with _lines(path, encoding) as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields or fields[0] == DOCSTART:
                if tokens:
                    sentences.append((tokens, tags))
                tokens, tags = [], []
                continue
            if len(fields) < 2:
                raise DataError(
                    f"Line {number} has one column ({line.strip()!r}); a CoNLL line is 'token ... tag'.",
                    where=f"{path}:{number}",
                    hint="Put whitespace between a token and its tag; a blank line ends a sentence.",
                )
            tokens.append(fields[0])
            tags.append(fields[-1])
    if tokens:
        sentences.append((tokens, tags))
    if scheme == "auto":
        scheme = "iob1" if any(bio_problems(t) for _, t in sentences) else "bio"
    return [
        TaggedSentence(tuple(words), tuple(iob1_to_bio(labels) if scheme == "iob1" else labels))
        for words, labels in sentences
    ]


def read_token_jsonl(
    path: Path | str, encoding: str = "utf-8", *, strict: bool = True
) -> list[TaggedSentence]:
    """JSON lines ``{"tokens": [...], "tags": [...]}`` (BIO), or ``{"text": ..., "entities": [{"start",
    "end", "label"}]}`` with character offsets, tokenised into words and punctuation.

    ``strict=False`` keeps a sentence whose token and tag lists differ in length, for the data contract
    to quarantine with its reason (a reader that refused would lose the rest of the file's rows)."""
    path = Path(path)
    sentences = []
    with _lines(path, encoding) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"Line {number} is not JSON: {err.msg}.", where=where) from None
            if not isinstance(row, dict):
                raise DataError(f"Line {number} is not a JSON object.", where=where)
            if "tokens" in row:
                sentences.append(_from_tokens(row, where, strict))
            elif "text" in row:
                sentences.append(spans_to_sentence(str(row["text"]), row.get("entities") or [], where))
            else:
                raise DataError(
                    f"Line {number} has neither 'tokens' and 'tags' nor 'text' and 'entities'.",
                    where=where,
                )
    return sentences


def _lines(path: Path, encoding: str) -> io.StringIO:
    """The file's lines, decoded as every loader decodes (a byte-order mark wins; a byte that is not
    ``encoding`` is a DataError naming its line, not a traceback)."""
    return io.StringIO(decode_file(path, encoding), newline=None)  # newlines as a text-mode file's


def words_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """The words and punctuation marks of raw text with their character offsets (start, end)."""
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def spans_to_sentence(text: str, entities: Sequence[object], where: str) -> TaggedSentence:
    """Character spans as BIO tags over the text's words; a span must start and end on word edges."""
    words = words_with_offsets(text)
    tags = ["O"] * len(words)
    for start, end, label in sorted(_span(entity, where) for entity in entities):
        if not 0 <= start < end <= len(text):
            raise DataError(
                f"Entity {label} at characters {start}-{end} is not a span of the text, which has "
                f"{len(text)} characters",
                where=where,
                hint="Give 'start' and 'end' as character offsets into 'text', end exclusive "
                "(0 <= start < end <= the text's length).",
            )
        inside = [i for i, (_, s, e) in enumerate(words) if s >= start and e <= end]
        covered = (words[inside[0]][1], words[inside[-1]][2]) if inside else None
        if covered != (start, end) or any(tags[i] != "O" for i in inside):
            raise DataError(
                f"Entity {label} at characters {start}-{end} ({text[start:end]!r}) does not cover whole "
                "words or overlaps another entity.",
                where=where,
                hint="Give spans that start and end on word boundaries and do not overlap.",
            )
        tags[inside[0]] = "B-" + label
        for i in inside[1:]:
            tags[i] = "I-" + label
    return TaggedSentence(tuple(w for w, _, _ in words), tuple(tags))


def _span(entity: object, where: str) -> tuple[int, int, str]:
    problem = DataError(f"Entity {entity!r} is not {{'start': int, 'end': int, 'label': str}}.", where=where)
    if not isinstance(entity, dict):
        raise problem
    try:
        return int(entity["start"]), int(entity["end"]), str(entity["label"])
    except (KeyError, TypeError, ValueError):
        raise problem from None


def _from_tokens(row: dict[str, object], where: str, strict: bool = True) -> TaggedSentence:
    tokens, tags = row.get("tokens"), row.get("tags")
    if not isinstance(tokens, list) or not isinstance(tags, list) or (strict and len(tokens) != len(tags)):
        raise DataError(
            "'tokens' and 'tags' must be lists of the same length "
            f"({_length(tokens)} tokens, {_length(tags)} tags).",
            where=where,
        )
    return TaggedSentence(tuple(str(t) for t in tokens), tuple(str(t) for t in tags))


def _length(value: object) -> str:
    return str(len(value)) if isinstance(value, list) else "not a list of"


JSONL_SUFFIXES = (".jsonl", ".ndjson")
TABLE_SUFFIXES = (".csv", ".json", ".parquet", ".pq")  # the sequence task's formats (.tsv may be CoNLL)


def read_tagged_file(
    path: Path | str, encoding: str = "utf-8", *, strict: bool = True
) -> list[TaggedSentence]:
    """Sentences of a JSONL file (tokens/tags or text/entities) or else a CoNLL file (IOB1 or BIO)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file not found: {path}", where=str(path), hint="Check the path.")
    if path.suffix.lower() in TABLE_SUFFIXES:  # read as CoNLL, a table is garbage or a decode error
        raise DataError(
            f"A {path.suffix} file is not token-tagged data: the token task reads CoNLL files (a 'token "
            "... tag' line per word, a blank line between sentences) and JSONL with tokens/tags or "
            "text/entities",
            where=str(path),
            hint="A file of text,label rows is sequence data: pass --task sequence (or set task = "
            '"sequence"); for tagged sentences, export CoNLL or JSONL.',
        )
    if path.suffix.lower() in JSONL_SUFFIXES:
        return read_token_jsonl(path, encoding, strict=strict)
    return read_conll(path, encoding=encoding)


def sentences_to_frame(sentences: Sequence[TaggedSentence]) -> pd.DataFrame:
    """loopline's row format for tagged sentences: ``text`` = words joined by single spaces, ``label`` =
    their tags joined the same way, ``source_row`` = the sentence's number (1-based), so every store
    (snapshots, splits, feedback, replay) holds a sentence as one text with one label string."""
    return pd.DataFrame(
        {
            "text": [" ".join(s.tokens) for s in sentences],
            "label": [" ".join(s.tags) for s in sentences],
            "source_row": range(1, len(sentences) + 1),
        }
    )


def frame_to_sentences(texts: Iterable[str], labels: Iterable[str]) -> list[TaggedSentence]:
    """The inverse of :func:`sentences_to_frame`."""
    return [
        TaggedSentence(tuple(str(t).split()), tuple(str(g).split()))
        for t, g in zip(texts, labels, strict=True)
    ]
