"""The docs hold together: no citation of the old spec sections that are not in the
repository (docs/methods.md replaced them), every relative link in the docs and the README
reaches a file that exists (and a heading of it, when the link names one), and every
``docs/<page>.md`` the code or the docs mention exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OLD_CITATION = "SPEC " + "\N{SECTION SIGN}"  # spelled so that this file does not match itself
SEARCHED = ["metamask", "docs", "examples", "benchmarks", "problems", "tests", "README.md"]
TEXT = {".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".txt"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target)
PAGE = re.compile(r"docs/[A-Za-z0-9_.+-]+\.md")  # a docs page named in text or code
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def text_files() -> list[Path]:
    files: list[Path] = []
    for name in SEARCHED:
        path = REPO / name
        files += [path] if path.is_file() else sorted(path.rglob("*"))
    return [f for f in files if f.is_file() and f.suffix in TEXT and "__pycache__" not in f.parts]


def markdown_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """The anchor a Markdown renderer (GitHub's rule) gives a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    body = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", body, re.M)}


def test_slug_follows_the_renderers_rule() -> None:
    assert slug("3. MLO-MAE") == "3-mlo-mae"
    assert slug("2.5 Published settings") == "25-published-settings"
    assert slug("`darts` / `sama`: why") == "darts--sama-why"


def test_no_file_cites_the_old_spec_sections() -> None:
    hits = [
        f"{path.relative_to(REPO)}:{number}"
        for path in text_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OLD_CITATION in line
    ]
    assert hits == [], f"cite docs/methods.md instead: {hits}"


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_and_its_heading(page: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading '#{anchor}' in {dest.name}")
    assert broken == [], f"{page.relative_to(REPO)}: {broken}"


def test_every_docs_page_named_in_the_code_and_docs_exists() -> None:
    missing = sorted(
        f"{path.relative_to(REPO)}: {name}"
        for path in text_files()
        for name in set(PAGE.findall(path.read_text(encoding="utf-8")))
        if not (REPO / name).is_file()
    )
    assert missing == []


def test_the_readme_links_the_methods_page() -> None:
    assert "](docs/methods.md)" in (REPO / "README.md").read_text(encoding="utf-8")
