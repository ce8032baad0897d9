// persona studio's browser chat. One page, two back ends:
// - "server": `persona serve` (GET /v1/personas, /v1/models; streamed POST /v1/chat/completions);
// - "wllama": a `persona export --to web` folder, llama.cpp in WebAssembly, no server at all.
// Every piece of model or persona text is written with textContent, never as markup.

const KEY_NAME = "persona-studio.api-key";
const STORE_NAME = "persona-studio.conversations";
const CURRENT_NAME = "persona-studio.current";
const GREETING_NAME = "persona-studio.greeting";

class AuthNeeded extends Error {}

// ---------- the server back end ----------

class ServerBackend {
  constructor() {
    this.key = sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME) || "";
  }

  headers(json) {
    const headers = {};
    if (this.key) headers.Authorization = `Bearer ${this.key}`;
    if (json) headers["Content-Type"] = "application/json";
    return headers;
  }

  async get(path) {
    const response = await fetch(path, { headers: this.headers(false) });
    if (response.status === 401) throw new AuthNeeded(await errorText(response));
    if (!response.ok) throw new Error(await errorText(response));
    return response.json();
  }

  async personas() {
    // /v1/models answers 401 first when the server has a key, before anything else is asked.
    await this.get("/v1/models");
    const list = await this.get("/v1/personas");
    return list.data.map((p) => ({
      id: p.id,
      name: p.display_name || p.id,
      description: p.description || "",
      greetings: p.greetings || [],
      adapter: p.active_adapter,
    }));
  }

  async stream(persona, messages, signal, onText) {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: this.headers(true),
      body: JSON.stringify({
        model: persona.id,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        stream: true,
        stream_options: { include_usage: true },
      }),
      signal,
    });
    if (response.status === 401) throw new AuthNeeded(await errorText(response));
    if (!response.ok) throw new Error(await errorText(response));
    const result = { adapter: null, finish_reason: null, tokens: null };
    for await (const chunk of sseEvents(response.body)) {
      if ("persona_adapter" in chunk) result.adapter = chunk.persona_adapter;
      if (chunk.usage) result.tokens = chunk.usage.completion_tokens;
      for (const choice of chunk.choices || []) {
        if (choice.delta && choice.delta.content) onText(choice.delta.content);
        if (choice.finish_reason) result.finish_reason = choice.finish_reason;
      }
    }
    return result;
  }
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) {
    // not JSON: fall through to the status line
  }
  return `${response.status} ${response.statusText}`;
}

// Server-sent events: `data: {json}` lines, ended by `data: [DONE]`.
async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

// ---------- the WebAssembly back end (an exported folder) ----------

class WllamaBackend {
  async load(status) {
    this.config = await (await fetch("persona.json")).json();
    const { Wllama } = await import("./wllama/index.js");
    this.wllama = new Wllama({ default: "./wllama/wllama.wasm" }, { logger: quietLogger() });
    // The multi-thread build needs cross-origin isolation (COOP/COEP headers); a plain static
    // server has none, so one thread it is.
    const threads = globalThis.crossOriginIsolated ? navigator.hardwareConcurrency || 1 : 1;
    await this.wllama.loadModelFromUrl(new URL(this.config.model, location.href).href, {
      n_ctx: this.config.context,
      n_threads: threads,
      n_gpu_layers: 0,
      // As llama.cpp's CPU default in node-llama-cpp, so the two agree to the last rounding.
      flash_attn: false,
      useCache: false,
      progressCallback: ({ loaded, total }) =>
        status(`Loading the model: ${Math.round((100 * loaded) / (total || 1))}%`),
    });
  }

  async personas() {
    const c = this.config;
    return [
      {
        id: c.id,
        name: c.display_name || c.id,
        description: c.description || "",
        greetings: c.greetings || [],
        adapter: c.adapter,
      },
    ];
  }

