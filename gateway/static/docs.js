// The API reference page: renders /openapi.json (no library). Text only through textContent.

const $ = (id) => document.getElementById(id);

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function resolve(document, schema, depth = 0) {
  if (!schema || depth > 4) return schema;
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return resolve(document, document.components.schemas[name], depth + 1);
  }
  return schema;
}

function example(document, schema, depth = 0) {
  schema = resolve(document, schema);
  if (!schema || depth > 3) return null;
  if (schema.enum) return schema.enum[Math.min(1, schema.enum.length - 1)];
  switch (schema.type) {
    case "object": {
      if (!schema.properties) return {};
      const out = {};
      for (const [name, property] of Object.entries(schema.properties).slice(0, 6)) {
        out[name] = example(document, property, depth + 1);
      }
      return out;
    }
    case "array":
      return [example(document, schema.items, depth + 1)];
    case "integer":
      return 0;
    case "number":
      return 0.0;
    case "boolean":
      return false;
    case "string":
      if (schema.format === "date-time") return "2024-05-01T12:00:00Z";
      if (schema.format === "int64" || schema.format === "uint64") return "0";
      if (schema.pattern && schema.pattern.endsWith("s$")) return "1.5s";
      return "";
    default:
      return null;
  }
}

function curl(document, path, method, operation) {
  const url = `${location.origin}${path}`;
  const parts = [`curl -sS -X ${method.toUpperCase()} '${url}'`];
  if (operation.security) parts.push(`-H "Authorization: Bearer $MEDIASUITE_KEY"`);
  const body = operation.requestBody && operation.requestBody.content["application/json"];
  if (body) {
    parts.push("-H 'content-type: application/json'");
    parts.push(`-d '${JSON.stringify(example(document, body.schema))}'`);
  }
  return parts.join(" \\\n  ");
}

function parameterTable(parameters) {
  const table = element("table");
  const head = element("tr");
  head.append(element("th", "name"), element("th", "in"), element("th", "type"), element("th", "notes"));
  table.append(head);
  for (const p of parameters) {
    const row = element("tr");
    const schema = p.schema || {};
    const type = schema.enum ? schema.enum.join(" | ") : [schema.type, schema.format].filter(Boolean).join(" ");
    row.append(
      element("td", p.name),
      element("td", p.in),
      element("td", type || "any"),
      element("td", [p.required ? "required" : "", p.description || "", p.style === "deepObject" ? `${p.name}[key]=value` : ""].filter(Boolean).join("; ")),
    );
    table.append(row);
  }
  return table;
}

function render(document) {
  const byService = new Map();
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const tag = (operation.tags || ["other"])[0];
      if (!byService.has(tag)) byService.set(tag, []);
      byService.get(tag).push({ path, method, operation });
    }
  }
  const container = $("operations");
  const tagDocs = new Map((document.tags || []).map((t) => [t.name, t.description || ""]));
  for (const [service, entries] of [...byService.entries()].sort()) {
    const section = element("section", null, "service");
    section.append(element("h2", service));
    if (tagDocs.get(service)) section.append(element("p", tagDocs.get(service), "muted prose"));
    for (const { path, method, operation } of entries) {
      const details = element("details", null, "op");
      details.dataset.search = `${method} ${path} ${operation.summary}`.toLowerCase();
      const summary = element("summary");
      summary.append(
        element("span", method.toUpperCase(), `method method-${method}`),
        element("span", path),
        element("span", `${operation.summary} · ${operation["x-mediasuite-scope"]}`, "scope muted"),
      );
      details.append(summary, element("p", operation.description, "muted prose"));
      if (operation.parameters && operation.parameters.length) details.append(parameterTable(operation.parameters));
      const body = operation.requestBody && operation.requestBody.content["application/json"];
      if (body) {
        details.append(element("p", "Request body:"), element("pre", JSON.stringify(example(document, body.schema), null, 2)));
      }
      details.append(element("p", "Example:"), element("pre", curl(document, path, method, operation)));
      section.append(details);
    }
    container.append(section);
  }
  $("filter").addEventListener("input", (event) => {
    const needle = event.target.value.trim().toLowerCase();
    for (const node of container.querySelectorAll("details.op")) {
      node.hidden = needle !== "" && !node.dataset.search.includes(needle);
    }
  });
}

fetch("/openapi.json")
  .then((response) => response.json())
  .then(render)
  .catch((error) => {
    $("operations").textContent = `could not load /openapi.json: ${error}`;
  });
