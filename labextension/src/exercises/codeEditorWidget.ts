/**
 * The exercise code editor as an ipywidget: the model and the view that
 * `jupyter_codegemma.exercises.editor.CodeEditor` names on the kernel side.
 *
 * The view is JupyterLab's own CodeMirror editor (from IEditorServices), so it has the notebook's
 * theme, key bindings and Python highlighting, and no second copy of CodeMirror is bundled. The
 * model's `value` follows the student's typing; `error_line` / `error_col` (set by the kernel after
 * Check) show as a marked line with a caret, and follow the edits until the next Check.
 */

import { Compartment, Extension, Transaction } from '@codemirror/state';
import { EditorView, ViewUpdate } from '@codemirror/view';
import { DOMWidgetModel, DOMWidgetView, IWidgetRegistryData } from '@jupyter-widgets/base';
import { CodeEditor, IEditorServices } from '@jupyterlab/codeeditor';
import { CodeMirrorEditor } from '@jupyterlab/codemirror';

import { errorMarkOf, errorMarks, IErrorMark, minimalChange, sameMark, setErrorMark } from './errorMarks';

// One source for the name and version: the package itself (the kernel side reads the same
// version from jupyter_codegemma/_version.py, and a test checks the two agree).
declare const require: (id: string) => unknown;
const PACKAGE = require('../../package.json') as { name: string; version: string };

export const MODULE_NAME = PACKAGE.name;
export const MODULE_VERSION = PACKAGE.version;

/** The kernel's language names to the MIME types JupyterLab's language registry knows. */
const MIME_TYPES: Record<string, string> = {
  python: 'text/x-python',
  ipython: 'text/x-ipython',
  text: 'text/plain'
};

export function mimeTypeOf(language: string): string {
  return MIME_TYPES[language.toLowerCase()] ?? 'text/plain';
}

/** The accessible name of the editor's text: the description, or a generic one. */
export function labelOf(description: string): string {
  return description.trim() || 'Code editor';
}

export class CodeEditorModel extends DOMWidgetModel {
  defaults(): Record<string, unknown> {
    return {
      ...super.defaults(),
      _model_name: 'CodeEditorModel',
      _model_module: MODULE_NAME,
      _model_module_version: MODULE_VERSION,
      _view_name: 'CodeEditorView',
      _view_module: MODULE_NAME,
      _view_module_version: MODULE_VERSION,
      value: '',
      language: 'python',
      error_line: null,
      error_col: null,
      read_only: false,
      description: ''
    };
  }

  static serializers = { ...DOMWidgetModel.serializers };
}

function markOfModel(model: DOMWidgetModel): IErrorMark | null {
  const line = model.get('error_line');
  const col = model.get('error_col');
  return typeof line === 'number' ? { line, col: typeof col === 'number' ? col : null } : null;
}

/**
 * The view. `newEditor` is left to a subclass bound to JupyterLab's editor services
 * (`codeEditorWidgetExports`), because ipywidgets constructs views from their class alone.
 */
export abstract class CodeEditorView extends DOMWidgetView {
  protected abstract newEditor(options: CodeEditor.IOptions): CodeEditor.IEditor;

  render(): void {
    this.el.classList.add('jp-CodeGemmaEditor');
    const host = document.createElement('div');
    this.el.appendChild(host);
    this._editorModel = new CodeEditor.Model({ mimeType: mimeTypeOf(this.model.get('language') ?? 'python') });
    this._editorModel.sharedModel.setSource(this.model.get('value') ?? '');
    this._editor = this.newEditor({
      host,
      model: this._editorModel,
      config: { lineNumbers: true, readOnly: Boolean(this.model.get('read_only')) },
      extensions: [
        errorMarks(),
        this._label.of(this._labelAttributes()),
        EditorView.updateListener.of(update => this._onEditorUpdate(update))
      ]
    });
    this._applyMark();
    this.listenTo(this.model, 'change', this._onModelChange);
  }

  /** The CodeMirror view (for tests and for the plugin's commands). */
  get editorView(): EditorView | null {
    return this._editor instanceof CodeMirrorEditor ? this._editor.editor : null;
  }

  remove(): unknown {
    this._editor?.dispose();
    this._editorModel?.dispose();
    this._editor = null;
    this._editorModel = null;
    return super.remove();
  }

  private _labelAttributes(): Extension {
    return EditorView.contentAttributes.of({ 'aria-label': labelOf(this.model.get('description') ?? '') });
  }

  /** The student typed: send the text, and the mark where the edits moved it. */
  private _onEditorUpdate(update: ViewUpdate): void {
    if (!update.docChanged || update.transactions.some(tr => tr.annotation(Transaction.remote))) {
      return; // a change that came from the model is not sent back
    }
    const mark = errorMarkOf(update.state);
    const changes: Record<string, unknown> = { value: update.state.doc.toString() };
    if (!sameMark(mark, markOfModel(this.model))) {
      changes.error_line = mark?.line ?? null;
      changes.error_col = mark?.col ?? null;
    }
    this.model.set(changes);
    this.touch();
  }

  private _onModelChange(): void {
    const view = this.editorView;
    if (!view || !this._editorModel) {
      return;
    }
    const changed = this.model.changedAttributes() || {};
    if ('value' in changed) {
      // A minimal replacement keeps the student's cursor where the text around it did not change.
      const change = minimalChange(view.state.doc.toString(), this.model.get('value') ?? '');
      if (change) {
        view.dispatch({ changes: change, annotations: Transaction.remote.of(true) });
      }
    }
    if ('value' in changed || 'error_line' in changed || 'error_col' in changed) {
      this._applyMark();
    }
    if ('read_only' in changed) {
      this._editor?.setOption('readOnly', Boolean(this.model.get('read_only')));
    }
    if ('description' in changed) {
      view.dispatch({ effects: this._label.reconfigure(this._labelAttributes()) });
    }
    if ('language' in changed) {
      this._editorModel.mimeType = mimeTypeOf(this.model.get('language') ?? 'python');
    }
  }

  /** Show the model's mark (the kernel's last Check), unless the editor shows it already. */
  private _applyMark(): void {
    const view = this.editorView;
    if (!view) {
      return;
    }
    const mark = markOfModel(this.model);
    if (!sameMark(mark, errorMarkOf(view.state))) {
      view.dispatch({ effects: setErrorMark.of(mark) });
    }
  }

  private _editor: CodeEditor.IEditor | null = null;
  private _editorModel: CodeEditor.Model | null = null;
  private _label = new Compartment();
}

/** What the plugin registers with ipywidgets: the module's classes, the view bound to `services`. */
export function codeEditorWidgetExports(services: IEditorServices): IWidgetRegistryData {
  class BoundCodeEditorView extends CodeEditorView {
    protected newEditor(options: CodeEditor.IOptions): CodeEditor.IEditor {
      return services.factoryService.newInlineEditor(options);
    }
  }
  return {
    name: MODULE_NAME,
    version: MODULE_VERSION,
    exports: { CodeEditorModel, CodeEditorView: BoundCodeEditorView }
  };
}
