/** @internal */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { ReplicationError } from "./errors.js"
import * as Replication from "./replication.js"

// One control connection kept open for the service's read-only questions to
// the source (`stats`): opening one per call cost a backend start (about
// 50 ms here) and loaded the source when a dashboard polled often.

/** @internal */
export interface Monitor {
  /**
   * Runs a read on the kept connection, opening it on first use, after a
   * failure, or when the primary's address changed. A failure on a kept
   * connection (it may have died with its server) is tried once more on a
   * fresh one; `read` must therefore only read.
   */
  readonly read: <A>(
    read: (client: Replication.Client) => Effect.Effect<A, ReplicationError>
  ) => Effect.Effect<A, ReplicationError>
}

interface Held {
  readonly url: Redacted.Redacted<string>
  readonly client: Replication.Client
  readonly scope: Scope.Closeable
}

/**
 * A monitor whose connection lives at most as long as `scope` (the `Cdc`
 * service's). Reads run one at a time: a connection answers one query at a
 * time anyway.
 * @internal
 */
export const make = (scope: Scope.Scope, connect: Effect.Effect<Replication.Connect>): Monitor => {
  const lock = Semaphore.makeUnsafe(1)
  let held: Held | undefined
  const drop = Effect.suspend(() => {
    const dropped = held
    held = undefined
    return dropped === undefined ? Effect.void : Scope.close(dropped.scope, Exit.void)
  })
  const open = (to: Replication.Connect) =>
    Effect.flatMap(Scope.fork(scope, "sequential"), (child) =>
      Replication.control(to).pipe(
        Scope.provide(child),
        Effect.tap((client) =>
          Effect.sync(() => {
            held = { url: to.url, client, scope: child }
          })
        ),
        // Failed or interrupted before it was held: nothing else would close it.
        Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Scope.close(child, exit))
      ))
  return {
    read: (read) =>
      lock.withPermits(1)(Effect.gen(function*() {
        const to = yield* connect
        if (held !== undefined && Redacted.value(held.url) !== Redacted.value(to.url)) yield* drop
        if (held !== undefined) {
          const kept = yield* Effect.exit(read(held.client))
          if (Exit.isSuccess(kept)) return kept.value
          yield* drop
        }
        return yield* Effect.tapError(read(yield* open(to)), () => drop)
      }))
  }
}
