/**
 * The commands (palette and the notebook's context menu): write a `%%codegemma` cell, switch
 * completions on or off, and load the kernel extension into a plain Python kernel.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

import { KernelCommRegistry } from './kernel/commRegistry';
import { CodeGemmaSettings } from './settings';

export namespace CommandIDs {
  export const generate = 'codegemma:generate';
  export const toggleCompletions = 'codegemma:toggle-completions';
  export const enableInKernel = 'codegemma:enable-in-kernel';
}

const PALETTE_CATEGORY = 'CodeGemma';

/** What `%%codegemma` cells start with; the request in plain words goes on the next line. */
export const GENERATE_CELL_HEADER = '%%codegemma\n';

/** Resolves after `count` animation frames (Lumino delivers posted messages, focus among them, in frames). */
function afterFrames(count: number): Promise<void> {
  return new Promise(resolve => {
    const next = (left: number) => (left <= 0 ? resolve() : requestAnimationFrame(() => next(left - 1)));
    next(count);
  });
}

export interface ICommandOptions {
  app: JupyterFrontEnd;
  tracker: INotebookTracker;
  comms: KernelCommRegistry;
  settings: CodeGemmaSettings;
  palette: ICommandPalette | null;
}

export function addCommands(options: ICommandOptions): void {
  const { app, tracker, comms, settings, palette } = options;
  const { commands } = app;

  /** The notebook a command applies to: the one last focused (also when the palette has focus). */
  const current = (): NotebookPanel | null => tracker.currentWidget;

  commands.addCommand(CommandIDs.generate, {
    label: 'Generate code with CodeGemma',
    caption: 'Insert a %%codegemma cell below: write a request in plain words, then run it',
    isEnabled: () => current() !== null,
    execute: async () => {
      const panel = current();
      if (!panel) {
        return;
      }
      const notebook = panel.content;
      NotebookActions.insertBelow(notebook);
      const cell = notebook.activeCell;
      if (!cell) {
        return;
      }
      cell.model.sharedModel.setSource(GENERATE_CELL_HEADER);
      notebook.mode = 'edit';
      // The editor exists once the cell is attached; wait for it before placing the cursor.
      await cell.ready;
      // Run from the palette, the palette closes as the command starts and gives the focus back
      // to the notebook a frame or two later (its `restore` activates the current widget, which
      // focuses the notebook's node: command mode). Focus the editor after that, or the request
      // the user types next would run as notebook shortcuts.
      await afterFrames(2);
      if (cell.isDisposed || notebook.isDisposed) {
        return;
      }
      const index = notebook.widgets.indexOf(cell);
      if (index !== -1) {
        notebook.activeCellIndex = index;
      }
      notebook.mode = 'edit';
      cell.editor?.setCursorPosition({ line: 1, column: 0 });
      cell.editor?.focus();
    }
  });

  commands.addCommand(CommandIDs.toggleCompletions, {
    label: 'Toggle CodeGemma completions',
    caption: 'Show or stop ghost-text completions from the model in the kernel',
    isToggled: () => settings.current.enabled,
    execute: () => settings.setEnabled(!settings.current.enabled)
  });
  settings.changed.connect(() => commands.notifyCommandChanged(CommandIDs.toggleCompletions));

  /**
   * "Enable CodeGemma in this kernel" is for kernels without it: it is not offered (palette, context
   * menu) once the kernel has answered a status, as the "CodeGemma (JAX)" kernel does at once.
   */
  const needsEnabling = (): boolean => {
    const kernel = current()?.sessionContext.session?.kernel;
    return !kernel || comms.get(kernel).availability !== 'available';
  };
  let enableOffered = needsEnabling();
  const offerEnable = () => {
    if (needsEnabling() !== enableOffered) {
      enableOffered = !enableOffered;
      commands.notifyCommandChanged(CommandIDs.enableInKernel);
    }
  };
  comms.changed.connect(offerEnable);
  tracker.currentChanged.connect(offerEnable);

  commands.addCommand(CommandIDs.enableInKernel, {
    label: 'Enable CodeGemma in this kernel',
    caption: 'Run %load_ext jupyter_codegemma (quietly) in the notebook\'s Python kernel',
    isEnabled: () => !!current()?.sessionContext.session?.kernel,
    isVisible: needsEnabling,
    execute: async () => {
      const panel = current();
      const kernel = panel?.sessionContext.session?.kernel;
      if (!panel || !kernel) {
        return;
      }
      const spec = await kernel.spec;
      const language = spec?.language ?? '';
      if (language.toLowerCase() !== 'python') {
        await showErrorMessage(
          'CodeGemma needs a Python kernel',
          `The kernel "${spec?.display_name ?? kernel.name}" runs ${language || 'an unknown language'}. ` +
            'Switch the notebook to a Python kernel that has jupyter-codegemma installed ' +
            '(or to the "CodeGemma (JAX)" kernel), then run this command again.'
        );
        return;
      }
      // silent: no execution count, no history entry, no output in the notebook.
      const future = kernel.requestExecute({
        code: '%load_ext jupyter_codegemma',
        silent: true,
        store_history: false
      });
      const reply = await future.done;
      const content = reply.content;
      if (content.status !== 'ok') {
        const detail =
          content.status === 'error' ? `${content.ename}: ${content.evalue}` : content.status;
        await showErrorMessage(
          'CodeGemma could not be loaded in this kernel',
          `%load_ext jupyter_codegemma failed (${detail}). Is jupyter-codegemma installed in the ` +
            'kernel\'s Python environment (pip install jupyter-codegemma)?'
        );
        return;
      }
      const comm = comms.get(kernel);
      comm.recheck();
      await comm.ensureOpen();
    }
  });

  if (palette) {
    for (const command of [CommandIDs.generate, CommandIDs.toggleCompletions, CommandIDs.enableInKernel]) {
      palette.addItem({ command, category: PALETTE_CATEGORY });
    }
  }
}
