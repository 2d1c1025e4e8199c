/**
 * After a cell runs, ask the kernel again when the cell may have changed what it answers:
 * `%load_ext jupyter_codegemma` (the target appears), `%codegemma disable`/`enable` (completions
 * switch). Kernels that never mention CodeGemma are not asked, so their logs stay quiet.
 */

import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';

import { KernelCommRegistry } from './commRegistry';

/** Whether a cell's source may change the kernel's CodeGemma state. */
export function mentionsCodeGemma(source: string): boolean {
  return /codegemma/i.test(source);
}

export function refreshAfterRuns(comms: KernelCommRegistry, tracker: INotebookTracker): void {
  NotebookActions.executed.connect((_, { notebook, cell }) => {
    if (cell.model.type !== 'code' || !mentionsCodeGemma(cell.model.sharedModel.getSource())) {
      return;
    }
    const panel = tracker.find(candidate => candidate.content === notebook);
    const kernel = panel?.sessionContext.session?.kernel;
    if (!kernel) {
      return;
    }
    const comm = comms.get(kernel);
    comm.recheck();
    void comm.refreshStatus();
  });
}
