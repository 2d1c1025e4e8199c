/**
 * Typing through a suggestion: when the user types the characters the ghost text starts with, the
 * rest of it stays, with no new model request (as Copilot does). Pure, so Jest tests it.
 *
 * A suggestion is anchored where it was asked for: the cell's text before the cursor then and the
 * text after it. JupyterLab asks the provider again on every keystroke; the cell's text now, read
 * against that anchor, says what was typed since. When that is the start of the suggestion, the
 * remainder is what the ghost text still shows; anything else (a different character, an edit
 * elsewhere in the cell, the cursor moved back before the anchor) makes the suggestion stale.
 */

/** Where a suggestion was asked for: the cell and its text on each side of the cursor. */
export interface ISuggestionAnchor {
  cellId: string;
  before: string;
  after: string;
}

/** The cell's text and the cursor's offset in it, now. */
export interface ICursorText {
  cellId: string;
  text: string;
  offset: number;
}

/**
 * The string index of the `codePoints`-th code point of `text`. JupyterLab gives providers the
 * cursor as a count of code points (an emoji is one), the editor and `String.slice` count UTF-16
 * units (an emoji is two).
 */
export function stringIndex(text: string, codePoints: number): number {
  let index = 0;
  let left = codePoints;
  for (const character of text) {
    if (left-- <= 0) {
      break;
    }
    index += character.length;
  }
  return index;
}

/** The anchor of a suggestion asked for at `cursor`. */
export function anchorAt(cursor: ICursorText): ISuggestionAnchor {
  return {
    cellId: cursor.cellId,
    before: cursor.text.slice(0, cursor.offset),
    after: cursor.text.slice(cursor.offset)
  };
}

/** What was typed at the anchor since (`''`: nothing), or null when the cell changed otherwise. */
export function typedSince(anchor: ISuggestionAnchor, now: ICursorText): string | null {
  const { text, offset } = now;
  if (
    now.cellId !== anchor.cellId ||
    offset < anchor.before.length ||
    !text.startsWith(anchor.before) ||
    text.slice(offset) !== anchor.after ||
    text.length - anchor.after.length !== offset
  ) {
    return null;
  }
  return text.slice(anchor.before.length, offset);
}

/**
 * The ghost text left after typing `typed` over `suggestion`, or null when the typing left the
 * suggestion: a character it does not have, or all of it typed (nothing left to show; a new
 * request is due once the suggestion is complete).
 */
export function remainderAfter(suggestion: string, typed: string, complete: boolean): string | null {
  if (!suggestion.startsWith(typed)) {
    return null;
  }
  const rest = suggestion.slice(typed.length);
  return rest || !complete ? rest : null;
}

/** The remainder of a suggestion anchored at `anchor` with the cell as `now`, or null when stale. */
export function typeThrough(
  anchor: ISuggestionAnchor,
  suggestion: string,
  complete: boolean,
  now: ICursorText
): string | null {
  const typed = typedSince(anchor, now);
  return typed === null ? null : remainderAfter(suggestion, typed, complete);
}
