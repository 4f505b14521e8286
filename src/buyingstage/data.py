"""Our labelled corpus: reading, splitting, hashing and validating it.

Layout (see data/README.md): ``data/texts/<lang>.jsonl`` holds single texts,
``data/transcripts/<lang>.jsonl`` multi-turn conversations. Every record carries a
fixed ``split`` (train / dev / test).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from buyingstage.errors import BuyingStageError
from buyingstage.labels import LABELS, LANGUAGES

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
GENRES = ("review", "chat", "query", "forum", "email", "social")
TEXT_FIELDS = ("text", "lang", "label", "genre", "domain", "split", "source")
GENERATED_SOURCE_PREFIX = "template"  # sources starting with this are generated text
SPLIT_SHARES = {"train": 0.65, "dev": 0.13, "test": 0.22}
NEAR_DUPLICATE_SIMILARITY = 0.8  # cosine of character 3-5-gram TF-IDF vectors


def default_data_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "data"


def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSON Lines file; a bad line raises with its line number."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise BuyingStageError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    return rows


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def text_files(data_dir: Path) -> list[Path]:
    return sorted((Path(data_dir) / "texts").glob("*.jsonl"))


def transcript_files(data_dir: Path) -> list[Path]:
    return sorted((Path(data_dir) / "transcripts").glob("*.jsonl"))


def load_texts(data_dir: Path | None = None, split: str | None = None,
               langs: Iterable[str] | None = None) -> list[dict]:
    """Single-text records, optionally of one split and some languages."""
    data_dir = Path(data_dir or default_data_dir())
    wanted = set(langs) if langs else None
    rows = [r for f in text_files(data_dir) for r in read_jsonl(f)]
    return [r for r in rows
            if (split is None or r.get("split") == split) and (wanted is None or r["lang"] in wanted)]


def load_transcripts(data_dir: Path | None = None, split: str | None = None) -> list[dict]:
    data_dir = Path(data_dir or default_data_dir())
    rows = [r for f in transcript_files(data_dir) for r in read_jsonl(f)]
    return [r for r in rows if split is None or r.get("split") == split]


def load_dataset_dict(data_dir: Path | None = None, langs: Iterable[str] | None = None):
    """The single texts as a ``datasets.DatasetDict`` with train / dev / test."""
    from datasets import Dataset, DatasetDict

    rows = load_texts(data_dir, langs=langs)
    return DatasetDict({s: Dataset.from_list([r for r in rows if r["split"] == s]) for s in SPLITS})


def read_labelled_file(path: Path, text_field: str = "text", label_field: str = "label") -> list[dict]:
    """A labelled JSONL or CSV file for evaluation: each row needs text and label."""
    path = Path(path)
    if not path.is_file():
        raise BuyingStageError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = read_jsonl(path)
    else:
        raise BuyingStageError(f"{path}: expected a .jsonl or .csv file")
    for n, r in enumerate(rows, 1):
        if not isinstance(r.get(text_field), str) or r.get(label_field) not in LABELS:
            raise BuyingStageError(
                f"{path}: row {n} needs a string '{text_field}' and a '{label_field}' among {', '.join(LABELS)}"
            )
    return [{**r, "text": r[text_field], "label": r[label_field]} for r in rows]


def data_hash(data_dir: Path | None = None) -> str:
    """sha256 over every corpus file, so a model records exactly what it saw."""
    data_dir = Path(data_dir or default_data_dir())
    h = hashlib.sha256()
    for f in text_files(data_dir) + transcript_files(data_dir):
        h.update(f.relative_to(data_dir).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


# -- splits -------------------------------------------------------------------

def near_duplicate_groups(texts: list[str], threshold: float = NEAR_DUPLICATE_SIMILARITY) -> list[int]:
    """A group id per text; texts with character n-gram cosine >= threshold share one."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True).fit_transform(texts)
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(texts), 1000):
        sims = (vectors[start:start + 1000] @ vectors.T).tocoo()
        for i, j, s in zip(sims.row + start, sims.col, sims.data):
            if i < j and s >= threshold:
                parent[root(i)] = root(j)
    return [root(i) for i in range(len(texts))]


