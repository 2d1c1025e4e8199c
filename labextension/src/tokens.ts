/**
 * What the main plugin shares with the others: the kernel connections and the settings.
 */

import { Token } from '@lumino/coreutils';

import { CodeGemmaKernels } from './kernel/comm';
import { CodeGemmaSettings } from './settings';

export interface ICodeGemma {
  readonly kernels: CodeGemmaKernels;
  readonly settings: CodeGemmaSettings;
}

export const ICodeGemma = new Token<ICodeGemma>(
  'jupyter-codegemma:ICodeGemma',
  'The CodeGemma kernel connections and settings'
);

/** The id of the plugin that owns the settings (`schema/plugin.json`). */
export const PLUGIN_ID = 'jupyter-codegemma:plugin';
