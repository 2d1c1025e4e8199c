/**
 * The status bar item: the current notebook kernel's model, its state, and the last completion's
 * latency, e.g. "CodeGemma: Gemma 3 270M · ready · 180 ms" (what it says: `statusSummary.ts`).
 * Clicking it toggles completions.
 */

import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { KernelComm } from './comm';
import { KernelCommRegistry } from './commRegistry';
import { CodeGemmaSettings } from '../settings';
import { summarize } from './statusSummary';

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
