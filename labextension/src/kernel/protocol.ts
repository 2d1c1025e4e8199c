/**
 * The comm protocol between this extension and the kernel: the TypeScript twin of
 * `jupyter_codegemma/protocol.py`, and the only place the message shapes are written down in
 * TypeScript. Jest checks this module against the golden examples in `tests/protocol/*.json`,
 * which the Python tests load too, so the two sides cannot drift apart.
 *
 * Comm target `jupyter_codegemma`. Every message carries `"v": 1` and a `"type"`.
 *   requests (frontend -> kernel): complete, cancel, status
 *   replies (kernel -> frontend):  partial (the whole suggestion so far), done, cancelled, status, error
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
export const REQUEST_TYPES = ['complete', 'cancel', 'status'] as const;
export const STATS_FIELDS = [
  'prompt_tokens',
  'reused_tokens',
  'new_tokens',
  'ttft_ms',
  'total_ms'
] as const;

export const ERROR_CODES = [
  'bad_request', // not an object, a missing field, a wrong type or value
  'unsupported_version', // "v" is not 1
  'unknown_type', // "type" is not a known message type
  'too_large', // a field over its size limit
  'disabled', // completions are switched off in the kernel (`%codegemma disable`)
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

export type Request = ICompleteRequest | ICancelRequest | IStatusRequest;

// --- replies -------------------------------------------------------------------------------

export interface IStats {
  prompt_tokens: number;
  reused_tokens: number;
  new_tokens: number;
  ttft_ms: number;
  total_ms: number;
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
}

export interface IErrorReply {
  v: 1;
  type: 'error';
  id?: string;
  code: ErrorCode;
  message: string;
}

export type Reply =
  | IPartialReply
  | IDoneReply
  | ICancelledReply
  | IStatusReply
  | IErrorReply;

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
 * A `complete` request. The caller has already trimmed the context to its budgets; the limits
 * are enforced here as well (keeping the text nearest the cursor), so the kernel never has to
 * refuse a request this extension built.
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

// --- checking messages ---------------------------------------------------------------------

/** A request as the kernel reads it (mirrors `protocol.parse_request`); throws ProtocolError. */
export function parseRequest(data: unknown): Request {
  if (!isObject(data)) {
    throw new ProtocolError(
      'bad_request',
      `a message must be a JSON object, got ${kind(data)}`
    );
  }
  const rawId = data.id;
  const echoId =
    typeof rawId === 'string' && rawId.length > 0 && rawId.length <= MAX_ID_CHARS
      ? rawId
      : undefined;
  try {
    if (!('v' in data)) {
      throw new ProtocolError('bad_request', 'missing "v": every message carries "v": 1');
    }
    if (data.v !== VERSION) {
      throw new ProtocolError(
        'unsupported_version',
        `"v" must be ${VERSION}, got ${JSON.stringify(data.v)}: ` +
          'the frontend and kernel extensions have different versions'
      );
    }
    const type = data.type;
    if (typeof type !== 'string') {
      throw new ProtocolError('bad_request', `"type" must be a string, got ${kind(type)}`);
    }
    switch (type) {
      case 'complete':
        return parseComplete(data);
      case 'cancel':
        return { v: VERSION, type: 'cancel', id: requireId(data) };
      case 'status':
        return { v: VERSION, type: 'status' };
      default:
        throw new ProtocolError(
          'unknown_type',
          `unknown request type ${JSON.stringify(type.slice(0, 40))}: expected one of ` +
            REQUEST_TYPES.join(', ')
        );
    }
  } catch (e) {
    if (e instanceof ProtocolError) {
      e.id = e.id ?? echoId;
    }
    throw e;
  }
}

function parseComplete(data: Record<string, unknown>): ICompleteRequest {
  const id = requireId(data);
  const request: ICompleteRequest = {
    v: VERSION,
    type: 'complete',
    id,
    prefix: requireString(data, 'prefix', MAX_PREFIX_CHARS),
    suffix: requireString(data, 'suffix', MAX_SUFFIX_CHARS),
    language: requireString(data, 'language', MAX_LANGUAGE_CHARS)
  };
  if (data.path !== undefined && data.path !== null) {
    request.path = requireString(data, 'path', MAX_PATH_CHARS);
  }
  const mode = data.mode;
  if (mode !== undefined && mode !== null) {
    if (typeof mode !== 'string' || !(MODES as readonly string[]).includes(mode)) {
      throw new ProtocolError(
        'bad_request',
        `"mode" must be one of ${MODES.join(', ')}, got ${JSON.stringify(mode).slice(0, 40)}`
      );
    }
    request.mode = mode as Mode;
  }
  const maxNewTokens = data.max_new_tokens;
  if (maxNewTokens !== undefined && maxNewTokens !== null) {
    // JSON has one number type; Python tells 32 from 32.0, so a whole number is what counts here.
    if (typeof maxNewTokens !== 'number' || !Number.isInteger(maxNewTokens)) {
      throw new ProtocolError(
        'bad_request',
        `"max_new_tokens" must be an integer, got ${kind(maxNewTokens)}`
      );
    }
    if (maxNewTokens < 1 || maxNewTokens > MAX_NEW_TOKENS) {
      throw new ProtocolError(
        'bad_request',
        `"max_new_tokens" must be in 1..${MAX_NEW_TOKENS}, got ${maxNewTokens}`
      );
    }
    request.max_new_tokens = maxNewTokens;
  }
  return request;
}

