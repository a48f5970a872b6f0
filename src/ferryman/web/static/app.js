// Ferryman web UI: small progressive behaviours. Every page works without this file;
// it fits the navigation on one row and closes its menus, adds confirmations,
// auto-submitting selects, line numbers, copy buttons, the SSH check, detection, the ref
// pickers and the project page following a post-deploy watch (calls to the REST API carry
// the CSRF header).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

async function api(url, options = {}) {
  const response = await fetch(url, {
    credentials: "same-origin",
    ...options,
    headers: { "X-CSRF-Token": csrf(), "Content-Type": "application/json", ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body?.error?.message || response.statusText);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function confirmations() {
  // delegated: forms a page swaps in later (the console's live parts) ask as well
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
  document.querySelectorAll("[data-back]").forEach((link) => {
    link.addEventListener("click", (event) => { if (history.length > 1) { event.preventDefault(); history.back(); } });
  });
}

function autosubmit() {
  document.querySelectorAll("form[data-autosubmit]").forEach((form) => {
    form.querySelectorAll("select").forEach((s) => s.addEventListener("change", () => form.submit()));
    form.querySelectorAll("button[type=submit]").forEach((b) => b.classList.add("sr"));
  });
}

function lineNumbers() {
  document.querySelectorAll("textarea[data-code]").forEach((area) => {
    const wrap = el("div", { class: "code-wrap" });
    const gutter = el("pre", { class: "gutter", "aria-hidden": "true" });
    area.parentNode.insertBefore(wrap, area);
    wrap.append(gutter, area);
    const draw = () => {
      const count = area.value.split("\n").length;
      gutter.textContent = Array.from({ length: Math.max(count, area.rows) }, (_, i) => i + 1).join("\n");
      gutter.scrollTop = area.scrollTop;
    };
    area.addEventListener("input", draw);
    area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });
    area.addEventListener("keydown", (event) => {
      if (event.key === "Tab" && !event.shiftKey) {
        event.preventDefault();
        const { selectionStart: start, selectionEnd: end } = area;
        area.setRangeText("  ", start, end, "end");
        draw();
      }
    });
    draw();
  });
}

function toggles() {
  document.querySelectorAll("[data-toggles]").forEach((box) => {
    const target = document.getElementById(box.dataset.toggles);
    const apply = () => target?.classList.toggle("hidden", !box.checked);
    box.addEventListener("change", apply); apply();
  });
  document.querySelectorAll("[data-toggles-off]").forEach((box) => {
    const target = document.getElementById(box.dataset.togglesOff);
    const apply = () => target?.classList.toggle("hidden", box.checked);
    box.addEventListener("change", apply); apply();
  });
  const all = document.querySelector("[data-all-hosts]");
  if (all) {
    const hosts = [...document.querySelectorAll("[data-host]")];
    all.addEventListener("change", () => hosts.forEach((h) => { h.checked = all.checked; }));
    hosts.forEach((h) => h.addEventListener("change", () => { all.checked = hosts.every((x) => x.checked); }));
  }
}

function copyButtons() {
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy)?.textContent || "";
      try { await navigator.clipboard.writeText(text.trim()); button.classList.add("on"); } catch (_) { /* select it instead */ }
    });
  });
}

function sshChecks() {
  document.querySelectorAll("[data-ssh-check]").forEach((button) => {
    button.addEventListener("click", async () => {
      const url = button.dataset.sshCheck;
      const out = document.querySelector(`.check-result[data-for="${url}"]`);
      out.textContent = "…";
      try {
        const result = await api(url, { method: "POST" });
        out.textContent = result.ok ? `✓ ${result.message}` : `✗ ${result.message} — ${result.fix}`;
        out.className = `check-result ${result.ok ? "ok" : "error"}`;
      } catch (error) { out.textContent = `✗ ${error.message}`; out.className = "check-result error"; }
    });
  });
}

function detection() {
  const texts = document.getElementById("detect-texts")?.dataset || {};
  document.querySelectorAll("[data-detect]").forEach((button) => {
    button.addEventListener("click", async () => {
      const env = button.dataset.env;
      const out = document.querySelector(`[data-detect-for="${env}"]`);
      out.replaceChildren(el("p", { class: "muted" }, texts.running || "…"));
      button.disabled = true;
      try {
        const result = await api(button.dataset.detect, { method: "POST", body: JSON.stringify({ env }) });
        const table = el("table", { class: "detect" },
          el("thead", {}, el("tr", {}, el("th", {}, texts.host), el("th", {}, texts.check), el("th", {}, texts.result), el("th", {}, texts.fix))));
        const body = el("tbody");
        for (const check of result.checks) {
          body.append(el("tr", {}, el("td", {}, check.host || "-"), el("td", {}, check.check),
            el("td", { class: check.ok ? "ok" : "fail" }, check.ok ? texts.ok : texts.fail),
            el("td", {}, check.ok ? "" : check.detail)));
        }
        table.append(body);
        out.replaceChildren(el("p", { class: result.ok ? "ok" : "error", "data-detect-ok": String(result.ok) },
          result.ok ? texts.allOk : texts.someFailed), table);
      } catch (error) {
        out.replaceChildren(el("p", { class: "error" }, error.message));
      } finally { button.disabled = false; }
    });
  });
}

