/**
 * The notebook's AI policy (`metadata.jupyter_codegemma.policy`): reading and writing it, its words
 * ("completions off, hints up to level 1"), and keeping the kernel in step with it. The kernel
 * enforces it (`jupyter_codegemma/kernel/policy.py`); this side only carries it.
 *
 * Each notebook gets its own `jupyter_codegemma` comm for the policy (`PolicySync`), opened once the
 * kernel is known to have the target (`KernelComm` found out): it opens with a `policy` request (the
 * notebook's policy, or null for none), and sends another whenever the metadata changes to something
 * other than what the kernel holds. When the kernel's user runs `%codegemma policy ...`, the kernel
 * sends a `policy` reply: it is written into the metadata, and since the kernel then holds what the
 * metadata says, nothing goes back (no loop). After each answer the kernel's status is asked again, so
 * the status bar and the completion provider see the policy in force. A kernel from before the
 * policy answers `unknown_type`, which is ignored.
 */

import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject, ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { KernelComm } from './comm';
import { KernelCommRegistry } from './commRegistry';
import * as protocol from './protocol';
import { isObject, kind, validateReply } from './replyValidation';

/** The notebook metadata key; the policy is its `policy` field. */
export const METADATA_KEY = 'jupyter_codegemma';
export const MAX_HINT_LEVEL = 3;
const SWITCHES = ['completions', 'generation', 'model_fixes'] as const;

/**
 * A policy from JSON, as the kernel reads it (`parse_policy`): null for null, only the fields that
 * restrict something (so two policies compare by their JSON); a ProtocolError (`bad_request`) for a
 * field of the wrong type or range. Unknown fields are dropped.
 */
export function parsePolicy(value: unknown): protocol.INotebookPolicy | null {
  if (value === null || value === undefined) {
    return null;
  }
  if (!isObject(value)) {
    throw new protocol.ProtocolError('bad_request', `"policy" must be an object or null, got ${kind(value)}`);
  }
  const policy: protocol.INotebookPolicy = {};
  for (const name of [...SWITCHES, 'exam'] as const) {
    const field = value[name];
    if (field !== undefined && field !== null && typeof field !== 'boolean') {
      throw new protocol.ProtocolError('bad_request', `policy: "${name}" must be true or false, got ${kind(field)}`);
    }
    if (field === (name === 'exam')) {
      policy[name] = field as boolean;
    }
  }
  const level = value.max_hint_level;
  if (level !== undefined && level !== null) {
    if (typeof level !== 'number' || !Number.isInteger(level) || level < 0 || level > MAX_HINT_LEVEL) {
      throw new protocol.ProtocolError(
        'bad_request',
        `policy: "max_hint_level" must be a whole number in 0..${MAX_HINT_LEVEL}, got ${JSON.stringify(level)}`
      );
    }
    if (level < MAX_HINT_LEVEL) {
      policy.max_hint_level = level;
    }
  }
  return policy;
}

/** What a policy switches off, in words (as `%codegemma policy` says it); '' for none or one that restricts nothing. */
export function describePolicy(policy: protocol.INotebookPolicy | null | undefined): string {
  if (!policy) {
    return '';
  }
  const exam = policy.exam === true;
  const words = SWITCHES.filter(name => exam || policy[name] === false).map(
    name => `${name.replace('_', ' ')} off`
  );
  const level = Math.min(policy.max_hint_level ?? MAX_HINT_LEVEL, exam ? 1 : MAX_HINT_LEVEL);
  if (level < MAX_HINT_LEVEL) {
    words.push(level === 0 ? 'no hints' : `hints up to level ${level}`);
  }
  return (exam ? 'exam mode: ' : '') + words.join(', ');
}

/**
 * Whether the notebook's metadata switches completions off (by itself, or as part of exam mode): the
 * provider asks nothing then, even before the kernel has the policy. A policy that cannot be read
 * counts as none here; the kernel refuses it (`bad_request`) and keeps the one it had.
 */
export function completionsOff(panel: NotebookPanel): boolean {
  let policy: protocol.INotebookPolicy | null;
  try {
    policy = parsePolicy(readPolicy(panel));
  } catch {
    return false;
  }
  return !!policy && (policy.completions === false || policy.exam === true);
}

/** The notebook's policy as its metadata holds it (not checked: the kernel is the judge). */
export function readPolicy(panel: NotebookPanel): unknown {
  const meta = panel.model?.getMetadata(METADATA_KEY);
  return isObject(meta) && 'policy' in meta ? meta.policy : null;
}

/** Store a policy in the notebook's metadata (null removes it), keeping the key's other fields. */
export function writePolicy(panel: NotebookPanel, policy: protocol.INotebookPolicy | null): void {
  const model = panel.model;
  if (!model) {
    return;
  }
  const meta = { ...((model.getMetadata(METADATA_KEY) as ReadonlyPartialJSONObject | undefined) ?? {}) };
  if (policy === null) {
    delete meta.policy;
  } else {
    meta.policy = policy as JSONObject;
  }
  if (Object.keys(meta).length) {
    model.setMetadata(METADATA_KEY, meta);
  } else if (model.getMetadata(METADATA_KEY) !== undefined) {
    model.deleteMetadata(METADATA_KEY);
  }
}

