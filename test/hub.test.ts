import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { resolveModelPath } from "../src/loaders/hub.js";
import { loadBackbone } from "../src/loaders/index.js";
import { encodeSafetensors } from "../src/loaders/safetensors.js";
import { EdgeInfError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";

const repoRoot = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const shared = resolve(repoRoot, "../shared");
const storiesDir = join(shared, "models/stories260K");
const edgeLm = join(shared, "models/edge-lm");
const STORIES_SHA256 = "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696";

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => new Error("expected a rejection"),
    (e: unknown) => e as Error,
  );
}

/** A one-layer Llama with edge-lm's vocabulary (so edge-lm's tokenizer.json fits it). */
function fakeModelFiles(): { config: Buffer; tensors: Record<string, { shape: number[]; data: Float32Array }> } {
  const rng = new Rng(1);
  const t = (...shape: number[]) => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()) });
  const config = {
    architectures: ["LlamaForCausalLM"],
    vocab_size: 8192,
    hidden_size: 8,
    intermediate_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 2,
    max_position_embeddings: 128,
    tie_word_embeddings: true,
    bos_token_id: 0,
    eos_token_id: 1,
  };
  const p = "model.layers.0";
  return {
    config: Buffer.from(JSON.stringify(config)),
    tensors: {
      "model.embed_tokens.weight": t(8192, 8),
      "model.norm.weight": t(8),
      [`${p}.self_attn.q_proj.weight`]: t(8, 8),
      [`${p}.self_attn.k_proj.weight`]: t(8, 8),
      [`${p}.self_attn.v_proj.weight`]: t(8, 8),
      [`${p}.self_attn.o_proj.weight`]: t(8, 8),
      [`${p}.mlp.gate_proj.weight`]: t(16, 8),
      [`${p}.mlp.up_proj.weight`]: t(16, 8),
      [`${p}.mlp.down_proj.weight`]: t(8, 16),
      [`${p}.input_layernorm.weight`]: t(8),
      [`${p}.post_attention_layernorm.weight`]: t(8),
    },
  };
}

