"""meshd/gossip"""
