/**
 * A notebook whose AI policy switches completions and generation off and caps the hints at level 1 (issue
 * 17), in a real JupyterLab on the "CodeGemma (JAX)" kernel with the default model: no ghost text, the
 * `%%codegemma` cell refuses in one line, the hint ladder stops at level 1; the teacher's command removes
 * the policy and all of it comes back. The notebook (policy in its metadata, as a teacher hands it out) is
 * written by tests/test_labextension.py.
 */

import { expect, test } from '@playwright/test';

import { ExerciseWidget } from './exerciseWidget';
import { Lab, useLabHooks } from './lab';

useLabHooks(test, /codegemma|policy/i);

const REFUSAL = "codegemma: %%codegemma is switched off by this notebook's policy.";

test('a notebook policy switches ghost text, %%codegemma and high hints off; removing it restores them', async ({
  page
}) => {
  test.setTimeout(420_000);
  const lab = new Lab(page);
  await lab.openNotebook('policy.ipynb');
  // The kernel holds the notebook's policy (sent when the comm opened) and the status bar says so.
  await expect(lab.status).toHaveText(
    /· off · policy: completions off, generation off, hints up to level 1$/,
    { timeout: 120_000 }
  );
  await expect(lab.status).toHaveAttribute('title', /switched off by this notebook's policy/);

  // No ghost text: the provider asks nothing (and the kernel would refuse).
  await lab.editCell(1);
  await lab.type('print(greet(');
  await page.waitForTimeout(4_000);
  await expect(lab.ghost).toHaveCount(0);

  // %%codegemma refuses in one line.
  await lab.runCell(2);
  expect(await lab.outputText(2)).toBe(REFUSAL);

  // The hint ladder stops at level 1.
  await lab.runCell(3);
  const exercise = new ExerciseWidget(page, lab.cell(3).locator('.codegemma-exercise'));
  await expect(exercise.content).toBeVisible({ timeout: 60_000 });
  const hints = lab.cell(3).locator('.codegemma-hints');
  for (let press = 0; press < 3; press++) {
    await exercise.button('Hint').click();
  }
  await expect(hints).toContainText("Hints beyond level 1 are switched off by this notebook's policy");
  await expect(hints).toContainText('Hint 1');
  await expect(hints).not.toContainText('Hint 2');
  await lab.screenshot('policy.png');

  // The teacher's command removes the policy (a student deleting the metadata does the same, on record).
  await lab.runFromPalette('Set notebook AI policy…');
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.locator('input[type="checkbox"]').first()).not.toBeChecked(); // completions: off now
  await dialog.getByRole('button', { name: 'Remove policy' }).click();
  await expect(lab.status).not.toHaveText(/policy/, { timeout: 60_000 });

  // Ghost text again, once the model has loaded.
  await lab.waitForModel();
  await lab.editCell(1);
  await page.keyboard.press('Backspace');
  await lab.type('(');
  await expect(lab.ghost.first()).toHaveText(/\S/, { timeout: 120_000 });

  // The next hint level is there again.
  await exercise.button('Hint').click();
  await expect(hints).toContainText('Hint 2');

  // And %%codegemma answers (a few tokens: the model's words are not the point).
  await lab.runCell(2);
  const output = await lab.outputText(2);
  expect(output).not.toContain('switched off');
  expect(output).toMatch(/codegemma: \d+ tokens/);
});
