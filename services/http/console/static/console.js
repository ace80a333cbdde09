// The forgeline web console: runs, a run followed live, runs compared, deployments tried.
// Plain script, no framework and nothing loaded from the internet. Every call goes to this
// server's /console/api and /v1 routes with the bearer token the user gave (when auth is on).
"use strict";

const main = document.getElementById("main");
const COLORS = ["#2f6fd6", "#c2410c", "#1f8a4c", "#7c3aed", "#b7791f", "#0e7490"];
let leave = () => {};  // stops what the current page streams when another page opens

// --- small helpers ---------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function num(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1000 ? v.toFixed(1) : String(Number(v.toPrecision(4)));
}

function state(s) { return h("span", { class: `state ${s}` }, s); }

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

// --- calls -----------------------------------------------------------------------------------

function headers(extra) {
  const token = sessionStorage.getItem("forgeline-token");
  return Object.assign(token ? { Authorization: `Bearer ${token}` } : {}, extra || {});
}

async function failure(response) {
  if (response.status === 401) document.getElementById("auth").hidden = false;
  let text = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const error = body.error || {};
    text = `${response.status}: ${error.message || JSON.stringify(body)}`;
    if (error.rule) text += ` (rule ${error.rule})`;
  } catch (e) { /* not JSON */ }
  return new Error(text);
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({}, options, { headers: headers((options || {}).headers) }));
  if (!response.ok) throw await failure(response);
  return response.json();
}

// The server-sent events of a fetched response: calls onFrame(kind, data) for each frame that
// carries data; resolves when the stream ends or onFrame returns true.
async function readFrames(response, onFrame) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let kind = "message", data = "";
      for (const line of frame.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data && onFrame(kind, data)) return;
    }
  }
}

// This server's server-sent events, read with fetch (so the Authorization header goes with
// them): calls onEvent(kind, data) per event; resolves when the stream ends.
async function events(path, onEvent, signal) {
  const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!response.ok) throw await failure(response);
  await readFrames(response, (kind, data) => { onEvent(kind, JSON.parse(data)); });
}

// --- runs list -------------------------------------------------------------------------------

