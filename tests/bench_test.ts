/**
 * `deno task bench --quick` runs end to end as a subprocess (real server,
 * real load generator, real sherpa-onnx on real speech) and writes
 * well-formed results. How fast the numbers are is not asserted: the
 * machine is shared.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** Every key the issue asks for, as paths into results.json. */
const REQUIRED = [
  "relay.cpuUsPerFrame",
  "relay.floorCpuUsPerFrame",
  "relay.ratio",
  "relay.maxCallsZeroDrop",
  "engine.rtf",
  "engine.rawRtf",
  "engine.ratio",
  "engine.realtimeTracks",
  "engine.rawPartialsRtf",
  "engine.rawPacedRtf",
  "engine.ratioToPacedRaw",
  "latency.finalAfterEndpointP50Ms",
  "latency.firstPartialP50Ms",
  "latency.wordEmissionP50Ms",
  "latency.wordEmissionP95Ms",
  "latency.finalAfterWordEndP50Ms",
  "latency.finalAfterWordEndP95Ms",
  "latency.finalsPerUtterance",
  "latency.floor.wordEmissionP50Ms",
  "engine.parallelRawRtf",
  "engine.ratioToParallelRaw",
  "engine.ratioToParallelPacedRaw",
  "engine.serverRtf",
  "engine.serverRatioToParallelRaw",
  "engine.measuredRealtimeTracks",
  "engine.rawMeasuredRealtimeTracks",
  "relay.floorMemoryKbPerCall",
  "relay.memoryKbPerCallMean",
  "relay.floorMemoryKbPerCallMean",
  "relay.memoryRatioMean",
  "relay.heldMemoryKbPerCall",
  "relay.floorHeldMemoryKbPerCall",
  "relay.heldMemoryRatio",
  "engine.chunksPerAudioSecond",
  "engine.rawChunksPerAudioSecond",
  "engine.cpuPerChunkRatio",
  "engine.cpuPerChunkRatioToPacedRaw",
  "baseline.latency.wordEmissionP50Ms",
  "fanout.p50Ms",
  "fanout.p99Ms",
  "webhooks.latencyP50Ms",
  "webhooks.latencyP99Ms",
  "keyterms.recognisedWithout",
  "keyterms.recognisedWith",
  "keyterms.total",
  "keyterms.werDeltaPoints",
  "keyterms.costRatioToGreedy",
  "redaction.recall.card",
  "redaction.recall.ssn",
  "redaction.falsePositiveWords",
  "redaction.afterRunMs.p50",
  "echo.erleDbP50",
  "echo.doubleTalkWerDeltaPoints",
  "echo.duplicateWordsCutPct",
  "echo.cpuPctOfCorePerCall",
];

Deno.test({
  name: "bench --quick writes every required result as a finite number",
  // The benchmark's servers and load generator are child processes it ends itself.
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "callscribe-bench-test-" });
    const out = `${dir}/results.json`;
    try {
      const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["task", "--quiet", "bench", "--quick", "--out", out],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const errors = new TextDecoder().decode(stderr);
      assert.equal(code, 0, `bench failed:\n${errors}`);
      assert.match(errors, /bench: relay ours +N= +1:/, "progress lines go to stderr");
      // Its child processes run quietly: none of Deno's own warnings among the progress lines.
      assert.doesNotMatch(errors, /Warning/);
      assert.match(new TextDecoder().decode(stdout), /relay \/ floor/, "the table goes to stdout");

      const results = JSON.parse(await Deno.readTextFile(out));
      for (const path of REQUIRED) {
        // deno-lint-ignore no-explicit-any
        const value = path.split(".").reduce((o: any, key) => o?.[key], results);
        assert.ok(
          typeof value === "number" && Number.isFinite(value),
          `${path} is ${JSON.stringify(value)}`,
        );
      }
      // The machine is named (figures differ by CPU): on Linux its model, and its vector extensions.
      const { cpu } = results.machine;
      if (Deno.build.os === "linux") assert.ok(typeof cpu.model === "string" && cpu.model, "cpu");
      assert.ok(Array.isArray(cpu.vectorExtensions), "cpu.vectorExtensions");
      assert.equal(typeof results.wer, "object");
      const sets = Object.entries(results.wer);
      assert.ok(sets.length >= 1, "wer has at least one audio set");
      for (const [set, wer] of sets) {
        assert.ok(typeof wer === "number" && Number.isFinite(wer) && wer >= 0, `wer.${set}`);
      }
      // Counted, not timed: raw decodes every 320 ms chunk of the audio; ours skips the silence
      // between utterances (the calls are padded with it), which outweighs its flush padding.
      const { chunksPerAudioSecond, rawChunksPerAudioSecond } = results.engine;
      assert.ok(
        rawChunksPerAudioSecond > 2.8 && rawChunksPerAudioSecond < 3.4,
        `raw ${rawChunksPerAudioSecond} chunks per audio second`,
      );
      assert.ok(
        chunksPerAudioSecond < rawChunksPerAudioSecond,
        `ours ${chunksPerAudioSecond} chunks per audio second, raw ${rawChunksPerAudioSecond}`,
      );
      if (Deno.build.os === "linux") {
        // The thread breakdown is part of the server's CPU: 10 ms ticks against µs, so a slack.
        const { serverRtf: rtf, decoderThreadsRtf, eventLoopRtf, otherThreadsRtf, audioSeconds } =
          results.engine;
        for (const [key, value] of Object.entries({ decoderThreadsRtf, eventLoopRtf })) {
          assert.ok(typeof value === "number" && value > 0, `engine.${key} is ${value}`);
        }
        const threads = decoderThreadsRtf + eventLoopRtf + (otherThreadsRtf ?? 0);
        const tick = 0.05 / audioSeconds;
        assert.ok(threads <= rtf + tick, `threads ${threads} within the process's ${rtf}`);
        assert.ok(threads >= rtf * 0.8 - tick, `threads ${threads} account for most of ${rtf}`);
      }
      // Both servers were measured at every load level, and the quick ladder ran.
      const calls = (server: string) =>
        // deno-lint-ignore no-explicit-any
        results.relay.runs.filter((r: any) => r.server === server).map((r: any) => r.calls);
      assert.deepEqual(calls("ours"), calls("floor"));
      assert.ok(calls("ours").includes(1));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
