"""The netops kernel tests' stand-in containers (bare network namespaces), for the DHCP client tests."""

from tests.integration.netops.conftest import make_ns

__all__ = ["make_ns"]
