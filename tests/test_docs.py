"""What the README, the docs and the config files claim holds: cited documents and sections
exist, counts, switches and fixture checksums are true."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

import yaml

from tests.conftest import FIXTURES, ROOT
from xinc.config import load_config
from xinc.models import build_model, count_params

DOCS = [ROOT / "README.md", ROOT / "config.yaml", *sorted((ROOT / "docs").glob("*.md"))]

# Where code, config and docs cite documents by repository path and section.
CITING = ["xinc", "workflow", "tests", "presets", "Snakefile", "config.yaml", "README.md",
          "docs/formats.md", "docs/method.md"]
TEXT_SUFFIXES = {".py", ".smk", ".yaml", ".yml", ".rst", ".md", ".c", ".h", ""}
SPEC_NAMES = ("models", "analyses", "datasets", "performance", "workflow", "formats", "method")
SECTION = r"§(\d+[a-z]?(?:\.\d+)*)(?:\s*[–-]\s*§?(\d+[a-z]?(?:\.\d+)*))?"
CITATION = re.compile(r"(?P<doc>docs/[\w/.-]+?\.md|tests/fixtures/README\.md)|(?P<sec>" + SECTION
                      + ")")
REACH = 40  # most characters between a document (or its previous section) and a section of it


def citing_files() -> list[Path]:
    """Text files of CITING (this file excluded: its examples are not citations)."""
    files = []
    for name in CITING:
        path = ROOT / name
        found = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [f for f in found if f.is_file() and f.suffix in TEXT_SUFFIXES
                  and "__pycache__" not in f.parts and f.name != Path(__file__).name]
    return files


@cache
def sections(doc: Path) -> set[str]:
    """Section numbers of a Markdown file's headings ("## 6b. …" → 6b, "### 3.4 …" → 3.4)."""
    return set(re.findall(r"^#{1,6}\s+(\d+[a-z]?(?:\.\d+)*)\.?\s", doc.read_text(), re.M))


def citations(text: str, own: str | None = None) -> list[tuple[str, str]]:
    """(document, section) of every "docs/….md §N" citation in `text`, and of the further
    sections that follow it closely ("§8.3 … and §10", ranges "§5–6"); sections far from any
    document are `own`'s (a document citing itself), or skipped when `own` is None."""
    found, doc, last = [], None, -REACH - 1
    for m in CITATION.finditer(text):
        if m["doc"]:
            doc, last = m["doc"], m.end()
            continue
        near = doc is not None and m.start() - last <= REACH and ".md" not in text[last:m.start()]
        target = doc if near else own
        if target is not None:
            found += [(target, s) for s in m.groups()[2:] if s]
        last = m.end() if near else last
    return found


def test_every_cited_document_is_in_the_repository():
    cited = {name for path in DOCS for name in re.findall(r"\b([\w-]+\.md)\b", path.read_text())}
    present = {p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts}
    assert cited <= present, sorted(cited - present)


def test_config_comment_states_the_demo_parameter_count():
    text = (ROOT / "config.yaml").read_text()
    stated = re.search(r"modelsize: .*?([\d,]+) parameters", text)
    assert stated, "config.yaml states the demo NeRV's parameter count"
    model = build_model("nerv", load_config(None, ROOT)["models"]["nerv"])
    assert int(stated[1].replace(",", "")) == count_params(model)


def test_every_section_citation_resolves():
    bad = []
    for path in citing_files():
        rel = path.relative_to(ROOT).as_posix()
        own = rel if rel.startswith("docs/") else None
        for doc, section in citations(path.read_text(), own):
            target = ROOT / doc
            if not target.is_file():
                bad.append(f"{rel}: {doc} does not exist")
            elif section not in sections(target):
                bad.append(f"{rel}: {doc} has no section {section}")
    assert not bad, "\n".join(sorted(set(bad)))


def test_citation_parser():
    text = ('(docs/method.md §8.3 "Group deltas" and §10 Fig 4; docs/formats.md §5–6) '
            + "x" * 50 + " §2")
    assert citations(text) == [("docs/method.md", "8.3"), ("docs/method.md", "10"),
                               ("docs/formats.md", "5"), ("docs/formats.md", "6")]
    assert citations(text, own="docs/x.md")[-1] == ("docs/x.md", "2")


def test_no_citation_without_a_repository_path():
    bare = re.compile(r"(?<![\w/.-])(?:" + "|".join(SPEC_NAMES) + r")\.md\b")
    hits = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
            for path in citing_files() if path.relative_to(ROOT).parts[0] != "README.md"
            for n, line in enumerate(path.read_text().splitlines(), 1) if bare.search(line)]
    assert not hits, "cite docs/method.md, docs/formats.md or docs/spec/<file>.md:\n" + \
        "\n".join(hits)


def test_method_switch_table_matches_schema_and_reference_preset():
    text = (ROOT / "docs" / "method.md").read_text()
    table = text.split("### 6.1 Switches", 1)[1].split("### 6.2", 1)[0]
    rows = re.findall(r"^\| `([\w.]+)` \| `(\w+)` \| `(\w+)` \|", table, re.M)
    assert len(rows) >= 10, rows
    schema, preset = (yaml.load(path.read_text(), Loader=yaml.CSafeLoader) for path in (
        ROOT / "xinc" / "config.schema.yaml", ROOT / "presets" / "reference.yaml"))
    for key, default, authors in rows:
        node, value = schema, preset
        for part in key.split("."):
            node = node["properties"][part]
            value = value[part]
        assert node["default"] == default, key
        assert default in node["enum"] and authors in node["enum"], key
        assert value == authors, f"presets/reference.yaml sets {key}: {value}, not {authors}"


def test_fixture_checksums_match_their_readme():
    rows = re.findall(r"^\| `([\w.]+\.npz)` \| ([\d,]+) \| `([0-9a-f]{64})` \|",
                      (FIXTURES / "README.md").read_text(), re.M)
    assert {name for name, _, _ in rows} == {p.name for p in FIXTURES.glob("*.npz")}
    for name, size, digest in rows:
        data = (FIXTURES / name).read_bytes()
        assert len(data) == int(size.replace(",", "")), name
        assert hashlib.sha256(data).hexdigest() == digest, name
