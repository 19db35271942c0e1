"""Every relative link in the docs resolves inside the checkout, and every protocol reference
names the in-repo docs/SPEC.md: a clone has nothing beside it (no `../shared/SPEC.md`)."""

from __future__ import annotations

import re
from pathlib import Path

from fakeapi import REPO_ROOT

SPEC = REPO_ROOT / "docs" / "SPEC.md"
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def doc_files() -> list[Path]:
    """README.md and the Markdown under docs/, examples/ and benchmarks/ (what a clone shows)."""
    files = [REPO_ROOT / "README.md"]
    for folder in ("docs", "examples", "benchmarks"):
        files += sorted((REPO_ROOT / folder).rglob("*.md"))
    return files


def anchors(markdown: str) -> set[str]:
    """The fragment ids GitHub gives the headings of `markdown`: lower case, punctuation
    dropped (letters, digits, `_`, `-` and spaces kept), spaces to `-`, repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", markdown), re.M):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def relative_links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I)]


def broken_links(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """What is wrong with each relative link of `path` (a file under the checkout `root`)."""
    broken = []
    for target in relative_links(path):
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.is_relative_to(root.resolve()) or not dest.exists():
            broken.append(f"{target}: no such file in the checkout")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading #{fragment} in {dest.name}")
    return broken


def test_every_relative_link_in_the_docs_resolves() -> None:
    files = doc_files()
    assert REPO_ROOT / "docs" / "SPEC.md" in files
    assert {f"{p.relative_to(REPO_ROOT)}: {b}" for p in files for b in broken_links(p)} == set()
    readme = relative_links(REPO_ROOT / "README.md")
    assert "docs/SPEC.md" in readme and any(t.startswith("docs/SPEC.md#") for t in readme)


def test_the_checker_sees_broken_links(tmp_path: Path) -> None:
    """The check above can fail: a missing file, a missing heading, a path out of the checkout."""
    root = tmp_path / "checkout"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "SPEC.md").write_text(SPEC.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "outside.md").write_text("# Outside\n")
    page = root / "docs" / "page.md"
    page.write_text("# Top\n[a](SPEC.md#1-start-up) [b](SPEC.md#no-such) [c](nope.md) [d](../../outside.md)\n"
                    "[e](#top) [f](https://example.invalid/x)\n```\n[g](inside-a-fence.md)\n```\n")
    assert broken_links(page, root) == ["SPEC.md#no-such: no heading #no-such in SPEC.md",
                                        "nope.md: no such file in the checkout",
                                        "../../outside.md: no such file in the checkout"]


def test_protocol_references_name_the_in_repo_spec() -> None:
    """`docs/SPEC.md §N` in docstrings and comments is written `docs/SPEC.md §N`, and section N exists."""
    sections = set(re.findall(r"^## (\d+)\. ", SPEC.read_text(encoding="utf-8"), re.M))
    assert sections == {str(n) for n in range(1, 10)}
    bad = []
    sources = [p for folder in ("aruntime", "tests", "benchmarks", "examples")
               for p in (REPO_ROOT / folder).rglob("*.py")]
    for path in sources + doc_files():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(REPO_ROOT)
        for m in re.finditer(r"(\S*)SPEC(?:\.md)?\)?\s*§([\d/§, and]+)", text):
            if path == SPEC:
                continue
            if not m.group(1).endswith(("docs/", "[")) or "shared" in m.group(1):
                bad.append(f"{where}: {m.group(0)!r} does not name docs/SPEC.md")
            for n in re.findall(r"\d+", m.group(2)):
                if n not in sections:
                    bad.append(f"{where}: {m.group(0)!r}: docs/SPEC.md has no §{n}")
        if "shared/SPEC" in text and path != Path(__file__).resolve():
            bad.append(f"{where}: names shared/SPEC, which a clone does not have")
    assert bad == []
