// Teacher-forced greedy choices from llama.cpp (npm node-llama-cpp).
//
// usage: node teacher_force.mjs LLAMA_DIR JOB.json
//   LLAMA_DIR  the folder holding node_modules/node-llama-cpp (scripts/install-llama.sh)
//   JOB.json   {"model": path, "lora": path|null,
//               "sequences": [{"prompt": [ids], "reply": [ids]}]}
// Prints {"sequences": [[{"token": id, "logprob": x, "chosen": y|null}, ...], ...]}: at position i,
// after prompt + reply[:i], llama.cpp's greedy token and its log-probability, and where that is not
// reply[i], the log-probability llama.cpp gives reply[i] (else null).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [llamaDir, jobPath] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobPath, "utf8"));
const entry = join(llamaDir, "node_modules", "node-llama-cpp", "dist", "index.js");
const { getLlama } = await import(pathToFileURL(entry).href);

const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: job.model });
const longest = Math.max(...job.sequences.map((s) => s.prompt.length + s.reply.length));
const context = await model.createContext({
  contextSize: Math.max(256, longest + 8),
  batchSize: Math.max(256, longest + 8),
  sequences: 1,
  // One thread: llama.cpp's worker threads spin while they wait, and on a busy machine with few
  // cores that made every token take seconds instead of milliseconds.
  threads: job.threads ?? 1,
  ...(job.lora ? { lora: { adapters: [{ filePath: job.lora }] } } : {}),
});
const sequence = context.getSequence();

// The prompt goes in one batch (as a server prefills it), then the reply one token at a time;
// `wanted(i)` says what to ask for at reply position i.
async function force(prompt, reply, wanted) {
  await sequence.clearHistory();
  const last = prompt.length - 1;
  const outputs = [];
  const first = await sequence.controlledEvaluate(
    prompt.map((t, i) => (i === last ? [t, { generateNext: wanted(0) }] : t)),
  );
  outputs.push(first[last]);
  for (let i = 1; i < reply.length; i++) {
    const out = await sequence.controlledEvaluate([[reply[i - 1], { generateNext: wanted(i) }]]);
    outputs.push(out[0]);
  }
  return outputs;
}

const results = [];
for (const { prompt, reply } of job.sequences) {
  const greedy = await force(prompt, reply, () => ({ token: true, confidence: true }));
  const positions = greedy.map((out) => ({
    token: out.next.token,
    logprob: Math.log(out.next.confidence),
    chosen: null,
  }));
  const missed = new Set(positions.flatMap((p, i) => (p.token === reply[i] ? [] : [i])));
  if (missed.size > 0) {
    // Full distributions only where llama.cpp disagrees: they are 262,144 entries each.
    const full = await force(prompt, reply, (i) => (missed.has(i) ? { probabilities: true } : {}));
    for (const i of missed) {
      const p = full[i].next.probabilities.get(reply[i]);
      positions[i].chosen = p ? Math.log(p) : -1e9;
    }
  }
  results.push(positions);
}
process.stdout.write(JSON.stringify({ sequences: results }));
await context.dispose();
await model.dispose();
await llama.dispose();
