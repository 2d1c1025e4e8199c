/**
 * Ghost-text completions in notebook cells, from the model in the notebook's kernel.
 *
 * `fetch` reads the cells around the cursor, sends `complete` and returns at once with an empty, incomplete
 * suggestion; JupyterLab then calls `stream`, which yields the suggestion as `partial` replies
 * grow it. JupyterLab does not tell a provider when a request has gone stale, so the provider
 * keeps track itself: every new `fetch` (the user typed again) cancels the request before it,
 * unless the user typed what the ghost text shows: then the rest of the same suggestion is served
 * again, with no new request (typeThrough.ts). When to ask at all is trigger.ts.
 */

import {
  CompletionHandler,
  IInlineCompletionContext,
  IInlineCompletionItem,
  IInlineCompletionList,
  IInlineCompletionProvider,
  InlineCompletionTriggerKind
} from '@jupyterlab/completer';
import { NotebookPanel } from '@jupyterlab/notebook';

import { CellKind, ICellText, textAroundCursor } from './cells';
import { KernelComm } from '../kernel/comm';
import { KernelCommRegistry } from '../kernel/commRegistry';
import { completionsOff } from '../kernel/policy';
import * as protocol from '../kernel/protocol';
import { CodeGemmaSettings } from '../settings';
import { InFlight, Suggestion } from './suggestions';
import { shouldSuggest } from './trigger';
import { anchorAt, ICursorText, ISuggestionAnchor, stringIndex, typedSince, typeThrough } from './typeThrough';

export const PROVIDER_ID = 'jupyter-codegemma';

const NO_SUGGESTIONS: IInlineCompletionList = { items: [] };

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

export class CodeGemmaProvider implements IInlineCompletionProvider {
  readonly identifier = PROVIDER_ID;
  readonly name = 'CodeGemma';

  constructor(
    private readonly _comms: KernelCommRegistry,
    private readonly _settings: CodeGemmaSettings
  ) {}

  async fetch(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): Promise<IInlineCompletionList<IInlineCompletionItem>> {
    const seq = ++this._seq;
    const settings = this._settings.current;
    const panel = context.widget;
    const notebook = panel instanceof NotebookPanel ? panel.content : null;
    const cell = notebook?.activeCell;
    if (!settings.enabled || !(panel instanceof NotebookPanel) || !notebook || !cell) {
      this._inFlight.supersede();
      return NO_SUGGESTIONS;
    }
    const offset = stringIndex(request.text, request.offset);
    const cursor: ICursorText = { cellId: cell.model.id, text: request.text, offset };
    const kept = this._typedThrough(cursor);
    if (kept) {
      return { items: [kept] };
    }
    this._inFlight.supersede(); // the user typed again: the previous suggestion is for text that is gone
    this._shown = null;
    const kernel = context.session?.kernel ?? panel.sessionContext.session?.kernel;
    const language = notebookLanguage(panel);
    const source = context.triggerKind === InlineCompletionTriggerKind.Invoke ? 'invoke' : 'automatic';
    if (
      !kernel ||
      completionsOff(panel) || // the notebook's policy: ask nothing, even before the kernel has it
      !shouldSuggest(settings, { source, cellType: cell.model.type, ...cursor, language })
    ) {
      return NO_SUGGESTIONS;
    }
    if (source === 'automatic' && settings.debounceMs > 0) {
      await sleep(settings.debounceMs);
      // Typed again, or left the cell (ran it: Shift+Enter): nobody will see this suggestion.
      if (seq !== this._seq || notebook.activeCell !== cell || notebook.mode !== 'edit') {
        return NO_SUGGESTIONS;
      }
    }
    const comm = this._comms.get(kernel);
    if (!(await this._completionsOn(comm)) || seq !== this._seq) {
      return NO_SUGGESTIONS;
    }

    const cells: ICellText[] = notebook.widgets.map(widget => ({
      kind: widget.model.type as CellKind,
      text: widget === cell ? request.text : widget.model.sharedModel.getSource()
    }));
    const { prefix, suffix } = textAroundCursor(cells, notebook.activeCellIndex, offset, {
      prefixChars: settings.prefixChars,
      suffixChars: settings.suffixChars,
      contextCells: settings.contextCells,
      language
    });
    const id = protocol.newRequestId();
    const suggestion = new Suggestion();
    this._streams.set(id, { suggestion, typed: '' });
    this._shown = { anchor: anchorAt(cursor), suggestion };
    this._inFlight.start(id, () => comm.cancel(id));
    const message = protocol.complete({
      id,
      prefix,
      suffix,
      language,
      path: scriptName(panel.context.path, language),
      mode: settings.mode,
      maxNewTokens: settings.maxNewTokens
    });
    void comm
      .complete(message, text => suggestion.update(text))
      .then(outcome => {
        if (outcome?.type === 'error' && outcome.code !== 'disabled') {
          console.warn(`codegemma: completion failed (${outcome.code}): ${outcome.message}`);
        }
        suggestion.end();
        this._inFlight.finish(id);
      });
    return { items: [{ insertText: '', isIncomplete: true, token: id }] };
  }

