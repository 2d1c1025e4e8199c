/**
 * The extension in a real JupyterLab, with the real "CodeGemma (JAX)" kernel and the default
 * model (Gemma 3 270M). The notebooks are written by tests/test_labextension.py.
 */

import { expect, test } from '@playwright/test';

import { Lab, useLabHooks } from './lab';

useLabHooks(test);

test('ghost text from the kernel, with the cell above in the request; Tab accepts it', async ({ page }) => {
  const lab = new Lab(page);
  await lab.openNotebook('ghost.ipynb');
  await lab.waitForModel();

  await lab.editCell(1);
  await lab.type('print(greet(');
  await expect(lab.ghost.first()).toHaveText(/\S/, { timeout: 60_000 });
  // The suggestion is complete when the kernel's `done` came back: the status shows its latency.
  await expect(lab.status).toHaveText(/ready · \d+ ms/, { timeout: 60_000 });
  const suggestion = await lab.ghostText();
  expect(suggestion.trim()).not.toBe('');
  // The whole window: the ghost text in the cell, and the status bar item with the latency.
  await lab.screenshot('ghost-text.png');

  await page.keyboard.press('Tab');
  // (Accepting is an edit too: a new suggestion may follow, so only the cell's text is checked.)
  await expect.poll(() => lab.cellText(1)).toBe('print(greet(' + suggestion);

  // What did the kernel receive? Switch completions off (so typing the next cell sends nothing),
  // then ask the kernel for the prompt it last ran: it holds the cell above and the typed text.
  await lab.runFromPalette('Toggle CodeGemma completions');
  await expect(lab.status).toHaveText(/off/);
  await lab.cell(1).locator('.jp-InputArea-prompt').click();
  await page.keyboard.press('b');
  await page.keyboard.press('Enter');
  await lab.type('%codegemma debug last-prompt');
  await lab.runCell(2);
  const prompt = await lab.outputText(2);
  expect(prompt).toContain('def greet(name):');
  expect(prompt).toContain('print(greet(');
  await lab.runFromPalette('Toggle CodeGemma completions');
  await expect(lab.status).not.toHaveText(/off/);
});

test('"Generate code with CodeGemma" inserts a %%codegemma cell; running it inserts the code below', async ({
  page
}) => {
  const lab = new Lab(page);
  await lab.openNotebook('generate.ipynb');
  await lab.contextMenu(0, 'Generate code with CodeGemma');
  await expect(lab.cells()).toHaveCount(2);
  await expect(lab.cell(1)).toHaveClass(/jp-mod-active/);
  expect(await lab.cellText(1)).toBe('%%codegemma\n');
  // The cursor is in the new cell, on the line under the magic: type the request straight away.
  await lab.type('a function that returns the squares of a list of numbers');
  // A short answer keeps the test quick: options go on the magic's line.
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('End');
  await lab.type(' --max-new-tokens 48');
  expect(await lab.cellText(1)).toBe(
    '%%codegemma --max-new-tokens 48\na function that returns the squares of a list of numbers'
  );
  // Ctrl+Enter runs the cell in place, so the only new cell is the one the kernel asks for.
  await page.keyboard.press('Control+Enter');
  await expect(lab.cell(1).locator('.jp-InputArea-prompt')).toHaveText(/\[\d+\]/, { timeout: 180_000 });
  await expect(lab.cells()).toHaveCount(3);
  await expect(lab.cell(1).locator('.jp-OutputArea')).toContainText(/not run: read it first/i);
  const code = await lab.cellText(2);
  expect(code.trim()).not.toBe('');
  expect(code).not.toContain('%%codegemma');
  await lab.screenshot('generated-cell.png', lab.notebook);
});

test('no ghost text when the kernel has completions disabled', async ({ page }) => {
  const lab = new Lab(page);
  await lab.openNotebook('disabled.ipynb');
  await lab.waitForModel();
  await lab.runCell(0);
  await lab.runCell(1); // %codegemma disable
  expect(await lab.outputText(1)).toContain('disabled');
  await expect(lab.status).toHaveText(/off/);

  await lab.editCell(2);
  await lab.type('print(greet(');
  // The enabled case above shows ghost text within a few seconds; give it more than that here.
  await page.waitForTimeout(6_000);
  await expect(lab.ghost.filter({ hasText: /\S/ })).toHaveCount(0);
  expect(await lab.cellText(2)).toBe('print(greet(');
});

test('"Enable CodeGemma in this kernel" loads the extension into a plain Python kernel', async ({ page }) => {
  const lab = new Lab(page);
  await lab.openNotebook('plain-python.ipynb');
  // A python3 kernel without the extension closes the comm: the extension stays silent.
  await expect(lab.status).toHaveAttribute('data-state', 'off');
  await lab.runFromPalette('Enable CodeGemma in this kernel');
  await lab.waitForModel();
  await lab.editCell(1);
  await lab.type('print(greet(');
  await expect(lab.ghost.first()).toHaveText(/\S/, { timeout: 60_000 });
  // Loaded silently: no cell ran, nothing was printed.
  await expect(lab.cell(0).locator('.jp-InputArea-prompt')).toHaveText('[ ]:');
});
