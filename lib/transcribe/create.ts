/**
 * Picks and loads the configured engine, once per process.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { TranscriberEngine } from "./engine.ts";
import { LocalEngine } from "./local.ts";
import { progressBar, resolveModel } from "./model.ts";

/** Finds (or downloads) the model and loads the local engine. */
export async function createEngine(config: Config, log: Logger): Promise<TranscriberEngine> {
  const model = await resolveModel({
    modelDir: config.model.dir,
    modelName: config.model.name,
    modelNameExplicit: config.model.nameExplicit,
    cacheDir: config.model.cacheDir,
    downloadUrl: config.model.url,
    overrides: config.model.overrides,
    onProgress: progressBar(`downloading ${config.model.name}`),
  });
  log.info(`local engine: model ${model.name} (${model.source}: ${model.dir})`);
  return new LocalEngine(model, config.local);
}
