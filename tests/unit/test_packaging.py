"""What a package index shows: the licence (file, metadata and classifier agree), the project
URLs, a changelog for the version, and a README whose links work there and whose first
screen holds what a new user needs (it fits in 60 lines); and CI runs the README's test command.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
TOP_SCREEN = 60


def _slug(heading: str) -> str:
    """GitHub's (and PyPI's) anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_licence_is_mit_everywhere() -> None:
    licence = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License")
    assert PROJECT["license"] == {"text": "MIT License"}
    assert "License :: OSI Approved :: MIT License" in PROJECT["classifiers"]


def test_project_urls_and_changelog() -> None:
    urls = PROJECT["urls"]
    assert {"Homepage", "Repository", "Changelog", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {PROJECT['version']}" in changelog


def test_readme_links_work_on_a_package_index() -> None:
    """Only absolute URLs (the index shows the README without the repository's files) and
    anchors of the README's own headings."""
    anchors = {_slug(match.group(1)) for match in re.finditer(r"^#+ (.*)$", README, re.M)}
    for match in re.finditer(r"\]\(([^)\s]+)\)", README):
        target = match.group(1)
        if target.startswith("#"):
            assert target[1:] in anchors, f"no heading for {target}"
        else:
            assert target.startswith("https://"), f"relative link {target}: not shipped to an index"


def test_the_top_screen_holds_install_the_ten_line_app_and_the_two_commands() -> None:
    top = README.splitlines()[:TOP_SCREEN]
    text = "\n".join(top)
    assert "not published on PyPI" in text
    for marker in ("<!-- install:start -->", "<!-- first-app:start -->", "<!-- first-run:start -->"):
        assert marker in text
    assert "./dev demo" in text and "./dev test" in text
    first_app = re.search(r"<!-- first-app:start -->\s*```python\n(.*?)```", README, re.S)
    assert first_app and len(first_app.group(1).strip().splitlines()) <= 10


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == ["./dev test"]
    assert re.search(r"^\./dev test +#", README, re.M)


def test_the_data_layout_section_is_kept() -> None:
    assert re.search(r"^## Data layout$", README, re.M)
