"""Token healing (backends/local/healing.py): a cursor after a space, or inside a word, gets the suggestion
the model writes when it writes the space, or the whole word, itself; on the real default model."""

from __future__ import annotations

import numpy as np

from jupyter_codegemma.backends.candidates import check
from jupyter_codegemma.backends.local import healing

# The bench's typing session (bench/data/bike_share.ipynb): with the blank token last, Gemma 3 270M named
# the variable again (`hours 1 = pd.concat([`), code that does not parse.
CELL = ("import pandas as pd\n\n\ndef add_hour_features(frame: pd.DataFrame) -> pd.DataFrame:\n"
        "    hours ")


def test_the_blank_after_code_is_taken_off_and_written_again_by_the_first_token(engine):
    tokenizer = engine.tokenizer
    ids = [tokenizer.bos_id] + tokenizer.encode("x = foo(a, ", add_bos=False)
    healed_ids, healed = healing.heal(tokenizer, ids)
    assert healed_ids == ids[:-1] and healed.text == " "
    allowed = np.flatnonzero(healed.mask)
    assert tokenizer.encode(" =", add_bos=False)[0] in allowed
    assert all(healing.piece_text(tokenizer, i).startswith(" ") for i in allowed[:2000])
    assert tokenizer.encode("x", add_bos=False)[0] not in allowed
    # Not after a newline (indentation is how the model saw it), not without a blank, not for one token.
    for text in ("if x:\n    ", "x = foo(a,", "x"):
        ids = [tokenizer.bos_id] + tokenizer.encode(text, add_bos=False)
        assert healing.heal(tokenizer, ids) == (ids, None), text


def test_the_tokens_of_a_begun_word_are_taken_off_and_written_again_by_the_first_token(engine):
    tokenizer = engine.tokenizer
    piece = lambda i: healing.piece_text(tokenizer, i)  # noqa: E731
    for text, taken, word in (("    for op in o", 1, " o"),  # `▁o`, a word of its own token
                              ("        retu", 2, "retu"),  # `ret` + `u`: the whole begun word
                              ("    ret", 1, "ret")):
        ids = [tokenizer.bos_id] + tokenizer.encode(text, add_bos=False)
        healed_ids, healed = healing.heal(tokenizer, ids)
        assert healed_ids == ids[:-taken] and healed.text == word, text
        allowed = [piece(i) for i in np.flatnonzero(healed.mask)]
        assert allowed and all(t.startswith(word) for t in allowed), text
    ids = [tokenizer.bos_id] + tokenizer.encode("        retu", add_bos=False)
    assert " return" not in [piece(i) for i in np.flatnonzero(healing.heal(tokenizer, ids)[1].mask)]
    assert tokenizer.encode("return", add_bos=False)[0] in np.flatnonzero(healing.heal(tokenizer, ids)[1].mask)
    # After a bracket, a quote or a newline there is no word to heal.
    for text in ("print(x)", "x = 'a'", "if x:\n"):
        ids = [tokenizer.bos_id] + tokenizer.encode(text, add_bos=False)
        assert healing.heal(tokenizer, ids) == (ids, None), text


def test_a_cursor_inside_a_word_gets_the_rest_of_the_word(engine):
    """Before healing, Gemma 3 270M began a new word after the user's: `ooperations:`, `retu = s[...]`."""
    prefix = ("def below_zero(operations: list) -> bool:\n    balance = 0\n\n    for op in o")
    result = engine.complete(prefix, "\n\n    return False\n", mode="line", check=False).wait()
    assert result.text.startswith("perations"), result.text
    prefix = "def shift(s: str, n: int) -> str:\n    if n > len(s):\n        retu"
    result = engine.complete(prefix, "\n", mode="line", check=False).wait()
    assert result.text.startswith("rn "), result.text


def test_a_cursor_after_a_space_gets_code_that_goes_on_after_the_space(engine):
    result = engine.complete(CELL, "", mode="line", check=False).wait()
    assert not result.text.startswith(" "), result.text  # the space is the user's
    assert check(CELL, result.text).ok, result.text
    assert result.text.lstrip().startswith("="), result.text  # the statement goes on: `hours = ...`
    # The prompt the model saw ends before the blank; the first id it wrote holds it.
    assert engine.tokenizer.decode(result.ids[:1]).startswith(" ")


def test_the_checked_path_keeps_healing(engine):
    checked = engine.complete(CELL, "", mode="line").wait()
    unchecked = engine.complete(CELL, "", mode="line", check=False).wait()
    assert checked.checked == "passed" and checked.text == unchecked.text


def test_the_vocabulary_tables_agree_with_each_tokens_text(engine):
    """The compact tables (vocabulary.py) hold exactly what each piece's text says, for the whole vocabulary."""
    from jupyter_codegemma.backends.local import vocabulary

    tokenizer = engine.tokenizer
    tables = vocabulary.tables(tokenizer)
    texts = list(vocabulary.piece_texts(tokenizer))
    assert len(texts) == tokenizer.vocab_size == tables.identifier_continuing.shape[0]
    continuing = np.array([t[:1].isalnum() or t[:1] == "_" for t in texts])
    continuing[[tokenizer.bos_id, tokenizer.eos_id]] = False
    assert (tables.identifier_continuing == continuing).all()
    for blanks in (" ", "  ", "    ", "\t", " \t"):
        expected = {i for i, t in enumerate(texts) if t.startswith(blanks)} - {tokenizer.bos_id, tokenizer.eos_id}
        assert set(tables.starting_with(blanks).tolist()) == expected, repr(blanks)
    assert tables.starting_with("\n").size == 0
    words = vocabulary.word_beginnings(tokenizer)
    for begun in (" ret", "retu", "u", " o", "ma", "_", "é"):
        expected = {i for i, t in enumerate(texts) if t.startswith(begun)} - {tokenizer.bos_id, tokenizer.eos_id}
        assert set(words.starting_with(begun).tolist()) == expected, repr(begun)
