"""Servers of this machine that OneScreen starts, finds again and stops when no URL names one.

`base` holds what they share (files under one root, the port, the pid, the OS account, start,
reuse, stop); `postgres`, `mosquitto` and `redis` hold what each server needs besides.
"""
