"""What the README and the config files claim holds: cited documents exist, counts are true."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from xinc.config import load_config
from xinc.models import build_model, count_params

DOCS = [ROOT / "README.md", ROOT / "config.yaml", *sorted((ROOT / "docs").glob("*.md"))]


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
