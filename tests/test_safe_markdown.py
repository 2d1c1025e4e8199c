"""Model text is shown as Markdown with nothing live in it (kernel/safe_markdown.py).

Each payload is rendered by a CommonMark renderer that passes raw HTML through, as JupyterLab's
does for trusted outputs: what comes out must have no element, attribute or link from the payload
that runs anything, while the Markdown a person wants (emphasis, lists, code) stays. The browser
test (tests/test_labextension.py) checks the same payloads in JupyterLab itself.
"""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from jupyter_codegemma.kernel.safe_markdown import code_block, diff_block, html_text, untrusted_markdown

_MD = MarkdownIt("commonmark", {"html": True})
_MD.validateLink = lambda url: True  # as a renderer that checks no link target (the payloads' aim)
RENDER = _MD.render

PAYLOADS = [
    '<img src="http://127.0.0.1:9/x.png" onerror="window.__pwned = 1">',
    "<script>window.__pwned = 1</script>",
    "[click me](javascript:window.__pwned=1)",
    "[click me](JaVaScRiPt:window.__pwned=1)",
    "[click me](jav&#x61;script:window.__pwned=1)",
    "[click me](<javascript:window.__pwned=1>)",
    "![x](javascript:window.__pwned=1)",
    "[x][r]\n\n[r]: javascript:window.__pwned=1",
    "<javascript:window.__pwned=1>",
    "<a href='javascript:window.__pwned=1'>a</a>",
    "<svg onload=\"window.__pwned=1\">",
    "<iframe srcdoc='<script>window.__pwned=1</script>'></iframe>",
    "<!-- x --><img src=x onerror=\"window.__pwned=1\">",
    "text `code` <b onmouseover=\"window.__pwned=1\">bold</b>",
    "```python onload=window.__pwned=1\nprint(1)\n```\n<img src=x onerror=\"window.__pwned=1\">",
    "Look: ```\nunclosed code\n\n<img src=x onerror=\"window.__pwned=1\">",
    "[data](data:text/html,<script>window.__pwned=1</script>)",
    "<details open ontoggle=\"window.__pwned=1\">",
]


def live_parts(rendered: str) -> list[str]:
    """Elements other than the harmless ones Markdown makes, event attributes, and unsafe link targets,
    in the rendered HTML's tags (escaped text is not a tag)."""
    harmless = {"p", "em", "strong", "code", "pre", "ul", "ol", "li", "blockquote", "h1", "h2", "h3", "h4", "h5",
                "h6", "hr", "br", "a", "img"}
    bad = []
    for tag in re.findall(r"<(/?[a-zA-Z][^<>]*)>", rendered):
        name = re.match(r"/?([a-zA-Z][\w-]*)", tag).group(1).lower()
        if name not in harmless:
            bad.append(f"<{name}>")
        bad += re.findall(r"\son\w+\s*=", tag, re.I)
        for target in re.findall(r"""(?:href|src)\s*=\s*["']([^"']*)""", tag, re.I):
            if not target.lower().startswith(("http://", "https://", "mailto:", "#")):
                bad.append(target)
    return bad


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_render_with_nothing_live(payload):
    assert live_parts(RENDER(payload)), "the payload itself must be live, or it tests nothing"
    rendered = RENDER(untrusted_markdown(payload))
    assert live_parts(rendered) == [], rendered


def test_markdown_a_reader_wants_is_kept():
    answer = ("## What went wrong\n\nThe loop uses **`i`** after it ends: *see* line 3.\n\n- one\n- two\n\n"
              "```python\nif a < b and c > d:\n    print('<ok>')\n```\n\nSee [the docs](https://docs.python.org/3/) "
              "or mail [us](mailto:a@example.org); `x < y` holds.")
    rendered = RENDER(untrusted_markdown(answer))
    assert "<h2>What went wrong</h2>" in rendered and "<strong><code>i</code></strong>" in rendered
    assert "<li>one</li>" in rendered and "<em>see</em>" in rendered
    assert "if a &lt; b and c &gt; d:\n    print('&lt;ok&gt;')" in rendered  # code as written
    assert '<a href="https://docs.python.org/3/">the docs</a>' in rendered and 'href="mailto:a@example.org"' in rendered
    assert "<code>x &lt; y</code>" in rendered


def test_html_from_the_model_is_shown_as_text():
    rendered = RENDER(untrusted_markdown("Use <b>bold</b> & <script>alert(1)</script>"))
    assert "Use &lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "<b>" not in rendered and "<script>" not in rendered


def test_an_unclosed_fence_is_closed():
    text = untrusted_markdown("```python\nx = 1")
    assert text.endswith("\n```") and RENDER(text).count("<pre>") == 1


@pytest.mark.parametrize("inner", ["```\n<img src=x onerror=alert(1)>\n```", "````\n```", "`` ` ``"])
def test_a_code_block_cannot_be_closed_from_inside(inner):
    rendered = RENDER(code_block(f"print(1)\n{inner}\nprint(2)", "python"))
    assert rendered.count("<pre>") == 1 and "<img" not in rendered and "print(2)" in rendered


def test_html_text_escapes_quotes():
    assert html_text("<a title=\"x\" onclick='y'>") == "&lt;a title=&quot;x&quot; onclick=&#x27;y&#x27;&gt;"


def test_a_diff_is_coloured_html_with_every_line_escaped():
    from jupyter_codegemma.kernel.conversation.fixes import diff

    proposal = "x = 1\n" + "\n".join(PAYLOADS) + "\n</code></pre><img src=x onerror=alert(1)>\n"
    change = diff("x = 2\nprint(x)\n", proposal, "In[3]")
    rendered = RENDER(f"Proposed fix:\n\n{diff_block(change)}\n\nafter")
    assert rendered.count("<pre>") == 1 and rendered.endswith("<p>after</p>\n")  # one block, closed where we close it
    tags = {re.match(r"/?([a-z]+)", tag).group(1) for tag in re.findall(r"<(/?[a-zA-Z][^<>]*)>", rendered)}
    assert tags == {"p", "pre", "code", "span"}, tags  # no tag from the text
    assert not re.search(r"\son\w+\s*=", " ".join(re.findall(r"<[^<>]*>", rendered)), re.I)
    style = {text: style for style, text in re.findall(r'<span style="([^"]*)">([^<]*)</span>', rendered)}
    assert "success" in style["+x = 1"] and "error" in style["-x = 2"] and "bold" in style["--- In[3] (as run)"]
    assert style["+&lt;script&gt;window.__pwned = 1&lt;/script&gt;"] == style["+x = 1"]  # shown as text, green
