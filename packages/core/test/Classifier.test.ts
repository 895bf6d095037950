import { describe, expect, it } from "vitest"
import * as Classifier from "../src/Classifier.js"

type Case = readonly [sql: string, intent: Classifier.Intent, reason?: Classifier.Reason]

const long = (n: number): string =>
  `SELECT ${Array.from({ length: n }, (_, i) => `c${i}, 'v; ${i}' AS "for update ${i}"`).join(", ")} FROM t`

const corpus: ReadonlyArray<Case> = [
  // plain reads
  ["SELECT 1", "read", "read-statement"],
  ["select 1", "read", "read-statement"],
  ["sElEcT 1", "read", "read-statement"],
  ["SELECT * FROM users WHERE id = $1", "read", "read-statement"],
  ["SELECT * FROM users WHERE id = $1 AND org = $2", "read", "read-statement"],
  ["SELECT id::text, created_at::date FROM t", "read", "read-statement"],
  ["SELECT '2024-01-01'::timestamptz", "read", "read-statement"],
  ["SELECT * FROM t ORDER BY id LIMIT 10 OFFSET 20", "read", "read-statement"],
  ["SELECT * FROM t ORDER BY id OFFSET 5 ROWS FETCH FIRST 1 ROWS ONLY", "read", "read-statement"],
  ["SELECT * FROM t FETCH NEXT 10 ROWS WITH TIES", "read", "read-statement"],
  ["SELECT count(*) FROM t GROUP BY a HAVING count(*) > 1", "read", "read-statement"],
  ["SELECT a, row_number() OVER (PARTITION BY b ORDER BY c) FROM t", "read", "read-statement"],
  ["SELECT * FROM a JOIN b ON a.id = b.a_id LEFT JOIN c USING (id)", "read", "read-statement"],
  ["SELECT * FROM t WHERE x IN (SELECT y FROM u WHERE z > 3)", "read", "read-statement"],
  ["SELECT EXISTS (SELECT 1 FROM t WHERE id = $1)", "read", "read-statement"],
  ["SELECT deleted_at, updated_at, inserted_by, merged FROM t", "read", "read-statement"],
  ["SELECT * FROM updates JOIN deletes ON true JOIN inserts ON true", "read", "read-statement"],
  ["SELECT into_x, for_update, x_into FROM t", "read", "read-statement"],
  ["SELECT format, tofrom, stdout FROM t", "read", "read-statement"],
  ["SELECT substring(name from 1 for 3) FROM t", "read", "read-statement"],
  ["SELECT overlay('abc' placing 'x' from 2 for 1)", "read", "read-statement"],
  ["SELECT x FROM generate_series(1, 10) AS g(x)", "read", "read-statement"],
  ["SELECT now(), current_timestamp, current_user", "read", "read-statement"],
  ["SELECT pg_sleep(0.1)", "read", "read-statement"],
  ["SELECT current_setting('search_path')", "read", "read-statement"],
  ["SELECT pg_last_wal_replay_lsn()", "read", "read-statement"],
  ["SELECT a->>'k', b #> '{a,b}', c @> '[1]'::jsonb FROM t", "read", "read-statement"],
  ["SELECT ARRAY[1,2,3][1], t.arr[2:3] FROM t", "read", "read-statement"],
  ["SELECT 1.5e10, .5, 1_000_000, 0x1F", "read", "read-statement"],
  ["SELECT * FROM t WHERE a = ? AND b = :name", "read", "read-statement"],
  ["SELECT * FROM t TABLESAMPLE SYSTEM (10)", "read", "read-statement"],
  ["SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b", "read", "read-statement"],
  ["SELECT * FROM t WHERE to_tsvector(body) @@ to_tsquery($1)", "read", "read-statement"],
  ["SELECT to_char(now(), 'YYYY')", "read", "read-statement"],
  ["SELECT * FROM pg_catalog.pg_tables", "read", "read-statement"],
  ["SELECT 'a' || 'b' AS c", "read", "read-statement"],
  ["SELECT a.b.c FROM a", "read", "read-statement"],
  ["SELECT 1 UNION ALL SELECT 2 EXCEPT SELECT 3 INTERSECT SELECT 4", "read", "read-statement"],
  ["SELECT * FROM t WHERE name ILIKE 'a\\_%'", "read", "read-statement"],
  ["SELECT sum(x) FILTER (WHERE x > 0) FROM t", "read", "read-statement"],
  ["SELECT lower(email) FROM users", "read", "read-statement"],
  ["SELECT ünïcödé FROM tàble", "read", "read-statement"],
  ["SELECT $1::int + $2::int", "read", "read-statement"],
  ["SELECT a$b, c$$ FROM t", "read", "read-statement"],
  ["SELECT * FROM t WHERE ts > now() - interval '1 day'", "read", "read-statement"],
  ["SELECT json_agg(t) FROM (SELECT * FROM t LIMIT 5) t", "read", "read-statement"],
  ["SELECT pg_advisory FROM t", "read", "read-statement"],
  ["SELECT nextval FROM t", "read", "read-statement"],
  ["SELECT t.nextval, setval, currval FROM t", "read", "read-statement"],
  ["SELECT lo_x FROM t", "read", "read-statement"],
  ["SELECT 'nextval(1)'", "read", "read-statement"],
  ["SELECT 1 -- DELETE FROM t", "read", "read-statement"],
  ["SELECT 1 /* nextval('s') */", "read", "read-statement"],
  ["SELECT nextval /* not a call */ FROM t", "read", "read-statement"],
  // leading whitespace, comments and parentheses
  ["   SELECT 1", "read", "read-statement"],
  ["\n\t\r\n SELECT\n1\n", "read", "read-statement"],
  ["-- leading\nSELECT 1", "read", "read-statement"],
  ["/* leading */ SELECT 1", "read", "read-statement"],
  ["/* a /* b */ DELETE */ SELECT 1", "read", "read-statement"],
  ["/* outer /* inner /* deepest */ */ INSERT */ SELECT 1", "read", "read-statement"],
  ["-- a\n/* b */ -- c\n  select 1", "read", "read-statement"],
  ["(SELECT 1)", "read", "read-statement"],
  ["((SELECT 1))", "read", "read-statement"],
  ["(SELECT 1) UNION (SELECT 2)", "read", "read-statement"],
  ["( /* c */ ( select 1 ) )", "read", "read-statement"],
  ["(VALUES (1), (2))", "read", "read-statement"],
  ["(WITH x AS (SELECT 1) SELECT * FROM x)", "read", "read-statement"],
  ["(TABLE t)", "read", "read-statement"],
  // trailing semicolons
  ["SELECT 1;", "read", "read-statement"],
  ["SELECT 1;;", "read", "read-statement"],
  ["SELECT 1; -- trailing", "read", "read-statement"],
  ["SELECT 1; /* trailing */ ; ", "read", "read-statement"],
  ["SELECT 1 ;\n\n", "read", "read-statement"],
  // keywords inside literals, identifiers and comments
  ["SELECT 'DELETE FROM t'", "read", "read-statement"],
  ["SELECT 'it''s; DELETE FROM t'", "read", "read-statement"],
  ["SELECT 'FOR UPDATE'", "read", "read-statement"],
  ["SELECT E'it\\'s; DELETE'", "read", "read-statement"],
  ["SELECT e'\\\\'", "read", "read-statement"],
  ["SELECT E'a\\\\', 'b'", "read", "read-statement"],
  ["SELECT E'x'' INTO y'", "read", "read-statement"],
  ["SELECT U&'d\\0061t\\+000061 insert'", "read", "read-statement"],
  ["SELECT U&'!0061 update' UESCAPE '!'", "read", "read-statement"],
  ["SELECT B'1010', X'1F', N'update'", "read", "read-statement"],
  ["SELECT b'01', x'ff', n'for share'", "read", "read-statement"],
  ["SELECT $$ insert $$", "read", "read-statement"],
  ["SELECT $x$ for update $x$", "read", "read-statement"],
  ["SELECT $body$ it's $$ nested $$ DELETE $body$", "read", "read-statement"],
  ["SELECT $a$x$a$, $b$ ; DROP TABLE t; $b$", "read", "read-statement"],
  ["SELECT $tag_1$ nextval('s') $tag_1$", "read", "read-statement"],
  ["SELECT \"update\" FROM t", "read", "read-statement"],
  ["SELECT \"for update\"", "read", "read-statement"],
  ["SELECT \"a\"\"b; delete\" FROM t", "read", "read-statement"],
  ["SELECT \"INTO\", \"insert\", \"merge\" FROM \"delete\"", "read", "read-statement"],
  ["SELECT \"nextval\" FROM t", "read", "read-statement"],
  ["SELECT 1 --\n", "read", "read-statement"],
  ["SELECT 1 +-- comment\n 2", "read", "read-statement"],
  ["SELECT 2 */* c */ 3", "read", "read-statement"],
  // WITH and VALUES and TABLE and SHOW
  ["WITH x AS (SELECT 1) SELECT * FROM x", "read", "read-statement"],
  ["WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT * FROM r", "read", "read-statement"],
  ["with a as materialized (select 1), b as not materialized (select 2) select * from a, b", "read", "read-statement"],
  ["VALUES (1), (2)", "read", "read-statement"],
  ["values (1, 'a'), (2, 'b') order by 1", "read", "read-statement"],
  ["TABLE t", "read", "read-statement"],
  ["table public.users;", "read", "read-statement"],
  ["SHOW search_path", "read", "read-statement"],
  ["show ALL", "read", "read-statement"],
  ["SHOW transaction_isolation;", "read", "read-statement"],
  // EXPLAIN
  ["EXPLAIN SELECT 1", "read", "explain-only"],
  ["explain select * from t where id = 1", "read", "explain-only"],
  ["EXPLAIN VERBOSE SELECT 1", "read", "explain-only"],
  ["EXPLAIN INSERT INTO t VALUES (1)", "read", "explain-only"],
  ["EXPLAIN DELETE FROM t", "read", "explain-only"],
  ["EXPLAIN (FORMAT JSON) SELECT 1", "read", "explain-only"],
  ["EXPLAIN (COSTS off, VERBOSE) UPDATE t SET a = 1", "read", "explain-only"],
  ["EXPLAIN (ANALYZE false) DELETE FROM t", "read", "explain-only"],
  ["EXPLAIN (ANALYZE off, BUFFERS) DELETE FROM t", "read", "explain-only"],
  ["EXPLAIN (ANALYZE 0) DELETE FROM t", "read", "explain-only"],
  ["EXPLAIN (SELECT 1)", "read", "explain-only"],
  ["EXPLAIN SELECT nextval('s')", "read", "explain-only"],
  ["EXPLAIN ANALYZE SELECT 1", "read", "explain-analyze-read"],
  ["EXPLAIN ANALYSE SELECT * FROM t", "read", "explain-analyze-read"],
  ["EXPLAIN ANALYZE VERBOSE SELECT 1", "read", "explain-analyze-read"],
  ["EXPLAIN (ANALYZE, BUFFERS) SELECT 1", "read", "explain-analyze-read"],
  ["EXPLAIN (ANALYZE true, FORMAT YAML) WITH x AS (SELECT 1) SELECT * FROM x", "read", "explain-analyze-read"],
  ["EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "write", "explain-analyze-write"],
  ["EXPLAIN ANALYSE DELETE FROM t", "write", "explain-analyze-write"],
  ["EXPLAIN VERBOSE ANALYZE UPDATE t SET a = 1", "write", "explain-analyze-write"],
  ["EXPLAIN ANALYZE VERBOSE MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "write", "explain-analyze-write"],
  ["EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t", "write", "explain-analyze-write"],
  ["EXPLAIN (ANALYZE true) DELETE FROM t", "write", "explain-analyze-write"],
  ["EXPLAIN (ANALYZE on) UPDATE t SET a = 1", "write", "explain-analyze-write"],
  ["EXPLAIN (BUFFERS, ANALYZE) INSERT INTO t VALUES (1)", "write", "explain-analyze-write"],
  ["EXPLAIN (ANALYZE 'off') DELETE FROM t", "write", "explain-analyze-write"],
  ["EXPLAIN (ANALYZE false, ANALYZE) DELETE FROM t", "write", "explain-analyze-write"],
  ["EXPLAIN ANALYZE SELECT nextval('s')", "write", "explain-analyze-write"],
  ["EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", "write", "explain-analyze-write"],
  ["EXPLAIN ANALYZE WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "write", "explain-analyze-write"],
  ["EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", "write", "explain-analyze-write"],
  ["EXPLAIN EXECUTE stmt(1)", "write", "not-a-read"],
  ["EXPLAIN CREATE TABLE x AS SELECT 1", "write", "not-a-read"],
  ["EXPLAIN SELECT 1; DELETE FROM t", "write", "multiple-statements"],
  ["EXPLAIN", "write", "unparseable"],
  ["EXPLAIN (ANALYZE", "write", "unparseable"],
  // COPY
  ["COPY t TO STDOUT", "read", "copy-to-stdout"],
  ["copy public.t (a, b) to stdout with (format csv, header)", "read", "copy-to-stdout"],
  ["COPY (SELECT * FROM t WHERE a > 1) TO STDOUT", "read", "copy-to-stdout"],
  ["COPY (SELECT a FROM t) TO STDOUT WITH CSV HEADER", "read", "copy-to-stdout"],
  ["COPY \"to\" TO STDOUT (FORMAT binary)", "read", "copy-to-stdout"],
  ["COPY t FROM STDIN", "write", "copy-from"],
  ["copy t (a, b) from stdin with (format csv)", "write", "copy-from"],
  ["COPY t FROM '/tmp/data.csv'", "write", "copy-from"],
  ["COPY t FROM PROGRAM 'cat data.csv'", "write", "copy-from"],
  ["COPY t TO '/tmp/out.csv'", "write", "copy-to-server"],
  ["COPY t TO PROGRAM 'gzip > /tmp/out.gz'", "write", "copy-to-server"],
  ["COPY (SELECT nextval('s')) TO STDOUT", "write", "side-effect-function"],
  ["COPY (DELETE FROM t RETURNING *) TO STDOUT", "write", "data-modifying-statement"],
  ["COPY (SELECT * FROM t FOR UPDATE) TO STDOUT", "write", "locking-clause"],
  ["COPY t TO STDOUT; COPY t FROM STDIN", "write", "multiple-statements"],
  ["COPY t", "write", "unparseable"],
  // locking clauses
  ["SELECT * FROM t FOR UPDATE", "write", "locking-clause"],
  ["select * from t for update", "write", "locking-clause"],
  ["SELECT * FROM t FOR NO KEY UPDATE", "write", "locking-clause"],
  ["SELECT * FROM t FOR SHARE", "write", "locking-clause"],
  ["SELECT * FROM t FOR KEY SHARE", "write", "locking-clause"],
  ["SELECT * FROM t FOR UPDATE OF t SKIP LOCKED", "write", "locking-clause"],
  ["SELECT * FROM t FOR SHARE NOWAIT", "write", "locking-clause"],
  ["SELECT * FROM t LIMIT 1 FOR\n  /* lock */ UPDATE", "write", "locking-clause"],
  ["SELECT * FROM (SELECT * FROM t FOR UPDATE) s", "write", "locking-clause"],
  ["SELECT * FROM t WHERE id IN (SELECT id FROM u FOR SHARE)", "write", "locking-clause"],
  ["WITH l AS (SELECT * FROM t FOR KEY SHARE) SELECT * FROM l", "write", "locking-clause"],
  ["(SELECT * FROM t FOR UPDATE)", "write", "locking-clause"],
  ["TABLE t FOR UPDATE", "write", "locking-clause"],
  // INTO
  ["SELECT * INTO new_t FROM t", "write", "select-into"],
  ["select a, b into temp x from t", "write", "select-into"],
  ["SELECT 1into t", "write", "select-into"],
  ["WITH x AS (SELECT 1) SELECT * INTO y FROM x", "write", "select-into"],
  // data-modifying statements inside would-be reads
  ["WITH x AS (INSERT INTO t VALUES (1) RETURNING id) SELECT * FROM x", "write", "data-modifying-statement"],
  ["WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "write", "data-modifying-statement"],
  ["WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM x", "write", "data-modifying-statement"],
  ["with x as (merge into t using s on true when matched then do nothing returning *) select 1", "write", "data-modifying-statement"],
  ["WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "write", "data-modifying-statement"],
  ["WITH x AS (SELECT 1) UPDATE t SET a = (SELECT * FROM x)", "write", "data-modifying-statement"],
  ["WITH x AS (SELECT id FROM t) DELETE FROM u USING x WHERE u.id = x.id", "write", "data-modifying-statement"],
  ["WITH RECURSIVE r AS (SELECT 1) MERGE INTO t USING r ON true WHEN NOT MATCHED THEN INSERT VALUES (1)", "write", "data-modifying-statement"],
  ["WITH a AS (SELECT 1), b AS (/* c */ DeLeTe FROM t) SELECT 1", "write", "data-modifying-statement"],
  ["SELECT t.update FROM t", "write", "data-modifying-statement"],
  // multiple statements
  ["SELECT 1; SELECT 2", "write", "multiple-statements"],
  ["SELECT 1; DELETE FROM t", "write", "multiple-statements"],
  ["SELECT 1;\n-- c\nSELECT 2;", "write", "multiple-statements"],
  ["SELECT 1;;; SELECT 2", "write", "multiple-statements"],
  ["SELECT 'a'; SELECT 'b'", "write", "multiple-statements"],
  ["SELECT 'a\\'; DELETE FROM t; --'", "write", "multiple-statements"],
  ["SHOW search_path; SET search_path = x", "write", "multiple-statements"],
  ["VALUES (1); COMMIT", "write", "multiple-statements"],
  ["; SELECT 1", "write", "multiple-statements"],
  // side-effecting functions
  ["SELECT nextval('s')", "write", "side-effect-function"],
  ["SELECT NEXTVAL('s')", "write", "side-effect-function"],
  ["SELECT nextval ('s')", "write", "side-effect-function"],
  ["SELECT nextval /* c */ ('s')", "write", "side-effect-function"],
  ["SELECT nextval\n('s'::regclass)", "write", "side-effect-function"],
  ["SELECT pg_catalog.nextval('s')", "write", "side-effect-function"],
  ["SELECT \"pg_catalog\".\"nextval\"('s')", "write", "side-effect-function"],
  ["SELECT \"nextval\"('s')", "write", "side-effect-function"],
  ["SELECT setval('s', 10)", "write", "side-effect-function"],
  ["SELECT currval('s')", "write", "side-effect-function"],
  ["SELECT lastval()", "write", "side-effect-function"],
  ["SELECT set_config('a.b', 'c', false)", "write", "side-effect-function"],
  ["SELECT pg_notify('chan', 'payload')", "write", "side-effect-function"],
  ["SELECT txid_current()", "write", "side-effect-function"],
  ["SELECT txid_current_if_assigned()", "write", "side-effect-function"],
  ["SELECT pg_current_xact_id()", "write", "side-effect-function"],
  ["SELECT pg_current_xact_id_if_assigned()", "write", "side-effect-function"],
  ["SELECT pg_current_wal_lsn()", "write", "side-effect-function"],
  ["SELECT pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn()", "write", "side-effect-function"],
  ["SELECT pg_switch_wal()", "write", "side-effect-function"],
  ["SELECT pg_create_restore_point('x')", "write", "side-effect-function"],
  ["SELECT pg_promote()", "write", "side-effect-function"],
  ["SELECT pg_cancel_backend(123)", "write", "side-effect-function"],
  ["SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "write", "side-effect-function"],
  ["SELECT pg_reload_conf()", "write", "side-effect-function"],
  ["SELECT pg_rotate_logfile()", "write", "side-effect-function"],
  ["SELECT pg_stat_reset()", "write", "side-effect-function"],
  ["SELECT pg_stat_reset_shared('bgwriter')", "write", "side-effect-function"],
  ["SELECT pg_stat_reset_anything_new(1)", "write", "side-effect-function"],
  ["SELECT dblink_exec('conn', 'DELETE FROM t')", "write", "side-effect-function"],
  ["SELECT pg_advisory_lock(1)", "write", "side-effect-function"],
  ["SELECT pg_advisory_xact_lock(1, 2)", "write", "side-effect-function"],
  ["SELECT pg_advisory_unlock_all()", "write", "side-effect-function"],
  ["SELECT pg_try_advisory_lock(42)", "write", "side-effect-function"],
  ["SELECT pg_try_advisory_xact_lock_shared(42)", "write", "side-effect-function"],
  ["SELECT lo_import('/tmp/x')", "write", "side-effect-function"],
  ["SELECT lo_export(1, '/tmp/x')", "write", "side-effect-function"],
  ["SELECT lo_unlink(1)", "write", "side-effect-function"],
  ["SELECT lo_create(0), lo_creat(-1)", "write", "side-effect-function"],
  ["SELECT lo_open(1, 131072)", "write", "side-effect-function"],
  ["SELECT lo_put(1, 0, '\\x00')", "write", "side-effect-function"],
  ["SELECT lo_from_bytea(0, 'x')", "write", "side-effect-function"],
  ["SELECT lo_truncate64(1, 0)", "write", "side-effect-function"],
  ["SELECT * FROM t WHERE id = (SELECT nextval('s'))", "write", "side-effect-function"],
  ["SELECT * FROM nextval('s')", "write", "side-effect-function"],
  ["VALUES (nextval('s'))", "write", "side-effect-function"],
  ["WITH x AS (SELECT setval('s', 1)) SELECT * FROM x", "write", "side-effect-function"],
  ["SHOW x; SELECT 1", "write", "multiple-statements"],
  ["SELECT U&\"\\006Eextval\"('s')", "write", "unparseable"],
  // statements that are not reads
  ["INSERT INTO t VALUES (1)", "write", "not-a-read"],
  ["insert into t select * from u", "write", "not-a-read"],
  ["UPDATE t SET a = 1", "write", "not-a-read"],
  ["DELETE FROM t", "write", "not-a-read"],
  ["MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1", "write", "not-a-read"],
  ["CREATE TABLE t (id int)", "write", "schema-change"],
  ["CREATE TEMP TABLE t AS SELECT 1", "write", "schema-change"],
  ["ALTER TABLE t ADD COLUMN a int", "write", "schema-change"],
  ["DROP TABLE t", "write", "schema-change"],
  ["TRUNCATE t", "write", "not-a-read"],
  ["GRANT SELECT ON t TO u", "write", "schema-change"],
  ["REVOKE SELECT ON t FROM u", "write", "schema-change"],
  ["SET search_path = x", "write", "not-a-read"],
  ["SET LOCAL statement_timeout = 0", "write", "not-a-read"],
  ["RESET ALL", "write", "not-a-read"],
  ["BEGIN", "write", "not-a-read"],
  ["BEGIN READ ONLY", "write", "not-a-read"],
  ["START TRANSACTION", "write", "not-a-read"],
  ["COMMIT", "write", "not-a-read"],
  ["ROLLBACK", "write", "not-a-read"],
  ["END", "write", "not-a-read"],
  ["SAVEPOINT a", "write", "not-a-read"],
  ["RELEASE SAVEPOINT a", "write", "not-a-read"],
  ["LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "write", "not-a-read"],
  ["LISTEN chan", "write", "not-a-read"],
  ["NOTIFY chan, 'x'", "write", "not-a-read"],
  ["UNLISTEN *", "write", "not-a-read"],
  ["DECLARE c CURSOR FOR SELECT 1", "write", "not-a-read"],
  ["FETCH NEXT FROM c", "write", "not-a-read"],
  ["MOVE NEXT IN c", "write", "not-a-read"],
  ["CLOSE c", "write", "not-a-read"],
  ["CALL proc(1)", "write", "not-a-read"],
  ["DO $$ BEGIN PERFORM 1; END $$", "write", "schema-change"],
  ["PREPARE q AS SELECT 1", "write", "not-a-read"],
  ["EXECUTE q", "write", "not-a-read"],
  ["DEALLOCATE q", "write", "not-a-read"],
  ["DISCARD ALL", "write", "not-a-read"],
  ["VACUUM t", "write", "not-a-read"],
  ["ANALYZE t", "write", "not-a-read"],
  ["REFRESH MATERIALIZED VIEW v", "write", "not-a-read"],
  ["CLUSTER t USING i", "write", "not-a-read"],
  ["REINDEX TABLE t", "write", "not-a-read"],
  ["COMMENT ON TABLE t IS 'x'", "write", "schema-change"],
  ["SECURITY LABEL ON TABLE t IS 'x'", "write", "schema-change"],
  ["IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y", "write", "schema-change"],
  ["CHECKPOINT", "write", "not-a-read"],
  ["  -- c\n  (insert into t values (1))", "write", "not-a-read"],
  ["selectx 1", "write", "not-a-read"],
  ["\"select\" 1", "write", "unparseable"],
  ["'SELECT 1'", "write", "unparseable"],
  ["\\d users", "write", "unparseable"],
  ["(EXPLAIN SELECT 1)", "write", "unparseable"],
  // empty input
  ["", "write", "empty"],
  ["   \n\t  ", "write", "empty"],
  ["-- only a comment", "write", "empty"],
  ["/* only */ /* comments */", "write", "empty"],
  [";", "write", "empty"],
  [" ; ; ", "write", "empty"],
  // unterminated or unbalanced
  ["SELECT 'abc", "write", "unparseable"],
  ["SELECT 'it''s", "write", "unparseable"],
  ["SELECT E'abc\\'", "write", "unparseable"],
  ["SELECT \"abc", "write", "unparseable"],
  ["SELECT $$abc", "write", "unparseable"],
  ["SELECT $a$abc$b$", "write", "unparseable"],
  ["SELECT $A$ x $a$", "write", "unparseable"],
  ["SELECT 1 /* abc", "write", "unparseable"],
  ["SELECT 1 /* a /* b */", "write", "unparseable"],
  ["/* unterminated SELECT 1", "write", "unparseable"],
  ["SELECT 1; /* abc", "write", "unparseable"],
  ["SELECT (1", "write", "unparseable"],
  ["SELECT 1)", "write", "unparseable"],
  ["((SELECT 1)", "write", "unparseable"],
  ["SELECT (1; SELECT 2)", "write", "unparseable"],
  // very long statements
  [long(2000), "read", "read-statement"],
  [`${long(2000)} FOR UPDATE`, "write", "locking-clause"],
  [`SELECT ${"(".repeat(500)}1${")".repeat(500)}`, "read", "read-statement"],
  [`SELECT '${"x".repeat(100_000)}'`, "read", "read-statement"],
  [`SELECT '${"x".repeat(100_000)}`, "write", "unparseable"],
  [`/* ${"/* ".repeat(1000)}${"*/ ".repeat(1000)} */ SELECT 1`, "read", "read-statement"],
  [`${long(500)} WHERE x = nextval('s')`, "write", "side-effect-function"]
]

const label = (sql: string): string => JSON.stringify(sql.length > 80 ? `${sql.slice(0, 77)}...` : sql)

const classifier = Classifier.make()
const uncached = Classifier.make({ cacheSize: 0 })

describe("Classifier", () => {
  it("has a corpus of at least 180 statements", () => {
    expect(corpus.length).toBeGreaterThanOrEqual(180)
  })

  describe("corpus", () => {
    for (const [sql, intent, reason] of corpus) {
      it(`${label(sql)} is a ${intent}`, () => {
        const explained = Classifier.explain(sql)
        expect(explained.intent).toBe(intent)
        if (reason !== undefined) expect(explained.reason).toBe(reason)
        expect(Classifier.routeQueryType(sql)).toBe(intent)
      })
    }
  })

  it("classify agrees with explain for every corpus entry, cached or not", () => {
    for (const [sql] of corpus) {
      const expected = classifier.explain(sql).intent
      expect(classifier.classify(sql)).toBe(expected)
      expect(classifier.classify(sql)).toBe(expected)
      expect(uncached.classify(sql)).toBe(expected)
    }
  })

  describe("details", () => {
    it("names the locking clause", () => {
      expect(Classifier.explain("SELECT * FROM t FOR NO KEY UPDATE")).toEqual({
        intent: "write",
        reason: "locking-clause",
        detail: "for no key update"
      })
      expect(Classifier.explain("SELECT * FROM t FOR KEY SHARE").detail).toBe("for key share")
    })

    it("names the side-effecting function", () => {
      expect(Classifier.explain("SELECT pg_catalog.NEXTVAL('s')").detail).toBe("nextval")
      expect(Classifier.explain("SELECT \"pg_try_advisory_lock\"(1)").detail).toBe("pg_try_advisory_lock")
    })

    it("names the first keyword of a write and the inner reason of EXPLAIN ANALYZE", () => {
      expect(Classifier.explain("  Insert INTO t VALUES (1)").detail).toBe("insert")
      expect(Classifier.explain("EXPLAIN ANALYZE SELECT nextval('s')").detail).toBe("side-effect-function: nextval")
    })

    it("tells which literal is unterminated", () => {
      expect(Classifier.explain("SELECT $$x").detail).toBe("unterminated dollar-quoted string")
      expect(Classifier.explain("SELECT /* x").detail).toBe("unterminated block comment")
    })
  })

  describe("configured side-effecting functions", () => {
    const configured = Classifier.make({ sideEffectFunctions: ["audit.log_access", "Touch_Row", "\"Quoted\""] })

    it("match schema-qualified, unqualified and quoted calls case-insensitively", () => {
      expect(configured.classify("SELECT audit.log_access('report')")).toBe("write")
      expect(configured.classify("SELECT AUDIT.LOG_ACCESS('report')")).toBe("write")
      expect(configured.classify("SELECT \"audit\".\"log_access\"('report')")).toBe("write")
      expect(configured.classify("SELECT log_access('report')")).toBe("write")
      expect(configured.classify("SELECT touch_row(1)")).toBe("write")
      expect(configured.classify("SELECT app.TOUCH_ROW(1)")).toBe("write")
      expect(configured.classify("SELECT quoted(1)")).toBe("write")
      expect(configured.explain("SELECT * FROM t WHERE audit.log_access(t.id)")).toEqual({
        intent: "write",
        reason: "side-effect-function",
        detail: "log_access"
      })
    })

    it("leave other names and non-calls alone and keep the built-in list", () => {
      expect(configured.classify("SELECT log_access FROM audit.t")).toBe("read")
      expect(configured.classify("SELECT audit.other('x')")).toBe("read")
      expect(configured.classify("SELECT 'audit.log_access(1)'")).toBe("read")
      expect(configured.classify("SELECT nextval('s')")).toBe("write")
    })

    it("accept a single name given as a string", () => {
      const single = Classifier.make({ sideEffectFunctions: "touch_row" })
      expect(single.classify("SELECT touch_row(1)")).toBe("write")
      expect(single.classify("SELECT t(1)")).toBe("read")
    })

    it("do not leak into the default classifier", () => {
      expect(Classifier.routeQueryType("SELECT audit.log_access('report')")).toBe("read")
      expect(Classifier.defaultSideEffectFunctions.has("log_access")).toBe(false)
    })
  })

  describe("cache", () => {
    it("stays within its size and keeps answering correctly", () => {
      const small = Classifier.make({ cacheSize: 2 })
      const texts = ["SELECT 1", "DELETE FROM t", "SELECT * FROM t FOR UPDATE", "TABLE t"] as const
      const expected = ["read", "write", "write", "read"] as const
      for (let round = 0; round < 3; round++) {
        texts.forEach((sql, i) => {
          expect(small.classify(sql)).toBe(expected[i])
          expect(small.cacheSize()).toBeLessThanOrEqual(2)
        })
      }
      expect(small.cacheSize()).toBe(2)
    })

    it("is not used when its size is 0", () => {
      const none = Classifier.make({ cacheSize: 0 })
      expect(none.classify("SELECT 1")).toBe("read")
      expect(none.classify("INSERT INTO t VALUES (1)")).toBe("write")
      expect(none.cacheSize()).toBe(0)
    })

    it("remembers each distinct text once", () => {
      const cache = Classifier.make()
      cache.classify("SELECT 1")
      cache.classify("SELECT 1")
      cache.classify("SELECT 2")
      expect(cache.cacheSize()).toBe(2)
    })

    it("does not fill from explain", () => {
      const cache = Classifier.make()
      cache.explain("SELECT 1")
      expect(cache.cacheSize()).toBe(0)
    })
  })

  describe("schema changes", () => {
    it.each([
      ["CREATE TABLE users (id int)", true],
      ["create index on users (id)", true],
      ["ALTER TABLE users ADD COLUMN name text", true],
      ["DROP VIEW v", true],
      ["GRANT SELECT ON users TO reader", true],
      ["COMMENT ON TABLE users IS 'people'", true],
      ["DO $$ BEGIN EXECUTE 'CREATE TABLE t ()'; END $$", true],
      ["INSERT INTO users VALUES (1); DROP TABLE old", true],
      ["/* setup */ CREATE SCHEMA app", true],
      ["INSERT INTO users VALUES (1)", false],
      ["UPDATE users SET name = 'drop table' WHERE id = 1", false],
      ["DELETE FROM users -- drop later", false],
      ["INSERT INTO \"create\" VALUES (1)", false],
      ["TRUNCATE users", false],
      ["INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", false],
      ["INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET comment = 'x'", false],
      ["UPDATE t SET comment = 'a', import = 1", false]
    ] as const)("%s: %s", (sql, expected) => {
      expect(Classifier.isSchemaChange(sql)).toBe(expected)
      const kind = Classifier.make().kind(sql)
      expect(kind).toBe(expected ? "schema-change" : "write")
    })

    it("a read is never a schema change, and classify folds a schema change into write", () => {
      const classifier = Classifier.make()
      expect(classifier.kind("SELECT 'create table' AS doc")).toBe("read")
      expect(classifier.kind("CREATE TABLE t ()")).toBe("schema-change")
      expect(classifier.classify("CREATE TABLE t ()")).toBe("write")
      expect(classifier.explain("CREATE TABLE t ()")).toEqual({ intent: "write", reason: "schema-change", detail: "create" })
    })
  })

  describe("discovered side-effecting functions", () => {
    it("turn remembered reads into writes, and are replaced as a whole", () => {
      const classifier = Classifier.make({ sideEffectFunctions: ["audit.log_access"] })
      expect(classifier.classify("SELECT app.touch(1)")).toBe("read")
      expect(classifier.cacheSize()).toBe(1)
      classifier.setDiscoveredFunctions(["app.touch"])
      expect(classifier.cacheSize()).toBe(0)
      expect(classifier.classify("SELECT app.touch(1)")).toBe("write")
      expect(classifier.explain("SELECT touch(1)")).toEqual({
        intent: "write",
        reason: "side-effect-function",
        detail: "touch"
      })
      classifier.setDiscoveredFunctions(["app.other"])
      expect(classifier.classify("SELECT app.touch(1)")).toBe("read")
      // configured and built-in names stay
      expect(classifier.classify("SELECT log_access('x')")).toBe("write")
      expect(classifier.classify("SELECT nextval('s')")).toBe("write")
    })
  })
})
