/**
 * The pgoutput protocol, version 1 (what START_REPLICATION asks for), read
 * from the bytes of one XLogData payload. Plain functions over a buffer: no
 * I/O, no Effect.
 *
 * @since 0.1.0
 */
import * as Types from "./Types.js"

// We decode it ourselves rather than with pg-logical-replication's parser:
// its reader decodes text with `new TextDecoder()`, whose default drops a
// leading U+FEFF, so a value starting with a byte-order mark reached the
// targets without it, silently. Every string here (names, tuple values,
// message prefixes) goes through one byte-exact decoder.
// https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html

/**
 * UTF-8, byte for byte: a leading byte-order mark is kept (`ignoreBOM`), and
 * bytes that are not UTF-8 fail the message instead of becoming U+FFFD.
 * Our connections ask for `client_encoding = UTF8`, so the server converts
 * every value to UTF-8; only a `SQL_ASCII` database can send other bytes.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeUtf8: (bytes: Uint8Array) => string = (() => {
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true, fatal: true })
  return (bytes) => decoder.decode(bytes)
})()

/**
 * A column of a Relation message, with its value decoder.
 *
 * @since 0.1.0
 * @category models
 */
export interface RelationColumn {
  readonly flags: number
  readonly name: string
  readonly typeOid: number
  readonly typeMod: number
  /** From a preceding Type message (non-builtin types only). */
  readonly typeName: string | undefined
  readonly decode: (text: string) => unknown
}

/**
 * A Relation message: a table's name, replica identity and columns.
 *
 * @since 0.1.0
 * @category models
 */
export interface RelationMessage {
  readonly tag: "relation"
  readonly relationOid: number
  readonly schema: string
  readonly name: string
  readonly replicaIdentity: "default" | "nothing" | "full" | "index"
  readonly columns: ReadonlyArray<RelationColumn>
  readonly keyColumns: ReadonlyArray<string>
}

/**
 * One row image: column name to decoded value, `null` for SQL NULL,
 * `undefined` for an unchanged TOAST value the message does not carry.
 *
 * @since 0.1.0
 * @category models
 */
export type Tuple = Record<string, unknown>

/**
 * Commit times are microseconds since the Unix epoch.
 *
 * @since 0.1.0
 * @category models
 */
export type Message =
  | { readonly tag: "begin"; readonly finalLsn: bigint; readonly commitTime: bigint; readonly xid: number }
  | {
    readonly tag: "commit"
    readonly flags: number
    readonly commitLsn: bigint
    readonly endLsn: bigint
    readonly commitTime: bigint
  }
  | { readonly tag: "origin"; readonly originLsn: bigint; readonly originName: string }
  | { readonly tag: "type"; readonly typeOid: number; readonly typeSchema: string; readonly typeName: string }
  | RelationMessage
  | { readonly tag: "insert"; readonly relation: RelationMessage; readonly new: Tuple }
  | {
    readonly tag: "update"
    readonly relation: RelationMessage
    readonly key: Tuple | null
    readonly old: Tuple | null
    readonly new: Tuple
  }
  | { readonly tag: "delete"; readonly relation: RelationMessage; readonly key: Tuple | null; readonly old: Tuple | null }
  | {
    readonly tag: "truncate"
    readonly cascade: boolean
    readonly restartIdentity: boolean
    readonly relations: ReadonlyArray<RelationMessage>
  }
  | {
    readonly tag: "message"
    readonly transactional: boolean
    readonly lsn: bigint
    readonly prefix: string
    readonly content: Uint8Array
  }

// The protocol's epoch, 2000-01-01, in microseconds since the Unix epoch.
const pgEpochMicros = 946_684_800_000_000n

/** A cursor over one message. Every read checks the bounds. */
class Reader {
  private offset = 0
  constructor(private readonly bytes: Buffer) {}

