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
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 * @category models
 */
export interface Inbox<A> {
  /** Buffers `item`, or hands it to the waiter if one waits (the buffer is then empty). */
  readonly offer: (item: A) => void
  /** The oldest buffered item, left in place (undefined when empty). */
  readonly peek: () => A | undefined
  /** Removes and returns the oldest buffered item (undefined when empty). */
  readonly shift: () => A | undefined
  /** How many items are buffered. */
  readonly size: () => number
  /**
   * Calls `resume` with the next item once one arrives (at once if one is
   * buffered); the returned function withdraws the wait. One waiter at a
   * time: a second `wait` replaces the first.
   */
  readonly wait: (resume: (item: A) => void) => () => void
}

/** Below this many consumed slots at the head, the buffer is not compacted. */
const compactAfter = 1_024

/**
 * An empty inbox.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A>(): Inbox<A> => {
  // Consumed items are cleared and skipped by `head`; the array is cut once
  // the consumed head is long and at least half of it (amortised O(1)).
  let items: Array<A | undefined> = []
  let head = 0
  let waiter: ((item: A) => void) | undefined
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
    return item
  }
  return {
    offer: (item) => {
      if (waiter !== undefined) {
        const resume = waiter
        waiter = undefined
        resume(item)
      } else items.push(item)
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
