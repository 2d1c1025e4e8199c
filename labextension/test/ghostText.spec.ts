/** Accepting part of a suggestion, typing through it, and when to ask for one (issue 17). */

import { acceptedPart, nextLine, nextWord } from '../src/completion/suggestionParts';
import { shouldSuggest, syntaxAt, ITriggerSettings, ITriggerContext } from '../src/completion/trigger';
import { anchorAt, remainderAfter, stringIndex, typedSince, typeThrough } from '../src/completion/typeThrough';

describe('suggestion parts', () => {
  it('takes a suggestion word by word: whitespace before a word, then a word or a run of symbols', () => {
    const parts: string[] = [];
    let rest = '(a, b):\n    return a + b';
    while (rest) {
      const part = nextWord(rest);
      expect(part.length).toBeGreaterThan(0);
      parts.push(part);
      rest = rest.slice(part.length);
    }
    expect(parts).toEqual(['(', 'a', ',', ' b', '):', '\n    return', ' a', ' +', ' b']);
    expect(nextWord('   ')).toBe('   ');
    expect(nextWord('naïve_2 = 1')).toBe('naïve_2');
  });

  it('takes a line up to its line break; a leading break comes with the next line', () => {
    const text = 'range(10):\n    total += i\nprint(total)';
    expect(nextLine(text)).toBe('range(10):');
    expect(nextLine('\n    total += i\nprint(total)')).toBe('\n    total += i');
    expect(nextLine('print(total)')).toBe('print(total)');
    expect(nextLine('a\r\nb')).toBe('a');
    let rest = text;
    const lines: string[] = [];
    while (rest) {
      const part = acceptedPart(rest, 'line');
      lines.push(part);
      rest = rest.slice(part.length);
    }
    expect(lines.join('')).toBe(text);
    expect(lines).toEqual(['range(10):', '\n    total += i', '\nprint(total)']);
  });
});

describe('type-through', () => {
  const anchor = anchorAt({ cellId: 'c1', text: 'x = compute(\n# end', offset: 12 });
  const at = (text: string, offset: number, cellId = 'c1') => ({ cellId, text, offset });

  it('reads what was typed at the anchor since the suggestion was asked for', () => {
    expect(typedSince(anchor, at('x = compute(\n# end', 12))).toBe('');
    expect(typedSince(anchor, at('x = compute(data\n# end', 16))).toBe('data');
    // An edit after the cursor, before the anchor, in another cell, or the cursor elsewhere: stale.
    expect(typedSince(anchor, at('x = compute(data\n# end!', 16))).toBeNull();
    expect(typedSince(anchor, at('y = compute(data\n# end', 16))).toBeNull();
    expect(typedSince(anchor, at('x = compute(data\n# end', 16, 'c2'))).toBeNull();
    expect(typedSince(anchor, at('x = compute(data\n# end', 14))).toBeNull();
    expect(typedSince(anchor, at('x = compute\n# end', 11))).toBeNull();
  });

  it('keeps the rest of the suggestion while the typing matches it, and drops it on a mismatch', () => {
    const suggestion = 'data, axis=0)';
    expect(typeThrough(anchor, suggestion, true, at('x = compute(d\n# end', 13))).toBe('ata, axis=0)');
    expect(typeThrough(anchor, suggestion, true, at('x = compute(data,\n# end', 17))).toBe(' axis=0)');
    expect(typeThrough(anchor, suggestion, true, at('x = compute(dx\n# end', 14))).toBeNull();
    // Backspace over typed characters stays on the suggestion: the ghost text grows back.
    expect(typeThrough(anchor, suggestion, true, at('x = compute(\n# end', 12))).toBe(suggestion);
    // All of it typed: nothing to show; a new request is due once the suggestion is complete.
    expect(typeThrough(anchor, suggestion, true, at('x = compute(data, axis=0)\n# end', 25))).toBeNull();
    expect(remainderAfter(suggestion, suggestion, false)).toBe('');
    // Still streaming, and the user is ahead of it: a new request.
    expect(remainderAfter('da', 'dat', false)).toBeNull();
  });

  it('reads JupyterLab\'s cursor (code points) as a string index (UTF-16 units)', () => {
    expect(stringIndex('abc', 2)).toBe(2);
    const text = 'x = "🐍" + y';
    expect(text.slice(0, stringIndex(text, 7))).toBe('x = "🐍"');
    expect(stringIndex(text, 100)).toBe(text.length);
  });

  it('five matching characters keep the suggestion at every step; the sixth, a mismatch, drops it', () => {
    const suggestion = 'numbers.sort()';
    const start = anchorAt({ cellId: 'c', text: '', offset: 0 });
    for (let n = 1; n <= 5; n++) {
      const typed = suggestion.slice(0, n);
      expect(typeThrough(start, suggestion, true, at(typed, n, 'c'))).toBe(suggestion.slice(n));
    }
    expect(typeThrough(start, suggestion, true, at('numbeX', 6, 'c'))).toBeNull();
  });
});

