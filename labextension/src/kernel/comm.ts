/**
 * The `jupyter_codegemma` comm with one kernel (`KernelComm`): opening it, sending requests,
 * routing each reply back to its request, and what the kernel last said (its status reply, the
 * last completion's latency, stats and error). One per kernel in use: `commRegistry.ts`.
 *
 * Whether a kernel speaks the protocol is learnt by opening the comm with a `status` request:
 * a kernel with the target registered answers with a status reply; a kernel without it (a plain
 * Python kernel before `%load_ext jupyter_codegemma`, or another language) closes the comm at once.
 * (`comm_info_request` cannot tell this: it lists the comms that are open, not the targets a
 * kernel has registered.) A kernel without the target is asked again only after something that
 * may have changed the answer: a restart, a cell run, or the "Enable CodeGemma" command.
 *
 * The kernel sends a status only when asked, so the status kept here would go stale: one asked
 * while a completion ran says "busy" long after it ended. So while the kernel's last status says
 * loading or busy, it is asked again every second until it says something else, and at once when
 * this page's last completion ends (which may also have loaded a model that had failed: error). Busy for this page's own completions needs no asking: a
 * request is in flight from the moment it is sent until its terminal reply (`pending`).
 */

import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import * as protocol from './protocol';
import { validateReply } from './replyValidation';

/** What this extension knows about the kernel's side. */
export type Availability = 'unknown' | 'probing' | 'available' | 'absent';

/** How a completion request ended; `null` when the comm went away before it did. */
export type Outcome =
  | protocol.IDoneReply
  | protocol.ICancelledReply
  | protocol.IErrorReply
  | null;

interface IPending {
  onPartial: (text: string) => void;
  resolve: (outcome: Outcome) => void;
}

/** A kernel busy with a long cell may answer late; after this, try again on the next request. */
const PROBE_TIMEOUT_MS = 15_000;
/** While the kernel says loading or busy, ask for its status this often, until it says otherwise. */
export const STATUS_POLL_MS = 1_000;

export class KernelComm implements IDisposable {
  constructor(readonly kernel: Kernel.IKernelConnection) {
    kernel.statusChanged.connect(this._onKernelStatus, this);
  }

  /** Emitted when availability, the kernel's status, the pending count or the latency change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get availability(): Availability {
    return this._availability;
  }

  /** The kernel's last status reply, or null before the first one. */
  get status(): protocol.IStatusReply | null {
    return this._status;
  }

  /** Completion requests sent and not yet ended. */
  get pending(): number {
    return this._pending.size;
  }

  /** The last completion's time from request to `done`, as the user felt it, and its stats. */
  get lastLatencyMs(): number | null {
    return this._lastLatencyMs;
  }

  get lastStats(): protocol.IStats | null {
    return this._lastStats;
  }

  /**
   * The last error the kernel reported for a request. Cleared by the next success, by a status
   * that says the model is (re)loading, and by `forgetErrors` (a cell changed the model).
   */
  get lastError(): protocol.IErrorReply | null {
    return this._lastError;
  }

