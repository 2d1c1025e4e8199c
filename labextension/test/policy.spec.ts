/**
 * The notebook's AI policy on the frontend (src/kernel/policy.ts, issue 17): read as the kernel reads it,
 * worded as the kernel words it, shown in the status bar, and kept in step with the kernel over a comm of
 * its own (a fake kernel, comm and notebook here; the real ones in ui-tests/tests/policy.spec.ts).
 */

import { Signal } from '@lumino/signaling';

import {
  completionsOff,
  describePolicy,
  METADATA_KEY,
  parsePolicy,
  PolicySync,
  readPolicy,
  writePolicy
} from '../src/kernel/policy';
import * as protocol from '../src/kernel/protocol';
import { IStatusSource, summarize } from '../src/kernel/statusSummary';

type Message = Record<string, unknown>;

describe('parsePolicy and describePolicy (twins of kernel/policy.py)', () => {
  it('keeps only what restricts, drops unknown fields, and words it as %codegemma policy does', () => {
    const policy = parsePolicy({ completions: false, generation: false, max_hint_level: 1, model_fixes: true, x: 1 });
    expect(policy).toEqual({ completions: false, generation: false, max_hint_level: 1 });
    expect(describePolicy(policy)).toBe('completions off, generation off, hints up to level 1');
    expect(describePolicy({ exam: true })).toBe(
      'exam mode: completions off, generation off, model fixes off, hints up to level 1'
    );
    expect(parsePolicy(null)).toBeNull();
    expect(parsePolicy({})).toEqual({});
    expect(describePolicy({})).toBe('');
  });

  it('refuses a field of the wrong type or range with the kernel\'s words', () => {
    const cases: [unknown, string][] = [
      [[false], '"policy" must be an object or null, got an array'],
      [{ completions: 'off' }, 'policy: "completions" must be true or false, got a string'],
      [{ max_hint_level: 4 }, 'policy: "max_hint_level" must be a whole number in 0..3, got 4']
    ];
    for (const [value, message] of cases) {
      expect(() => parsePolicy(value)).toThrow(new protocol.ProtocolError('bad_request', message));
    }
  });
});

describe('the status bar with a policy in force', () => {
  const status = (over: Partial<protocol.IStatusReply>): IStatusSource => ({
    availability: 'available',
    status: {
      v: 1,
      type: 'status',
      model: 'Gemma 3 270M',
      state: 'ready',
      device: 'cpu',
      fim: false,
      completions_enabled: true,
      ...over
    },
    pending: 0,
    lastLatencyMs: null,
    lastStats: null,
    lastError: null
  });

  it('says what the policy switches off, and who switched completions off', () => {
    const off = summarize(status({ completions_enabled: false, policy: { completions: false } }), true);
    expect(off.text).toBe('CodeGemma: Gemma 3 270M · off · policy: completions off');
    expect(off.title).toContain("Completions are switched off by this notebook's policy");
    const exam = summarize(status({ completions_enabled: false, policy: { exam: true } }), true);
    expect(exam.text).toBe('CodeGemma: Gemma 3 270M · off · policy: exam mode');
    expect(exam.title).toContain('model fixes off, hints up to level 1');
    const generationOnly = summarize(status({ policy: { generation: false } }), true);
    expect(generationOnly.text).toBe('CodeGemma: Gemma 3 270M · ready · policy: generation off');
    expect(summarize(status({ policy: null }), true).text).toBe('CodeGemma: Gemma 3 270M · ready');
    const kernelSwitch = summarize(status({ completions_enabled: false, policy: null }), true);
    expect(kernelSwitch.title).toContain('switched off in the kernel');
  });
});

// --- PolicySync against a fake kernel and notebook ----------------------------------------------------------

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
  reply(data: Message): void {
    this.onMsg({ content: { comm_id: 'p', data } });
  }
}

function fakeNotebook(metadata: Record<string, unknown>) {
  const comms: FakeComm[] = [];
  const kernel = {
    createComm: () => {
      const comm = new FakeComm();
      comms.push(comm);
      return comm;
    }
  };
  const model = {
    metadataChanged: new Signal<unknown, unknown>({}),
    getMetadata: (key: string) => metadata[key],
    setMetadata: (key: string, value: unknown) => {
      metadata[key] = value;
      model.metadataChanged.emit({});
    },
    deleteMetadata: (key: string) => {
      delete metadata[key];
      model.metadataChanged.emit({});
    }
  };
  const panel = { model, sessionContext: { session: { kernel } }, disposed: new Signal<unknown, void>({}) };
  const kernelComm = { kernel, availability: 'probing', statusAsked: 0, refreshStatus: () => kernelComm.statusAsked++ };
  const registry = { changed: new Signal<unknown, unknown>({}), get: () => kernelComm };
  return { panel, kernel, kernelComm, registry, comms, metadata };
}

describe('PolicySync', () => {
  it('sends the policy once the kernel has the target, on each change, and stores what %codegemma policy sets', () => {
    const nb = fakeNotebook({ [METADATA_KEY]: { policy: { completions: false }, other: 1 } });
    const panel = nb.panel as never;
    new PolicySync(panel, nb.registry as never);
    expect(nb.comms).toHaveLength(0); // not before the kernel is known to have the target
    nb.kernelComm.availability = 'available';
    nb.registry.changed.emit(nb.kernelComm);
    expect(nb.comms).toHaveLength(1);
    const comm = nb.comms[0];
    expect(comm.sent).toEqual([{ v: 1, type: 'policy', policy: { completions: false } }]);
    expect(completionsOff(panel)).toBe(true);

    comm.reply({ ...statusReply, policy: { completions: false } });
    expect(nb.kernelComm.statusAsked).toBe(1); // the status bar and the provider learn it

    // a student deletes it: the kernel is told (and records it)
    writePolicy(panel, null);
    expect(nb.metadata[METADATA_KEY]).toEqual({ other: 1 });
    expect(comm.sent.at(-1)).toEqual({ v: 1, type: 'policy', policy: null });
    expect(completionsOff(panel)).toBe(false);

    // %codegemma policy in the kernel: stored, and not sent back
    const before = comm.sent.length;
    comm.reply({ v: 1, type: 'policy', policy: { exam: true } });
    expect(readPolicy(panel)).toEqual({ exam: true });
    expect(comm.sent.length).toBe(before);
    expect(completionsOff(panel)).toBe(true);

    // an old kernel does not know the message: nothing breaks, nothing is retried
    comm.reply({ v: 1, type: 'error', code: 'unknown_type', message: 'unknown request type' });
    expect(comm.sent.length).toBe(before);
  });
});

const statusReply = {
  v: 1,
  type: 'status',
  model: 'Gemma 3 270M',
  state: 'ready',
  device: 'cpu',
  fim: false,
  completions_enabled: false
};
