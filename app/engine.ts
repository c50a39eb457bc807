/**
 * Picks and loads the configured engine, once per process.
 *
 * @module
 */
import type { Config } from "./config.ts";
import type { Logger } from "../lib/log.ts";
import type { TranscriberEngine } from "../lib/transcribe/engine.ts";
import { AssemblyAIEngine, sessionUrl } from "../lib/transcribe/assemblyai.ts";
import { LocalEngine } from "../lib/transcribe/local.ts";
import { progressBar } from "../lib/console/progress_bar.ts";
import type { ProgressCallback } from "../lib/model/download.ts";
import { type ResolvedModel, resolveModel } from "../lib/model/resolve_model.ts";

/** The AssemblyAI engine when configured; else finds (or downloads) the model and loads the local engine. */
export async function createEngine(config: Config, log: Logger): Promise<TranscriberEngine> {
  if (config.transcriber === "assemblyai") {
    const engine = new AssemblyAIEngine(
      { ...config.assemblyai, apiKey: config.assemblyai.apiKey! },
      log,
    );
    // The URL carries only settings; the key goes in a header and is never logged.
    log.info(
      `assemblyai engine: ${sessionUrl(engine.options)} (two sessions per call, billed while open)`,
    );
    return engine;
  }
  const model = await findModel(config, progressBar(`downloading ${config.model.name}`));
  log.info(`local engine: model ${model.name} (${model.source}: ${model.dir})`);
  return await LocalEngine.start(model, config.local);
}

/** The configured local model: found on disk, or downloaded (with `onProgress`). */
export function findModel(
  config: Config,
  onProgress?: ProgressCallback,
): Promise<ResolvedModel> {
  return resolveModel({
    modelDir: config.model.dir,
    modelName: config.model.name,
    modelNameExplicit: config.model.nameExplicit,
    cacheDir: config.model.cacheDir,
    downloadUrl: config.model.url,
    overrides: config.model.overrides,
    onProgress,
  });
}
