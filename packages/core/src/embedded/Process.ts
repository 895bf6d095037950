/**
 * Spawning commands and embedded PostgreSQL servers, and finding a port for
 * one. Plain Node: each Effect line wraps them in scoped resources.
 *
 * @since 0.1.0
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { track, untrack } from "./Cleanup.js"
import type { RunAs } from "./RunAs.js"

/**
 * Runs a command to completion and returns its stdout; a non-zero exit
 * rejects with the command's stderr.
 *
 * @since 0.1.0
 * @category processes
 */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly runAs?: RunAs | undefined; readonly cwd?: string } = {}
): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = ChildProcess.spawn(command, args, {
      stdio: ["ignore", "pipe", "pipe"],
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.runAs ? { uid: options.runAs.uid, gid: options.runAs.gid } : {})
    })
    let out = ""
    let err = ""
    child.stdout.on("data", (chunk) => (out += chunk))
    child.stderr.on("data", (chunk) => (err += chunk))
    child.on("error", reject)
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${Path.basename(command)} exited with ${code}: ${err.trim()}`))
    )
  })

/**
 * The ports `freePort` picks from: below the kernels' ephemeral ranges (Linux 32768–60999, macOS and Windows
 * 49152–65535): a port the OS hands out for a listener on port 0 is also one
 * it may give an outgoing connection (a pg client's) before the server binds
 * it, and the server then fails with "Address already in use".
 *
 * @since 0.1.0
 * @category ports
 */
export const portRange: { readonly from: number; readonly to: number } = { from: 20000, to: 32767 }

const canListen = (Net: typeof import("node:net"), port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = Net.createServer()
    server.unref()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/**
 * A port no one listens on, for a server about to start: a random one in a
 * range no outgoing connection takes, checked by listening on it once.
 *
 * @since 0.1.0
 * @category ports
 */
export const freePort = async (): Promise<number> => {
  const Net = await import("node:net")
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = portRange.from + Math.floor(Math.random() * (portRange.to - portRange.from + 1))
    if (await canListen(Net, port)) return port
  }
  throw new Error(`no free port in ${portRange.from}–${portRange.to} after 50 tries`)
}

/**
 * A started server: its pid (also its process group), when it exits, and
 * whether it has.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerProcess {
  readonly pid: number
  readonly exited: Promise<number | null>
  readonly hasExited: () => boolean
}

/**
 * Starts `postgres -D dir` in a process group of its own, so that kill and
 * freeze reach the postmaster and every backend at once. Until it exits its
 * group is killed if Node exits first (see `Cleanup`).
 *
 * @since 0.1.0
 * @category processes
 */
export const spawnServer = (
  binaries: { readonly postgres: string },
  dataDir: string,
  logFile: string,
  runAs: RunAs | undefined
): ServerProcess => {
  const log = Fs.openSync(logFile, "a")
  try {
    const child = ChildProcess.spawn(binaries.postgres, ["-D", dataDir], {
      detached: true,
      cwd: Os.tmpdir(),
      stdio: ["ignore", log, log],
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {})
    })
    let done = false
    const exited = new Promise<number | null>((resolve) => {
      child.on("exit", (code) => {
        done = true
        untrack(child.pid!)
        resolve(code)
      })
      child.on("error", () => {
        done = true
        resolve(null)
      })
    })
    if (child.pid === undefined) throw new Error(`could not start ${binaries.postgres}`)
    track(child.pid)
    return { pid: child.pid, exited, hasExited: () => done }
  } finally {
    Fs.closeSync(log)
  }
}

/**
 * The last `lines` lines of a log file, or "" if it cannot be read.
 *
 * @since 0.1.0
 * @category logs
 */
export const tail = (file: string, lines = 15): string => {
  try {
    return Fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n")
  } catch {
    return ""
  }
}
