// The lipsync page: a form made from /v1/models, uploads, progress over server-sent events, the result.
"use strict";

const $ = (id) => document.getElementById(id);
const FINISHED = new Set(["ok", "error", "cancelled", "interrupted"]);
let models = {};
let server = {};
let current = null; // the job being followed: {id, source}

async function api(path, init) {
  const response = await fetch(path, { credentials: "same-origin", ...init });
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (response.status === 401) { $("token-box").hidden = false; }
  if (!response.ok) {
    const err = new Error(body && body.message ? body.message : `HTTP ${response.status}`);
    err.code = body && body.code ? body.code : `http_${response.status}`;
    err.hint = body && body.hint;
    throw err;
  }
  return body;
}

function showError(err) {
  const box = $("error");
  box.textContent = `error [${err.code}]: ${err.message}` + (err.hint ? ` (${err.hint})` : "");
  box.hidden = false;
}

function clearStatus() {
  $("error").hidden = true;
  $("result").hidden = true;
  $("progress").hidden = true;
  $("cancel").hidden = true;
  $("progress-text").textContent = "";
}

// ------------------------------------------------------------------ options form from the declarations

function shown(value) {
  if (value === null || value === undefined || value === false) return "";
  return Array.isArray(value) ? value.join(" ") : String(value);
}

function field(option) {
  const id = `opt-${option.name}`;
  let input;
  if (option.kind === "bool") {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = Boolean(option.default);
  } else if (option.choices.length && option.kind !== "floats") {
    input = document.createElement("select");
    for (const choice of option.choices) {
      const item = document.createElement("option");
      item.value = String(choice);
      item.textContent = String(choice);
      input.append(item);
    }
    input.value = shown(option.default);
  } else {
    input = document.createElement("input");
    input.type = option.kind === "int" || option.kind === "float" ? "number" : "text";
    if (option.kind === "float") input.step = "any";
    if (option.minimum !== null && input.type === "number") input.min = option.minimum;
    if (option.maximum !== null && input.type === "number") input.max = option.maximum;
    input.placeholder = option.default_note || option.metavar || shown(option.default);
    input.value = shown(option.default);
  }
  input.id = id;
  input.dataset.option = option.name;
  input.dataset.kind = option.kind;
  input.dataset.initial = input.type === "checkbox" ? String(input.checked) : input.value;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = option.flag;
  const help = document.createElement("div");
  help.className = "help";
  help.textContent = option.help;
  return [label, input, help];
}

function renderOptions() {
  const model = models[$("model").value];
  $("model-description").textContent = model.description;
  const box = $("options");
  box.replaceChildren();
  for (const option of model.options) {
    // Files on the server can only be named when it was started with --allow-paths.
    if (option.kind === "path" && !server.allow_paths) continue;
    box.append(...field(option));
  }
}

function value(input) {
  const kind = input.dataset.kind;
  if (kind === "bool") return input.checked;
  const text = input.value.trim();
  if (text === "") return null;
  if (kind === "int") return Number.parseInt(text, 10);
  if (kind === "float") return Number.parseFloat(text);
  if (kind === "quad" || kind === "box") return text.split(/[\s,]+/).map((v) => Number.parseInt(v, 10));
  if (kind === "floats") return text.split(/[\s,]+/).map(Number);
  return text;
}

function givenOptions() {
  const given = {};
  for (const input of $("options").querySelectorAll("[data-option]")) {
    const now = input.type === "checkbox" ? String(input.checked) : input.value;
    if (now === input.dataset.initial) continue; // left at the default: the server applies it
    const parsed = value(input);
    if (parsed !== null) given[input.dataset.option] = parsed;
  }
  return given;
}

// ------------------------------------------------------------------------------------- jobs

function describe(job) {
  const p = job.progress;
  if (job.status === "running" && p) {
    return p.total ? `${p.stage}: ${p.done}/${p.total}` : p.stage;
  }
  return job.status;
}

