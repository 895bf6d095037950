/** @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { CdcError, Options } from "../../Cdc.js"
import * as Monitor from "./monitor.js"
import type * as Replication from "./replication.js"
import type { RuleState } from "./rules.js"
import { defaultApplicationName, resolvePrimary } from "./source.js"

/**
 * What the jobs of one `Cdc` service share, passed to each explicitly: its
 * options, the rule registry, the retry schedule and the way to the primary.
 * @internal
 */
export interface CdcContext {
  readonly options: Options
  /** Each rule's state, by rule name. */
  readonly states: Map<string, RuleState>
  /** Milliseconds between status reports to the server. */
  readonly statusInterval: number
  /** Retries of an apply and restarts of a session: exponential, capped at `maxRetryDelay`. */
  readonly backoff: Schedule.Schedule<unknown>
  /** The primary's address, asked at each connection. */
  readonly connect: Effect.Effect<Replication.Connect>
  /** The control connection kept for `stats`' reads on the source. */
  readonly monitor: Monitor.Monitor
  /** Counts a failure in the rule's stats (see `makeContext`). */
  readonly noteError: (state: RuleState) => (error: CdcError) => Effect.Effect<void>
}

/** @internal */
export const makeContext = (options: Options, scope: Scope.Scope): CdcContext => {
  const applicationName = options.applicationName ?? defaultApplicationName
  const connect = Effect.map(resolvePrimary(options.primary), (url) => ({ url, applicationName }))
  // Each failure counts once in `errors`, whether a retry absorbed it or it ended the session.
  const counted = new WeakSet<object>()
  return {
    options,
    states: new Map(),
    statusInterval: Duration.toMillis(options.statusInterval ?? "1 second"),
    backoff: Schedule.exponential(options.retryDelay ?? "100 millis").pipe(
      Schedule.union(Schedule.spaced(options.maxRetryDelay ?? "5 seconds"))
    ),
    connect,
    monitor: Monitor.make(scope, connect),
    noteError: (state) => (error) =>
      Effect.sync(() => {
        if (counted.has(error)) return
        counted.add(error)
        state.errors++
        state.lastError = error.message
      })
  }
}
