// Renders /openapi.json as a readable, interactive reference; no dependencies, works offline.
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
};

const spec = await (await fetch("/openapi.json")).json();
$("intro").textContent = `${spec.info.title} ${spec.info.version}. ${spec.info.description}`;
$("token").value = sessionStorage.getItem("alarmd-token") ?? "";
$("token").addEventListener(
  "input",
  () => sessionStorage.setItem("alarmd-token", $("token").value),
);

const resolve = (schema) =>
  schema?.$ref ? spec.components.schemas[schema.$ref.split("/").pop()] : schema;

for (const [path, item] of Object.entries(spec.paths)) {
  for (const [method, op] of Object.entries(item)) {
    const details = el("details", { class: "card op" });
    details.append(
      el(
        "summary",
        {},
        el("span", { class: `method m-${method}` }, method.toUpperCase()),
        el("span", { class: "path" }, path),
        el("span", {}, op.summary ?? ""),
      ),
    );
    if (op.description) details.append(el("p", {}, op.description));
    const params = op.parameters ?? [];
    const inputs = new Map();
    if (params.length > 0) {
      const table = el(
        "table",
        {},
        el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "value")),
      );
      for (const p of params) {
        const input = el("input", {
          "aria-label": `${p.name} (${p.in})`,
          placeholder: p.schema?.type ?? "",
        });
        inputs.set(p, input);
        table.append(
          el(
            "tr",
            {},
            el("td", {}, p.name + (p.required ? " *" : "")),
            el("td", {}, p.in),
            el("td", {}, input),
          ),
        );
      }
      details.append(table);
    }
    let body = null;
    const content = op.requestBody?.content?.["application/json"];
    if (content) {
      details.append(el("label", {}, "Request body"));
      details.append(el("pre", {}, JSON.stringify(resolve(content.schema), null, 2)));
      body = el("textarea", { rows: "6", "aria-label": "request body" });
      body.value = JSON.stringify(content.example ?? {}, null, 2);
      details.append(body);
    }
    const responses = el(
      "table",
      {},
      el("tr", {}, el("th", {}, "status"), el("th", {}, "meaning")),
    );
    for (const [status, r] of Object.entries(op.responses)) {
      responses.append(el("tr", {}, el("td", {}, status), el("td", {}, r.description)));
    }
    details.append(el("label", {}, "Responses"), responses);
    const result = el("pre", { class: "result", "aria-live": "polite" });
    const button = el("button", { type: "button" }, "Try it");
    button.addEventListener("click", async () => {
      let url = path;
      const query = new URLSearchParams();
      const headers = {};
      for (const [p, input] of inputs) {
        if (!input.value) continue;
        if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(input.value));
        else if (p.in === "query") query.set(p.name, input.value);
        else if (p.in === "header") headers[p.name] = input.value;
      }
      if ($("token").value) headers.authorization = `Bearer ${$("token").value.trim()}`;
      if (body) headers["content-type"] = "application/json";
      const qs = query.toString();
      if (path.endsWith("/subscribe")) {
        result.textContent = "Streams are long-lived: open this URL with EventSource or curl -N.";
        return;
      }
      try {
        const res = await fetch(url + (qs ? `?${qs}` : ""), {
          method: method.toUpperCase(),
          headers,
          body: body?.value,
        });
        const text = await res.text();
        let shown = text;
        try {
          shown = JSON.stringify(JSON.parse(text), null, 2);
        } catch {
          // not JSON
        }
        result.textContent = `${res.status} ${res.statusText}\n\n${shown}`;
      } catch (error) {
        result.textContent = String(error);
      }
    });
    details.append(button, result);
    $("ops").append(details);
  }
}
