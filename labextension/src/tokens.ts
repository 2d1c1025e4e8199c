/**
 * What the main plugin shares with the others: the comms with the kernels and the settings.
 */

import { Token } from '@lumino/coreutils';

import { KernelCommRegistry } from './kernel/commRegistry';
import { CodeGemmaSettings } from './settings';

export interface ICodeGemma {
  readonly comms: KernelCommRegistry;
  readonly settings: CodeGemmaSettings;
}

export const ICodeGemma = new Token<ICodeGemma>(
  'jupyter-codegemma:ICodeGemma',
  'The CodeGemma comms with the kernels, and the settings'
);

/** The id of the plugin that owns the settings (`schema/plugin.json`). */
export const PLUGIN_ID = 'jupyter-codegemma:plugin';