def assign_splits(rows: list[dict], seed: int = 13) -> list[dict]:
    """Give every text without a split one, stratified by language and label.

    Splits already assigned never change. Near-duplicate groups share one split
    (that of any member already placed); generated texts go to train.
    """
    groups = near_duplicate_groups([r["text"] for r in rows])
    split_of_group: dict[int, str] = {}
    for i, r in enumerate(rows):
        if r.get("split") in SPLITS:
            split_of_group.setdefault(groups[i], r["split"])
    rng = np.random.default_rng(seed)
    by_stratum: dict[tuple, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(rows):
        by_stratum[(r["lang"], r["label"])][groups[i]].append(i)
    for key in sorted(by_stratum):
        members = by_stratum[key]
        total = sum(len(m) for m in members.values())
        counts = Counter({s: sum(len(m) for g, m in members.items() if split_of_group.get(g) == s)
                          for s in SPLITS})
        fresh = [g for g in members if g not in split_of_group]
        for k in rng.permutation(len(fresh)):
            g = fresh[k]
            generated = any(rows[i]["source"].startswith(GENERATED_SOURCE_PREFIX) for i in members[g])
            split = "train" if generated else max(SPLITS, key=lambda s: SPLIT_SHARES[s] * total - counts[s])
            split_of_group[g] = split
            counts[split] += len(members[g])
    return [{**r, "split": split_of_group[groups[i]]} for i, r in enumerate(rows)]


def split_corpus_files(data_dir: Path | None = None) -> dict[str, int]:
    """Assign splits in place in every corpus file (existing splits stay); counts per split."""
    data_dir = Path(data_dir or default_data_dir())
    files = text_files(data_dir)
    rows = [(f, r) for f in files for r in read_jsonl(f)]
    assigned = assign_splits([r for _, r in rows])
    for f in files:
        write_jsonl(f, [a for (g, _), a in zip(rows, assigned) if g == f])
    for f in transcript_files(data_dir):
        convs = read_jsonl(f)
        if any(c.get("split") not in SPLITS for c in convs):
            write_jsonl(f, assign_transcript_splits(convs))
    return dict(Counter(a["split"] for a in assigned))


def assign_transcript_splits(convs: list[dict]) -> list[dict]:
    """Per language: the first 60% of conversations train, then dev, the last 20%+ test."""
    out = []
    by_lang = defaultdict(list)
    for c in convs:
        by_lang[c["lang"]].append(c)
    for lang, items in sorted(by_lang.items()):
        n = len(items)
        n_test, n_dev = max(2, round(0.2 * n)), max(1, round(0.15 * n))
        for k, c in enumerate(items):
            split = "test" if k >= n - n_test else "dev" if k >= n - n_test - n_dev else "train"
            out.append({**c, "split": split})
    return out


# -- validation ---------------------------------------------------------------

@dataclass
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _iter_text_records(data_dir: Path) -> Iterator[tuple[str, dict]]:
    for f in text_files(data_dir):
        with open(f, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    yield f"{f.name}:{n}", line


def check_schema(data_dir: Path) -> tuple[list[dict], list[Problem]]:
    """Parse every text record and check its fields; return the good records and the problems."""
    rows, problems = [], []
    for where, line in _iter_text_records(data_dir):
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(Problem(where, f"not valid JSON ({e.msg})"))
            continue
        for k in TEXT_FIELDS:
            if not isinstance(r.get(k), str) or not r[k].strip():
                problems.append(Problem(where, f"field '{k}' missing or empty"))
        if r.get("label") not in LABELS:
            problems.append(Problem(where, f"label {r.get('label')!r} is not one of {', '.join(LABELS)}"))
        if r.get("lang") not in LANGUAGES:
            problems.append(Problem(where, f"lang {r.get('lang')!r} is not one of {', '.join(LANGUAGES)}"))
        if r.get("genre") not in GENRES:
            problems.append(Problem(where, f"genre {r.get('genre')!r} is not one of {', '.join(GENRES)}"))
        if r.get("split") not in SPLITS:
            problems.append(Problem(where, f"split {r.get('split')!r} is not one of {', '.join(SPLITS)}"))
        if str(r.get("source", "")).startswith(GENERATED_SOURCE_PREFIX) and r.get("split") != "train":
            problems.append(Problem(where, "generated text outside train"))
        r["_where"] = where
        rows.append(r)
    return rows, problems


def check_transcripts(data_dir: Path) -> list[Problem]:
    problems = []
    for f in transcript_files(data_dir):
        for n, c in enumerate(read_jsonl(f), 1):
            where = f"{f.name}:{n}"
            turns = c.get("turns") or []
            if not 4 <= len(turns) <= 20:
                problems.append(Problem(where, f"{len(turns)} turns, expected 4 to 20"))
            for t in turns:
                if t.get("speaker") not in ("customer", "agent") or t.get("label") not in LABELS \
                        or not isinstance(t.get("text"), str):
                    problems.append(Problem(where, f"bad turn {t}"))
            if c.get("final_stage") != current_stage([t for t in turns if t.get("label") in LABELS]):
                problems.append(Problem(where, f"final_stage {c.get('final_stage')!r} is not the latest "
                                               "customer stage that is not none"))
            if c.get("split") not in SPLITS:
                problems.append(Problem(where, f"split {c.get('split')!r}"))
    return problems


def current_stage(turns: list[dict]) -> str:
    """The label of the latest customer turn that is not ``none`` (else ``none``)."""
    for t in reversed(turns):
        if t["speaker"] == "customer" and t["label"] != "none":
            return t["label"]
    return "none"


def check_duplicates(rows: list[dict]) -> list[Problem]:
    """Exact duplicates anywhere, and near-duplicates that cross splits."""
    problems = []
    seen: dict[str, str] = {}
    for r in rows:
        key = " ".join(r["text"].lower().split())
        if key in seen:
            problems.append(Problem(r["_where"], f"duplicate of {seen[key]}"))
        seen.setdefault(key, r["_where"])
    groups = near_duplicate_groups([r["text"] for r in rows])
    members = defaultdict(list)
    for r, g in zip(rows, groups):
        members[g].append(r)
    for group in members.values():
        if len({r["split"] for r in group}) > 1:
            where = ", ".join(f"{r['_where']} ({r['split']})" for r in group[:4])
            problems.append(Problem(where, "near-duplicates in different splits"))
    return problems


def check_languages(rows: list[dict], min_agreement: float = 0.95) -> list[Problem]:
    """langdetect must agree with ``lang`` on >= 95% of texts of five words or more."""
    from buyingstage.langid import plain_langdetect

    long_rows = [r for r in rows if len(r["text"].split()) >= 5]
    detected = [(r, plain_langdetect(r["text"])) for r in long_rows]
    wrong = [(r, lang) for r, lang in detected if lang != r["lang"]]
    agreement = 1 - len(wrong) / max(len(long_rows), 1)
    if agreement >= min_agreement:
        return []
    shown = "; ".join(f"{r['_where']} ({lang})" for r, lang in wrong[:10])
    return [Problem("langdetect", f"agrees with lang on {agreement:.1%} of texts of 5+ words "
                                  f"(< {min_agreement:.0%}); e.g. {shown}")]


def check_counts(rows: list[dict], min_per_language: int = 720, min_per_label: int = 120,
                 min_test_share: float = 0.2, max_generated_share: float = 0.1) -> list[Problem]:
    problems = []
    per_lang = Counter(r["lang"] for r in rows)
    per_cell = Counter((r["lang"], r["label"]) for r in rows)
    for lang in LANGUAGES:
        if per_lang[lang] < min_per_language:
            problems.append(Problem("counts", f"{lang}: {per_lang[lang]} texts < {min_per_language}"))
        for label in LABELS:
            if per_cell[lang, label] < min_per_label:
                problems.append(Problem("counts", f"{lang}/{label}: {per_cell[lang, label]} texts < {min_per_label}"))
    test_share = sum(r["split"] == "test" for r in rows) / max(len(rows), 1)
    if test_share < min_test_share:
        problems.append(Problem("counts", f"test share {test_share:.1%} < {min_test_share:.0%}"))
    generated = sum(str(r["source"]).startswith(GENERATED_SOURCE_PREFIX) for r in rows) / max(len(rows), 1)
    if generated > max_generated_share:
        problems.append(Problem("counts", f"generated share {generated:.1%} > {max_generated_share:.0%}"))
    return problems


def validate_corpus(data_dir: Path | None = None, check_language: bool = True) -> list[Problem]:
    """Every check of the corpus; an empty list means it is sound."""
    data_dir = Path(data_dir or default_data_dir())
    rows, problems = check_schema(data_dir)
    problems += check_duplicates(rows)
    problems += check_counts(rows)
    problems += check_transcripts(data_dir)
    if check_language:
        problems += check_languages(rows)
    return problems


def corpus_table(rows: list[dict], by: tuple[str, ...]) -> str:
    """A Markdown count table (rows: first key, columns: second key)."""
    first, second = by
    cols = sorted({r[second] for r in rows})
    out = io.StringIO()
    out.write(f"| {first} \\ {second} | " + " | ".join(cols) + " | total |\n")
    out.write("|---" * (len(cols) + 2) + "|\n")
    for key in sorted({r[first] for r in rows}):
        counts = Counter(r[second] for r in rows if r[first] == key)
        out.write(f"| {key} | " + " | ".join(str(counts[c]) for c in cols) + f" | {sum(counts.values())} |\n")
    return out.getvalue()
