import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay, backoffStep } from "../src/client/backoff.js";

test("reconnect steps follow seed §2.6: 1, 2, 4, 8, 16, then 30 s at most", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 40].map((n) => backoffStep(n)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test("each delay is jittered within [step/2, step)", () => {
  for (let attempt = 0; attempt < 8; attempt++) {
    const step = backoffStep(attempt);
    assert.equal(backoffDelay(attempt, undefined, () => 0), step / 2);
    assert.ok(backoffDelay(attempt, undefined, () => 0.9999999) < step);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt);
      assert.ok(d >= step / 2 && d < step, `${d} for step ${step}`);
    }
  }
});

test("jitter spreads clients apart", () => {
  const delays = new Set(Array.from({ length: 100 }, () => backoffDelay(3)));
  assert.ok(delays.size > 50, `only ${delays.size} distinct delays`);
});
