/**
 * The status bar item follows the engine's real state, and the palette's commands leave the notebook
 * as a user expects (issue 20). A real JupyterLab, the real kernels and the default model; the
 * notebooks are written by tests/test_labextension.py.
 *
 * - busy while a completion is in flight, ready once it is answered, and ready in the kernel too
 *   (`%codegemma status` run straight after typing);
 * - a failed `%codegemma load` keeps the model: the item stays ready (the title says what was kept),
 *   and ghost text still comes; a completion that failed on a bad model setting shows error until a
 *   good `%codegemma load`;
 * - error (no model loaded) -> ready after a good `%codegemma load`;
 * - the palette's "Generate code with CodeGemma" leaves the cursor in the new cell, in edit mode;
 * - "Enable CodeGemma in this kernel" is not offered where CodeGemma is loaded already.
 */

import { expect, Page, test } from '@playwright/test';

import { Lab, useLabHooks } from './lab';

useLabHooks(test);

/** From now on, keep every state the status item shows (its data-state), in order. */
async function recordStates(page: Page): Promise<void> {
  await page.evaluate(() => {
    const node = document.querySelector('.jp-CodeGemmaStatus') as HTMLElement;
    const seen: string[] = [node.dataset.state ?? ''];
    (window as unknown as { cgStates: string[] }).cgStates = seen;
    new MutationObserver(() => {
      const state = node.dataset.state ?? '';
      if (seen[seen.length - 1] !== state) {
        seen.push(state);
      }
    }).observe(node, { attributes: true, attributeFilter: ['data-state'] });
  });
}

async function states(page: Page): Promise<string[]> {
  return page.evaluate(() => [...(window as unknown as { cgStates: string[] }).cgStates]);
}

/** The value `%codegemma status` printed for `key` in cell `index`. */
async function statusLine(lab: Lab, index: number, key: string): Promise<string> {
  const output = await lab.outputText(index);
  const line = output.split('\n').find(text => text.startsWith(key + ' '));
  return line?.slice(key.length).trim() ?? `(no ${key} line in: ${output})`;
}

test('the status item is busy while a completion runs and ready after it, in the kernel too', async ({
  page
}) => {
  const lab = new Lab(page);
  await lab.openNotebook('status.ipynb');
  await lab.waitForModel();
  await recordStates(page);

  await lab.editCell(1);
  await lab.type('print(greet(');
  await expect(lab.ghost.first()).toHaveText(/\S/, { timeout: 60_000 });
  await expect(lab.status).toHaveText(/ready · \d+ ms$/, { timeout: 60_000 });
  const seen = await states(page);
  expect(seen).toContain('busy');
  expect(seen[seen.length - 1]).toBe('ready');
  // ... and it stays ready: nothing left says busy once the answer came.
  await page.waitForTimeout(3_000);
  await expect(lab.status).toHaveAttribute('data-state', 'ready');
  // The model's name is the same one while loading and once loaded.
  await expect(lab.status).toHaveText(/^CodeGemma: Gemma 3 270M · /);

  // Typing a cell sends completions; running it straight after finds the model ready, not busy.
  await page.keyboard.press('Escape');
  await page.keyboard.press('b');
  await page.keyboard.press('Enter');
  await lab.type('%codegemma status');
  await page.keyboard.press('Shift+Enter');
  await expect(lab.cell(2).locator('.jp-InputArea-prompt')).toHaveText(/\[\d+\]/, { timeout: 120_000 });
  expect(await statusLine(lab, 2, 'state')).toBe('ready');
  expect(await statusLine(lab, 2, 'model')).toBe('Gemma 3 270M');
  await expect(lab.status).toHaveAttribute('data-state', 'ready');
});

