import type { CommandModule } from "yargs";
import { parameterCount, stopTokenIds } from "../../backbone/config.js";
import { architectureOf, slidingLayers } from "../../backbone/architecture.js";
import { withBackend, withModel, setup, type CommonArgs } from "../common.js";

export const infoCommand: CommandModule<object, CommonArgs & { json?: boolean }> = {
  command: "info",
  describe: "Show a backbone's architecture, parameter count and the backend that runs it",
  builder: (y) =>
    withModel(withBackend(y))
      .option("json", { type: "boolean", describe: "print JSON" })
      .example("$0 info -m ../shared/models/edge-lm", "architecture of a Hugging Face model folder")
      .example("$0 info -m ../shared/models/stories260K/stories260K.bin --backend cpu", "a llama2.c checkpoint on the pure-JS backend"),
  handler: async (args) => {
    const { backend, backbone, model } = await setup(args);
    const c = backbone.config;
    const arch = architectureOf(c);
    const info = {
      model: backbone.source.id,
      path: backbone.source.path,
      format: backbone.source.format,
      sha256: backbone.source.sha256,
      architecture: c.architecture,
      family: arch.name,
      slidingWindowLayers: slidingLayers(arch),
      noRopeLayers: arch.layers.flatMap((l, i) => (l.rope === null ? [i] : [])),
      eosTokenIds: stopTokenIds(c),
      parameters: parameterCount(c),
      layers: c.numLayers,
      hiddenSize: c.hiddenSize,
      heads: c.numHeads,
      kvHeads: c.numKvHeads,
      headDim: c.headDim,
      ffn: c.intermediateSize,
      vocab: c.vocabSize,
      trainedContext: c.maxPositions,
      ropeTheta: c.ropeTheta,
      ropeScaling: c.ropeScaling,
      tiedEmbeddings: c.tieWordEmbeddings,
      kvBytesPerToken: 2 * c.numLayers * c.numKvHeads * c.headDim * 4,
      backend: backend.name,
    };
    if (args.json) console.log(JSON.stringify(info, null, 2));
    else for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(16)} ${typeof v === "object" ? JSON.stringify(v) : v}`);
    model.dispose();
  },
};
