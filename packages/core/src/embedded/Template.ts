/**
 * The initdb template every cluster's primary copies (replicas are base
 * backups of the primary), the settings the nodes share, and the check of
 * user settings before anything starts.
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Binaries } from "./Binaries.js"
import { cacheRoot } from "./Binaries.js"
import { run } from "./Process.js"
import type { RunAs } from "./RunAs.js"
import { chownTree } from "./RunAs.js"

/**
 * Settings every node of a test cluster shares; tuned for speed, not durability.
 *
 * @since 0.1.0
 * @category settings
 */
export const baseSettings: Readonly<Record<string, string>> = {
  listen_addresses: "'127.0.0.1'",
  unix_socket_directories: "''",
  max_connections: "200",
  shared_buffers: "32MB",
  wal_level: "replica",
  max_wal_senders: "16",
  max_replication_slots: "16",
  wal_keep_size: "'512MB'",
  hot_standby: "on",
  hot_standby_feedback: "on",
  wal_receiver_status_interval: "'1s'",
  wal_retrieve_retry_interval: "'200ms'",
  fsync: "off",
  full_page_writes: "off",
  logging_collector: "off",
  log_min_messages: "warning",
  log_line_prefix: "'%m [%p] '",
  dynamic_shared_memory_type: "posix"
}

/**
 * Settings that come from harness options rather than from `settings`.
 * `walLevel: "logical"` is what logical replication (CDC) needs.
 *
 * @since 0.1.0
 * @category settings
 */
export const optionSettings = (options: { readonly walLevel?: "replica" | "logical" | undefined }): Record<string, string> =>
  options.walLevel ? { wal_level: options.walLevel } : {}

// PostgreSQL refuses to recover a standby whose value of one of these is
// below the primary's (it reads the primary's from pg_control and the WAL):
// every node of a cluster gets the same `settings`, and a replica is a base
// backup of the running primary, so they always match. Bounds as PostgreSQL
// 18 checks them at start.
const standbyIntegers: Readonly<Record<string, { readonly min: number; readonly max: number }>> = {
  max_connections: { min: 1, max: 262_143 },
  max_worker_processes: { min: 0, max: 262_143 },
  max_wal_senders: { min: 0, max: 262_143 },
  max_prepared_transactions: { min: 0, max: 262_143 },
  max_locks_per_transaction: { min: 10, max: 2_147_483_647 }
}

/** Written by the harness for each node: a user value would be overridden or break it. */
const harnessOwned = new Set(["port", "cluster_name", "primary_conninfo"])

const integerOf = (value: string): number | undefined => {
  const text = value.trim().replace(/^'(.*)'$/, "$1").trim()
  return /^\d+$/.test(text) ? Number(text) : undefined
}

/**
 * A setting the harness refuses before starting anything, and why.
 *
 * @since 0.1.0
 * @category models
 */
export interface SettingProblem {
  readonly setting: string
  readonly reason: string
}

/**
 * The first setting that would make a node fail to start (or the harness
 * lose control of it), or undefined. Cheap checks only: names, line breaks,
 * the integers standbys must match, and what a server refuses at start.
 *
 * @since 0.1.0
 * @category settings
 */
export const checkSettings = (
  settings: Readonly<Record<string, string>>,
  replicas: number
): SettingProblem | undefined => {
  const merged: Record<string, string> = { ...baseSettings, ...settings }
  for (const [setting, value] of Object.entries(settings)) {
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(setting)) return { setting, reason: "is not a setting name" }
    if (typeof value !== "string") return { setting, reason: "must be given as a string" }
    if (/[\r\n]/.test(value)) return { setting, reason: "has a line break in its value" }
    if (harnessOwned.has(setting)) return { setting, reason: "is set by the harness for each node" }
    const bounds = standbyIntegers[setting]
    if (bounds) {
      const n = integerOf(value)
      if (n === undefined || n < bounds.min || n > bounds.max) {
        return { setting, reason: `must be an integer from ${bounds.min} to ${bounds.max}, got ${JSON.stringify(value)}` }
      }
    }
  }
  const connections = integerOf(merged["max_connections"] ?? "100")
  const reserved = (integerOf(merged["superuser_reserved_connections"] ?? "3") ?? 3) +
    (integerOf(merged["reserved_connections"] ?? "0") ?? 0)
  if (connections !== undefined && connections <= reserved) {
    return {
      setting: "max_connections",
      reason: `must be more than superuser_reserved_connections plus reserved_connections (${reserved})`
    }
  }
  const senders = integerOf(merged["max_wal_senders"] ?? "10")
  if (senders !== undefined && senders < replicas) {
    return { setting: "max_wal_senders", reason: `must be at least the number of replicas (${replicas}): each streams over one` }
  }
  return undefined
}

/**
 * Settings as `postgresql.conf` lines (values already quoted as PostgreSQL
 * reads them), ending with a line break.
 *
 * @since 0.1.0
 * @category settings
 */
export const renderSettings = (settings: Readonly<Record<string, string>>): string =>
  Object.entries(settings).map(([key, value]) => `${key} = ${value}`).join("\n") + "\n"

/**
 * The initdb arguments for a template in `dataDir`: superuser `postgres`,
 * trust authentication, UTF8 in the C locale, no fsync.
 *
 * @since 0.1.0
 * @category templates
 */
export const initdbArgs = (dataDir: string): ReadonlyArray<string> => [
  "-D",
  dataDir,
  "-U",
  "postgres",
  "--auth=trust",
  "--encoding=UTF8",
  "--locale=C",
  "--no-sync",
  "--no-instructions"
]

/**
 * The directory of the cached template for a PostgreSQL version.
 *
 * @since 0.1.0
 * @category templates
 */
export const templateDir = (root: string, version: string): string => Path.join(root, `template-${version}-v1`)

/**
 * Runs initdb once per binary version into a cached template that every
 * cluster's primary copies: a copy takes milliseconds, initdb about a second.
 *
 * @since 0.1.0
 * @category templates
 */
export const ensureTemplate = async (binaries: Binaries, runAs: RunAs | undefined): Promise<string> => {
  const root = cacheRoot(runAs)
  const template = templateDir(root, binaries.version)
  if (Fs.existsSync(Path.join(template, "PG_VERSION"))) return template
  await FsP.mkdir(root, { recursive: true, mode: 0o755 })
  const staging = `${template}.${process.pid}.${Math.random().toString(36).slice(2)}`
  await FsP.mkdir(staging, { mode: 0o700 })
  try {
    if (runAs) await FsP.chown(staging, runAs.uid, runAs.gid)
    await run(binaries.initdb, initdbArgs(staging), { runAs, cwd: Os.tmpdir() })
    await FsP.appendFile(Path.join(staging, "postgresql.conf"), "\n" + renderSettings(baseSettings))
    if (runAs) await chownTree(Path.join(staging, "postgresql.conf"), runAs)
    // Another process may have won the race: theirs is as good as ours.
    await FsP.rename(staging, template).catch(async (error) => {
      if (!Fs.existsSync(Path.join(template, "PG_VERSION"))) throw error
    })
  } finally {
    await FsP.rm(staging, { recursive: true, force: true })
  }
  return template
}

/**
 * Copies a data directory keeping modes and owners (`cp -a`).
 *
 * @since 0.1.0
 * @category templates
 */
export const copyDataDir = (from: string, to: string): Promise<string> => run("cp", ["-a", from, to])
