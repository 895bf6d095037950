/** @internal */
import * as Result from "effect/Result"
import * as Redacted from "effect/Redacted"
import { parse } from "pg-connection-string"

// Connection strings are read the way pg reads them (pg-connection-string),
// so that what passes validation is what the driver will connect to. Every
// reason below is a fixed text: none quotes the string, which may hold a
// password.

/** Where a connection string points. @internal */
export interface Target {
  /** A host name, an IP address, or a Unix socket directory. */
  readonly host: string
  readonly port: number
  readonly database: string | undefined
}

/** @internal */
export const expected =
  "must be a PostgreSQL connection string: postgres://user:password@host:port/database, or postgres:///database?host=/socket/directory for a Unix socket"

const scheme = /^(?:postgres(?:ql)?|socket):/i

/** The target of a connection string, or a fixed reason why it has none. @internal */
export const parseTarget = (value: string): Result.Result<Target, string> => {
  if (!scheme.test(value)) return Result.fail(`${expected} (it does not start with postgres:// or postgresql://)`)
  let options: ReturnType<typeof parse>
  try {
    options = parse(value)
  } catch {
    // pg-connection-string also reads the files named by sslcert, sslkey and sslrootcert.
    return Result.fail(`${expected} (pg cannot parse it, or cannot read a file it names)`)
  }
  const host = options.host ?? ""
  if (host === "") return Result.fail(`${expected} (it names no host)`)
  const port = options.port === undefined || options.port === null || options.port === "" ? "5432" : options.port
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    return Result.fail(`${expected} (its port is not a number from 1 to 65535)`)
  }
  return Result.succeed({ host, port: Number(port), database: options.database ?? undefined })
}

/** @internal */
export const isPostgresUrl = (value: string): boolean => Result.isSuccess(parseTarget(value))

/** Host and port, for display; never the user or password. @internal */
export const addressOf = (url: Redacted.Redacted<string>): string =>
  Result.match(parseTarget(Redacted.value(url)), {
    onFailure: () => "(unparsable address)",
    onSuccess: ({ host, port }) => `${host.includes(":") ? `[${host}]` : host}:${port}`
  })

// pg's own trick for `postgres://user:password@/db?host=/socket`: the URL
// parser wants a host between `@` and `/`.
const dummyHost = "___DUMMY___"

/**
 * The same connection string without its password (in the user part or a
 * `password=` parameter), or a fixed reason why it cannot be rewritten.
 * @internal
 */
export const withoutPassword = (value: string): Result.Result<string, string> => {
  if (Result.isFailure(parseTarget(value))) return Result.fail(expected)
  let url: URL
  let dummy = false
  try {
    url = new URL(value)
  } catch {
    try {
      url = new URL(value.replace("@/", `@${dummyHost}/`))
      dummy = true
    } catch {
      return Result.fail(`${expected} (it cannot be rewritten without its password)`)
    }
  }
  url.password = ""
  for (const key of ["password", "sslpassword"]) {
    if (url.searchParams.has(key)) url.searchParams.delete(key)
  }
  const text = url.toString()
  return Result.succeed(dummy ? text.replace(`@${dummyHost}/`, "@/") : text)
}
