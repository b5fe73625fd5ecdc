// meshd web view: renders /api/cluster, follows /api/events (server-sent events), asks /api/advise.
// Plain script, no build step, no dependencies.
"use strict";

const state = {cluster: null, view: "tenants", query: "", updates: 0, rates: new Map(), events: []};
const HISTORY = 40; // rate samples kept per endpoint for its sparkline

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function rate(bps) {
  if (bps === undefined || bps === null) return "–";
  const bits = bps * 8;
  if (bits >= 1e9) return (bits / 1e9).toFixed(1) + " Gbit/s";
  if (bits >= 1e6) return (bits / 1e6).toFixed(1) + " Mbit/s";
  if (bits >= 1e3) return (bits / 1e3).toFixed(1) + " kbit/s";
  return bits.toFixed(0) + " bit/s";
}

function qos(q) {
  if (!q || !q.rate_kbit) return "unlimited";
  return (q.rate_kbit >= 1000 ? (q.rate_kbit / 1000) + " Mbit/s" : q.rate_kbit + " kbit/s");
}

function epKey(ep) { return ep.endpoint_id + "/" + ep.network; }

function sparkline(key) {
  const samples = state.rates.get(key) || [];
  if (samples.length < 2) return '<svg class="spark" viewBox="0 0 80 16"></svg>';
  const max = Math.max(1, ...samples);
  const step = 80 / (samples.length - 1);
  const points = samples.map((v, i) => (i * step).toFixed(1) + "," + (15 - 14 * v / max).toFixed(1)).join(" ");
  return '<svg class="spark" viewBox="0 0 80 16"><title>rx + tx, the last ' + samples.length + ' readings (max ' +
    rate(max) + ')</title><line x1="0" y1="15.5" x2="80" y2="15.5" stroke="#ddd"/><polyline points="' + points +
    '" fill="none" stroke="#2a7ab8" stroke-width="1.5"/></svg>';
}

function matches(ep) {
  const q = state.query;
  return !q || (ep.container || "").toLowerCase().includes(q) || (ep.ip || "").startsWith(q) || ep.endpoint_id.startsWith(q);
}

function tenantColour(tenant) {
  let h = 0;
  for (const c of tenant) h = (h * 31 + c.charCodeAt(0)) % 360;
  return "hsl(" + h + ",55%,45%)";
}

function endpointRows(eps, columns) {
  const rows = eps.filter(matches).map(ep => {
    const status = ep.running === undefined ? "" : (ep.up ? "up" : ep.running ? "building" : "stopped");
    const cells = {
      container: '<td class="name">' + esc(ep.container || ep.endpoint_id.slice(0, 12)) + "</td>",
      host: "<td>" + esc(ep.host) + "</td>",
      network: "<td>" + esc(ep.network) + "</td>",
      ip: '<td class="ip">' + esc(ep.ip) + "</td>",
      mac: '<td class="mac">' + esc(ep.mac) + "</td>",
      qos: "<td>" + esc(qos(ep.qos)) + "</td>",
      rates: '<td class="rate">' + (ep.rx_bps === undefined ? '<span class="muted">on ' + esc(ep.host) + "'s page</span>"
        : "rx " + rate(ep.rx_bps) + " · tx " + rate(ep.tx_bps)) + "</td>",
      spark: "<td>" + sparkline(epKey(ep)) + "</td>",
      status: '<td class="' + status + '">' + esc(status) + "</td>",
    };
    return '<tr class="endpoint" data-container="' + esc(ep.container) + '" data-container-ip="' + esc(ep.ip) +
      '" data-endpoint="' + esc(ep.endpoint_id) + '">' + columns.map(c => cells[c]).join("") + "</tr>";
  });
  if (!rows.length) return '<p class="muted">' + (eps.length ? "no container matches the search" : "no containers") + "</p>";
  const heads = {container: "container", host: "host", network: "network", ip: "address", mac: "MAC", qos: "QoS",
                 rates: "rate", spark: "", status: "state"};
  return "<table><thead><tr>" + columns.map(c => "<th>" + heads[c] + "</th>").join("") + "</tr></thead><tbody>" +
    rows.join("") + "</tbody></table>";
}

function policyText(p) {
  switch (p.kind) {
    case "isolate-within": return "isolate within " + p.network;
    case "deny-one-way": return "deny " + p.network + " → " + p.peer;
    case "deny-both": return "deny " + p.network + " ↔ " + p.peer;
    case "deny-all": return "deny all to and from " + p.network;
    default: return p.kind + " " + p.network + (p.peer ? " " + p.peer : "");
  }
}

