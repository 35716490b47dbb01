"""README.md and docs/*.md stay true and short: the README's size, the links, no issue numbers, the CI commands,
and every runnable command block, run on demo data.

The convention (docs/README.md): a block fenced with ```bash is runnable and is run here; blocks to read but not
run (long benchmarks, ../shared/data, commands that start a server or hold placeholders such as <dir>) are
fenced with ```sh or ```text. Runnable blocks are run in order, README.md first and then docs/*.md in
alphabetical order, each with `bash -euo pipefail`, from a scratch copy of the repository root (its top-level
files and folders linked, `outputs/` and `multirun/` its own), so they write nothing into the checkout. Later
blocks may use what earlier ones wrote under outputs/ (the README's quick start: outputs/demo,
outputs/quickstart/up).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]

FENCE = re.compile(r"^[ \t]*```([\w+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
# The top-level entries of the checkout that the scratch copy does not link: what commands write.
NOT_LINKED = {"outputs", "multirun", "lightning_logs"}


def fenced_blocks(path: Path) -> list[tuple[str, str, int]]:
    """(language, body, line of the opening fence) for every fenced block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def prose(path: Path) -> str:
    """The file without its fenced blocks and inline code: where links are links."""
    return INLINE_CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(prose(path)) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_readme_is_under_10000_characters():
    size = len(README.read_text(encoding="utf-8"))
    assert size < 10_000, f"README.md has {size} characters; move depth into docs/"


def test_readme_links_every_docs_page_and_each_exists():
    linked = {(README.parent / t.split("#")[0]).resolve() for t in relative_links(README) if t.startswith("docs/")}
    assert linked, "README.md links no page under docs/"
    for page in linked:
        assert page.is_file(), f"README.md links {page.relative_to(REPO)}, which does not exist"
    reachable = linked | {(REPO / "docs" / t.split("#")[0]).resolve() for t in relative_links(REPO / "docs" / "README.md")}
    missing = [p.name for p in DOCS if p.resolve() not in reachable]
    assert not missing, f"docs pages linked neither from README.md nor from docs/README.md: {missing}"


def test_relative_links_point_at_files_and_headings_that_exist():
    broken = []
    for page in PAGES:
        for target in relative_links(page):
            file_part, _, fragment = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading in {dest.name})")
    assert not broken, "\n".join(broken)


def figures_section() -> str:
    """bench/RESULTS.md up to its first dated section: the figures README.md and docs/ link to."""
    text = (REPO / "bench" / "RESULTS.md").read_text(encoding="utf-8")
    return text[:re.search(r"^## \d{4}-\d{2}-\d{2}", text, flags=re.M).start()]


def test_no_issue_numbers_or_build_history():
    found = []
    texts = [(page.relative_to(REPO), page.read_text(encoding="utf-8")) for page in PAGES]
    texts.append(("bench/RESULTS.md (figures section)", figures_section()))
    for page, text in texts:
        for n, line in enumerate(text.splitlines(), 1):
            if re.search(r"#\d", line):
                found.append(f"{page}:{n}: issue number: {line.strip()}")
            if re.search(r"\b(third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|earlier|no) sessions?\b|earlier machines",
                         line, flags=re.I):
                found.append(f"{page}:{n}: build history: {line.strip()}")
    assert not found, "\n".join(found)


def test_readme_gives_the_install_and_test_commands_ci_runs():
    readme, ci = README.read_text(encoding="utf-8"), (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for command in ("python3 -m venv .venv", ". .venv/bin/activate", "pip install -c constraints.txt torch==2.13.0",
                    'pip install -c constraints.txt -e ".[serving,dev]"', "pytest -q"):
        assert command in readme, f"README.md lacks the CI command {command!r}"
        assert command in ci.replace("pip install -q ", "pip install "), f".ci/run no longer runs {command!r}"
    for command in ("python train.py", "python -m personalize_torch.batch", "python serve.py"):
        assert command in readme, f"README.md lacks the command-line contract's {command!r}"


def runnable_blocks() -> list[tuple[Path, int, str]]:
    return [(page, line, body) for page in PAGES for language, body, line in fenced_blocks(page) if language == "bash"]


def scratch_checkout(root: Path) -> Path:
    """A directory that looks like the repository root to a command (its entries linked) but keeps what
    commands write (outputs/, multirun/) to itself."""
    root.mkdir()
    for entry in REPO.iterdir():
        if not entry.name.startswith(".") and entry.name not in NOT_LINKED:
            (root / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return root


def test_runnable_command_blocks_exit_0(tmp_path):
    blocks = runnable_blocks()
    assert any(page == README for page, _, _ in blocks), "README.md has no runnable (```bash) block"
    work = scratch_checkout(tmp_path / "repo")
    bin_dir = tmp_path / "bin"        # `python` in a block is the interpreter running the tests
    bin_dir.mkdir()
    for name in ("python", "python3"):   # a script, not a link: a link to a venv's python leaves the venv
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        shim.chmod(0o755)
    env = {**os.environ, "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent),
                                                  os.environ.get("PATH", "")]),
           "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("PERSONALIZE_TORCH_API_KEY", None)
    timings = []
    for page, line, body in blocks:
        where = f"{page.relative_to(REPO)}:{line}"
        start = time.perf_counter()
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)
        timings.append((time.perf_counter() - start, where))
        assert done.returncode == 0, (f"{where}: exit {done.returncode}\n{body}\n--- stdout\n{done.stdout[-3000:]}"
                                      f"\n--- stderr\n{done.stderr[-3000:]}")
    print("\n".join(f"{seconds:6.1f} s  {where}" for seconds, where in timings))
    print(f"{sum(s for s, _ in timings):6.1f} s  {len(timings)} runnable blocks")
