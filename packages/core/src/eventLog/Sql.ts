/**
 * The event log's SQL: its table, projection table and trigger names (the
 * identifier rules and PostgreSQL's byte limit on the names derived from
 * them), and every statement one log runs, with its identifiers written in,
 * quoted.
 *
 * @since 0.1.0
 */

/**
 * PostgreSQL truncates longer identifiers (NAMEDATALEN - 1).
 *
 * @since 0.1.0
 * @category constants
 */
export const maxIdentifierBytes = 63

/**
 * The log's triggers are named `<table>_notify` and `<table>_immutable`.
 *
 * @since 0.1.0
 * @category constants
 */
export const triggerSuffixes: ReadonlyArray<string> = ["_notify", "_immutable"]

/**
 * The default projection table is `<table>_projection`.
 *
 * @since 0.1.0
 * @category constants
 */
export const projectionSuffix = "_projection"

/**
 * The longest a table name may be: its triggers' names must fit too.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxTableBytes = maxIdentifierBytes - Math.max(...triggerSuffixes.map((suffix) => suffix.length))

const identifier = /^[a-z_][a-z0-9_]*$/

/**
 * Whether `value` is a plain lower-case identifier of 1 to `maxBytes` bytes.
 * Names are such identifiers (so the quoted name is the one a user types
 * unquoted) and always written quoted, so reserved words such as `order` or
 * `user` work. ASCII only, so its length is its size in bytes.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isName = (value: unknown, maxBytes: number): value is string =>
  typeof value === "string" && identifier.test(value) && value.length <= maxBytes

/**
 * Why a name that {@link isName} refused was refused.
 *
 * @since 0.1.0
 * @category rules
 */
export const nameRule = (maxBytes: number): string =>
  `must be a lower-case SQL identifier (a-z, 0-9, _; not starting with a digit) of 1 to ${maxBytes} bytes`

/**
 * A name as SQL writes it: double-quoted (names never hold a quote).
 *
 * @since 0.1.0
 * @category constructors
 */
export const quote = (name: string): string => `"${name}"`

/**
 * The names a log is configured with; each may be left out.
 *
 * @since 0.1.0
 * @category models
 */
export interface NameOptions {
  readonly table?: string | undefined
  readonly projectionTable?: string | undefined
  readonly channel?: string | undefined
}

/**
 * A log's names, checked, with the defaults filled in.
 *
 * @since 0.1.0
 * @category models
 */
export interface Names {
  readonly table: string
  readonly projectionTable: string
  readonly channel: string
}

/**
 * Why a configured name is refused: the option's field and the rule.
 *
 * @since 0.1.0
 * @category models
 */
export interface NameRefusal {
  readonly field: "table" | "projectionTable" | "channel"
  readonly reason: string
}

/**
 * The log's names, or why one is refused (the first, in field order). The
 * table defaults to `event_log`, the projection table to
 * `<table>_projection`, the channel to the table.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveNames = (options: NameOptions): Names | NameRefusal => {
  const table = options.table ?? "event_log"
  if (!isName(table, maxTableBytes)) return { field: "table", reason: nameRule(maxTableBytes) }
  if (options.projectionTable === undefined && table.length + projectionSuffix.length > maxIdentifierBytes) {
    return {
      field: "table",
      reason: `the default projection table (the table name + "${projectionSuffix}") would exceed PostgreSQL's ` +
        `${maxIdentifierBytes}-byte identifier limit: use at most ${
          maxIdentifierBytes - projectionSuffix.length
        } bytes, or set projectionTable`
    }
  }
  const projectionTable = options.projectionTable ?? `${table}${projectionSuffix}`
  if (!isName(projectionTable, maxIdentifierBytes)) {
    return { field: "projectionTable", reason: nameRule(maxIdentifierBytes) }
  }
  if (projectionTable === table) return { field: "projectionTable", reason: "must differ from table" }
  const channel = options.channel ?? table
  if (!isName(channel, maxIdentifierBytes)) return { field: "channel", reason: nameRule(maxIdentifierBytes) }
  return { table, projectionTable, channel }
}

/**
 * Whether {@link resolveNames} refused.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isNameRefusal = (result: Names | NameRefusal): result is NameRefusal => "field" in result

/**
 * Every statement of one log, its identifiers checked once and written in.
 *
 * @since 0.1.0
 * @category models
 */
