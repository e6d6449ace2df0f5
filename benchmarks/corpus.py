"""A deterministic benchmark tenant: N documents of mixed formats and realistic sizes.

Document `i` depends only on (seed, i), so the first 1,000 documents of a 10,000-document corpus
are the 1,000-document corpus. Text comes from a word-bigram chain trained on the sandbox's
sample documents (business prose, unique per document); it is rendered with the sandbox's own
renderers (`sandbox.samples.render_source`: pypdf-readable PDF, python-docx, python-pptx,
openpyxl), and office packages are deflated as Word and Excel would store them.

Sizes follow a log-normal word count (median 450 words, long tail, capped at 6,000), the
shape of a typical document library: many memos and policies, a few long reports. Rendered
bytes are cached under `benchmarks/.cache/` (not committed): the first run renders (about 15 ms
a document, on every core), later runs load.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import math
import os
import pickle
import random
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sandbox import samples
from sandbox.markup import parse_source

GENERATOR_VERSION = 2  # bump when the text, names, placement or rendering change
CACHE_DIR = Path(__file__).parent / ".cache"
CACHE_BLOCK = 250  # documents per cache file
DOCS_PER_FOLDER = 50
SITES = ("hr", "finance", "engineering", "sales")
LIBRARIES = ("Documents", "Projects")
# Share of documents per format, by count (a library of office documents and PDFs, some web
# and plain-text files).
FORMAT_WEIGHTS = {"pdf": 30, "docx": 25, "pptx": 10, "xlsx": 10, "html": 8, "md": 7, "txt": 10}
MEDIAN_WORDS, SIGMA, MIN_WORDS, MAX_WORDS = 400, 0.9, 40, 6_000
DEPARTMENTS = ("HR", "Finance", "Engineering", "Sales", "Legal", "Operations")


@dataclass(frozen=True, slots=True)
class DocSpec:
    """One generated document: where it lives, what it is called, and its text as sample markup."""

    index: int
    site: str
    library: str
    folder: str  # "/Area 000/Set 3"
    name: str
    markup: str
    reader: str | None  # a user with unique read access to this file, else inherited


@lru_cache(maxsize=1)
def _chain() -> tuple[list[str], dict[str, list[str]]]:
    """Words of the sample documents and, for each, the words that follow it."""
    words: list[str] = []
    for path in sorted(samples.SAMPLES_DIR.glob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith(("#", "|", "<<<")):
                continue
            words.extend(w for w in re.findall(r"[A-Za-z][A-Za-z'-]*|\d+", line.lstrip("- ")))
    follows: dict[str, list[str]] = defaultdict(list)
    for a, b in zip(words, words[1:]):
        follows[a.lower()].append(b.lower())
    return [w.lower() for w in words], dict(follows)


def _sentence(rng: random.Random) -> str:
    vocabulary, follows = _chain()
    word = rng.choice(vocabulary)
    out = [word]
    for _ in range(rng.randint(7, 22)):
        word = rng.choice(follows.get(word) or vocabulary)
        out.append(word)
    return " ".join(out).capitalize() + "."


def _phrase(rng: random.Random, words: int) -> str:
    """A few words in title case, for titles and headings."""
    return " ".join(_sentence(rng).rstrip(".").split()[:words]).title()


def paragraph(rng: random.Random, words: int) -> str:
    """Prose of about `words` words."""
    out: list[str] = []
    count = 0
    while count < words:
        sentence = _sentence(rng)
        out.append(sentence)
        count += sentence.count(" ") + 1
    return " ".join(out)


def _format(rng: random.Random) -> str:
    return rng.choices(list(FORMAT_WEIGHTS), weights=list(FORMAT_WEIGHTS.values()))[0]


def _markup(rng: random.Random, fmt: str, title: str, words: int) -> str:
    """The document's text: headed sections of paragraphs (slides of bullets, sheets of tables)."""
    lines = [f"# {title}", ""]
    written = 0
    section = 0
    while written < words:
        section += 1
        lines += [f"## {_phrase(rng, rng.randint(2, 6))}", ""]
        if fmt == "pptx":
            for _ in range(rng.randint(3, 5)):
                lines.append(f"- {paragraph(rng, 12)}")
                written += 12
            lines.append("")
        elif fmt == "xlsx":
            lines.append("| Item | Owner | Quarter | Amount | Notes |")
            for row in range(rng.randint(6, 14)):
                notes = paragraph(rng, 6)
                item = _phrase(rng, 2)
                lines.append(f"| {item} | {rng.choice(DEPARTMENTS)} | Q{rng.randint(1, 4)} | {rng.randint(100, 99_999)} | {notes} |")
                written += 12
            lines.append("")
        else:
            for _ in range(rng.randint(1, 3)):
                size = rng.randint(40, 140)
                lines += [paragraph(rng, size), ""]
                written += size
    return "\n".join(lines)


