/**
 * Signalling embedded PostgreSQL servers and other processes the harness
 * started: whole process groups, a server with every backend, one process.
 * A process already gone is never an error.
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"

/**
 * Sends a signal to a whole process group; a group already gone is fine.
 *
 * @since 0.1.0
 * @category signals
 */
export const signalGroup = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pid, signal)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
  }
}

/**
 * The parent pid in a line of `/proc/<pid>/stat` (`pid (comm) state ppid …`),
 * or undefined if the line does not have one. `comm` may contain spaces and
 * parentheses, so the fields are read after the last `)`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parentPidOf = (stat: string): number | undefined => {
  const close = stat.lastIndexOf(")")
  if (close < 0) return undefined
  const ppid = Number(stat.slice(close + 2).split(" ")[1])
  return Number.isInteger(ppid) && ppid >= 0 ? ppid : undefined
}

/** The direct children of a process, from /proc (empty where there is no /proc). */
const childrenOf = (pid: number): Array<number> => {
  const children: Array<number> = []
  let entries: Array<string>
  try {
    entries = Fs.readdirSync("/proc")
  } catch {
    return children
  }
  for (const entry of entries) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue
    try {
      if (parentPidOf(Fs.readFileSync(`/proc/${entry}/stat`, "utf8")) === pid) children.push(Number(entry))
    } catch {
      // gone while we looked
    }
  }
  return children
}

/**
 * Signals a whole server: the postmaster's process group, then each of its
 * children. PostgreSQL puts every backend in a session of its own (setsid),
 * so signalling the postmaster's group alone would freeze or kill the
 * postmaster while existing connections went on being served.
 *
 * @since 0.1.0
 * @category signals
 */
export const signalServer = (pid: number, signal: NodeJS.Signals): void => {
  signalGroup(pid, signal)
  for (const child of childrenOf(pid)) signalGroup(child, signal)
}

/**
 * Sends a signal to one process; a process already gone is fine.
 *
 * @since 0.1.0
 * @category signals
 */
export const signalProcess = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(pid, signal)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
  }
}

/**
 * Whether any process of the group `pid` is still alive.
 *
 * @since 0.1.0
 * @category signals
 */
export const groupAlive = (pid: number): boolean => {
  try {
    process.kill(-pid, 0)
    return true
  } catch {
    return false
  }
}
