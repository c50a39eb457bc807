/**
 * Model lookup and download, all offline: the shared 3.3M model is read in
 * place, and downloads come from a local HTTP server serving an archive made
 * from it in a temp dir.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { progressBar } from "../lib/console/progress_bar.ts";
import { findModelFiles } from "../lib/model/model_files.ts";
import {
  DEFAULT_MODEL_NAME,
  defaultCacheDir,
  modelUrl,
  resolveModel,
} from "../lib/model/resolve_model.ts";
import { UserError } from "../lib/user_error.ts";

const SHARED_MODELS = fileURLToPath(new URL("../../shared/models/", import.meta.url));
const KWS_NAME = "sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01";
const KWS = join(SHARED_MODELS, KWS_NAME);
const KWS_FILES = {
  encoder: "encoder-epoch-12-avg-2-chunk-16-left-64.int8.downsample-fix.onnx",
  decoder: "decoder-epoch-12-avg-2-chunk-16-left-64.onnx",
  joiner: "joiner-epoch-12-avg-2-chunk-16-left-64.int8.onnx",
  tokens: "tokens.txt",
};
/** The archive the fake release serves; its top folder is named like the model. */
const TEST_MODEL = "sherpa-onnx-streaming-test-model-2024-01-01";

async function withTemp(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "callscribe-model-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A model folder made of symlinks to the shared model's files (nothing copied). */
async function linkModel(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const file of Object.values(KWS_FILES)) {
    await Deno.symlink(join(KWS, file), join(dir, file));
  }
}

async function touch(dir: string, names: string[]): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const name of names) await Deno.writeTextFile(join(dir, name), "");
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

let fixture: Promise<{ bytes: Uint8Array<ArrayBuffer>; sha256: string }> | undefined;
/** `<TEST_MODEL>.tar.bz2` with the shared model's files and a test_wavs/ folder. */
function archiveFixture(): Promise<{ bytes: Uint8Array<ArrayBuffer>; sha256: string }> {
  fixture ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "callscribe-model-archive-" });
    try {
      const top = join(dir, "stage", TEST_MODEL);
      await Deno.mkdir(join(top, "test_wavs"), { recursive: true });
      for (const file of Object.values(KWS_FILES)) {
        await Deno.copyFile(join(KWS, file), join(top, file));
      }
      await Deno.writeTextFile(join(top, "test_wavs", "trans.txt"), "hello\n");
      const out = await new Deno.Command("tar", {
        args: ["-cjf", join(dir, "model.tar.bz2"), "-C", join(dir, "stage"), TEST_MODEL],
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const bytes = new Uint8Array(await Deno.readFile(join(dir, "model.tar.bz2")));
      return { bytes, sha256: sha256(bytes) };
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  })();
  return fixture;
}

interface FakeRelease {
  url: string;
  requests: () => number;
  close: () => Promise<void>;
}

