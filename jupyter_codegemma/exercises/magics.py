"""`%exercise` (a set of exercises as a widget) and `%%exercise` (this cell as an exercise).

Every mistake in what the user gave — the options, the exercise file, the results file, the cell — is
one line, `exercise: ...`, naming the file (and line) and the problem; never a traceback.
"""

from __future__ import annotations

import shlex

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .checker import CATEGORIES


class _Mistake(Exception):
    """Something the user gave is wrong: the message is the one line to show."""


def split_args(line: str) -> list[str]:
    """The magic's words as a shell splits them, quotes removed (`--title "Squares"` -> Squares), but
    backslashes kept as they are (a Windows path)."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split, lexer.escape, lexer.commenters = True, "", ""  # `week#3.yaml` is a name
    try:
        return list(lexer)
    except ValueError as e:  # "No closing quotation"
        raise _Mistake(f"{str(e).lower()} in: {line.strip()}") from None


def make_widget(exercises, *, settings=None, service=None, results_path=None, editor=None):
    """An ExerciseWidget wired to the kernel's settings (exam mode, the editor), its engine worker (level-3
    hints) and the notebook's policy (it caps the hints; each result records it)."""
    from .results import Results
    from .fix_provider import service_fix_provider
    from .widget import ExerciseWidget

    provider = service_fix_provider(service) if service is not None else None
    policy = service.policy if service is not None else None
    return ExerciseWidget(exercises, results=Results(results_path, policy=policy), settings=settings,
                          fix_provider=provider, editor=editor, policy=policy)


@magics_class
class ExerciseMagics(Magics):
    def __init__(self, shell, settings=None, service=None):
        super().__init__(shell)
        self.settings, self.service = settings, service

    @magic_arguments()
    @argument("--file", default=None, metavar="PATH", help="exercises from a YAML or JSON file (default: built-in)")
    @argument("--category", default=None, choices=list(CATEGORIES), help="only this category (line form); "
              "the error to inject (cell form)")
    @argument("--difficulty", type=int, default=None, choices=(1, 2, 3), help="only this difficulty / its difficulty")
    @argument("--results", default=None, metavar="PATH", help="the results file (default: beside the notebook)")
    @argument("--id", default="cell", help="cell form: the exercise id (its key in the results file)")
    @argument("--title", default="", help="cell form: the title")
    @argument("--seed", type=int, default=0, help="cell form: which variant of the injected error")
    @argument("--editor", default=None, choices=("auto", "codemirror", "textarea"),
              help="the code editor (default: CodeGemma.exercise_editor, auto: CodeMirror where the "
              "labextension is installed)")
    @line_cell_magic
    def exercise(self, line: str, cell: str | None = None):
        """Syntax-fix exercises as a widget.

            %exercise                                   the built-in set
            %exercise --category missing_colon --difficulty 1
            %exercise --file week3.yaml

            %%exercise --id avg --category missing_comma --seed 3
            def mean(xs):
                return sum(xs) / len(xs)
            # tests
            assert mean([1, 2, 3]) == 2

        The cell form breaks the cell's code with the generator (or, with `# broken` / `# solution` /
        `# tests` sections, uses them as written). Results go to codegemma_exercise_results.json.
        """
        try:
            return self._exercise(line, cell)
        except _Mistake as e:
            print("exercise: " + " ".join(str(e).split()))  # one line, whatever the message held
            return None

    def _exercise(self, line: str, cell: str | None):
        from . import model
        from .results import ResultsError

        try:
            args = self.exercise.parser.parse_args(split_args(line))
        except UsageError as e:  # argparse's own message: "argument --difficulty: invalid choice: ..."
            raise _Mistake(str(e)) from None
        if cell is None:
            try:
                exercises = model.load_exercises(args.file) if args.file else model.builtin_exercises()
            except model.ExerciseError as e:
                raise _Mistake(str(e)) from None
            exercises = [e for e in exercises if (args.category in (None, e.category))
                         and (args.difficulty in (None, e.difficulty))]
            if not exercises:
                raise _Mistake("no exercises match those filters")
        else:
            try:
                exercises = [model.exercise_from_cell(cell, id=args.id, title=args.title, category=args.category,
                                                      difficulty=args.difficulty or 1, seed=args.seed)]
            except ValueError as e:
                raise _Mistake(str(e)) from None
        try:
            return make_widget(exercises, settings=self.settings, service=self.service, results_path=args.results,
                               editor=args.editor)
        except ResultsError as e:
            raise _Mistake(f"results file {e}") from None