/** The policy's JSON for comparing: its canonical form, or the raw value when it is not a policy. */
function key(value: unknown): string {
  try {
    return JSON.stringify(parsePolicy(value));
  } catch {
    return `invalid:${JSON.stringify(value)}`;
  }
}

/** One notebook's policy, kept in step with its kernel over a comm of its own. */
export class PolicySync {
  constructor(
    private readonly _panel: NotebookPanel,
    private readonly _comms: KernelCommRegistry
  ) {
    _comms.changed.connect(this._onCommChanged, this);
    _panel.model?.metadataChanged.connect(this._onMetadata, this);
    _panel.disposed.connect(() => this.dispose());
    const kernel = _panel.sessionContext.session?.kernel;
    if (kernel) {
      this._onCommChanged(_comms, _comms.get(kernel)); // its comm may have answered already
    }
  }

  dispose(): void {
    this._comms.changed.disconnect(this._onCommChanged, this);
    this._panel.model?.metadataChanged.disconnect(this._onMetadata, this);
    this._close();
  }

  /** The kernel's comm changed: once it is known to have the target, open ours; when it goes, drop ours. */
  private _onCommChanged(_: KernelCommRegistry, comm: KernelComm): void {
    const kernel = this._panel.sessionContext.session?.kernel;
    if (!kernel || comm.kernel !== kernel) {
      return;
    }
    if (this._comm && (comm.availability !== 'available' || this._kernel !== kernel)) {
      this._close(); // a restart or another kernel: it gets the policy when its comm answers
    }
    if (comm.availability === 'available' && !this._comm) {
      this._open(kernel);
    }
  }

  private _open(kernel: Kernel.IKernelConnection): void {
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(protocol.TARGET);
    } catch (e) {
      console.warn('codegemma: cannot open a comm for the notebook policy', e);
      return;
    }
    this._comm = comm;
    this._kernel = kernel;
    comm.onMsg = msg => this._onMsg(msg);
    comm.onClose = () => {
      if (this._comm === comm) {
        this._comm = null;
      }
    };
    const policy = readPolicy(this._panel);
    this._sent = key(policy);
    try {
      comm.open(this._request(policy));
    } catch (e) {
      console.warn('codegemma: cannot send the notebook policy', e);
      this._comm = null;
    }
  }

  private _close(): void {
    const comm = this._comm;
    this._comm = null;
    if (comm && !comm.isDisposed) {
      comm.onClose = () => undefined;
      comm.dispose();
    }
  }

  private _request(policy: unknown): JSONObject {
    // Sent as the metadata holds it: a policy the kernel cannot read is answered `bad_request`.
    return { v: protocol.VERSION, type: 'policy', policy: policy as JSONObject | null };
  }

  /** The metadata changed (the teacher's command, a student's edit, a `policy` reply): tell the kernel. */
  private _onMetadata(): void {
    const policy = readPolicy(this._panel);
    const comm = this._comm;
    if (!comm || comm.isDisposed || key(policy) === this._sent) {
      return;
    }
    this._sent = key(policy);
    comm.send(this._request(policy));
  }

  private _onMsg(msg: KernelMessage.ICommMsgMsg): void {
    let reply: protocol.Reply;
    try {
      reply = validateReply(msg.content.data);
    } catch (e) {
      console.warn('codegemma: ignoring a malformed reply from the kernel:', e);
      return;
    }
    if (reply.type === 'policy') {
      // `%codegemma policy ...`: the kernel holds it already; store it, and nothing goes back.
      this._sent = key(reply.policy);
      writePolicy(this._panel, parsePolicy(reply.policy));
    } else if (reply.type === 'status' && reply.policy !== undefined) {
      this._sent = key(reply.policy);
    } else if (reply.type === 'error') {
      if (reply.code !== 'unknown_type') {
        // an old kernel answers unknown_type (it has no policy); anything else is worth a line
        console.warn(`codegemma: the notebook policy was not taken (${reply.code}): ${reply.message}`);
      }
      return;
    }
    if (this._kernel) {
      void this._comms.get(this._kernel).refreshStatus(); // the status bar and the provider see it now
    }
  }

  private _comm: Kernel.IComm | null = null;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _sent = '';
}

/** Keep every notebook's policy in step with its kernel. */
export function syncNotebookPolicies(tracker: INotebookTracker, comms: KernelCommRegistry): void {
  const follow = (panel: NotebookPanel) => {
    void panel.context.ready.then(() => {
      if (!panel.isDisposed) {
        new PolicySync(panel, comms);
      }
    });
  };
  tracker.forEach(follow);
  tracker.widgetAdded.connect((_, panel) => follow(panel));
}