function requireId(data: Record<string, unknown>): string {
  const value = data.id;
  if (typeof value !== 'string' || value.length === 0) {
    throw new ProtocolError('bad_request', `"id" must be a non-empty string, got ${kind(value)}`);
  }
  if (value.length > MAX_ID_CHARS) {
    throw new ProtocolError(
      'too_large',
      `"id" has ${value.length} characters; the limit is ${MAX_ID_CHARS}`
    );
  }
  return value;
}

function requireString(data: Record<string, unknown>, name: string, limit: number): string {
  if (!(name in data)) {
    throw new ProtocolError('bad_request', `missing "${name}" (a string)`);
  }
  const value = data[name];
  if (typeof value !== 'string') {
    throw new ProtocolError('bad_request', `"${name}" must be a string, got ${kind(value)}`);
  }
  if (value.length > limit) {
    throw new ProtocolError(
      'too_large',
      `"${name}" has ${value.length} characters; the limit is ${limit}`
    );
  }
  return value;
}

type FieldType = 'string' | 'boolean' | 'object';

const REPLY_FIELDS: Record<Reply['type'], Record<string, FieldType>> = {
  partial: { id: 'string', text: 'string' },
  done: { id: 'string', text: 'string', stats: 'object' },
  cancelled: { id: 'string' },
  status: {
    model: 'string',
    state: 'string',
    device: 'string',
    fim: 'boolean',
    completions_enabled: 'boolean'
  },
  error: { code: 'string', message: 'string' }
};

/** Check a kernel -> frontend message (mirrors `protocol.validate_reply`); throws ProtocolError. */
export function validateReply(data: unknown): Reply {
  if (!isObject(data)) {
    throw new ProtocolError('bad_request', `a reply must be a JSON object, got ${kind(data)}`);
  }
  if (data.v !== VERSION) {
    throw new ProtocolError(
      'unsupported_version',
      `"v" must be ${VERSION}, got ${JSON.stringify(data.v)}`
    );
  }
  const type = data.type;
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(REPLY_FIELDS, type)) {
    throw new ProtocolError('unknown_type', `unknown reply type ${JSON.stringify(type)}`);
  }
  const fields = REPLY_FIELDS[type as Reply['type']];
  for (const [name, expected] of Object.entries(fields)) {
    const value = data[name];
    const ok = expected === 'object' ? isObject(value) : typeof value === expected;
    if (!ok) {
      throw new ProtocolError(
        'bad_request',
        `${type}: "${name}" must be ${article(expected)}, got ${kind(value)}`
      );
    }
  }
  if (type === 'status' && !(STATES as readonly string[]).includes(data.state as string)) {
    throw new ProtocolError('bad_request', `status: "state" must be one of ${STATES.join(', ')}`);
  }
  if (type === 'error') {
    if (!(ERROR_CODES as readonly string[]).includes(data.code as string)) {
      throw new ProtocolError('bad_request', `error: unknown code ${JSON.stringify(data.code)}`);
    }
    if ('id' in data && typeof data.id !== 'string') {
      throw new ProtocolError('bad_request', 'error: "id" must be a string when present');
    }
  }
  if (type === 'done') {
    const stats = data.stats as Record<string, unknown>;
    for (const name of STATS_FIELDS) {
      const value = stats[name];
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        throw new ProtocolError(
          'bad_request',
          `done: "stats.${name}" must be a non-negative number`
        );
      }
    }
  }
  return data as unknown as Reply;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** How a JSON value's type reads in an error message ("an object", "null", ...), as in Python. */
function kind(value: unknown): string {
  if (value === null || value === undefined) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'an array';
  }
  return article(typeof value);
}

function article(type: string): string {
  return type === 'object' ? 'an object' : `a ${type}`;
}