function follow(job) {
  if (current && current.source) current.source.close();
  clearStatus();
  const source = new EventSource(`/v1/jobs/${job.id}/events`);
  current = { id: job.id, source };
  $("progress").hidden = false;
  $("cancel").hidden = false;
  const update = (event) => {
    const data = JSON.parse(event.data);
    $("progress-text").textContent = `job ${data.id}: ${describe(data)}`;
    const p = data.progress;
    if (p && p.total) { $("progress").max = p.total; $("progress").value = p.done; }
    else { $("progress").removeAttribute("value"); }
    if (event.type === "end" || FINISHED.has(data.status)) {
      source.close();
      finished(data);
    }
  };
  source.addEventListener("job", update);
  source.addEventListener("end", update);
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) return;
    source.close();
    api(`/v1/jobs/${job.id}`).then(finished, showError);
  };
}

function finished(job) {
  $("progress").hidden = true;
  $("cancel").hidden = true;
  $("submit").disabled = false;
  $("progress-text").textContent = `job ${job.id}: ${job.status}`;
  if (job.status === "ok") {
    const video = $("video");
    video.src = job.output_url;
    $("download").href = job.output_url;
    const r = job.result;
    $("result-info").textContent = `${r.frames} frames, ${r.fps} fps, ${r.duration} s, ${r.device}`;
    $("result").hidden = false;
  } else if (job.error) {
    showError(job.error);
  }
  refreshJobs();
}

async function submit(event) {
  event.preventDefault();
  clearStatus();
  const image = $("image").files[0];
  const audio = $("audio").files[0];
  if (!image || !audio) {
    showError({ code: image ? "bad_audio" : "bad_input", message: "pick a portrait and a speech file" });
    return;
  }
  const form = new FormData();
  form.append("model", $("model").value);
  form.append("options", JSON.stringify(givenOptions()));
  form.append("image", image);
  form.append("audio", audio);
  $("submit").disabled = true;
  $("progress-text").textContent = "uploading …";
  try {
    follow(await api("/v1/jobs", { method: "POST", body: form }));
  } catch (err) {
    $("submit").disabled = false;
    $("progress-text").textContent = "";
    showError(err);
  }
}

async function refreshJobs() {
  let body;
  try { body = await api("/v1/jobs?limit=20"); } catch { return; }
  const rows = body.jobs.map((job) => {
    const row = document.createElement("tr");
    const cells = [job.id, job.model, describe(job), job.run_seconds === null ? "" : job.run_seconds.toFixed(1)];
    for (const text of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    row.children[2].className = job.status;
    const open = document.createElement("td");
    if (job.output_url) {
      const link = document.createElement("a");
      link.href = job.output_url;
      link.textContent = "video";
      link.addEventListener("click", (e) => { e.preventDefault(); finished(job); });
      open.append(link);
    }
    row.append(open);
    return row;
  });
  document.querySelector("#jobs tbody").replaceChildren(...rows);
}

// ------------------------------------------------------------------------------------ set-up

function dropTarget(label, input) {
  const name = $(`${input.id}-name`);
  input.addEventListener("change", () => { name.textContent = input.files[0] ? input.files[0].name : ""; });
  label.addEventListener("dragover", (e) => { e.preventDefault(); label.classList.add("over"); });
  label.addEventListener("dragleave", () => label.classList.remove("over"));
  label.addEventListener("drop", (e) => {
    e.preventDefault();
    label.classList.remove("over");
    if (e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    }
  });
}

async function start() {
  dropTarget($("image-drop"), $("image"));
  dropTarget($("audio-drop"), $("audio"));
  $("job-form").addEventListener("submit", submit);
  $("model").addEventListener("change", renderOptions);
  $("cancel").addEventListener("click", () => {
    if (current) api(`/v1/jobs/${current.id}/cancel`, { method: "POST" }).catch(showError);
  });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    document.cookie = `lipsync_token=${encodeURIComponent($("token").value)}; path=/; SameSite=Strict`;
    location.reload();
  });
  let body;
  try { body = await api("/v1/models"); } catch (err) { showError(err); return; }
  server = body.server;
  for (const model of body.models) {
    models[model.name] = model;
    const item = document.createElement("option");
    item.value = model.name;
    item.textContent = model.name;
    $("model").append(item);
  }
  renderOptions();
  refreshJobs();
  document.body.dataset.ready = "true";
}

start();