async function runsPage(params) {
  const stateBox = h("select", { id: "filter-state" },
    ["", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"].map((s) => h("option", { value: s, selected: s === (params.get("state") || "") }, s || "any state")));
  const nameBox = h("input", { id: "filter-name", placeholder: "pipeline or run id", value: params.get("q") || "" });
  const compareButton = h("button", { id: "compare-btn", class: "primary", disabled: true }, "Compare selected");
  const body = h("tbody");
  const table = h("table", { id: "runs-table" },
    h("thead", {}, h("tr", {}, ["", "Pipeline", "Run", "State", "Started", "Duration", "Headline metrics", "Gates"].map((t) => h("th", {}, t)))), body);
  const filter = () => { location.hash = `#/runs?state=${stateBox.value}&q=${encodeURIComponent(nameBox.value)}`; };
  stateBox.addEventListener("change", filter);
  nameBox.addEventListener("change", filter);
  const chosen = new Set();
  compareButton.addEventListener("click", () => { location.hash = `#/compare?runs=${[...chosen].join(",")}`; });
  main.replaceChildren(h("h1", {}, "Runs"), h("div", { class: "sub" }, "Pipeline runs, newest first."),
    h("div", { class: "toolbar" }, stateBox, nameBox, h("button", { onclick: filter }, "Filter"), compareButton), table);
  const query = new URLSearchParams({ state: params.get("state") || "", q: params.get("q") || "" });
  const draw = (runs) => {
    for (const id of [...chosen]) if (!runs.some((r) => r.id === id && r.report)) chosen.delete(id);
    compareButton.disabled = chosen.size < 2;
    body.replaceChildren();
    if (!runs.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No runs yet: `forgeline run PIPELINE.yaml` starts one.")));
    for (const run of runs) {
      const box = h("input", { type: "checkbox", class: "pick", "data-id": run.id, disabled: !run.report });
      box.checked = chosen.has(run.id);
      box.addEventListener("change", () => {
        box.checked ? chosen.add(run.id) : chosen.delete(run.id);
        compareButton.disabled = chosen.size < 2;
      });
      body.append(h("tr", { class: "run-row", "data-id": run.id, "data-state": run.state },
        h("td", {}, box),
        h("td", {}, run.pipeline),
        h("td", {}, h("a", { href: `#/runs/${run.id}`, class: "run-link" }, run.id.slice(0, 12)), run.attempt > 1 ? ` (attempt ${run.attempt})` : ""),
        h("td", {}, state(run.state)),
        h("td", {}, when(run.create_time)),
        h("td", { class: "num" }, duration(run.seconds)),
        h("td", { class: "metrics" }, Object.entries(run.headline).map(([k, v]) => h("span", {}, `${k} ${num(v)}`))),
        h("td", {}, run.gates.map((g) => h("span", { class: `gate ${g.passed ? "pass" : "fail"}`, title: g.message }, `${g.passed ? "\u2713" : "\u2717"} ${g.expression}`)))));
    }
  };
  // The list live: the gateway sends it again whenever a run starts, changes or ends. A stream
  // that ends (the gateway restarted) is opened again after a pause.
  const controller = new AbortController();
  leave = () => controller.abort();
  const live = document.getElementById("live");
  live.hidden = false;
  try {
    while (!controller.signal.aborted) {
      await events(`/console/api/runs/watch?${query}`, (kind, data) => { if (kind === "runs") draw(data.runs); }, controller.signal);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  } catch (e) {
    if (e.name !== "AbortError") throw e;
  } finally {
    if (!controller.signal.aborted) live.hidden = true;  // a page left hides it in route()
  }
}

// --- one run, live ---------------------------------------------------------------------------

function layers(steps) {
  const level = {};
  const byName = Object.fromEntries(steps.map((s) => [s.name, s]));
  const depth = (name, seen = new Set()) => {
    if (name in level) return level[name];
    if (seen.has(name) || !byName[name]) return 0;
    seen.add(name);
    const deps = byName[name].depends_on || [];
    return (level[name] = deps.length ? 1 + Math.max(...deps.map((d) => depth(d, seen))) : 0);
  };
  steps.forEach((s) => depth(s.name));
  return level;
}

function dag(steps, selected, onPick) {
  const level = layers(steps);
  const columns = {};
  for (const s of steps) (columns[level[s.name]] = columns[level[s.name]] || []).push(s);
  const W = 170, H = 48, GX = 60, GY = 22;
  const place = {};
  Object.entries(columns).forEach(([col, items]) => items.forEach((s, i) => { place[s.name] = { x: 16 + col * (W + GX), y: 16 + i * (H + GY) }; }));
  const width = 32 + (Object.keys(columns).length) * (W + GX) - GX;
  const height = 32 + Math.max(...Object.values(columns).map((c) => c.length)) * (H + GY) - GY;
  const root = svg("svg", { class: "dag", id: "dag", viewBox: `0 0 ${width} ${height}`, style: `max-width:${width}px` },
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto" }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#aab2c0", stroke: "none" }))));
  for (const s of steps) for (const d of s.depends_on || []) {
    if (!place[d]) continue;
    const a = place[d], b = place[s.name];
    root.append(svg("path", { d: `M${a.x + W},${a.y + H / 2} C${a.x + W + GX / 2},${a.y + H / 2} ${b.x - GX / 2},${b.y + H / 2} ${b.x},${b.y + H / 2}` }));
  }
  for (const s of steps) {
    const p = place[s.name];
    const g = svg("g", { class: `step${s.name === selected ? " selected" : ""}`, "data-step": s.name, "data-state": s.state, transform: `translate(${p.x},${p.y})` },
      svg("rect", { width: W, height: H }),
      svg("text", { x: 10, y: 19 }, s.name),
      svg("text", { x: 10, y: 36, class: "small" }, `${s.state.toLowerCase()}${s.cached ? " · cached" : ""}${s.seconds != null ? " · " + duration(s.seconds) : ""}`));
    g.addEventListener("click", () => onPick(s.name));
    root.append(g);
  }
  return root;
}

