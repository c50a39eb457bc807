/**
 * Serves a recording with HTTP Range support (RFC 9110 §14), so a browser's
 * audio element can seek: `206 Partial Content` with `Content-Range` for one
 * satisfiable range, `416` with `Content-Range: bytes *\/size` for none, and
 * the whole file (`200`) without a Range header, with a unit other than
 * `bytes` (RFC 9110 §14.2: ignored), or with several ranges (a server may
 * ignore Range; multipart answers are not worth it here).
 *
 * @module
 */

/** A byte range, both ends included. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The range a `Range` header asks of a `size`-byte file: null when it asks
 * for the whole file (absent, another unit, several ranges), `"unsatisfiable"`
 * when it cannot be served.
 */
export function parseRange(
  header: string | null,
  size: number,
): ByteRange | null | "unsatisfiable" {
  // RFC 9110 §14.2: a range unit the server does not know is ignored (the whole file, 200).
  if (header === null || !/^bytes=/i.test(header.trim())) return null;
  const match = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header.trim());
  if (!match) {
    return header.trim().startsWith("bytes=") && header.includes(",") ? null : "unsatisfiable";
  }
  const [, first, last] = match;
  if (first === "" && last === "") return "unsatisfiable";
  if (first === "") {
    // A suffix: the last N bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return "unsatisfiable";
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return "unsatisfiable";
  return { start, end };
}

/** The response for a GET of the file at `path` (`size` bytes), honouring `range`. */
export async function fileRangeResponse(
  path: string,
  size: number,
  rangeHeader: string | null,
  headers: Record<string, string>,
): Promise<Response> {
  const range = parseRange(rangeHeader, size);
  const common = { ...headers, "accept-ranges": "bytes", "cache-control": "no-store" };
  if (range === "unsatisfiable") {
    return new Response(`cannot serve range ${rangeHeader} of a ${size}-byte file`, {
      status: 416,
      headers: { ...common, "content-range": `bytes */${size}`, "content-type": "text/plain" },
    });
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  const length = Math.max(0, end - start + 1);
  const file = await Deno.open(path, { read: true });
  await file.seek(start, Deno.SeekMode.Start);
  let left = length;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (left <= 0) {
        file.close();
        return controller.close();
      }
      const chunk = new Uint8Array(Math.min(left, 64 * 1024));
      const n = await file.read(chunk);
      if (n === null) {
        file.close();
        return controller.close();
      }
      left -= n;
      controller.enqueue(chunk.subarray(0, n));
    },
    cancel() {
      file.close();
    },
  });
  return new Response(body, {
    status: range ? 206 : 200,
    headers: {
      ...common,
      "content-length": String(length),
      ...(range ? { "content-range": `bytes ${start}-${end}/${size}` } : {}),
    },
  });
}