function renderHostsTable(c) {
  const rows = c.hosts.map(h => '<tr data-host="' + esc(h.name) + '"><td class="name">' + esc(h.name) +
    (h.name === c.host ? ' <span class="muted">(this page)</span>' : "") + '</td><td class="state ' + esc(h.state) + '">' +
    esc(h.state) + "</td><td>" + esc(h.raft_role) + "</td><td>" + esc(h.address || "") + "</td><td>" +
    esc((h.dataplane || []).join(", ") || "?") + "</td><td>" +
    (h.dataplane_missing && h.dataplane_missing.length ? '<span class="warn">' + esc(h.dataplane_missing.join(", ")) + "</span>" : "–") +
    "</td><td>" + esc(h.endpoints) + "</td></tr>");
  document.getElementById("hosts-table").innerHTML = "<h2>Hosts</h2><table><thead><tr><th>host</th><th>state</th>" +
    "<th>Raft</th><th>address</th><th>data plane</th><th>missing</th><th>containers</th></tr></thead><tbody>" +
    rows.join("") + "</tbody></table>";
}

function networkCard(c, n) {
  const eps = c.endpoints.filter(e => e.network === n.name);
  const pols = c.policies.filter(p => p.network === n.name || p.peer === n.name);
  const total = n.used + n.free;
  const pct = total ? Math.round(100 * n.used / total) : 0;
  return '<div class="card network" data-network="' + esc(n.name) + '"><h4>' + esc(n.name) +
    ' <span class="mode">' + esc(n.mode) + "</span></h4>" +
    '<p class="facts">' + esc(n.subnet) + " · VNI " + esc(n.vni) + " · MTU " + esc(n.mtu) + " · " + esc(n.used) +
    " used / " + esc(n.free) + ' free <meter min="0" max="100" value="' + pct + '"></meter>' +
    (n.external ? " · external" : "") + " · hosts: " + esc(n.hosts.join(", ") || "none") + "</p>" +
    (pols.length ? '<p class="policies">' + pols.map(p => '<span class="policy">' + esc(policyText(p)) + "</span>").join(" ") + "</p>" : "") +
    endpointRows(eps, ["container", "host", "ip", "qos", "rates", "spark", "status"]) + "</div>";
}

function renderTenants(c) {
  const tenants = [...new Set(c.networks.map(n => n.tenant))].sort();
  const html = tenants.map(t => '<div class="tenant" data-tenant="' + esc(t) + '"><h3><span class="swatch" data-colour="' +
    esc(tenantColour(t)) + '"></span>tenant ' + esc(t) + "</h3>" +
    c.networks.filter(n => n.tenant === t).map(n => networkCard(c, n)).join("") + "</div>");
  document.getElementById("view-tenants").innerHTML = html.join("") || '<p class="muted">no networks yet: meshd network create NAME SUBNET</p>';
}

function renderHosts(c) {
  const html = c.hosts.map(h => {
    const eps = c.endpoints.filter(e => e.host === h.name);
    const tunnels = h.name === c.host ? c.tunnels.map(t => "<li>VNI " + esc(t.vni) + " (" + esc(t.network) + ") → " +
      esc(t.peer_hosts.join(", ") || "no peers") + "</li>").join("") : "";
    return '<div class="card host" data-host-card="' + esc(h.name) + '"><h3>' + esc(h.name) + ' <span class="state ' +
      esc(h.state) + '">' + esc(h.state) + '</span> <span class="mode">' + esc(h.raft_role) + "</span></h3>" +
      '<p class="facts">' + esc(h.address || "") + " · data plane: " + esc((h.dataplane || []).join(", ") || "?") +
      (h.underlay_mtu ? " · underlay MTU " + esc(h.underlay_mtu) : "") + "</p>" +
      (tunnels ? "<p>tunnels of this host:</p><ul>" + tunnels + "</ul>" : "") +
      endpointRows(eps, ["container", "network", "ip", "mac", "qos", "rates", "spark", "status"]) + "</div>";
  });
  document.getElementById("view-hosts").innerHTML = html.join("");
}

function renderEvents() {
  const items = state.events.slice(-200).reverse().map(e => '<li><time>' + esc(new Date(e.time * 1000).toLocaleTimeString()) +
    '</time> <span class="kind">' + esc(e.kind) + "</span> " + esc(e.text) + "</li>");
  document.getElementById("events").innerHTML = items.join("");
  document.getElementById("recent-events").innerHTML = items.slice(0, 8).join("");
}

