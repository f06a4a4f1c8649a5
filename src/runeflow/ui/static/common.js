/* runeflow dashboard: helpers shared by both pages.
 *
 * Every text that comes from the store is put in the page with textContent (or as an
 * attribute value through the DOM), never parsed as HTML: a stored "<script>" is shown
 * as text. The only markup inserted is the graph's SVG, which the server escapes.
 */
"use strict";

const RF = (() => {
  const meta = (name) => {
    const node = document.querySelector(`meta[name="${name}"]`);
    return node ? node.getAttribute("content") : "";
  };
  const base = meta("rf-base");
  const csrf = meta("rf-csrf");
  const readOnly = meta("rf-read-only") === "true";

  /** Build an element: el("td", {class: "num"}, "text", child, ...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  class ApiError extends Error {
    constructor(type, message, status) {
      super(message);
      this.type = type;
      this.status = status;
    }
  }

  async function api(path, options) {
    const init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    if (init.body !== undefined) {
      init.method = init.method || "POST";
      init.headers["Content-Type"] = "application/json";
      init.headers["X-Runeflow-CSRF"] = csrf;
      init.body = JSON.stringify(init.body);
    }
    let response;
    try {
      response = await fetch(base + path, init);
    } catch (err) {
      throw new ApiError("NetworkError", "the dashboard server cannot be reached: " + err.message, 0);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      throw new ApiError("BadResponse", `the server answered ${response.status} without JSON`, response.status);
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(error.type || "Error", error.message || `HTTP ${response.status}`, response.status);
    }
    return data;
  }

  const enc = encodeURIComponent;

  function instanceUrl(id) {
    return `${base}/instances/${enc(id)}`;
  }

  function statusBadge(status) {
    const known = ["running", "waiting", "idle", "failed", "stopped"].includes(status);
    return el("span", { class: `status status-${known ? status : "unknown"}` }, status || "?");
  }

  function stateBadge(state) {
    return el("span", { class: `state state-${state || "pending"}` }, state || "pending");
  }

  function formatTime(epoch) {
    if (epoch === null || epoch === undefined || !isFinite(epoch)) return "-";
    const date = new Date(epoch * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
      `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  function ago(epoch) {
    if (epoch === null || epoch === undefined || !isFinite(epoch)) return "-";
    const seconds = Math.max(0, Date.now() / 1000 - epoch);
    if (seconds < 60) return `${Math.round(seconds)}s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)}h ago`;
    return `${Math.round(seconds / 86400)}d ago`;
  }

  function timeCell(epoch) {
    return el("time", { title: formatTime(epoch) }, ago(epoch));
  }

  function showMessage(node, text, kind) {
    if (!text) {
      node.hidden = true;
      clear(node);
      return;
    }
    node.hidden = false;
    node.className = `message ${kind || "error"}`;
    clear(node).append(text);
  }

  function errorText(err) {
    return err.type ? `${err.type}: ${err.message}` : String(err.message || err);
  }

  /** Run refresh() now and then every interval() milliseconds while "live" is ticked. */
  function poll(refresh, interval) {
    const live = document.getElementById("live");
    let timer = null;
    const schedule = () => {
      clearTimeout(timer);
      if (live && !live.checked) return;
      timer = setTimeout(tick, interval());
    };
    const tick = async () => {
      if (document.hidden) return schedule();
      try {
        await refresh();
      } finally {
        schedule();
      }
    };
    if (live) live.addEventListener("change", () => (live.checked ? tick() : clearTimeout(timer)));
    document.addEventListener("visibilitychange", () => { if (!document.hidden) schedule(); });
    return tick;
  }

  /** Ask for confirmation in the page's <dialog>; resolves true on "Confirm". */
  function confirmAction(title, text) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    });
  }

  if (readOnly) {
    document.addEventListener("DOMContentLoaded", () => {
      const tag = document.getElementById("read-only");
      if (tag) tag.hidden = false;
    });
  }

  return {
    base, csrf, readOnly, el, clear, api, enc, instanceUrl, statusBadge, stateBadge,
    formatTime, ago, timeCell, showMessage, errorText, poll, confirmAction,
  };
})();
