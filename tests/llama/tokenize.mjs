// llama.cpp's tokens for a prompt text (npm node-llama-cpp), control tokens read as llama.cpp's
// server reads a completion prompt, with BOS first when the model asks for it.
//
// usage: node tokenize.mjs LLAMA_DIR JOB.json     JOB.json: {"model": path, "text": string}
// Prints {"tokens": [ids]}.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [llamaDir, jobPath] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobPath, "utf8"));
const entry = join(llamaDir, "node_modules", "node-llama-cpp", "dist", "index.js");
const { getLlama } = await import(pathToFileURL(entry).href);

const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: job.model, vocabOnly: true });
const tokens = [...model.tokenize(job.text, true)];
if (model.tokens.shouldPrependBosToken && model.tokens.bos != null && tokens[0] !== model.tokens.bos) {
  tokens.unshift(model.tokens.bos);
}
process.stdout.write(JSON.stringify({ tokens }));
await model.dispose();
await llama.dispose();
