/**
 * A model's answer is never live HTML in JupyterLab (issue 19).
 *
 * JupyterLab renders the Markdown outputs of cells run in the session as trusted and unsanitized, so
 * an answer written into a `text/markdown` output as it came would run script in the page. Here a
 * loopback fake OpenAI-compatible server (tests/fake_llm_server.py, started by
 * tests/test_labextension.py::test_browser_untrusted_output and passed in as CODEGEMMA_FAKE_LLM_URL)
 * answers `%%codegemma --chat` and `%codegemma explain`, for a base model (prompts as text to
 * /v1/completions) and an instruction model (/v1/chat/completions), with the payloads: an `<img>`
 * whose src cannot load and whose onerror sets a `window` marker, a `<script>` that sets one, and
 * `javascript:` links that set one when clicked (a Markdown link, and an HTML anchor). The test
 * clicks the links.
 * Nothing may run (the markers stay unset), nothing may be fetched from the image's URL, no window
 * may open, and the answer shows the payloads as text. Then `%codegemma fix` (issue 20): its diff is
 * coloured (added lines green, removed red) and a payload in the proposal is text.
 *
 * The control: the same text displayed as a raw `text/markdown` output in the same page is live: the
 * image is fetched and its onerror runs, the script runs, the anchor's script runs when clicked, and
 * the Markdown link is a live `javascript:` anchor (JupyterLab gives links it does not own
 * target="_blank", and Chromium opens an empty window for it rather than running it). So the checks
 * above would catch a kernel that wrote model text into Markdown as it came.
 *
 * The notebook runs on a plain Python kernel that loads the extension and uses the fake server:
 * the "CodeGemma (JAX)" kernel would start loading the local default model as soon as it opened.
 */

import { expect, Locator, Page, Request, test } from '@playwright/test';

import { Lab, useLabHooks } from './lab';

const FAKE_LLM = process.env.CODEGEMMA_FAKE_LLM_URL;
const PACKAGE_DIR = process.env.CODEGEMMA_PACKAGE_DIR;
const NOTEBOOK = 'untrusted-output.ipynb';
// The models the fake server lists (tests/fake_llm_server.py): the first is the one `use URL` picks.
const BASE_MODEL = 'gemma-3-270m';
const INSTRUCTION_MODEL = 'gemma-3-270m-it';
const QUESTION = 'How do I show an image in a notebook?';

// Port 9 (discard) on loopback: nothing listens, so the image fails at once and onerror fires.
const IMAGE_URL = 'http://127.0.0.1:9/codegemma-payload.png';
const MARKERS = ['cgImg', 'cgScript', 'cgLink', 'cgAnchor'] as const;
const LINK_TEXT = 'Run the fix';
const ANCHOR_TEXT = 'Open the docs';
const ANCHOR = `<a href="javascript:void(window.cgAnchor=1)" target="_self">${ANCHOR_TEXT}</a>`;
const PAYLOAD = [
  'Here is what the code does.',
  '',
  `<img src="${IMAGE_URL}" onerror="window.cgImg = 1">`,
  '',
  '<script>window.cgScript = 1</script>',
  '',
  `[${LINK_TEXT}](javascript:void(window.cgLink=1))`,
  '',
  ANCHOR,
  ''
].join('\n');

// `%codegemma fix` (issue 20): the proposal as a diff, its added lines green and removed lines red,
// a payload in it shown as text. The control: the same diff as a ```diff block, as JupyterLab
// highlights it itself (its theme gives those lines no colour: the kernel writes its own HTML).
const FIX_LINE = 'print(numbers[2])  # <img src=x onerror="window.cgFix = 1">';
const FIX_ANSWER = ['```python', 'numbers = [3, 1, 2]', FIX_LINE, '```'].join('\n');
const FIX_DIFF_MARKDOWN = ['```diff', ' numbers = [3, 1, 2]', '-numbers[5]', `+${FIX_LINE}`, '```'].join('\n');