function stepPanel(step, log) {
  if (!step) return h("div", { class: "card muted" }, "Pick a step in the graph.");
  const metrics = Object.entries(step.metrics || {});
  return h("div", { class: "card", id: "step-panel", "data-step": step.name },
    h("h2", {}, step.name, " ", state(step.state)),
    h("div", { class: "sub" }, `${step.call || ""} ${step.method || ""}`, step.address ? ` at ${step.address}` : "", step.operation ? ` · ${step.operation}` : ""),
    step.message ? h("p", {}, step.message) : null,
    h("div", {}, `started ${when(step.start_time)} · took ${duration(step.seconds)}`),
    metrics.length ? h("table", { class: "step-metrics" }, metrics.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, num(v))))) : null,
    (step.gates || []).length ? h("div", {}, step.gates.map((g) => h("div", { class: `gate ${g.passed ? "pass" : "fail"}` }, `${g.passed ? "\u2713" : "\u2717"} ${g.expression}: ${g.message || num(g.value)}`))) : null,
    (step.artifacts || []).length ? h("div", {}, h("h2", {}, "Artifacts"), h("table", {}, step.artifacts.map((a) => h("tr", {},
      h("td", {}, a.kind), h("td", {}, h("div", { class: "uri" }, a.id), h("div", { class: "uri muted" }, a.uri)),
      h("td", {}, a.parents.length ? h("div", { class: "uri muted" }, "from ", a.parents.join(", ")) : "", a.producer ? h("div", { class: "muted" }, a.producer) : ""))))) : null,
    h("h2", {}, "Events"), h("div", { class: "log step-log" }, log.length ? log.map((line) => h("div", {}, line)) : h("div", { class: "muted" }, "none yet")),
    step.request ? h("details", { class: "step-request" }, h("summary", {}, step.request_sent ? "Request (as the gateway sent it)" : "Request (as the pipeline wrote it)"), h("pre", {}, JSON.stringify(step.request, null, 1))) : null,
    step.response ? h("details", { class: "step-response" }, h("summary", {}, "Response"), h("pre", {}, JSON.stringify(step.response, null, 1))) : null);
}

function eventLine(event) {
  const t = event.time ? when(event.time).slice(11) : "";
  if (event.state) return `${t} ${event.state.state.replace("OPERATION_STATE_", "")} ${event.state.message || ""}`;
  if (event.progress) return `${t} ${Math.round((event.progress.progress || 0) * 100)}% ${event.progress.message || ""}`;
  if (event.metrics) return `${t} ${(event.metrics.points || []).map((p) => `${p.name}=${num(p.value)}`).join(" ")}`;
  return `${t} ${JSON.stringify(event)}`;
}

