// mediasuite dashboard: plain JavaScript, no build step, only the gateway's public HTTP routes.
//   live CPU/memory  WebSocket /v1/monitor/metrics:stream (falls back to polling /v1/monitor/metrics:current)
//   services         GET /v1/monitor/health
//   alerts           GET /v1/monitor/alerts
//   batches          GET /v1/batches
//   thumbnails       POST /v1/catalog/items:query, POST /v1/processing:thumbnail (inline output),
//                    POST /v1/processing:videoThumbnail for videos (a representative frame)
// Everything shown is written with textContent: nothing from the API is parsed as HTML.

const KEY_STORAGE = "mediasuite.key";
const HISTORY = 90;
const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  pollingMetrics: false,
  thumbs: new Map(),
};

const $ = (id) => document.getElementById(id);

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function note(id, text) {
  const node = $(id);
  node.hidden = !text;
  node.textContent = text || "";
}

function describeFailure(result) {
  if (result.status === 0) return "the gateway cannot be reached";
  const message = result.data && result.data.message ? result.data.message : "";
  const hint = {
    401: "an API key is needed",
    403: "this key may not do that",
    501: "not built yet in this version",
    503: "the service is not running",
  }[result.status];
  return `${result.status}${hint ? ` (${hint})` : ""}${message ? `: ${message}` : ""}`;
}

async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (state.key) headers.authorization = `Bearer ${state.key}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    return { ok: false, status: 0, data: { message: String(error) } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  if (response.status === 401) askForKey();
  return { ok: response.ok, status: response.status, data };
}

function askForKey() {
  const form = $("key-form");
  if (!form.hidden) return;
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("key-input").value.trim();
    sessionStorage.setItem(KEY_STORAGE, state.key);
    form.hidden = true;
    refreshAll();
    connectLive();
  }, { once: true });
}

// ---- charts

class LineChart {
  constructor(canvas, color) {
    this.canvas = canvas;
    this.color = color;
    this.values = [];
  }

  push(value) {
    this.values.push(value);
    if (this.values.length > HISTORY) this.values.shift();
    this.canvas.dataset.samples = String(this.values.length);
    this.draw();
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    g.strokeStyle = "#dde1e8";
    g.lineWidth = 1;
    g.font = "10px system-ui, sans-serif";
    g.fillStyle = "#6b7385";
    for (const level of [0, 50, 100]) {
      const y = height - 4 - (level / 100) * (height - 8);
      g.beginPath();
      g.moveTo(28, y);
      g.lineTo(width, y);
      g.stroke();
      g.fillText(`${level}%`, 2, y + 3);
    }
    if (this.values.length < 2) return;
    const step = (width - 30) / (HISTORY - 1);
    const offset = HISTORY - this.values.length;
    g.strokeStyle = this.color;
    g.lineWidth = 2;
    g.beginPath();
    this.values.forEach((value, i) => {
      const x = 30 + (offset + i) * step;
      const y = height - 4 - (Math.max(0, Math.min(100, value)) / 100) * (height - 8);
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
  }
}

const charts = {
  "system.cpu.percent": { chart: null, label: "cpu-value" },
  "system.memory.percent": { chart: null, label: "memory-value" },
};

function applySamples(samples) {
  for (const sample of samples || []) {
    const target = charts[sample.name];
    if (!target || Object.keys(sample.labels || {}).length) continue;
    const value = Number(sample.value);
    target.chart.push(value);
    $(target.label).textContent = `${value.toFixed(1)}%`;
  }
}

// ---- live metrics: WebSocket first, polling when the stream is not available

function connectLive() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const protocols = ["mediasuite.v1"];
  if (state.key) protocols.push(`bearer.${state.key}`);
  let socket;
  try {
    socket = new WebSocket(`${scheme}://${location.host}/v1/monitor/metrics:stream?interval=1s&prefix=system.`, protocols);
  } catch (error) {
    startPolling("WebSocket unavailable");
    return;
  }
  socket.addEventListener("open", () => {
    $("live-state").textContent = "live (WebSocket)";
  });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    if (message.result) {
      applySamples(message.result.samples);
      note("system-note", "");
    } else if (message.error) {
      note("system-note", `live metrics: ${message.error.message}`);
    }
  });
  socket.addEventListener("close", (event) => {
    startPolling(event.code === 1000 ? "stream ended" : `stream closed (${event.code})`);
  });
}

function startPolling(reason) {
  if (state.pollingMetrics) return;
  state.pollingMetrics = true;
  $("live-state").textContent = `polling (${reason})`;
  const poll = async () => {
    const result = await api("GET", "/v1/monitor/metrics:current?prefix=system.");
    if (result.ok) {
      applySamples(result.data.samples);
      note("system-note", "");
    } else {
      note("system-note", `metrics: ${describeFailure(result)}`);
    }
    setTimeout(poll, result.ok ? 2000 : 10000);
  };
  poll();
}

// ---- panels

