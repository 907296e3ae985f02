// Runs SQL statements with DuckDB (@duckdb/node-api) for the Parquet tests
// (s3test.DuckDB). Reads a JSON array of statements on stdin; prints a JSON
// array with, for each, its rows (objects, as getRowObjectsJson gives them)
// and the bytes this process read from files while it ran (rchar of
// /proc/self/io: DuckDB reads files with read/pread, so this is what the
// statement read). Found through NODE_PATH (.tools/duckdb/node_modules).
const { readFileSync } = require('node:fs');
const { DuckDBInstance } = require('@duckdb/node-api');

const rchar = () => Number(/rchar: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))[1]);

(async () => {
  const input = readFileSync(0, 'utf8');
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const out = [];
  for (const sql of JSON.parse(input)) {
    const before = rchar();
    const reader = await conn.runAndReadAll(sql);
    const read = rchar() - before;
    out.push({ rows: reader.getRowObjectsJson(), read });
  }
  process.stdout.write(JSON.stringify(out) + '\n');
})().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
