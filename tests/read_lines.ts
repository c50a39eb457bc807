/**
 * Text read line by line as it comes: a child process's output, a command
 * stream, a server-sent events body. The one splitter the tests share.
 *
 * @module
 */

/** How {@link readLines} splits. */
export interface ReadLinesOptions {
  /** What ends a line (default `"\n"`; `"\n\n"` gives the blocks of server-sent events). */
  separator?: string;
  /** Also yield the text after the last separator when the stream ends (default: dropped). */
  rest?: boolean;
}

/** The lines of `stream` (UTF-8) as each is complete, without their separator. */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  options: ReadLinesOptions = {},
): AsyncGenerator<string> {
  const separator = options.separator ?? "\n";
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let end;
    while ((end = buffer.indexOf(separator)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + separator.length);
      yield line;
    }
  }
  if (options.rest && buffer) yield buffer;
}
