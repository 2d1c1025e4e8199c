/**
 * What a cell's source may do to the kernel's CodeGemma side, read from its text (pure: the Jest
 * tests check it); `refresh.ts` asks the kernel again after such cells.
 */

/** Whether a cell's source may change the kernel's CodeGemma state. */
export function mentionsCodeGemma(source: string): boolean {
  return /codegemma/i.test(source);
}

/**
 * Whether a cell's source may change the model the kernel runs (or whether it has one): loading
 * the extension, `%codegemma load`/`use`/`set`, `%config CodeGemma...`, `%%codegemma --model`.
 */
export function changesModel(source: string): boolean {
  return (
    /%codegemma[ \t]+(load|use|set)\b/i.test(source) ||
    /%config[ \t]+CodeGemma\b/.test(source) ||
    /^[ \t]*%%codegemma\b[^\n]*--model\b/m.test(source) ||
    /\b(load_ext|reload_ext|load_extension)\b[^\n]*jupyter_codegemma/.test(source)
  );
}
