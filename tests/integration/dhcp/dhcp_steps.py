"""One DHCP client step, run inside a lab host's netns (as the agent runs there) by test_dhcp_client.py.

``python -m tests.integration.dhcp.dhcp_steps STEP NETNS IFNAME MAC [LEASE_JSON]`` prints one JSON
line: the lease (acquire, renew, reboot), or the event of a reboot the server refuses, or whether a
release was sent.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys

import trio

from meshd import dhcp


async def _until_event(client: dhcp.DhcpClient, sock: dhcp.DhcpSocket, first: dhcp.Outbox) -> dhcp.Event:
    got: list[dhcp.Event] = []

    def stop(event: dhcp.Event) -> bool:
        got.append(event)
        return True

    with trio.fail_after(30):
        await dhcp.drive(client, sock, first, stop)
    return got[0]


def _event(event: dhcp.Event) -> dict:
    body = dataclasses.asdict(event)
    return {"event": type(event).__name__, **body}


async def main(step: str, netns: str, ifname: str, mac: str, lease_json: str = "") -> dict:
    if step == "acquire":
        lease = await dhcp.acquire(netns=netns, parent="eth0", probe=ifname, mac=mac)
        return dataclasses.asdict(lease)
    if step == "release-probe":  # the container's interface is gone: from a probe in this host's netns
        lease = dhcp.Lease(**json.loads(lease_json))
        return {"sent": await dhcp.release(netns=None, ifname=ifname, lease=lease, mac=mac, probe_parent="eth0")}
    client = dhcp.DhcpClient(mac, rng=random.Random(1))
    with await dhcp.DhcpSocket.open(netns, ifname) as sock:
        if step == "renew":  # a lease whose T1 is now: the client renews at once
            lease = dhcp.Lease(**json.loads(lease_json))
            client.resume(dataclasses.replace(lease, start=trio.current_time() - lease.t1_s))
            return _event(await _until_event(client, sock, client.tick(trio.current_time())))
        if step == "reboot":
            return _event(await _until_event(client, sock, client.reboot(lease_json, trio.current_time())))
        if step == "release":
            client.resume(dhcp.Lease(**json.loads(lease_json)))
            out = client.release(trio.current_time())
            for s in out.sends:
                await sock.send(s)
            return {"sent": len(out.sends)}
    raise SystemExit(f"unknown step {step}")


if __name__ == "__main__":
    print(json.dumps(trio.run(main, *sys.argv[1:])))
