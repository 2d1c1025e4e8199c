/**
 * The exercise widget with the labextension's code editor, in a real JupyterLab on the
 * "CodeGemma (JAX)" kernel. The notebook is written by tests/test_labextension.py.
 */

import { expect, test } from '@playwright/test';

import { ExerciseWidget } from './exerciseWidget';
import { Lab, useLabHooks } from './lab';

useLabHooks(test, /codegemma|widget/i);

test('an exercise in a CodeMirror editor: a wrong fix is marked on its line, the right one is solved', async ({
  page
}) => {
  const lab = new Lab(page);
  await lab.openNotebook('exercise.ipynb');
  await lab.waitForModel(); // the kernel has loaded the extension (and so the %exercise magic)
  await lab.runCell(0); // %exercise --category missing_colon --difficulty 1 --editor codemirror
  const exercise = new ExerciseWidget(page, lab.cell(0).locator('.codegemma-exercise'));

  // The labextension's view, labelled for screen readers, with the broken code highlighted as Python.
  await expect(exercise.content).toBeVisible({ timeout: 60_000 });
  await expect(exercise.content).toHaveAttribute('aria-label', 'Your code: fix the syntax error');
  await expect.poll(() => exercise.text()).toBe('temperature = 30\nif temperature > 25\n    weather = "hot"\n');
  await expect
    .poll(async () => {
      const { word, text } = await exercise.colours(2, 'if');
      return word !== null && word !== text;
    }, { message: 'the keyword "if" is drawn in its own colour' })
    .toBe(true);
  await expect(exercise.errorLines).toHaveCount(0); // nothing is marked before a Check

  const cells = await lab.cells().count();

  // A wrong fix: a semicolon where the colon belongs.
  await exercise.clickEndOf(2);
  await exercise.type(';');
  await exercise.check();
  await expect(exercise.status).toContainText('Syntax error on line 2');
  await expect(exercise.errorLines).toHaveCount(1);
  await expect(exercise.errorLines).toHaveText('if temperature > 25;');
  await expect(exercise.gutterMarker).toHaveAttribute('aria-label', 'Syntax error on this line');
  await expect(exercise.caret).toHaveCount(1);
  // The notebook's own shortcuts stayed out of the way while typing in the widget: no cell added.
  await expect(lab.cells()).toHaveCount(cells);
  await lab.screenshot('exercise.png', lab.cell(0));

  // The right fix.
  await exercise.clickEndOf(2);
  await page.keyboard.press('Backspace');
  await exercise.type(':');
  await expect.poll(() => exercise.text()).toBe('temperature = 30\nif temperature > 25:\n    weather = "hot"\n');
  await exercise.check();
  await exercise.expectSolved();
  await expect(exercise.errorLines).toHaveCount(0);
  await expect(exercise.root).toContainText('solved ✓');
});
