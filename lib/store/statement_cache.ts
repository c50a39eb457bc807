/**
 * Compiled statements kept by their SQL, at most a fixed number: the oldest
 * compiled is dropped first. The store's own statements are a few dozen, but
 * callers also build SQL with a placeholder per item (retention deletes up to
 * 500 calls with `IN (?, …)`), and each length would otherwise stay compiled
 * for as long as the server runs.
 *
 * @module
 */

/** Statements of `compile`, kept by their SQL; at most `limit` of them. */
export class StatementCache<S> {
  readonly #compile: (sql: string) => S;
  readonly #limit: number;
  readonly #statements = new Map<string, S>();

  constructor(compile: (sql: string) => S, limit = 128) {
    this.#compile = compile;
    this.#limit = limit;
  }

  /** `sql` compiled, once while it stays among the kept. */
  get(sql: string): S {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      if (this.#statements.size >= this.#limit) {
        this.#statements.delete(this.#statements.keys().next().value!);
      }
      statement = this.#compile(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** How many statements are kept. */
  get size(): number {
    return this.#statements.size;
  }
}
