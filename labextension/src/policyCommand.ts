/**
 * The teacher's command "Set notebook AI policy…": a small dialog with the policy's switches, written
 * into the notebook's metadata (`kernel/policy.ts` sends it to the kernel, which enforces it).
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { MAX_HINT_LEVEL, parsePolicy, readPolicy, writePolicy } from './kernel/policy';
import { INotebookPolicy } from './kernel/protocol';

export const SET_POLICY = 'codegemma:set-notebook-policy';
const REMOVE = 'Remove policy';

/** The switches, each "allowed" when ticked (the policy stores what is switched off). */
const SWITCHES: [keyof INotebookPolicy, string][] = [
  ['completions', 'Ghost-text completions'],
  ['generation', '%%codegemma, explain, fix and chat'],
  ['model_fixes', "Exercise hints may show the model's fix (level 3)"]
];

/** The dialog's body: checkboxes, the highest hint level, and exam mode; `getValue` is the policy. */
class PolicyForm extends Widget implements Dialog.IBodyWidget<INotebookPolicy | null> {
  constructor(policy: INotebookPolicy | null) {
    super();
    this.addClass('jp-CodeGemmaPolicyForm');
    const intro = document.createElement('p');
    intro.textContent =
      'What CodeGemma may do in this notebook. The kernel enforces it; a student can still delete it from ' +
      "the notebook's metadata, and the exercise results then record that it was removed.";
    this.node.appendChild(intro);
    for (const [name, label] of SWITCHES) {
      this._boxes.set(name, this._checkbox(label, policy?.[name] !== false));
    }
    const levelLabel = document.createElement('label');
    levelLabel.textContent = 'Highest hint level ';
    for (let level = 0; level <= MAX_HINT_LEVEL; level++) {
      const option = document.createElement('option');
      option.value = String(level);
      option.textContent = ['0: no hints', '1: where', '2: what kind and why', '3: a fix'][level];
      this._level.appendChild(option);
    }
    this._level.value = String(policy?.max_hint_level ?? MAX_HINT_LEVEL);
    levelLabel.appendChild(this._level);
    this.node.appendChild(levelLabel);
    this._exam = this._checkbox('Exam mode: all of the above off, hints up to level 1', policy?.exam === true);
  }

  getValue(): INotebookPolicy | null {
    const raw: Record<string, unknown> = { exam: this._exam.checked, max_hint_level: Number(this._level.value) };
    for (const [name, box] of this._boxes) {
      raw[name] = box.checked;
    }
    const policy = parsePolicy(raw); // only what restricts
    return policy && Object.keys(policy).length ? policy : null;
  }

  private _checkbox(label: string, checked: boolean): HTMLInputElement {
    const row = document.createElement('label');
    row.style.display = 'block';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = checked;
    row.append(box, ` ${label}`);
    this.node.appendChild(row);
    return box;
  }

  private _boxes = new Map<keyof INotebookPolicy, HTMLInputElement>();
  private _exam: HTMLInputElement;
  private _level = document.createElement('select');
}

export function addPolicyCommand(app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null): void {
  app.commands.addCommand(SET_POLICY, {
    label: 'Set notebook AI policy…',
    caption: "What CodeGemma may do in this notebook (stored in its metadata; the kernel enforces it)",
    isEnabled: () => tracker.currentWidget !== null,
    execute: async () => {
      const panel = tracker.currentWidget;
      if (!panel) {
        return;
      }
      let current: INotebookPolicy | null = null;
      try {
        current = parsePolicy(readPolicy(panel));
      } catch {
        // a policy written by hand that the kernel cannot read: the dialog starts from nothing switched off
      }
      const result = await showDialog({
        title: 'CodeGemma: notebook AI policy',
        body: new PolicyForm(current),
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: REMOVE }), Dialog.okButton({ label: 'Save' })]
      });
      if (panel.isDisposed || !result.button.accept) {
        return;
      }
      writePolicy(panel, result.button.label === REMOVE ? null : result.value);
    }
  });
  palette?.addItem({ command: SET_POLICY, category: 'CodeGemma' });
}
