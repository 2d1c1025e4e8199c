"""`check_code`: does this Python parse, and if not, where, what kind of mistake, and why — for beginners.

The category comes first from Python's own message (3.10+ messages are precise: "'(' was never closed",
"expected ':'", "Perhaps you forgot a comma?"), then, for the bare "invalid syntax", from the tokens
around the error (a misspelled keyword, two operands side by side, a stray `$`). Nothing is executed:
the source is only compiled. The message stays CPython's own, word for word; `explanations.PLAIN` adds one
plain sentence per category beside it.
"""

from __future__ import annotations

import ast
import difflib
import io
import keyword
import re
import tokenize
import warnings
from dataclasses import dataclass

from .explanations import beginner_message, plain_sentence

__all__ = ["CATEGORIES", "CATEGORY_NAMES", "CheckResult", "check_code"]

# category -> the plain-language explanation shown at hint level 2 (and by %codegemma explain).
CATEGORIES: dict[str, str] = {
    "unbalanced_brackets": (
        "Every opening bracket — ( [ { — needs a matching closing bracket of the same kind, and a closing "
        "bracket needs an opening one before it. Count them on the marked line and the lines around it."
    ),
    "unterminated_string": (
        "Text (a string) must start and end with the same quote mark, on the same line: 'like this' or "
        "\"like this\". Words that are meant as text but have no quotes around them are read as names."
    ),
    "missing_colon": (
        "Lines that start a block — if, elif, else, for, while, def, class, try, except, finally, with — "
        "must end with a colon ':' before the indented lines that belong to them."
    ),
    "indentation": (
        "Python uses indentation (spaces at the start of a line) to group lines into blocks. After a line "
        "ending in ':' the next line must be indented; lines in the same block must be indented by the same "
        "amount; don't mix tabs and spaces (use 4 spaces)."
    ),
    "missing_comma": (
        "Items in a list, tuple, dictionary or function call must be separated by commas: [1, 2, 3], "
        "f(a, b). Two values side by side with nothing between them is an error."
    ),
    "assign_for_compare": (
        "A single '=' stores a value in a name (assignment). To ask whether two things are equal — in an "
        "if or while condition, for example — use '=='."
    ),
    "keyword": (
        "Python's keywords (if, else, for, while, def, return, class, import, ...) must be spelled exactly, "
        "used in the right place (return inside a function, break inside a loop, 'elif' not 'else if'), and "
        "cannot be used as variable names."
    ),
    "python2_print": (
        "In Python 3, print is a function: the things to print go inside parentheses, print('hello'), not "
        "print 'hello' as in Python 2."
    ),
    "missing_operator": (
        "Two values or names are written side by side with no operator between them. Python needs an "
        "explicit operator: write 2 * x, not 2x; a + b, not a b."
    ),
    "stray_character": (
        "The line contains a character Python does not understand here — for example $, ?, a backtick, "
        "curly “smart” quotes or an invisible character copied from a web page or a word processor. "
        "Delete it or replace it with plain ASCII."
    ),
    "other": (
        "Python could not understand this line. Read the message, look at the marked place and the line "
        "before it, and compare it with a similar line that works."
    ),
}


# category -> its name in plain words, for a sentence such as "The mistake: a missing colon ':'."
CATEGORY_NAMES: dict[str, str] = {
    "unbalanced_brackets": "a bracket that is not closed, or closed by the wrong kind of bracket",
    "unterminated_string": "a string (text) without its closing quote, or text without quotes",
    "missing_colon": "a missing colon ':' at the end of a line that starts a block",
    "indentation": "wrong indentation (the spaces at the start of a line)",
    "missing_comma": "a missing comma between items or arguments",
    "assign_for_compare": "'=' (assignment) where '==' (comparison) is meant",
    "keyword": "a misspelled or misplaced Python keyword",
    "python2_print": "print without parentheses (Python 2 style)",
    "missing_operator": "a missing operator between two values",
    "stray_character": "a character that Python does not understand",
    "other": "something Python could not understand",
}


@dataclass(frozen=True)
class CheckResult:
    ok: bool  # the code parses
    line: int | None  # 1-based
    col: int | None  # 1-based
    category: str | None  # one of CATEGORIES' keys
    message: str | None  # Python's own message, word for word
    explanation: str | None  # plain-language explanation for beginners (hint level 2)
    plain: str | None = None  # one plain sentence: what the category means and where to look (explanations.PLAIN)

    @property
    def beginner_message(self) -> str | None:
        """Python's message, then the plain sentence (None when the code parses)."""
        return None if self.ok else beginner_message(self.message or "invalid syntax", self.category)


