/**
 * The pieces of a suggestion that accept-next-word and accept-next-line take, as VS Code's
 * `acceptNextWord` / `acceptNextLine` do. Pure, so Jest tests them.
 *
 * A word is the whitespace before it (newlines and indentation included: accepting the word after
 * a line break moves to the next line) and then one run of identifier characters or one run of
 * other symbols: `(a, b):` is taken as `(`, `a`, `,`, ` b`, `):`.
 * A line is the text up to the end of the current line, not the line break: the cursor stays on
 * that line and the rest (`\n...`) stays ghost text; when the suggestion starts with a line break,
 * the break and the next line are taken.
 */

const WORD = /^\s*(?:[\p{L}\p{N}_]+|[^\p{L}\p{N}_\s]+)/u;

/** The next word of `text` (all of it when it holds only whitespace). */
export function nextWord(text: string): string {
  const match = WORD.exec(text);
  return match ? match[0] : text;
}

/** The next line of `text`: up to its first line break, or the break and the line after it. */
export function nextLine(text: string): string {
  const start = text.startsWith('\r\n') ? 2 : text.startsWith('\n') ? 1 : 0;
  const end = text.indexOf('\n', start);
  if (end < 0) {
    return text;
  }
  return text.slice(0, text[end - 1] === '\r' && end - 1 >= start ? end - 1 : end);
}

export type PartKind = 'word' | 'line';

/** The part of `text` that accepting a `kind` takes. */
export function acceptedPart(text: string, kind: PartKind): string {
  return kind === 'word' ? nextWord(text) : nextLine(text);
}