  private take(n: number): number {
    const at = this.offset
    if (n < 0 || at + n > this.bytes.length) throw new Error("pgoutput: message ends early")
    this.offset += n
    return at
  }
  uint8(): number {
    return this.bytes.readUInt8(this.take(1))
  }
  int16(): number {
    return this.bytes.readInt16BE(this.take(2))
  }
  int32(): number {
    return this.bytes.readInt32BE(this.take(4))
  }
  /** OIDs and xids are unsigned. */
  uint32(): number {
    return this.bytes.readUInt32BE(this.take(4))
  }
  uint64(): bigint {
    return this.bytes.readBigUInt64BE(this.take(8))
  }
  time(): bigint {
    return this.bytes.readBigInt64BE(this.take(8)) + pgEpochMicros
  }
  bytesOf(n: number): Uint8Array {
    const at = this.take(n)
    return this.bytes.subarray(at, at + n)
  }
  /**
   * `n` bytes of UTF-8 text. ASCII, the common case, is read straight off
   * the buffer (exact, no view to allocate); anything else goes through the
   * byte-exact decoder.
   */
  text(n: number): string {
    const at = this.take(n)
    const bytes = this.bytes
    for (let i = at; i < at + n; i++) {
      if (bytes[i]! >= 0x80) return decodeUtf8(bytes.subarray(at, at + n))
    }
    return bytes.toString("latin1", at, at + n)
  }
  /** A NUL-terminated string. */
  string(): string {
    const end = this.bytes.indexOf(0, this.offset)
    if (end < 0) throw new Error("pgoutput: unterminated string")
    const text = decodeUtf8(this.bytes.subarray(this.offset, end))
    this.offset = end + 1
    return text
  }
}

const replicaIdentities = { d: "default", n: "nothing", f: "full", i: "index" } as const

/** What a replication session remembers: Relation and Type messages by OID. */
interface Session {
  readonly decoderFor: (typeOid: number) => (text: string) => unknown
  readonly relations: Map<number, RelationMessage>
  readonly typeNames: Map<number, string>
}

const relationOf = (session: Session, oid: number): RelationMessage => {
  const relation = session.relations.get(oid)
  if (!relation) throw new Error(`pgoutput: a row of relation ${oid}, whose Relation message never came`)
  return relation
}

// Rows inherit nothing, so a column may be called "__proto__" or
// "constructor": their prototype is an empty object without one. Not
// Object.create(null) itself, which V8 keeps as a hash table (three times
// slower to fill, and garbage for the collector per row).
const rowPrototype: object = Object.freeze(Object.create(null))

const tuple = (reader: Reader, relation: RelationMessage, unchanged?: Tuple | null): Tuple => {
  const count = reader.int16()
  if (count > relation.columns.length) {
    throw new Error(`pgoutput: a row of ${count} columns for ${relation.schema}.${relation.name} of ${relation.columns.length}`)
  }
  const row: Tuple = Object.create(rowPrototype)
  for (let i = 0; i < count; i++) {
    const column = relation.columns[i]!
    const kind = reader.uint8()
    switch (kind) {
      case 0x6e: // 'n'
        row[column.name] = null
        break
      case 0x75: // 'u': an unchanged TOAST value, known only from an old row image
        row[column.name] = unchanged?.[column.name]
        break
      case 0x74: // 't'
        row[column.name] = column.decode(reader.text(reader.int32()))
        break
      case 0x62: // 'b' (binary mode, which we do not ask for): the bytes, copied
        row[column.name] = Uint8Array.prototype.slice.call(reader.bytesOf(reader.int32()))
        break
      default:
        throw new Error(`pgoutput: unknown tuple value kind ${kind}`)
    }
  }
  return row
}

// A 'K' image carries the replica identity's columns; the others are 'n'.
const keyTuple = (reader: Reader, relation: RelationMessage): Tuple => {
  const row = tuple(reader, relation)
  const key: Tuple = Object.create(rowPrototype)
  for (const column of relation.keyColumns) key[column] = row[column]
  return key
}

const expectByte = (reader: Reader, tag: number) => {
  const got = reader.uint8()
  if (got !== tag) throw new Error(`pgoutput: expected '${String.fromCharCode(tag)}', got '${String.fromCharCode(got)}'`)
}

/** 'Y': remembered, so a Relation message's columns can name their type. */
const typeMessage = (session: Session, reader: Reader): Message => {
  const typeOid = reader.uint32()
  const typeSchema = reader.string()
  const typeName = reader.string()
  session.typeNames.set(typeOid, typeName)
  return { tag: "type", typeOid, typeSchema, typeName }
}

/** 'R': remembered (by OID) for the row messages that follow. */
const relationMessage = (session: Session, reader: Reader): RelationMessage => {
  const relationOid = reader.uint32()
  const schema = reader.string()
  const name = reader.string()
  const ident = String.fromCharCode(reader.uint8())
  const replicaIdentity = replicaIdentities[ident as keyof typeof replicaIdentities]
  if (!replicaIdentity) throw new Error(`pgoutput: unknown replica identity '${ident}'`)
  const count = reader.int16()
  const columns: Array<RelationColumn> = []
  for (let i = 0; i < count; i++) {
    const flags = reader.uint8()
    const columnName = reader.string()
    const typeOid = reader.uint32()
    const typeMod = reader.int32()
    columns.push({
      flags,
      name: columnName,
      typeOid,
      typeMod,
      typeName: session.typeNames.get(typeOid),
      decode: session.decoderFor(typeOid)
    })
  }
  const relation: RelationMessage = {
    tag: "relation",
    relationOid,
    schema,
    name,
    replicaIdentity,
    columns,
    keyColumns: columns.filter((c) => (c.flags & 1) === 1).map((c) => c.name)
  }
  session.relations.set(relationOid, relation)
  return relation
}

