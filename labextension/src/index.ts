/**
 * The plugins of jupyter-codegemma. Only plugin objects live here; the logic is in the modules
 * they import: completion/ (the inline provider, the cells around the cursor, suggestions),
 * kernel/ (the comm protocol, the comm with each kernel, refresh, the status item), exercises/ (the
 * exercise editor widget and its error marks), commands and settings.
 */

import { IJupyterWidgetRegistry } from '@jupyter-widgets/base';
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { codeEditorWidgetExports } from './exercises/codeEditorWidget';
import { addCommands, CommandIDs } from './commands';
import { addAcceptCommands } from './completion/acceptCommands';
import { KernelCommRegistry } from './kernel/commRegistry';
import { CodeGemmaProvider } from './completion/provider';
import { refreshAfterRuns } from './kernel/refresh';
import { syncNotebookPolicies } from './kernel/policy';
import { addPolicyCommand } from './policyCommand';
import { CodeGemmaSettings } from './settings';
import { CodeGemmaStatus } from './kernel/statusItem';
import { ICodeGemma, PLUGIN_ID } from './tokens';

/** Completions, commands and settings; the other plugins share its kernel comms and settings. */
const plugin: JupyterFrontEndPlugin<ICodeGemma> = {
  id: PLUGIN_ID,
  description: 'CodeGemma ghost-text completions and commands in notebooks',
  autoStart: true,
  requires: [ICompletionProviderManager, INotebookTracker],
  optional: [ISettingRegistry, ICommandPalette],
  provides: ICodeGemma,
  activate: (
    app: JupyterFrontEnd,
    completions: ICompletionProviderManager,
    tracker: INotebookTracker,
    registry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ): ICodeGemma => {
    const comms = new KernelCommRegistry();
    const settings = new CodeGemmaSettings(PLUGIN_ID);
    if (registry) {
      registry
        .load(PLUGIN_ID)
        .then(loaded => settings.connect(loaded))
        .catch(reason => console.error('codegemma: cannot load the settings; using the defaults', reason));
    }
    const provider = new CodeGemmaProvider(comms, settings);
    completions.registerInlineProvider(provider);
    addCommands({ app, tracker, comms, settings, palette });
    addAcceptCommands({ app, tracker, completions, provider, palette });
    refreshAfterRuns(comms, tracker);
    syncNotebookPolicies(tracker, comms); // the notebook's AI policy, to the kernel that enforces it
    addPolicyCommand(app, tracker, palette);
    return { comms, settings };
  }
};

/** The status bar item: model, state and the last completion's latency for the current notebook. */
const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-codegemma:status',
  description: 'CodeGemma model, state and latency in the status bar',
  autoStart: true,
  requires: [ICodeGemma, INotebookTracker, IStatusBar],
  activate: (app: JupyterFrontEnd, codegemma: ICodeGemma, tracker: INotebookTracker, statusBar: IStatusBar) => {
    const item = new CodeGemmaStatus(tracker, codegemma.comms, codegemma.settings, () => {
      void app.commands.execute(CommandIDs.toggleCompletions);
    });
    statusBar.registerStatusItem('jupyter-codegemma:status', {
      item,
      align: 'left',
      rank: 4
    });
  }
};

/** The exercise widgets' code editor (jupyter_codegemma.exercises.CodeEditor) as a CodeMirror view. */
const codeEditorWidgetPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-codegemma:code-editor-widget',
  description: 'A CodeMirror code editor for the exercise widgets, with the error line marked',
  autoStart: true,
  requires: [IJupyterWidgetRegistry, IEditorServices],
  activate: (app: JupyterFrontEnd, widgets: IJupyterWidgetRegistry, services: IEditorServices) => {
    widgets.registerWidget(codeEditorWidgetExports(services));
  }
};

export default [plugin, statusPlugin, codeEditorWidgetPlugin];