async function runPage(id) {
  let run = null, selected = null;
  const logs = {};
  const head = h("div"), graph = h("div"), panel = h("div"), runLog = h("div", { class: "log", id: "run-log" }), report = h("div");
  main.replaceChildren(head, h("div", { class: "layout" }, graph, panel), h("h2", {}, "Run events"), runLog, report);
  const controller = new AbortController();
  leave = () => controller.abort();
  const live = document.getElementById("live");

  const draw = () => {
    const cancel = h("button", { id: "cancel-btn", class: "danger", disabled: run.done }, "Cancel");
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try { run = await api(`/console/api/runs/${id}/cancel`, { method: "POST" }); draw(); } catch (e) { showError(e.message); }
    });
    const retry = h("button", { id: "retry-btn", disabled: !(run.state === "FAILED" || run.state === "CANCELLED") }, "Retry");
    retry.addEventListener("click", async () => {
      try { const next = await api(`/console/api/runs/${id}/retry`, { method: "POST" }); location.hash = `#/runs/${next.id}`; } catch (e) { showError(e.message); }
    });
    head.replaceChildren(
      h("h1", {}, run.pipeline, " ", state(run.state)),
      h("div", { class: "sub", id: "run-summary" }, `run ${run.id} · attempt ${run.attempt} · started ${when(run.create_time)} · ${run.done ? "took " + duration(run.seconds) : `${run.steps_finished} of ${run.steps} steps done`}`),
      run.message ? h("p", { id: "run-message" }, run.message) : null,
      h("div", { class: "metrics" }, Object.entries(run.headline).map(([k, v]) => h("span", {}, `${k} ${num(v)}`))),
      h("div", { class: "toolbar" }, cancel, retry));
    const steps = run.steps_detail;
    selected = selected || (steps.find((s) => s.state === "RUNNING") || steps[0] || {}).name;
    graph.replaceChildren(dag(steps, selected, (name) => { selected = name; draw(); }));
    panel.replaceChildren(stepPanel(steps.find((s) => s.name === selected), logs[selected] || []));
  };

  const showReport = async () => {
    const response = await fetch(`/console/api/runs/${id}/report.html`, { headers: headers() });
    if (!response.ok) return;
    const frame = h("iframe", { class: "report", id: "report-frame", sandbox: "", title: "report" });
    frame.srcdoc = await response.text();
    report.replaceChildren(h("h2", {}, "Report ", h("a", { href: `/console/api/runs/${id}/report.json`, id: "report-json" }, "(report.json)")), frame);
  };

  live.hidden = false;
  try {
    await events(`/console/api/runs/${id}/events`, (kind, data) => {
      if (kind === "run") { run = data; draw(); }
      else if (kind === "event") {
        const line = eventLine(data);
        if (data.step) (logs[data.step] = logs[data.step] || []).push(line);
        runLog.append(h("div", {}, data.step ? `[${data.step}] ${line}` : line));
        runLog.scrollTop = runLog.scrollHeight;
        if (data.step === selected && run) draw();
      }
    }, controller.signal);
  } catch (e) {
    if (e.name !== "AbortError") throw e;
    return;
  } finally {
    if (!controller.signal.aborted) live.hidden = true;  // a page left hides it in route()
  }
  document.body.setAttribute("data-run-ended", id);
  if (run && run.report) await showReport();
}

// --- compare ---------------------------------------------------------------------------------

