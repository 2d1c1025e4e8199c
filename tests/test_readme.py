"""Every shell command in README.md is exercised: run here for real, or by a named test or make target.

The README's ```bash blocks (each line a command) and ```console blocks (lines after `$ `) are
extracted. Each command must match one entry of COVERAGE; a new command in the README without
one fails `test_every_readme_command_is_covered`, so the README cannot drift from what is tested.
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

RUN = "run here"  # executed by test_readme_commands_run

# (pattern the whole command must match, how it is covered)
COVERAGE: list[tuple[str, str]] = [
    (r"make lab", "make:lab"),
    (r"make test", "make:test"),
    (r"make bench", "make:bench"),
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
    (r"cd labextension", "path:labextension"),
    (r"\.\./\.venv/bin/jlpm build", "make:setup"),  # pip install -e runs it (the package's build hook)
    (r"\.\./\.venv/bin/jlpm jest", "tests/test_labextension.py::test_jest"),
]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for kind, body in re.findall(r"```(bash|console)\n(.*?)```", text, re.S):
        for line in body.splitlines():
            if kind == "console":
                if not line.startswith("$ "):
                    continue  # the command's output
                line = line[2:]
            line = re.sub(r"\s{2,}#.*$", "", line).strip()  # a trailing comment, set off by spaces
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def coverage_of(command: str) -> str | None:
    matches = [how for pattern, how in COVERAGE if re.fullmatch(pattern, command)]
    return matches[0] if len(matches) == 1 else None


def test_every_readme_command_is_covered():
    commands = readme_commands()
    assert len(commands) >= 10
    uncovered = [c for c in commands if coverage_of(c) is None]
    assert not uncovered, f"README commands with no (or more than one) entry in COVERAGE: {uncovered}"


def test_what_covers_them_exists():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for _, how in COVERAGE:
        if how.startswith("make:"):
            assert re.search(rf"^{how[5:]}:", makefile, re.M), f"no target {how[5:]} in the Makefile"
        elif how.startswith("path:"):
            assert (ROOT / how[5:]).exists(), f"{how[5:]} is missing"
        elif how != RUN:
            path, name = how.split("::")
            assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), f"no test {how}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The files the README's commands name (prompts.jsonl, app.py, cursors.jsonl), in a scratch folder."""
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
    assert "codegemma-tpu" in ran["jupyter kernelspec list"]  # the variant the README installs is listed
    # The outputs the README shows that do not depend on the numerics of a dtype or device.
    assert ran['codegemma tokenize "def f():"'].split() == "2 2063 517 6141".split()
    info = dict(line.split(None, 1) for line in ran["codegemma info"].splitlines())
    shown = _shown_output("codegemma info")
    for key in ("model", "architecture", "parameters", "context", "fim"):
        assert info[key].strip() == shown[key], f"README shows {key} {shown[key]!r}, the command prints {info[key]!r}"
    for command, out in ran.items():
        if command.endswith("--json"):
            json.loads(out)


def _shown_output(command: str) -> dict[str, str]:
    """The `key value` lines the README shows under `$ command`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(f"$ {command}\n", 1)[1].split("$ ", 1)[0]
    return {k: v.strip() for k, v in (line.split(None, 1) for line in block.splitlines() if len(line.split()) >= 2)}