function render() {
  const c = state.cluster;
  if (!c) return;
  const leader = c.raft ? c.raft.leader : null;
  document.getElementById("served-by").textContent = "served by " + c.host + " · Raft leader " + (leader || "none") +
    " · " + c.hosts.length + " hosts · " + c.networks.length + " networks · " + c.endpoints.length + " containers" +
    (c.endpoints_omitted ? " (" + c.endpoints_omitted + " more not listed)" : "");
  renderHostsTable(c);
  renderTenants(c);
  renderHosts(c);
  renderEvents();
  if (window.drawTopology) window.drawTopology(document.getElementById("topology"), c, tenantColour);
  for (const s of document.querySelectorAll(".swatch")) s.style.background = s.dataset.colour;
}

function setCluster(c, how) {
  state.cluster = c;
  const seen = new Set(state.events.map(e => e.time + e.text));
  for (const e of c.events || []) if (!seen.has(e.time + e.text)) state.events.push(e);
  state.updates += 1;
  const line = document.getElementById("status-line");
  line.dataset.updates = String(state.updates);
  line.dataset.time = String(Date.now());
  line.textContent = "updated " + new Date().toLocaleTimeString() + " (" + how + ", " + state.updates + " updates)";
  render();
}

async function load() {
  const r = await fetch("/api/cluster", {cache: "no-store"});
  if (r.ok) setCluster(await r.json(), "loaded");
}

function onRates(r) {
  for (const ep of r.endpoints) {
    const key = ep.endpoint_id + "/" + ep.network;
    const samples = state.rates.get(key) || [];
    samples.push(ep.rx_bps + ep.tx_bps);
    if (samples.length > HISTORY) samples.shift();
    state.rates.set(key, samples);
    const local = state.cluster && state.cluster.endpoints.find(e => e.endpoint_id === ep.endpoint_id && e.network === ep.network);
    if (local) Object.assign(local, {rx_bps: ep.rx_bps, tx_bps: ep.tx_bps});
  }
  render();
}

function follow() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
  source.addEventListener("cluster", e => setCluster(JSON.parse(e.data), "live"));
  source.addEventListener("rates", e => onRates(JSON.parse(e.data)));
  source.addEventListener("event", e => { state.events.push(JSON.parse(e.data)); if (state.events.length > 500) state.events.shift(); renderEvents(); });
  source.addEventListener("resync", () => load());
}

function show(view) {
  state.view = view;
  for (const b of document.querySelectorAll("#views button")) b.classList.toggle("active", b.dataset.view === view);
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + view;
}

let adviseTimer = null;
async function advise() {
  const form = document.getElementById("advise-form");
  const params = new URLSearchParams();
  for (const el of form.elements) if (el.name && el.value !== "") params.set(el.name, el.value.trim());
  const out = document.getElementById("advice");
  const r = await fetch("/api/advise?" + params.toString(), {cache: "no-store"});
  const a = await r.json();
  if (!r.ok) { out.innerHTML = '<p class="warn" id="advice-error">' + esc(a.error) + "</p>"; return; }
  out.innerHTML = '<p class="verdict">model: <strong id="advice-mode">' + esc(a.mode) + "</strong> · probability " +
    '<span id="advice-probability">' + (100 * a.probability).toFixed(0) + "%</span>" +
    (a.overridden ? " (a hard constraint overrode the regression)" : "") + "</p><ul>" +
    a.reasons.map(x => "<li>" + esc(x) + "</li>").join("") + "</ul>" +
    (a.unchecked.length ? '<p class="muted">not checked: ' + esc(a.unchecked.join("; ")) + "</p>" : "") +
    '<p>create it: <code id="advice-command">' + esc(a.command) + "</code></p>";
}

function init() {
  for (const b of document.querySelectorAll("#views button")) b.addEventListener("click", () => show(b.dataset.view));
  const initial = (location.hash || "").slice(1);
  if (document.getElementById("view-" + initial)) show(initial);
  document.getElementById("search").addEventListener("input", e => { state.query = e.target.value.trim().toLowerCase(); render(); });
  const form = document.getElementById("advise-form");
  form.addEventListener("submit", e => { e.preventDefault(); advise(); });
  form.addEventListener("input", e => {
    if (e.target.type === "range") e.target.nextElementSibling.value = e.target.value;
    clearTimeout(adviseTimer);
    adviseTimer = setTimeout(advise, 250);
  });
  load().then(follow);
  advise();
}

document.addEventListener("DOMContentLoaded", init);
