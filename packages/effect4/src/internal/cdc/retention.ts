/** @internal */
import * as Effect from "effect/Effect"
import type { CdcContext } from "./context.js"
import { describe } from "../errors.js"
import * as Replication from "./replication.js"
import { slotOf } from "./rules.js"

/**
 * `Cdc.enforceRetention`: drops the slot of every rule holding more WAL than
 * its `maxRetainedWalBytes` (the next session starts over with a snapshot)
 * and returns their names; a failed check is logged and drops nothing.
 * @internal
 */
export const enforceRetention = (context: CdcContext): Effect.Effect<ReadonlyArray<string>> =>
  Effect.gen(function*() {
    const bounded = Array.from(context.states.values()).filter((s) => s.rule.maxRetainedWalBytes !== undefined)
    if (bounded.length === 0) return []
    return yield* Effect.scoped(Effect.gen(function*() {
      const client = yield* Replication.control(yield* context.connect)
      const dropped: Array<string> = []
      for (const state of bounded) {
        const info = yield* Replication.slotInfo(client, slotOf(state.rule))
        if (info && (info.retainedBytes ?? 0) > state.rule.maxRetainedWalBytes!) {
          yield* Replication.dropSlot(client, slotOf(state.rule))
          state.errors++
          state.lastError =
            `slot ${slotOf(state.rule)} held ${info.retainedBytes} bytes of WAL, over the rule's bound of ${state.rule.maxRetainedWalBytes}: dropped; the next session starts over with a snapshot`
          dropped.push(state.rule.name)
        }
      }
      return dropped
    }))
  }).pipe(
    Effect.catch((error) => Effect.logWarning(`CDC retention check failed: ${describe(error)}`).pipe(Effect.as([])))
  )
