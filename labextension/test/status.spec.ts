/**
 * The status bar item's state (issue 20): busy only while a request runs, a stale "busy" from the
 * kernel asked again until it ends, error -> ready, and the cells that may change the model.
 * `KernelComm` runs against a fake kernel and comm; `summarize` is what the item shows.
 */

import { Kernel } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';

import { KernelComm, STATUS_POLL_MS } from '../src/kernel/comm';
import * as protocol from '../src/kernel/protocol';
import { changesModel, mentionsCodeGemma } from '../src/kernel/cellSources';
import { IStatusSource, summarize } from '../src/kernel/statusSummary';

type Message = Record<string, unknown>;

class FakeComm {
  onMsg: (msg: unknown) => void = () => undefined;
  onClose: (msg: unknown) => void = () => undefined;
  isDisposed = false;
  sent: Message[] = [];
  open(data: Message): void {
    this.sent.push(data);
  }
  send(data: Message): void {
    this.sent.push(data);
  }
  dispose(): void {
    this.isDisposed = true;
  }
  /** A reply from the kernel. */
  reply(data: Message): void {
    this.onMsg({ content: { comm_id: 'c', data } });
  }
  /** The types of what the page sent since the last call. */
  take(): string[] {
    return this.sent.splice(0).map(message => message.type as string);
  }
}

function fakeKernel(comm: FakeComm): Kernel.IKernelConnection {
  return {
    id: 'k',
    status: 'idle',
    connectionStatus: 'connected',
    statusChanged: new Signal<unknown, string>({}),
    createComm: () => comm
  } as unknown as Kernel.IKernelConnection;
}

function status(state: protocol.State, extra: Partial<protocol.IStatusReply> = {}): protocol.IStatusReply {
  return {
    v: 1,
    type: 'status',
    model: 'Gemma 3 270M',
    state,
    device: 'cpu',
    fim: false,
    completions_enabled: true,
    ...extra
  };
}

const STATS = { prompt_tokens: 20, reused_tokens: 0, new_tokens: 3, ttft_ms: 30, total_ms: 90 };

function done(id: string): Message {
  return { v: 1, type: 'done', id, text: ' x', stats: STATS };
}

function request(id: string): protocol.ICompleteRequest {
  return protocol.complete({ id, prefix: 'x =', suffix: '', language: 'python' });
}

