/**
 * The dashboard token a server reachable from outside makes for itself when
 * DASHBOARD_TOKEN is not set: 32 random bytes (base64url) in
 * `DATA_DIR/dashboard-token`, readable by this user only (mode 0600), so a
 * restart keeps it and `deno task call` on the same machine can send it.
 * The token is never logged; the server prints a one-time login link instead.
 *
 * @module
 */
import { join } from "node:path";
import { randomSecret } from "./sessions.ts";

/** The token file in a data folder. */
export function dashboardTokenPath(dataDir: string): string {
  return join(dataDir, "dashboard-token");
}

/** The token in `dataDir`, made now if there is none (`created`). */
export async function loadDashboardToken(
  dataDir: string,
): Promise<{ token: string; path: string; created: boolean }> {
  const path = dashboardTokenPath(dataDir);
  const existing = await readDashboardToken(dataDir);
  if (existing !== undefined) {
    // Kept private even if the file was copied or its mode changed.
    if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
    return { token: existing, path, created: false };
  }
  await Deno.mkdir(dataDir, { recursive: true });
  const token = randomSecret();
  await Deno.writeTextFile(path, token + "\n", { mode: 0o600 });
  if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
  return { token, path, created: true };
}

/** The token in `dataDir`, if a server made one there (and it is whole). */
export async function readDashboardToken(dataDir: string): Promise<string | undefined> {
  try {
    const token = (await Deno.readTextFile(dashboardTokenPath(dataDir))).trim();
    return /^[A-Za-z0-9_-]{43,}$/.test(token) ? token : undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