_OK = CheckResult(True, None, None, None, None, None)
_STRAY = set("$?!`@") - {"@"}  # '@' is matrix multiplication / decorators; the others never start a token
_BLOCK_START = re.compile(r"\s*(if|elif|else|for|while|def|class|try|except|finally|with)\b")
_BLOCK_KEYWORDS = ("if", "elif", "else", "for", "while", "def", "class", "try", "except", "finally", "with",
                   "return", "import", "from", "lambda", "pass", "break", "continue", "print", "in", "not",
                   "and", "or", "is", "True", "False", "None", "yield", "raise", "assert", "global", "del")


def check_code(source: str) -> CheckResult:
    """Compile `source` (never run it) and describe the first syntax error, or `ok=True`."""
    try:
        with warnings.catch_warnings():  # "is" with a literal etc.: not our business here
            warnings.simplefilter("ignore")
            compile(source, "<exercise>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except (SyntaxError, ValueError) as err:  # SyntaxError includes IndentationError and TabError
        if "\0" not in source:
            return _describe(source, err)
        # "source code string cannot contain null bytes": a ValueError or a SyntaxError, by Python version
        line = source[: source.find("\0")].count("\n") + 1 if "\0" in source else 1
        col = len(source[: source.find("\0")].rsplit("\n", 1)[-1]) + 1 if "\0" in source else 1
        return _result(source, line, col, "stray_character", str(err), "A null character (\\0) is in the code.")
    return _OK


def _describe(source: str, err: SyntaxError | ValueError) -> CheckResult:
    if not isinstance(err, SyntaxError):
        return _result(source, 1, 1, "other", str(err), None)
    msg = err.msg or "invalid syntax"
    lines = source.splitlines()
    line = err.lineno or 1
    line = min(max(line, 1), max(len(lines), 1))
    text = lines[line - 1] if lines else ""
    col = err.offset or 1
    category, detail = _categorize(source, err, msg, lines, line, text, col)
    if isinstance(err, IndentationError):  # offsets of indentation errors point past the text: use the indent
        col = len(text) - len(text.lstrip()) + 1
    return _result(source, line, col, category, msg, detail)


def _result(source: str, line: int, col: int, category: str, msg: str, detail: str | None) -> CheckResult:
    lines = source.splitlines() or [""]
    text = lines[min(line, len(lines)) - 1]
    col = min(max(col, 1), len(text) + 1)
    explanation = CATEGORIES[category] if not detail else f"{detail} {CATEGORIES[category]}"
    return CheckResult(False, line, col, category, msg, explanation, plain_sentence(category))


def _categorize(source, err, msg, lines, line, text, col) -> tuple[str, str | None]:
    if isinstance(err, (IndentationError, TabError)):
        return "indentation", None
    low = msg.lower()
    if "was never closed" in low or low.startswith("unmatched") or "does not match opening" in low:
        return "unbalanced_brackets", None
    if "unterminated" in low or "eol while scanning" in low or "eof while scanning" in low:
        return "unterminated_string", None
    if "missing parentheses in call to 'print'" in low:
        return "python2_print", None
    if "missing parentheses in call to 'exec'" in low:
        return "python2_print", None
    if "invalid character" in low or "invalid non-printable character" in low:
        return "stray_character", None
    if "maybe you meant '=='" in low or 'perhaps you meant "=="' in low:
        return "assign_for_compare", None
    if re.search(r"cannot assign to (true|false|none|__debug__)", low) or re.search(
        r"'(return|yield|break|continue|await|nonlocal)'.*(outside|not properly)", low
    ) or "keyword argument repeated" in low:
        return "keyword", None
    if "cannot assign to" in low and "keyword" in low:
        return "keyword", None
    if re.search(r"\belse\s+if\b", text):
        return "keyword", "Write 'elif', not 'else if'."
    if "expected ':'" in low:
        return "missing_colon", None
    if "invalid decimal literal" in low or "invalid hexadecimal literal" in low or "invalid imaginary" in low:
        # 2x, 3abc: a number glued to a name
        return "missing_operator", None
    tokens = _line_tokens(text)
    if "forgot a comma" in low:
        if _word_run(tokens) >= 3:
            return "unterminated_string", "These words look like text without quotes around them."
        return "missing_comma", None
    if low.startswith("invalid syntax") or "invalid syntax" in low:
        return _guess_invalid_syntax(text, col, tokens)
    if "cannot assign to" in low:
        return "assign_for_compare", None
    return "other", None


def _line_tokens(text: str) -> list[tokenize.TokenInfo]:
    """Tokens of one line, as far as the tokenizer gets (it stops at unbalanced brackets etc.)."""
    out: list[tokenize.TokenInfo] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text.lstrip() + "\n").readline):
            if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.COMMENT):
                continue
            if tok.type in (tokenize.INDENT, tokenize.DEDENT):
                continue
            out.append(tok)
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def _is_plain_name(tok: tokenize.TokenInfo) -> bool:
    return tok.type == tokenize.NAME and not keyword.iskeyword(tok.string)


