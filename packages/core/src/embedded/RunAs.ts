/**
 * PostgreSQL refuses to run as root: when the tests run as root, servers run
 * as an unprivileged account and what they touch is handed over to it.
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Path from "node:path"

/**
 * The account embedded servers run as.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunAs {
  readonly uid: number
  readonly gid: number
  readonly user: string
}

/**
 * PostgreSQL refuses to run as root: pick an unprivileged account
 * (`PG_CLUSTER_USER`, then `postgres`, then `nobody`); undefined when not root.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveRunAs = (): RunAs | undefined => {
  if (process.getuid?.() !== 0) return undefined
  const found = pickAccount(Fs.readFileSync("/etc/passwd", "utf8"), process.env["PG_CLUSTER_USER"])
  if (found) return found
  throw new Error("running as root and no unprivileged user (postgres, nobody) exists to run PostgreSQL")
}

/**
 * The first of `wanted` (when given), `postgres` and `nobody` that the
 * `/etc/passwd` text has, or undefined.
 *
 * @since 0.1.0
 * @category parsing
 */
export const pickAccount = (passwdText: string, wanted?: string | undefined): RunAs | undefined => {
  const passwd = passwdText.split("\n").map((line) => line.split(":"))
  for (const name of [wanted, "postgres", "nobody"].filter((u): u is string => !!u)) {
    const row = passwd.find((fields) => fields[0] === name)
    if (row && row[2] !== undefined && row[3] !== undefined) {
      return { user: name, uid: Number(row[2]), gid: Number(row[3]) }
    }
  }
  return undefined
}

/**
 * Hands a file or a whole tree over to the account servers run as.
 *
 * @since 0.1.0
 * @category files
 */
export const chownTree = async (path: string, runAs: RunAs): Promise<void> => {
  await FsP.chown(path, runAs.uid, runAs.gid)
  const stat = await FsP.lstat(path)
  if (!stat.isDirectory()) return
  for (const name of await FsP.readdir(path)) await chownTree(Path.join(path, name), runAs)
}
