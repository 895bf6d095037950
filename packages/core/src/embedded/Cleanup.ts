/**
 * The last line of defence of the embedded clusters: if the Node process
 * exits without closing its scope (a crash, process.exit in a test runner),
 * no server outlives it and no cluster directory stays behind; what a process
 * killed by SIGKILL left is swept by the next one.
 *
 * @since 0.1.0
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { signalServer } from "./Signal.js"

const liveGroups = new Set<number>()
const liveDirs = new Set<string>()
let hooked = false
const cleanUp = () => {
  for (const pid of liveGroups) signalServer(pid, "SIGKILL")
  for (const dir of liveDirs) removeClusterDir(dir)
  liveGroups.clear()
  liveDirs.clear()
}
const hook = () => {
  if (hooked) return
  hooked = true
  process.once("exit", cleanUp)
  // A signal ends Node without "exit": clean up, then let the signal do what
  // it would have done (unless someone else handles it).
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      cleanUp()
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
    }
    process.once(signal, onSignal)
  }
}

/**
 * The prefix of this process's cluster directories (under the temp
 * directory): they are named after the process that owns them.
 *
 * @since 0.1.0
 * @category directories
 */
export const clusterDirPrefix = (pid: number = process.pid): string => `pg-cluster-${pid}-`

/**
 * The pid of the process that owns a cluster directory, from its name, or
 * undefined for any other name.
 *
 * @since 0.1.0
 * @category directories
 */
export const clusterDirOwner = (name: string): number | undefined => {
  const match = /^pg-cluster-(\d+)-/.exec(name)
  return match ? Number(match[1]) : undefined
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Removes what a process that died without cleaning up (SIGKILL) left: its
 * servers are killed (their postmaster.pid names the process group) and its
 * directories removed. Directories of live processes are never touched.
 *
 * @since 0.1.0
 * @category directories
 */
export const sweepOrphans = (): void => {
  const root = Os.tmpdir()
  for (const entry of Fs.readdirSync(root)) {
    const owner = clusterDirOwner(entry)
    if (owner === undefined || alive(owner)) continue
    const dir = Path.join(root, entry)
    try {
      for (const node of Fs.readdirSync(dir)) {
        const pidFile = Path.join(dir, node, "postmaster.pid")
        if (!Fs.existsSync(pidFile)) continue
        const pid = Number(Fs.readFileSync(pidFile, "utf8").split("\n")[0])
        if (pid > 0) signalServer(pid, "SIGKILL")
      }
      removeClusterDir(dir)
    } catch {
      // another process is sweeping it too
    }
  }
}
// -----------------------------------------------------------------------------
// Shared memory
// -----------------------------------------------------------------------------

/**
 * The System V shared memory segment a server's `postmaster.pid` names (its
 * seventh line: key and id), or undefined when the file names none.
 *
 * @since 0.1.0
 * @category shared memory
 */
export const segmentOf = (pidFile: string): { readonly key: number; readonly id: number } | undefined => {
  const [key, id] = (pidFile.split("\n")[6] ?? "").trim().split(/\s+/).map(Number)
  return key !== undefined && id !== undefined && Number.isInteger(key) && Number.isInteger(id) && key > 0 && id >= 0
    ? { key, id }
    : undefined
}

/**
 * The segments `/proc/sysvipc/shm` lists, by id: their key and how many
 * processes have them attached.
 *
 * @since 0.1.0
 * @category shared memory
 */
export const parseSegments = (text: string): ReadonlyMap<number, { readonly key: number; readonly attached: number }> => {
  const lines = text.trim().split("\n")
  const header = (lines[0] ?? "").trim().split(/\s+/)
  const [keyAt, idAt, attachedAt] = ["key", "shmid", "nattch"].map((name) => header.indexOf(name))
  const segments = new Map<number, { readonly key: number; readonly attached: number }>()
  if (keyAt! < 0 || idAt! < 0 || attachedAt! < 0) return segments
  for (const line of lines.slice(1)) {
    const fields = line.trim().split(/\s+/).map(Number)
    segments.set(fields[idAt!]!, { key: fields[keyAt!]!, attached: fields[attachedAt!]! })
  }
  return segments
}

/**
 * Removes the shared memory segments that servers killed with SIGKILL left
 * behind under `dir` (a cluster directory, or one data directory, whose
 * servers were killed): each one a `postmaster.pid` names, if the kernel
 * still lists it under that key (one still attached by a dying server goes
 * at its last detach). A server stopped cleanly removes its own; PostgreSQL
 * reclaims a killed server's segment only when it starts again on the same
 * data directory, so a directory about to go must give it back, or the
 * segments pile up until the kernel's limit (SHMMNI) refuses every new
 * server. Linux only (`/proc/sysvipc/shm`, `ipcrm`); elsewhere, nothing.
 *
 * @since 0.1.0
 * @category shared memory
 */
export const releaseSegments = (dir: string): void => {
  let listed: ReadonlyMap<number, { readonly key: number; readonly attached: number }>
  try {
    listed = parseSegments(Fs.readFileSync("/proc/sysvipc/shm", "utf8"))
  } catch {
    return
  }
  const pidFiles = [Path.join(dir, "postmaster.pid")]
  try {
    for (const node of Fs.readdirSync(dir)) pidFiles.push(Path.join(dir, node, "postmaster.pid"))
  } catch {
    return
  }
  for (const pidFile of pidFiles) {
    let segment: { readonly key: number; readonly id: number } | undefined
    try {
      segment = segmentOf(Fs.readFileSync(pidFile, "utf8"))
    } catch {
      continue
    }
    const found = segment && listed.get(segment.id)
    // Still attached by a server that is dying: the kernel destroys it at its last detach.
    if (segment && found && found.key === segment.key) {
      ChildProcess.spawnSync("ipcrm", ["-m", String(segment.id)], { stdio: "ignore" })
    }
  }
}

/**
 * Removes a cluster directory, with the shared memory its killed servers
 * left (see `releaseSegments`).
 *
 * @since 0.1.0
 * @category directories
 */
export const removeClusterDir = (dir: string): void => {
  releaseSegments(dir)
  Fs.rmSync(dir, { recursive: true, force: true })
}

/**
 * Kills the server whose process group is `pid` if Node exits first.
 *
 * @since 0.1.0
 * @category tracking
 */
export const track = (pid: number): void => {
  hook()
  liveGroups.add(pid)
}
/**
 * Forgets a server that exited or was stopped.
 *
 * @since 0.1.0
 * @category tracking
 */
export const untrack = (pid: number): void => {
  liveGroups.delete(pid)
}

/**
 * Removes a cluster directory if Node exits first.
 *
 * @since 0.1.0
 * @category tracking
 */
export const trackDir = (dir: string): void => {
  hook()
  liveDirs.add(dir)
}
/**
 * Forgets a cluster directory that was removed.
 *
 * @since 0.1.0
 * @category tracking
 */
export const untrackDir = (dir: string): void => {
  liveDirs.delete(dir)
}