describe('trigger', () => {
  const settings: ITriggerSettings = {
    trigger: 'auto',
    inMarkdownCells: false,
    inRawCells: false,
    inStrings: true,
    inComments: true
  };
  const context = (over: Partial<ITriggerContext> = {}): ITriggerContext => ({
    source: 'automatic',
    cellType: 'code',
    text: 'x = 1',
    offset: 5,
    language: 'python',
    ...over
  });

  it('tells code, strings and comments apart at the cursor', () => {
    const cases: [string, string][] = [
      ['x = f(', 'code'],
      ['x = "abc', 'string'],
      ["x = 'a\\'b", 'string'],
      ['x = "a" + y', 'code'],
      ['x = 1  # the count', 'comment'],
      ['x = "# not a comment', 'string'],
      ['s = """\nline one\nline', 'string'],
      ['s = """doc"""\ny = ', 'code'],
      ['# a comment\ny = ', 'code'],
      ["x = 'unterminated\ny = ", 'code']
    ];
    for (const [text, syntax] of cases) {
      expect([text, syntaxAt(text, text.length, 'python')]).toEqual([text, syntax]);
    }
    expect(syntaxAt('int x = 1; // count', 19, 'c')).toBe('comment');
    expect(syntaxAt('x = 1  # not a C comment', 24, 'c')).toBe('code');
  });

  it('auto asks while typing; manual only on the invoke shortcut', () => {
    expect(shouldSuggest(settings, context())).toBe(true);
    const manual = { ...settings, trigger: 'manual' as const };
    expect(shouldSuggest(manual, context())).toBe(false);
    expect(shouldSuggest(manual, context({ source: 'invoke' }))).toBe(true);
  });

  it('never in Markdown or raw cells unless switched on, even when invoked', () => {
    for (const cellType of ['markdown', 'raw']) {
      expect(shouldSuggest(settings, context({ cellType, source: 'invoke' }))).toBe(false);
    }
    expect(shouldSuggest({ ...settings, inMarkdownCells: true }, context({ cellType: 'markdown' }))).toBe(true);
    expect(shouldSuggest({ ...settings, inRawCells: true }, context({ cellType: 'raw' }))).toBe(true);
  });

  it('in strings and comments only when their switches are on', () => {
    const inString = context({ text: 'print("Hello, ', offset: 14 });
    const inComment = context({ text: '# load the data', offset: 15 });
    expect(shouldSuggest(settings, inString)).toBe(true);
    expect(shouldSuggest(settings, inComment)).toBe(true);
    const off = { ...settings, inStrings: false, inComments: false };
    expect(shouldSuggest(off, inString)).toBe(false);
    expect(shouldSuggest(off, inComment)).toBe(false);
    expect(shouldSuggest(off, context())).toBe(true);
  });
});
