/** The text around the cursor: which cells the model sees, how markdown reads, and how budgets cut. */

import {
  CELL_SEPARATOR,
  IAroundCursorOptions,
  ICellText,
  keepEnd,
  keepStart,
  markdownAsComment,
  textAroundCursor
} from '../src/completion/cells';

const options: IAroundCursorOptions = { prefixChars: 10_000, suffixChars: 10_000, contextCells: 10, language: 'python' };

const code = (text: string): ICellText => ({ kind: 'code', text });
const markdown = (text: string): ICellText => ({ kind: 'markdown', text });
const raw = (text: string): ICellText => ({ kind: 'raw', text });

describe('textAroundCursor', () => {
  const cells = [
    code('import math'),
    markdown('## Areas\nThe area of a circle.'),
    code('def area(r):\n    return math.pi * r ** 2'),
    code('print(ar)'),
    code('print(area(2))'),
    raw('not code'),
    code('x = 1\n')
  ];

  it('reads cells above, the cell to the cursor, then the rest and the cells below', () => {
    const { prefix, suffix } = textAroundCursor(cells, 3, 'print(ar'.length, options);
    expect(prefix).toBe(
      [
        'import math',
        '# ## Areas\n# The area of a circle.',
        'def area(r):\n    return math.pi * r ** 2',
        'print(ar'
      ].join(CELL_SEPARATOR)
    );
    // raw cells are left out; trailing whitespace of a neighbouring cell is dropped
    expect(suffix).toBe([')', 'print(area(2))', 'x = 1'].join(CELL_SEPARATOR));
  });

  it('takes the nearest N non-empty cells on each side', () => {
    const withEmpty = [code('a = 1'), code('b = 2'), code('   '), code('c = '), code(''), code('d = 4'), code('e = 5')];
    const { prefix, suffix } = textAroundCursor(withEmpty, 3, 4, { ...options, contextCells: 1 });
    expect(prefix).toBe('b = 2' + CELL_SEPARATOR + 'c = ');
    expect(suffix).toBe(CELL_SEPARATOR + 'd = 4');
  });

  it('with no context cells sends only the current cell', () => {
    expect(textAroundCursor(cells, 3, 3, { ...options, contextCells: 0 })).toEqual({ prefix: 'pri', suffix: 'nt(ar)' });
  });

  it('works in the first and the last cell, and clamps the cursor', () => {
    expect(textAroundCursor([code('only')], 0, 99, options)).toEqual({ prefix: 'only', suffix: '' });
    expect(textAroundCursor([code('a'), code('b')], 0, -5, options)).toEqual({ prefix: '', suffix: 'a' + CELL_SEPARATOR + 'b' });
  });

  it('cuts the prefix from the far end, at a line boundary, and keeps the current line whole', () => {
    const many = [code('one = 1\ntwo = 2'), code('three = 3'), code('four = ')];
    // "= 2" of the line "two = 2", the blank line between the cells, and the two cells nearest the cursor
    const budget = 3 + CELL_SEPARATOR.length + 'three = 3'.length + CELL_SEPARATOR.length + 'four = '.length;
    const { prefix } = textAroundCursor(many, 2, 'four = '.length, { ...options, prefixChars: budget });
    expect(prefix).toBe('three = 3' + CELL_SEPARATOR + 'four = '); // the broken "two = 2" line is dropped
    expect(prefix.length).toBeLessThanOrEqual(budget);
  });

  it('cuts the suffix from the far end, at a line boundary', () => {
    const many = [code('x = '), code('y = 1\nz = 2')];
    const budget = CELL_SEPARATOR.length + 'y = 1\nz ='.length;
    const { suffix } = textAroundCursor(many, 0, 4, { ...options, suffixChars: budget });
    expect(suffix).toBe(CELL_SEPARATOR + 'y = 1\n');
  });

  it('keeps the text nearest the cursor even when one line is over the budget', () => {
    const long = 'x = ' + '1 + '.repeat(100);
    const { prefix, suffix } = textAroundCursor([code(long)], 0, long.length, { ...options, prefixChars: 12, suffixChars: 0 });
    expect(prefix).toBe(long.slice(-12));
    expect(suffix).toBe('');
  });

  it('comments markdown with the language\'s line comment', () => {
    const r = textAroundCursor([markdown('Load the data'), code('df <- ')], 1, 6, { ...options, language: 'R' });
    expect(r.prefix).toBe('# Load the data' + CELL_SEPARATOR + 'df <- ');
    const js = textAroundCursor([markdown('Load the data'), code('const df = ')], 1, 11, { ...options, language: 'javascript' });
    expect(js.prefix.startsWith('// Load the data')).toBe(true);
  });
});

describe('markdownAsComment', () => {
  it('comments every line, leaves blank lines as a bare marker, drops trailing blank lines', () => {
    expect(markdownAsComment('# Title\n\nSome *text*.\n\n', 'python')).toBe('# # Title\n#\n# Some *text*.');
  });

  it('falls back to # for an unknown language', () => {
    expect(markdownAsComment('note', 'brainfudge')).toBe('# note');
  });
});

describe('keepEnd / keepStart', () => {
  it('return the text when it fits', () => {
    expect(keepEnd('abc', 3)).toBe('abc');
    expect(keepStart('abc', 5)).toBe('abc');
  });

  it('return nothing for a zero budget', () => {
    expect(keepEnd('abc', 0)).toBe('');
    expect(keepStart('abc', 0)).toBe('');
  });

  it('keep a cut that falls exactly on a line boundary', () => {
    expect(keepEnd('aa\nbb\ncc', 5)).toBe('bb\ncc');
    expect(keepStart('aa\nbb\ncc', 6)).toBe('aa\nbb\n');
  });

  it('drop the broken line when the cut falls inside one', () => {
    expect(keepEnd('aaaa\nbb\ncc', 4)).toBe('cc'); // "b\ncc": the broken "b" line goes
    expect(keepEnd('aaaa\nbb\ncc', 6)).toBe('bb\ncc'); // "\nbb\ncc": the cut is at a line end
    expect(keepStart('aa\nbb\ncccc', 7)).toBe('aa\nbb\n');
  });
});