test.skip(
  !FAKE_LLM,
  'needs the fake model server: run through tests/test_labextension.py::test_browser_untrusted_output'
);

useLabHooks(test);

function notebook(sources: string[]): object {
  return {
    cells: sources.map((source, i) => ({
      cell_type: 'code',
      execution_count: null,
      id: `c${i}`,
      metadata: {},
      outputs: [],
      source
    })),
    metadata: {
      kernelspec: { name: 'python3', display_name: 'Python 3 (ipykernel)', language: 'python' },
      language_info: { name: 'python' }
    },
    nbformat: 4,
    nbformat_minor: 5
  };
}

/** Write a notebook into the server's directory through its contents API. */
async function putNotebook(page: Page, name: string, content: object): Promise<void> {
  await page.request.get('lab'); // the page sets the _xsrf cookie the API wants echoed
  const xsrf = (await page.context().cookies()).find(cookie => cookie.name === '_xsrf')?.value ?? '';
  const response = await page.request.put(`api/contents/${name}`, {
    headers: { 'X-XSRFToken': xsrf },
    data: { type: 'notebook', format: 'json', content }
  });
  expect(response.ok(), `PUT api/contents/${name}: ${response.status()}`).toBe(true);
}

/** The colour of the element that holds each line of the first `<pre>` in `output`, by line. */
async function lineColours(output: Locator): Promise<Record<string, string>> {
  return output.locator('pre').first().evaluate(pre => {
    const colours: Record<string, string> = {};
    const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const line of (node.textContent ?? '').split('\n')) {
        if (line.trim()) {
          colours[line] = getComputedStyle(node.parentElement as Element).color;
        }
      }
    }
    return colours;
  });
}

/** Whether an `rgb(r, g, b)` colour is mostly green, or mostly red. */
function hue(colour: string): 'green' | 'red' | 'other' {
  const [r, g, b] = (colour.match(/\d+/g) ?? []).map(Number);
  return g > r + 40 && g >= b ? 'green' : r > g + 40 && r > b + 40 ? 'red' : 'other';
}

async function markers(page: Page): Promise<Record<string, unknown>> {
  return page.evaluate(
    names => Object.fromEntries(names.map(name => [name, (window as any)[name] ?? null])),
    [...MARKERS]
  );
}

const UNSET = Object.fromEntries(MARKERS.map(name => [name, null]));