function refPickers() {
  const box = document.querySelector("[data-refs]");
  if (!box) return;
  const texts = document.getElementById("ref-texts")?.dataset || {};
  const branch = box.querySelector("[data-branch]"), commit = box.querySelector("[data-commit]");
  const tag = box.querySelector("[data-tag]"), ref = box.querySelector("[data-ref]");
  const status = box.querySelector("[data-refs-status]");
  const fill = (select, items, label) => {
    select.replaceChildren(el("option", { value: "" }, "-"));
    for (const item of items) select.append(el("option", { value: item.value }, label(item)));
  };
  const load = async (branchName) => {
    const url = box.dataset.refs + (branchName ? `&branch=${encodeURIComponent(branchName)}` : "");
    try {
      const data = await api(url);
      if (!branchName) {
        fill(branch, data.branches.map((b) => ({ value: b.name, ...b })), (b) => b.name);
        fill(tag, data.tags.map((t) => ({ value: t.name, ...t })), (t) => `${t.name} (${(t.commit || "").slice(0, 8)})`);
        if (data.branch) {
          branch.value = data.branch;
          if (!ref.value) ref.value = data.branch;  // the form starts with a ref chosen
        }
      }
      fill(commit, data.commits.map((c) => ({ value: c.id, ...c })), (c) => `${c.id.slice(0, 8)} ${c.message} — ${c.author}`);
      status.textContent = "";
    } catch (error) { status.textContent = `${texts.failed} (${error.message})`; }
  };
  branch.addEventListener("change", () => { if (branch.value) { ref.value = branch.value; load(branch.value); } });
  commit.addEventListener("change", () => { if (commit.value) ref.value = commit.value; });
  tag.addEventListener("change", () => { if (tag.value) ref.value = tag.value; });
  load("");
}

// The space's links stay on one row on a desktop: those that do not fit (the last ones first)
// go into the "More" menu beside them, and come back when the window widens. On a phone
// the row scrolls instead (app.css), every link on it.
function fitNavigation() {
  const nav = document.querySelector("nav.main");
  const row = nav?.querySelector(".links"), more = nav?.querySelector("details.more");
  if (!row || !more) return;
  const panel = more.querySelector(".menu-panel"), summary = more.querySelector("summary");
  const links = [...row.children];
  const phone = window.matchMedia("(max-width: 640px)");
  const fit = () => {
    row.append(...links);
    more.hidden = true; more.open = false;
    if (!phone.matches && row.scrollWidth > row.clientWidth) {
      more.hidden = false;
      while (row.children.length > 1 && row.scrollWidth > row.clientWidth) panel.prepend(row.lastElementChild);
    }
    summary.classList.toggle("on", Boolean(panel.querySelector(".on")));
  };
  fit();
  let frame = 0;
  window.addEventListener("resize", () => { cancelAnimationFrame(frame); frame = requestAnimationFrame(fit); });
}

// Menus of the header (details elements) close on a click elsewhere and on Escape.
function menus() {
  const open = () => document.querySelectorAll("details.menu[open]");
  document.addEventListener("click", (event) => {
    open().forEach((menu) => { if (!menu.contains(event.target)) menu.open = false; });
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    open().forEach((menu) => { menu.open = false; menu.querySelector("summary")?.focus(); });
  });
}

// the zone the viewer chose in their account ("" = the browser's own)
const chosenZone = () => document.body.dataset.zone || "";

function timeZones() {
  // times typed into a form are the viewer's own: the server is told the browser's offset to
  // UTC, unless the viewer chose a zone (the server reads the time in that zone)
  if (chosenZone()) return;
  document.querySelectorAll("[data-tz-offset]").forEach((input) => { input.value = String(new Date().getTimezoneOffset()); });
}

function localTimes(root = document) {
  const zone = chosenZone();
  const options = zone ? { timeZone: zone, timeZoneName: "short" } : {};
  root.querySelectorAll("time[datetime]").forEach((node) => {
    const when = new Date(node.getAttribute("datetime"));
    if (Number.isNaN(when.getTime())) return;
    node.title = node.textContent + " UTC";
    try { node.textContent = when.toLocaleString(undefined, options); } catch { node.textContent = when.toLocaleString(); }
  });
}

// A post-deploy watch goes on after its deploy ended. While one on the project page watches,
// the page is asked for again now and then (as the console does) and each environment's
// watch is replaced when it changed: another round passed, or it ended (passed, failed on
// a host, ended). Bounded: it stops once no watch shown is watching, and after WATCH_POLLS.
const WATCH_POLL = 10000;
const WATCH_POLLS = 720;

function followWatches() {
  const shown = () => [...document.querySelectorAll(".watch-of-env[id]")];
  const served = new Map(shown().map((node) => [node.id, node.outerHTML]));  // before localTimes
  const watching = () => shown().some((node) => node.querySelector('[data-watch="watching"]'));
  let polls = 0;
  const next = () => {
    if (!watching() || polls >= WATCH_POLLS) return;
    polls += 1;
    setTimeout(() => {
      fetch(location.pathname + location.search, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
        .then((html) => {
          const fresh = new DOMParser().parseFromString(html, "text/html");
          for (const node of shown()) {
            const now = fresh.getElementById(node.id);
            if (!now || now.outerHTML === served.get(node.id)) continue;
            served.set(node.id, now.outerHTML);
            const adopted = document.adoptNode(now);
            node.replaceWith(adopted);
            localTimes(adopted);
          }
        })
        .catch(() => {})
        .finally(next);
    }, WATCH_POLL);
  };
  next();
}

document.addEventListener("DOMContentLoaded", () => {
  followWatches();  // first: it keeps the watches as served, before times are localised
  fitNavigation(); menus();
  confirmations(); autosubmit(); lineNumbers(); toggles(); copyButtons(); sshChecks(); detection(); refPickers(); timeZones(); localTimes();
});
window.ferryman = { api, el };
