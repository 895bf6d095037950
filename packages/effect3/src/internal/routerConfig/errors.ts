/** @internal */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import { InvalidConfig } from "../../RouterError.js"
import * as ConnectionString from "../connectionString.js"
import { optionsAt, reasons } from "./options.js"

// -----------------------------------------------------------------------------
// Errors: the reason of the field at the failing path
// -----------------------------------------------------------------------------

const urlFields = new Set(["primary", "hosts[]", "replicas[]", "direct.primary", "direct.replicas[]", "direct.hosts[]"])

/** `replicas[1]`, `health.interval`; `config` for the whole. @internal */
export const pathOf = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, key) => typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`,
    ""
  )

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown =>
  path.reduce<unknown>(
    (value, key) => typeof value === "object" && value !== null ? (value as Record<PropertyKey, unknown>)[key] : undefined,
    input
  )

/** Which side of the Schema a value was checked against. @internal */
export type Side = "type" | "json"

/** @internal */
export const urlReason = (value: unknown, side: Side): string => {
  const text = side === "json" ? value : Redacted.isRedacted(value) ? Redacted.value(value) : undefined
  if (typeof text !== "string") {
    return side === "json"
      ? ConnectionString.expected
      : "must be a Redacted PostgreSQL connection string (Redacted.make(\"postgres://...\"))"
  }
  return Either.match(ConnectionString.parseTarget(text), { onLeft: (reason) => reason, onRight: () => "is invalid" })
}

/** @internal */
export const invalid = (path: ReadonlyArray<PropertyKey>, reason: string) =>
  new InvalidConfig({ field: pathOf(path) || "config", reason })

/** An InvalidConfig for the first issue of a failed decode or encode. @internal */
export const fromParseError = (input: unknown, side: Side) => (error: ParseResult.ParseError): InvalidConfig => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  const path = issue?.path ?? []
  const key = pathOf(path).replace(/\[\d+\]/g, "[]")
  if (issue?._tag === "Unexpected") {
    const parent = path.slice(0, -1)
    // A function has no JSON form: `validate` is an option of the type side only.
    const known = (optionsAt[pathOf(parent)] ?? []).filter((option) => side === "type" || option !== "validate")
    const name = path[path.length - 1]
    // An unknown key is named only when it looks like a name, not a value put in the wrong place.
    return typeof name === "string" && /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name)
      ? invalid(path, `is not a known option; the options here are ${known.join(", ")}`)
      : invalid(parent, `has an option that is not known; the options here are ${known.join(", ")}`)
  }
  if (urlFields.has(key)) return invalid(path, urlReason(valueAt(input, path), side))
  return invalid(path, reasons[key] ?? "is invalid")
}