/** A local HTTP server on 127.0.0.1 (port 0) answering every request with `respond`. */
function serveRelease(respond: () => Response | Promise<Response>): FakeRelease {
  let count = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    count++;
    return respond();
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/asr-models/${TEST_MODEL}.tar.bz2`,
    requests: () => count,
    close: () => server.shutdown(),
  };
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** Resolves expecting a download failure; checks the message and returns it. */
async function expectDownloadFailure(
  opts: Parameters<typeof resolveModel>[0] & { cacheDir: string; downloadUrl: string },
  reason: RegExp,
): Promise<string> {
  const error = await resolveModel(opts).then(
    () => assert.fail("resolveModel should have failed"),
    (e) => e,
  );
  assert.ok(error instanceof UserError, String(error));
  assert.match(error.message, /^No speech model found and it could not be downloaded \(/);
  assert.match(error.message, reason);
  assert.match(error.message, /Set SHERPA_MODEL_DIR to a sherpa-onnx streaming transducer folder/);
  assert.ok(error.message.includes(`download ${opts.downloadUrl} and unpack it into`));
  assert.ok(error.message.includes(opts.cacheDir));
  return error.message;
}

Deno.test("findModelFiles picks the shared model's downsample-fix encoder, decoder, joiner, tokens", () => {
  const files = findModelFiles(KWS);
  assert.deepEqual(files, {
    dir: KWS,
    name: KWS_NAME,
    encoder: join(KWS, KWS_FILES.encoder),
    decoder: join(KWS, KWS_FILES.decoder),
    joiner: join(KWS, KWS_FILES.joiner),
    tokens: join(KWS, KWS_FILES.tokens),
  });
});

Deno.test("findModelFiles prefers int8 encoder and joiner, the float decoder, and a fix", async () => {
  await withTemp(async (dir) => {
    await touch(dir, [
      "encoder-epoch-99-avg-1.onnx",
      "encoder-epoch-99-avg-1.int8.onnx",
      "decoder-epoch-99-avg-1.int8.onnx",
      "decoder-epoch-99-avg-1.onnx",
      "joiner-epoch-99-avg-1.onnx",
      "joiner-epoch-99-avg-1.int8.onnx",
      "tokens.txt",
      "README.md",
    ]);
    const files = findModelFiles(dir);
    assert.equal(files.encoder, join(dir, "encoder-epoch-99-avg-1.int8.onnx"));
    assert.equal(files.decoder, join(dir, "decoder-epoch-99-avg-1.onnx"));
    assert.equal(files.joiner, join(dir, "joiner-epoch-99-avg-1.int8.onnx"));
    assert.equal(files.tokens, join(dir, "tokens.txt"));

    await touch(dir, ["encoder-epoch-99-avg-1.int8.downsample-fix.onnx"]);
    assert.equal(
      findModelFiles(dir).encoder,
      join(dir, "encoder-epoch-99-avg-1.int8.downsample-fix.onnx"),
    );
  });
});

Deno.test("findModelFiles overrides win, relative to the folder or absolute", async () => {
  await withTemp(async (dir) => {
    await touch(dir, ["my-decoder.onnx"]);
    const files = findModelFiles(KWS, {
      decoder: join(dir, "my-decoder.onnx"),
      tokens: KWS_FILES.tokens,
    });
    assert.equal(files.decoder, join(dir, "my-decoder.onnx"));
    assert.equal(files.tokens, join(KWS, "tokens.txt"));
    assert.equal(files.encoder, join(KWS, KWS_FILES.encoder));

    // An override fills a piece the folder lacks.
    await touch(join(dir, "partial"), ["encoder.int8.onnx", "joiner.int8.onnx", "tokens.txt"]);
    assert.equal(
      findModelFiles(join(dir, "partial"), { decoder: "../my-decoder.onnx" }).decoder,
      join(dir, "partial", "..", "my-decoder.onnx"),
    );

    assert.throws(
      () => findModelFiles(KWS, { encoder: "nope.onnx" }),
      (e: unknown) =>
        e instanceof UserError && e.message.includes(join(KWS, "nope.onnx")) &&
        e.message.includes("SHERPA_ENCODER"),
    );
  });
});

Deno.test("findModelFiles names the folder, the missing pieces and the variables to set", async () => {
  await withTemp(async (dir) => {
    await touch(dir, ["encoder-epoch-1.onnx", "tokens.txt"]);
    assert.throws(() => findModelFiles(dir), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.ok(e.message.includes(dir), e.message);
      assert.match(e.message, /no decoder \(\*decoder\*\.onnx\), no joiner \(\*joiner\*\.onnx\)/);
      assert.match(e.message, /SHERPA_MODEL_DIR/);
      assert.match(e.message, /SHERPA_DECODER, SHERPA_JOINER/);
      assert.doesNotMatch(e.message, /encoder|tokens/);
      return true;
    });
    await Deno.remove(join(dir, "tokens.txt"));
    assert.throws(
      () => findModelFiles(dir, { decoder: join(KWS, KWS_FILES.decoder) }),
      /has no joiner \(\*joiner\*\.onnx\), no tokens\.txt\..*SHERPA_JOINER, SHERPA_TOKENS to the files/,
    );
    assert.throws(
      () => findModelFiles(join(dir, "missing")),
      (e: unknown) =>
        e instanceof UserError && e.message.includes(join(dir, "missing")) &&
        /does not exist.*SHERPA_MODEL_DIR/.test(e.message),
    );
  });
});

Deno.test("resolveModel: SHERPA_MODEL_DIR wins, and a bad one is an error", async () => {
  await withTemp(async (dir) => {
    const noFetch = () => Promise.reject(new Error("no network in this test"));
    const model = await resolveModel({
      modelDir: KWS,
      sharedModelsDir: SHARED_MODELS,
      cacheDir: dir,
      fetch: noFetch,
    });
    assert.equal(model.source, "env");
    assert.equal(model.encoder, join(KWS, KWS_FILES.encoder));

    await assert.rejects(
      resolveModel({
        modelDir: dir,
        sharedModelsDir: SHARED_MODELS,
        cacheDir: dir,
        fetch: noFetch,
      }),
      (e: unknown) => e instanceof UserError && e.message.includes(`Model folder ${dir} has no`),
    );
  });
});

Deno.test("resolveModel: shared by name; other shared models only when the name is not explicit", async () => {
  await withTemp(async (dir) => {
    const shared = join(dir, "shared");
    const cache = join(dir, "cache");
    await linkModel(join(shared, "a-model"));
    await linkModel(join(shared, "my-model"));
    await Deno.mkdir(join(shared, "not-a-model"));
    let fetched = 0;
    const fetch = () => {
      fetched++;
      return Promise.reject(new TypeError("dns error: no network in this test"));
    };

    const byName = await resolveModel({
      modelName: "my-model",
      modelNameExplicit: true,
      sharedModelsDir: shared,
      cacheDir: cache,
      fetch,
    });
    assert.equal(byName.source, "shared");
    assert.equal(byName.name, "my-model");
    assert.equal(byName.dir, join(shared, "my-model"));

    // Default name, not explicit: any streaming transducer in the shared folder.
    const fallback = await resolveModel({ sharedModelsDir: shared, cacheDir: cache, fetch });
    assert.equal(fallback.source, "shared");
    assert.equal(fallback.name, "a-model");

    // The real shared folder: the offline demo and CI find the 3.3M model.
    const real = await resolveModel({ sharedModelsDir: SHARED_MODELS, cacheDir: cache, fetch });
    assert.equal(real.source, "shared");
    assert.equal(real.name, KWS_NAME);
    assert.equal(real.encoder, join(KWS, KWS_FILES.encoder));

    // Explicit name not there: no substitute, straight to cache and download.
    const message = await expectDownloadFailure({
      modelName: "other-model",
      modelNameExplicit: true,
      sharedModelsDir: shared,
      cacheDir: cache,
      downloadUrl: modelUrl("other-model"),
      fetch,
    }, /cannot reach .*other-model\.tar\.bz2: dns error/);
    assert.ok(message.includes(modelUrl("other-model")));
    assert.equal(fetched, 1);
  });
});

Deno.test("resolveModel: a cached model is used without a request", async () => {
  await withTemp(async (dir) => {
    const cache = join(dir, "cache");
    await linkModel(join(cache, "cached-model"));
    const model = await resolveModel({
      modelName: "cached-model",
      modelNameExplicit: true,
      sharedModelsDir: join(dir, "no-shared"),
      cacheDir: cache,
      fetch: () => Promise.reject(new Error("must not fetch")),
    });
    assert.equal(model.source, "cache");
    assert.equal(model.dir, join(cache, "cached-model"));
  });
});

Deno.test("defaultCacheDir follows each platform's convention", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.equal(
    defaultCacheDir(env({ HOME: "/home/u", XDG_CACHE_HOME: "/xdg" }), "linux"),
    "/xdg/callscribe/models",
  );
  assert.equal(
    defaultCacheDir(env({ HOME: "/home/u" }), "linux"),
    "/home/u/.cache/callscribe/models",
  );
  assert.equal(
    defaultCacheDir(env({ HOME: "/Users/u" }), "darwin"),
    "/Users/u/Library/Caches/callscribe/models",
  );
  assert.match(
    defaultCacheDir(env({ LOCALAPPDATA: "C:/Users/u/AppData/Local" }), "windows"),
    /^C:\/Users\/u\/AppData\/Local.callscribe.models$/,
  );
  assert.throws(() => defaultCacheDir(env({}), "linux"), /SHERPA_CACHE_DIR/);
});

Deno.test("download: streamed with progress, checked, moved into place whole; then a cache hit", async () => {
  const archive = await archiveFixture();
  const release = serveRelease(() => new Response(archive.bytes));
  try {
    await withTemp(async (dir) => {
      const cache = join(dir, "cache");
      const target = join(cache, TEST_MODEL);
      const calls: [number, number | undefined][] = [];
      let targetSeenEarly = false;
      let ended = 0;
      const onProgress = Object.assign((received: number, total: number | undefined) => {
        calls.push([received, total]);
        if (received < archive.bytes.length) {
          try {
            Deno.statSync(target);
            targetSeenEarly = true;
          } catch {
            // not there yet, as it should be
          }
        }
      }, { end: () => ended++ });
      const opts = {
        modelName: TEST_MODEL,
        modelNameExplicit: true,
        sharedModelsDir: join(dir, "no-shared"),
        cacheDir: cache,
        downloadUrl: release.url,
        sha256: archive.sha256,
        onProgress,
      };
      const model = await resolveModel(opts);
      assert.equal(model.source, "download");
      assert.equal(model.dir, target);
      assert.equal(model.encoder, join(target, KWS_FILES.encoder));
      assert.equal(release.requests(), 1);

      // Progress: from 0 up to the Content-Length, in order.
      const size = archive.bytes.length;
      assert.deepEqual(calls[0], [0, size]);
      assert.deepEqual(calls.at(-1), [size, size]);
      assert.ok(calls.length >= 3, `expected several progress calls, got ${calls.length}`);
      for (let i = 1; i < calls.length; i++) assert.ok(calls[i][0] >= calls[i - 1][0]);
      assert.equal(ended, 1);

      // Atomic: the final folder did not exist during the download, and is whole now.
      assert.equal(targetSeenEarly, false);
      assert.deepEqual(await listDir(cache), [TEST_MODEL]);
      for (const file of Object.values(KWS_FILES)) {
        assert.equal(
          (await Deno.stat(join(target, file))).size,
          (await Deno.stat(join(KWS, file))).size,
        );
      }

      const again = await resolveModel(opts);
      assert.equal(again.source, "cache");
      assert.equal(again.dir, target);
      assert.equal(release.requests(), 1);
    });
  } finally {
    await release.close();
  }
});

Deno.test("download: a model that appears meanwhile (another process) is used; temps removed", async () => {
  const archive = await archiveFixture();
  const release = serveRelease(() => new Response(archive.bytes));
  try {
    await withTemp(async (dir) => {
      const cache = join(dir, "cache");
      const target = join(cache, TEST_MODEL);
      let raced = false;
      const model = await resolveModel({
        modelName: TEST_MODEL,
        modelNameExplicit: true,
        sharedModelsDir: join(dir, "no-shared"),
        cacheDir: cache,
        downloadUrl: release.url,
        sha256: archive.sha256,
        onProgress: () => {
          if (raced) return;
          raced = true;
          // The other process's rename: a complete folder of symlinks.
          Deno.mkdirSync(target, { recursive: true });
          for (const file of Object.values(KWS_FILES)) {
            Deno.symlinkSync(join(KWS, file), join(target, file));
          }
        },
      });
      assert.equal(model.dir, target);
      assert.ok(Deno.lstatSync(model.encoder).isSymlink, "the other process's folder is kept");
      assert.deepEqual(await listDir(cache), [TEST_MODEL]);
    });
  } finally {
    await release.close();
  }
});

Deno.test("download: an incomplete folder under the final name is replaced", async () => {
  const archive = await archiveFixture();
  const release = serveRelease(() => new Response(archive.bytes));
  try {
    await withTemp(async (dir) => {
      const cache = join(dir, "cache");
      await touch(join(cache, TEST_MODEL), ["tokens.txt"]);
      const model = await resolveModel({
        modelName: TEST_MODEL,
        modelNameExplicit: true,
        sharedModelsDir: join(dir, "no-shared"),
        cacheDir: cache,
        downloadUrl: release.url,
        sha256: archive.sha256,
      });
      assert.equal(model.source, "download");
      assert.equal(
        (await Deno.stat(model.joiner)).size,
        (await Deno.stat(join(KWS, KWS_FILES.joiner))).size,
      );
      assert.deepEqual(await listDir(cache), [TEST_MODEL]);
    });
  } finally {
    await release.close();
  }
});

Deno.test("download: a checksum mismatch fails clearly and leaves no temp files", async () => {
  const archive = await archiveFixture();
  const release = serveRelease(() => new Response(archive.bytes));
  try {
    await withTemp(async (dir) => {
      const cache = join(dir, "cache");
      const message = await expectDownloadFailure({
        modelName: TEST_MODEL,
        modelNameExplicit: true,
        sharedModelsDir: join(dir, "no-shared"),
        cacheDir: cache,
        downloadUrl: release.url,
        sha256: "0".repeat(64),
      }, /checksum mismatch/);
      assert.ok(message.includes(`expected sha256 ${"0".repeat(64)}, got ${archive.sha256}`));
      assert.deepEqual(await listDir(cache), []);
    });
  } finally {
    await release.close();
  }
});

Deno.test("download: HTTP 404 and a refused connection fail clearly", async () => {
  const release = serveRelease(() => new Response("Not Found", { status: 404 }));
  try {
    await withTemp(async (dir) => {
      const cache = join(dir, "cache");
      const base = {
        modelName: TEST_MODEL,
        modelNameExplicit: true,
        sharedModelsDir: join(dir, "no-shared"),
        cacheDir: cache,
      };
      await expectDownloadFailure({ ...base, downloadUrl: release.url }, /HTTP 404 Not Found from/);
      assert.deepEqual(await listDir(cache), []);

      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = listener.addr.port;
      listener.close();
      await expectDownloadFailure(
        { ...base, downloadUrl: `http://127.0.0.1:${port}/model.tar.bz2` },
        /cannot reach http:\/\/127\.0\.0\.1:\d+\/model\.tar\.bz2: .*(refused|Connect)/i,
      );
      assert.deepEqual(await listDir(cache), []);
    });
  } finally {
    await release.close();
  }
});

