/**
 * When ghost text is asked for: the trigger setting (`auto` while typing, or `manual`: only on
 * JupyterLab's invoke shortcut), the kinds of cell, and whether the cursor is inside a string or a
 * comment. Pure, so Jest tests it; the provider passes in what it reads from the notebook.
 */

import { lineComment } from './cells';

export const TRIGGERS = ['auto', 'manual'] as const;
export type Trigger = (typeof TRIGGERS)[number];

/** The settings that decide when to ask (`settings.ts` reads them from the schema). */
export interface ITriggerSettings {
  trigger: Trigger;
  inMarkdownCells: boolean;
  inRawCells: boolean;
  inStrings: boolean;
  inComments: boolean;
}

export type CursorSyntax = 'code' | 'string' | 'comment';

/** What asked: the user typing (`automatic`) or the invoke shortcut (`invoke`). */
export type TriggerSource = 'automatic' | 'invoke';

export interface ITriggerContext {
  source: TriggerSource;
  cellType: string;
  /** The cell's text and the cursor's offset in it. */
  text: string;
  offset: number;
  language: string;
}

/**
 * Whether the cursor at `offset` is in code, a string or a comment, by a scan of the cell from its
 * start: line comments (`#`, `//`, `--`, `%` by language) and '...', "...", '''...''', """..."""
 * strings with backslash escapes. A lexer's view, not a parser's: good enough to tell "the user is
 * writing prose" from "the user is writing code", which is all the switches ask.
 */
export function syntaxAt(text: string, offset: number, language: string): CursorSyntax {
  const comment = lineComment(language);
  const end = Math.min(Math.max(offset, 0), text.length);
  let quote: string | null = null; // the open string's delimiter: ', ", ''' or """
  let i = 0;
  while (i < end) {
    if (quote !== null) {
      if (text[i] === '\\') {
        i += 2;
        continue;
      }
      if (text.startsWith(quote, i)) {
        i += quote.length;
        quote = null;
        continue;
      }
      if (text[i] === '\n' && quote.length === 1) {
        quote = null; // an unterminated one-line string ends with its line
      }
      i += 1;
      continue;
    }
    if (text.startsWith(comment, i)) {
      const newline = text.indexOf('\n', i);
      if (newline < 0 || newline >= end) {
        return 'comment';
      }
      i = newline + 1;
      continue;
    }
    const c = text[i];
    if (c === '"' || c === "'") {
      quote = text.startsWith(c.repeat(3), i) ? c.repeat(3) : c;
      i += quote.length;
      continue;
    }
    i += 1;
  }
  return quote !== null ? 'string' : 'code';
}

/** Whether to ask for ghost text here, now. */
export function shouldSuggest(settings: ITriggerSettings, context: ITriggerContext): boolean {
  if (settings.trigger === 'manual' && context.source === 'automatic') {
    return false;
  }
  if (context.cellType === 'markdown') {
    return settings.inMarkdownCells;
  }
  if (context.cellType === 'raw') {
    return settings.inRawCells;
  }
  if (context.cellType !== 'code') {
    return false;
  }
  if (settings.inStrings && settings.inComments) {
    return true;
  }
  const syntax = syntaxAt(context.text, context.offset, context.language);
  return (syntax !== 'string' || settings.inStrings) && (syntax !== 'comment' || settings.inComments);
}
