"""The web view in a real browser (issue 18): headless Chromium in a lab host loads the page from that
host's agent, the DOM shows every host, network and container of a three-host cluster with real Docker
containers, a connect shows up live (server-sent events), the requirement form answers within the
cluster's constraints, and screenshots are saved (into docs/web/ with MESHD_WEB_SCREENSHOTS=1, which
is how the README's pictures are made; otherwise into the test's temporary directory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshd.api import MsgType
from tools.browser import Browser, find_chromium

pytestmark = [pytest.mark.root, pytest.mark.docker, pytest.mark.slow]

URL = "http://127.0.0.1:9478/"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "web"
NETWORKS = {"blue": ("acme", "10.1.0.0/24"), "green": ("acme", "10.2.0.0/24"), "red": ("globex", "10.3.0.0/24")}
#: (host, container name, network)
CONTAINERS = [("h1", "web", "blue"), ("h2", "api", "blue"), ("h2", "db", "green"), ("h3", "shop", "red")]


def screenshot_dir(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("MESHD_WEB_SCREENSHOTS") == "1" else tmp_path / "screenshots"


def js(value: object) -> str:
    return json.dumps(value)


def test_the_web_view_shows_the_cluster_live_in_a_real_browser(make_cluster, tmp_path):
    if find_chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; tools/setup.sh installs it)")
    lab, cluster = make_cluster(hosts=3)
    for name, (tenant, subnet) in NETWORKS.items():
        cluster.query("h1", MsgType.NETWORK_CREATE, name=name, subnet=subnet, tenant=tenant)
    cluster.query("h1", MsgType.POLICY_ADD, kind="deny-both", network="blue", peer="green")
    cluster.query("h1", MsgType.POLICY_ADD, kind="isolate-within", network="red")
    endpoints = {}
    for host, name, network in CONTAINERS:
        c = lab.container(host, name)
        ep = cluster.query(host, MsgType.ENDPOINT_CONNECT, container_id=c.id, network=network, bandwidth_kbit=20000)
        endpoints[name] = (c, ep["ip"])
    late = lab.container("h3", "late")
    # traffic, so that h1's container has rates to draw
    traffic = subprocess.Popen(["docker", "exec", endpoints["web"][0].id, "ping", "-i", "0.2", "-c", "60",
                                endpoints["api"][1]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shots = screenshot_dir(tmp_path)
    browser = Browser(prefix=lab.exec_argv("h1"), width=1400, height=900)
    try:
        page = browser.open(URL)
        page.wait("document.querySelector('#live.on') !== null", timeout_s=30)
        for host in ("h1", "h2", "h3"):
            page.wait(f"document.querySelector('#hosts-table [data-host={js(host)}]') !== null", timeout_s=30)
        for name in NETWORKS:
            assert page.evaluate(f"document.querySelector('#view-tenants [data-network={js(name)}]') !== null"), name
        for host, name, network in CONTAINERS:
            c, ip = endpoints[name]
            row = page.wait(f"(() => {{ const r = document.querySelector('#view-tenants [data-network={js(network)}] "
                            f"[data-container-ip={js(ip)}]'); return r && r.textContent; }})()", timeout_s=30)
            assert c.docker_name in row and host in row, (name, row)
        hosts_text = page.evaluate("document.querySelector('#hosts-table').textContent")
        assert "leader" in hosts_text and "alive" in hosts_text and "vxlan" in hosts_text, hosts_text
        tenants_text = page.evaluate("document.querySelector('#view-tenants').textContent")
        for fragment in ("tenant acme", "tenant globex", "deny blue ↔ green", "isolate within red", "20 Mbit/s"):
            assert fragment in tenants_text, fragment
        svg = page.evaluate("document.querySelector('#topology').outerHTML")
        assert svg.count("data-host-node") == 3 and svg.count("data-network-node") == 3 and 'class="policy"' in svg
        assert 'data-tunnel="h1|h2"' in svg  # blue spans h1 and h2
        web_row = f"#view-tenants [data-container-ip={js(endpoints['web'][1])}]"
        page.wait(f"document.querySelector('{web_row} .rate').textContent.includes('rx ')", timeout_s=30)
        page.wait(f"document.querySelector('{web_row} .spark polyline') !== null", timeout_s=30)  # two readings

        # a connect appears live: a MutationObserver notes when its row enters the DOM (browser clock = ours)
        page.evaluate(f"""(() => {{ window.seenAt = null; const id = {js(late.id)};
            new MutationObserver((_, obs) => {{
              if (document.querySelector('[data-endpoint="' + id + '"]')) {{
                window.seenAt = Date.now(); obs.disconnect(); }}
            }}).observe(document.body, {{subtree: true, childList: true}}); return true; }})()""")
        sent = time.time()
        ep = cluster.query("h3", MsgType.ENDPOINT_CONNECT, container_id=late.id, network="red")
        answered = time.time()
        seen = page.wait("window.seenAt", timeout_s=10) / 1000
        latency = {"from_request_ms": round((seen - sent) * 1000), "from_reply_ms": round((seen - answered) * 1000),
                   "reply_ms": round((answered - sent) * 1000)}
        print(f"web view: connect -> DOM {latency}", file=sys.stderr)
        (tmp_path / "latency.json").write_text(json.dumps(latency))
        assert page.evaluate(f"document.querySelector('[data-container-ip={js(ep['ip'])}]') !== null")

        # search by IP keeps only the matching container
        page.evaluate("(() => { const s = document.getElementById('search'); s.value = '10.3.0.';"
                      " s.dispatchEvent(new Event('input')); return true; })()")
        visible = page.evaluate("[...document.querySelectorAll('#view-tenants tr.endpoint')]"
                                ".map(r => r.dataset.containerIp)")
        assert visible and all(ip.startswith("10.3.0.") for ip in visible), visible
        page.evaluate("(() => { const s = document.getElementById('search'); s.value = '';"
                      " s.dispatchEvent(new Event('input')); return true; })()")
        page.screenshot(shots / "cluster.png")
        page.evaluate("document.querySelector('[data-view=hosts]').click()")
        page.screenshot(shots / "hosts.png")
        page.evaluate("document.querySelector('[data-view=topology]').click()")
        page.screenshot(shots / "topology.png", full_page=False)

        # the requirement form: throughput alone picks flat; a subnet overlapping another tenant's needs vxlan
        page.evaluate("document.querySelector('[data-view=advisor]').click()")
        form = ("(() => { const f = document.getElementById('advise-form'); const v = %s;"
                " for (const [k, x] of Object.entries(v)) f.elements[k].value = x;"
                " document.getElementById('advice').textContent = '';"
                " f.requestSubmit(); return true; })()")
        page.evaluate(form % js({"security": 0, "scale": 0, "throughput": 10, "extensibility": 0, "tenant": "globex",
                                 "subnet": "10.1.0.0/24"}))
        command = page.wait("document.querySelector('#advice-command') && "
                            "document.querySelector('#advice-command').textContent", timeout_s=10)
        assert command == "meshd network create NAME 10.1.0.0/24 --tenant globex --mode vxlan", command
        advice = page.evaluate("document.getElementById('advice').textContent")
        assert "overlaps another tenant's network (blue (tenant acme, 10.1.0.0/24))" in advice, advice
        page.evaluate(form % js({"security": 0, "scale": 0, "throughput": 10, "extensibility": 0, "tenant": "",
                                 "subnet": ""}))
        mode = page.wait("document.querySelector('#advice-mode') && document.querySelector('#advice-mode').textContent",
                         timeout_s=10)
        assert mode == "flat"
        page.screenshot(shots / "advisor.png", full_page=False)
    except BaseException:
        print(browser.log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        browser.close()
        traffic.kill()
        traffic.wait(timeout=10)
    assert all((shots / f).stat().st_size > 10_000 for f in ("cluster.png", "hosts.png", "topology.png", "advisor.png"))

    # loopback only by default: another host cannot reach the page
    probe = "import socket; socket.create_connection(('192.0.2.11', 9478), timeout=2)"
    assert lab.exec("h2", sys.executable, "-c", probe, check=False).returncode != 0
