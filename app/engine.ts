/**
 * Picks and loads the configured engine, once per process.
 *
 * @module
 */
import type { Config } from "./config.ts";
import type { Logger } from "../lib/log.ts";
import type { Track, TranscriberEngine } from "../lib/transcribe/engine.ts";
import { AssemblyAIEngine } from "../lib/transcribe/assemblyai.ts";
import { redactedUrl, sessionUrl } from "../lib/transcribe/assemblyai_protocol.ts";
import { HybridEngine } from "../lib/transcribe/hybrid.ts";
import { LocalEngine } from "../lib/transcribe/local.ts";
import { PerTrackEngine } from "../lib/transcribe/per_track.ts";
import { LOCAL_DEFAULTS } from "../lib/transcribe/local_engine_options.ts";
import { createVoiceDetector } from "../lib/transcribe/voice_detector.ts";
import { progressBar } from "../lib/console/progress_bar.ts";
import type { ProgressCallback } from "../lib/model/download.ts";
import { type ResolvedModel, resolveModel } from "../lib/model/resolve_model.ts";

/**
 * The configured engine of each track, each loaded once: the local model is
 * found (or downloaded) only if a track uses it, AssemblyAI is set up only if
 * a track uses it.
 */
export async function createEngine(config: Config, log: Logger): Promise<TranscriberEngine> {
  const choices = config.transcribers;
  const used = new Set(Object.values(choices));
  const cloudTracks =
    (["inbound", "outbound"] as Track[]).filter((t) => choices[t] !== "local").length;
  const cloud = (standIn?: string) => {
    const silenceMs = config.assemblyaiVadSilenceMs;
    // The same voice detector as the local engine's hears the end of speech; ForceEndpoint ends
    // the turn there.
    const speechDetector = silenceMs === undefined ? undefined : () =>
      createVoiceDetector({
        kind: config.local.vad ?? LOCAL_DEFAULTS.vad,
        sampleRate: 8000,
        minSilenceMs: silenceMs,
        threshold: config.local.vadThreshold ?? LOCAL_DEFAULTS.vadThreshold,
      });
    const engine = new AssemblyAIEngine({ ...config.assemblyai, standIn, speechDetector }, log);
    // The URL carries only settings (a token, if any, redacted); the key goes in a header.
    log.info(
      `assemblyai engine${standIn ? " (hybrid)" : ""}: ${
        redactedUrl(sessionUrl(engine.options))
      } ` +
        `(${cloudTracks} session${cloudTracks === 1 ? "" : "s"} per call, billed while open)`,
    );
    return engine;
  };
  let local: TranscriberEngine | undefined;
  if (used.has("local") || used.has("hybrid")) {
    const model = await findModel(config, progressBar(`downloading ${config.model.name}`));
    log.info(`local engine: model ${model.name} (${model.source}: ${model.dir})`);
    local = await LocalEngine.start(model, config.local);
  }
  const engines = new Map<string, TranscriberEngine>();
  for (const choice of used) {
    engines.set(
      choice,
      choice === "local"
        ? local!
        : choice === "assemblyai"
        ? cloud()
        : new HybridEngine(local!, cloud("local")),
    );
  }
  if (engines.size === 1 && !(used.has("hybrid"))) return engines.values().next().value!;
  return new PerTrackEngine(
    { inbound: engines.get(choices.inbound)!, outbound: engines.get(choices.outbound)! },
    [...engines.values(), ...(local ? [local] : [])],
  );
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