Deno.test("download: a truncated archive fails cleanly", async () => {
  const archive = await archiveFixture();
  const half = archive.bytes.slice(0, Math.floor(archive.bytes.length / 2));
  const release = serveRelease(() => new Response(half));
  try {
    await withTemp(async (dir) => {
      const cache = join(dir, "cache");
      await expectDownloadFailure({
        modelName: TEST_MODEL,
        modelNameExplicit: true,
        sharedModelsDir: join(dir, "no-shared"),
        cacheDir: cache,
        downloadUrl: release.url,
      }, /the archive could not be unpacked \(tar exited with \d+.*damaged or incomplete/);
      assert.deepEqual(await listDir(cache), []);
      assert.equal(release.requests(), 1);
    });
  } finally {
    await release.close();
  }
});

Deno.test("download: a body cut short of its Content-Length fails cleanly", async () => {
  const release = serveRelease(() => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(1000));
        controller.close();
      },
    });
    return new Response(body, { headers: { "content-length": "5000" } });
  });
  try {
    await withTemp(async (dir) => {
      const cache = join(dir, "cache");
      await expectDownloadFailure({
        modelName: TEST_MODEL,
        modelNameExplicit: true,
        sharedModelsDir: join(dir, "no-shared"),
        cacheDir: cache,
        downloadUrl: release.url,
      }, /(broke off after \d+ bytes|was cut short: got \d+ of 5000 bytes)/);
      assert.deepEqual(await listDir(cache), []);
    });
  } finally {
    await release.close();
  }
});

