/**
 * The protocol side of a logical replication session, without an effect:
 * the `START_REPLICATION` command, the server's CopyData payloads read into
 * an inbox in arrival order (a failure after the messages before it), the
 * socket paused while the inbox is long, and status updates written back.
 * Each Effect line wraps it: its `take` waits on the inbox, its scope closes
 * the reporter and repeats the periodic status update.
 *
 * @since 0.1.0
 */
import { quoteIdent } from "./ApplyPlan.js"
import type * as Follow from "./Follow.js"
import * as Inbox from "./Inbox.js"
import * as Pgoutput from "./Pgoutput.js"
import * as StatusUpdates from "./StatusUpdates.js"
import * as Types from "./Types.js"

/**
 * The command that starts streaming `slot` from its confirmed position
 * (`0/0`), pgoutput protocol 1 over `publication`, with logical decoding
 * messages when `messages` (PostgreSQL 14+). The publication's name is a
 * quoted identifier inside a string literal, so any name the server allows
 * (quotes included) reads back as itself.
 *
 * @since 0.1.0
 * @category sql
 */
export const startReplicationSql = (options: {
  readonly slot: string
  readonly publication: string
  readonly messages?: boolean | undefined
}): string =>
  `START_REPLICATION SLOT ${quoteIdent(options.slot)} LOGICAL 0/0 (proto_version '1', publication_names '${
    quoteIdent(options.publication).replace(/'/g, "''")
  }'${options.messages ? ", messages 'true'" : ""})`

/**
 * A replication connection as `pg`'s `Client` offers it (declared here, so
 * that no package's declarations need `pg`'s types): the command, and the
 * events of the connection's end.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  readonly query: (text: string) => Promise<unknown>
  on(event: "error", listener: (cause: Error) => void): unknown
  on(event: "end", listener: () => void): unknown
}

/** `pg`'s protocol connection under a `Client`: CopyData in and out, and the socket. */
interface Protocol {
  on(event: "copyData", listener: (message: { chunk: Buffer }) => void): void
  sendCopyFromChunk(chunk: Buffer): void
  readonly stream: { pause(): void; resume(): void }
}

/**
 * The listener for a replication connection's CopyData payloads (the
 * streaming replication protocol): an XLogData (`w`) becomes a `Data`
 * message at its WAL start, its pgoutput body decoded by `parse`; a primary
 * keepalive (`k`) becomes a `Keepalive` at the server's sent position, and
 * `reply` is called when the server asks for an answer at once. Other
 * payloads are ignored. A body `parse` refuses ends the stream: the inbox
 * gets `decodeFailure(cause)` after the messages before it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const copyDataReader = <E>(options: {
  readonly inbox: Inbox.Inbox<Follow.Message | Follow.Failure<E>>
  readonly parse: (bytes: Buffer) => Pgoutput.Message
  readonly reply: () => void
  readonly decodeFailure: (cause: unknown) => E
}) => {
  const { decodeFailure, inbox, parse, reply } = options
  return (chunk: Buffer): void => {
    try {
      if (chunk[0] === xLogData) {
        // 'w', WAL start, WAL end, send time (8 bytes each), then the body.
        const message = parse(chunk.subarray(25))
        inbox.offer({ _tag: "Data", lsn: chunk.readBigUInt64BE(1), message })
      } else if (chunk[0] === keepalive) {
        // 'k', WAL end, send time, then 1 when the server asks for a reply now.
        inbox.offer({ _tag: "Keepalive", lsn: chunk.readBigUInt64BE(1) })
        if (chunk[17] === 1) reply()
      }
    } catch (cause) {
      inbox.offer({ _tag: "Failure", error: decodeFailure(cause) })
    }
  }
}

const xLogData = 0x77
const keepalive = 0x6b

/**
 * A started replication stream: its messages, read from `inbox`, and its
 * status updates (the caller closes `status` when the session ends and
 * sends one every status interval).
 *
 * @since 0.1.0
 * @category models
 */
export interface Stream<E> {
  readonly inbox: Inbox.Inbox<Follow.Message | Follow.Failure<E>>
  readonly status: StatusUpdates.Reporter
}

/**
 * Starts streaming `slot` on `client`, a connection opened in replication
 * mode and used by this stream only. Status updates report only what was
 * acknowledged, from `startLsn` (the slot's confirmed position) on, never
 * what was merely received: the at-least-once guarantee. The stream's end —
 * a lost connection, the server ending it, a refused command, a body that
 * does not decode — reaches the inbox as `fail(operation, cause)`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = <E>(client: Connection, options: {
  readonly slot: string
  readonly publication: string
  readonly startLsn: bigint
  readonly messages?: boolean | undefined
  /** Decodes the column values (the built-in types when absent). */
  readonly types?: Types.Registry | undefined
  readonly fail: (operation: string, cause: unknown) => E
}): Stream<E> => {
  const { fail } = options
  const connection = (client as unknown as { connection: Protocol }).connection
  const inbox = Inbox.make<Follow.Message | Follow.Failure<E>>({
    pause: () => connection.stream.pause(),
    resume: () => connection.stream.resume()
  })
  const failWith = (operation: string, cause: unknown) => inbox.offer({ _tag: "Failure", error: fail(operation, cause) })
  const status = StatusUpdates.makeReporter({
    start: options.startLsn,
    write: (message) => connection.sendCopyFromChunk(message)
  })
  const read = copyDataReader({
    inbox,
    parse: Pgoutput.makeParser((options.types ?? Types.builtins).decoderFor).parse,
    reply: () => status.send(false),
    decodeFailure: (cause) => fail("decode", cause)
  })
  connection.on("copyData", ({ chunk }) => read(chunk))
  client.on("error", (cause) => failWith("stream", cause))
  client.on("end", () => failWith("stream", new Error("Connection terminated")))
  client.query(startReplicationSql(options)).then(
    () => failWith("stream", new Error("the server ended the replication stream")),
    (cause) => failWith("start replication", cause)
  )
  return { inbox, status }
}
