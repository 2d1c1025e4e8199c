"""Prompt-lookup drafting."""

from jupyter_codegemma.backends.local.speculative import draft_from_context


def test_the_tokens_after_the_latest_match_of_the_last_ngram():
    ids = [1, 2, 3, 9, 9, 1, 2, 3, 7, 8, 5, 1, 2, 3]
    assert draft_from_context(ids, max_ngram=3, max_draft=2) == [7, 8]  # the latest earlier [1, 2, 3]


def test_falls_back_to_shorter_ngrams():
    ids = [4, 5, 6, 0, 0, 9, 6]
    assert draft_from_context(ids, max_ngram=3, min_ngram=1, max_draft=3) == [0, 0, 9]
    assert draft_from_context(ids, max_ngram=3, max_draft=3) == []  # one id is too weak a match by default


def test_a_match_of_two_ids_is_too_weak_by_default():
    ids = [4, 5, 6, 0, 0, 9, 5, 6]
    assert draft_from_context(ids, max_draft=3) == []
    assert draft_from_context(ids, min_ngram=2, max_draft=3) == [0, 0, 9]
    assert draft_from_context([7] + ids[:3] + [1, 2] + ids[:3], max_draft=2) == [1, 2]  # three ids match


def test_no_match_no_draft():
    assert draft_from_context([1, 2, 3, 4]) == []
    assert draft_from_context([1]) == []
    assert draft_from_context([1, 1], max_draft=0) == []


def test_the_draft_stops_at_the_end_of_the_context():
    assert draft_from_context([1, 2, 1], max_ngram=1, min_ngram=1, max_draft=5) == [2, 1]
