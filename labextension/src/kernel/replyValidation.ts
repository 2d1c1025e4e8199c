/**
 * Checking a kernel -> frontend message before the extension trusts it: `validateReply`, the
 * frontend's reading of a reply (the Python tests hold its twin, `validate_reply` in
 * `tests/protocol_golden.py`), and how a JSON value's type reads in a protocol error message.
 */

import {
  ERROR_CODES,
  OPTIONAL_STATS_FIELDS,
  ProtocolError,
  Reply,
  STATES,
  STATS_FIELDS,
  VERSION
} from './protocol';

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
  error: { code: 'string', message: 'string' },
  policy: {} // "policy": an object or null, checked below
};

/** Check a kernel -> frontend message; returns it as a Reply, or throws ProtocolError. */
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
  if ((type === 'policy' || 'policy' in data) && !(data.policy === null || isObject(data.policy))) {
    throw new ProtocolError('bad_request', `${type}: "policy" must be an object or null, got ${kind(data.policy)}`);
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
    for (const name of OPTIONAL_STATS_FIELDS) {
      const value = stats[name];
      if (name in stats && (typeof value !== 'number' || !Number.isInteger(value) || value < 0)) {
        throw new ProtocolError(
          'bad_request',
          `done: "stats.${name}" must be a non-negative integer when present`
        );
      }
    }
  }
  return data as unknown as Reply;
}

/** Whether a JSON value is an object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** How a JSON value's type reads in an error message ("an object", "null", ...), as in Python. */
export function kind(value: unknown): string {
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
