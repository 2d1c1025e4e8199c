/**
 * The error mark of the exercise editor: the line of a syntax error, and the column Python points
 * at, shown as a tinted line, a marker in a gutter and a caret.
 *
 * The mark lives in the editor state, so it follows the student's edits (a line typed above moves
 * it down) until the kernel checks the code again and sends a new one. `errorMarkOf` reads it back
 * as a line and column, which the widget view writes to the model so the kernel knows where it is.
 */

import { EditorState, Extension, MapMode, RangeSet, StateEffect, StateField, Text } from '@codemirror/state';
import { Decoration, DecorationSet, EditorView, gutter, GutterMarker, WidgetType } from '@codemirror/view';

/** A syntax error's place, as Python gives it: 1-based line, 1-based column (null: the line only). */
export interface IErrorMark {
  line: number;
  col: number | null;
}

/** Where a mark sits in a document: the start of its line, and the caret's offset (if it has a column). */
export interface IMarkPosition {
  lineFrom: number;
  caret: number | null;
}

/**
 * The offsets of a mark in `doc`, or null where it does not fit (no line that far down).
 * Python reports a missing colon one column past the end of the line: the caret goes to the end.
 */
export function markPosition(doc: Text, mark: IErrorMark | null): IMarkPosition | null {
  if (!mark || !Number.isInteger(mark.line) || mark.line < 1 || mark.line > doc.lines) {
    return null;
  }
  const line = doc.line(mark.line);
  if (mark.col === null || !Number.isInteger(mark.col)) {
    return { lineFrom: line.from, caret: null };
  }
  const offset = Math.min(Math.max(mark.col - 1, 0), line.length);
  return { lineFrom: line.from, caret: line.from + offset };
}

/** The line and column of an offset, 1-based like Python's. */
export function lineAndColumn(doc: Text, offset: number): IErrorMark {
  const line = doc.lineAt(offset);
  return { line: line.number, col: offset - line.from + 1 };
}

/** The smallest replacement that turns `before` into `after` (the text they share on both ends is kept). */
export function minimalChange(before: string, after: string): { from: number; to: number; insert: string } | null {
  if (before === after) {
    return null;
  }
  let start = 0;
  const shorter = Math.min(before.length, after.length);
  while (start < shorter && before.charCodeAt(start) === after.charCodeAt(start)) {
    start++;
  }
  let end = 0;
  while (
    end < shorter - start &&
    before.charCodeAt(before.length - 1 - end) === after.charCodeAt(after.length - 1 - end)
  ) {
    end++;
  }
  return { from: start, to: before.length - end, insert: after.slice(start, after.length - end) };
}

/** Put a mark in place of the current one (null: take it away). */
export const setErrorMark = StateEffect.define<IErrorMark | null>();

/**
 * The mark as an anchor offset: the caret where there is a column, else the line's start. An edit
 * that deletes the anchor deletes the mark (the text it pointed at is gone).
 */
interface IAnchor {
  pos: number;
  hasCol: boolean;
}

export const errorMarkField = StateField.define<IAnchor | null>({
  create: () => null,
  update(anchor, tr) {
    for (const effect of tr.effects) {
      if (effect.is(setErrorMark)) {
        const place = markPosition(tr.newDoc, effect.value);
        anchor = place && { pos: place.caret ?? place.lineFrom, hasCol: place.caret !== null };
        return anchor;
      }
    }
    if (!anchor || !tr.docChanged) {
      return anchor;
    }
    const pos = tr.changes.mapPos(anchor.pos, anchor.hasCol ? 1 : -1, MapMode.TrackDel);
    return pos === null ? null : { pos, hasCol: anchor.hasCol };
  }
});

/** The mark where it is now (after the edits since it was set), or null. */
export function errorMarkOf(state: EditorState): IErrorMark | null {
  const anchor = state.field(errorMarkField, false);
  if (!anchor) {
    return null;
  }
  const place = lineAndColumn(state.doc, anchor.pos);
  return anchor.hasCol ? place : { line: place.line, col: null };
}

/** Two marks point at the same place. */
export function sameMark(a: IErrorMark | null, b: IErrorMark | null): boolean {
  return a === b || (a !== null && b !== null && a.line === b.line && a.col === b.col);
}

// --- how the mark looks ------------------------------------------------------------------------------

const LINE_CLASS = 'jp-CodeGemmaEditor-errorLine';

/** A caret under the column Python points at (an empty inline box; the CSS draws the caret). */
class CaretWidget extends WidgetType {
  eq(): boolean {
    return true; // every caret looks the same: keep the DOM node when the mark moves
  }

  toDOM(): HTMLElement {
    const caret = document.createElement('span');
    caret.className = 'jp-CodeGemmaEditor-caret';
    caret.setAttribute('aria-hidden', 'true');
    return caret;
  }
}

class ErrorGutterMarker extends GutterMarker {
  eq(other: GutterMarker): boolean {
    return other instanceof ErrorGutterMarker;
  }

  toDOM(): Node {
    const marker = document.createElement('span');
    marker.className = 'jp-CodeGemmaEditor-errorMarker';
    marker.textContent = '✗';
    marker.title = 'Syntax error on this line';
    marker.setAttribute('role', 'img');
    marker.setAttribute('aria-label', 'Syntax error on this line');
    return marker;
  }
}

const lineDecoration = Decoration.line({ class: LINE_CLASS, attributes: { 'data-error-line': 'true' } });
const caretDecoration = Decoration.widget({ widget: new CaretWidget(), side: 1 });
const gutterMarker = new ErrorGutterMarker();

function decorations(state: EditorState): DecorationSet {
  const anchor = state.field(errorMarkField, false);
  if (!anchor) {
    return Decoration.none;
  }
  const line = state.doc.lineAt(anchor.pos);
  const ranges = [lineDecoration.range(line.from)];
  if (anchor.hasCol) {
    ranges.push(caretDecoration.range(anchor.pos));
  }
  return Decoration.set(ranges, true);
}

/** The state field, its decorations and the gutter: everything the editor needs to show a mark. */
export function errorMarks(): Extension {
  return [
    errorMarkField,
    EditorView.decorations.compute([errorMarkField], decorations),
    gutter({
      class: 'jp-CodeGemmaEditor-errorGutter',
      markers: view => {
        const anchor = view.state.field(errorMarkField, false);
        return anchor ? RangeSet.of([gutterMarker.range(view.state.doc.lineAt(anchor.pos).from)]) : RangeSet.empty;
      },
      // Keep the gutter's width when there is no mark, so the code does not shift on Check.
      initialSpacer: () => gutterMarker
    })
  ];
}
