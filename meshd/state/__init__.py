"""meshd/state"""