test('a failed %codegemma load keeps the model answering; a failed completion\'s error goes with a good load', async ({
  page
}) => {
  const lab = new Lab(page);
  await lab.openNotebook('bad-load.ipynb');
  await lab.waitForModel();
  await lab.runCell(1); // %codegemma load /nonexistent.gguf
  const said = await lab.outputText(1);
  expect(said).toContain('/nonexistent.gguf');
  expect(said).toContain('still using Gemma 3 270M');
  await expect(lab.status).toHaveAttribute('data-state', 'ready');
  await expect(lab.status).toHaveAttribute('title', /kept Gemma 3 270M/);

  await lab.editCell(2);
  await lab.type('print(greet(');
  await expect(lab.ghost.first()).toHaveText(/\S/, { timeout: 60_000 });
  await expect(lab.status).toHaveText(/ready · \d+ ms$/, { timeout: 60_000 });

  // A bad path in the settings: the next completion tries it, fails (the kernel keeps the model
  // and goes back to it) and the item says error ...
  await lab.runCell(3); // %codegemma set model=/nonexistent.gguf
  const failed = page.waitForEvent('console', message => /completion failed \(model_error\)/.test(message.text()));
  await lab.editCell(2);
  await page.keyboard.press('Enter');
  await lab.type('print(');
  await failed;
  await expect(lab.status).toHaveAttribute('data-state', 'error');
  await expect(lab.status).toHaveAttribute('title', /model_error: .*still using Gemma 3 270M/);
  // ... until a good load: not "error" any more.
  await lab.runCell(4); // %codegemma load
  expect(await lab.outputText(4)).toContain('loaded Gemma 3 270');
  await expect(lab.status).toHaveAttribute('data-state', 'ready');
  await expect(lab.status).not.toHaveText(/error/);
});

test('error -> ready: a good %codegemma load after a failed one, with no model before', async ({ page }) => {
  const lab = new Lab(page);
  // A plain Python kernel: nothing loads a model before the cells say which.
  await lab.openNotebook('load-error.ipynb');
  await expect(lab.status).toHaveAttribute('data-state', 'off');
  await lab.runCell(0); // %load_ext jupyter_codegemma; %codegemma load /nonexistent.gguf
  expect(await lab.outputText(0)).toContain('/nonexistent.gguf');
  await expect(lab.status).toHaveAttribute('data-state', 'error');
  await expect(lab.status).toHaveText(/· error$/);
  await expect(lab.status).toHaveAttribute('title', /nonexistent\.gguf/);
  // It stays so: asking the status does not make the kernel load anything by itself.
  await page.waitForTimeout(3_000);
  await expect(lab.status).toHaveAttribute('data-state', 'error');

  await lab.runCell(1); // %codegemma load
  expect(await lab.outputText(1)).toContain('loaded Gemma 3 270');
  await expect(lab.status).toHaveAttribute('data-state', 'ready');
  await expect(lab.status).not.toHaveText(/error/);
  await lab.editCell(2);
  await lab.type('print(greet(');
  await expect(lab.ghost.first()).toHaveText(/\S/, { timeout: 60_000 });
  await expect(lab.status).toHaveText(/^CodeGemma: Gemma 3 270M · ready · \d+ ms$/, { timeout: 60_000 });
});

test('the palette\'s "Generate code with CodeGemma" leaves the cursor in the new cell', async ({ page }) => {
  const lab = new Lab(page);
  await lab.openNotebook('palette.ipynb');
  await lab.runFromPalette('Generate code with CodeGemma');
  await expect(lab.cells()).toHaveCount(2);
  await expect(lab.cell(1)).toHaveClass(/jp-mod-active/);
  // Typed straight away: in command mode these letters would be notebook shortcuts
  // (a, b: insert cells; m: markdown; d d: delete; ...).
  const request = 'make a bar chart of the mean by day';
  await lab.type(request);
  await expect.poll(() => lab.cellText(1)).toBe('%%codegemma\n' + request);
  await expect(lab.cells()).toHaveCount(2);
  await expect(lab.notebook).toHaveClass(/jp-mod-editMode/);
});

test('"Enable CodeGemma in this kernel" is offered only where CodeGemma is not loaded', async ({ page }) => {
  const lab = new Lab(page);
  const offered = async (): Promise<number> => {
    await page.keyboard.press('Escape');
    await page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current').click();
    await page.keyboard.press('Control+Shift+C');
    const input = page.locator('#command-palette .lm-CommandPalette-input');
    await input.waitFor();
    await input.fill('CodeGemma');
    await expect(page.locator('#command-palette .lm-CommandPalette-item', { hasText: 'Generate code' })).toHaveCount(1);
    const count = await page
      .locator('#command-palette .lm-CommandPalette-item', { hasText: 'Enable CodeGemma in this kernel' })
      .count();
    await page.keyboard.press('Escape');
    return count;
  };
  await lab.openNotebook('status.ipynb'); // the CodeGemma kernel: loaded already
  await expect(lab.status).toHaveText(/Gemma 3 270M/); // the kernel answered the status
  expect(await offered()).toBe(0);
  await lab.shutDownKernels();

  await lab.openNotebook('palette.ipynb'); // a plain Python kernel
  await expect(lab.status).toHaveAttribute('data-state', 'off');
  expect(await offered()).toBe(1);
});
