"""netops: kernel networking through pyroute2 and nftables. Knows nothing of meshd."""
