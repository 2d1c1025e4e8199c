/**
 * The comm protocol's messages: the TypeScript twin of `jupyter_codegemma/protocol.py`, and the
 * only place their shapes are written down in TypeScript. This module owns the constants and size
 * limits, the message types, ProtocolError, and the requests the extension builds; checking the
 * kernel's replies is `replyValidation.ts`. Jest checks both against the golden examples in
 * `tests/protocol/*.json`, which the Python tests load too, so the two sides cannot drift apart.
 *
 * Comm target `jupyter_codegemma`. Every message carries `"v": 1` and a `"type"`.
 *   requests (frontend -> kernel): complete, cancel, status, policy (the notebook's AI policy)
 *   replies (kernel -> frontend):  partial (the whole suggestion so far), done, cancelled, status, error,
 *                                  policy (`%codegemma policy` changed it: store it in the metadata)
 * Every `complete` ends with exactly one of `done`, `cancelled` or `error`.
 */

export const VERSION = 1;
export const TARGET = 'jupyter_codegemma';

// Size limits: the kernel refuses (`too_large`) anything longer, so the frontend trims to them.
export const MAX_PREFIX_CHARS = 100_000;
export const MAX_SUFFIX_CHARS = 50_000;
export const MAX_ID_CHARS = 128;
export const MAX_PATH_CHARS = 1_024;
export const MAX_LANGUAGE_CHARS = 64;
export const MAX_NEW_TOKENS = 512;

export const MODES = ['line', 'block', 'auto'] as const;
export type Mode = (typeof MODES)[number];
export const STATES = ['loading', 'ready', 'busy', 'error'] as const;
export type State = (typeof STATES)[number];
export const REQUEST_TYPES = ['complete', 'cancel', 'status', 'policy'] as const;
export const STATS_FIELDS = [
  'prompt_tokens',
  'reused_tokens',
  'new_tokens',
  'ttft_ms',
  'total_ms'
] as const;
/** Stats a `done` may carry (a non-negative integer each): context_facts, how many facts from the
 * live kernel were in the prompt; absent when the kernel does not say (kernel_context off). */
export const OPTIONAL_STATS_FIELDS = ['context_facts'] as const;

export const ERROR_CODES = [
  'bad_request', // not an object, a missing field, a wrong type or value
  'unsupported_version', // "v" is not 1
  'unknown_type', // "type" is not a known message type
  'too_large', // a field over its size limit
  'disabled', // completions are switched off (`%codegemma disable`, or the notebook's policy)
  'busy', // the kernel's queue is full: retry later
  'prompt_error', // the model cannot take this prompt
  'model_error', // the model failed to load or to run
  'internal' // a bug in the kernel extension
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

// --- requests ------------------------------------------------------------------------------

export interface ICompleteRequest {
  v: 1;
  type: 'complete';
  id: string;
  prefix: string;
  suffix: string;
  language: string;
  path?: string | null;
  mode?: Mode | null;
  max_new_tokens?: number | null;
}

export interface ICancelRequest {
  v: 1;
  type: 'cancel';
  id: string;
}

export interface IStatusRequest {
  v: 1;
  type: 'status';
}

/**
 * A notebook's AI policy (`metadata.jupyter_codegemma.policy`; kernel/policy.py enforces it). Every
 * field is optional and a missing one allows; `exam` means completions, generation and model fixes
 * off, hints up to level 1. Reading, writing and describing it: `policy.ts`.
 */
export interface INotebookPolicy {
  completions?: boolean;
  generation?: boolean; // %%codegemma, explain, fix and chat
  max_hint_level?: number; // 0..3
  model_fixes?: boolean;
  exam?: boolean;
}

/** The notebook's policy, or null for none; the kernel answers with a `status`. */
export interface IPolicyRequest {
  v: 1;
  type: 'policy';
  policy: INotebookPolicy | null;
}

export type Request = ICompleteRequest | ICancelRequest | IStatusRequest | IPolicyRequest;

// --- replies -------------------------------------------------------------------------------

export interface IStats {
  prompt_tokens: number;
  reused_tokens: number;
  new_tokens: number;
  ttft_ms: number;
  total_ms: number;
  context_facts?: number;
}

export interface IPartialReply {
  v: 1;
  type: 'partial';
  id: string;
  text: string;
}

export interface IDoneReply {
  v: 1;
  type: 'done';
  id: string;
  text: string;
  stats: IStats;
}

export interface ICancelledReply {
  v: 1;
  type: 'cancelled';
  id: string;
}

export interface IStatusReply {
  v: 1;
  type: 'status';
  model: string;
  state: State;
  device: string;
  fim: boolean;
  completions_enabled: boolean;
  hints_enabled?: boolean;
  message?: string;
  policy?: INotebookPolicy | null; // the notebook policy in force (kernels before it leave it out)
}

export interface IErrorReply {
  v: 1;
  type: 'error';
  id?: string;
  code: ErrorCode;
  message: string;
}

/** `%codegemma policy ...` changed the policy: store it in the notebook's metadata. */
export interface IPolicyReply {
  v: 1;
  type: 'policy';
  policy: INotebookPolicy | null;
}

export type Reply =
  | IPartialReply
  | IDoneReply
  | ICancelledReply
  | IStatusReply
  | IErrorReply
  | IPolicyReply;

/** A message that breaks the protocol; `code` is one of ERROR_CODES, `id` the request's if known. */
export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    public id?: string
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

// --- building requests (what the extension sends) ------------------------------------------

export interface ICompleteFields {
  id: string;
  prefix: string;
  suffix: string;
  language: string;
  path?: string;
  mode?: Mode;
  maxNewTokens?: number;
}

/**
 * A `complete` request. The caller has already trimmed the prefix and suffix to their budgets;
 * the limits are enforced here as well (keeping the text nearest the cursor), so the kernel never
 * has to refuse a request this extension built.
 */
export function complete(fields: ICompleteFields): ICompleteRequest {
  const request: ICompleteRequest = {
    v: VERSION,
    type: 'complete',
    id: fields.id,
    prefix: fields.prefix.slice(-MAX_PREFIX_CHARS),
    suffix: fields.suffix.slice(0, MAX_SUFFIX_CHARS),
    language: fields.language.slice(0, MAX_LANGUAGE_CHARS)
  };
  if (fields.path) {
    request.path = fields.path.slice(-MAX_PATH_CHARS);
  }
  if (fields.mode) {
    request.mode = fields.mode;
  }
  if (fields.maxNewTokens !== undefined) {
    request.max_new_tokens = Math.min(
      Math.max(Math.round(fields.maxNewTokens), 1),
      MAX_NEW_TOKENS
    );
  }
  return request;
}

export function cancel(id: string): ICancelRequest {
  return { v: VERSION, type: 'cancel', id };
}

export function status(): IStatusRequest {
  return { v: VERSION, type: 'status' };
}

export function policy(policy: INotebookPolicy | null): IPolicyRequest {
  return { v: VERSION, type: 'policy', policy };
}

let requestCounter = 0;

/** A request id unique across tabs and reloads talking to the same kernel. */
export function newRequestId(): string {
  requestCounter += 1;
  return `cg-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-${requestCounter}`;
}