export interface Queries {
  /** Run in order, in one transaction. */
  readonly migrate: ReadonlyArray<string>
  /** `version`: the highest version, 0 when empty. */
  readonly systemVersion: string
  /** `$1` version → the event's row. */
  readonly eventAt: string
  /** `$1` version → the next event's row. */
  readonly eventAfter: string
  /** `$1` first version, `$2` limit → rows, ascending. */
  readonly eventsForward: string
  /** `$1` first version, `$2` limit → rows, descending. */
  readonly eventsReverse: string
  /** `$1` assumed version, `$2` type name, `$3` JSON text, `$4` revision → `version`, or no row. */
  readonly append: string
  /** `$1` id → `version`, or no row. */
  readonly projectionVersion: string
  /** `$1` id: creates it at version 0 unless it exists. */
  readonly initProjection: string
  /** `$1` id, `$2` version → `id`, or no row (unknown id, or past the head). */
  readonly setProjection: string
  /** `$1` id → `version` (the log's) and `found` (the projection's). */
  readonly projectionState: string
}

const columns = `version, type_name, payload, "time", revision_vcs`

/**
 * The statements of a log over `names` (checked by {@link resolveNames}).
 *
 * @since 0.1.0
 * @category constructors
 */
export const queriesFor = (names: Names): Queries => {
  const table = quote(names.table)
  const projections = quote(names.projectionTable)
  return {
    migrate: [
      // One migration at a time: CREATE OR REPLACE FUNCTION races with itself.
      `SELECT pg_advisory_xact_lock(hashtext('effect-sql-router/EventLog'))`,
      `CREATE TABLE IF NOT EXISTS ${table} (
        version bigint PRIMARY KEY CHECK (version > 0),
        type_name text NOT NULL,
        payload jsonb NOT NULL,
        "time" timestamptz NOT NULL DEFAULT clock_timestamp(),
        revision_vcs text NOT NULL DEFAULT ''
      )`,
      `CREATE TABLE IF NOT EXISTS ${projections} (
        id integer PRIMARY KEY,
        version bigint NOT NULL CHECK (version >= 0)
      )`,
      `CREATE OR REPLACE FUNCTION effect_sql_router_event_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify(TG_ARGV[0], NEW.version::text); RETURN NEW; END $$`,
      // Appends are gapless only if no row ever leaves: the log is immutable.
      `CREATE OR REPLACE FUNCTION effect_sql_router_event_log_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the event log % is append-only', TG_TABLE_NAME; END $$`,
      `CREATE OR REPLACE TRIGGER ${quote(`${names.table}_notify`)} AFTER INSERT ON ${table}
        FOR EACH ROW EXECUTE FUNCTION effect_sql_router_event_log_notify('${names.channel}')`,
      `CREATE OR REPLACE TRIGGER ${quote(`${names.table}_immutable`)} BEFORE UPDATE OR DELETE ON ${table}
        FOR EACH ROW EXECUTE FUNCTION effect_sql_router_event_log_immutable()`
    ],
    systemVersion: `SELECT coalesce(max(version), 0) AS version FROM ${table}`,
    eventAt: `SELECT ${columns} FROM ${table} WHERE version = $1`,
    eventAfter: `SELECT ${columns} FROM ${table} WHERE version > $1 ORDER BY version LIMIT 1`,
    eventsForward: `SELECT ${columns} FROM ${table} WHERE version >= $1 ORDER BY version LIMIT $2`,
    eventsReverse: `SELECT ${columns} FROM ${table} WHERE version <= $1 ORDER BY version DESC LIMIT $2`,
    // No sequence: the version is the assumed one plus one, written only when
    // the log is at the assumed version. A concurrent appender of the same
    // version waits on the primary key and then does nothing; a rolled-back one
    // leaves no hole, because nothing was taken from a sequence.
    append: `INSERT INTO ${table} (version, type_name, payload, revision_vcs)
      SELECT $1::bigint + 1, $2, $3::jsonb, $4
      WHERE (SELECT coalesce(max(version), 0) FROM ${table}) = $1::bigint
      ON CONFLICT (version) DO NOTHING
      RETURNING version`,
    projectionVersion: `SELECT version FROM ${projections} WHERE id = $1`,
    initProjection: `INSERT INTO ${projections} (id, version) VALUES ($1, 0) ON CONFLICT (id) DO NOTHING`,
    // Never past the log's head: a projection cannot have processed versions
    // that do not exist. Refused, nothing is written (the caller learns why
    // from projectionState).
    setProjection: `UPDATE ${projections} SET version = $2::bigint
      WHERE id = $1 AND $2::bigint <= (SELECT coalesce(max(version), 0) FROM ${table})
      RETURNING id`,
    projectionState: `SELECT (SELECT coalesce(max(version), 0) FROM ${table}) AS version,
      EXISTS (SELECT 1 FROM ${projections} WHERE id = $1) AS found`
  }
}

/**
 * Makes a read transaction's snapshot stable across its statements.
 *
 * @since 0.1.0
 * @category statements
 */
export const repeatableRead = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
