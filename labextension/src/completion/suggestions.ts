/**
 * Bookkeeping for streamed suggestions, free of JupyterLab so Jest can test it: a suggestion that
 * grows with each `partial`, and the one request in flight that the next keystroke makes stale.
 */

/**
 * A suggestion as it grows: `partial` replies push the whole text so far, the last reply ends it.
 * Several readers may follow it at once: the ghost text first asked for, and the shorter ones
 * shown while the user types through it (typeThrough.ts).
 */
export class Suggestion {
  get ended(): boolean {
    return this._ended;
  }

  /** The whole text so far. */
  get text(): string {
    return this._text;
  }

  update(text: string): void {
    this._text = text;
    this._version += 1;
    this._wake();
  }

  end(): void {
    this._ended = true;
    this._wake();
  }

  /** Each new text once; texts that arrive faster than they are read are coalesced into the last. */
  async *texts(): AsyncGenerator<string> {
    let seen = 0;
    for (;;) {
      if (this._version !== seen) {
        seen = this._version;
        yield this._text;
        continue;
      }
      if (this._ended) {
        return;
      }
      await new Promise<void>(resolve => {
        this._waiters.push(resolve);
      });
    }
  }

  private _wake(): void {
    const waiters = this._waiters;
    this._waiters = [];
    waiters.forEach(wake => wake());
  }

  private _ended = false;
  private _text = '';
  private _version = 0;
  private _waiters: (() => void)[] = [];
}

/**
 * The request whose suggestion is on show. JupyterLab gives a provider no signal when the user
 * types past a suggestion: it just calls `fetch` again. So each new fetch calls `supersede()`,
 * which cancels the request before it unless that one has finished already.
 */
export class InFlight {
  /** A request was sent; `cancel` tells the kernel to stop it. */
  start(id: string, cancel: () => void): void {
    this._current = { id, cancel };
  }

  /** The request ended (done, cancelled or error): nothing left to cancel. */
  finish(id: string): void {
    if (this._current?.id === id) {
      this._current = null;
    }
  }

  /** The user typed again: cancel the request in flight, if any. Returns its id. */
  supersede(): string | null {
    const current = this._current;
    this._current = null;
    current?.cancel();
    return current?.id ?? null;
  }

  get id(): string | null {
    return this._current?.id ?? null;
  }

  private _current: { id: string; cancel: () => void } | null = null;
}