  async *stream(token: string): AsyncGenerator<{ response: IInlineCompletionItem }> {
    const followed = this._streams.get(token);
    if (!followed) {
      return;
    }
    const { suggestion, typed } = followed;
    try {
      for await (const text of suggestion.texts()) {
        if (!text.startsWith(typed)) {
          return; // the finished suggestion no longer starts with what was typed over it
        }
        yield { response: { insertText: text.slice(typed.length), isIncomplete: !suggestion.ended } };
      }
    } finally {
      this._streams.delete(token);
    }
  }

  /**
   * The ghost text of this provider's suggestion still on show with the cell as `cursor` says,
   * or null when there is none (another provider's, or stale). Accept-next-word/line take from it.
   */
  remainderAt(cursor: ICursorText): string | null {
    const shown = this._shown;
    return shown ? typeThrough(shown.anchor, shown.suggestion.text, shown.suggestion.ended, cursor) : null;
  }

  /**
   * The item to show when the user typed through the suggestion on show (see typeThrough.ts): the
   * rest of it, still streaming if its request is; null when a new request is due.
   */
  private _typedThrough(cursor: ICursorText): IInlineCompletionItem | null {
    const shown = this._shown;
    const rest = this.remainderAt(cursor);
    if (!shown || rest === null) {
      return null;
    }
    const { suggestion } = shown;
    if (suggestion.ended) {
      return { insertText: rest };
    }
    const token = protocol.newRequestId();
    this._streams.set(token, { suggestion, typed: typedSince(shown.anchor, cursor) ?? '' });
    return { insertText: rest, isIncomplete: true, token };
  }

  /** Whether this kernel answers completions now: it has the target, and they are switched on. */
  private async _completionsOn(comm: KernelComm): Promise<boolean> {
    if (!(await comm.ensureOpen())) {
      return false; // no `jupyter_codegemma` target in this kernel: stay silent
    }
    let status = comm.status;
    if (status && !status.completions_enabled) {
      // Switched off with `%codegemma disable`; ask again, as `%codegemma enable` sends no message.
      status = await comm.refreshStatus();
    }
    return status?.completions_enabled ?? true;
  }

  private _inFlight = new InFlight();
  private _seq = 0;
  /** The suggestion last asked for, and where: what typing through it keeps. */
  private _shown: { anchor: ISuggestionAnchor; suggestion: Suggestion } | null = null;
  /** What each token's stream follows: a suggestion, less what was typed over it. */
  private _streams = new Map<string, { suggestion: Suggestion; typed: string }>();
}

/** The notebook's language as the kernel reports it (`language_info`), Python when unknown. */
export function notebookLanguage(panel: NotebookPanel): string {
  const info = panel.model?.getMetadata('language_info') as { name?: unknown } | undefined;
  return typeof info?.name === 'string' && info.name ? info.name : 'python';
}

/**
 * The name the model sees for the file: the notebook read as a script (`analysis.ipynb` ->
 * `analysis.py`), since the prompt holds code, not notebook JSON. Only for Python, whose
 * extension is certain.
 */
export function scriptName(path: string, language: string): string | undefined {
  if (language.toLowerCase() !== 'python') {
    return undefined;
  }
  const name = path.split('/').pop() ?? '';
  return name ? name.replace(/\.ipynb$/i, '') + '.py' : undefined;
}