function chart(title, lines) {
  const W = 360, H = 200, P = 36;
  const points = lines.flatMap((l) => l.points);
  if (!points.length) return null;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const X = (x) => P + ((x - x0) / (x1 - x0)) * (W - P - 10), Y = (y) => H - 24 - ((y - y0) / (y1 - y0)) * (H - 44);
  return svg("svg", { class: "chart", width: W, height: H, "data-metric": title },
    svg("text", { x: P, y: 14 }, title),
    svg("text", { x: 2, y: Y(y1) + 4 }, num(y1)), svg("text", { x: 2, y: Y(y0) + 4 }, num(y0)),
    svg("text", { x: P, y: H - 6 }, `step ${num(x0)}`), svg("text", { x: W - 70, y: H - 6 }, `step ${num(x1)}`),
    svg("line", { x1: P, y1: H - 24, x2: W - 10, y2: H - 24, stroke: "#dfe3ea" }),
    lines.map((l) => svg("polyline", { fill: "none", stroke: l.color, "stroke-width": 2, "data-run": l.run, points: l.points.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ") })));
}

async function comparePage(params) {
  const ids = (params.get("runs") || "").split(",").filter(Boolean);
  main.replaceChildren(h("h1", {}, "Compare runs"), h("div", { class: "sub" }, ids.join(" · ")));
  const data = await api(`/console/api/compare?runs=${encodeURIComponent(ids.join(","))}`);
  const color = Object.fromEntries(data.runs.map((r, i) => [r.id, COLORS[i % COLORS.length]]));
  const runHead = (r) => h("th", {}, h("i", { style: `display:inline-block;width:10px;height:10px;background:${color[r.id]};margin-right:4px` }), h("a", { href: `#/runs/${r.id}` }, r.id.slice(0, 10)));
  const metrics = h("table", { id: "compare-metrics" },
    h("thead", {}, h("tr", {}, h("th", {}, "Step"), h("th", {}, "Metric"), data.runs.map(runHead))),
    h("tbody", {}, data.metrics.map((row) => h("tr", { "data-metric": `${row.step}.${row.metric}` },
      h("td", {}, row.step), h("td", {}, row.metric),
      row.values.map((v, i) => h("td", { class: "num" }, num(v), i && row.deltas[i] !== null && row.deltas[i] !== 0
        ? h("span", { class: `delta ${row.deltas[i] > 0 ? "up" : "down"}` }, ` (${row.deltas[i] > 0 ? "+" : ""}${num(row.deltas[i])})`) : ""))))));
  const differing = data.config.filter((r) => r.differs);
  const config = h("table", { id: "compare-config" },
    h("thead", {}, h("tr", {}, h("th", {}, "Setting"), data.runs.map(runHead))),
    h("tbody", {}, (differing.length ? differing : [{ key: "(the runs' settings are identical)", values: [] }]).map((row) =>
      h("tr", {}, h("td", { class: "uri" }, row.key), row.values.map((v) => h("td", { class: "uri" }, typeof v === "object" ? JSON.stringify(v) : String(v)))))));
  const curves = {};
  for (const [run, steps] of Object.entries(data.series)) for (const [step, series] of Object.entries(steps)) for (const [name, points] of Object.entries(series)) {
    (curves[`${step} · ${name}`] = curves[`${step} · ${name}`] || []).push({ run, color: color[run], points });
  }
  main.append(
    h("table", {}, h("thead", {}, h("tr", {}, ["Run", "Pipeline", "State", "Started", "Step time", "Overrides"].map((t) => h("th", {}, t)))),
      h("tbody", {}, data.runs.map((r) => h("tr", {}, runHead(r), h("td", {}, r.pipeline), h("td", {}, state(r.state)), h("td", {}, when(r.create_time)), h("td", { class: "num" }, duration(r.step_seconds)), h("td", { class: "uri" }, r.overrides.join(" ")))))),
    h("h2", {}, "Metrics (delta against the first run)"), metrics,
    h("h2", {}, "Training curves"), h("div", { id: "compare-curves" }, Object.keys(curves).length ? Object.entries(curves).map(([t, lines]) => chart(t, lines)) : h("div", { class: "muted" }, "No per-step series in these reports.")),
    h("h2", {}, `Configuration (${differing.length} settings differ)`), config);
}

// --- deployments -----------------------------------------------------------------------------

function tryBox(d) {
  const input = h("textarea", { class: "try-input", rows: 3, cols: 60, placeholder: d.generative ? "a prompt" : "one text per line" });
  const output = h("div", { class: "try-output" });
  const button = h("button", { class: "primary try-button" }, d.generative ? "Generate" : "Predict");
  button.addEventListener("click", async () => {
    button.disabled = true;
    output.textContent = "";
    output.classList.remove("done");
    try {
      if (d.generative) {
        const response = await fetch("/v1/completions", {
          method: "POST", headers: headers({ "Content-Type": "application/json" }),
          body: JSON.stringify({ model: d.name, prompt: input.value, max_tokens: Math.min(64, d.max_new_tokens || 64), stream: true }),
        });
        if (!response.ok) throw await failure(response);
        await streamCompletion(response, output);
      } else {
        const texts = input.value.split("\n").filter((t) => t.trim());
        const response = await fetch(`/v1/deployments/${encodeURIComponent(d.name)}:predict`, {
          method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify({ texts }),
        });
        const body = await response.json();
        output.replaceChildren(...(body.results || []).map((r, i) => h("div", {}, `${texts[i]} \u2192 ${r.prediction.label} (${num(r.prediction.score)})`, r.error ? ` blocked: ${r.error.message}` : "")));
        if (!response.ok && !(body.results || []).length) throw new Error(`${response.status}: ${(body.error || {}).message}`);
      }
    } catch (e) {
      output.append(h("div", { class: "gate fail" }, e.message));
    } finally {
      button.disabled = false;
      output.classList.add("done");
    }
  });
  return h("div", { class: "try", "data-deployment": d.name }, input, h("div", {}, button), output);
}

async function streamCompletion(response, output) {
  // The OpenAI API's stream: "data: {chunk}" frames, then "data: [DONE]".
  await readFrames(response, (_kind, data) => {
    if (data === "[DONE]") return true;
    const chunk = JSON.parse(data);
    for (const choice of chunk.choices || []) {
      if (choice.text) output.append(choice.text);
      if (choice.finish_reason) output.setAttribute("data-finish", choice.finish_reason);
      if (chunk.safety_block || choice.finish_reason === "content_filter") output.append(h("div", { class: "gate fail" }, `blocked by ${(chunk.safety_block || {}).rule || "an output rule"}`));
    }
    return false;
  });
}

async function deploymentsPage() {
  main.replaceChildren(h("h1", {}, "Deployments"), h("div", { class: "sub" }, "What the serving service answers, its safety policy, and a box to try it."));
  const { deployments } = await api("/console/api/deployments");
  if (!deployments.length) main.append(h("div", { class: "muted" }, "Nothing deployed: `forgeline deploy model` deploys one."));
  const table = h("table", { id: "deployments-table" },
    h("thead", {}, h("tr", {}, ["Name", "Model", "Task", "State", "Safety policy", "Requests", "Try it"].map((t) => h("th", {}, t)))),
    h("tbody", {}, deployments.map((d) => {
      const policy = d.policy || {};
      const rules = [...(policy.input_filters || []).map((f) => `in: ${f.name}`), ...(policy.output_rules || []).map((r) => `out: ${r.name}`)];
      return h("tr", { class: "deployment-row", "data-name": d.name },
        h("td", {}, d.name, Object.keys(d.adapters || {}).length ? h("div", { class: "muted" }, `adapters: ${Object.keys(d.adapters).join(", ")}`) : ""),
        h("td", { class: "uri" }, d.model_id), h("td", {}, d.task || "sequence_classification"),
        h("td", {}, state((d.state || "").replace("DEPLOYMENT_STATE_", ""))),
        h("td", {}, rules.length ? rules.map((r) => h("div", {}, r)) : h("span", { class: "muted" }, "none")),
        h("td", { class: "num" }, `${d.requests || 0}`, d.blocked ? h("div", { class: "gate fail" }, `${d.blocked} blocked`) : ""),
        h("td", {}, tryBox(d)));
    })));
  main.append(table);
}

// --- routing ---------------------------------------------------------------------------------

async function route() {
  leave();
  leave = () => {};
  document.getElementById("live").hidden = true;
  showError("");
  const [path, query] = (location.hash.slice(1) || "/runs").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  document.body.setAttribute("data-page", parts[0] || "runs");
  document.body.removeAttribute("data-run-ended");
  try {
    if (parts[0] === "runs" && parts[1]) await runPage(parts[1]);
    else if (parts[0] === "compare") await comparePage(params);
    else if (parts[0] === "deployments") await deploymentsPage();
    else await runsPage(params);
  } catch (e) {
    showError(e.message);
  }
}

document.getElementById("auth-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("forgeline-token", document.getElementById("auth-token").value);
  document.getElementById("auth").hidden = true;
  route();
});
window.addEventListener("hashchange", route);
route();
