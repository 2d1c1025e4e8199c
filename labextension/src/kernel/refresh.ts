/**
 * Keep what the extension knows of each kernel in step with the cells that run in it.
 *
 * After a cell runs, the kernel is asked again when the cell may have changed what it answers:
 * `%load_ext jupyter_codegemma` (the target appears), `%codegemma load`/`use`/`set` (another model,
 * loading or failing), `%codegemma disable`/`enable` (completions switch). Kernels that never
 * mention CodeGemma are not asked, so their logs stay quiet. A cell that changes the model also
 * clears the error of an earlier completion: it was about the model being replaced.
 *
 * When a cell is about to run, the completions in flight on its kernel are cancelled: they were for
 * the text being run, nobody will see them, and the cell (a `%%codegemma` request, `%codegemma
 * status`) should not wait behind them or find the model busy with them.
 */

import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';

import { changesModel, mentionsCodeGemma } from './cellSources';
import { KernelCommRegistry } from './commRegistry';

export function refreshAfterRuns(comms: KernelCommRegistry, tracker: INotebookTracker): void {
  const kernelOf = (notebook: unknown): Kernel.IKernelConnection | null => {
    const panel = tracker.find(candidate => candidate.content === notebook);
    return panel?.sessionContext.session?.kernel ?? null;
  };
  NotebookActions.executionScheduled.connect((_, { notebook, cell }) => {
    const kernel = cell.model.type === 'code' ? kernelOf(notebook) : null;
    if (kernel) {
      comms.get(kernel).cancelAll();
    }
  });
  NotebookActions.executed.connect((_, { notebook, cell }) => {
    const source = cell.model.type === 'code' ? cell.model.sharedModel.getSource() : '';
    if (!mentionsCodeGemma(source)) {
      return;
    }
    const kernel = kernelOf(notebook);
    if (!kernel) {
      return;
    }
    const comm = comms.get(kernel);
    comm.recheck();
    if (changesModel(source)) {
      comm.forgetErrors();
    }
    void comm.refreshStatus();
  });
}
