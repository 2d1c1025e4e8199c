/**
 * What the status bar item says, from what the extension knows of one kernel (`KernelComm`) and
 * the settings: "CodeGemma: Gemma 3 270M · ready · 180 ms". Pure, so Jest checks every state.
 *
 * The state on show is the engine's at this moment:
 * - busy: a completion this page sent has not had its terminal reply (done, cancelled, error), or
 *   the kernel's last status said busy (a `%%codegemma` cell, another page); `KernelComm` asks
 *   again until the kernel says something else, so a "busy" never outlives the work;
 * - error: the model failed to load and none works (the kernel's status), or the last completion
 *   failed; a later success, a new load or a cell that changes the model clears the latter;
 * - ready otherwise, with the last completion's latency.
 */

import { describePolicy } from './policy';
import * as protocol from './protocol';

export type DisplayState = 'loading' | 'ready' | 'busy' | 'error' | 'off';

export interface IStatusSummary {
  state: DisplayState;
  text: string;
  title: string;
}

/** What `summarize` reads of a kernel's comm (`KernelComm` has all of it). */
export interface IStatusSource {
  readonly availability: 'unknown' | 'probing' | 'available' | 'absent';
  readonly status: protocol.IStatusReply | null;
  readonly pending: number;
  readonly lastLatencyMs: number | null;
  readonly lastStats: protocol.IStats | null;
  readonly lastError: protocol.IErrorReply | null;
}

/** What the item shows for a kernel's comm (null: no notebook kernel) and the settings. */
export function summarize(comm: IStatusSource | null, enabled: boolean): IStatusSummary {
  const status = comm?.status ?? null;
  const model = status?.model ?? '';
  const latency = comm?.lastLatencyMs;
  const stats = comm?.lastStats;
  // The notebook's policy in force, as the kernel holds it: "policy: completions off" (the title says all of it).
  const policy = describePolicy(status?.policy);
  const policyNote = policy ? `policy: ${status?.policy?.exam ? 'exam mode' : policy}` : '';
  const parts = (state: DisplayState, ...rest: string[]) =>
    ['CodeGemma' + (model ? `: ${model}` : ''), state, ...rest, ...(policyNote ? [policyNote] : [])].join(' · ');
  const policyTitle = policy ? `\nThis notebook's AI policy: ${policy}` : '';
  if (!comm || comm.availability === 'absent') {
    return {
      state: 'off',
      text: 'CodeGemma · off',
      title: comm
        ? 'This kernel has no CodeGemma: use the "CodeGemma (JAX)" kernel, or run "Enable CodeGemma in this kernel"'
        : 'No notebook kernel'
    };
  }
  if (!enabled || status?.completions_enabled === false) {
    return {
      state: 'off',
      text: parts('off'),
      title:
        (!enabled
          ? 'Completions are switched off in the settings (Toggle CodeGemma completions)'
          : policy.includes('completions off')
            ? "Completions are switched off by this notebook's policy"
            : 'Completions are switched off in the kernel (%codegemma enable switches them on)') + policyTitle
    };
  }
  if (!status || status.state === 'loading') {
    return { state: 'loading', text: parts('loading'), title: 'The model is loading in the kernel' };
  }
  if (status.state === 'error') {
    return { state: 'error', text: parts('error'), title: status.message ?? 'The model failed to load' };
  }
  const lastError = comm.lastError;
  if (comm.pending === 0 && lastError && lastError.code !== 'disabled' && lastError.code !== 'busy') {
    return { state: 'error', text: parts('error'), title: `${lastError.code}: ${lastError.message}` };
  }
  const timing = latency !== null && latency !== undefined ? `${Math.round(latency)} ms` : '';
  // How many facts the kernel read from the live namespace for the last completion (kernel_context).
  const factCount = stats?.context_facts ?? 0;
  const facts = factCount ? `${factCount} kernel fact${factCount === 1 ? '' : 's'}` : '';
  const title =
    `${status.model} on ${status.device || 'an unknown device'}` +
    (stats
      ? `; last completion: ${Math.round(latency ?? 0)} ms in the browser, first token after ` +
        `${Math.round(stats.ttft_ms)} ms, ${stats.new_tokens} new tokens, ` +
        `${stats.reused_tokens}/${stats.prompt_tokens} prompt tokens reused` +
        (facts ? `, ${facts} in the prompt (keys, columns, attributes, signatures the kernel holds)` : '')
      : '') +
    (status.message ? `\n${status.message}` : '') + // e.g. a failed load that kept this model
    policyTitle;
  const state: DisplayState = comm.pending > 0 || status.state === 'busy' ? 'busy' : 'ready';
  return { state, text: parts(state, ...[timing, facts].filter(Boolean)), title };
}
