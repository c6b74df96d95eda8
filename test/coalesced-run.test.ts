import { CoalescedRun } from '../lib/agent/coalesced-run';

/** A step that records when it ran (fake time) and can be held open to see asks during a run. */
function recorder() {
  const runs: number[] = [];
  let release: (() => void) | undefined;
  let hold = false;
  const step = async () => {
    runs.push(Date.now());
    if (hold) await new Promise<void>((r) => (release = r));
  };
  return { runs, step, holdNext: () => (hold = true), release: () => { hold = false; release?.(); } };
}

beforeEach(() => jest.useFakeTimers({ now: 0 }));
afterEach(() => jest.useRealTimers());

test('asks for later runs are served by the earliest one: a burst is one run', async () => {
  const r = recorder();
  const run = new CoalescedRun(r.step);
  run.requestWithin(5000);
  run.requestWithin(1000);
  run.requestWithin(3000);
  expect(run.nextRunAt).toBe(1000);
  await jest.advanceTimersByTimeAsync(10_000);
  expect(r.runs).toEqual([1000]);
});

test('an ask for now runs at once and replaces a later time', async () => {
  const r = recorder();
  const run = new CoalescedRun(r.step);
  run.requestWithin(2000);
  await jest.advanceTimersByTimeAsync(500);
  run.request();
  await jest.advanceTimersByTimeAsync(5000);
  expect(r.runs).toEqual([500]);
});

test('asks during a run make exactly one more run after it', async () => {
  const r = recorder();
  const run = new CoalescedRun(r.step);
  r.holdNext();
  run.request();
  await jest.advanceTimersByTimeAsync(100);
  run.request();
  run.request();
  run.request();
  expect(run.running).toBe(true);
  await jest.advanceTimersByTimeAsync(100);
  r.release();
  await jest.advanceTimersByTimeAsync(100);
  expect(r.runs).toEqual([0, 200]);
});

test('with an idle period, a run follows each run within it, and any ask brings it forward', async () => {
  const r = recorder();
  const run = new CoalescedRun(r.step, 10_000);
  run.request();
  await jest.advanceTimersByTimeAsync(25_000);
  expect(r.runs).toEqual([0, 10_000, 20_000]);
  run.requestWithin(1000);
  await jest.advanceTimersByTimeAsync(1000);
  expect(r.runs).toEqual([0, 10_000, 20_000, 26_000]);
  run.stop();
  await jest.advanceTimersByTimeAsync(60_000);
  expect(r.runs).toHaveLength(4);
});
