/**
 * The kernel's reading of a request, in TypeScript: `parseRequest` mirrors `parse_request` in
 * `jupyter_codegemma/protocol.py`, so the golden tests can check that the requests the extension
 * builds are ones the kernel accepts. Only the tests use it: the extension sends requests, it
 * never reads them.
 */

import {
  ICompleteRequest,
  IPolicyRequest,
  MAX_ID_CHARS,
  MAX_LANGUAGE_CHARS,
  MAX_NEW_TOKENS,
  MAX_PATH_CHARS,
  MAX_PREFIX_CHARS,
  MAX_SUFFIX_CHARS,
  Mode,
  MODES,
  ProtocolError,
  Request,
  REQUEST_TYPES,
  VERSION
} from '../src/kernel/protocol';
import { isObject, kind } from '../src/kernel/replyValidation';
import { parsePolicy } from '../src/kernel/policy';

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
      case 'policy':
        if (!('policy' in data)) {
          throw new ProtocolError('bad_request', 'missing "policy" (an object, or null for none)');
        }
        parsePolicy(data.policy); // throws bad_request for a field of the wrong type or range
        return { v: VERSION, type: 'policy', policy: data.policy as IPolicyRequest['policy'] };
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