Deno.test("download: an archive without a model, and a missing tar, fail clearly", async () => {
  const dir0 = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir0, "README.md"), "nothing here\n");
  const out = await new Deno.Command("tar", {
    args: ["-cjf", join(dir0, "x.tar.bz2"), "-C", dir0, "README.md"],
  }).output();
  assert.ok(out.success);
  const empty = new Uint8Array(await Deno.readFile(join(dir0, "x.tar.bz2")));
  await Deno.remove(dir0, { recursive: true });
  const archive = await archiveFixture();

  let serveEmpty = true;
  const release = serveRelease(() => new Response(serveEmpty ? empty : archive.bytes));
  try {
    await withTemp(async (dir) => {
      const cache = join(dir, "cache");
      const base = {
        modelName: TEST_MODEL,
        modelNameExplicit: true,
        sharedModelsDir: join(dir, "no-shared"),
        cacheDir: cache,
        downloadUrl: release.url,
      };
      await expectDownloadFailure(base, /has no sherpa-onnx streaming transducer/);
      assert.deepEqual(await listDir(cache), []);

      serveEmpty = false;
      await expectDownloadFailure(
        { ...base, tarCommand: "callscribe-no-such-tar" },
        /the "callscribe-no-such-tar" command was not found/,
      );
      assert.deepEqual(await listDir(cache), []);
    });
  } finally {
    await release.close();
  }
});

