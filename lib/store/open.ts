/**
 * Opens the transcript store the configuration names: PostgreSQL when
 * `DATABASE_URL` is set, else the SQLite file under `DATA_DIR`.
 *
 * @module
 */
import { dbPath, type TranscriptStore } from "./db.ts";
import { SqliteStore } from "./sqlite.ts";

/** Where the transcripts are. */
export interface StoreLocation {
  /** `postgres://…`: PostgreSQL. */
  databaseUrl?: string;
  /** Otherwise the SQLite database in this folder. */
  dataDir: string;
  /**
   * The instance recording calls (a server; unset for readers), and with
   * PostgreSQL when instances count as gone. With SQLite the store holds the
   * instance's lock file (see {@link SqliteStore}).
   */
  instanceId?: string;
  instanceTimeoutMs?: number;
}

/** Opens (creating and migrating as needed) the store at `location`. */
export async function openTranscriptStore(location: StoreLocation): Promise<TranscriptStore> {
  if (location.databaseUrl) {
    // Loaded only when asked for: the default setup never loads the driver.
    const { PostgresStore } = await import("./postgres.ts");
    return await PostgresStore.connect(location.databaseUrl, {
      instanceId: location.instanceId,
      instanceTimeoutMs: location.instanceTimeoutMs,
    });
  }
  return new SqliteStore(dbPath(location.dataDir), { instanceId: location.instanceId });
}
