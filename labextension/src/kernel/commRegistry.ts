/**
 * The registry of comms: one `KernelComm` for each kernel in use, keyed by kernel id, made on
 * first use and dropped when the kernel goes; its `changed` signal relays each comm's, for the
 * status bar item.
 */

import { Kernel } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { KernelComm } from './comm';

/** The comm of each kernel in use, made on first use and dropped with the kernel. */
export class KernelCommRegistry implements IDisposable {
  /** Emitted with the comm whose state changed. */
  get changed(): ISignal<this, KernelComm> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** The comm with `kernel`, made on first use. */
  get(kernel: Kernel.IKernelConnection): KernelComm {
    let comm = this._comms.get(kernel.id);
    if (comm && comm.kernel !== kernel) {
      comm.dispose(); // another client object for the same kernel id: start over with it
      comm = undefined;
    }
    if (!comm) {
      const created = new KernelComm(kernel);
      created.changed.connect(() => this._changed.emit(created));
      kernel.disposed.connect(() => {
        created.dispose();
        if (this._comms.get(kernel.id) === created) {
          this._comms.delete(kernel.id);
        }
      });
      this._comms.set(kernel.id, created);
      comm = created;
    }
    return comm;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    for (const comm of this._comms.values()) {
      comm.dispose();
    }
    this._comms.clear();
    Signal.clearData(this);
  }

  private _changed = new Signal<this, KernelComm>(this);
  private _comms = new Map<string, KernelComm>();
  private _isDisposed = false;
}
