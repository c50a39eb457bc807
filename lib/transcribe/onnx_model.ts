/**
 * What the local engine needs to know of an ONNX model before it decodes,
 * read from the file's protobuf without loading it:
 *
 * - whether it takes a batch: the first dimension of its first input
 *   (ModelProto.graph.input[0]). Asked before decoding several streams in
 *   one call, because ONNX Runtime aborts the whole process (an uncaught C++
 *   exception in sherpa-onnx) when a model exported with batch size 1 gets
 *   two;
 * - its metadata (ModelProto.metadata_props), where the k2-fsa exports put
 *   the streaming encoder's chunk (`decode_chunk_len`, in 10 ms frames).
 *
 * @module
 */

/** What {@link inspectOnnxModel} reads. */
export interface OnnxModelFacts {
  /** The first input has a symbolic or >1 batch dimension (false for a fixed 1). */
  takesBatch: boolean;
  /** The model's metadata, key to value. */
  metadata: Map<string, string>;
  /**
   * A streaming encoder's chunk in 10 ms feature frames (`decode_chunk_len`);
   * null when the metadata does not give it as a whole number above 0.
   */
  chunkFrames: number | null;
}

/** Reads an ONNX model file's {@link OnnxModelFacts}; throws naming the file if it is not one. */
export function inspectOnnxModel(path: string): OnnxModelFacts {
  try {
    const bytes = Deno.readFileSync(path);
    const metadata = metadataProps(bytes);
    const chunk = Number(metadata.get("decode_chunk_len"));
    return {
      takesBatch: firstInputTakesBatch(bytes),
      metadata,
      chunkFrames: Number.isInteger(chunk) && chunk > 0 ? chunk : null,
    };
  } catch (error) {
    throw new Error(`Cannot parse ONNX model ${path}: ${(error as Error).message}`);
  }
}

/** ModelProto.metadata_props (field 14): StringStringEntryProto {key = 1, value = 2}. */
function metadataProps(bytes: Uint8Array): Map<string, string> {
  const metadata = new Map<string, string>();
  const text = new TextDecoder();
  scan(bytes, (number, wire, start, end) => {
    if (number === 14 && wire === 2) {
      const entry = bytes.subarray(start, end);
      const key = field(entry, 1);
      const value = field(entry, 2);
      if (key) metadata.set(text.decode(key), value ? text.decode(value) : "");
    }
    return false;
  });
  return metadata;
}

function firstInputTakesBatch(bytes: Uint8Array): boolean {
  const graph = field(bytes, 7); // ModelProto.graph
  const input = graph && field(graph, 11); // GraphProto.input (the first)
  const type = input && field(input, 2); // ValueInfoProto.type
  const tensor = type && field(type, 1); // TypeProto.tensor_type
  const shape = tensor && field(tensor, 2); // Tensor.shape
  const dim = shape && field(shape, 1); // TensorShapeProto.dim (the first)
  if (!dim) return false;
  const value = varintField(dim, 1); // Dimension.dim_value
  // A named dimension (dim_param) is dynamic: any batch.
  return value === null ? field(dim, 2) !== null : value > 1;
}

/** Reads a protobuf varint at `at`; returns [value, next offset]. */
function varint(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (at >= bytes.length) throw new Error("truncated varint");
    const b = bytes[at++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, at];
    scale *= 128;
  }
}

/** Visits the top-level fields of a protobuf message until `visit` returns true. */
function scan(
  bytes: Uint8Array,
  visit: (number: number, wire: number, at: number, end: number) => boolean,
): void {
  let at = 0;
  while (at < bytes.length) {
    const [key, afterKey] = varint(bytes, at);
    const number = Math.floor(key / 8);
    const wire = key & 7;
    let end: number;
    let start = afterKey;
    if (wire === 0) end = varint(bytes, afterKey)[1];
    else if (wire === 1) end = afterKey + 8;
    else if (wire === 5) end = afterKey + 4;
    else if (wire === 2) {
      const [length, afterLength] = varint(bytes, afterKey);
      start = afterLength;
      end = afterLength + length;
    } else throw new Error(`unknown wire type ${wire}`);
    if (end > bytes.length) throw new Error(`field ${number} runs past the end of the file`);
    if (visit(number, wire, start, end)) return;
    at = end;
  }
}

/** The first length-delimited field `number` of a message, or null. */
function field(bytes: Uint8Array, number: number): Uint8Array | null {
  let found: Uint8Array | null = null;
  scan(bytes, (n, wire, start, end) => {
    if (n !== number || wire !== 2) return false;
    found = bytes.subarray(start, end);
    return true;
  });
  return found;
}

/** The first varint field `number` of a message, or null. */
function varintField(bytes: Uint8Array, number: number): number | null {
  let found: number | null = null;
  scan(bytes, (n, wire, start) => {
    if (n !== number || wire !== 0) return false;
    found = varint(bytes, start)[0];
    return true;
  });
  return found;
}