def doc_spec(index: int, seed: int = 1) -> DocSpec:
    """Document `index` of the corpus `seed` (independent of how many documents there are)."""
    rng = random.Random(f"spindex-bench:{seed}:{index}")
    fmt = _format(rng)
    words = int(min(MAX_WORDS, max(MIN_WORDS, rng.lognormvariate(math.log(MEDIAN_WORDS), SIGMA))))
    topic = _phrase(rng, rng.randint(2, 5))
    title = f"{topic} {index:05d}"
    block = index // DOCS_PER_FOLDER
    reader = f"user{rng.randrange(40):02d}@contoso.example" if rng.random() < 0.03 else None
    return DocSpec(
        index=index,
        site=SITES[block % len(SITES)],
        library=LIBRARIES[(block // len(SITES)) % len(LIBRARIES)],
        folder=f"/Area {block // 8:03d}/Set {block % 8}",
        name=f"{title}.{fmt}",
        markup=_markup(rng, fmt, title, words),
        reader=reader,
    )


def edit_one_paragraph(spec: DocSpec, rng: random.Random) -> DocSpec:
    """The document with one paragraph (else one bullet, else one table row) rewritten, as an
    author's small edit is: same length, new words."""
    lines = spec.markup.split("\n")
    kinds = (
        [n for n, line in enumerate(lines) if line and not line.startswith(("#", "|", "- "))],
        [n for n, line in enumerate(lines) if line.startswith("- ")],
        [n for n, line in enumerate(lines) if line.startswith("| ") and not line.startswith("| Item |")],
    )
    candidates = next((k for k in kinds if k), [len(lines) - 1])
    n = rng.choice(candidates)
    line = lines[n]
    words = max(6, line.count(" ") + 1)
    if line.startswith("- "):
        lines[n] = "- " + paragraph(rng, words - 1)
    elif line.startswith("| "):
        cells = line.strip("|").split("|")
        lines[n] = "| " + " | ".join([*cells[:-1], paragraph(rng, 6)]) + " |"
    else:
        lines[n] = paragraph(rng, words)
    return DocSpec(spec.index, spec.site, spec.library, spec.folder, spec.name, "\n".join(lines), spec.reader)


def restricted_folder(folder: str) -> str | None:
    """The department group that alone may read `folder`, for one folder in ten; else None."""
    digest = hashlib.sha256(folder.encode()).digest()
    return DEPARTMENTS[digest[1] % len(DEPARTMENTS)] if digest[0] % 10 == 0 else None


def render(spec: DocSpec) -> bytes:
    """The document's bytes in its format (office packages deflated, as Office stores them)."""
    data = samples.render_source(parse_source(spec.markup), spec.name).content.read()
    if spec.name.endswith((".docx", ".pptx", ".xlsx")):
        data = _deflate(data)
    return data


def _deflate(package: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, source.read(info))
    return out.getvalue()


def _render_block(args: tuple[int, int, int]) -> list[bytes]:
    seed, start, end = args
    return [render(doc_spec(i, seed)) for i in range(start, end)]


def rendered(n: int, seed: int = 1, *, workers: int | None = None) -> list[bytes]:
    """The bytes of documents 0..n-1, rendered in parallel and cached per block of documents."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    blocks = [(seed, start, min(start + CACHE_BLOCK, n)) for start in range(0, n, CACHE_BLOCK)]
    out: list[bytes] = []
    missing: list[tuple[int, int, int]] = []
    loaded: dict[int, list[bytes]] = {}
    for block in blocks:
        path = _cache_path(*block)
        full = _cache_path(block[0], block[1], block[1] + CACHE_BLOCK)
        for candidate in (path, full):
            if candidate.is_file():
                data = pickle.loads(candidate.read_bytes())
                loaded[block[1]] = data[: block[2] - block[1]]
                break
        else:
            missing.append(block)
    if missing:
        with concurrent.futures.ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
            for block, data in zip(missing, pool.map(_render_block, missing)):
                _cache_path(*block).write_bytes(pickle.dumps(data))
                loaded[block[1]] = data
    for block in blocks:
        out.extend(loaded[block[1]])
    return out


def _cache_path(seed: int, start: int, end: int) -> Path:
    return CACHE_DIR / f"corpus-v{GENERATOR_VERSION}-s{seed}-{start:06d}-{end:06d}.pkl"


def tenant_document(seed: int = 1) -> dict[str, Any]:
    """The tenant file (as parsed YAML) of the benchmark tenant, without its documents."""
    users = [{"upn": f"user{n:02d}@contoso.example", "display_name": f"User {n:02d}"} for n in range(40)]
    groups: list[dict[str, Any]] = [
        {
            "name": f"{dept} Team",
            "kind": "m365",
            "members": [u["upn"] for n, u in enumerate(users) if n % len(DEPARTMENTS) == d],
            "owners": [users[d]["upn"]],
        }
        for d, dept in enumerate(DEPARTMENTS)
    ]
    groups.append({"name": "All Staff", "kind": "security", "members": [{"group": g["name"]} for g in groups]})
    sites = []
    for s, site in enumerate(SITES):
        team = f"{DEPARTMENTS[s]} Team"
        sites.append({
            "path": f"/sites/{site}",
            "display_name": site.title(),
            "site_groups": [
                {"id": 3, "title": f"{site} Owners", "associated": "owners", "members": [{"m365_owners": team}]},
                {"id": 4, "title": f"{site} Visitors", "associated": "visitors", "members": [{"security_group": "All Staff"}]},
                {"id": 5, "title": f"{site} Members", "associated": "members", "members": [{"m365_members": team}]},
            ],
            "libraries": [{"name": name} for name in LIBRARIES],
        })  # fmt: skip
    return {
        "tenant": {"name": "Contoso Benchmark", "hostname": "contoso.sharepoint.com", "base_time": "2025-09-01T08:00:00Z"},
        "users": users,
        "groups": groups,
        "sites": sites,
    }


def build_tenant(n: int, seed: int = 1) -> tuple[Any, list[tuple[str, str, DocSpec]]]:
    """A sandbox Tenant holding documents 0..n-1, and (drive id, item id, spec) of each."""
    from sandbox.loader import build_tenant as build

    tenant = build(tenant_document(seed))
    drives = {
        (site.path.rsplit("/", 1)[-1], drive.name): drive.id for site in tenant.sites for drive in site.drives if not drive.system
    }
    placed: list[tuple[str, str, DocSpec]] = []
    folders_made: set[tuple[str, str]] = set()
    for spec, data in zip((doc_spec(i, seed) for i in range(n)), rendered(n, seed)):
        drive_id = drives[(spec.site, spec.library)]
        if (drive_id, spec.folder) not in folders_made:
            folders_made.add((drive_id, spec.folder))
            parent, _, leaf = spec.folder.rpartition("/")
            group = restricted_folder(spec.folder)
            tenant.add_folder(drive_id, parent or "/", leaf, grants=[{"group": f"{group} Team"}] if group else None)
        grants = [{"user": spec.reader, "role": "read"}] if spec.reader else None
        item = tenant.add_file(drive_id, spec.folder, spec.name, data, grants=grants)
        placed.append((drive_id, item.item_id, spec))
    return tenant, placed

