/** The settings reader, and its defaults against the schema's (one source of truth for users). */

import * as fs from 'fs';
import * as path from 'path';

import { DEFAULT_SETTINGS, readSettings } from '../src/settings';

const schema = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', 'schema', 'plugin.json'), 'utf-8'));

describe('settings', () => {
  it('the defaults are the schema\'s defaults, and every setting is in the schema', () => {
    const fromSchema = Object.fromEntries(
      Object.entries(schema.properties as Record<string, { default: unknown }>).map(([k, v]) => [k, v.default])
    );
    expect(fromSchema).toEqual(DEFAULT_SETTINGS);
  });

  it('reads values, and falls back or clamps where they are missing or out of range', () => {
    expect(readSettings({})).toEqual(DEFAULT_SETTINGS);
    const read = readSettings({
      enabled: false,
      debounceMs: -5,
      prefixChars: 1e9,
      suffixChars: 12.6,
      contextCells: 'many',
      mode: 'line',
      maxNewTokens: 100_000,
      trigger: 'manual',
      inMarkdownCells: true,
      inStrings: 'yes'
    });
    expect(read).toEqual({
      enabled: false,
      trigger: 'manual',
      inMarkdownCells: true,
      inRawCells: false,
      inStrings: true,
      inComments: true,
      debounceMs: 0,
      prefixChars: 100_000,
      suffixChars: 13,
      contextCells: DEFAULT_SETTINGS.contextCells,
      mode: 'line',
      maxNewTokens: 512
    });
    expect(readSettings({ mode: 'paragraph' }).mode).toBe('auto');
    expect(readSettings({ trigger: 'sometimes' }).trigger).toBe('auto');
  });
});