  /** Forget the last request's error: a cell changed what the kernel runs (load, use, set). */
  forgetErrors(): void {
    if (this._lastError) {
      this._lastError = null;
      this._changed.emit();
    }
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /**
   * Open the comm (once) and learn whether the kernel has the target. Resolves true when it does.
   * Concurrent callers share one probe.
   */
  ensureOpen(): Promise<boolean> {
    if (this._comm && !this._comm.isDisposed && this._availability === 'available') {
      return Promise.resolve(true);
    }
    if (this._availability === 'absent') {
      return Promise.resolve(false);
    }
    if (!this._probe) {
      this._probe = this._open().finally(() => {
        this._probe = null;
      });
    }
    return this._probe;
  }

  /** Whether the kernel process can take a comm now (not starting, restarting or dead). */
  get kernelReady(): boolean {
    const status = this.kernel.status;
    return this.kernel.connectionStatus === 'connected' && (status === 'idle' || status === 'busy');
  }

  /** Forget that the target was missing, so the next use asks the kernel again. */
  recheck(): void {
    if (this._availability === 'absent' || this._availability === 'unknown') {
      this._setAvailability('unknown');
    }
  }

  /** Ask for the kernel's status; null when the kernel has no target or does not answer. */
  async refreshStatus(): Promise<protocol.IStatusReply | null> {
    if (!(await this.ensureOpen())) {
      return null;
    }
    const waiting = new Promise<protocol.IStatusReply | null>(resolve => {
      this._statusWaiters.push(resolve);
    });
    this._send(protocol.status());
    return waiting;
  }

  /** Send a `complete`; `onPartial` gets the whole suggestion so far, each time it grows. */
  complete(
    request: protocol.ICompleteRequest,
    onPartial: (text: string) => void
  ): Promise<Outcome> {
    if (!this._comm || this._comm.isDisposed) {
      return Promise.resolve(null);
    }
    const started = performance.now();
    const outcome = new Promise<Outcome>(resolve => {
      this._pending.set(request.id, { onPartial, resolve });
    });
    this._send(request);
    this._changed.emit();
    return outcome.then(result => {
      if (result?.type === 'done') {
        this._lastLatencyMs = performance.now() - started;
        this._lastStats = result.stats;
        this._lastError = null;
      } else if (result?.type === 'error') {
        this._lastError = result;
      }
      if (this._pending.size === 0 && this._status && this._status.state !== 'ready') {
        // A status asked while this ran said busy (the kernel is ready once the answer is sent), or the
        // request loaded the model the status said was loading or had failed: ask what it is now.
        this._pollStatus(0);
      }
      this._changed.emit();
      return result;
    });
  }

  /** Tell the kernel to stop a request: it answers `cancelled` (or nothing, if it had finished). */
  cancel(id: string): void {
    if (this._pending.has(id)) {
      this._send(protocol.cancel(id));
    }
  }

  /** Stop every completion in flight (a cell is about to run: its suggestions are moot). */
  cancelAll(): void {
    for (const id of this._pending.keys()) {
      this._send(protocol.cancel(id));
    }
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this.kernel.statusChanged.disconnect(this._onKernelStatus, this);
    this._reset('unknown');
    Signal.clearData(this);
  }

  // --- internals ---------------------------------------------------------------------------

  private async _open(): Promise<boolean> {
    this._setAvailability('probing');
    let comm: Kernel.IComm;
    try {
      comm = this.kernel.createComm(protocol.TARGET);
    } catch (e) {
      console.warn('codegemma: cannot open a comm on this kernel', e);
      this._setAvailability('absent');
      return false;
    }
    this._comm = comm;
    const answered = new Promise<boolean>(resolve => {
      this._firstAnswer = resolve;
    });
    comm.onMsg = msg => this._onMsg(msg);
    comm.onClose = () => this._onClose(comm);
    try {
      // The first request rides on comm_open; it also makes the kernel start loading the model.
      comm.open(protocol.status() as unknown as JSONObject);
    } catch (e) {
      console.warn('codegemma: cannot open a comm on this kernel', e);
      this._reset('absent');
      return false;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<boolean>(resolve => {
      timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
    });
    const ok = await Promise.race([answered, timeout]);
    clearTimeout(timer);
    this._firstAnswer = null;
    if (!ok && this._availability === 'probing') {
      this._reset('unknown'); // no answer yet (a busy kernel): ask again next time
    }
    return ok;
  }

  private _onMsg(msg: KernelMessage.ICommMsgMsg): void {
    let reply: protocol.Reply;
    try {
      reply = validateReply(msg.content.data);
    } catch (e) {
      console.warn('codegemma: ignoring a malformed reply from the kernel:', e, msg.content.data);
      return;
    }
    if (this._availability !== 'available') {
      this._setAvailability('available');
    }
    this._firstAnswer?.(true);
    switch (reply.type) {
      case 'status':
        this._onStatus(reply);
        break;
      case 'partial':
        this._pending.get(reply.id)?.onPartial(reply.text);
        break;
      case 'done':
        this._pending.get(reply.id)?.onPartial(reply.text);
        this._settle(reply.id, reply);
        break;
      case 'cancelled':
        this._settle(reply.id, reply);
        break;
      case 'error':
        if (reply.code === 'disabled' && this._status) {
          this._onStatus({ ...this._status, completions_enabled: false });
        }
        if (reply.id !== undefined && this._pending.has(reply.id)) {
          this._settle(reply.id, reply);
        } else {
          console.warn(`codegemma: the kernel reported ${reply.code}: ${reply.message}`);
        }
        break;
    }
  }

  private _onStatus(status: protocol.IStatusReply): void {
    this._status = status;
    if (status.state === 'loading') {
      this._lastError = null; // a (re)load: what failed before was about the model being replaced
    }
    for (const waiter of this._statusWaiters.splice(0)) {
      waiter(status);
    }
    // The kernel sends no status by itself: while it is loading or busy, ask until that ends, so
    // the status bar moves on to "ready" (or "error") by itself.
    if (status.state === 'loading' || status.state === 'busy') {
      this._pollStatus(STATUS_POLL_MS);
    }
    this._changed.emit();
  }

  /** Ask for the status in `delayMs` (sooner if asked sooner); one question at a time. */
  private _pollStatus(delayMs: number): void {
    if (this._pollTimer) {
      if (delayMs > 0) {
        return;
      }
      clearTimeout(this._pollTimer);
    }
    this._pollTimer = setTimeout(() => {
      this._pollTimer = null;
      if (this._comm && !this._comm.isDisposed) {
        this._send(protocol.status());
      }
    }, delayMs);
  }

  private _settle(id: string, outcome: Outcome): void {
    const pending = this._pending.get(id);
    if (pending) {
      this._pending.delete(id);
      pending.resolve(outcome);
    }
  }

  private _onClose(comm: Kernel.IComm): void {
    if (comm !== this._comm) {
      return;
    }
    // Closed before any answer: the kernel has no such target.
    this._reset(this._availability === 'probing' ? 'absent' : 'unknown');
  }

  private _onKernelStatus(_: Kernel.IKernelConnection, status: KernelMessage.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      // The comm died with the old process; the new one may or may not load the extension.
      this._reset('unknown');
    } else if (status === 'idle' && this._availability === 'unknown') {
      this._changed.emit(); // a (re)started kernel is ready: listeners may ask it now
    }
  }

  /** Drop the comm and end everything waiting on it. */
  private _reset(availability: Availability): void {
    const comm = this._comm;
    this._comm = null;
    if (comm && !comm.isDisposed) {
      comm.onClose = () => undefined;
      comm.dispose();
    }
    if (this._pollTimer) {
      clearTimeout(this._pollTimer);
      this._pollTimer = null;
    }
    this._firstAnswer?.(false);
    this._firstAnswer = null;
    for (const pending of this._pending.values()) {
      pending.resolve(null);
    }
    this._pending.clear();
    for (const waiter of this._statusWaiters.splice(0)) {
      waiter(null);
    }
    if (availability !== 'available') {
      this._status = null;
    }
    this._setAvailability(availability);
  }

  private _setAvailability(availability: Availability): void {
    if (availability !== this._availability) {
      this._availability = availability;
      this._changed.emit();
    }
  }

  private _send(message: protocol.Request): void {
    const comm = this._comm;
    if (!comm || comm.isDisposed) {
      return;
    }
    try {
      comm.send(message as unknown as JSONObject);
    } catch (e) {
      console.warn('codegemma: could not send to the kernel', e);
      this._reset('unknown');
    }
  }

  private _availability: Availability = 'unknown';
  private _changed = new Signal<this, void>(this);
  private _comm: Kernel.IComm | null = null;
  private _firstAnswer: ((ok: boolean) => void) | null = null;
  private _isDisposed = false;
  private _lastError: protocol.IErrorReply | null = null;
  private _lastLatencyMs: number | null = null;
  private _lastStats: protocol.IStats | null = null;
  private _pending = new Map<string, IPending>();
  private _pollTimer: ReturnType<typeof setTimeout> | null = null;
  private _probe: Promise<boolean> | null = null;
  private _status: protocol.IStatusReply | null = null;
  private _statusWaiters: ((status: protocol.IStatusReply | null) => void)[] = [];
}