/** Let promise callbacks run (fake timers do not hold them). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await Promise.resolve();
  }
}

async function openComm(state: protocol.State = 'ready'): Promise<{ comm: KernelComm; fake: FakeComm }> {
  const fake = new FakeComm();
  const comm = new KernelComm(fakeKernel(fake));
  const opened = comm.ensureOpen();
  expect(fake.take()).toEqual(['status']); // the first request rides on comm_open
  fake.reply(status(state) as unknown as Message);
  expect(await opened).toBe(true);
  return { comm, fake };
}

const shown = (comm: IStatusSource) => summarize(comm, true);

describe('KernelComm: the state the status item shows', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('is busy while a completion is in flight and ready once its terminal reply came', async () => {
    const { comm, fake } = await openComm();
    expect(shown(comm).state).toBe('ready');
    const outcome = comm.complete(request('a'), () => undefined);
    expect(fake.take()).toEqual(['complete']);
    expect(shown(comm).state).toBe('busy');
    fake.reply(done('a'));
    await outcome;
    expect(comm.pending).toBe(0);
    expect(shown(comm).state).toBe('ready');
    expect(shown(comm).text).toMatch(/^CodeGemma: Gemma 3 270M · ready · \d+ ms$/);
    jest.advanceTimersByTime(10 * STATUS_POLL_MS);
    expect(fake.take()).toEqual([]); // nothing to ask: the kernel said ready
  });

  it('a cancelled or failed completion ends the busy state as well', async () => {
    const { comm, fake } = await openComm();
    const first = comm.complete(request('a'), () => undefined);
    const second = comm.complete(request('b'), () => undefined);
    comm.cancelAll();
    expect(fake.take()).toEqual(['complete', 'complete', 'cancel', 'cancel']);
    fake.reply({ v: 1, type: 'cancelled', id: 'a' });
    await first;
    expect(shown(comm).state).toBe('busy'); // b is still in flight
    fake.reply({ v: 1, type: 'error', id: 'b', code: 'internal', message: 'boom' });
    await second;
    expect(shown(comm).state).toBe('error');
  });

  it('a "busy" the kernel said while a completion ran is asked again as soon as it ends', async () => {
    const { comm, fake } = await openComm();
    const outcome = comm.complete(request('a'), () => undefined);
    const asked = comm.refreshStatus(); // e.g. a cell mentioning CodeGemma ran meanwhile
    await settle();
    fake.reply(status('busy') as unknown as Message);
    expect(await asked).toMatchObject({ state: 'busy' });
    fake.take();
    fake.reply(done('a'));
    await outcome;
    expect(shown(comm).state).toBe('busy'); // the kernel's word is still "busy"...
    jest.advanceTimersByTime(0);
    expect(fake.take()).toEqual(['status']); // ...so it is asked at once
    fake.reply(status('ready') as unknown as Message);
    expect(shown(comm).state).toBe('ready');
  });

  it('while the kernel says busy (a %%codegemma cell), it is asked every second until it is not', async () => {
    const { comm, fake } = await openComm('busy');
    expect(shown(comm).state).toBe('busy');
    jest.advanceTimersByTime(STATUS_POLL_MS - 1);
    expect(fake.take()).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(fake.take()).toEqual(['status']);
    fake.reply(status('busy') as unknown as Message);
    jest.advanceTimersByTime(STATUS_POLL_MS);
    expect(fake.take()).toEqual(['status']);
    fake.reply(status('ready') as unknown as Message);
    expect(shown(comm).state).toBe('ready');
    jest.advanceTimersByTime(10 * STATUS_POLL_MS);
    expect(fake.take()).toEqual([]);
  });

  it('asks while the model loads, and shows loading -> ready', async () => {
    const { comm, fake } = await openComm('loading');
    expect(shown(comm).state).toBe('loading');
    jest.advanceTimersByTime(STATUS_POLL_MS);
    expect(fake.take()).toEqual(['status']);
    fake.reply(status('ready') as unknown as Message);
    expect(shown(comm).state).toBe('ready');
  });

  it('error -> ready: a good load after a failed one (no model before)', async () => {
    const { comm, fake } = await openComm('error');
    fake.reply(status('error', { model: '/nonexistent.gguf', message: 'cannot load' }) as unknown as Message);
    expect(shown(comm)).toMatchObject({ state: 'error', title: 'cannot load' });
    fake.reply(status('ready') as unknown as Message);
    expect(shown(comm).state).toBe('ready');
    expect(shown(comm).text).not.toMatch(/error/);
  });

  it('error -> ready: a completion that loads the model (it had failed) makes the page ask again', async () => {
    const { comm, fake } = await openComm('error');
    expect(shown(comm).state).toBe('error');
    jest.advanceTimersByTime(10 * STATUS_POLL_MS);
    expect(fake.take()).toEqual([]); // an error is not polled: the kernel would not change it by itself
    const outcome = comm.complete(request('a'), () => undefined);
    expect(shown(comm).state).toBe('error'); // the kernel's last word, until it says otherwise
    fake.reply(done('a'));
    await outcome;
    jest.advanceTimersByTime(0);
    expect(fake.take()).toEqual(['complete', 'status']);
    fake.reply(status('ready') as unknown as Message);
    expect(shown(comm).state).toBe('ready');
  });

  it('a completion that failed while the model was being replaced: cleared by a reload or a cell that changes the model', async () => {
    const { comm, fake } = await openComm();
    const failed = comm.complete(request('a'), () => undefined);
    fake.reply({ v: 1, type: 'error', id: 'a', code: 'model_error', message: 'the model did not load' });
    await failed;
    expect(shown(comm).state).toBe('error');
    fake.reply(status('ready') as unknown as Message); // the kernel is fine, the request was not
    expect(shown(comm).state).toBe('error');
    comm.forgetErrors(); // `%codegemma load` ran
    expect(shown(comm).state).toBe('ready');

    const again = comm.complete(request('b'), () => undefined);
    fake.reply({ v: 1, type: 'error', id: 'b', code: 'model_error', message: 'the model did not load' });
    await again;
    expect(shown(comm).state).toBe('error');
    fake.reply(status('loading') as unknown as Message); // a new load began
    expect(comm.lastError).toBeNull();
    fake.reply(status('ready') as unknown as Message);
    expect(shown(comm).state).toBe('ready');
  });

  it('a failed load that kept the model is ready, and the title says what was kept', async () => {
    const { comm, fake } = await openComm();
    fake.reply(status('ready', { message: 'kept Gemma 3 270M: cannot load /x.gguf' }) as unknown as Message);
    expect(shown(comm).state).toBe('ready');
    expect(shown(comm).title).toContain('kept Gemma 3 270M');
  });

  it('a new completion in flight shows busy, not the last one\'s error', async () => {
    const { comm, fake } = await openComm();
    const failed = comm.complete(request('a'), () => undefined);
    fake.reply({ v: 1, type: 'error', id: 'a', code: 'internal', message: 'boom' });
    await failed;
    const next = comm.complete(request('b'), () => undefined);
    expect(shown(comm).state).toBe('busy');
    fake.reply(done('b'));
    await next;
    await settle();
    expect(shown(comm).state).toBe('ready');
  });
});

describe('summarize', () => {
  const source = (over: Partial<IStatusSource>): IStatusSource => ({
    availability: 'available',
    status: status('ready'),
    pending: 0,
    lastLatencyMs: null,
    lastStats: null,
    lastError: null,
    ...over
  });

  it('off without a kernel, without CodeGemma, or switched off', () => {
    expect(summarize(null, true).state).toBe('off');
    expect(summarize(source({ availability: 'absent' }), true).text).toBe('CodeGemma · off');
    expect(summarize(source({}), false).state).toBe('off');
    expect(summarize(source({ status: status('ready', { completions_enabled: false }) }), true).state).toBe('off');
  });

  it('loading before the first status; busy and ready with the latency', () => {
    expect(summarize(source({ status: null }), true).state).toBe('loading');
    expect(summarize(source({ pending: 1, lastLatencyMs: 180.4 }), true).text).toBe(
      'CodeGemma: Gemma 3 270M · busy · 180 ms'
    );
    expect(summarize(source({ lastLatencyMs: 180.4 }), true).text).toBe('CodeGemma: Gemma 3 270M · ready · 180 ms');
  });

  it('says how many kernel facts the last completion used', () => {
    const lastStats = { ...STATS, context_facts: 2 };
    const summary = summarize(source({ lastLatencyMs: 180.4, lastStats }), true);
    expect(summary.text).toBe('CodeGemma: Gemma 3 270M · ready · 180 ms · 2 kernel facts');
    expect(summary.title).toContain('2 kernel facts in the prompt');
    expect(summarize(source({ lastLatencyMs: 180.4, lastStats: STATS }), true).text).toBe(
      'CodeGemma: Gemma 3 270M · ready · 180 ms'
    );
  });

  it('a "disabled" or "busy" error is no error state', () => {
    for (const code of ['disabled', 'busy'] as const) {
      const lastError: protocol.IErrorReply = { v: 1, type: 'error', code, message: '' };
      expect(summarize(source({ lastError }), true).state).toBe('ready');
    }
  });
});

describe('cells that make the kernel be asked again', () => {
  it('mention CodeGemma', () => {
    expect(mentionsCodeGemma('%codegemma status')).toBe(true);
    expect(mentionsCodeGemma('import pandas as pd')).toBe(false);
  });

  it('may change the model: load, use, set, %config, --model, loading the extension', () => {
    for (const source of [
      '%codegemma load',
      '%codegemma load /models/x.gguf',
      'x = 1\n%codegemma use http://localhost:8000 --model m',
      '%codegemma use local',
      '%codegemma set model=/m.gguf',
      '%config CodeGemma.model = "/m.gguf"',
      '%%codegemma --model /m.gguf\na function',
      '%load_ext jupyter_codegemma',
      'get_ipython().extension_manager.load_extension("jupyter_codegemma")'
    ]) {
      expect([source, changesModel(source)]).toEqual([source, true]);
    }
    for (const source of [
      '%codegemma status',
      '%codegemma enable',
      '%%codegemma\nload a csv file with pandas',
      '%%codegemma --max-new-tokens 40\nuse the model',
      '# %codegemma loaded'
    ]) {
      expect([source, changesModel(source)]).toEqual([source, false]);
    }
  });
});
