import onnxProto from "onnx-proto";
import type { onnx as P } from "onnx-proto";

/**
 * A small builder for ONNX graphs on top of the protobufjs messages generated from the official onnx.proto
 * (npm `onnx-proto`): nodes, initializers and typed graph inputs/outputs. Nothing here knows about EdgeInfinite.
 */
export const onnx = onnxProto.onnx;

export type NodeProto = P.INodeProto;
export type TensorProto = P.ITensorProto;
export type ValueInfoProto = P.IValueInfoProto;
export type GraphProto = P.IGraphProto;
export type ModelProto = P.IModelProto;

/** A tensor dimension: a fixed size, or a named dynamic axis (dim_param). */
export type Dim = number | string;

export type Attribute = { name: string } & ({ f: number } | { i: number } | { ints: number[] });

function attributeProto(a: Attribute): P.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ("f" in a) return { name: a.name, type: T.FLOAT, f: a.f };
  if ("i" in a) return { name: a.name, type: T.INT, i: a.i };
  return { name: a.name, type: T.INTS, ints: a.ints };
}

// Raw bytes are little-endian by the ONNX spec; DataView makes that explicit whatever the host order.
function float32Bytes(data: Float32Array): Uint8Array {
  const out = new Uint8Array(data.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  return out;
}

function int64Bytes(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setBigInt64(i * 8, BigInt(values[i]!), true);
  return out;
}

function tensorType(dims: readonly Dim[]): P.ITypeProto {
  return {
    tensorType: {
      elemType: onnx.TensorProto.DataType.FLOAT,
      shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
    },
  };
}

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly inputs: ValueInfoProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  private readonly initializerNames = new Set<string>();

  /** Adds one node; its output is named `out` (also used as the node name, which ONNX wants unique). */
  op(opType: string, inputs: string[], out: string, attributes: Attribute[] = [], docString?: string): string {
    this.nodes.push({
      opType,
      input: inputs,
      output: [out],
      name: out,
      attribute: attributes.map(attributeProto),
      ...(docString ? { docString } : {}),
    });
    return out;
  }

  /** A float32 initializer (weights, constants). Adding the same name twice keeps the first (shared constants). */
  floatInitializer(name: string, dims: readonly number[], data: Float32Array, docString: string): string {
    if (this.initializerNames.has(name)) return name;
    this.initializerNames.add(name);
    this.initializers.push({ name, dims: [...dims], dataType: onnx.TensorProto.DataType.FLOAT, rawData: float32Bytes(data), docString });
    return name;
  }

  /** A 1-D int64 initializer (shapes and axes that opset ≥ 13 ops take as inputs). */
  int64Initializer(name: string, values: readonly number[], docString: string): string {
    if (this.initializerNames.has(name)) return name;
    this.initializerNames.add(name);
    this.initializers.push({ name, dims: [values.length], dataType: onnx.TensorProto.DataType.INT64, rawData: int64Bytes(values), docString });
    return name;
  }

  input(name: string, dims: readonly Dim[], docString: string): string {
    this.inputs.push({ name, type: tensorType(dims), docString });
    return name;
  }

  output(name: string, dims: readonly Dim[], docString: string): string {
    this.outputs.push({ name, type: tensorType(dims), docString });
    return name;
  }

  graph(name: string, docString: string): GraphProto {
    return { name, docString, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs };
  }
}

/** Serialises a model with the generated encoder (never by hand). */
export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

export function decodeModel(bytes: Uint8Array): P.ModelProto {
  return onnx.ModelProto.decode(bytes);
}
