/** @internal */
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import type * as SchemaIssue from "effect/SchemaIssue"
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
  return Result.match(ConnectionString.parseTarget(text), { onFailure: (reason) => reason, onSuccess: () => "is invalid" })
}

/** @internal */
export const invalid = (path: ReadonlyArray<PropertyKey>, reason: string) =>
  new InvalidConfig({ field: pathOf(path) || "config", reason })

/** The first leaf of an issue tree, with the path to it. */
const firstLeaf = (
  issue: SchemaIssue.Issue,
  path: ReadonlyArray<PropertyKey> = []
): { readonly issue: SchemaIssue.Issue; readonly path: ReadonlyArray<PropertyKey> } => {
  switch (issue._tag) {
    case "Pointer":
      return firstLeaf(issue.issue, [...path, ...issue.path])
    case "Filter":
    case "Encoding":
      return firstLeaf(issue.issue, path)
    case "Composite":
    case "AnyOf":
      return issue.issues.length > 0 ? firstLeaf(issue.issues[0]!, path) : { issue, path }
    default:
      return { issue, path }
  }
}

/** The key of `reasons` for a path (array indexes as `[]`). */
const keyOf = (path: ReadonlyArray<PropertyKey>) => pathOf(path).replace(/\[\d+\]/g, "[]")

/** A `Redacted` reports a bad content at its `value`: the option is the one holding it. */
const optionPath = (path: ReadonlyArray<PropertyKey>): ReadonlyArray<PropertyKey> =>
  path.length > 1 && path[path.length - 1] === "value" && reasons[keyOf(path.slice(0, -1))] !== undefined
    ? path.slice(0, -1)
    : path

/** An InvalidConfig for the first issue of a failed decode or encode. @internal */
export const fromIssue = (input: unknown, side: Side) => (error: SchemaIssue.Issue): InvalidConfig => {
  const leaf = firstLeaf(error)
  if (leaf.issue._tag === "UnexpectedKey") {
    const parent = leaf.path.slice(0, -1)
    const known = optionsAt[pathOf(parent)] ?? []
    const name = leaf.path[leaf.path.length - 1]
    // An unknown key is named only when it looks like a name, not a value put in the wrong place.
    return typeof name === "string" && /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name)
      ? invalid(leaf.path, `is not a known option; the options here are ${known.join(", ")}`)
      : invalid(parent, `has an option that is not known; the options here are ${known.join(", ")}`)
  }
  const path = optionPath(leaf.path)
  const key = keyOf(path)
  if (urlFields.has(key)) return invalid(path, urlReason(valueAt(input, path), side))
  return invalid(path, reasons[key] ?? "is invalid")
}
