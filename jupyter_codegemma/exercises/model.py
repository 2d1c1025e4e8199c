"""The exercise: what the student sees (title, instructions, broken code), what the teacher knows (solution,
tests, hints), and how it is filed (category, difficulty). Authored in YAML or JSON, or from Python.

    - id: brackets-sum
      title: Add up a list
      instructions: Fix the code so that it prints the total.
      category: unbalanced_brackets
      difficulty: 1
      broken: |
        total = sum([1, 2, 3)
      solution: |
        total = sum([1, 2, 3])
      tests: |
        assert total == 6
      hints:
        - Look at the brackets around the numbers.

`tests` is Python run after the student's code in the same (sandboxed) namespace: asserts, or a
`def check(namespace):` function that is called with that namespace and fails by raising.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from .checker import CATEGORIES, CheckResult, check_code

__all__ = ["Exercise", "ExerciseError", "builtin_exercises", "exercise_from_cell", "load_exercises",
           "save_exercises"]

_FIELDS = ("id", "title", "instructions", "broken", "solution", "tests", "hints", "category", "difficulty")
# What a file must give each exercise: without tests, any code that parses would count as solved.
_REQUIRED = ("id", "broken", "solution")  # no tests: fixing the syntax is the exercise


class ExerciseError(ValueError):
    """An exercise file or definition is malformed; the message names the exercise and the field."""


@dataclass
class Exercise:
    id: str
    title: str = ""
    instructions: str = "Fix the code so that it runs."
    broken: str = ""
    solution: str = ""
    tests: str = ""  # asserts, or `def check(namespace): ...`
    hints: list[str] = field(default_factory=list)  # the teacher's own hints, shown after the ladder's
    category: str = "other"  # a key of checker.CATEGORIES
    difficulty: int = 1  # 1 (first week) .. 3 (needs care)

    def __post_init__(self) -> None:
        where = f"exercise {self.id!r}"
        if not isinstance(self.id, str) or not self.id.strip():
            raise ExerciseError(f"an exercise needs a non-empty string id, got {self.id!r}")
        if self.category not in CATEGORIES:
            raise ExerciseError(f"{where}: category {self.category!r} is not one of {', '.join(CATEGORIES)}")
        if self.difficulty not in (1, 2, 3):
            raise ExerciseError(f"{where}: difficulty must be 1, 2 or 3, got {self.difficulty!r}")
        if isinstance(self.hints, str):
            self.hints = [self.hints]
        if not isinstance(self.hints, list) or not all(isinstance(h, str) for h in self.hints):
            raise ExerciseError(f"{where}: hints must be a list of texts, got {self.hints!r}")
        for name in ("title", "instructions", "broken", "solution", "tests"):
            if not isinstance(getattr(self, name), str):
                raise ExerciseError(f"{where}: {name} must be text, got {type(getattr(self, name)).__name__}")
        self.title = self.title or self.id

    def check(self, source: str | None = None) -> CheckResult:
        """check_code on the student's source (default: the broken code)."""
        return check_code(self.broken if source is None else source)

    def run_tests(self, source: str | None = None, limits=None):
        """The exercise's tests against `source` (default: the solution) in a sandboxed child process."""
        from .sandbox import run_tests

        return run_tests(self.solution if source is None else source, self.tests, limits)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "") -> "Exercise":
        """An exercise from a file's mapping; `where` ("week3.yaml, line 7") is named in every error."""
        if not isinstance(data, dict):
            raise ExerciseError(f"{where or 'an exercise'}: expected an exercise (id, broken, solution, tests, "
                                f"...), got {_kind(data)}")
        name = (f"{where}: " if where else "") + f"exercise {data.get('id', '?')!r}"
        unknown = sorted(map(str, set(data) - set(_FIELDS)))
        if unknown:
            raise ExerciseError(f"{name}: unknown field(s) {', '.join(unknown)}; the fields are {', '.join(_FIELDS)}")
        missing = [k for k in _REQUIRED if not data.get(k)]
        if missing:
            raise ExerciseError(f"{name}: missing {', '.join(missing)}")
        try:
            return cls(**data)
        except ExerciseError as e:
            raise ExerciseError(f"{where}: {e}" if where else str(e)) from None


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", str: "text", type(None): "nothing"}.get(type(value),
                                                                                    type(value).__name__)