Deno.test("download: the default model's archive is pinned (size and sha256)", async () => {
  const archive = await archiveFixture();
  await withTemp(async (dir) => {
    const cache = join(dir, "cache");
    const asked: string[] = [];
    const message = await expectDownloadFailure({
      sharedModelsDir: join(dir, "no-shared"),
      cacheDir: cache,
      downloadUrl: modelUrl(DEFAULT_MODEL_NAME),
      fetch: (input) => {
        asked.push(String(input));
        return Promise.resolve(new Response(archive.bytes));
      },
    }, /expected 127887156: not the published archive/);
    assert.deepEqual(asked, [
      "https://github.com/k2-fsa/sherpa-onnx/releases/download/asr-models/sherpa-onnx-streaming-zipformer-en-20M-2023-02-17.tar.bz2",
    ]);
    assert.ok(message.includes(cache));
    assert.deepEqual(await listDir(cache), []);
  });
});

Deno.test("progressBar: a line per 10% off a terminal, \\r redraws on one, always a final newline", () => {
  let out = "";
  const plain = progressBar("model", { isTTY: false, write: (t) => (out += t) });
  for (let i = 0; i <= 100; i++) plain(i * 1000, 100_000);
  plain.end?.();
  const lines = out.split("\n").filter(Boolean);
  assert.equal(lines.length, 11);
  assert.equal(lines[0], "model: 0% (0.0/0.1 MB)");
  assert.equal(lines[5], "model: 50% (0.1/0.1 MB)");
  assert.equal(lines[10], "model: 100% (0.1/0.1 MB)");
  assert.ok(out.endsWith("\n"));

  out = "";
  const tty = progressBar("model", { isTTY: true, width: 10, write: (t) => (out += t) });
  tty(0, 2e6);
  tty(2e6, 2e6);
  assert.ok(out.startsWith("\rmodel [..........]   0% 0.0/2.0 MB"));
  assert.ok(out.includes("\rmodel [##########] 100% 2.0/2.0 MB"));
  assert.ok(out.endsWith("\n"));
  assert.equal(out.split("\n").length, 2);

  out = "";
  const broken = progressBar("model", { isTTY: true, write: (t) => (out += t) });
  broken(5e5, undefined);
  assert.ok(!out.endsWith("\n"));
  broken.end?.();
  assert.ok(out.endsWith("\n"));
});
