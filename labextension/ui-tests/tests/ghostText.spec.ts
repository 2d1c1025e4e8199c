/**
 * Ghost text that behaves like the best editors (issue 17): accepting it a word or a line at a time,
 * typing through it without a new request, and the trigger setting (manual: only the invoke
 * shortcut; never in Markdown cells).
 *
 * The suggestions must be known in advance, so the notebook runs on a plain Python kernel that loads
 * the extension and uses a loopback fake OpenAI-compatible server (tests/fake_llm_server.py, started
 * by tests/test_labextension.py::test_browser_ghost_text and passed in as CODEGEMMA_FAKE_LLM_URL):
 * every completion answers the text the test posts to it, through the kernel's real remote backend,
 * worker and comm. The requests are counted where the issue asks: the `complete` messages the page
 * sends on the kernel's websocket (the comm), read from the frames Chromium sends.
 */

import { expect, Page, test } from '@playwright/test';

import { Lab, useLabHooks } from './lab';

const FAKE_LLM = process.env.CODEGEMMA_FAKE_LLM_URL;
const SETTINGS_URL = 'lab/api/settings/jupyter-codegemma:plugin';

test.skip(!FAKE_LLM, 'needs the fake model server: run through tests/test_labextension.py::test_browser_ghost_text');

useLabHooks(test);

async function xsrfHeaders(page: Page): Promise<Record<string, string>> {
  await page.request.get('lab'); // the page sets the _xsrf cookie the API wants echoed
  const xsrf = (await page.context().cookies()).find(cookie => cookie.name === '_xsrf')?.value ?? '';
  return { 'X-XSRFToken': xsrf };
}

/** Write a notebook (code cells, and Markdown ones given as `{ markdown }`) into the server's directory. */
async function putNotebook(page: Page, name: string, cells: (string | { markdown: string })[]): Promise<void> {
  const content = {
    cells: cells.map((cell, i) =>
      typeof cell === 'string'
        ? { cell_type: 'code', execution_count: null, id: `c${i}`, metadata: {}, outputs: [], source: cell }
        : { cell_type: 'markdown', id: `c${i}`, metadata: {}, source: cell.markdown }
    ),
    metadata: {
      kernelspec: { name: 'python3', display_name: 'Python 3 (ipykernel)', language: 'python' },
      language_info: { name: 'python' }
    },
    nbformat: 4,
    nbformat_minor: 5
  };
  const response = await page.request.put(`api/contents/${name}`, {
    headers: await xsrfHeaders(page),
    data: { type: 'notebook', format: 'json', content }
  });
  expect(response.ok(), `PUT api/contents/${name}: ${response.status()}`).toBe(true);
}

/** Set the extension's user settings (the page reads them when it loads). */
async function putSettings(page: Page, settings: object): Promise<void> {
  const response = await page.request.put(SETTINGS_URL, {
    headers: await xsrfHeaders(page),
    data: { raw: JSON.stringify(settings) }
  });
  expect(response.ok(), `PUT ${SETTINGS_URL}: ${response.status()}`).toBe(true);
}

async function setAnswer(page: Page, text: string): Promise<void> {
  expect((await page.request.post(`${FAKE_LLM}/test/answer`, { data: { text } })).ok()).toBe(true);
}

/**
 * Counts the `complete` requests the page sends to kernels: every frame written on a kernel
 * websocket (JSON text, or the binary v1 protocol whose parts are JSON) that holds a comm message
 * of type `complete`. Start it before the page opens the notebook.
 */
function countCompleteRequests(page: Page): () => number {
  let count = 0;
  page.on('websocket', socket => {
    if (!socket.url().includes('/api/kernels/')) {
      return;
    }
    socket.on('framesent', frame => {
      const text = typeof frame.payload === 'string' ? frame.payload : frame.payload.toString('utf-8');
      if (text.includes('"comm_msg"') && /"type":\s*"complete"/.test(text)) {
        count += 1;
      }
    });
  });
  return () => count;
}

/**
 * The ghost text on show, line breaks included (JupyterLab writes it with `innerText`, so its
 * breaks are <br> elements that `textContent` would drop); '' when there is none.
 */
async function ghostText(lab: Lab): Promise<string> {
  const ghost = lab.notebook.locator('.jp-GhostText:not(.jp-GhostText-lineSpacer):not(.jp-GhostText-letterSpacer)');
  return (await ghost.count()) ? await ghost.first().innerText() : '';
}

/** Open the notebook, load the extension in its kernel with the fake server as the model. */
async function openWithFakeModel(lab: Lab, name: string): Promise<void> {
  await lab.openNotebook(name);
  await lab.runCell(0);
  expect(await lab.outputText(0)).toContain('codegemma: using');
  await lab.waitForModel();
}

const SETUP = () => `%load_ext jupyter_codegemma\n%codegemma use ${FAKE_LLM}`;
const ADD = 'def add(a, b):\n    return a + b';
// Longer than the debounce (200 ms) and the fake server's whole answer: a request would have been sent.
const QUIET_MS = 2_500;

