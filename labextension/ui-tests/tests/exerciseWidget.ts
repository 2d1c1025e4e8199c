/**
 * A page object for the exercise widget in a notebook's output: its code editor (the labextension's
 * CodeMirror view), its buttons and what it says.
 */

import { expect, Locator, Page } from '@playwright/test';

export class ExerciseWidget {
  constructor(
    readonly page: Page,
    readonly root: Locator
  ) {}

  /** The code editor's view (the ipywidget's element). */
  get editor(): Locator {
    return this.root.locator('.jp-CodeGemmaEditor');
  }

  /** The editable text, which carries the accessible name. */
  get content(): Locator {
    return this.editor.locator('.cm-content');
  }

  line(number: number): Locator {
    return this.content.locator('.cm-line').nth(number - 1);
  }

  /** The lines marked as the last Check's error. */
  get errorLines(): Locator {
    return this.content.locator('.cm-line.jp-CodeGemmaEditor-errorLine');
  }

  /** The marker in the gutter (the gutter also holds a hidden one that keeps its width). */
  get gutterMarker(): Locator {
    return this.editor.locator('.jp-CodeGemmaEditor-errorMarker').filter({ visible: true });
  }

  get caret(): Locator {
    return this.editor.locator('.jp-CodeGemmaEditor-caret');
  }

  /** What Check said (a syntax error, failing tests, or solved). */
  get status(): Locator {
    return this.root.locator('[role="alert"], [role="status"]').first();
  }

  /** A button by its label (its accessible name also holds the icon's glyph, so the label ends it). */
  button(label: string): Locator {
    return this.root.getByRole('button', { name: new RegExp(`${label}$`) });
  }

  /** Put the cursor at the end of a line, as a student clicking into it would. */
  async clickEndOf(line: number): Promise<void> {
    await this.line(line).click();
    await this.page.keyboard.press('End');
  }

  async type(text: string): Promise<void> {
    await this.page.keyboard.type(text, { delay: 60 });
  }

  async check(): Promise<void> {
    await this.button('Check').click();
  }

  /** The editor's text, line by line. */
  async text(): Promise<string> {
    return (await this.content.locator('.cm-line').allTextContents()).join('\n');
  }

  /** The colour of a word as the syntax highlighting draws it (and of the text around it). */
  async colours(line: number, word: string): Promise<{ word: string | null; text: string }> {
    return this.line(line).evaluate((element, word) => {
      const token = Array.from(element.querySelectorAll('span')).find(span => span.textContent === word);
      return {
        word: token ? getComputedStyle(token).color : null,
        text: getComputedStyle(element).color
      };
    }, word);
  }

  async expectSolved(): Promise<void> {
    await expect(this.root.getByRole('status').filter({ hasText: 'Solved' })).toBeVisible({ timeout: 60_000 });
  }
}
