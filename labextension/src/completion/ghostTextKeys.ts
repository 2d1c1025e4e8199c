/**
 * The accept-part keys reach their commands before the editor's own keymap does.
 *
 * JupyterLab handles shortcuts when the keydown event bubbles up to the document, after CodeMirror
 * has seen it; CodeMirror binds Ctrl+→ (a word right) itself and marks the event handled, so a
 * JupyterLab shortcut on it never fires (Tab and Alt+End, the inline completer's own keys, are
 * free in CodeMirror or special-cased by JupyterLab). This listener runs first, in the capture
 * phase, for the given commands only: it reads their bindings from JupyterLab's keybinding registry
 * (so keys changed in Settings → Keyboard Shortcuts apply), and runs a command when the key, the
 * binding's selector (ghost text on show) and the command's `isEnabled` all match; otherwise the
 * editor gets the key as usual.
 */

import { CommandRegistry } from '@lumino/commands';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';

export function dispatchBeforeEditor(commands: CommandRegistry, commandIds: readonly string[]): IDisposable {
  const onKeydown = (event: KeyboardEvent): void => {
    const target = event.target;
    if (event.defaultPrevented || !(target instanceof Element)) {
      return;
    }
    const keystroke = CommandRegistry.keystrokeForKeydownEvent(event);
    if (!keystroke) {
      return;
    }
    const binding = commands.keyBindings.find(
      b =>
        commandIds.includes(b.command) &&
        b.keys.length === 1 &&
        b.keys[0] === keystroke &&
        target.closest(b.selector) !== null &&
        commands.isEnabled(b.command, b.args)
    );
    if (!binding) {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    void commands.execute(binding.command, binding.args);
  };
  document.addEventListener('keydown', onKeydown, true);
  return new DisposableDelegate(() => document.removeEventListener('keydown', onKeydown, true));
}
