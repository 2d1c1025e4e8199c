/**
 * What the model sees around the cursor: the fill-in-the-middle prefix and suffix of a notebook.
 *
 * Pure functions over plain cell texts, so Jest tests them without a browser. The notebook is
 * read as one file: the code cells above, then the current cell up to the cursor (the prefix);
 * the rest of the cell, then the code cells below (the suffix). Markdown cells become comments
 * (they often say what the next cell is for); outputs are never part of it; raw cells are left out.
 */

export type CellKind = 'code' | 'markdown' | 'raw';

export interface ICellText {
  kind: CellKind;
  text: string;
}

export interface IAroundCursorOptions {
  /** The most characters of prefix to send; the text nearest the cursor is kept. */
  prefixChars: number;
  /** The most characters of suffix to send; the text nearest the cursor is kept. */
  suffixChars: number;
  /** How many (non-empty) cells above and how many below the current one to show the model. */
  contextCells: number;
  /** The notebook's language, which decides how markdown is commented out. */
  language: string;
}

export interface ITextAroundCursor {
  prefix: string;
  suffix: string;
}

/** Cells are joined by one blank line, as they would be in a script. */
export const CELL_SEPARATOR = '\n\n';

const LINE_COMMENTS: Record<string, string> = {
  python: '#',
  r: '#',
  julia: '#',
  ruby: '#',
  perl: '#',
  bash: '#',
  sh: '#',
  shell: '#',
  javascript: '//',
  typescript: '//',
  java: '//',
  scala: '//',
  kotlin: '//',
  c: '//',
  'c++': '//',
  cpp: '//',
  go: '//',
  rust: '//',
  swift: '//',
  sql: '--',
  lua: '--',
  haskell: '--',
  matlab: '%',
  octave: '%'
};

export function lineComment(language: string): string {
  return LINE_COMMENTS[language.toLowerCase()] ?? '#';
}

/** A markdown cell as comment lines of `language` (blank lines stay comment-only lines). */
export function markdownAsComment(text: string, language: string): string {
  const mark = lineComment(language);
  return text
    .replace(/\s+$/, '')
    .split('\n')
    .map(line => (line.trim() ? `${mark} ${line}` : mark))
    .join('\n');
}

/** How a neighbouring cell reads in the prefix or suffix, or null when it is left out. */
function neighbourText(cell: ICellText, language: string): string | null {
  if (!cell.text.trim()) {
    return null;
  }
  switch (cell.kind) {
    case 'code':
      return cell.text.replace(/\s+$/, '');
    case 'markdown':
      return markdownAsComment(cell.text, language);
    default:
      return null; // raw cells are for nbconvert, not code
  }
}

/** The texts of the neighbouring cells on one side of the current cell, nearest first. */
function neighbours(cells: ICellText[], language: string, limit: number): string[] {
  const texts: string[] = [];
  for (const cell of cells) {
    if (texts.length >= limit) {
      break;
    }
    const text = neighbourText(cell, language);
    if (text !== null) {
      texts.push(text);
    }
  }
  return texts;
}

/**
 * The last `budget` characters of `text`. When the cut falls inside a line that is not the last,
 * that broken line is dropped as well: half a statement teaches the model nothing.
 */
export function keepEnd(text: string, budget: number): string {
  if (text.length <= budget) {
    return text;
  }
  if (budget <= 0) {
    return '';
  }
  let kept = text.slice(text.length - budget);
  const onBoundary = text[text.length - budget - 1] === '\n' || kept.startsWith('\n');
  const newline = kept.indexOf('\n');
  if (!onBoundary && newline >= 0) {
    kept = kept.slice(newline + 1);
  }
  // What is left may begin with the blank line between two cells: it says nothing.
  return kept.replace(/^\n+/, '');
}

/** The first `budget` characters of `text`, without a broken line at the end (see keepEnd). */
export function keepStart(text: string, budget: number): string {
  if (text.length <= budget) {
    return text;
  }
  if (budget <= 0) {
    return '';
  }
  const kept = text.slice(0, budget);
  const onBoundary = text[budget] === '\n' || kept.endsWith('\n');
  const newline = kept.lastIndexOf('\n');
  return !onBoundary && newline >= 0 ? kept.slice(0, newline + 1) : kept;
}

/**
 * The prefix and suffix for a cursor at `offset` in `cells[index]`.
 *
 * The current cell's own text always comes first in the budget: neighbouring cells only fill what
 * is left, so a long notebook never pushes out the line being typed.
 */
export function textAroundCursor(
  cells: ICellText[],
  index: number,
  offset: number,
  options: IAroundCursorOptions
): ITextAroundCursor {
  const current = cells[index]?.text ?? '';
  const cursor = Math.min(Math.max(offset, 0), current.length);
  const limit = Math.max(0, Math.floor(options.contextCells));
  const above = neighbours(cells.slice(0, index).reverse(), options.language, limit).reverse();
  const below = neighbours(cells.slice(index + 1), options.language, limit);

  const before = current.slice(0, cursor);
  const after = current.slice(cursor);
  const prefix = above.length ? above.join(CELL_SEPARATOR) + CELL_SEPARATOR + before : before;
  const suffix = below.length ? after + CELL_SEPARATOR + below.join(CELL_SEPARATOR) : after;
  return {
    prefix: keepEnd(prefix, Math.max(0, Math.floor(options.prefixChars))),
    suffix: keepStart(suffix, Math.max(0, Math.floor(options.suffixChars)))
  };
}
