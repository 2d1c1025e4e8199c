/** The exercise editor's error mark: where it goes, how it follows edits, what it draws. */

import { EditorState, Text } from '@codemirror/state';
import { Decoration, DecorationSet, EditorView } from '@codemirror/view';

import {
  errorMarkOf,
  errorMarks,
  lineAndColumn,
  markPosition,
  minimalChange,
  sameMark,
  setErrorMark
} from '../src/exercises/errorMarks';

const CODE = 'temperature = 30\nif temperature > 25\n    weather = "hot"\n';

function stateWith(code: string, mark: { line: number; col: number | null } | null): EditorState {
  const state = EditorState.create({ doc: code, extensions: errorMarks() });
  return state.update({ effects: setErrorMark.of(mark) }).state;
}

/** The decorations the mark draws, as [offset, kind] pairs. */
function drawn(state: EditorState): [number, string][] {
  const out: [number, string][] = [];
  for (const source of state.facet(EditorView.decorations)) {
    if (typeof source === 'function') {
      continue; // view-dependent decorations (none of ours)
    }
    (source as DecorationSet).between(0, state.doc.length, (from, _to, deco: Decoration) => {
      const spec = deco.spec as { class?: string; widget?: unknown };
      out.push([from, spec.widget ? 'caret' : (spec.class ?? '?')]);
    });
  }
  return out;
}

describe('markPosition', () => {
  const doc = Text.of(CODE.split('\n'));

  it('puts the caret at Python’s column, 1-based', () => {
    // "if temperature > 25" starts at offset 17; column 4 is the "t" of temperature
    expect(markPosition(doc, { line: 2, col: 4 })).toEqual({ lineFrom: 17, caret: 20 });
  });

  it('puts a column past the end of the line (a missing colon) at the end of the line', () => {
    expect(markPosition(doc, { line: 2, col: 20 })).toEqual({ lineFrom: 17, caret: 36 });
    expect(markPosition(doc, { line: 2, col: 99 })).toEqual({ lineFrom: 17, caret: 36 });
  });

  it('marks the line alone without a column, and nothing outside the document', () => {
    expect(markPosition(doc, { line: 3, col: null })).toEqual({ lineFrom: 37, caret: null });
    expect(markPosition(doc, { line: 0, col: 1 })).toBeNull();
    expect(markPosition(doc, { line: 9, col: 1 })).toBeNull();
    expect(markPosition(doc, null)).toBeNull();
  });

  it('round-trips through lineAndColumn', () => {
    expect(lineAndColumn(doc, 20)).toEqual({ line: 2, col: 4 });
    expect(lineAndColumn(doc, 0)).toEqual({ line: 1, col: 1 });
  });
});

describe('minimalChange', () => {
  it('replaces only what differs', () => {
    expect(minimalChange('if x > 1\n', 'if x > 1:\n')).toEqual({ from: 8, to: 8, insert: ':' });
    expect(minimalChange('print "hi"', 'print("hi")')).toEqual({ from: 5, to: 10, insert: '("hi")' });
    expect(minimalChange('aaa', 'aa')).toEqual({ from: 2, to: 3, insert: '' });
    expect(minimalChange('same', 'same')).toBeNull();
  });

  it('always turns the old text into the new one', () => {
    const pairs = [
      ['', 'x = 1'],
      ['x = 1', ''],
      ['abcabc', 'abc'],
      ['a\nb\nc', 'a\nB\nc'],
      ['xx', 'xxxx']
    ];
    for (const [before, after] of pairs) {
      const change = minimalChange(before, after)!;
      expect(before.slice(0, change.from) + change.insert + before.slice(change.to)).toBe(after);
    }
  });
});

describe('the error mark in an editor state', () => {
  it('draws the line, the caret and nothing else', () => {
    const state = stateWith(CODE, { line: 2, col: 20 });
    expect(errorMarkOf(state)).toEqual({ line: 2, col: 20 });
    expect(drawn(state)).toEqual([
      [17, 'jp-CodeGemmaEditor-errorLine'],
      [36, 'caret']
    ]);
  });

  it('draws only the line when there is no column', () => {
    const state = stateWith(CODE, { line: 3, col: null });
    expect(errorMarkOf(state)).toEqual({ line: 3, col: null });
    expect(drawn(state)).toEqual([[37, 'jp-CodeGemmaEditor-errorLine']]);
  });

  it('moves down when a line is typed above it', () => {
    const state = stateWith(CODE, { line: 2, col: 20 });
    const after = state.update({ changes: { from: 0, insert: '# warm\n' } }).state;
    expect(errorMarkOf(after)).toEqual({ line: 3, col: 20 });
  });

  it('stays on its line while the student types the fix at the caret', () => {
    const state = stateWith(CODE, { line: 2, col: 20 });
    const after = state.update({ changes: { from: 36, insert: ':' } }).state;
    expect(after.doc.line(2).text).toBe('if temperature > 25:');
    expect(errorMarkOf(after)?.line).toBe(2);
  });

  it('goes away when the text it points at is deleted, or when the kernel clears it', () => {
    const state = stateWith(CODE, { line: 2, col: 4 });
    const deleted = state.update({ changes: { from: 17, to: 37 } }).state;
    expect(errorMarkOf(deleted)).toBeNull();
    expect(drawn(deleted)).toEqual([]);
    expect(errorMarkOf(state.update({ effects: setErrorMark.of(null) }).state)).toBeNull();
  });

  it('is replaced, not added to, by a new mark', () => {
    const state = stateWith(CODE, { line: 2, col: 20 });
    const next = state.update({ effects: setErrorMark.of({ line: 1, col: 1 }) }).state;
    expect(drawn(next)).toEqual([
      [0, 'jp-CodeGemmaEditor-errorLine'],
      [0, 'caret']
    ]);
  });

  it('compares marks by place', () => {
    expect(sameMark({ line: 1, col: 2 }, { line: 1, col: 2 })).toBe(true);
    expect(sameMark({ line: 1, col: 2 }, { line: 1, col: null })).toBe(false);
    expect(sameMark(null, null)).toBe(true);
    expect(sameMark(null, { line: 1, col: null })).toBe(false);
  });
});
