/** @internal */
import * as Follower from "@effect-sql-router/core/eventLog/Follower"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import type { SqlError } from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import * as Durable from "../../Durable.js"
import type * as EventLog from "../../EventLog.js"
import type { CommitFailed, PrimaryUnavailable, ReplicaNotCaughtUp } from "../../RouterError.js"
import type * as SqlRouter from "../../SqlRouter.js"

/** @internal */
export const ready: EventLog.Ready = { _tag: "Ready" }

/** @internal */
export const inserted = (version: number): EventLog.Inserted => ({ _tag: "Inserted", version })

type Signal = Follower.Signal

/** The core's follower, its steps as listen events. */
const follower = (from: number | undefined) => {
  const next = Follower.follower(from)
  return (signal: Signal): ReadonlyArray<EventLog.ListenEvent> => {
    const step = next(signal)
    const out: Array<EventLog.ListenEvent> = step.ready ? [ready] : []
    for (let v = step.from; v <= step.to; v++) out.push(inserted(v))
    return out
  }
}

const reasonOf = (cause: Cause.Cause<unknown>): string => {
  if (cause.reasons.length === 0) return "the connection ended"
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

/**
 * `Ready`, then every version once, in order, from the log on `channel`:
 * notifications (with a poll beside them when `pollInterval` is set), or
 * polls alone. `version` reads the log's version on the primary.
 * @internal
 */
export const listenStream = (
  channel: string,
  version: Effect.Effect<number, SqlError | CommitFailed | PrimaryUnavailable | ReplicaNotCaughtUp>,
  options: EventLog.ListenOptions
): Stream.Stream<EventLog.ListenEvent, never, SqlRouter.SqlRouter> =>
  Stream.suspend(() => {
    const step = follower(options.from)
    const polled: Stream.Stream<Signal> = Stream.fromEffectSchedule(
      Effect.match(version, {
        onFailure: (error): Signal => ({ _tag: "Lost", reason: error.message }),
        onSuccess: (version): Signal => ({ _tag: "At", version })
      }),
      Schedule.spaced(options.pollInterval ?? "1 second")
    )
    if (options.mode === "poll") return follow(channel, polled, step)
    const notified: Stream.Stream<Signal, never, SqlRouter.SqlRouter> = Durable.subscribe({
      updates: Durable.notifications(channel, { applicationName: options.applicationName }),
      state: version,
      resubscribeDelay: options.resubscribeDelay ?? "1 second"
    }).pipe(Stream.filterMap(Durable.match({
      onConnectionSuccess: () => Result.fail(undefined),
      onConnectionLost: (cause) => Result.succeed<Signal>({ _tag: "Lost", reason: reasonOf(cause) }),
      onState: (version) => Result.succeed<Signal>({ _tag: "At", version }),
      onUpdate: (payload) => {
        const version = Number(payload)
        return Number.isSafeInteger(version) ? Result.succeed<Signal>({ _tag: "Notified", version }) : Result.fail(undefined)
      }
    })))
    // A poll beside LISTEN catches up where notifications never arrive
    // (LISTEN through a transaction pooler "works" but delivers nothing).
    return follow(channel, options.pollInterval === undefined ? notified : Stream.merge(notified, polled), step)
  })

const follow = <R>(
  channel: string,
  signals: Stream.Stream<Signal, never, R>,
  step: (signal: Signal) => ReadonlyArray<EventLog.ListenEvent>
): Stream.Stream<EventLog.ListenEvent, never, R> =>
  signals.pipe(
    Stream.tap((signal) =>
      signal._tag === "Lost" ? Effect.logWarning(`event log listener on ${channel}: ${signal.reason}`) : Effect.void
    ),
    Stream.map(step),
    Stream.flattenIterable
  )
