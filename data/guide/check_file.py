"""Quick self-check for writers: counts and schema of one texts or transcripts file."""
import collections, json, sys

LABELS = {"problem_recognition", "information_search", "evaluation_of_alternatives",
          "purchase_decision", "post_purchase", "none"}
GENRES = {"review", "chat", "query", "forum", "email", "social"}

path = sys.argv[1]
rows, errors = [], []
for n, line in enumerate(open(path, encoding="utf-8"), 1):
    if not line.strip():
        continue
    try:
        r = json.loads(line)
    except json.JSONDecodeError as e:
        errors.append(f"line {n}: bad JSON: {e}")
        continue
    rows.append(r)
    if "turns" in r:
        for t in r["turns"]:
            if t.get("label") not in LABELS or t.get("speaker") not in {"customer", "agent"}:
                errors.append(f"line {n}: bad turn {t}")
        if r.get("final_stage") not in LABELS:
            errors.append(f"line {n}: bad final_stage")
        continue
    if r.get("label") not in LABELS:
        errors.append(f"line {n}: bad label {r.get('label')!r}")
    if r.get("genre") not in GENRES:
        errors.append(f"line {n}: bad genre {r.get('genre')!r}")
    if r.get("hard_case") not in (None, 1, 2, 3, 4, 5, 6, 7, 8):
        errors.append(f"line {n}: bad hard_case {r.get('hard_case')!r}")
    for k in ("text", "lang", "domain", "source"):
        if not isinstance(r.get(k), str) or not r.get(k).strip():
            errors.append(f"line {n}: missing {k}")
print(f"{len(rows)} records")
if rows and "turns" in rows[0]:
    for r in rows:
        print(r.get("id"), len(r["turns"]), "turns", r.get("outcome"), r.get("final_stage"))
else:
    for key in ("label", "genre", "domain", "hard_case"):
        print(key, dict(collections.Counter(r.get(key) for r in rows).most_common()))
    hard = collections.Counter(r["label"] for r in rows if r.get("hard_case"))
    tot = collections.Counter(r["label"] for r in rows)
    print("hard share per label", {k: round(hard[k] / tot[k], 2) for k in tot})
    words = [len(r["text"].split()) for r in rows]
    print("over 60 words:", sum(w > 60 for w in words), f"({sum(w > 60 for w in words) / max(len(words), 1):.1%})",
          "| <=6 words:", sum(w <= 6 for w in words))
    seen = collections.Counter(r["text"].strip().lower() for r in rows)
    dups = [t for t, c in seen.items() if c > 1]
    if dups:
        errors.append(f"{len(dups)} duplicate texts, e.g. {dups[:3]}")
print("\n".join(errors) if errors else "no schema errors")
