/**
 * The extension's settings (`schema/plugin.json`), read into a typed object with the schema's
 * defaults, and kept current as the user edits them.
 */

import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ISignal, Signal } from '@lumino/signaling';

import { ITriggerSettings, Trigger, TRIGGERS } from './completion/trigger';
import { MAX_NEW_TOKENS, MAX_PREFIX_CHARS, MAX_SUFFIX_CHARS, Mode, MODES } from './kernel/protocol';

export interface ICodeGemmaSettings extends ITriggerSettings {
  enabled: boolean;
  debounceMs: number;
  prefixChars: number;
  suffixChars: number;
  contextCells: number;
  mode: Mode;
  maxNewTokens: number;
}

/** The same values as the schema's defaults: used until the settings registry has answered. */
export const DEFAULT_SETTINGS: ICodeGemmaSettings = {
  enabled: true,
  trigger: 'auto',
  inMarkdownCells: false,
  inRawCells: false,
  inStrings: true,
  inComments: true,
  debounceMs: 200,
  prefixChars: 6000,
  suffixChars: 2000,
  contextCells: 10,
  mode: 'auto',
  maxNewTokens: 64
};

function clampInt(value: unknown, low: number, high: number, fallback: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return fallback;
  }
  return Math.min(Math.max(Math.round(value), low), high);
}

/** Settings from the registry's composite; anything missing or out of range falls back or is clamped. */
export function readSettings(composite: Partial<Record<keyof ICodeGemmaSettings, unknown>>): ICodeGemmaSettings {
  const d = DEFAULT_SETTINGS;
  const mode = composite.mode;
  const trigger = composite.trigger;
  const flag = (key: 'enabled' | keyof Omit<ITriggerSettings, 'trigger'>): boolean => {
    const value = composite[key];
    return typeof value === 'boolean' ? value : d[key];
  };
  return {
    enabled: flag('enabled'),
    trigger:
      typeof trigger === 'string' && (TRIGGERS as readonly string[]).includes(trigger) ? (trigger as Trigger) : d.trigger,
    inMarkdownCells: flag('inMarkdownCells'),
    inRawCells: flag('inRawCells'),
    inStrings: flag('inStrings'),
    inComments: flag('inComments'),
    debounceMs: clampInt(composite.debounceMs, 0, 5000, d.debounceMs),
    prefixChars: clampInt(composite.prefixChars, 0, MAX_PREFIX_CHARS, d.prefixChars),
    suffixChars: clampInt(composite.suffixChars, 0, MAX_SUFFIX_CHARS, d.suffixChars),
    contextCells: clampInt(composite.contextCells, 0, 1000, d.contextCells),
    mode: typeof mode === 'string' && (MODES as readonly string[]).includes(mode) ? (mode as Mode) : d.mode,
    maxNewTokens: clampInt(composite.maxNewTokens, 1, MAX_NEW_TOKENS, d.maxNewTokens)
  };
}

/** The current settings, with a signal when they change, and a way to change `enabled`. */
export class CodeGemmaSettings {
  constructor(private readonly _pluginId: string) {}

  get current(): ICodeGemmaSettings {
    return this._current;
  }

  get changed(): ISignal<this, ICodeGemmaSettings> {
    return this._changed;
  }

  /** Follow the registry's settings for the plugin (until the page is closed). */
  connect(settings: ISettingRegistry.ISettings): void {
    this._registry = settings;
    const update = () => {
      this._current = readSettings(settings.composite as Record<string, unknown>);
      this._changed.emit(this._current);
    };
    settings.changed.connect(update);
    update();
  }

  /** Switch completions on or off, saved in the user's settings like any other edit. */
  async setEnabled(enabled: boolean): Promise<void> {
    if (this._registry) {
      await this._registry.set('enabled', enabled);
    } else {
      // No settings registry (it failed to load the schema): still honour the toggle for this page.
      this._current = { ...this._current, enabled };
      this._changed.emit(this._current);
    }
  }

  get pluginId(): string {
    return this._pluginId;
  }

  private _current: ICodeGemmaSettings = DEFAULT_SETTINGS;
  private _changed = new Signal<this, ICodeGemmaSettings>(this);
  private _registry: ISettingRegistry.ISettings | null = null;
}
