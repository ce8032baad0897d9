// llama.cpp's side of bench/vs_llama.py: greedy decoding of fixed prompt ids with node-llama-cpp.
//
// Usage: node bench/vs_llama.mjs '<json>' where the JSON holds
//   {"package": "<folder holding node_modules/node-llama-cpp>", "model": "<file.gguf>",
//    "threads": 1, "streams": [1, 4], "tokens": 48, "prompt": [2, ...], "stop": [1, 106]}
// It prints one JSON line: for each stream count, tokens, wall seconds (prompt included) and the
// decode tok/s of the first stream (after its first token), plus the first stream's token ids.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const config = JSON.parse(process.argv[2]);
const entry = join(config.package, "node_modules", "node-llama-cpp", "dist", "index.js");
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);

// maxThreads 0 makes `threads` the exact count, not a hint lowered under load.
const llama = await getLlama({
  gpu: false,
  build: "never",
  maxThreads: 0,
  logLevel: LlamaLogLevel.error,
});
const model = await llama.loadModel({ modelPath: config.model });
const stop = new Set(config.stop);

async function run(sequence) {
  // One greedy stream: a timestamp per generated token, stopping at N tokens or a stop id.
  await sequence.clearHistory();
  const ids = [];
  const stamps = [];
  for await (const token of sequence.evaluate(config.prompt, { temperature: 0 })) {
    stamps.push(performance.now());
    ids.push(token);
    if (ids.length >= config.tokens || stop.has(token)) break;
  }
  return { ids, stamps };
}

const results = {};
for (const streams of config.streams) {
  const context = await model.createContext({
    sequences: streams,
    contextSize: 512 * streams,
    threads: config.threads,
  });
  const sequences = Array.from({ length: streams }, () => context.getSequence());
  await run(sequences[0]); // warm-up: first-call allocations stay out of the timing
  const start = performance.now();
  const runs = await Promise.all(sequences.map(run));
  const wall = (performance.now() - start) / 1000;
  const first = runs[0];
  const span = (first.stamps.at(-1) - first.stamps[0]) / 1000;
  results[streams] = {
    tokens: runs.reduce((sum, r) => sum + r.ids.length, 0),
    wall,
    decode_tps: first.ids.length > 1 ? (first.ids.length - 1) / span : 0,
    ids: first.ids,
  };
  await context.dispose();
}
await model.dispose();
await llama.dispose();
console.log(JSON.stringify(results));
