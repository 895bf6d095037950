/**
 * What a rule's follow loop decides without an effect: the messages of a
 * replication session as it buffers them, when the whole transactions
 * waiting are applied (`flushDue`), and the next change taken from the
 * buffered messages without waiting (`pollChange`). Each Effect line runs
 * the loop itself; these keep the two loops' decisions one.
 *
 * @since 0.1.0
 */
import type { Change, Decoder } from "./Changes.js"
import type * as Inbox from "./Inbox.js"
import type * as Pgoutput from "./Pgoutput.js"

/**
 * One protocol message of a replication session, in the order the server
 * sent it: a pgoutput message at its WAL position, or a keepalive carrying
 * the server's sent position.
 *
 * @since 0.1.0
 * @category models
 */
export type Message =
  | { readonly _tag: "Data"; readonly lsn: bigint; readonly message: Pgoutput.Message }
  | { readonly _tag: "Keepalive"; readonly lsn: bigint }

/**
 * The session's stream ending, in order after the messages before it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Failure<E> {
  readonly _tag: "Failure"
  readonly error: E
}

/**
 * The messages a session has buffered, read without waiting.
 *
 * @since 0.1.0
 * @category models
 */
export interface Buffered {
  /** Messages received and not yet taken (a failure counts as one). */
  readonly pending: () => number
  /** The next message, left in place (undefined when none is buffered, or the stream failed). */
  readonly peek: () => Message | undefined
  /** Removes the message `peek` returned. */
  readonly skip: () => void
}

/**
 * The buffered view of a session's inbox: a failure is never peeked (the
 * line's effectful `take` reports it).
 *
 * @since 0.1.0
 * @category constructors
 */
export const buffered = <E>(inbox: Inbox.Inbox<Message | Failure<E>>): Buffered => ({
  pending: inbox.size,
  peek: () => {
    const item = inbox.peek()
    return item === undefined || item._tag === "Failure" ? undefined : item
  },
  skip: () => {
    inbox.shift()
  }
})

/**
 * What the decisions read of a follow loop: the whole transactions waiting
 * to be applied together and their changes, the rule's `batchSize`, the
 * decoder and the session's buffered messages.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoopState {
  readonly pending: ReadonlyArray<unknown>
  readonly pendingChanges: ReadonlyArray<unknown>
  readonly batchSize: number
  readonly decoder: Decoder
  readonly stream: Buffered
}

/**
 * True when the whole transactions waiting are to be applied now: they
 * reached `batchSize` changes, or nothing more is buffered (what arrived
 * together goes in one target transaction).
 *
 * @since 0.1.0
 * @category decisions
 */
export const flushDue = (loop: LoopState): boolean =>
  loop.pending.length > 0 && (loop.stream.pending() === 0 || loop.pendingChanges.length >= loop.batchSize)

/**
 * The next change when it needs neither a wait nor an effect: a buffered
 * Begin, Commit, Insert, Update or Delete, taken and decoded as the line's
 * effectful read would. Undefined when anything else comes first (nothing
 * buffered, a keepalive, a relation, a logical message, a truncate, a
 * failure) or the transactions waiting are due (`flushDue`): the line's
 * read handles those. The catch-up's fast path, without an effect per
 * message.
 *
 * @since 0.1.0
 * @category decisions
 */
export const pollChange = (loop: LoopState): Change | undefined => {
  const { decoder, stream } = loop
  for (;;) {
    if (flushDue(loop)) return undefined
    const item = stream.peek()
    if (item === undefined || item._tag !== "Data") return undefined
    const tag = item.message.tag
    if (tag === "relation" || tag === "message" || tag === "truncate") return undefined
    stream.skip()
    const change = decoder.decode(item.lsn, item.message)
    if (change) return change
  }
}
