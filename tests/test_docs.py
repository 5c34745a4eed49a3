"""The Markdown pages stay true: links resolve, docs/config.md lists every config key with its default, and
README.md stays a front door (at most 12,000 bytes). Fast; no Ray.

    scripts/loopback-only .venv/bin/python -m pytest -q tests/test_docs.py
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

from lstm_ray.config import ExperimentConfig

PAGES = sorted(
    [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "cluster" / "README.md", *(REPO / "docs").glob("*.md")]
)
CONFIG_DOC = REPO / "docs" / "config.md"
README_LIMIT = 12_000

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
# A reference row of docs/config.md: | `section.key` | `default as written in YAML` | meaning |
CONFIG_ROW = re.compile(r"^\|\s*`([A-Za-z_][\w.]*)`\s*\|\s*`([^`]*)`\s*\|", re.M)


def without_code_blocks(text: str) -> str:
    """The page with fenced code blocks blanked: a `[x](y)` or `# x` inside one is code, not Markdown."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: link syntax and punctuation dropped, lower case, spaces to hyphens.

    >>> github_slug("Before the first `ray up`: secrets")
    'before-the-first-ray-up-secrets'
    """
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(without_code_blocks(page.read_text())):
        slug = github_slug(heading)
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def relative_links(page: Path) -> list[str]:
    text = CODE_SPAN.sub("code", without_code_blocks(page.read_text()))
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def broken_links(page: Path) -> list[str]:
    """The relative links of `page` that name no existing path, or no heading of the Markdown file they name."""
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(REPO)}")
    return broken


def nested_dataclass(annotation: Any) -> type | None:
    """The dataclass a field holds (`SearchConfig`, or `ReevaluateConfig` in `ReevaluateConfig | None`), if any."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    return next((arg for arg in typing.get_args(annotation) if dataclasses.is_dataclass(arg)), None)


def field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def config_keys(cls: type = ExperimentConfig, prefix: str = "") -> dict[str, Any]:
    """Every config key as `section.key` -> its default, walking the nested dataclasses of the schema.

    A section (a field whose default is a dataclass) contributes its keys, not itself; an optional sub-section
    such as `search.reevaluate` (default null) contributes itself and its keys (`search.reevaluate.top_k`).
    """
    hints = typing.get_type_hints(cls)
    keys: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key, default, nested = prefix + f.name, field_default(f), nested_dataclass(hints[f.name])
        if nested is None or not dataclasses.is_dataclass(default):
            keys[key] = default
        if nested is not None:
            keys.update(config_keys(nested, key + "."))
    return keys


def yaml_form(value: Any) -> str:
    """A default as a user writes it in YAML, the form docs/config.md uses: null, true, '', [], {}, 0.001."""
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return text.removesuffix("\n...").strip()


def documented_defaults() -> dict[str, str]:
    return dict(CONFIG_ROW.findall(without_code_blocks(CONFIG_DOC.read_text())))


def test_github_slug_drops_code_punctuation_and_case():
    assert github_slug("Before the first `ray up`: secrets") == "before-the-first-ray-up-secrets"
    assert github_slug("Local cluster (development and tests)") == "local-cluster-development-and-tests"
    assert github_slug("search_efficiency") == "search_efficiency"


def test_the_pages_exist():
    assert {p.relative_to(REPO).as_posix() for p in PAGES} >= {
        "README.md",
        "CONTRIBUTING.md",
        "cluster/README.md",
        "docs/config.md",
        "docs/architecture.md",
        "docs/benchmarks.md",
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_config_walk_finds_sections_and_optional_subsections():
    keys = config_keys()
    assert keys["train.lr"] == 0.001 and keys["name"] == ""
    assert "search.reevaluate" in keys and "search.reevaluate.top_k" in keys
    assert "train" not in keys


def test_every_config_key_is_documented_with_its_default():
    documented = documented_defaults()
    missing = [key for key in config_keys() if key not in documented]
    assert missing == [], f"docs/config.md has no row `| \\`KEY\\` | \\`default\\` | meaning |` for {missing}"
    wrong = {
        key: f"doc says {documented[key]}, code has {yaml_form(default)}"
        for key, default in config_keys().items()
        if documented[key] != yaml_form(default)
    }
    assert wrong == {}


def test_config_doc_names_no_key_the_schema_lacks():
    assert sorted(set(documented_defaults()) - set(config_keys())) == []


def test_readme_is_a_front_door():
    size = len((REPO / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/ (limit {README_LIMIT})"
