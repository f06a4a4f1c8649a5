/* runeflow dashboard: one instance (GET /api/instances/{id}), its actions (POST). */
"use strict";

(() => {
  const { el, clear, api, enc } = RF;
  const id = document.querySelector('meta[name="rf-instance"]').getAttribute("content");
  const message = document.getElementById("message");
  const result = document.getElementById("action-result");
  const events = document.getElementById("events");
  let version = "";
  let status = "";
  let firstEvent = 1;
  let lastEvent = 0;
  let graphText = "";

  function field(list, name, ...value) {
    list.append(el("dt", {}, name), el("dd", {}, ...value));
  }

  function renderHead(data) {
    const info = data.instance;
    status = info.status;
    document.getElementById("crumb-id").textContent = info.id;
    document.getElementById("title").textContent = info.id;
    document.title = `${info.id} · runeflow`;
    clear(document.getElementById("status")).append(RF.statusBadge(info.status));
    const list = clear(document.getElementById("facts-summary"));
    const summary = info.summary;
    field(list, "workflow", info.workflow);
    field(list, "steps run", String(summary.steps));
    field(list, "failures", String(summary.failures));
    field(list, "events", String(info.events));
    field(list, "created", RF.formatTime(info.created_at));
    field(list, "last update", RF.timeCell(info.updated_at));
    field(list, "held by", info.owner || "no runner");
    if (info.definition) field(list, "definition", info.definition);
    if (data.retry_of) field(list, "retry of", el("a", { href: RF.instanceUrl(data.retry_of) }, data.retry_of));
    const error = document.getElementById("error");
    error.hidden = !info.error;
    error.textContent = info.error || "";
    document.getElementById("updated").textContent =
      `${status === "running" ? "running · " : ""}updated ${RF.formatTime(Date.now() / 1000).slice(11)}`;
  }

  function renderGraph(data) {
    const holder = clear(document.getElementById("graph"));
    const doc = new DOMParser().parseFromString(data.graph.svg, "image/svg+xml");
    const svg = document.importNode(doc.documentElement, true);
    holder.append(svg);
    for (const node of holder.querySelectorAll("g[data-component]")) {
      node.addEventListener("click", () => focusStep(node.getAttribute("data-component")));
    }
    if (graphText) document.getElementById("graph-text").textContent = data.graph[graphText];
    document.getElementById("show-mermaid").onclick = () => toggleText(data, "mermaid");
    document.getElementById("show-dot").onclick = () => toggleText(data, "dot");
    document.getElementById("svg-link").href = `${RF.base}/api/graph/${enc(id)}`;
  }

  function toggleText(data, kind) {
    const pre = document.getElementById("graph-text");
    graphText = graphText === kind ? "" : kind;
    pre.hidden = !graphText;
    pre.textContent = graphText ? data.graph[kind] : "";
  }

  function focusStep(name) {
    const rowNode = [...document.querySelectorAll("#steps tbody tr")].find((tr) => tr.dataset.component === name);
    if (!rowNode) return;
    for (const tr of document.querySelectorAll("#steps tr.focus")) tr.classList.remove("focus");
    rowNode.classList.add("focus");
    rowNode.scrollIntoView({ behavior: "smooth", block: "center" });
  }

  function renderFailures(data) {
    document.getElementById("failures-card").hidden = data.failures.length === 0;
    const holder = clear(document.getElementById("failures"));
    for (const f of data.failures) {
      holder.append(el("details", { class: "failure", open: true },
        el("summary", {}, el("b", {}, f.component), ` failed (attempt ${f.attempt}): `,
          el("span", { class: "bad" }, `${f.error_type}: ${f.message}`)),
        el("pre", { class: "code traceback" }, f.traceback || "(no traceback)")));
    }
  }

  function renderWaits(data) {
    document.getElementById("waits-card").hidden = !data.open_waits.length && !data.timers.length;
    const waits = clear(document.querySelector("#waits tbody"));
    for (const w of data.open_waits) {
      waits.append(el("tr", {}, el("td", {}, w.step), el("td", {}, w.events.join(" | ")),
        el("td", {}, w.timeout ? `${w.timeout}s` : "none"), el("td", { class: "mono" }, w.wait_id)));
    }
    document.getElementById("waits").hidden = !data.open_waits.length;
    const timers = clear(document.querySelector("#timers tbody"));
    for (const t of data.timers) {
      timers.append(el("tr", {}, el("td", {}, t.step), el("td", {}, t.event),
        el("td", {}, RF.formatTime(t.fire_at)), el("td", { class: "mono" }, t.timer_id)));
    }
    document.getElementById("timers").hidden = !data.timers.length;
  }

  function renderSteps(data) {
    const body = clear(document.querySelector("#steps tbody"));
    for (const s of data.steps) {
      body.append(el("tr", { dataset: { component: s.component } },
        el("td", {}, s.component), el("td", {}, s.kind), el("td", {}, RF.stateBadge(s.state)),
        el("td", { class: "num" }, s.completed), el("td", { class: "num" }, s.failed),
        el("td", { class: "num" }, s.retried), el("td", { class: "num" }, s.seconds.toFixed(3))));
    }
  }

  function valueButton(factId) {
    if (!factId) return el("span", { class: "muted" }, "none yet");
    const out = el("pre", { class: "code value", hidden: true });
    const button = el("button", {
      type: "button", class: "small",
      onclick: async () => {
        if (!out.hidden) { out.hidden = true; button.textContent = "show value"; return; }
        button.disabled = true;
        try {
          const fact = await api(`/api/facts/${enc(id)}?fact=${enc(factId)}`);
          out.textContent = fact.truncated
            ? `${fact.text}\n… (${fact.size.toLocaleString()} characters in all)` : fact.text;
          out.classList.remove("bad");
        } catch (err) {
          out.textContent = RF.errorText(err);
          out.classList.add("bad");
        }
        out.hidden = false;
        button.disabled = false;
        button.textContent = "hide value";
      },
    }, "show value");
    return el("div", { class: "value-cell" }, button, out);
  }

  function renderFacts(data) {
    const outputs = clear(document.querySelector("#outputs tbody"));
    for (const o of data.outputs) {
      outputs.append(el("tr", {}, el("td", {}, o.port), el("td", {}, o.component), el("td", {}, valueButton(o.fact_id))));
    }
    const facts = data.facts;
    document.getElementById("facts-note").textContent = facts.total > facts.items.length
      ? `The latest ${facts.items.length} of ${facts.total.toLocaleString()} facts; values load when asked for.`
      : `${facts.total} fact${facts.total === 1 ? "" : "s"}; values load when asked for.`;
    const body = clear(document.querySelector("#facts tbody"));
    for (const f of facts.items.slice().reverse()) {
      body.append(el("tr", {}, el("td", { class: "mono", title: f.id }, f.id.slice(0, 16)),
        el("td", {}, f.component), el("td", { class: "num" }, f.parents.length), el("td", {}, valueButton(f.id))));
    }
  }

  function eventItem(e) {
    const data = e.data || {};
    const who = data.component || (data.fact && data.fact.component) || data.name || "";
    const what = data.event ? ` ${data.event}` : data.error ? ` ${data.error.type}: ${data.error.message}` : "";
    return el("li", { class: `event kind-${e.kind}`, dataset: { n: e.n } },
      el("details", {}, el("summary", {}, el("span", { class: "n" }, `#${e.n}`), " ",
        el("span", { class: "kind" }, e.kind), who ? el("b", {}, ` ${who}`) : null, what),
      el("pre", { class: "code" }, JSON.stringify(data, null, 2))));
  }

  function renderEvents(page, mode) {
    if (mode === "replace") {
      clear(events);
      firstEvent = page.after + 1;
      lastEvent = page.after;
    }
    if (mode === "earlier") {
      const items = page.events.map(eventItem);
      events.prepend(...items);
      firstEvent = page.after + 1;
    } else {
      for (const e of page.events) {
        if (e.n > lastEvent) events.append(eventItem(e));
      }
      if (page.events.length) lastEvent = Math.max(lastEvent, page.events[page.events.length - 1].n);
    }
    document.getElementById("earlier").hidden = firstEvent <= 1;
  }

  async function loadEarlier() {
    const after = Math.max(0, firstEvent - 1 - 100);
    const limit = firstEvent - 1 - after;
    if (limit <= 0) return;
    try {
      renderEvents(await api(`/api/events/${enc(id)}?after=${after}&limit=${limit}`), "earlier");
    } catch (err) {
      RF.showMessage(message, RF.errorText(err));
    }
  }

  async function newEvents(data) {
    if (!lastEvent) return renderEvents(data.events, "replace");
    if (data.events.after > lastEvent) return renderEvents(data.events, "replace");
    renderEvents(data.events, "append");
  }

  function waitForm(wait) {
    const event = el("select", { class: "event-name", "aria-label": `event for ${wait.step}` },
      wait.events.map((name) => el("option", { value: name }, name)));
    const payload = el("textarea", {
      class: "payload", rows: 2, spellcheck: "false", placeholder: "payload: JSON (optional)",
      "aria-label": `payload for ${wait.step}`,
    });
    const send = el("button", { type: "button", class: "primary send-event" }, "Send event");
    send.addEventListener("click", async () => {
      let body;
      try {
        body = { event: event.value, step: wait.step, payload: payload.value.trim() ? JSON.parse(payload.value) : null };
      } catch (err) {
        return RF.showMessage(result, `the payload is not JSON: ${err.message}`);
      }
      await act(`Send “${body.event}” to ${wait.step}?`,
        `The event is recorded in the store and applied by the runner that runs instance ${id}.`,
        "resume", body);
    });
    return el("div", { class: "wait-form", dataset: { step: wait.step } },
      el("span", { class: "wait-step" }, "Waiting step ", el("b", {}, wait.step)), event, payload, send);
  }

  function renderActions(data) {
    const card = document.getElementById("actions");
    const actions = data.actions;
    card.hidden = data.read_only || !Object.values(actions).some(Boolean);
    const forms = clear(document.getElementById("waits-actions"));
    if (actions.resume) for (const w of data.open_waits) forms.append(waitForm(w));
    document.getElementById("stop").hidden = !actions.stop;
    document.getElementById("retry-box").hidden = !actions.retry;
    document.getElementById("recover").hidden = !actions.recover;
  }

  async function act(title, text, action, body) {
    if (!(await RF.confirmAction(title, text))) return;
    try {
      const done = await api(`/api/${action}/${enc(id)}`, { body });
      RF.showMessage(result, `Done: ${done.done}.`, "ok");
      if (action === "retry" && done.id !== id) {
        result.append(" ", el("a", { href: RF.instanceUrl(done.id) }, `Open ${done.id}`));
      }
      version = "";
      await refresh();
    } catch (err) {
      RF.showMessage(result, RF.errorText(err));
    }
  }

  let asked = 0;

  async function refresh() {
    const mine = ++asked;  // an answer overtaken by a later request is dropped
    try {
      const data = await api(`/api/instances/${enc(id)}?since=${enc(version)}`);
      if (mine !== asked) return;
      RF.showMessage(message, "");
      if (data.unchanged) return;
      version = data.version;
      renderHead(data);
      renderActions(data);
      renderGraph(data);
      renderFailures(data);
      renderWaits(data);
      renderSteps(data);
      renderFacts(data);
      await newEvents(data);
    } catch (err) {
      if (mine === asked) RF.showMessage(message, RF.errorText(err));
    }
  }

  function init() {
    document.getElementById("crumb-id").textContent = id;
    document.getElementById("earlier").addEventListener("click", loadEarlier);
    document.getElementById("stop").addEventListener("click", () =>
      act(`Stop ${id}?`, "A stopped instance runs nothing more and takes no more input or events.", "stop", {}));
    document.getElementById("retry").addEventListener("click", () => {
      const newId = document.getElementById("retry-id").value.trim();
      act(`Retry ${id}?`, `A new instance${newId ? ` "${newId}"` : ""} of the same workflow starts with the same inputs; this one stays as it is.`,
        "retry", newId ? { id: newId } : {});
    });
    document.getElementById("recover").addEventListener("click", () =>
      act(`Recover ${id}?`, "Its status becomes running again and a worker serving the store goes on from its last checkpoint.", "recover", {}));
    RF.poll(refresh, () => (status === "running" ? 1000 : 3000))();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
