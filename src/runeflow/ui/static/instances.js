/* runeflow dashboard: the instances page (GET /api/instances). */
"use strict";

(() => {
  const { el, clear, api, enc } = RF;
  const STATUSES = ["running", "waiting", "idle", "failed", "stopped"];
  const state = { status: "", workflow: "", q: "", after: "", before: "", limit: "" };
  const body = document.querySelector("#instances tbody");
  const message = document.getElementById("message");
  let current = null;

  function readUrl() {
    const params = new URLSearchParams(location.search);
    for (const key of Object.keys(state)) state[key] = params.get(key) || "";
  }

  function writeUrl() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(state)) if (value) params.set(key, value);
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? `?${query}` : ""));
  }

  function query() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(state)) if (value) params.set(key, value);
    return params.toString();
  }

  function count(data, key) {
    const n = data.counts[key];
    return n >= data.count_cap ? `${data.count_cap.toLocaleString()}+` : n.toLocaleString();
  }

  function renderTabs(data) {
    const tabs = clear(document.getElementById("tabs"));
    for (const key of ["", ...STATUSES]) {
      const label = key || "all";
      tabs.append(el("button", {
        type: "button",
        class: `tab${state.status === key ? " active" : ""}${key ? ` tab-${key}` : ""}`,
        dataset: { status: key },
        "aria-pressed": state.status === key ? "true" : "false",
        onclick: () => { state.status = key; state.after = state.before = ""; load(); },
      }, label, el("span", { class: "count" }, count(data, label))));
    }
  }

  function renderWorkflows(data) {
    const select = document.getElementById("workflow");
    const names = data.workflows.slice();
    if (state.workflow && !names.includes(state.workflow)) names.unshift(state.workflow);
    const wanted = ["", ...names].join("\u0000");
    if (select.dataset.names !== wanted) {
      clear(select).append(el("option", { value: "" }, "all workflows"));
      for (const name of names) select.append(el("option", { value: name }, name));
      select.dataset.names = wanted;
    }
    select.value = state.workflow;
  }

  function failuresCell(summary) {
    if (!summary) return el("td", { class: "pending" }, "…");
    if (summary.unreadable) return el("td", { class: "bad", title: summary.unreadable }, "unreadable");
    if (!summary.failures) return el("td", { class: "muted" }, "0");
    return el("td", { class: "bad" }, `${summary.failures}`,
      summary.first_failure ? el("span", { class: "muted" }, ` (${summary.first_failure})`) : null);
  }

  function waitingCell(summary) {
    if (!summary || summary.unreadable) return el("td", {}, "");
    const parts = summary.waiting_for.map((w) =>
      el("span", { class: "wait" }, el("b", {}, w.step), `: ${w.events.join(" | ")}`));
    if (summary.timers) parts.push(el("span", { class: "muted" }, ` ${summary.timers} timer${summary.timers > 1 ? "s" : ""}`));
    return el("td", {}, parts);
  }

  function row(item) {
    const summary = item.summary;
    const id = el("a", { href: RF.instanceUrl(item.id) }, item.id);
    const error = item.error ? el("div", { class: "row-error", title: item.error }, item.error) : null;
    return el("tr", { dataset: { id: item.id, status: item.status } },
      el("td", { class: "id" }, id, error),
      el("td", {}, item.workflow),
      el("td", {}, RF.statusBadge(item.status)),
      el("td", { class: summary ? "num" : "num pending" }, summary && !summary.unreadable ? summary.steps : "…"),
      failuresCell(summary),
      waitingCell(summary),
      el("td", {}, RF.timeCell(item.updated_at)),
      el("td", {}, RF.timeCell(item.created_at)));
  }

  function render(data) {
    current = data;
    renderTabs(data);
    renderWorkflows(data);
    clear(body);
    for (const item of data.instances) body.append(row(item));
    document.getElementById("empty").hidden = data.instances.length > 0;
    const previous = document.getElementById("previous");
    const next = document.getElementById("next");
    previous.textContent = data.by_id ? "‹ Previous" : "‹ Newer";
    next.textContent = data.by_id ? "Next ›" : "Older ›";
    previous.disabled = !data.previous;
    next.disabled = !data.next;
    document.getElementById("first").disabled = !state.after && !state.before;
    document.getElementById("updated").textContent = `updated ${RF.formatTime(Date.now() / 1000).slice(11)}`;
    const missing = data.instances.filter((i) => i.summary === null).map((i) => i.id);
    if (missing.length) fillSummaries(missing);
  }

  async function fillSummaries(ids) {
    const params = ids.map((id) => `id=${enc(id)}`).join("&");
    try {
      const data = await api(`/api/summaries?${params}`);
      for (const [id, summary] of Object.entries(data.summaries)) {
        if (summary === null) continue;
        const item = current.instances.find((i) => i.id === id);
        if (!item) continue;
        item.summary = summary;
        const old = [...body.rows].find((tr) => tr.dataset.id === id);
        if (old) old.replaceWith(row(item));
      }
      const still = Object.entries(data.summaries).filter(([, s]) => s === null).map(([id]) => id);
      if (still.length) setTimeout(() => fillSummaries(still), 50);
    } catch (err) {
      RF.showMessage(message, RF.errorText(err));
    }
  }

  let asked = 0;

  async function load() {
    writeUrl();
    const mine = ++asked;  // an answer to an older request (filters changed since) is dropped
    try {
      const data = await api(`/api/instances?${query()}`);
      if (mine !== asked) return;
      render(data);
      RF.showMessage(message, "");
    } catch (err) {
      if (mine === asked) RF.showMessage(message, RF.errorText(err));
    }
  }

  function init() {
    readUrl();
    document.getElementById("search").value = state.q;
    document.getElementById("workflow").addEventListener("change", (event) => {
      state.workflow = event.target.value;
      state.after = state.before = "";
      load();
    });
    let typing = null;
    document.getElementById("search").addEventListener("input", (event) => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        state.q = event.target.value.trim();
        state.after = state.before = "";
        load();
      }, 250);
    });
    document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());
    document.getElementById("next").addEventListener("click", () => {
      state.after = current.next; state.before = ""; load();
    });
    document.getElementById("previous").addEventListener("click", () => {
      state.before = current.previous; state.after = ""; load();
    });
    document.getElementById("first").addEventListener("click", () => {
      state.after = state.before = ""; load();
    });
    RF.poll(load, () => 5000)();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
