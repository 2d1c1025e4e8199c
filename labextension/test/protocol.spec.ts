/**
 * The comm protocol (src/kernel/protocol.ts, src/kernel/replyValidation.ts) against the golden
 * examples in tests/protocol/*.json, which the Python tests (tests/test_protocol.py) load as well:
 * the two sides of the comm cannot drift apart.
 */

import * as fs from 'fs';
import * as path from 'path';

import * as protocol from '../src/kernel/protocol';
import { validateReply } from '../src/kernel/replyValidation';
import { parseRequest } from './parseRequest';

const GOLDEN = path.resolve(__dirname, '..', '..', 'tests', 'protocol');
const PROTOCOL_PY = path.resolve(__dirname, '..', '..', 'jupyter_codegemma', 'protocol.py');

/** {"$repeat": s, "count": n} stands for s repeated n times (tests/protocol/README.md). */
function expand(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(expand);
  }
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    if (keys.length === 2 && keys[0] === '$repeat' && keys[1] === 'count') {
      return (record.$repeat as string).repeat(record.count as number);
    }
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, expand(v)]));
  }
  return value;
}

interface IRequestCase {
  name: string;
  message: unknown;
  expect: { type?: string; error?: string; id_echoed?: boolean };
}

interface IReplyCase {
  name: string;
  message: unknown;
  valid: boolean;
}

function load<T extends { message: unknown }>(name: string): T[] {
  const cases = JSON.parse(fs.readFileSync(path.join(GOLDEN, name), 'utf-8')) as T[];
  return cases.map(c => ({ ...c, message: expand(c.message) }));
}

const requests = load<IRequestCase>('requests.json');
const replies = load<IReplyCase>('replies.json');

describe('golden requests (what the kernel accepts)', () => {
  it('has cases to check', () => {
    expect(requests.length).toBeGreaterThan(20);
  });

  test.each(requests.map(c => [c.name, c] as const))('%s', (_, c) => {
    if (c.expect.type) {
      expect(parseRequest(c.message).type).toBe(c.expect.type);
      return;
    }
    let error: unknown;
    try {
      parseRequest(c.message);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(protocol.ProtocolError);
    const { code, id } = error as protocol.ProtocolError;
    expect(code).toBe(c.expect.error);
    const sentId = (c.message as { id?: unknown } | null)?.id;
    expect(id).toBe(c.expect.id_echoed ? sentId : undefined);
  });
});

describe('golden replies (what the frontend accepts)', () => {
  test.each(replies.map(c => [c.name, c] as const))('%s', (_, c) => {
    if (c.valid) {
      expect(validateReply(c.message)).toEqual(c.message);
    } else {
      expect(() => validateReply(c.message)).toThrow(protocol.ProtocolError);
    }
  });
});

describe('requests built by the extension', () => {
  it('builds complete, cancel and status messages that the kernel accepts', () => {
    const complete = protocol.complete({
      id: 'r1',
      prefix: 'def f(x):\n    return',
      suffix: '\nprint(f(1))\n',
      language: 'python',
      path: 'notebook.py',
      mode: 'line',
      maxNewTokens: 32
    });
    // The golden "every field" case is exactly this message.
    const golden = requests.find(c => c.name === 'complete, every field')!.message;
    expect(complete).toEqual({ ...(golden as object), path: 'notebook.py' });
    for (const message of [complete, protocol.cancel('r1'), protocol.status()]) {
      expect(parseRequest(JSON.parse(JSON.stringify(message)))).toEqual(message);
    }
  });

  it('leaves out optional fields that are not given', () => {
    const message = protocol.complete({ id: 'r2', prefix: 'x = ', suffix: '', language: 'python' });
    expect(Object.keys(message).sort()).toEqual(['id', 'language', 'prefix', 'suffix', 'type', 'v']);
  });

  it('keeps the text nearest the cursor when a field is over its limit', () => {
    const prefix = 'a'.repeat(protocol.MAX_PREFIX_CHARS) + 'NEAR';
    const suffix = 'NEAR' + 'b'.repeat(protocol.MAX_SUFFIX_CHARS);
    const message = protocol.complete({ id: 'r3', prefix, suffix, language: 'python', maxNewTokens: 10_000 });
    expect(message.prefix.length).toBe(protocol.MAX_PREFIX_CHARS);
    expect(message.prefix.endsWith('NEAR')).toBe(true);
    expect(message.suffix.length).toBe(protocol.MAX_SUFFIX_CHARS);
    expect(message.suffix.startsWith('NEAR')).toBe(true);
    expect(message.max_new_tokens).toBe(protocol.MAX_NEW_TOKENS);
    expect(() => parseRequest(message)).not.toThrow();
  });
});

describe('the constants match protocol.py', () => {
  const source = fs.readFileSync(PROTOCOL_PY, 'utf-8');
  const pyInt = (name: string) => Number(new RegExp(`^${name} = ([\\d_]+)`, 'm').exec(source)![1].replace(/_/g, ''));
  const pyTuple = (name: string) =>
    [...new RegExp(`^${name} = \\(([^)]*)\\)`, 'm').exec(source)![1].matchAll(/"([^"]+)"/g)].map(m => m[1]);

  it.each([
    ['VERSION', protocol.VERSION],
    ['MAX_PREFIX_CHARS', protocol.MAX_PREFIX_CHARS],
    ['MAX_SUFFIX_CHARS', protocol.MAX_SUFFIX_CHARS],
    ['MAX_ID_CHARS', protocol.MAX_ID_CHARS],
    ['MAX_PATH_CHARS', protocol.MAX_PATH_CHARS],
    ['MAX_LANGUAGE_CHARS', protocol.MAX_LANGUAGE_CHARS],
    ['MAX_NEW_TOKENS', protocol.MAX_NEW_TOKENS]
  ])('%s', (name, value) => {
    expect(pyInt(name)).toBe(value);
  });

  it.each([
    ['MODES', protocol.MODES],
    ['STATES', protocol.STATES],
    ['REQUEST_TYPES', protocol.REQUEST_TYPES],
    ['STATS_FIELDS', protocol.STATS_FIELDS]
  ])('%s', (name, value) => {
    expect(pyTuple(name)).toEqual([...value]);
  });

  it('TARGET and the error codes', () => {
    expect(/^TARGET = "([^"]+)"/m.exec(source)![1]).toBe(protocol.TARGET);
    // ERROR_CODES = (BAD_REQUEST, ...): each name is a constant `NAME = "value"` above it.
    const names = /^ERROR_CODES = \(([^)]*)\)/m.exec(source)![1].split(',').map(n => n.trim()).filter(Boolean);
    const codes = names.map(name => new RegExp(`^${name} = "([a-z_]+)"`, 'm').exec(source)![1]);
    expect(codes).toEqual([...protocol.ERROR_CODES]);
  });
});
