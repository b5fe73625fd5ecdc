import pytest

from meshd.transport import ClusterKeys, ZmqHost, new_secret


@pytest.fixture
def secret():
    return new_secret()


@pytest.fixture
async def hosts(nursery, secret):
    """Factory: started ZmqHosts sharing ``secret`` (or another one)."""
    made = []

    async def make(with_secret=None):
        host = ZmqHost(ClusterKeys.from_secret(with_secret or secret))
        await nursery.start(host.run)
        made.append(host)
        return host

    return make  # each host closes itself when the nursery fixture cancels its run()
