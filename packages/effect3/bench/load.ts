/**
 * The Effect 3 line's load generator: the promise-style closed loop and the
 * `Recorder` come from the shared `packages/core/bench/load.ts`; this module
 * adds the fibers harness on Effect 3.
 */
import * as Effect from "effect/Effect"
import { performance } from "node:perf_hooks"
import { type LoadOptions, type LoadResult, Recorder } from "../../core/bench/load.js"

export { type LoadOptions, type LoadResult, percentile, run } from "../../core/bench/load.js"

/**
 * The other harness style: `concurrency` long-lived fibers, each looping over
 * the operation inside one runtime (how statements run inside an Effect
 * application: no `runPromise` per query).
 */
export const runFibers = async (
  runPromise: (effect: Effect.Effect<void>) => Promise<void>,
  operation: () => Effect.Effect<unknown, unknown>,
  options: LoadOptions
): Promise<LoadResult> => {
  const recorder = new Recorder(options)
  const worker: Effect.Effect<void> = Effect.suspend(function loop(): Effect.Effect<void> {
    const t0 = performance.now()
    if (!recorder.begin(t0)) return Effect.void
    return Effect.matchEffect(operation(), {
      onFailure: (error) => recorder.failed(error) ? loop() : Effect.void,
      onSuccess: () => {
        recorder.succeededAt(t0)
        return loop()
      }
    })
  })
  try {
    await runPromise(Effect.all(Array.from({ length: options.concurrency }, () => worker), {
      concurrency: "unbounded",
      discard: true
    }))
  } catch (error) {
    recorder.stop()
    throw error
  }
  return recorder.result()
}
