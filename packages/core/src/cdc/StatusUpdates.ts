/**
 * Standby status updates of a logical replication session: what a consumer
 * tells the walsender it has flushed, so that the slot may move on.
 *
 * Every status update that reports less than the walsender has sent wakes
 * it, and it answers with a keepalive. Sent on every acknowledgement, that
 * was a ping-pong of one update and one keepalive per applied group while a
 * backlog was caught up (about 300 of each per 30 000 changes). The reporter
 * sends an acknowledgement at once when none went out in the last
 * `minIntervalMillis`, else once that interval has passed (one timer, no
 * fiber), and whatever is left when the session closes.
 *
 * @since 0.1.0
 */

// 2000-01-01 in Unix milliseconds: the protocol's epoch.
const pgEpochMillis = 946_684_800_000n

/**
 * The Standby Status Update message (`r`): `position` as written, flushed
 * and applied, the client's clock, and whether the server should answer at
 * once with a keepalive.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (position: bigint, nowMillis: number, reply: boolean): Buffer => {
  const message = Buffer.alloc(34)
  message[0] = 0x72 // 'r'
  message.writeBigUInt64BE(position, 1) // written
  message.writeBigUInt64BE(position, 9) // flushed
  message.writeBigUInt64BE(position, 17) // applied
  message.writeBigUInt64BE((BigInt(Math.floor(nowMillis)) - pgEpochMillis) * 1000n, 25)
  message[33] = reply ? 1 : 0
  return message
}

/**
 * The shortest time between two status updates that acknowledgements alone
 * cause, in milliseconds: the slot learns of an applied transaction at most
 * this late, while the session lives.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMinIntervalMillis = 10

/**
 * One session's status updates: what was acknowledged, and when the server
 * is told of it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reporter {
  /** The position acknowledged so far (never less than the start). */
  readonly confirmed: () => bigint
  /** Records `lsn` as flushed (ignored unless it moves forward); reported now or within the interval. */
  readonly acknowledge: (lsn: bigint) => void
  /** Sends a status update now, asking a keepalive in return when `reply`. */
  readonly send: (reply: boolean) => void
  /** Cancels the pending timer and sends what was acknowledged and not yet reported. */
  readonly close: () => void
}

/**
 * A reporter for one session, starting at the slot's confirmed `start`.
 * `write` sends a message on the replication connection (it may throw once
 * the connection is gone: the update is then dropped).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeReporter = (options: {
  readonly start: bigint
  readonly write: (message: Buffer) => void
  readonly minIntervalMillis?: number | undefined
  readonly now?: (() => number) | undefined
}): Reporter => {
  const minInterval = options.minIntervalMillis ?? defaultMinIntervalMillis
  const now = options.now ?? Date.now
  let confirmed = options.start
  let reported = options.start
  let lastSent = Number.NEGATIVE_INFINITY
  let timer: ReturnType<typeof setTimeout> | undefined
  let closed = false
  const send = (reply: boolean) => {
    if (closed) return
    const at = now()
    lastSent = at
    reported = confirmed
    try {
      options.write(encode(confirmed, at, reply))
    } catch {
      // the connection is gone; the session learns it from the connection
    }
  }
  const deferred = () => {
    timer = undefined
    if (confirmed > reported) send(false)
  }
  return {
    confirmed: () => confirmed,
    acknowledge: (lsn) => {
      if (lsn <= confirmed || closed) return
      confirmed = lsn
      if (timer !== undefined) return
      const wait = lastSent + minInterval - now()
      if (wait <= 0) send(false)
      else {
        timer = setTimeout(deferred, wait)
        // A pending report never keeps the process alive: `close` sends it.
        timer.unref?.()
      }
    },
    send,
    close: () => {
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      if (confirmed > reported) send(false)
      closed = true
    }
  }
}
