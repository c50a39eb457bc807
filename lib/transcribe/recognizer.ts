/**
 * The sherpa-onnx recognizer: the streaming transducer, embedded through
 * `sherpa-onnx-node` (Node-API, needs `--allow-ffi`). One recognizer holds
 * the model and one key-term list; each track decodes with a stream of it.
 *
 * @module
 */
import sherpa from "sherpa-onnx-node";
import type { ModelFiles } from "../model/model_files.ts";
import { UserError } from "../user_error.ts";
import { readTokens, spellKeyterms } from "./keyterms.ts";
import type { LocalEngineOptions } from "./local_engine_options.ts";

/** The rate the models' features are computed at. */
export const MODEL_RATE = 16000;
/** Paths kept per beam with key terms (sherpa-onnx's default). */
const KEYTERM_ACTIVE_PATHS = 4;

/** What the recognizer returns for a stream: the text so far and its tokens. */
export interface RecognizerResult {
  text: string;
  tokens: string[];
  /** Each token's time, in seconds from `start_time`. */
  timestamps: number[];
  /** Each token's log probability. */
  ys_probs?: number[];
  /** Where the segment starts in the stream, in seconds. */
  start_time: number;
}

/** The sherpa-onnx recognizer of a model with these options (one per decoder: it holds the model). */
// deno-lint-ignore no-explicit-any
export function createRecognizer(model: ModelFiles, options: LocalEngineOptions): any {
  const hotwords = keytermSettings(model, options.keyterms);
  const config = {
    featConfig: { sampleRate: MODEL_RATE, featureDim: 80 },
    modelConfig: {
      transducer: { encoder: model.encoder, decoder: model.decoder, joiner: model.joiner },
      tokens: model.tokens,
      numThreads: options.numThreads,
      provider: "cpu",
      debug: 0,
      ...(hotwords && { modelingUnit: "bpe", bpeVocab: hotwords.vocab }),
    },
    decodingMethod: hotwords ? "modified_beam_search" : "greedy_search",
    ...(hotwords && {
      maxActivePaths: KEYTERM_ACTIVE_PATHS,
      hotwordsBuf: hotwords.text,
      hotwordsBufSize: new TextEncoder().encode(hotwords.text).length,
      hotwordsScore: options.keytermsScore,
    }),
    enableEndpoint: true,
    rule1MinTrailingSilence: options.rule1MinTrailingSilence,
    rule2MinTrailingSilence: options.rule2MinTrailingSilence,
    rule3MinUtteranceLength: options.rule3MinUtteranceLength,
  };
  try {
    return new sherpa.OnlineRecognizer(config);
  } catch (error) {
    // sherpa-onnx prints its reason on stderr and throws only "Please check your config!".
    throw new UserError(
      `could not load the speech model (encoder ${model.encoder}, tokens ${model.tokens}): ` +
        `${(error as Error).message} See sherpa-onnx's reason above; check SHERPA_MODEL_DIR ` +
        `and the SHERPA_ENCODER/DECODER/JOINER/TOKENS paths.`,
    );
  } finally {
    if (hotwords) Deno.removeSync(hotwords.vocab);
  }
}

/**
 * The hotwords of `keyterms` (one per line, in the model's case), and a
 * BPE vocabulary for sherpa-onnx to spell them with: a temporary file it
 * reads while the recognizer is created. The model ships `tokens.txt` only;
 * its pieces in id order are SentencePiece's BPE merges in order, so each
 * piece's score is minus its id, as in an exported `bpe.vocab`.
 */
function keytermSettings(
  model: ModelFiles,
  keyterms: readonly string[],
): { text: string; vocab: string } | undefined {
  if (keyterms.length === 0) return undefined;
  const tokens = readTokens(Deno.readTextFileSync(model.tokens));
  const spelled = spellKeyterms(tokens, keyterms);
  const vocab = Deno.makeTempFileSync({ prefix: "callscribe-bpe-", suffix: ".vocab" });
  Deno.writeTextFileSync(vocab, tokens.map((piece, id) => `${piece}\t${-id}\n`).join(""));
  return {
    text: spelled.map((pieces) => pieces.join("").slice(1).replaceAll("▁", " ")).join("\n"),
    vocab,
  };
}
