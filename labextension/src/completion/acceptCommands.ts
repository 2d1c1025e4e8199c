/**
 * Accept the next word or the next line of the ghost text (VS Code's `acceptNextWord` /
 * `acceptNextLine`), on top of JupyterLab's inline completer: the part is typed into the editor as
 * the user would type it, so JupyterLab's inline model shortens the ghost text itself, and the
 * provider, asked again, serves the rest of the same suggestion without a model request
 * (typeThrough.ts). Default keys (schema/plugin.json): Accel+→ and Accel+↓, only while ghost text
 * is shown (`.jp-mod-inline-completer-active`), so they move the cursor as usual otherwise; they
 * reach the commands before CodeMirror's own Ctrl+→ (ghostTextKeys.ts).
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { CodeMirrorEditor } from '@jupyterlab/codemirror';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { dispatchBeforeEditor } from './ghostTextKeys';
import { CodeGemmaProvider } from './provider';
import { acceptedPart, PartKind } from './suggestionParts';

export namespace AcceptCommandIDs {
  export const nextWord = 'codegemma:accept-next-word';
  export const nextLine = 'codegemma:accept-next-line';
}

export interface IAcceptCommandOptions {
  app: JupyterFrontEnd;
  tracker: INotebookTracker;
  completions: ICompletionProviderManager;
  provider: CodeGemmaProvider;
  palette: ICommandPalette | null;
}

/** The ghost text on show in the current notebook's active cell, with where to type its parts. */
interface IShownGhost {
  panel: NotebookPanel;
  editor: CodeMirrorEditor;
  rest: string;
}

export function addAcceptCommands(options: IAcceptCommandOptions): void {
  const { app, tracker, completions, provider, palette } = options;

  const shownGhost = (): IShownGhost | null => {
    const panel = tracker.currentWidget;
    const cell = panel?.content.activeCell;
    const editor = cell?.editor;
    if (!panel || !cell || !(editor instanceof CodeMirrorEditor)) {
      return null;
    }
    const selection = editor.getSelection();
    if (selection.start.line !== selection.end.line || selection.start.column !== selection.end.column) {
      return null;
    }
    const text = editor.model.sharedModel.getSource();
    const offset = editor.getOffsetAt(editor.getCursorPosition());
    const rest = provider.remainderAt({ cellId: cell.model.id, text, offset });
    return rest ? { panel, editor, rest } : null;
  };

  const accept = (kind: PartKind): void => {
    const shown = shownGhost();
    if (!shown) {
      return;
    }
    const { panel, editor, rest } = shown;
    const part = acceptedPart(rest, kind);
    const at = editor.getOffsetAt(editor.getCursorPosition());
    // One transaction for the text and the cursor (as InlineCompleter.accept does): when JupyterLab
    // sees the change, the cursor is already after it, so the text before the cursor is what the
    // provider's type-through check reads.
    editor.editor.dispatch({
      changes: { from: at, insert: part },
      selection: { anchor: at + part.length },
      scrollIntoView: true
    });
    if (part !== rest) {
      // JupyterLab drops the ghost text when the cursor goes to another line, and asks nothing on
      // a line holding only indentation: ask it again. The provider serves the rest of the same
      // suggestion (no model request), so this only puts the ghost text back.
      completions.inline?.invoke(panel.id);
    }
  };

  app.commands.addCommand(AcceptCommandIDs.nextWord, {
    label: 'Accept the next word of the CodeGemma suggestion',
    caption: 'Insert the next word of the ghost text; the rest stays on show',
    isEnabled: () => shownGhost() !== null,
    execute: () => accept('word')
  });
  app.commands.addCommand(AcceptCommandIDs.nextLine, {
    label: 'Accept the next line of the CodeGemma suggestion',
    caption: 'Insert the ghost text up to the end of its line; the rest stays on show',
    isEnabled: () => shownGhost() !== null,
    execute: () => accept('line')
  });
  const ids = [AcceptCommandIDs.nextWord, AcceptCommandIDs.nextLine];
  dispatchBeforeEditor(app.commands, ids);
  if (palette) {
    for (const command of ids) {
      palette.addItem({ command, category: 'CodeGemma' });
    }
  }
}
