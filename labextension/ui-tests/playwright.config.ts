/**
 * Browser tests against a real JupyterLab with the real kernel and the default model.
 *
 * The server is started by the caller (tests/test_labextension.py) on a free port, token-less,
 * with a temporary notebook directory, and passed in as CODEGEMMA_LAB_URL. The browser is Debian's
 * chromium (make setup installs it): Playwright's own browser download is not used.
 */

import { defineConfig } from '@playwright/test';

const baseURL = process.env.CODEGEMMA_LAB_URL;
if (!baseURL) {
  throw new Error(
    'CODEGEMMA_LAB_URL is not set: these tests expect a running JupyterLab. ' +
      'Run them through `make test` or `pytest tests/test_labextension.py`, which start one.'
  );
}

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results/output',
  // One JupyterLab, one kernel at a time: the model loads in each notebook's kernel.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  timeout: 240_000,
  expect: { timeout: 60_000 },
  reporter: [['list']],
  use: {
    baseURL,
    browserName: 'chromium',
    viewport: { width: 1280, height: 800 },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CODEGEMMA_CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync'
      ]
    }
  }
});
