/** Streamed suggestions and the request a new keystroke makes stale. */

import { InFlight, Suggestion } from '../src/completion/suggestions';

async function collect(suggestion: Suggestion): Promise<string[]> {
  const texts: string[] = [];
  for await (const text of suggestion.texts()) {
    texts.push(text);
  }
  return texts;
}

describe('Suggestion', () => {
  it('yields each text as it grows and stops when it ends', async () => {
    const suggestion = new Suggestion();
    const reading = collect(suggestion);
    suggestion.update(' x');
    await Promise.resolve();
    await new Promise(resolve => setTimeout(resolve, 0));
    suggestion.update(' x + 1');
    await new Promise(resolve => setTimeout(resolve, 0));
    suggestion.end();
    expect(await reading).toEqual([' x', ' x + 1']);
    expect(suggestion.ended).toBe(true);
  });

  it('coalesces texts that arrive before they are read into the last one', async () => {
    const suggestion = new Suggestion();
    suggestion.update('a');
    suggestion.update('ab');
    suggestion.update('abc');
    suggestion.end();
    expect(await collect(suggestion)).toEqual(['abc']);
  });

  it('serves several readers at once (the ghost text and the one typed through it)', async () => {
    const suggestion = new Suggestion();
    const first = collect(suggestion);
    const second = collect(suggestion);
    await new Promise(resolve => setTimeout(resolve, 0));
    suggestion.update('total');
    await new Promise(resolve => setTimeout(resolve, 0));
    suggestion.update('total = 0');
    suggestion.end();
    expect(await first).toEqual(['total', 'total = 0']);
    expect(await second).toEqual(['total', 'total = 0']);
    expect(suggestion.text).toBe('total = 0');
  });

  it('yields nothing for a request that ends without text (cancelled, error)', async () => {
    const suggestion = new Suggestion();
    suggestion.end();
    expect(await collect(suggestion)).toEqual([]);
  });
});

describe('InFlight', () => {
  it('cancels the request before when the user types again', () => {
    const cancelled: string[] = [];
    const inFlight = new InFlight();
    expect(inFlight.supersede()).toBeNull();
    inFlight.start('r1', () => cancelled.push('r1'));
    expect(inFlight.supersede()).toBe('r1');
    inFlight.start('r2', () => cancelled.push('r2'));
    inFlight.supersede();
    expect(cancelled).toEqual(['r1', 'r2']);
    expect(inFlight.id).toBeNull();
  });

  it('does not cancel a request that has finished', () => {
    const cancelled: string[] = [];
    const inFlight = new InFlight();
    inFlight.start('r1', () => cancelled.push('r1'));
    inFlight.finish('r1');
    expect(inFlight.supersede()).toBeNull();
    expect(cancelled).toEqual([]);
  });

  it('ignores the end of an older request once a newer one is in flight', () => {
    const cancelled: string[] = [];
    const inFlight = new InFlight();
    inFlight.start('r1', () => cancelled.push('r1'));
    inFlight.supersede();
    inFlight.start('r2', () => cancelled.push('r2'));
    inFlight.finish('r1'); // r1's `cancelled` reply arrives late
    expect(inFlight.id).toBe('r2');
    inFlight.supersede();
    expect(cancelled).toEqual(['r1', 'r2']);
  });
});