async function refreshHealth() {
  const result = await api("GET", "/v1/monitor/health");
  const rows = $("health-rows");
  if (!result.ok) {
    note("health-note", `health: ${describeFailure(result)}`);
    $("health-score").textContent = "health: unknown";
    return;
  }
  note("health-note", "");
  const { score, status, components } = result.data;
  $("health-score").textContent = `health: ${Math.round(score)} ${String(status).replace("HEALTH_STATUS_", "")}`;
  rows.replaceChildren(
    ...(components || []).map((c) => {
      const row = element("tr");
      row.dataset.component = c.name;
      row.append(
        element("td", c.name),
        element("td", c.serving ? "serving" : "down", c.serving ? "ok" : "bad"),
        element("td", c.detail),
        element("td", c.target),
      );
      return row;
    }),
  );
}

async function refreshAlerts() {
  const result = await api("GET", "/v1/monitor/alerts");
  const list = $("alert-list");
  if (!result.ok) {
    note("alerts-note", `alerts: ${describeFailure(result)}`);
    return;
  }
  const alerts = result.data.alerts || [];
  note("alerts-note", alerts.length ? "" : "no active alerts");
  list.replaceChildren(
    ...alerts.map((a) => {
      const level = String(a.level).replace("ALERT_LEVEL_", "");
      const item = element("li");
      item.dataset.alertId = a.id;
      item.append(element("span", level, `level level-${level}`), element("span", a.message || `${a.metric} = ${a.value}`));
      return item;
    }),
  );
}

function batchPercent(batch) {
  const total = Number(batch.total || 0);
  if (!total) return String(batch.state).endsWith("SUCCEEDED") ? 100 : 0;
  const finished = Number(batch.done || 0) + Number(batch.failed || 0) + Number(batch.skipped || 0);
  return Math.min(100, Math.round((finished / total) * 100));
}

async function refreshBatches() {
  const result = await api("GET", "/v1/batches?pageSize=10");
  const list = $("batch-list");
  if (!result.ok) {
    note("batches-note", `batches: ${describeFailure(result)}`);
    return result.ok;
  }
  const batches = result.data.batches || [];
  note("batches-note", batches.length ? "" : "no batches yet");
  list.replaceChildren(
    ...batches.map((b) => {
      const percent = batchPercent(b);
      const item = element("li");
      item.dataset.batchId = b.id;
      const state = String(b.state).replace("BATCH_STATE_", "").toLowerCase();
      item.append(
        element("span", b.spec && b.spec.label ? `${b.spec.label} (${b.id})` : b.id),
        element("span", `${state} · ${b.done}/${b.total}${Number(b.failed) ? ` · ${b.failed} failed` : ""}`, "muted"),
      );
      const bar = element("progress");
      bar.max = 100;
      bar.value = percent;
      bar.textContent = `${percent}%`;
      bar.dataset.percent = String(percent);
      item.append(bar);
      return item;
    }),
  );
  return true;
}

async function loadThumbnail(item, img) {
  const encode = { outputMode: "OUTPUT_MODE_INLINE" };
  const result = String(item.kind).endsWith("VIDEO")
    ? await api("POST", "/v1/processing:videoThumbnail", {
        media: { path: item.path },
        size: { width: 160, height: 160 }, // the "small" box, as for photos
        encode,
      })
    : await api("POST", "/v1/processing:thumbnail", { media: { path: item.path }, preset: "small", encode });
  const output = result.ok && result.data.output;
  if (output && output.inline) {
    img.src = `data:${output.mediaType || "image/jpeg"};base64,${output.inline}`;
    img.dataset.loaded = "true";
  } else {
    img.alt = `no preview (${describeFailure(result)})`;
    img.dataset.loaded = "false";
  }
}

async function refreshCatalog() {
  const result = await api("POST", "/v1/catalog/items:query", { pageSize: 24, orderBy: "modified desc" });
  if (!result.ok) {
    note("catalog-note", `catalog: ${describeFailure(result)}`);
    return;
  }
  const items = result.data.items || [];
  note("catalog-note", items.length ? "" : "the catalog is empty: import a directory with a batch");
  const grid = $("thumb-grid");
  for (const item of items) {
    if (state.thumbs.has(item.id)) continue;
    const figure = element("figure");
    figure.dataset.itemId = item.id;
    const img = element("img");
    img.alt = item.path;
    img.width = 96;
    img.height = 96;
    figure.append(img, element("figcaption", item.path.split("/").pop()));
    grid.append(figure);
    state.thumbs.set(item.id, figure);
    loadThumbnail(item, img);
  }
}

function every(milliseconds, task) {
  const run = async () => {
    try {
      await task();
    } finally {
      setTimeout(run, milliseconds);
    }
  };
  run();
}

function refreshAll() {
  refreshHealth();
  refreshAlerts();
  refreshBatches();
  refreshCatalog();
}

function start() {
  charts["system.cpu.percent"].chart = new LineChart($("cpu-chart"), "#2b6cb0");
  charts["system.memory.percent"].chart = new LineChart($("memory-chart"), "#805ad5");
  connectLive();
  every(5000, refreshHealth);
  every(5000, refreshAlerts);
  every(1000, refreshBatches);
  every(30000, refreshCatalog);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