  async stream(persona, messages, signal, onText) {
    const c = this.config;
    const prompt = gemmaPrompt(c, messages);
    const s = c.sampling;
    const run = { prompt, text: "", pieces: [], tokens: [], usage: null, seconds: 0 };
    const started = performance.now();
    const result = { adapter: c.adapter, finish_reason: null, tokens: null };
    try {
      await this.wllama.createCompletion({
        prompt,
        stream: true,
        max_tokens: s.max_tokens ?? 512,
        temperature: s.temperature ?? 1.0,
        ...(s.top_p != null ? { top_p: s.top_p } : {}),
        ...(s.top_k != null ? { top_k: s.top_k } : {}),
        ...(s.min_p != null ? { min_p: s.min_p } : {}),
        ...(s.repetition_penalty != null ? { repeat_penalty: s.repetition_penalty } : {}),
        ...(s.repetition_context_size != null ? { repeat_last_n: s.repetition_context_size } : {}),
        ...(s.presence_penalty ? { presence_penalty: s.presence_penalty } : {}),
        ...(s.frequency_penalty ? { frequency_penalty: s.frequency_penalty } : {}),
        ...(s.seed != null ? { seed: s.seed } : {}),
        ...(s.stop ? { stop: s.stop } : {}),
        // One log-probability per token brings each token's id along with its text.
        logprobs: 1,
        abortSignal: signal,
        onData: (chunk) => {
          if (chunk.usage) run.usage = chunk.usage;
          for (const choice of chunk.choices || []) {
            for (const item of choice.logprobs?.content || []) run.tokens.push(item.id);
            if (choice.text) {
              run.pieces.push(choice.text);
              run.text += choice.text;
              onText(choice.text);
            }
            if (choice.finish_reason) result.finish_reason = choice.finish_reason;
          }
        },
      });
    } catch (error) {
      if (!signal.aborted) throw error;
    }
    run.seconds = (performance.now() - started) / 1000;
    result.tokens = run.usage ? run.usage.completion_tokens : run.pieces.length;
    // The last run, for whoever wants to check what llama.cpp was given and gave back.
    globalThis.personaChat.lastRun = run;
    return result;
  }
}

function quietLogger() {
  return { debug() {}, log() {}, warn: console.warn, error: console.error };
}

// Gemma 3's chat template, as the server renders it: the system prompt opens the first turn,
// the card's post-history instructions end the last user turn, `assistant` is written `model`.
// Text that spells a control token gets a word joiner inside it, so it stays text.
function gemmaPrompt(config, messages) {
  const escaped = (config.special_tokens || []).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (config.special_token_pattern) escaped.push(config.special_token_pattern);
  const specials = escaped.length ? new RegExp(escaped.join("|"), "g") : null;
  const safe = (text) =>
    specials ? text.replace(specials, (token) => `${token[0]}\u2060${token.slice(1)}`) : text;
  const turns = messages.map((m) => ({ role: m.role, content: safe(m.content) }));
  const post = config.post_history_instructions;
  if (post && turns.length && turns[turns.length - 1].role === "user") {
    turns[turns.length - 1].content += `\n\n${post}`;
  }
  let prompt = "";
  turns.forEach((turn, index) => {
    const role = turn.role === "assistant" ? "model" : turn.role;
    prompt += `<start_of_turn>${role}\n`;
    if (index === 0 && config.system_prompt) prompt += `${config.system_prompt}\n\n`;
    prompt += `${turn.content.trim()}<end_of_turn>\n`;
  });
  // llama.cpp adds <bos> itself (the GGUF says add_bos_token).
  return `${prompt}<start_of_turn>model\n`;
}

// ---------- conversations in localStorage ----------

function loadStore() {
  try {
    return JSON.parse(localStorage.getItem(STORE_NAME) || "{}");
  } catch (_) {
    return {};
  }
}

function saveStore(store) {
  localStorage.setItem(STORE_NAME, JSON.stringify(store));
}

function newConversation(persona) {
  const now = Date.now();
  const id = `${new Date(now).toISOString().replace(/[-:T]/g, "").slice(0, 14)}-${Math.random()
    .toString(16)
    .slice(2, 8)}`;
  const messages = [];
  if (persona.greetings.length) {
    const counter = Number(localStorage.getItem(GREETING_NAME) || "0");
    localStorage.setItem(GREETING_NAME, String(counter + 1));
    messages.push({ role: "assistant", content: persona.greetings[counter % persona.greetings.length], greeting: true });
  }
  return { id, model: persona.id, created: now, updated: now, messages };
}

function label(conversation) {
  const first = conversation.messages.find((m) => m.role === "user");
  const text = first ? first.content.replace(/\s+/g, " ").trim() : "(new chat)";
  const when = new Date(conversation.updated).toLocaleString();
  return `${text.length > 40 ? `${text.slice(0, 40)}…` : text} (${when})`;
}

// An exported conversation is an OpenAI-style chat record (`{"messages": [...]}`), which
// `persona data import FILE --to PERSONA` reads back.
function exportRecord(conversation) {
  return {
    messages: conversation.messages.map((m) => ({ role: m.role, content: m.content })),
    model: conversation.model,
    created: new Date(conversation.created).toISOString(),
    persona_adapters: [...new Set(conversation.messages.map((m) => m.adapter).filter(Boolean))],
  };
}

// ---------- the page ----------

