/**
 * PgBouncer for both lines' `bench/pgbouncer.ts` scenarios (`npm run
 * scenario:pgbouncer`): finds Debian's binary, starts one PgBouncer in
 * transaction mode in front of each node of a cluster, and stops them all.
 * Plain Node, no Effect.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { track, untrack } from "../src/embedded/Cleanup.js"
import { freePort } from "../src/embedded/Process.js"
import { chownTree, resolveRunAs } from "../src/embedded/RunAs.js"

/** Where Debian's package puts it, then the PATH. */
export const findBinary = (): string | undefined => {
  const candidates = [
    "/usr/sbin/pgbouncer",
    "/usr/bin/pgbouncer",
    ...(process.env["PATH"] ?? "").split(Path.delimiter).map((dir) => Path.join(dir, "pgbouncer"))
  ]
  return candidates.find((file) => {
    try {
      Fs.accessSync(file, Fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/** What to tell the user when the binary is missing. */
export const missingMessage = [
  "scenario:pgbouncer needs PgBouncer, which is not installed:",
  "  no executable `pgbouncer` in /usr/sbin, /usr/bin or on the PATH.",
  "Install Debian's package (as root):",
  "  apt-get update && apt-get install -y pgbouncer",
  "then run `npm run scenario:pgbouncer` again."
].join("\n")

/** `pgbouncer --version`'s first line, e.g. `PgBouncer 1.18.0`. */
export const version = (binary: string): string =>
  ChildProcess.execFileSync(binary, ["--version"], { encoding: "utf8" }).split("\n")[0]!.trim()

const supportsPreparedStatements = (text: string): boolean => {
  const match = /(\d+)\.(\d+)/.exec(text)
  return match !== null && (Number(match[1]) > 1 || Number(match[2]) >= 21)
}

export interface Target {
  readonly name: string
  readonly host: string
  readonly port: number
}

export interface Bouncer {
  readonly name: string
  readonly port: number
  readonly logFile: string
}

export interface Bouncers {
  readonly bouncers: ReadonlyArray<Bouncer>
  readonly version: string
  /** Stops every PgBouncer (SIGINT, then SIGKILL after 5 s) and removes the directory. */
  readonly stop: () => Promise<void>
}

const canConnect = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * One PgBouncer per target, `pool_mode = transaction`, trust auth for
 * `users` (loopback only), `default_pool_size` server connections per
 * database and user; with PgBouncer 1.21 or later `max_prepared_statements =
 * 0`, so a named prepared statement fails as it does on older ones.
 * Whatever started is stopped if a later one fails.
 */
export const start = async (
  binary: string,
  targets: ReadonlyArray<Target>,
  options: { readonly users: ReadonlyArray<string>; readonly defaultPoolSize?: number | undefined }
): Promise<Bouncers> => {
  const runAs = resolveRunAs()
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgbouncer-scenario-"))
  const text = version(binary)
  const started: Array<{ child: ChildProcess.ChildProcess; exited: Promise<void> }> = []
  const stop = async () => {
    await Promise.all(started.map(async ({ child, exited }) => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT")
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000)
      await exited
      clearTimeout(timer)
      untrack(child.pid!)
    }))
    Fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    Fs.writeFileSync(Path.join(dir, "users.txt"), options.users.map((user) => `"${user}" ""`).join("\n") + "\n")
    const bouncers: Array<Bouncer> = []
    for (const target of targets) {
      const port = await freePort()
      const logFile = Path.join(dir, `${target.name}.log`)
      const ini = Path.join(dir, `${target.name}.ini`)
      Fs.writeFileSync(
        ini,
        [
          "[databases]",
          `* = host=${target.host} port=${target.port}`,
          "[pgbouncer]",
          "listen_addr = 127.0.0.1",
          `listen_port = ${port}`,
          "unix_socket_dir =",
          "auth_type = trust",
          `auth_file = ${Path.join(dir, "users.txt")}`,
          "pool_mode = transaction",
          `default_pool_size = ${options.defaultPoolSize ?? 5}`,
          "max_client_conn = 500",
          // Sent by some drivers. Not client_connection_check_interval: the Effect 4 line leaves it out for
          // a node with a direct URL, and the scenario proves it by not ignoring it here.
          "ignore_startup_parameters = extra_float_digits,options",
          ...(supportsPreparedStatements(text) ? ["max_prepared_statements = 0"] : []),
          `admin_users = ${options.users[0]}`,
          `logfile = ${logFile}`,
          `pidfile = ${Path.join(dir, `${target.name}.pid`)}`
        ].join("\n") + "\n"
      )
      if (runAs) await chownTree(dir, runAs)
      const child = ChildProcess.spawn(binary, [ini], {
        detached: true,
        stdio: "ignore",
        ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {})
      })
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      started.push({ child, exited })
      if (child.pid !== undefined) track(child.pid)
      const deadline = Date.now() + 10_000
      while (!(await canConnect(port))) {
        if (child.exitCode !== null || Date.now() > deadline) {
          const log = Fs.existsSync(logFile) ? Fs.readFileSync(logFile, "utf8").split("\n").slice(-10).join("\n") : ""
          throw new Error(`PgBouncer for ${target.name} did not start (exit ${child.exitCode}):\n${log}`)
        }
        await sleep(50)
      }
      bouncers.push({ name: target.name, port, logFile })
    }
    return { bouncers, version: text, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
