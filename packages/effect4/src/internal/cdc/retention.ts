/** @internal */
import * as Retention from "@effect-sql-router/core/cdc/Retention"
import * as Effect from "effect/Effect"
import type { CdcContext } from "./context.js"
import { describe } from "../errors.js"
import * as Replication from "./replication.js"
import { slotOf } from "./rules.js"

/**
 * `Cdc.enforceRetention`: drops the slot of every rule over its
 * `maxRetainedWalBytes` (core `cdc/Retention`: holding more WAL than the
 * bound with its consumer more than the bound behind; the next session
 * starts over with a snapshot) and returns their names; a failed check is
 * logged and drops nothing.
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
        const slot = slotOf(state.rule)
        const bound = state.rule.maxRetainedWalBytes!
        const info = yield* Replication.slotInfo(client, slot)
        if (info && Retention.overBound(info, bound)) {
          yield* Replication.dropSlot(client, slot)
          state.errors++
          state.lastError = Retention.droppedMessage(slot, info, bound)
          dropped.push(state.rule.name)
        }
      }
      return dropped
    }))
  }).pipe(
    Effect.catch((error) => Effect.logWarning(`CDC retention check failed: ${describe(error)}`).pipe(Effect.as([])))
  )
