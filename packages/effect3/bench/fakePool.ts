/**
 * A pool without the network, for `bench/fake.ts` and `bench/alloc.ts`: every
 * checkout and every query answers on the next turn of the event loop.
 */
import type Pg from "pg"

const fakeClient = {
  processID: 1,
  on() {},
  once() {},
  off() {},
  release() {},
  query(_text: unknown, _params: unknown, callback?: (error: Error | null, result: unknown) => void) {
    const cb = typeof _params === "function" ? _params as typeof callback : callback
    setImmediate(() => cb!(null, { rows: [{ "?column?": 1 }] }))
  }
}

/** Replaces the pool's checkout with the fake client's. */
export const fake = (pool: Pg.Pool): void => {
  ;(pool as unknown as { connect: (cb: (e: undefined, c: unknown, r: () => void) => void) => void }).connect = (cb) =>
    setImmediate(() => cb(undefined, fakeClient, () => {}))
}