def _word_run(tokens: list[tokenize.TokenInfo]) -> int:
    """The longest run of plain names side by side (`hello big world` -> 3)."""
    best = run = 0
    for tok in tokens:
        run = run + 1 if _is_plain_name(tok) else 0
        best = max(best, run)
    return best


def _is_operand_end(tok: tokenize.TokenInfo) -> bool:
    return _is_plain_name(tok) or tok.type in (tokenize.NUMBER, tokenize.STRING) or tok.string in (")", "]", "}")


def _is_operand_start(tok: tokenize.TokenInfo) -> bool:
    return _is_plain_name(tok) or tok.type in (tokenize.NUMBER, tokenize.STRING)


def _guess_invalid_syntax(text: str, col: int, tokens) -> tuple[str, str | None]:
    ch = text[col - 1] if 0 < col <= len(text) else ""
    # `if x > 3;`, `else.`: a block's first line ending in another mark where the colon belongs
    # (CPython says "invalid syntax" here, and "expected ':'" only when nothing stands there).
    if _BLOCK_START.match(text) and text.split("#", 1)[0].rstrip()[-1:] in (";", ".", ","):
        return "missing_colon", f"The line ends with {text.split('#', 1)[0].rstrip()[-1]!r} where the colon belongs."
    if ch == "=" and text[col - 1 : col + 1] != "==" and re.match(r"\s*(if|elif|while)\b", text):
        return "assign_for_compare", None
    if ch in _STRAY and not text[col - 1 : col + 1] == "!=":
        return "stray_character", f"The character {ch!r} has no meaning here."
    if any(t.type == tokenize.ERRORTOKEN and t.string.strip() for t in tokens):
        bad = next(t.string for t in tokens if t.type == tokenize.ERRORTOKEN and t.string.strip())
        return "stray_character", f"The character {bad!r} has no meaning here."
    # A misspelled keyword at the start of the statement: `retrun x`, `fro i in y:`, `esle:`, `whlie x:`.
    if tokens and _is_plain_name(tokens[0]):
        first = tokens[0].string
        close = difflib.get_close_matches(first, _BLOCK_KEYWORDS, n=1, cutoff=0.6)
        nxt = tokens[1] if len(tokens) > 1 else None
        looks_like_statement = nxt is None or nxt.string == ":" or _is_operand_start(nxt) or nxt.string in "([{-'\""
        if close and close[0] != first and looks_like_statement and len(first) >= 2:
            return "keyword", f"Did you mean the keyword {close[0]!r} instead of {first!r}?"
    # A keyword used as a name: `class = 3`, `def import():`, `x.for`.
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.NAME and keyword.iskeyword(tok.string) and tok.string not in ("True", "False", "None"):
            nxt = tokens[i + 1].string if i + 1 < len(tokens) else ""
            prev = tokens[i - 1].string if i else ""
            if nxt in ("=", "+=", "-=", ".") or prev in ("def", "class", ".", "as") or (nxt == "(" and prev == "def"):
                return "keyword", f"{tok.string!r} is a keyword and cannot be used as a name."
    # Two operands side by side: `x = 2 3`, `a b`, `(a) b`; or several bare words: unquoted text.
    if _word_run(tokens) >= 3:
        return "unterminated_string", "These words look like text without quotes around them."
    depth = 0
    for a, b in zip(tokens, tokens[1:]):
        depth += (a.string in "([{") - (a.string in ")]}") if a.type == tokenize.OP else 0
        if _is_operand_end(a) and _is_operand_start(b):
            # inside brackets two values side by side are usually list items or arguments: f(a b), def f(a b)
            return ("missing_comma" if depth > 0 else "missing_operator"), None
    if text.strip().startswith(("else", "elif")) or re.match(r"\s*(elif|else)\b", text):
        return "keyword", None
    return "other", None