class ChatPage {
  constructor() {
    this.el = Object.fromEntries(
      [
        "title", "picker", "persona", "conversation", "new-chat", "export", "key-button",
        "description", "status", "log", "composer", "input", "send", "stop", "regenerate", "edit",
        "key-dialog", "key-form", "key", "remember", "key-error",
      ].map((id) => [id, document.getElementById(id)]),
    );
    const path = location.pathname.match(/^\/chat\/([^/]+)\/?$/);
    this.wasm = document.body.dataset.backend === "wllama";
    this.lockedTo = path ? decodeURIComponent(path[1]) : null;
    this.locked = this.wasm || this.lockedTo !== null;
    this.backend = this.wasm ? new WllamaBackend() : new ServerBackend();
    this.personas = [];
    this.persona = null;
    this.conversation = null;
    this.controller = null;
    if (this.locked) this.el.picker.remove();
    this.bind();
  }

  bind() {
    const el = this.el;
    el.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    el.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      } else if (event.key === "Escape") {
        this.stop();
      }
    });
    el.stop.addEventListener("click", () => this.stop());
    el.regenerate.addEventListener("click", () => this.regenerate());
    el.edit.addEventListener("click", () => this.editLast());
    el["new-chat"].addEventListener("click", () => this.startNew());
    el.export.addEventListener("click", () => this.exportJson());
    if (el.persona) el.persona.addEventListener("change", () => this.choose(el.persona.value));
    el.conversation.addEventListener("change", () => this.open(el.conversation.value));
    el["key-button"].addEventListener("click", () => this.askKey(""));
    el["key-form"].addEventListener("submit", (event) => {
      event.preventDefault();
      this.useKey();
    });
  }

  status(text) {
    this.el.status.textContent = text;
  }

  async start() {
    try {
      if (this.wasm) {
        this.status("Loading the model…");
        await this.backend.load((text) => this.status(text));
      }
      this.personas = await this.backend.personas();
    } catch (error) {
      if (error instanceof AuthNeeded) {
        this.askKey(this.backend.key ? error.message : "");
        return;
      }
      this.status(`Could not load the personas: ${error.message}`);
      return;
    }
    this.status("");
    this.el["key-button"].hidden = this.wasm || !this.backend.key;
    let wanted = this.lockedTo;
    if (this.locked) {
      this.personas = this.personas.filter((p) => p.id === (this.wasm ? p.id : wanted));
    } else {
      for (const p of this.personas) {
        const option = document.createElement("option");
        option.value = p.id;
        option.textContent = p.name;
        this.el.persona.append(option);
      }
      wanted = localStorage.getItem(`${CURRENT_NAME}.persona`) || this.personas[0]?.id;
    }
    if (!this.personas.length) {
      this.status(`No persona named ${this.lockedTo} is served here.`);
      return;
    }
    this.choose(this.personas.some((p) => p.id === wanted) ? wanted : this.personas[0].id);
    this.el.input.focus();
  }

  askKey(message) {
    this.el["key-error"].textContent = message;
    this.el.key.value = "";
    if (!this.el["key-dialog"].open) this.el["key-dialog"].showModal();
    this.el.key.focus();
  }

  useKey() {
    const key = this.el.key.value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_NAME, key);
    if (this.el.remember.checked) localStorage.setItem(KEY_NAME, key);
    else localStorage.removeItem(KEY_NAME);
    this.backend.key = key;
    this.el["key-dialog"].close();
    if (!this.personas.length) this.start();
  }

  choose(id) {
    this.persona = this.personas.find((p) => p.id === id);
    if (!this.locked) {
      this.el.persona.value = id;
      localStorage.setItem(`${CURRENT_NAME}.persona`, id);
    }
    document.title = `${this.persona.name} · persona studio`;
    this.el.title.textContent = this.locked ? this.persona.name : "persona studio";
    this.el.description.textContent = this.persona.description;
    const store = loadStore();
    const current = localStorage.getItem(`${CURRENT_NAME}.${id}`);
    if (current && store[current]) this.show(store[current]);
    else this.startNew();
  }

  startNew() {
    this.stop();
    const conversation = newConversation(this.persona);
    this.save(conversation);
    this.show(conversation);
  }

  open(id) {
    const conversation = loadStore()[id];
    if (conversation) {
      this.stop();
      this.show(conversation);
    }
  }

  save(conversation) {
    conversation.updated = Date.now();
    const store = loadStore();
    store[conversation.id] = conversation;
    saveStore(store);
    localStorage.setItem(`${CURRENT_NAME}.${conversation.model}`, conversation.id);
  }

  show(conversation) {
    this.conversation = conversation;
    localStorage.setItem(`${CURRENT_NAME}.${conversation.model}`, conversation.id);
    this.el.log.replaceChildren(...conversation.messages.map((m) => this.bubble(m)));
    this.listConversations();
    this.refresh();
    this.el.log.scrollTop = this.el.log.scrollHeight;
  }

  listConversations() {
    const mine = Object.values(loadStore())
      .filter((c) => c.model === this.persona.id)
      .sort((a, b) => b.updated - a.updated);
    this.el.conversation.replaceChildren(
      ...mine.map((c) => {
        const option = document.createElement("option");
        option.value = c.id;
        option.textContent = label(c);
        return option;
      }),
    );
    this.el.conversation.value = this.conversation.id;
  }

  bubble(message) {
    const article = document.createElement("article");
    article.className = `msg ${message.role}`;
    const who = document.createElement("span");
    who.className = "visually-hidden";
    who.textContent = message.role === "user" ? "You said: " : `${this.persona.name} said: `;
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = message.content;
    article.append(who, text);
    if (message.role === "assistant" && !message.greeting) {
      const meta = document.createElement("p");
      meta.className = "meta";
      meta.textContent = metaText(message);
      article.append(meta);
    }
    return article;
  }

  refresh() {
    const busy = this.controller !== null;
    const messages = this.conversation ? this.conversation.messages : [];
    const last = messages[messages.length - 1];
    const hasUser = messages.some((m) => m.role === "user");
    this.el.send.disabled = busy;
    this.el.stop.disabled = !busy;
    this.el.regenerate.disabled = busy || !(last && last.role === "assistant" && !last.greeting);
    this.el.edit.disabled = busy || !hasUser;
    this.el.persona?.toggleAttribute("disabled", busy);
    this.el.conversation.disabled = busy;
    this.el["new-chat"].disabled = busy;
  }

  async send() {
    const text = this.el.input.value;
    if (!text.trim() || this.controller || !this.persona) return;
    this.el.input.value = "";
    this.conversation.messages.push({ role: "user", content: text });
    this.el.log.append(this.bubble({ role: "user", content: text }));
    this.save(this.conversation);
    this.listConversations();
    await this.reply();
  }

  async reply() {
    const conversation = this.conversation;
    const message = { role: "assistant", content: "", adapter: null, tokens: null };
    const article = this.bubble(message);
    const text = article.querySelector(".text");
    const meta = article.querySelector(".meta");
    meta.textContent = "…";
    article.setAttribute("aria-busy", "true");
    this.el.log.append(article);
    this.controller = new AbortController();
    this.refresh();
    const started = performance.now();
    let result = { adapter: null, finish_reason: null, tokens: null };
    try {
      result = await this.backend.stream(
        this.persona,
        conversation.messages,
        this.controller.signal,
        (piece) => {
          message.content += piece;
          text.textContent = message.content;
          this.el.log.scrollTop = this.el.log.scrollHeight;
        },
      );
    } catch (error) {
      if (error instanceof AuthNeeded) {
        article.remove();
        this.controller = null;
        this.refresh();
        this.askKey(error.message);
        return;
      }
      if (error.name !== "AbortError") {
        article.classList.add("error");
        meta.textContent = `Error: ${error.message}`;
        article.removeAttribute("aria-busy");
        this.controller = null;
        this.refresh();
        return;
      }
    }
    const stopped = this.controller.signal.aborted;
    this.controller = null;
    if (stopped && !message.content) {
      // Stopped before a word came: there is no reply to keep.
      article.remove();
      this.refresh();
      return;
    }
    message.adapter = result.adapter;
    message.tokens = result.tokens;
    message.finish_reason = stopped ? "stopped" : result.finish_reason;
    message.seconds = (performance.now() - started) / 1000;
    meta.textContent = metaText(message);
    article.removeAttribute("aria-busy");
    conversation.messages.push(message);
    this.save(conversation);
    this.refresh();
  }

  stop() {
    if (this.controller) this.controller.abort();
  }

  async regenerate() {
    const messages = this.conversation.messages;
    if (this.controller || !messages.length || messages[messages.length - 1].role !== "assistant") return;
    messages.pop();
    this.el.log.lastElementChild.remove();
    this.save(this.conversation);
    await this.reply();
  }

  editLast() {
    const messages = this.conversation.messages;
    const index = messages.map((m) => m.role).lastIndexOf("user");
    if (this.controller || index < 0) return;
    const [user] = messages.splice(index);
    this.save(this.conversation);
    this.show(this.conversation);
    this.el.input.value = user.content;
    this.el.input.focus();
  }

  exportJson() {
    if (!this.conversation) return;
    const blob = new Blob([`${JSON.stringify(exportRecord(this.conversation), null, 2)}\n`], {
      type: "application/json",
    });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${this.conversation.model}-${this.conversation.id}.json`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }
}

function metaText(message) {
  const parts = [message.adapter ? `adapter ${message.adapter}` : "base model (no adapter)"];
  if (message.tokens != null) {
    parts.push(`${message.tokens} tokens`);
    if (message.seconds) parts.push(`${(message.tokens / message.seconds).toFixed(1)} tok/s`);
  }
  if (message.finish_reason === "stopped") parts.push("stopped");
  else if (message.finish_reason === "length") parts.push("cut at max tokens");
  return parts.join(" · ");
}

globalThis.personaChat = { exportRecord };
const page = new ChatPage();
globalThis.personaChat.page = page;
page.start();