/** 'I': the new row. */
const insertMessage = (session: Session, reader: Reader): Message => {
  const relation = relationOf(session, reader.uint32())
  expectByte(reader, 0x4e)
  return { tag: "insert", relation, new: tuple(reader, relation) }
}

/** 'U': the new row, after the key ('K') or the old row ('O') when the replica identity sends one. */
const updateMessage = (session: Session, reader: Reader): Message => {
  const relation = relationOf(session, reader.uint32())
  const image = reader.uint8()
  if (image === 0x4e) return { tag: "update", relation, key: null, old: null, new: tuple(reader, relation) }
  if (image === 0x4b) {
    const key = keyTuple(reader, relation)
    expectByte(reader, 0x4e)
    return { tag: "update", relation, key, old: null, new: tuple(reader, relation) }
  }
  if (image === 0x4f) {
    const old = tuple(reader, relation)
    expectByte(reader, 0x4e)
    return { tag: "update", relation, key: null, old, new: tuple(reader, relation, old) }
  }
  throw new Error(`pgoutput: unknown update image '${String.fromCharCode(image)}'`)
}

/** 'D': the key ('K') or the whole old row ('O'). */
const deleteMessage = (session: Session, reader: Reader): Message => {
  const relation = relationOf(session, reader.uint32())
  const image = reader.uint8()
  if (image === 0x4b) return { tag: "delete", relation, key: keyTuple(reader, relation), old: null }
  if (image === 0x4f) return { tag: "delete", relation, key: null, old: tuple(reader, relation) }
  throw new Error(`pgoutput: unknown delete image '${String.fromCharCode(image)}'`)
}

/** 'T': the relations truncated together, with CASCADE and RESTART IDENTITY as flags. */
const truncateMessage = (session: Session, reader: Reader): Message => {
  const count = reader.uint32()
  const options = reader.uint8()
  const oids = Array.from({ length: count }, () => reader.uint32())
  return {
    tag: "truncate",
    cascade: (options & 1) === 1,
    restartIdentity: (options & 2) === 2,
    relations: oids.map((oid) => relationOf(session, oid))
  }
}

/** 'M': a logical decoding message (`pg_logical_emit_message`), its content copied. */
const logicalMessage = (reader: Reader): Message => {
  const flags = reader.uint8()
  const lsn = reader.uint64()
  const prefix = reader.string()
  const content = Uint8Array.prototype.slice.call(reader.bytesOf(reader.int32()))
  return { tag: "message", transactional: (flags & 1) === 1, lsn, prefix, content }
}

/** One message of `session`, by its first byte. */
const parseMessage = (session: Session, bytes: Buffer): Message => {
  const reader = new Reader(bytes)
  const tag = reader.uint8()
  switch (tag) {
    case 0x42: // 'B'
      return { tag: "begin", finalLsn: reader.uint64(), commitTime: reader.time(), xid: reader.uint32() }
    case 0x43: // 'C'
      return { tag: "commit", flags: reader.uint8(), commitLsn: reader.uint64(), endLsn: reader.uint64(), commitTime: reader.time() }
    case 0x4f: // 'O'
      return { tag: "origin", originLsn: reader.uint64(), originName: reader.string() }
    case 0x59: // 'Y'
      return typeMessage(session, reader)
    case 0x52: // 'R'
      return relationMessage(session, reader)
    case 0x49: // 'I'
      return insertMessage(session, reader)
    case 0x55: // 'U'
      return updateMessage(session, reader)
    case 0x44: // 'D'
      return deleteMessage(session, reader)
    case 0x54: // 'T'
      return truncateMessage(session, reader)
    case 0x4d: // 'M'
      return logicalMessage(reader)
    default:
      throw new Error(`pgoutput: unknown message type ${tag}`)
  }
}

/**
 * A parser for one replication session: Relation and Type messages are
 * remembered (by OID) for the row messages that follow them. Column values
 * are decoded with `decoderFor(typeOid)`, by default the change stream's.
 * Throws on a malformed message.
 *
 * @since 0.1.0
 * @category decoding
 */
export const makeParser = (decoderFor: (typeOid: number) => (text: string) => unknown = Types.decoderFor) => {
  const session: Session = { decoderFor, relations: new Map(), typeNames: new Map() }
  return { parse: (bytes: Buffer): Message => parseMessage(session, bytes) }
}