test('accept-next-word, then accept-next-line, build the suggestion into the cell piece by piece', async ({
  page
}) => {
  const completes = countCompleteRequests(page);
  // After a line ending in ':' the kernel completes a block: the suggestion is two lines.
  const suggestion = '\n    total = add(i, 1)\n    print(total)';
  await setAnswer(page, suggestion);
  await putNotebook(page, 'accept-parts.ipynb', [SETUP(), ADD, '']);
  const lab = new Lab(page);
  await openWithFakeModel(lab, 'accept-parts.ipynb');

  const typed = 'for i in range(3):';
  await lab.editCell(2);
  await lab.type(typed);
  await expect.poll(() => ghostText(lab)).toBe(suggestion);
  await expect(lab.status).toHaveText(/ready · \d+ ms/);
  const sent = completes();
  expect(sent).toBeGreaterThan(0);

  // Accel+→ (Ctrl on Linux): the next word, here the line break, the indentation and `total`.
  await page.keyboard.press('Control+ArrowRight');
  await expect.poll(() => lab.cellText(2)).toBe(typed + '\n    total');
  await expect.poll(() => ghostText(lab)).toBe(' = add(i, 1)\n    print(total)');
  await page.keyboard.press('Control+ArrowRight');
  await expect.poll(() => lab.cellText(2)).toBe(typed + '\n    total =');
  // Accel+↓: the rest of the line; the next line stays ghost text.
  await page.keyboard.press('Control+ArrowDown');
  await expect.poll(() => lab.cellText(2)).toBe(typed + '\n    total = add(i, 1)');
  await expect.poll(() => ghostText(lab)).toBe('\n    print(total)');
  // The pieces came from the one suggestion: no model call while accepting them.
  await page.waitForTimeout(QUIET_MS);
  expect(completes()).toBe(sent);
  await expect.poll(() => ghostText(lab)).toBe('\n    print(total)');
  await lab.screenshot('accept-parts.png', lab.notebook);
  await page.keyboard.press('Control+ArrowDown');
  await expect.poll(() => lab.cellText(2)).toBe(typed + suggestion);

  // With no ghost text on show the keys are the editor's: Ctrl+→ moves by word, inserts nothing.
  await page.keyboard.press('Control+Home');
  await expect(lab.ghost.filter({ hasText: /\S/ })).toHaveCount(0);
  await page.keyboard.press('Control+ArrowRight');
  await page.keyboard.press('Control+ArrowDown');
  expect(await lab.cellText(2)).toBe(typed + suggestion);
});

test('typing what the ghost text shows keeps the rest without a request; a mismatch asks once', async ({
  page
}) => {
  const completes = countCompleteRequests(page);
  // Names the cells bind or Python has: the kernel withholds a suggestion that reads a made-up name.
  const suggestion = 'add(1, 2) + sum([3, 4])';
  await setAnswer(page, suggestion);
  await putNotebook(page, 'type-through.ipynb', [SETUP(), ADD, '', { markdown: '' }]);
  const lab = new Lab(page);
  await openWithFakeModel(lab, 'type-through.ipynb');

  await lab.editCell(2);
  await lab.type('result = ');
  await expect.poll(() => ghostText(lab)).toBe(suggestion);
  await expect(lab.status).toHaveText(/ready · \d+ ms/);
  const sent = completes();
  expect(sent).toBeGreaterThan(0);

  // Five characters the ghost text starts with, typed one at a time: it shrinks, nothing is sent.
  for (let n = 1; n <= 5; n++) {
    await page.keyboard.type(suggestion[n - 1]);
    await expect.poll(() => ghostText(lab)).toBe(suggestion.slice(n));
  }
  await page.waitForTimeout(QUIET_MS);
  expect(completes(), 'no complete request while typing through').toBe(sent);
  expect(await ghostText(lab)).toBe(suggestion.slice(5));
  expect(await lab.cellText(2)).toBe('result = ' + suggestion.slice(0, 5));

  // A character the suggestion does not have (it goes on with ", 2)"): the ghost text goes, and
  // exactly one request follows, whose answer is on show.
  await setAnswer(page, ' * 10');
  await page.keyboard.type(')');
  await expect.poll(completes).toBe(sent + 1);
  await page.waitForTimeout(QUIET_MS);
  expect(completes(), 'exactly one complete request after the mismatch').toBe(sent + 1);
  await expect.poll(() => ghostText(lab)).toBe(' * 10');
  expect(await lab.cellText(2)).toBe('result = add(1)');

  // Markdown cells never get ghost text (by default), typed or invoked.
  await page.keyboard.press('Escape');
  await page.keyboard.press('j');
  await page.keyboard.press('Enter');
  await expect(lab.cell(3)).toHaveClass(/jp-MarkdownCell/);
  await lab.type('Notes about add(');
  await page.keyboard.press('Alt+Backslash');
  await page.waitForTimeout(QUIET_MS);
  expect(completes(), 'no complete request from a Markdown cell').toBe(sent + 1);
  await expect(lab.ghost.filter({ hasText: /\S/ })).toHaveCount(0);
});

test('manual trigger: no request while typing, one on the invoke shortcut', async ({ page }) => {
  const completes = countCompleteRequests(page);
  const suggestion = 'add(2, 3)';
  await setAnswer(page, suggestion);
  await putNotebook(page, 'manual.ipynb', [SETUP(), ADD, '']);
  await putSettings(page, { trigger: 'manual' });
  try {
    const lab = new Lab(page);
    await openWithFakeModel(lab, 'manual.ipynb');
    await lab.editCell(2);
    await lab.type('five = ');
    await page.waitForTimeout(QUIET_MS);
    expect(completes(), 'no complete request while typing in manual mode').toBe(0);
    await expect(lab.ghost.filter({ hasText: /\S/ })).toHaveCount(0);

    // JupyterLab's invoke shortcut (Alt+\, inline-completer:invoke) asks.
    await page.keyboard.press('Alt+Backslash');
    await expect.poll(() => ghostText(lab)).toBe(suggestion);
    expect(completes()).toBe(1);
    // Typing through works in manual mode too, still without a request.
    await page.keyboard.type('add(');
    await expect.poll(() => ghostText(lab)).toBe('2, 3)');
    await page.keyboard.press('Tab');
    await expect.poll(() => lab.cellText(2)).toBe('five = add(2, 3)');
    await page.waitForTimeout(QUIET_MS);
    expect(completes()).toBe(1);
  } finally {
    await putSettings(page, {});
  }
});
