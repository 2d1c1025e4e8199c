"""README.md and the docs/ pages stay true: every shell command they show is exercised, every path they
name exists, and the site's navigation lists every page.

The ```bash blocks (each line a command; a line ending in `\\` goes on on the next) and ```console
blocks (lines after `$ `) of README.md and docs/*.md are extracted. Each command must match one entry of
COVERAGE: run here for real, or covered by a named test or make target; a new command without one fails
`test_every_readme_command_is_covered`, so the pages cannot drift from what is tested. Commands of
other projects' servers (vLLM, llama.cpp's `llama-server`) cannot run here: their entries name the test
that covers this project's side of the same API.

The site itself (mkdocs.yml) is built with --strict by `make test` and `make docs`: broken links and
anchors fail there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 250

RUN = "run here"  # executed by test_readme_commands_run
EXTERNAL = "external:"  # another project's program; what follows names the test of our side of its API

# (pattern the whole command must match, how it is covered)
COVERAGE: list[tuple[str, str]] = [
    (r"make lab", "make:lab"),
    (r"make test", "make:test"),
    (r"make bench", "make:bench"),
    (r"make docs", "make:docs"),
    (r"\.venv/bin/python -m pytest tests/test_sampler\.py -q", "make:test"),  # one suite of make test
    (r"\.venv/bin/python -m pytest --nbval-lax notebooks/\S+\.ipynb", "make:test"),  # one notebook of make test
    (r"python -m pip install jupyter_codegemma-\*\.whl",
     "tests/test_wheel.py::test_the_wheel_installs_the_kernelspec_the_extension_and_the_eval_data"),
    (r"codegemma info", RUN),
    (r"codegemma tokenize .*", RUN),
    (r"codegemma generate .*", RUN),
    (r"codegemma demo", RUN),
    (r"codegemma complete .*", RUN),
    (r"codegemma kernel install .*", RUN),
    (r"jupyter kernelspec list", RUN),
    (r"codegemma eval .*", "tests/test_evaluation.py::test_the_command_prints_the_table_and_json"),
    (r"codegemma grade .*", "tests/test_grade.py::test_grade_reruns_on_the_teachers_side_and_marks_forged_solves"),
    (r"cd labextension", "path:labextension"),
    (r"\.\./\.venv/bin/jlpm build", "make:setup"),  # pip install -e runs it (the package's build hook)
    (r"\.\./\.venv/bin/jlpm jest", "tests/test_labextension.py::test_jest"),
    # docs/deployment.md: the shared servers.
    (r'pip install "llama-cpp-python\[server\]"', "make:llama-cpp"),  # the same package and extra, built once
    (r"python -m llama_cpp\.server --model \S+ --n_ctx \d+ --interrupt_requests false .*",
     "tests/test_remote_server.py::test_completion_through_the_comm"),  # tests/llama_server.py starts it so
    (r"HF_TOKEN=\S+ vllm serve .*", EXTERNAL + "tests/test_remote_server.py::test_completion_through_the_comm"),
    (r"llama-server .*", EXTERNAL + "tests/test_remote_server.py::test_completion_through_the_comm"),
]


def doc_pages() -> list[Path]:
    """README.md, then every page of the site."""
    return [README] + sorted(DOCS.glob("*.md"))


def commands_of(text: str) -> list[str]:
    commands = []
    for kind, body in re.findall(r"```(bash|console)\n(.*?)```", text, re.S):
        pending = ""
        for line in body.splitlines():
            if kind == "console" and not pending:
                if not line.startswith("$ "):
                    continue  # the command's output
                line = line[2:]
            line = re.sub(r"\s{2,}#.*$", "", line).strip()  # a trailing comment, set off by spaces
            if line.endswith("\\"):  # continued on the next line
                pending += line[:-1].strip() + " "
                continue
            line, pending = (pending + line).strip(), ""
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def readme_commands() -> list[str]:
    """Every command of README.md and docs/*.md, once each, in the order they appear."""
    commands: list[str] = []
    for page in doc_pages():
        commands += commands_of(page.read_text(encoding="utf-8"))
    return list(dict.fromkeys(commands))


def coverage_of(command: str) -> str | None:
    matches = [how for pattern, how in COVERAGE if re.fullmatch(pattern, command)]
    return matches[0] if len(matches) == 1 else None


def test_every_readme_command_is_covered():
    commands = readme_commands()
    assert len(commands) >= 20
    uncovered = [c for c in commands if coverage_of(c) is None]
    assert not uncovered, f"commands in README.md or docs/ with no (or more than one) entry in COVERAGE: {uncovered}"
    unused = [pattern for pattern, _ in COVERAGE if not any(re.fullmatch(pattern, c) for c in commands)]
    assert not unused, f"COVERAGE entries that match no command any more: {unused}"


def test_what_covers_them_exists():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for _, how in COVERAGE:
        how = how.removeprefix(EXTERNAL)
        if how.startswith("make:"):
            assert re.search(rf"^{how[5:]}:", makefile, re.M), f"no target {how[5:]} in the Makefile"
        elif how.startswith("path:"):
            assert (ROOT / how[5:]).exists(), f"{how[5:]} is missing"
        elif how != RUN:
            path, name = how.split("::")
            assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), f"no test {how}"


def test_make_test_builds_the_site_strictly():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    build = re.search(r"^MKDOCS_BUILD\s*:=\s*(.+)$", makefile, re.M)
    assert build and "mkdocs build --strict" in build.group(1)
    for target in ("test", "docs"):
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.M)
        assert recipe and "$(MKDOCS_BUILD)" in recipe.group(1), f"`make {target}` does not build the site"


# --- the pages ------------------------------------------------------------------------------------


def test_readme_is_a_landing_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move the details to docs/"


def _nav_entries(nav) -> list[str]:
    found = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        found += _nav_entries(value) if isinstance(value, list) else [value]
    return found


def test_every_docs_page_is_in_the_nav():
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["strict"] is True and config["docs_dir"] == "docs"
    assert all(config["validation"][key] == "warn"  # strict turns these warnings into errors
               for key in ("omitted_files", "not_found", "absolute_links", "unrecognized_links", "anchors"))
    nav = _nav_entries(config["nav"])
    assert len(nav) == len(set(nav)), "a page is listed twice in mkdocs.yml's nav"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.glob("*.md")}
    notebooks = {f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert len(notebooks) == 6
    assert (DOCS / "notebooks").resolve() == (ROOT / "notebooks").resolve()  # docs/notebooks links to them
    assert pages | notebooks == set(nav), (f"not in mkdocs.yml's nav: {sorted(pages | notebooks - set(nav))}; "
                                           f"in the nav but missing: {sorted(set(nav) - pages - notebooks)}")


def _anchors(page: Path) -> set[str]:
    """The heading ids MkDocs (Python-Markdown's toc) gives a page; GitHub's are the same for these."""
    from markdown.extensions.toc import slugify

    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {slugify(re.sub(r"[`*]", "", title), "-") for title in re.findall(r"^#+\s+(.+?)\s*$", text, re.M)}


def test_links_from_the_readme_resolve():
    """README.md is not part of the site, so MkDocs does not check its links: this does."""
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(((?!https?:)[^)\s]+)\)", text)
    assert len(links) >= 10
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), f"README links to {path}, which does not exist"
        if anchor:
            assert anchor in _anchors(target), f"README links to {link}: {path} has no heading #{anchor}"


# Paths the pages name that are build outputs (git-ignored), not sources.
BUILT = {"jupyter_codegemma/labextension/", "labextension/ui-tests/test-results/screenshots/"}


def test_paths_the_pages_name_exist():
    named = set()
    for page in doc_pages():
        text = page.read_text(encoding="utf-8")
        named |= set(re.findall(r"`((?:jupyter_codegemma|labextension|tests|bench|notebooks|kernel|docs)/[\w./-]*)`", text))
    assert len(named) >= 30
    missing = sorted(p for p in named - BUILT if not (ROOT / p).exists())
    assert not missing, f"README.md or docs/ name paths that do not exist: {missing}"


def _defines(source: str, name: str) -> bool:
    """Whether a Python or TypeScript source defines `name` (a function, class or method)."""
    return bool(re.search(rf"\b(def|class|function\*?|interface)\s+{name}\b"
                          rf"|^\s*(?:(?:async|private|public|static|readonly|export)\s+)*\*?{name}\s*[(<]",
                          source, re.M))


def test_the_functions_architecture_names_exist():
    """docs/architecture.md's hop tables: | hop | `file` | `Name` or `Class.method`, ... | what happens |."""
    rows = re.findall(r"^\|\s*\d+\s*\|\s*`([^`]+)`\s*\|([^|]*)\|", (DOCS / "architecture.md").read_text(encoding="utf-8"),
                      re.M)
    assert len(rows) >= 15
    for path, names in rows:
        source = (ROOT / path).read_text(encoding="utf-8")
        for name in re.findall(r"`([^`]+)`", names):
            for part in name.removesuffix("()").split("."):
                assert _defines(source, part), f"docs/architecture.md: {path} does not define {part} (of {name})"


def test_python_imports_the_pages_show_resolve():
    imports = set()
    for page in doc_pages():
        for body in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            imports |= set(re.findall(r"^from jupyter_codegemma[\w.]* import [\w, ]+$", body, re.M))
    assert imports
    for line in sorted(imports):
        exec(line, {})  # raises ImportError when a page shows an import that no longer works


# --- running the commands -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The files the pages' commands name (prompts.jsonl, app.py, cursors.jsonl), in a scratch folder."""
    where = tmp_path_factory.mktemp("readme")
    (where / "prompts.jsonl").write_text('{"prompt": "def add(a, b):", "max_new_tokens": 6}\n'
                                         '{"prompt": "import os", "max_new_tokens": 4}\n')
    (where / "cursors.jsonl").write_text('{"prefix": "xs = [1, 2, 3]\\nprint(len(", "suffix": "))\\n"}\n')
    lines = [f"# line {i}" for i in range(1, 12)] + ["def area(radius):", "    return 3.14 * radius ** 2", ""]
    (where / "app.py").write_text("\n".join(lines))
    return where


def run_command(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """As a user types it, in bash (for $'...' quoting), with this environment's commands first on PATH;
    kernelspecs installed with --user go to a scratch Jupyter data directory."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               JUPYTER_DATA_DIR=str(cwd / "jupyter-data"))
    env.pop("JUPYTER_PATH", None)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_readme_commands_run(workdir):
    ran = {}
    for command in readme_commands():
        if coverage_of(command) != RUN:
            continue
        done = run_command(command, workdir)
        assert done.returncode == 0, f"{command!r} failed:\n{done.stderr[-2000:]}"
        ran[command] = done.stdout
    assert any(c.startswith("codegemma kernel install") for c in ran) and "jupyter kernelspec list" in ran
    assert "codegemma-tpu" in ran["jupyter kernelspec list"]  # the variant the pages install is listed
    # The outputs the pages show that do not depend on the numerics of a dtype or device.
    assert ran['codegemma tokenize "def f():"'].split() == "2 2063 517 6141".split()
    info = dict(line.split(None, 1) for line in ran["codegemma info"].splitlines())
    shown = _shown_output("codegemma info")
    for key in ("model", "architecture", "parameters", "context", "fim"):
        assert info[key].strip() == shown[key], f"the docs show {key} {shown[key]!r}, the command prints {info[key]!r}"
    for command, out in ran.items():
        if command.endswith("--json"):
            json.loads(out)


def _shown_output(command: str) -> dict[str, str]:
    """The `key value` lines shown under `$ command`, in README.md or else the first docs page showing it;
    every page that shows them shows the same."""
    shown = []
    for page in doc_pages():
        text = page.read_text(encoding="utf-8")
        if f"$ {command}\n" in text:
            block = text.split(f"$ {command}\n", 1)[1].split("```", 1)[0].split("$ ", 1)[0]
            shown.append({k: v.strip() for k, v in (line.split(None, 1) for line in block.splitlines()
                                                     if len(line.split()) >= 2)})
    assert shown, f"no page shows the output of `{command}`"
    assert all(s == shown[0] for s in shown), f"the pages show different outputs of `{command}`"
    return shown[0]
