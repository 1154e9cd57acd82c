// Reconnect delays (seed 002 §2.6: 1 s, 2 s, 4 s, 8 s, 16 s, 30 s at most,
// exponential with jitter). "Equal jitter": half of each step is fixed,
// half random, so a pool restart does not bring every client back in the
// same instant, yet no client waits much less than the schedule says.

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 30_000 };

/** The step of `attempt` (0 = first retry) before jitter: base * 2^attempt, capped. */
export function backoffStep(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  const exp = Math.min(Math.max(attempt, 0), 30);
  return Math.min(policy.maxMs, policy.baseMs * 2 ** exp);
}

/** The delay before reconnect `attempt`: in [step/2, step). */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const step = backoffStep(attempt, policy);
  const r = Math.min(Math.max(random(), 0), 0.999999);
  return Math.floor(step / 2 + (step / 2) * r);
}
