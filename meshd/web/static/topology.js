// The topology as an SVG graph: networks in a row above, hosts in a row below, a line from each network
// to each host it spans (label: its containers there), VXLAN tunnels as arcs between hosts, policies as
// dashed lines between networks.  A fixed layered layout: the same cluster always looks the same.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";

  function el(parent, name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    parent.appendChild(e);
    return e;
  }

  const STATE_COLOURS = {alive: "#2e9e4f", suspect: "#d9a400", "agent-down": "#e07b00", failed: "#c62828", left: "#888"};

  window.drawTopology = function (svg, c, tenantColour) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const width = Math.max(760, 190 * Math.max(c.hosts.length, c.networks.length));
    const height = 420;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    const x = (i, n) => (width / n) * (i + 0.5);
    const hostY = 320, netY = 90;
    const hosts = new Map(c.hosts.map((h, i) => [h.name, {h, x: x(i, c.hosts.length), y: hostY}]));
    const nets = new Map(c.networks.map((n, i) => [n.name, {n, x: x(i, c.networks.length), y: netY}]));
    const edges = el(svg, "g", {class: "edges"});
    // tunnels: every pair of hosts that both carry one VXLAN network
    const pairs = new Map();
    for (const n of c.networks) {
      if (n.mode !== "vxlan") continue;
      for (let i = 0; i < n.hosts.length; i++) for (let j = i + 1; j < n.hosts.length; j++) {
        const key = [n.hosts[i], n.hosts[j]].sort().join("|");
        pairs.set(key, (pairs.get(key) || []).concat([n.vni]));
      }
    }
    for (const [key, vnis] of pairs) {
      const [a, b] = key.split("|").map(name => hosts.get(name));
      if (!a || !b) continue;
      const mid = (a.x + b.x) / 2, drop = 40 + Math.abs(a.x - b.x) / 8;
      const path = el(edges, "path", {d: "M" + a.x + "," + (a.y + 24) + " Q" + mid + "," + (a.y + 24 + drop) + " " + b.x + "," + (b.y + 24),
        fill: "none", stroke: "#999", "stroke-width": 1.5, class: "tunnel", "data-tunnel": key});
      el(path, "title", {}, "VXLAN tunnel " + key.replace("|", " ↔ ") + ": VNI " + vnis.join(", "));
    }
    // network to host: the containers of the network on the host
    for (const {n, x: nx, y: ny} of nets.values()) {
      for (const name of n.hosts) {
        const h = hosts.get(name);
        if (!h) continue;
        const count = c.endpoints.filter(e => e.network === n.name && e.host === name).length;
        el(edges, "line", {x1: nx, y1: ny + 22, x2: h.x, y2: h.y - 24, stroke: tenantColour(n.tenant), "stroke-width": 1 + Math.min(count, 6),
          "stroke-opacity": 0.6, class: "member"});
        el(edges, "text", {x: (nx * 0.35 + h.x * 0.65), y: (ny * 0.35 + h.y * 0.65), class: "count"}, String(count));
      }
    }
    // policies between networks (isolate-within and deny-all: a ring round the network)
    for (const p of c.policies) {
      const a = nets.get(p.network);
      if (!a) continue;
      const colour = p.kind === "isolate-within" ? "#e07b00" : "#c62828";
      const b = p.peer ? nets.get(p.peer) : null;
      let shape;
      if (b) {
        const mid = (a.x + b.x) / 2;
        shape = el(edges, "path", {d: "M" + a.x + "," + (a.y - 22) + " Q" + mid + "," + (a.y - 80) + " " + b.x + "," + (b.y - 22),
          fill: "none", stroke: colour, "stroke-width": 2, "stroke-dasharray": "6 4", class: "policy",
          "marker-end": p.kind === "deny-one-way" ? "url(#arrow)" : ""});
      } else {
        shape = el(edges, "ellipse", {cx: a.x, cy: a.y, rx: 92, ry: 32, fill: "none", stroke: colour, "stroke-width": 2,
          "stroke-dasharray": "6 4", class: "policy"});
      }
      el(shape, "title", {}, p.kind + " " + p.network + (p.peer ? " " + p.peer : ""));
    }
    const defs = el(svg, "defs", {});
    const marker = el(defs, "marker", {id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto"});
    el(marker, "path", {d: "M0,0 L10,5 L0,10 z", fill: "#c62828"});
    for (const {n, x: nx, y: ny} of nets.values()) {
      const g = el(svg, "g", {class: "net-node", "data-network-node": n.name});
      el(g, "rect", {x: nx - 80, y: ny - 22, width: 160, height: 44, rx: 8, fill: tenantColour(n.tenant), "fill-opacity": 0.15,
        stroke: tenantColour(n.tenant), "stroke-width": 2});
      el(g, "text", {x: nx, y: ny - 4, class: "node-title"}, n.name);
      el(g, "text", {x: nx, y: ny + 13, class: "node-sub"}, n.tenant + " · " + n.mode + " · " + n.subnet);
      el(g, "title", {}, n.name + ": tenant " + n.tenant + ", " + n.mode + ", " + n.subnet + ", VNI " + n.vni + ", " + n.used + " used");
    }
    for (const {h, x: hx, y: hy} of hosts.values()) {
      const g = el(svg, "g", {class: "host-node", "data-host-node": h.name});
      el(g, "rect", {x: hx - 58, y: hy - 24, width: 116, height: 48, rx: 4, fill: "#fff", stroke: STATE_COLOURS[h.state] || "#888",
        "stroke-width": h.raft_role === "leader" ? 4 : 2});
      el(g, "text", {x: hx, y: hy - 5, class: "node-title"}, h.name);
      el(g, "text", {x: hx, y: hy + 12, class: "node-sub"}, h.state + " · " + h.raft_role);
      el(g, "title", {}, h.name + " " + (h.address || "") + ": " + h.state + ", Raft " + h.raft_role + ", " + h.endpoints + " containers");
    }
  };
})();
