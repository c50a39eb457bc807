import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { StatementCache } from "../lib/store/statement_cache.ts";

Deno.test("statement cache: the same SQL is compiled once", () => {
  const compiled: string[] = [];
  const cache = new StatementCache((sql) => {
    compiled.push(sql);
    return { sql };
  });
  const first = cache.get("SELECT 1");
  assert.equal(cache.get("SELECT 1"), first);
  cache.get("SELECT 2");
  assert.deepEqual(compiled, ["SELECT 1", "SELECT 2"]);
});

Deno.test("statement cache: SQL built per item (IN lists of every length) keeps at most the limit, the oldest dropped first", () => {
  const db = new DatabaseSync(":memory:");
  try {
    db.exec("CREATE TABLE calls (call_sid TEXT)");
    let compiles = 0;
    const cache = new StatementCache((sql) => {
      compiles++;
      return db.prepare(sql);
    }, 8);
    for (let n = 1; n <= 500; n++) {
      const list = Array.from({ length: n }, () => "?").join(", ");
      const sids = Array.from({ length: n }, (_, i) => `CA${i}`);
      cache.get(`DELETE FROM calls WHERE call_sid IN (${list})`).run(...sids);
      assert.ok(cache.size <= 8, `${cache.size} statements kept after ${n} lengths`);
    }
    assert.equal(compiles, 500);
    // The newest is still kept; the first, dropped, is compiled anew.
    cache.get("DELETE FROM calls WHERE call_sid IN (" + Array(500).fill("?").join(", ") + ")");
    assert.equal(compiles, 500);
    cache.get("DELETE FROM calls WHERE call_sid IN (?)");
    assert.equal(compiles, 501);
  } finally {
    db.close();
  }
});
