/**
 * How an event log's listener turns what it learns (the log's version from a
 * snapshot or a poll, a notified version, a lost connection) into `Ready`
 * and every version once, in order.
 *
 * @since 0.1.0
 */

/**
 * What the listener learns: the log's version now (a snapshot or a poll), one
 * notified version, or that its connection was lost.
 *
 * @since 0.1.0
 * @category models
 */
export type Signal =
  | { readonly _tag: "At"; readonly version: number }
  | { readonly _tag: "Notified"; readonly version: number }
  | { readonly _tag: "Lost"; readonly reason: string }

/**
 * What to emit for one signal: `Ready` first if `ready`, then every version
 * from `from` to `to` (none when `from > to`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Step {
  readonly ready: boolean
  readonly from: number
  readonly to: number
}

const nothing: Step = { ready: false, from: 1, to: 0 }

/**
 * A follower that starts after version `from` (or, when undefined, at the
 * log's version when it is first known). Versions are gapless, so "the log
 * is at v" means "v and everything below exist": what was missed while
 * disconnected is the range up to the next snapshot, and a notification
 * replayed after a snapshot is at or below what was emitted. Nothing is
 * emitted before the first snapshot, which emits `Ready`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const follower = (from: number | undefined): (signal: Signal) => Step => {
  let emitted = from
  let isReady = false
  return (signal) => {
    if (signal._tag === "Lost") return nothing
    const becameReady = !isReady && signal._tag === "At"
    if (becameReady) isReady = true
    if (!isReady) return nothing
    if (emitted === undefined) {
      emitted = signal.version
      return becameReady ? { ready: true, from: 1, to: 0 } : nothing
    }
    const step = { ready: becameReady, from: emitted + 1, to: signal.version }
    if (signal.version > emitted) emitted = signal.version
    return step
  }
}
