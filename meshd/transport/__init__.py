"""meshd/transport"""