describe("resolveModelPath / hub cache", () => {
  const routes = new Map<string, Buffer>();
  const requests: string[] = [];
  let server: Server;
  let cacheDir: string;
  const savedEndpoint = process.env.EDGEINF_HUB_ENDPOINT;
  let fake: ReturnType<typeof fakeModelFiles>;

  beforeAll(async () => {
    fake = fakeModelFiles();
    const tokenizerJson = readFileSync(join(edgeLm, "tokenizer.json"));
    const tokenizerConfig = readFileSync(join(edgeLm, "tokenizer_config.json"));
    // acme/tiny: single-file model.safetensors (no shard index).
    routes.set("/acme/tiny/resolve/main/config.json", fake.config);
    routes.set("/acme/tiny/resolve/main/tokenizer.json", tokenizerJson);
    routes.set("/acme/tiny/resolve/main/tokenizer_config.json", tokenizerConfig);
    routes.set("/acme/tiny/resolve/main/model.safetensors", Buffer.from(encodeSafetensors(fake.tensors)));
    // acme/multi/v2: a sharded model in a subfolder.
    const names = Object.keys(fake.tensors).sort();
    const first = Object.fromEntries(names.slice(0, 5).map((n) => [n, fake.tensors[n]!]));
    const second = Object.fromEntries(names.slice(5).map((n) => [n, fake.tensors[n]!]));
    const weightMap = Object.fromEntries(names.map((n, i) => [n, i < 5 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors"]));
    routes.set("/acme/multi/resolve/main/v2/config.json", fake.config);
    routes.set("/acme/multi/resolve/main/v2/tokenizer.json", tokenizerJson);
    routes.set("/acme/multi/resolve/main/v2/model.safetensors.index.json", Buffer.from(JSON.stringify({ metadata: {}, weight_map: weightMap })));
    routes.set("/acme/multi/resolve/main/v2/model-00001-of-00002.safetensors", Buffer.from(encodeSafetensors(first)));
    routes.set("/acme/multi/resolve/main/v2/model-00002-of-00002.safetensors", Buffer.from(encodeSafetensors(second)));
    // karpathy/tinyllamas: a llama2.c pair in a subfolder.
    routes.set("/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin", readFileSync(join(storiesDir, "stories260K.bin")));
    routes.set("/karpathy/tinyllamas/resolve/main/stories260K/tok512.bin", readFileSync(join(storiesDir, "tok512.bin")));
    server = createServer((req, res) => {
      requests.push(req.url ?? "");
      const body = routes.get(req.url ?? "");
      if (!body) {
        res.writeHead(404).end("not found");
        return;
      }
      res.writeHead(200, { "content-length": body.length }).end(body);
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    process.env.EDGEINF_HUB_ENDPOINT = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    cacheDir = mkdtempSync(join(tmpdir(), "edgeinf-hub-"));
  });

  afterAll(async () => {
    if (savedEndpoint === undefined) delete process.env.EDGEINF_HUB_ENDPOINT;
    else process.env.EDGEINF_HUB_ENDPOINT = savedEndpoint;
    await new Promise<void>((ok) => server.close(() => ok()));
  });

  it("returns an existing local path unchanged and names a missing one", async () => {
    expect(await resolveModelPath(edgeLm)).toBe(edgeLm);
    const missing = join(cacheDir, "no-such-model");
    const err = await rejection(resolveModelPath(missing));
    expect(err).toBeInstanceOf(EdgeInfError);
    expect(err.message).toBe(`model path ${missing} does not exist — pass a directory with config.json or a llama2.c .bin`);
  });

  it("downloads hf:owner/name once, with progress on stderr, then serves it from the cache without requests", async () => {
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const before = requests.length;
    const dir = await resolveModelPath("hf:acme/tiny", { cacheDir });
    const progress = stderr.mock.calls.map((c) => String(c[0])).join("");
    stderr.mockRestore();
    expect(dir).toBe(join(cacheDir, "hub", "acme", "tiny"));
    expect(progress).toContain("downloading acme/tiny/model.safetensors");
    const fetched = requests.slice(before);
    expect(fetched).toContain("/acme/tiny/resolve/main/model.safetensors.index.json"); // probed, 404
    expect(fetched).toContain("/acme/tiny/resolve/main/model.safetensors");
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors", ".complete"]) expect(existsSync(join(dir, f))).toBe(true);
    expect(readFileSync(join(dir, "model.safetensors")).equals(routes.get("/acme/tiny/resolve/main/model.safetensors")!)).toBe(true);

    const afterFirst = requests.length;
    expect(await resolveModelPath("hf:acme/tiny", { cacheDir })).toBe(dir);
    expect(await resolveModelPath("hf:acme/tiny", { cacheDir, offline: true })).toBe(dir);
    expect(requests.length).toBe(afterFirst);

    const b = await loadBackbone("hf:acme/tiny", { cacheDir });
    expect(requests.length).toBe(afterFirst);
    expect(b.source.format).toBe("huggingface");
    expect(b.source.id).toBe("tiny");
    expect(b.weights.layers[0]!.wUp.data).toEqual(fake.tensors["model.layers.0.mlp.up_proj.weight"]!.data);
    expect(b.tokenizer.encode("Hello", { bos: true })[0]).toBe(0);
  });

  it("downloads every shard named by the index of a model in a subfolder", async () => {
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const dir = await resolveModelPath("hf:acme/multi/v2", { cacheDir });
    vi.restoreAllMocks();
    expect(dir).toBe(join(cacheDir, "hub", "acme", "multi", "v2"));
    for (const f of ["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]) expect(existsSync(join(dir, f))).toBe(true);
    expect(requests).not.toContain("/acme/multi/resolve/main/v2/model.safetensors");
    const b = await loadBackbone(dir);
    expect(b.weights.finalNorm.data).toEqual(fake.tensors["model.norm.weight"]!.data);
  });

  it("fetches a llama2.c pair named by ?tokenizer= and loads it", async () => {
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const spec = "hf:karpathy/tinyllamas/stories260K/stories260K.bin?tokenizer=tok512.bin";
    const bin = await resolveModelPath(spec, { cacheDir });
    vi.restoreAllMocks();
    expect(bin).toBe(join(cacheDir, "hub", "karpathy", "tinyllamas", "stories260K", "stories260K.bin"));
    const count = requests.length;
    const b = await loadBackbone(spec, { cacheDir });
    expect(requests.length).toBe(count);
    expect(b.source.format).toBe("llama2c");
    expect(b.source.sha256).toBe(STORIES_SHA256);
    expect(b.tokenizer.vocabSize).toBe(512);
  });

  it("fails clearly when offline and not cached, on a .bin without ?tokenizer=, and on a missing repo file", async () => {
    const count = requests.length;
    const offline = await rejection(resolveModelPath("hf:acme/other", { cacheDir, offline: true }));
    expect(offline).toBeInstanceOf(EdgeInfError);
    expect(offline.message).toContain("hf:acme/other is not in the model cache");
    expect(offline.message).toContain("offline");
    expect(offline.message).not.toContain("\n");
    expect(requests.length).toBe(count);

    const noTok = await rejection(resolveModelPath("hf:karpathy/tinyllamas/stories260K/stories15M.bin", { cacheDir }));
    expect(noTok).toBeInstanceOf(EdgeInfError);
    expect(noTok.message).toContain("?tokenizer=");
    expect(requests.length).toBe(count);

    const missing = await rejection(resolveModelPath("hf:acme/absent", { cacheDir }));
    expect(missing).toBeInstanceOf(EdgeInfError);
    expect(missing.message).toContain("/acme/absent/resolve/main/config.json not found");
    expect(missing.message).not.toContain("\n");
    expect(existsSync(join(cacheDir, "hub", "acme", "absent", ".complete"))).toBe(false);

    const bad = await rejection(resolveModelPath("hf:acme", { cacheDir }));
    expect(bad.message).toContain("bad model spec hf:acme");
  });
});
