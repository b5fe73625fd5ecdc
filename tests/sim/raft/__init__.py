"""Deterministic simulation of the Raft core (see sim.py)."""
