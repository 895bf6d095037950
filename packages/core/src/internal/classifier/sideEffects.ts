/** @internal */

// Side-effecting functions: names a read must not call.

/** @internal */
export const defaultSideEffectFunctions: ReadonlySet<string> = new Set([
  // sequences: write, or read session state that only the primary has
  "nextval",
  "setval",
  "currval",
  "lastval",
  // session and transaction state
  "set_config",
  "setseed",
  "pg_notify",
  "txid_current",
  "txid_current_if_assigned",
  "pg_current_xact_id",
  "pg_current_xact_id_if_assigned",
  // WAL and server control
  "pg_current_wal_lsn",
  "pg_current_wal_insert_lsn",
  "pg_current_wal_flush_lsn",
  "pg_switch_wal",
  "pg_create_restore_point",
  "pg_promote",
  "pg_cancel_backend",
  "pg_terminate_backend",
  "pg_reload_conf",
  "pg_rotate_logfile",
  "pg_backup_start",
  "pg_backup_stop",
  "pg_start_backup",
  "pg_stop_backup",
  "pg_logical_emit_message",
  "pg_create_physical_replication_slot",
  "pg_create_logical_replication_slot",
  "pg_drop_replication_slot",
  "pg_replication_slot_advance",
  "pg_logical_slot_get_changes",
  "pg_logical_slot_get_binary_changes",
  // statistics (every pg_stat_reset* also matches by prefix)
  "pg_stat_reset",
  "pg_stat_reset_shared",
  "pg_stat_reset_single_table_counters",
  "pg_stat_reset_single_function_counters",
  "pg_stat_reset_slru",
  "pg_stat_reset_replication_slot",
  "pg_stat_reset_subscription_stats",
  // advisory locks (every pg_advisory_* and pg_try_advisory_* also matches by prefix)
  "pg_advisory_lock",
  "pg_advisory_lock_shared",
  "pg_advisory_unlock",
  "pg_advisory_unlock_shared",
  "pg_advisory_unlock_all",
  "pg_advisory_xact_lock",
  "pg_advisory_xact_lock_shared",
  "pg_try_advisory_lock",
  "pg_try_advisory_lock_shared",
  "pg_try_advisory_xact_lock",
  "pg_try_advisory_xact_lock_shared",
  // large objects (every lo_* also matches by prefix)
  "lo_import",
  "lo_export",
  "lo_unlink",
  "lo_create",
  "lo_creat",
  "lo_open",
  "lo_put",
  "lo_from_bytea",
  // run SQL text that this lexer cannot see
  "dblink_exec",
  "query_to_xml",
  "query_to_xml_and_xmlschema"
])

const sideEffectPrefixes: ReadonlyArray<string> = ["pg_advisory_", "pg_try_advisory_", "lo_", "pg_stat_reset"]

// A configured name is matched on its last component and on the whole name, so
// `audit.log_access` catches `log_access(...)` reached through search_path too.
/** @internal */
export const addConfiguredName = (names: Set<string>, name: string): void => {
  const full = name.trim().toLowerCase().replaceAll("\"", "")
  if (full.length === 0) return
  names.add(full)
  names.add(full.slice(full.lastIndexOf(".") + 1))
}

/** @internal */
export const isSideEffectFunction = (names: ReadonlySet<string>, name: string): boolean => {
  if (names.has(name)) return true
  for (const prefix of sideEffectPrefixes) {
    if (name.startsWith(prefix)) return true
  }
  return false
}
