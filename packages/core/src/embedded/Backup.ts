/**
 * Re-cloning a data directory from a running primary with the low-level
 * backup API (pg_backup_start, a file copy, pg_backup_stop): the embedded
 * binaries ship neither pg_basebackup nor pg_rewind. The connection is the
 * caller's (any client with a `query` method), so no driver is imported here.
 *
 * @since 0.1.0
 */
import * as FsP from "node:fs/promises"
import * as Path from "node:path"

/** Directories whose contents a base backup leaves out (the directories themselves stay). */
const emptied = new Set(["pg_wal", "pg_replslot", "pg_stat_tmp", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_subtrans"])

/** Files a base backup leaves out: the running server's own, and recovery markers. */
const skipped = new Set([
  "postmaster.pid",
  "postmaster.opts",
  "backup_label",
  "backup_label.old",
  "tablespace_map",
  "standby.signal",
  "recovery.signal",
  "pg_internal.init"
])

/**
 * What a base backup does with a data-directory entry: leaves it out
 * (`"skip"`), keeps the directory but not its contents (`"empty"`, only at
 * the top level), or copies it (`"copy"`).
 *
 * @since 0.1.0
 * @category backups
 */
export const backupAction = (name: string, top: boolean, isDirectory: boolean): "skip" | "empty" | "copy" =>
  skipped.has(name) ? "skip" : top && isDirectory && emptied.has(name) ? "empty" : "copy"

const isGone = (error: unknown) => (error as NodeJS.ErrnoException).code === "ENOENT"

/**
 * Copies a live data directory. Files change or vanish while the server runs:
 * a vanished one is skipped, a torn one is repaired by WAL replay from the
 * backup's start.
 */
const copyLive = async (from: string, to: string, top: boolean): Promise<void> => {
  const stat = await FsP.stat(from)
  await FsP.mkdir(to, { mode: stat.mode & 0o777 })
  let names: Array<string>
  try {
    names = await FsP.readdir(from)
  } catch (error) {
    if (isGone(error)) return
    throw error
  }
  // Entries concurrently: a data directory is about a thousand small files,
  // and one at a time the copy costs a second.
  await Promise.all(names.map(async (name) => {
    if (backupAction(name, top, false) === "skip") return
    const source = Path.join(from, name)
    const target = Path.join(to, name)
    try {
      const entry = await FsP.lstat(source)
      if (entry.isDirectory()) {
        if (backupAction(name, top, true) === "empty") await FsP.mkdir(target, { mode: entry.mode & 0o777 })
        else await copyLive(source, target, false)
      } else if (entry.isFile()) {
        await FsP.copyFile(source, target)
        await FsP.chmod(target, entry.mode & 0o777)
      }
    } catch (error) {
      if (!isGone(error)) throw error
    }
  }))
}

/**
 * A connection to the primary, open for the length of one backup: the backup
 * session must stay open across the copy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Session {
  readonly query: (sql: string) => Promise<{ readonly rows: ReadonlyArray<any> }>
}

/**
 * Replaces `target` with a base backup of the running primary at
 * `primaryDataDir`, made over `session`, which the caller opens and closes.
 * `backup_label` (what pg_backup_stop returns) tells the new node where
 * recovery starts.
 *
 * @since 0.1.0
 * @category backups
 */
export const cloneFrom = async (session: Session, primaryDataDir: string, target: string): Promise<void> => {
  await session.query("SELECT pg_backup_start('pg-cluster-clone', true)")
  await FsP.rm(target, { recursive: true, force: true })
  await copyLive(primaryDataDir, target, true)
  const { rows } = await session.query("SELECT labelfile, spcmapfile FROM pg_backup_stop(false)")
  const stop = rows[0] as { readonly labelfile: string; readonly spcmapfile: string | null }
  await FsP.writeFile(Path.join(target, "backup_label"), stop.labelfile)
  if (stop.spcmapfile) await FsP.writeFile(Path.join(target, "tablespace_map"), stop.spcmapfile)
}