test('model answers show HTML and javascript: links as text; the same raw Markdown runs', async ({ page }) => {
  // Every request the page makes for the payload's image (the control below shows one is seen).
  const imageRequests: string[] = [];
  page.on('request', (request: Request) => {
    if (request.url().startsWith('http://127.0.0.1:9')) {
      imageRequests.push(request.url());
    }
  });
  const popups: string[] = [];
  page.context().on('page', popup => popups.push(popup.url()));

  const answer = await page.request.post(`${FAKE_LLM}/test/answer`, { data: { text: PAYLOAD } });
  expect(answer.ok()).toBe(true);
  await putNotebook(
    page,
    NOTEBOOK,
    notebook([
      'import jupyter_codegemma\nprint(jupyter_codegemma.__file__)\n' +
        `%load_ext jupyter_codegemma\n%codegemma use ${FAKE_LLM}`,
      `%%codegemma --chat\n${QUESTION}`,
      'numbers = [3, 1, 2]\nnumbers[5]',
      '%codegemma explain',
      `%codegemma use ${FAKE_LLM} --model ${INSTRUCTION_MODEL}`,
      `%%codegemma --chat\n${QUESTION}`,
      '%codegemma explain',
      `from IPython.display import display\ndisplay({'text/markdown': ${JSON.stringify(PAYLOAD)}}, raw=True)`,
      '%codegemma fix',
      `display({'text/markdown': ${JSON.stringify(FIX_DIFF_MARKDOWN)}}, raw=True)`
    ])
  );

  const lab = new Lab(page);
  await lab.openNotebook(NOTEBOOK);
  await lab.runCell(0);
  const setup = await lab.outputText(0);
  // The kernel runs this checkout's code (the fix is kernel-side), and talks to the fake server.
  if (PACKAGE_DIR) {
    expect(setup).toContain(`${PACKAGE_DIR}/__init__.py`);
  }
  expect(setup).toContain(`codegemma: using ${BASE_MODEL} on the server at`);

  /** Run the cell, then check its Markdown answer: nothing ran or was fetched, nothing is live, the
   * payloads show as text, and clicking the "links" runs nothing. */
  async function expectInert(index: number, what: string): Promise<void> {
    await lab.runCell(index);
    const cell = lab.cell(index);
    await expect(cell.locator('.jp-OutputArea')).toContainText(/codegemma: \d+ tokens/);
    const answer = cell.locator('.jp-RenderedMarkdown').filter({ hasText: 'Here is what the code does.' });
    await expect(answer, `${what}: one Markdown answer`).toHaveCount(1);
    // The control below sets its markers and fetches the image well within this time.
    await page.waitForTimeout(2_000);
    expect(await markers(page), `${what}: no payload ran`).toEqual(UNSET);
    expect(imageRequests, `${what}: nothing was fetched from the payload's URL`).toEqual([]);
    // Nothing in it is markup ...
    await expect(answer.locator('img'), `${what}: no <img>`).toHaveCount(0);
    await expect(answer.locator('script'), `${what}: no <script>`).toHaveCount(0);
    await expect(answer.locator('a[href^="javascript:" i]'), `${what}: no javascript: link`).toHaveCount(0);
    // ... the text is shown as text, in the answer itself (not only in the collapsed context section,
    // which holds the earlier answers of the chat as a code block) ...
    const shown = await answer.evaluate(element =>
      Array.from(element.children)
        .filter(child => child.tagName !== 'DETAILS')
        .map(child => (child as HTMLElement).innerText)
        .join('\n')
    );
    for (const text of [
      `<img src="${IMAGE_URL}" onerror="window.cgImg = 1">`,
      '<script>window.cgScript = 1</script>',
      `[${LINK_TEXT}](javascript:void(window.cgLink=1))`,
      ANCHOR
    ]) {
      expect(shown, `${what}: shown as text`).toContain(text);
    }
    // ... and a reader who clicks the "links" (in the answer's own paragraphs) runs nothing.
    await answer.locator(':scope > p').filter({ hasText: LINK_TEXT }).click();
    await answer.locator(':scope > p').filter({ hasText: ANCHOR_TEXT }).click();
    await page.waitForTimeout(1_000);
    expect(await markers(page), `${what}: no link ran`).toEqual(UNSET);
    expect(popups, `${what}: no window was opened`).toEqual([]);
  }

  // A base model: its prompts are text for /v1/completions.
  await expectInert(1, `%%codegemma --chat (${BASE_MODEL})`);
  await lab.runCell(2); // IndexError: the failure %codegemma explain explains
  await expect(lab.cell(2).locator('.jp-OutputArea')).toContainText('IndexError');
  await expectInert(3, `%codegemma explain (${BASE_MODEL})`);
  // An instruction model: its chats (explain too) go to /v1/chat/completions.
  await lab.runCell(4);
  expect(await lab.outputText(4)).toContain(`codegemma: using ${INSTRUCTION_MODEL} on the server at`);
  await expectInert(5, `%%codegemma --chat (${INSTRUCTION_MODEL})`);
  await expectInert(6, `%codegemma explain (${INSTRUCTION_MODEL})`);

  // Every answer came from the fake server, through the kernel's chat and explain prompts.
  type Asked = { route: string; model: string; prompt?: string; messages?: { content: string }[] };
  const asked = (await (await page.request.get(`${FAKE_LLM}/test/requests`)).json()) as Asked[];
  const text = (request: Asked) => request.prompt ?? (request.messages ?? []).map(m => m.content).join('\n');
  const sent = (route: string, model: string, ...parts: string[]) =>
    asked.some(r => r.route === route && r.model === model && parts.every(part => text(r).includes(part)));
  expect(sent('completions', BASE_MODEL, QUESTION, 'Assistant:'), 'the base model\'s chat prompt').toBe(true);
  expect(sent('completions', BASE_MODEL, 'IndexError', 'Explanation of the error'), 'its explain prompt').toBe(true);
  expect(sent('chat', INSTRUCTION_MODEL, QUESTION), 'the instruction model\'s chat').toBe(true);
  expect(sent('chat', INSTRUCTION_MODEL, 'IndexError', 'raised an exception'), 'its explain chat').toBe(true);

  // The control: the same text as a raw text/markdown output is live in this JupyterLab.
  await lab.runCell(7);
  const raw = lab.cell(7).locator('.jp-RenderedMarkdown');
  await expect(raw).toContainText('Here is what the code does.');
  await expect(raw.locator(`img[src="${IMAGE_URL}"]`)).toHaveCount(1);
  await expect.poll(() => markers(page).then(m => m.cgImg), { message: 'the raw <img> onerror ran' }).toBe(1);
  await expect.poll(() => markers(page).then(m => m.cgScript), { message: 'the raw <script> ran' }).toBe(1);
  await expect
    .poll(() => imageRequests.length, { message: "the raw <img> fetched the payload's URL" })
    .toBeGreaterThan(0);
  await raw.getByRole('link', { name: ANCHOR_TEXT }).click();
  await expect.poll(() => markers(page).then(m => m.cgAnchor), { message: 'the raw javascript: anchor ran' }).toBe(1);
  const link = raw.getByRole('link', { name: LINK_TEXT });
  await expect(link, 'the raw Markdown link is a javascript: anchor').toHaveAttribute('href', /^javascript:/);
  await link.click();
  await expect
    .poll(async () => (await markers(page)).cgLink === 1 || popups.length > 0, {
      message: 'clicking the raw javascript: link ran it or opened a window'
    })
    .toBe(true);

  // %codegemma fix of cell 2's IndexError (the instruction model answers with a fenced cell).
  expect((await page.request.post(`${FAKE_LLM}/test/answer`, { data: { text: FIX_ANSWER } })).ok()).toBe(true);
  await lab.runCell(8);
  const fix = lab.cell(8).locator('.jp-RenderedMarkdown').filter({ hasText: 'Proposed fix for' });
  await expect(fix).toContainText(`+${FIX_LINE}`);
  await expect(fix.locator('img'), 'the fix: no <img>').toHaveCount(0);
  const colours = await lineColours(fix);
  const context = colours[' numbers = [3, 1, 2]'];
  expect(hue(colours[`+${FIX_LINE}`]), `the added line is green: ${JSON.stringify(colours)}`).toBe('green');
  expect(hue(colours['-numbers[5]']), `the removed line is red: ${JSON.stringify(colours)}`).toBe('red');
  expect(hue(context), `the unchanged line keeps the text colour: ${JSON.stringify(colours)}`).toBe('other');
  const fixRan = () => page.evaluate(() => (window as any).cgFix ?? null);
  expect(await fixRan(), 'the fix: no payload ran').toBeNull();
  // The control, reported (not asserted: a later JupyterLab may colour it itself).
  await lab.runCell(9);
  const own = await lineColours(lab.cell(9).locator('.jp-RenderedMarkdown'));
  console.log(`JupyterLab's own \`\`\`diff highlighting: ${JSON.stringify(own)}`);
  expect(await fixRan(), 'the control: its payload is in a code block').toBeNull();
  await lab.screenshot('fix-diff.png', lab.cell(8));
  await lab.screenshot('fix-diff-jupyterlab.png', lab.cell(9));
});
