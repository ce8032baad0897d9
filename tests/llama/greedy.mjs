// llama.cpp's greedy reply (npm node-llama-cpp), token by token.
//
// usage: node greedy.mjs LLAMA_DIR JOB.json
//   JOB.json  {"model": path, "prompt": [ids], "max_tokens": n}
// Prints {"tokens": [ids], "pieces": [text]}: the greedy reply up to and without the first
// end-of-generation token, at most max_tokens long, each token with its text.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [llamaDir, jobPath] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobPath, "utf8"));
const entry = join(llamaDir, "node_modules", "node-llama-cpp", "dist", "index.js");
const { getLlama } = await import(pathToFileURL(entry).href);

const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: job.model });
const size = Math.max(256, job.prompt.length + job.max_tokens + 8);
// One thread: llama.cpp's spinning worker threads make a busy machine crawl.
const context = await model.createContext({ contextSize: size, batchSize: size, threads: 1 });
const sequence = context.getSequence();
const tokens = [];
const pieces = [];
for await (const token of sequence.evaluate(job.prompt, { temperature: 0 })) {
  if (model.isEogToken(token) || tokens.length >= job.max_tokens) break;
  tokens.push(token);
  pieces.push(model.detokenize([token], false, tokens.slice(0, -1)));
}
process.stdout.write(JSON.stringify({ tokens, pieces }));
await context.dispose();
await model.dispose();
await llama.dispose();