def _yaml_error(e, where: str, text: str) -> ExerciseError:
    """One line: the file, the line (and column) where the YAML breaks, what is wrong there, the line's text."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context, context_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context == "while scanning a simple key" and context_mark is not None:
        # `tests assert x`: the ':' is missing on the line of the key, not where the scanner gave up
        mark, problem, context = context_mark, "a line without the ':' after its key", None
    if mark is None:
        return ExerciseError(f"{where}: not valid YAML: {problem}")
    lines = text.splitlines()
    shown = lines[mark.line].strip() if mark.line < len(lines) else ""
    also = ""
    if context and context_mark is not None and context_mark.line != mark.line:
        also = f" ({context.removeprefix('while ')} that starts on line {context_mark.line + 1})"
    quote = f": {shown[:60]!r}" if shown else ""
    return ExerciseError(f"{where}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML: "
                         f"{problem}{also}{quote}")


def _parse(text: str, suffix: str, where: str) -> tuple[object, list[int]]:
    """The file's data, and the line of each item of its exercise list (YAML; [] for JSON)."""
    if suffix == ".json":
        try:
            return json.loads(text), []
        except json.JSONDecodeError as e:
            raise ExerciseError(f"{where}, line {e.lineno}, column {e.colno}: not valid JSON: {e.msg}") from None
    if suffix in (".yaml", ".yml"):
        import yaml

        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as e:
            raise _yaml_error(e, where, text) from None
        finally:
            loader.dispose()
        return data, _item_lines(node)
    raise ExerciseError(f"{where}: expected a .yaml, .yml or .json file")


def _item_lines(node) -> list[int]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        node = next((v for k, v in node.value if getattr(k, "value", None) == "exercises"), None)
    if isinstance(node, yaml.SequenceNode):
        return [item.start_mark.line + 1 for item in node.value]
    return []


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExerciseError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ExerciseError(f"{path}: is a folder, not an exercise file") from None
    except UnicodeDecodeError as e:
        raise ExerciseError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ExerciseError(f"{path}: cannot be read ({e.strerror or e})") from None


def load_exercises(path: str | Path) -> list[Exercise]:
    """Exercises from a YAML or JSON file: a list of exercises, or a mapping with an `exercises` list.

    Every mistake in the file is an ExerciseError with a one-line message naming the file, the line
    (for YAML) and what is wrong."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ExerciseError(f"{path}: expected a .yaml, .yml or .json file")
    data, lines = _parse(_read(path), suffix, str(path))
    if isinstance(data, dict):
        if "exercises" not in data:
            raise ExerciseError(f"{path}: a mapping without an 'exercises' list (its keys: "
                                f"{', '.join(map(str, data)) or 'none'})")
        data = data["exercises"]
    if not isinstance(data, list):
        raise ExerciseError(f"{path}: expected a list of exercises (or a mapping with an 'exercises' list), "
                            f"got {_kind(data)}")
    if not data:
        raise ExerciseError(f"{path}: the list of exercises is empty")
    where = [f"{path}, line {lines[i]}" if i < len(lines) else str(path) for i in range(len(data))]
    exercises = [Exercise.from_dict(item, where[i]) for i, item in enumerate(data)]
    ids = [e.id for e in exercises]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ExerciseError(f"{path}: duplicate exercise ids {', '.join(duplicates)}")
    return exercises


def save_exercises(exercises: list[Exercise], path: str | Path) -> Path:
    path = Path(path)
    data = {"exercises": [e.to_dict() for e in exercises]}
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    elif path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        class _Block(yaml.SafeDumper):  # multi-line code as `|` blocks, so teachers can read and edit it
            pass

        def _str(dumper, value):
            style = "|" if "\n" in value else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        _Block.add_representer(str, _str)
        text = yaml.dump(data, Dumper=_Block, sort_keys=False, allow_unicode=True, width=110)
    else:
        raise ExerciseError(f"{path}: expected a .yaml, .yml or .json file")
    path.write_text(text, encoding="utf-8")
    return path


def builtin_exercises() -> list[Exercise]:
    """The built-in set: syntax-fix exercises across every category, difficulty 1-3."""
    source = resources.files(__package__).joinpath("builtin", "syntax_fix.yaml")
    with resources.as_file(source) as path:
        return load_exercises(path)


def exercise_from_cell(cell: str, *, id: str = "cell", title: str = "", instructions: str = "",
                       category: str | None = None, difficulty: int = 1, seed: int = 0) -> Exercise:
    """A notebook cell as an exercise. The cell is the solution, optionally followed by a line `# tests`
    and test code. With `category`, the generator breaks the solution; without it, the cell must hold
    `# broken` / `# solution` / `# tests` sections."""
    sections = _sections(cell)
    tests = sections.get("tests", "")
    if "broken" in sections:
        solution = sections.get("solution", "")
        broken = sections["broken"]
        category = category or check_code(broken).category or "other"
    else:
        from .generator import inject_error

        solution = sections.get("solution", sections.get("", ""))
        category = category or "missing_colon"
        broken = inject_error(solution, category, seed=seed)
    return Exercise(id=id, title=title or id, instructions=instructions or "Fix the code so that it runs.",
                    broken=broken, solution=solution, tests=tests, category=category, difficulty=difficulty)


def _sections(cell: str) -> dict[str, str]:
    out: dict[str, list[str]] = {"": []}
    current = ""
    for line in cell.splitlines(keepends=True):
        tag = line.strip().lower()
        if tag in ("# broken", "# solution", "# tests"):
            current = tag[2:]
            out[current] = []
            continue
        out[current].append(line)
    return {k: "".join(v) for k, v in out.items() if k or "".join(v).strip()}
