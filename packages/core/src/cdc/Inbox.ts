/**
 * The replication session's inbox: the server's messages in arrival order,
 * read without waiting while any are buffered, with one waiter for the next
 * when none is.
 *
 * A catch-up reads tens of thousands of buffered messages per second. Taking
 * each through an effect queue cost an effect, a continuation and an option
 * per message, about a fifth of the catch-up's time; the lines read the
 * inbox directly (`peek`, `shift`) while messages are buffered and wait
 * through `wait` only when it is empty.
 *
 * A waiter is resumed in a microtask, after the whole burst of offers (one
 * socket read's messages): a runtime that resumes a fiber inline (Effect 4)
 * would otherwise run the consumer after every message, find the inbox empty
 * after every commit, and apply each source transaction as its own target
 * transaction instead of grouping those that arrived together.
 *
 * @since 0.1.0
 */

/**
 * Items in arrival order: offered by a producer (the socket's handler),
 * read without waiting while any are buffered, waited for when none is.
 *
 * @since 0.1.0
 * @category models
 */
export interface Inbox<A> {
  /**
   * Buffers `item`. A waiter gets the oldest item in a microtask, once the
   * current burst of offers is in (every message of one socket read): the
   * consumer then finds them all buffered, however its runtime resumes it.
   */
  readonly offer: (item: A) => void
  /** The oldest buffered item, left in place (undefined when empty). */
  readonly peek: () => A | undefined
  /** Removes and returns the oldest buffered item (undefined when empty). */
  readonly shift: () => A | undefined
  /** How many items are buffered. */
  readonly size: () => number
  /**
   * Calls `resume` with the oldest item: at once if one is buffered, else in
   * a microtask after the next `offer`. The returned function withdraws the
   * wait (an item not yet handed over stays buffered). One waiter at a
   * time: a second `wait` replaces the first.
   */
  readonly wait: (resume: (item: A) => void) => () => void
}

/**
 * Back-pressure: `pause` is called when more than `highWater` items are
 * buffered, `resume` once fewer than `lowWater` are left (a replication
 * session pauses its socket, so the walsender waits). The marks default to
 * `defaultHighWater` and `defaultLowWater`.
 *
 * @since 0.1.0
 * @category models
 */
export interface FlowControl {
  readonly highWater?: number | undefined
  readonly lowWater?: number | undefined
  readonly pause: () => void
  readonly resume: () => void
}

/**
 * Items buffered before a session pauses its socket: a few tenths of a
 * second of a fast catch-up (35k–80k changes/s on the bench host).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultHighWater = 10_000

/**
 * A paused session resumes its socket once fewer items than this are left.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultLowWater = 1_000

/** Below this many consumed slots at the head, the buffer is not compacted. */
const compactAfter = 1_024

/**
 * An empty inbox, with back-pressure when `flow` is given.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A>(flow?: FlowControl): Inbox<A> => {
  // Consumed items are cleared and skipped by `head`; the array is cut once
  // the consumed head is long and at least half of it (amortised O(1)).
  let items: Array<A | undefined> = []
  let head = 0
  let waiter: ((item: A) => void) | undefined
  let scheduled = false
  let paused = false
  const highWater = flow?.highWater ?? defaultHighWater
  const lowWater = flow?.lowWater ?? defaultLowWater
  const shift = (): A | undefined => {
    if (head >= items.length) return undefined
    const item = items[head]
    items[head++] = undefined
    if (head === items.length) {
      items = []
      head = 0
    } else if (head >= compactAfter && head * 2 >= items.length) {
      items = items.slice(head)
      head = 0
    }
    if (paused && items.length - head < lowWater) {
      paused = false
      flow!.resume()
    }
    return item
  }
  // The waiter gets the oldest item once the current burst of offers is in.
  const deliver = () => {
    scheduled = false
    if (waiter === undefined || head >= items.length) return
    const resume = waiter
    waiter = undefined
    resume(shift() as A)
  }
  return {
    offer: (item) => {
      items.push(item)
      if (flow !== undefined && !paused && items.length - head > highWater) {
        paused = true
        flow.pause()
      }
      if (waiter !== undefined && !scheduled) {
        scheduled = true
        queueMicrotask(deliver)
      }
    },
    peek: () => head < items.length ? items[head] : undefined,
    shift,
    size: () => items.length - head,
    wait: (resume) => {
      if (head < items.length) {
        resume(shift() as A)
        return () => {}
      }
      waiter = resume
      return () => {
        if (waiter === resume) waiter = undefined
      }
    }
  }
}
