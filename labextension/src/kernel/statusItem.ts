/**
 * The status bar item: the current notebook kernel's model, its state, and the last completion's
 * latency, e.g. "CodeGemma: Gemma 3 270m · ready · 180 ms". Clicking it toggles completions.
 */

import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { KernelComm } from './comm';
import { KernelCommRegistry } from './commRegistry';
import { CodeGemmaSettings } from '../settings';

export type DisplayState = 'loading' | 'ready' | 'busy' | 'error' | 'off';

export interface IStatusSummary {
  state: DisplayState;
  text: string;
  title: string;
}

/** What the item shows for a kernel's comm (null: no notebook kernel) and the settings. */
export function summarize(comm: KernelComm | null, enabled: boolean): IStatusSummary {
  const status = comm?.status ?? null;
  const model = status?.model ?? '';
  const latency = comm?.lastLatencyMs;
  const stats = comm?.lastStats;
  const parts = (state: DisplayState, ...rest: string[]) =>
    ['CodeGemma' + (model ? `: ${model}` : ''), state, ...rest].join(' · ');
  if (!comm || comm.availability === 'absent') {
    return {
      state: 'off',
      text: 'CodeGemma · off',
      title: comm
        ? 'This kernel has no CodeGemma: use the "CodeGemma (JAX)" kernel, or run "Enable CodeGemma in this kernel"'
        : 'No notebook kernel'
    };
  }
  if (!enabled || status?.completions_enabled === false) {
    return {
      state: 'off',
      text: parts('off'),
      title: enabled
        ? 'Completions are switched off in the kernel (%codegemma enable switches them on)'
        : 'Completions are switched off in the settings (Toggle CodeGemma completions)'
    };
  }
  if (!status || status.state === 'loading') {
    return { state: 'loading', text: parts('loading'), title: 'The model is loading in the kernel' };
  }
  if (status.state === 'error') {
    return { state: 'error', text: parts('error'), title: status.message ?? 'The model failed to load' };
  }
  const lastError = comm.lastError;
  if (lastError && lastError.code !== 'disabled' && lastError.code !== 'busy') {
    return { state: 'error', text: parts('error'), title: `${lastError.code}: ${lastError.message}` };
  }
  const timing = latency !== null && latency !== undefined ? `${Math.round(latency)} ms` : '';
  const title =
    `${status.model} on ${status.device || 'an unknown device'}` +
    (stats
      ? `; last completion: ${Math.round(latency ?? 0)} ms in the browser, first token after ` +
        `${Math.round(stats.ttft_ms)} ms, ${stats.new_tokens} new tokens, ` +
        `${stats.reused_tokens}/${stats.prompt_tokens} prompt tokens reused`
      : '');
  const state: DisplayState = comm.pending > 0 || status.state === 'busy' ? 'busy' : 'ready';
  return { state, text: timing ? parts(state, timing) : parts(state), title };
}

export class CodeGemmaStatus extends Widget {
  constructor(
    private readonly _tracker: INotebookTracker,
    private readonly _comms: KernelCommRegistry,
    private readonly _settings: CodeGemmaSettings,
    onClick: () => void
  ) {
    super();
    this.addClass('jp-CodeGemmaStatus');
    this.node.addEventListener('click', onClick);
    _tracker.currentChanged.connect(this._follow, this);
    _comms.changed.connect(this._update, this);
    _settings.changed.connect(this._update, this);
    this._follow();
  }

  dispose(): void {
    this._setPanel(null);
    super.dispose();
  }

  /** Track the current notebook and its kernel changes. */
  private _follow(): void {
    this._setPanel(this._tracker.currentWidget);
    this._update();
  }

  private _setPanel(panel: NotebookPanel | null): void {
    if (this._panel === panel) {
      return;
    }
    this._panel?.sessionContext.kernelChanged.disconnect(this._onKernelChanged, this);
    this._panel = panel;
    panel?.sessionContext.kernelChanged.connect(this._onKernelChanged, this);
  }

  private _onKernelChanged(): void {
    this._update();
  }

  private _comm(): KernelComm | null {
    const kernel = this._panel?.sessionContext.session?.kernel;
    if (!kernel) {
      return null;
    }
    const comm = this._comms.get(kernel);
    if (comm.availability === 'unknown' && comm.kernelReady) {
      // Ask early: the status request also starts loading the model, before the first keystroke.
      void comm.ensureOpen();
    }
    return comm;
  }

  private _update(): void {
    if (this.isDisposed) {
      return;
    }
    const summary = summarize(this._comm(), this._settings.current.enabled);
    this.node.textContent = summary.text;
    this.node.title = summary.title;
    this.node.dataset.state = summary.state;
  }

  private _panel: NotebookPanel | null = null;
}
